//! The htpasswd file: `user:$2y$cost$...` lines as `htpasswd -nB` and passlib write them.
//!
//! Only bcrypt (`$2y$`, `$2a$`, `$2b$`) is accepted; other lines are skipped with a warning that names the line
//! number, never the hash.

use std::collections::HashMap;
use std::path::Path;

/// The credential set loaded from one htpasswd file.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: HashMap<String, String>,
}

/// The result of parsing a file: the credentials and one warning per skipped line.
#[derive(Debug)]
pub struct Parsed {
    /// The users that loaded.
    pub credentials: Credentials,
    /// Warnings such as `line 7: unsupported hash (only bcrypt is accepted)`.
    pub warnings: Vec<String>,
}

/// Whether a hash string is a bcrypt hash gatehouse can verify.
pub fn is_bcrypt(hash: &str) -> bool {
    (hash.starts_with("$2y$") || hash.starts_with("$2a$") || hash.starts_with("$2b$"))
        && hash.len() == 60
}

/// The cost of a bcrypt hash (`$2y$05$...` → 5).
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?.parse().ok()
}

/// Parses htpasswd text.
pub fn parse(text: &str) -> Parsed {
    let mut users = HashMap::new();
    let mut warnings = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            warnings.push(format!("line {n}: no `user:hash` separator"));
            continue;
        };
        let hash = hash.trim();
        if user.is_empty() {
            warnings.push(format!("line {n}: empty user name"));
            continue;
        }
        if !is_bcrypt(hash) {
            warnings.push(format!(
                "line {n}: user {user:?}: unsupported hash (only bcrypt $2y$/$2a$/$2b$ is accepted)"
            ));
            continue;
        }
        if users.insert(user.to_string(), hash.to_string()).is_some() {
            warnings.push(format!(
                "line {n}: user {user:?} repeated; the last line wins"
            ));
        }
    }
    Parsed {
        credentials: Credentials { users },
        warnings,
    }
}

/// Reads and parses a file.
pub fn load(path: &Path) -> std::io::Result<Parsed> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

impl Credentials {
    /// The stored hash of a user.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// How many users loaded.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user loaded.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The most common bcrypt cost in the file (what an unknown user's dummy verification costs).
    pub fn typical_cost(&self) -> u32 {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for h in self.users.values() {
            if let Some(c) = bcrypt_cost(h) {
                *counts.entry(c).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .max_by_key(|&(cost, n)| (n, cost))
            .map(|(c, _)| c)
            .unwrap_or(bcrypt::DEFAULT_COST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H5: &str = "$2y$05$Vb6ypJQQS9P2NNfS2YcDGe4ZWvvoZ3vxqAkt/6sBpCdR/cnZaSqBe";

    #[test]
    fn loads_bcrypt_and_skips_the_rest_by_line_number() {
        let text = format!(
            "alice:{H5}\n# comment\n\nbob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\ncarol\n:{H5}\ndave:$apr1$x$y\nerin:{}\n",
            H5.replace("$2y$", "$2b$")
        );
        let p = parse(&text);
        assert_eq!(p.credentials.len(), 2);
        assert!(p.credentials.hash_of("alice").is_some());
        assert!(p.credentials.hash_of("erin").is_some());
        let w = p.warnings.join("\n");
        assert!(w.contains("line 4"), "{w}");
        assert!(w.contains("line 5"), "{w}");
        assert!(w.contains("line 6"), "{w}");
        assert!(w.contains("line 7"), "{w}");
        assert!(!w.contains("W6ph5"), "a warning must not echo a hash: {w}");
    }

    #[test]
    fn crlf_and_cost() {
        let p = parse(&format!("alice:{H5}\r\n"));
        assert_eq!(p.credentials.len(), 1);
        assert_eq!(p.credentials.typical_cost(), 5);
        assert_eq!(bcrypt_cost(H5), Some(5));
    }
}
