//! What checking a request's credentials came to: the [`Outcome`] (with a fixed label for logs and metrics),
//! the [`Principal`] of a success, and the attempted user name of a failure made safe for a log line.

/// The most bytes of an attempted user name kept for logs.
pub const MAX_LOGGED_USER: usize = 64;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name from htpasswd.
    pub user: String,
}

/// The result of checking a request's credentials.
///
/// The failed-login variants carry the attempted user name already made safe for a log line
/// ([`log_safe_user`]: escaped, capped at [`MAX_LOGGED_USER`] bytes); the password is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Verified; `cached` when no bcrypt was needed.
    Ok {
        /// The caller.
        principal: Principal,
        /// Whether the verification came from the cache.
        cached: bool,
    },
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not valid Basic.
    Malformed,
    /// A user not in the file.
    UnknownUser {
        /// The attempted user name, log-safe.
        attempted: String,
    },
    /// A user whose line has a hash gatehouse cannot verify (MD5 `$apr1$`, `{SHA}`, crypt).
    UnsupportedHash {
        /// The attempted user name, log-safe.
        attempted: String,
    },
    /// A known user with the wrong password.
    BadPassword {
        /// The attempted user name, log-safe.
        attempted: String,
    },
    /// Too many failed logins from this address: refused without checking.
    Throttled {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
}

impl Outcome {
    /// A fixed label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok { cached: true, .. } => "cached",
            Outcome::Ok { cached: false, .. } => "ok",
            Outcome::Missing => "missing",
            Outcome::Malformed => "malformed",
            Outcome::UnknownUser { .. } => "unknown_user",
            Outcome::UnsupportedHash { .. } => "unsupported_hash",
            Outcome::BadPassword { .. } => "bad_password",
            Outcome::Throttled { .. } => "throttled",
        }
    }

    /// The user name a failed login tried, escaped for a log line and capped at [`MAX_LOGGED_USER`] bytes;
    /// `None` for successes (see the principal), missing or undecodable credentials, and throttled requests
    /// (refused before their credentials are looked at).
    pub fn attempted_user(&self) -> Option<&str> {
        match self {
            Outcome::UnknownUser { attempted }
            | Outcome::UnsupportedHash { attempted }
            | Outcome::BadPassword { attempted } => Some(attempted),
            _ => None,
        }
    }
}

/// A user name made safe for one log line: printable ASCII is kept except `"`, `'` and `\`; those, spaces
/// and control characters become `\xNN`, other characters `\u{..}`; the result is at most
/// [`MAX_LOGGED_USER`] bytes (cut between escapes, ending in `...` when cut).
pub fn log_safe_user(user: &str) -> String {
    const CUT: &str = "...";
    let pieces: Vec<String> = user
        .chars()
        .map(|c| match c {
            '"' | '\'' | '\\' => format!("\\x{:02x}", c as u32),
            c if c.is_ascii_graphic() => c.to_string(),
            c if c.is_ascii() => format!("\\x{:02x}", c as u32),
            c => c.escape_unicode().to_string(),
        })
        .collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut len = 0;
    for piece in &pieces {
        if len + piece.len() > MAX_LOGGED_USER {
            // Cut between escapes, leaving room for the marker.
            while len + CUT.len() > MAX_LOGGED_USER {
                len -= kept.pop().map_or(0, str::len);
            }
            return kept.concat() + CUT;
        }
        len += piece.len();
        kept.push(piece);
    }
    kept.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_safe_user_escapes_and_caps() {
        let table: &[(&str, &str)] = &[
            ("alice", "alice"),
            ("ci-bot@example.com", "ci-bot@example.com"),
            ("a b", "a\\x20b"),
            ("a\"b", "a\\x22b"),
            ("a'b", "a\\x27b"),
            ("a\\b", "a\\x5cb"),
            ("a\r\nuser=root", "a\\x0d\\x0auser=root"),
            ("\u{1b}[31m", "\\x1b[31m"),
            ("j\u{fc}rgen", "j\\u{fc}rgen"),
            ("\u{202e}evil", "\\u{202e}evil"),
            ("", ""),
        ];
        for (raw, want) in table {
            assert_eq!(log_safe_user(raw), *want, "{raw:?}");
        }
        let exact = "x".repeat(MAX_LOGGED_USER);
        assert_eq!(log_safe_user(&exact), exact, "64 bytes fit");
        let over = log_safe_user(&"x".repeat(MAX_LOGGED_USER + 1));
        assert_eq!(over.len(), MAX_LOGGED_USER);
        assert!(over.ends_with("..."));
        // An escape is never cut in half.
        let spaces = log_safe_user(&" ".repeat(40));
        assert!(spaces.len() <= MAX_LOGGED_USER, "{spaces}");
        assert_eq!(spaces.trim_end_matches("...").replace("\\x20", ""), "");
    }
}
