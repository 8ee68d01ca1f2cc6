//! The htpasswd file: `user:$2y$cost$...` lines as `htpasswd -nB` and passlib write them.
//!
//! Only bcrypt (`$2y$`, `$2a$`, `$2b$`) can be verified. A `user:hash` line with another hash (`$apr1$` MD5,
//! `{SHA}`, crypt) still names a user, one who cannot log in (`unsupported_hash`); a line that is not
//! `user:hash` at all is skipped. Each skipped or unsupported line gets a warning that names the line
//! number, never the hash.
//!
//! What a file means, whole: blank lines and `#` comments only (or nothing) is a valid, empty set. A file
//! with content lines of which none is `user:hash`, or that is not UTF-8 text, is garbage ([`FileError`]):
//! the caller keeps its last good set.

use std::collections::HashMap;
use std::path::Path;

/// The largest htpasswd file gatehouse reads (a bigger one is refused, not read into memory).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// What is stored for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    /// A bcrypt hash gatehouse verifies.
    Bcrypt(String),
    /// A hash in a format gatehouse cannot verify (the hash itself is not kept).
    Unsupported,
}

/// The credential set loaded from one htpasswd file.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: HashMap<String, Stored>,
}

/// What the credential set says about one user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The user's bcrypt hash.
    Bcrypt(&'a str),
    /// The user exists, with a hash gatehouse cannot verify.
    Unsupported,
    /// No such user.
    Unknown,
}

/// The result of parsing a file: the credentials and one warning per skipped line.
#[derive(Debug)]
pub struct Parsed {
    /// The users that loaded.
    pub credentials: Credentials,
    /// Warnings such as `line 7: unsupported hash (only bcrypt is accepted)`.
    pub warnings: Vec<String>,
    /// Lines that are neither blank nor comments.
    pub content_lines: usize,
    /// Lines of the form `user:hash` (supported hash or not).
    pub entries: usize,
}

impl Parsed {
    /// Whether the text is garbage: it has content lines, and none of them is `user:hash`.
    pub fn is_garbage(&self) -> bool {
        self.content_lines > 0 && self.entries == 0
    }
}

/// Why a file's content is not in force (the last good set stays).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file does not exist (or a symlink on the way dangles).
    #[error("missing")]
    Missing,
    /// The file cannot be read.
    #[error("unreadable: {0}")]
    Unreadable(std::io::Error),
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("too large: {0} bytes (at most {MAX_FILE_BYTES})")]
    TooLarge(u64),
    /// The file is not UTF-8 text.
    #[error("garbage: not UTF-8 text (byte {0})")]
    NotText(usize),
    /// The file has content, but no line is `user:hash`.
    #[error("garbage: {0} content lines and none is `user:hash`")]
    Garbage(usize),
}

impl FileError {
    /// A fixed label for metrics: `missing`, `unreadable` or `garbage`.
    pub fn label(&self) -> &'static str {
        match self {
            FileError::Missing => "missing",
            FileError::Unreadable(_) | FileError::TooLarge(_) => "unreadable",
            FileError::NotText(_) | FileError::Garbage(_) => "garbage",
        }
    }
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

/// A name for the hash format, for warnings (never the hash itself).
fn format_of(hash: &str) -> &'static str {
    if hash.starts_with("$apr1$") {
        "MD5 ($apr1$)"
    } else if hash.starts_with("{SHA}") {
        "SHA-1 ({SHA})"
    } else if hash.starts_with("$2") {
        "malformed bcrypt"
    } else if hash.starts_with('$') {
        "crypt"
    } else {
        "crypt or plain text"
    }
}

/// Parses htpasswd text.
pub fn parse(text: &str) -> Parsed {
    let mut users = HashMap::new();
    let mut warnings = Vec::new();
    let (mut content_lines, mut entries) = (0, 0);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        content_lines += 1;
        let Some((user, hash)) = line.split_once(':') else {
            warnings.push(format!("line {n}: no `user:hash` separator"));
            continue;
        };
        let hash = hash.trim();
        if user.is_empty() {
            warnings.push(format!("line {n}: empty user name"));
            continue;
        }
        if hash.is_empty() {
            warnings.push(format!("line {n}: user {user:?}: empty hash"));
            continue;
        }
        entries += 1;
        let stored = if is_bcrypt(hash) {
            Stored::Bcrypt(hash.to_string())
        } else {
            warnings.push(format!(
                "line {n}: user {user:?}: unsupported hash, {} (only bcrypt $2y$/$2a$/$2b$ is accepted); \
                 this user cannot log in",
                format_of(hash)
            ));
            Stored::Unsupported
        };
        if users.insert(user.to_string(), stored).is_some() {
            warnings.push(format!(
                "line {n}: user {user:?} repeated; the last line wins"
            ));
        }
    }
    Parsed {
        credentials: Credentials { users },
        warnings,
        content_lines,
        entries,
    }
}

/// Reads and parses a file; `Err` when its content must not be put in force.
pub fn load(path: &Path) -> Result<Parsed, FileError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => FileError::Missing,
        _ => FileError::Unreadable(e),
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(FileError::Unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(FileError::TooLarge(size));
    }
    let text =
        String::from_utf8(bytes).map_err(|e| FileError::NotText(e.utf8_error().valid_up_to()))?;
    let parsed = parse(&text);
    if parsed.is_garbage() {
        return Err(FileError::Garbage(parsed.content_lines));
    }
    Ok(parsed)
}

impl Credentials {
    /// What the set says about `user`.
    pub fn lookup(&self, user: &str) -> Lookup<'_> {
        match self.users.get(user) {
            Some(Stored::Bcrypt(h)) => Lookup::Bcrypt(h),
            Some(Stored::Unsupported) => Lookup::Unsupported,
            None => Lookup::Unknown,
        }
    }

    /// The stored bcrypt hash of a user (`None` for unknown users and unsupported hashes).
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        match self.lookup(user) {
            Lookup::Bcrypt(h) => Some(h),
            _ => None,
        }
    }

    /// How many users can log in (bcrypt hashes).
    pub fn len(&self) -> usize {
        self.users
            .values()
            .filter(|s| matches!(s, Stored::Bcrypt(_)))
            .count()
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many users have a hash gatehouse cannot verify.
    pub fn unsupported(&self) -> usize {
        self.users.len() - self.len()
    }

    /// The most common bcrypt cost in the file (what an unknown user's dummy verification costs).
    pub fn typical_cost(&self) -> u32 {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for s in self.users.values() {
            if let Stored::Bcrypt(h) = s {
                if let Some(c) = bcrypt_cost(h) {
                    *counts.entry(c).or_default() += 1;
                }
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
    use proptest::prelude::*;

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
        assert!(!w.contains("$x$y"), "a warning must not echo a hash: {w}");
    }

    #[test]
    fn unsupported_hashes_name_users_who_cannot_log_in() {
        let cases = [
            ("md5", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "MD5"),
            ("sha", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("crypt", "rqXexS6ZhobKA", "crypt"),
            ("short", "$2y$05$tooshort", "malformed bcrypt"),
        ];
        for (user, hash, format) in cases {
            let p = parse(&format!("{user}:{hash}\n"));
            assert_eq!(p.credentials.lookup(user), Lookup::Unsupported, "{user}");
            assert_eq!(p.credentials.hash_of(user), None, "{user}");
            assert_eq!(p.credentials.len(), 0, "{user}");
            assert_eq!(p.credentials.unsupported(), 1, "{user}");
            assert!(!p.is_garbage(), "{user}");
            let w = p.warnings.join("\n");
            assert!(w.contains(format) && w.contains("line 1"), "{user}: {w}");
            assert!(!w.contains(hash), "{user}: a warning echoes the hash: {w}");
        }
        assert_eq!(parse("x:y\n").credentials.lookup("nobody"), Lookup::Unknown);
    }

    #[test]
    fn a_later_line_wins_also_between_formats() {
        let p = parse(&format!("a:{H5}\na:$apr1$x$y\nb:$apr1$x$y\nb:{H5}\n"));
        assert_eq!(p.credentials.lookup("a"), Lookup::Unsupported);
        assert_eq!(p.credentials.lookup("b"), Lookup::Bcrypt(H5));
    }

    #[test]
    fn garbage_is_content_without_any_user_hash_line() {
        let table: &[(&str, bool)] = &[
            ("", false),
            ("\n\n   \n", false),
            ("# only a comment\n\n# another\n", false),
            ("this is not an htpasswd file\nnor is this\n", true),
            (":nouser\n", true),
            ("user:\n", true),
            ("junk\nmd5:$apr1$x$y\n", false),
            (&format!("junk\nalice:{H5}\n"), false),
        ];
        for (text, garbage) in table {
            assert_eq!(parse(text).is_garbage(), *garbage, "{text:?}");
        }
    }

    #[test]
    fn load_tells_missing_unreadable_and_garbage_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        assert_eq!(load(&path).unwrap_err().label(), "missing");
        std::fs::create_dir(&path).unwrap();
        assert_eq!(load(&path).unwrap_err().label(), "unreadable");
        std::fs::remove_dir(&path).unwrap();
        std::fs::write(&path, b"\x00\x01\xff\xfe garbage\n").unwrap();
        assert!(matches!(load(&path), Err(FileError::NotText(_))));
        std::fs::write(&path, "not a line\n").unwrap();
        assert!(matches!(load(&path), Err(FileError::Garbage(1))));
        std::fs::write(&path, "# nobody\n").unwrap();
        assert!(load(&path).unwrap().credentials.is_empty());
        std::fs::write(&path, format!("alice:{H5}\n")).unwrap();
        assert_eq!(load(&path).unwrap().credentials.len(), 1);
    }

    #[test]
    fn load_refuses_a_file_over_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(load(&path), Err(FileError::TooLarge(n)) if n == MAX_FILE_BYTES + 1));
    }

    #[test]
    fn crlf_and_cost() {
        let p = parse(&format!("alice:{H5}\r\n"));
        assert_eq!(p.credentials.len(), 1);
        assert_eq!(p.credentials.typical_cost(), 5);
        assert_eq!(bcrypt_cost(H5), Some(5));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_never_panics(text in "\\PC{0,400}", raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let p = parse(&text);
            prop_assert!(p.entries <= p.content_lines);
            let lossy = String::from_utf8_lossy(&raw);
            let _ = parse(&lossy);
        }

        #[test]
        fn parse_never_echoes_a_hash_in_warnings(
            user in "[a-z]{1,8}",
            prefix in prop::sample::select(vec!["$apr1$", "{SHA}", "$1$", "$6$", "$2y$05$"]),
            body in "[A-Za-z0-9./]{8,40}",
        ) {
            let hash = format!("{prefix}{body}");
            let p = parse(&format!("{user}:{hash}\n"));
            prop_assert_eq!(p.credentials.lookup(&user), Lookup::Unsupported);
            for w in &p.warnings {
                prop_assert!(!w.contains(&hash), "{w}");
            }
        }
    }
}
