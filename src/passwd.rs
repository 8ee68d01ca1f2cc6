//! `gatehouse passwd`: edits an htpasswd file the way `htpasswd -B` does, line for line compatible, so a
//! running gatehouse (or distribution) picks the change up.
//!
//! A write never leaves a half-written file: the new content goes to a temporary file in the same directory,
//! is synced, and is renamed over the old one. When the file is itself a mount point (a single-file bind
//! mount, where a rename would fail or leave the container on the old inode), or when asked to, the file is
//! rewritten in place in one write instead; a reader that sees it empty mid-write keeps its last good set.

use crate::auth::htpasswd::Lookup;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The bcrypt cost `passwd add` uses by default (affordable because verifications are cached).
pub const DEFAULT_COST: u32 = 12;

/// The longest password bcrypt uses whole: it ignores every byte after the 72nd.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A problem editing the file, naming it.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The user name cannot be written to an htpasswd line.
    #[error(
        "user name {0:?} is not allowed: use 1-255 printable characters without `:` or spaces"
    )]
    BadName(String),
    /// The user is not in the file.
    #[error("{path}: no user {user:?}")]
    NoSuchUser {
        /// The file.
        path: PathBuf,
        /// The user.
        user: String,
    },
    /// The password is longer than bcrypt uses.
    #[error(
        "the password is {0} bytes long: bcrypt only uses the first {MAX_PASSWORD_BYTES} bytes, so the rest \
         would be silently ignored; choose a password of at most {MAX_PASSWORD_BYTES} bytes"
    )]
    PasswordTooLong(usize),
    /// The password is empty.
    #[error("the password is empty")]
    EmptyPassword,
    /// The user's line has a hash gatehouse cannot verify.
    #[error("{path}: user {user:?} has an unsupported hash (only bcrypt); set a new password with `passwd add`")]
    UnsupportedHash {
        /// The file.
        path: PathBuf,
        /// The user.
        user: String,
    },
    /// bcrypt failed (bad cost).
    #[error("bcrypt: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PasswdError + '_ {
    move |source| PasswdError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks a user name for an htpasswd line.
pub fn check_name(name: &str) -> Result<(), PasswdError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('#')
        && name.chars().all(|c| c.is_ascii_graphic() && c != ':');
    if ok {
        Ok(())
    } else {
        Err(PasswdError::BadName(name.to_string()))
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, PasswdError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().map(str::to_string).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(path)(e)),
    }
}

fn user_of(line: &str) -> Option<&str> {
    line.split_once(':').map(|(u, _)| u)
}

/// Checks a password for bcrypt: not empty, and at most [`MAX_PASSWORD_BYTES`] bytes.
pub fn check_password(password: &str) -> Result<(), PasswdError> {
    if password.is_empty() {
        return Err(PasswdError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswdError::PasswordTooLong(password.len()));
    }
    Ok(())
}

/// Adds a user or changes its password; returns true when the user already existed.
pub fn add(
    path: &Path,
    name: &str,
    password: &str,
    cost: u32,
    in_place: bool,
) -> Result<bool, PasswdError> {
    check_name(name)?;
    check_password(password)?;
    let hash = bcrypt::hash(password, cost)?;
    let line = format!("{name}:{hash}");
    let mut lines = read_lines(path)?;
    let mut existed = false;
    for l in lines.iter_mut() {
        if user_of(l) == Some(name) {
            *l = line.clone();
            existed = true;
        }
    }
    if !existed {
        lines.push(line);
    }
    write(path, &lines, in_place)?;
    Ok(existed)
}

/// Removes a user.
pub fn remove(path: &Path, name: &str, in_place: bool) -> Result<(), PasswdError> {
    let mut lines = read_lines(path)?;
    let before = lines.len();
    lines.retain(|l| user_of(l) != Some(name));
    if lines.len() == before {
        return Err(PasswdError::NoSuchUser {
            path: path.to_path_buf(),
            user: name.to_string(),
        });
    }
    write(path, &lines, in_place)
}

/// The users in the file and the warnings for lines gatehouse would skip.
pub fn list(path: &Path) -> Result<(Vec<String>, Vec<String>), PasswdError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let parsed = crate::auth::htpasswd::parse(&text);
    let mut names: Vec<String> = text
        .lines()
        .filter_map(user_of)
        .filter(|u| parsed.credentials.hash_of(u).is_some())
        .map(str::to_string)
        .collect();
    names.dedup();
    Ok((names, parsed.warnings))
}

/// Whether the password is right for the user.
pub fn verify(path: &Path, name: &str, password: &str) -> Result<bool, PasswdError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let parsed = crate::auth::htpasswd::parse(&text);
    match parsed.credentials.lookup(name) {
        Lookup::Bcrypt(hash) => Ok(bcrypt::verify(password, hash).unwrap_or(false)),
        Lookup::Unsupported => Err(PasswdError::UnsupportedHash {
            path: path.to_path_buf(),
            user: name.to_string(),
        }),
        Lookup::Unknown => Err(PasswdError::NoSuchUser {
            path: path.to_path_buf(),
            user: name.to_string(),
        }),
    }
}

/// Whether `path` is a mount point of its own (a single-file bind mount).
fn is_mount_point(path: &Path) -> bool {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(f), Ok(d)) => f.dev() != d.dev(),
        _ => false,
    }
}

fn write(path: &Path, lines: &[String], in_place: bool) -> Result<(), PasswdError> {
    let mut content = lines.join("\n");
    if !content.is_empty() {
        content.push('\n');
    }
    // Follow a symlink (a Kubernetes secret, say) to the file it names.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if in_place || is_mount_point(&target) {
        return write_in_place(&target, content.as_bytes());
    }
    let existing = std::fs::metadata(&target).ok();
    let mode = existing
        .as_ref()
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "htpasswd".into());
    let tmp = dir.join(format!(".{name}.gatehouse-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        // Run as root on a file the server's user owns: the new file keeps that owner, or the server
        // could no longer read it.
        if let Some(m) = &existing {
            if m.uid() != effective_uid() {
                std::os::unix::fs::chown(&tmp, Some(m.uid()), Some(m.gid()))?;
            }
        }
        match std::fs::rename(&tmp, &target) {
            // EBUSY: the target is a mount point after all.
            Err(e) if e.raw_os_error() == Some(16) => {
                let _ = std::fs::remove_file(&tmp);
                write_in_place(&target, content.as_bytes()).map_err(std::io::Error::other)
            }
            other => other,
        }?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(&target))
}

/// This process's effective user id (the owner of files it creates).
fn effective_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

fn write_in_place(path: &Path, content: &[u8]) -> Result<(), PasswdError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(content).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_change_remove_keeps_other_lines_and_inode_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(
            &path,
            "# team\nbob:$2y$05$abcdefghijklmnopqrstuu5dx0pGqK5bRbcqZ5/Y1/XZHGZ3lQ0Ha\n",
        )
        .unwrap();
        assert!(!add(&path, "alice", "s3cret", 4, false).unwrap());
        assert!(verify(&path, "alice", "s3cret").unwrap());
        assert!(add(&path, "alice", "other", 4, false).unwrap());
        assert!(!verify(&path, "alice", "s3cret").unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# team\nbob:"), "{text}");
        assert_eq!(text.matches("alice:").count(), 1);
        let ino = std::fs::metadata(&path).unwrap().ino();
        remove(&path, "alice", true).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            ino,
            "in place keeps the inode"
        );
        assert!(matches!(
            remove(&path, "alice", false),
            Err(PasswdError::NoSuchUser { .. })
        ));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn new_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        add(&path, "alice", "pw", 4, false).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn password_longer_than_bcrypt_uses_is_refused_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let exact = "p".repeat(MAX_PASSWORD_BYTES);
        assert!(!add(&path, "alice", &exact, 4, false).unwrap());
        assert!(verify(&path, "alice", &exact).unwrap());
        // 72 ASCII bytes fit; one byte more, or 25 three-byte characters (75 bytes), do not.
        for long in ["p".repeat(MAX_PASSWORD_BYTES + 1), "\u{20ac}".repeat(25)] {
            let e = add(&path, "bob", &long, 4, false).unwrap_err();
            assert!(
                matches!(e, PasswdError::PasswordTooLong(n) if n == long.len()),
                "{e}"
            );
            let msg = e.to_string();
            assert!(msg.contains("bcrypt only uses the first 72 bytes"), "{msg}");
        }
        assert!(matches!(
            add(&path, "bob", "", 4, false),
            Err(PasswdError::EmptyPassword)
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("bob:"),
            "a refused password wrote a line: {text}"
        );
    }

    #[test]
    fn verify_names_an_unsupported_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "md5:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n").unwrap();
        assert!(matches!(
            verify(&path, "md5", "x"),
            Err(PasswdError::UnsupportedHash { .. })
        ));
        assert!(matches!(
            verify(&path, "nobody", "x"),
            Err(PasswdError::NoSuchUser { .. })
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn a_line_written_by_passwd_parses_back_and_verifies(
            name in "[!-9;-~]{1,40}",
            password in "\\PC{1,24}",
        ) {
            proptest::prop_assume!(check_name(&name).is_ok() && check_password(&password).is_ok());
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, "# kept\nother:$apr1$x$y\n").unwrap();
            add(&path, &name, &password, 4, false).unwrap();
            let parsed = crate::auth::htpasswd::load(&path).unwrap();
            let hash = parsed.credentials.hash_of(&name);
            proptest::prop_assert!(hash.is_some(), "{} not found", name);
            proptest::prop_assert!(bcrypt::verify(&password, hash.unwrap()).unwrap());
            proptest::prop_assert!(verify(&path, &name, &password).unwrap());
            let (names, _) = list(&path).unwrap();
            proptest::prop_assert_eq!(names, vec![name.clone()]);
        }
    }

    #[test]
    fn names_that_would_break_the_file_are_refused() {
        for bad in ["", "a:b", "a b", "a\nb", "#x", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("ci-bot@example.com").unwrap();
    }
}
