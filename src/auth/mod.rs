//! Authentication: Basic credentials checked against an htpasswd file of bcrypt hashes.
//!
//! The credential set lives in an [`ArcSwap`] and is replaced whole when the file changes ([`watch`]), so a
//! request sees either the old set or the new one. Verified credentials are cached ([`cache`]). Every bcrypt
//! runs in the [`pool`], off the async workers and behind one limit, so a flood of wrong passwords cannot
//! starve the workers or spawn threads; an unknown user or an unsupported hash costs a bcrypt like a wrong
//! password, so user names do not leak by timing. The [`guard`] reserves a token per attempt before any of
//! that, so a concurrent flood from one address is refused at once.

pub mod basic;
pub mod cache;
pub mod guard;
pub mod htpasswd;
pub mod outcome;
pub mod pool;
pub mod settings;
pub mod watch;

pub use basic::is_empty_basic;
pub use outcome::{log_safe_user, Outcome, Principal, MAX_LOGGED_USER};

use arc_swap::ArcSwap;
use basic::parse_basic;
use cache::CredentialCache;
use htpasswd::{Credentials, Lookup};
use http::HeaderValue;
pub use settings::{AuthConfig, AuthMode, GuardConfig};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A problem loading the htpasswd file at startup, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be created.
    #[error("htpasswd {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is unreadable or garbage (there is no last good set to keep at startup).
    #[error("htpasswd {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: htpasswd::FileError,
    },
}

/// Checks Basic credentials against the current htpasswd set.
pub struct Authenticator {
    path: PathBuf,
    credentials: ArcSwap<Credentials>,
    cache: CredentialCache,
    bcrypt: pool::BcryptPool,
    guard: Option<guard::Guard>,
    /// Why the file on disk is not in force (the last good set is), if it is not.
    stale: Mutex<Option<String>>,
}

impl Authenticator {
    /// Loads the file (creating it with one random `admin` user when it does not exist); a file that is
    /// unreadable or garbage is an error, since at startup there is no last good set to keep.
    pub fn open(
        config: &AuthConfig,
        guard: Option<&GuardConfig>,
    ) -> Result<Authenticator, AuthError> {
        if !config.htpasswd.exists() && std::fs::symlink_metadata(&config.htpasswd).is_err() {
            create_default(&config.htpasswd).map_err(|source| AuthError::Io {
                path: config.htpasswd.clone(),
                source,
            })?;
        }
        let parsed = htpasswd::load(&config.htpasswd).map_err(|source| AuthError::File {
            path: config.htpasswd.clone(),
            source,
        })?;
        log_warnings(&config.htpasswd, &parsed.warnings);
        tracing::info!(
            file = %config.htpasswd.display(),
            users = parsed.credentials.len(),
            "htpasswd loaded"
        );
        warn_if_nobody(&config.htpasswd, &parsed.credentials);
        let m = crate::metrics::metrics();
        m.htpasswd_users.set(parsed.credentials.len() as i64);
        m.htpasswd_last_reload.set(watch::unix_now());
        m.htpasswd_stale.set(0);
        Ok(Authenticator {
            path: config.htpasswd.clone(),
            credentials: ArcSwap::from_pointee(parsed.credentials),
            cache: CredentialCache::new(config.cache_ttl, config.cache_capacity),
            bcrypt: pool::BcryptPool::new(config.bcrypt_concurrency),
            guard: guard.map(guard::Guard::new),
            stale: Mutex::new(None),
        })
    }

    /// The htpasswd file this authenticator reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many users can log in.
    pub fn users(&self) -> usize {
        self.credentials.load().len()
    }

    /// The hash htpasswd holds for `user` now, if the user is there (a UI session lasts only while it is
    /// the one the user logged in with).
    pub fn stored_hash(&self, user: &str) -> Option<String> {
        self.credentials.load().hash_of(user).map(str::to_string)
    }

    /// Replaces the credential set (the cache needs no flush: its keys include the stored hash).
    pub fn replace(&self, credentials: Credentials) {
        self.credentials.store(Arc::new(credentials));
    }

    /// `Ok` when what the htpasswd file says is in force; `Err` with the reason when the file is missing,
    /// unreadable or garbage and the last good set is kept instead (for `/readyz`).
    pub fn health(&self) -> Result<(), String> {
        match &*self.stale.lock().expect("stale lock") {
            None => Ok(()),
            Some(why) => Err(format!(
                "htpasswd {}: {why}; keeping the last good set ({} users)",
                self.path.display(),
                self.users()
            )),
        }
    }

    /// Records whether the file on disk is in force (`None`) or why not.
    fn set_stale(&self, why: Option<String>) {
        crate::metrics::metrics()
            .htpasswd_stale
            .set(i64::from(why.is_some()));
        *self.stale.lock().expect("stale lock") = why;
    }

    /// Checks the request's `Authorization` header; `client` is the caller's address for the guard.
    pub async fn authenticate(
        &self,
        header: Option<&HeaderValue>,
        client: Option<IpAddr>,
    ) -> Outcome {
        let Some(header) = header else {
            return Outcome::Missing;
        };
        let parsed = parse_basic(header);
        let credentials = self.credentials.load_full();
        // A cached success is never throttled: it costs nothing and proves nothing new.
        if let Some((user, password)) = &parsed {
            if let Some(hash) = credentials.hash_of(user) {
                if self.cache.contains(user, password, hash) {
                    return Outcome::Ok {
                        principal: Principal { user: user.clone() },
                        cached: true,
                    };
                }
            }
        }
        // Reserve before queueing for bcrypt: at most the burst of one address's attempts is in flight.
        let reservation = match (&self.guard, client) {
            (Some(guard), Some(ip)) => match guard.reserve(ip) {
                Ok(r) => Some(r),
                Err(wait) => {
                    crate::metrics::metrics().guard_throttled.inc();
                    return Outcome::Throttled {
                        retry_after: wait.as_secs().max(1),
                    };
                }
            },
            _ => None,
        };
        let outcome = self.verify_uncached(parsed, &credentials).await;
        if let (Outcome::Ok { .. }, Some(r)) = (&outcome, reservation) {
            r.give_back();
        }
        // Otherwise the reservation drops here: the failed attempt keeps its token spent.
        outcome
    }

    async fn verify_uncached(
        &self,
        parsed: Option<(String, Vec<u8>)>,
        credentials: &Credentials,
    ) -> Outcome {
        let Some((user, password)) = parsed else {
            return Outcome::Malformed;
        };
        match credentials.lookup(&user) {
            // Spend what a real verification would, so these are not told apart from a wrong password.
            Lookup::Unknown => {
                self.bcrypt
                    .verify_dummy(password, credentials.typical_cost())
                    .await;
                Outcome::UnknownUser {
                    attempted: log_safe_user(&user),
                }
            }
            Lookup::Unsupported => {
                self.bcrypt
                    .verify_dummy(password, credentials.typical_cost())
                    .await;
                Outcome::UnsupportedHash {
                    attempted: log_safe_user(&user),
                }
            }
            Lookup::Bcrypt(hash) => {
                let hash = hash.to_string();
                if self.bcrypt.verify(password.clone(), hash.clone()).await {
                    self.cache.insert(&user, &password, &hash);
                    Outcome::Ok {
                        principal: Principal { user },
                        cached: false,
                    }
                } else {
                    Outcome::BadPassword {
                        attempted: log_safe_user(&user),
                    }
                }
            }
        }
    }
}

/// Warns when a credential set in force lets nobody in (a deliberate lock-out, or a mistake).
fn warn_if_nobody(path: &Path, credentials: &Credentials) {
    if credentials.is_empty() {
        tracing::warn!(
            file = %path.display(),
            unsupported = credentials.unsupported(),
            "htpasswd names no user who can log in: every login is refused"
        );
    }
}

fn log_warnings(path: &Path, warnings: &[String]) {
    for w in warnings {
        tracing::warn!("htpasswd {}: {w}", path.display());
    }
}

/// Writes a new htpasswd file (mode 0600) with one `admin` user and a random password, logged once.
fn create_default(path: &Path) -> std::io::Result<()> {
    use rand::distr::{Alphanumeric, SampleString};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let hash = bcrypt::hash(&password, 12).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("admin:{hash}\n").as_bytes())?;
    f.sync_all()?;
    tracing::warn!(
        target: "gatehouse::notice",
        file = %path.display(),
        "created htpasswd with user `admin` and password `{password}`: this is shown once; \
         change it with `gatehouse passwd add admin`"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use basic::tests::basic;

    fn authenticator(dir: &Path, lines: &str) -> Authenticator {
        let path = dir.join("htpasswd");
        std::fs::write(&path, lines).unwrap();
        Authenticator::open(
            &AuthConfig {
                mode: AuthMode::Htpasswd,
                realm: "r".into(),
                htpasswd: path,
                bcrypt_concurrency: 2,
                cache_ttl: Duration::from_secs(60),
                cache_capacity: 100,
            },
            Some(&GuardConfig {
                burst: 3,
                per_minute: 1,
                max_tracked: 100,
            }),
        )
        .unwrap()
    }

    fn bad(user: &str) -> Outcome {
        Outcome::BadPassword {
            attempted: user.into(),
        }
    }

    fn unknown(user: &str) -> Outcome {
        Outcome::UnknownUser {
            attempted: user.into(),
        }
    }

    #[tokio::test]
    async fn outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = authenticator(dir.path(), &format!("alice:{hash}\n"));
        let ok = a.authenticate(Some(&basic("alice:pw")), None).await;
        assert_eq!(ok.label(), "ok");
        assert_eq!(
            a.authenticate(Some(&basic("alice:pw")), None).await.label(),
            "cached"
        );
        assert_eq!(
            a.authenticate(Some(&basic("alice:no")), None).await,
            bad("alice")
        );
        assert_eq!(
            a.authenticate(Some(&basic("bob:pw")), None).await,
            unknown("bob")
        );
        assert_eq!(a.authenticate(None, None).await, Outcome::Missing);
        for bad in ["Bearer x", "Basic !!!", "Basic", "basic Og=="] {
            let v = HeaderValue::from_str(bad).unwrap();
            assert_eq!(
                a.authenticate(Some(&v), None).await,
                Outcome::Malformed,
                "{bad}"
            );
        }
        // A password with a colon is fine: only the first colon splits.
        let hash2 = bcrypt::hash("a:b", 4).unwrap();
        a.replace(htpasswd::parse(&format!("carol:{hash2}\n")).credentials);
        assert_eq!(
            a.authenticate(Some(&basic("carol:a:b")), None)
                .await
                .label(),
            "ok"
        );
        // alice was removed: her cached verification no longer counts.
        assert_eq!(
            a.authenticate(Some(&basic("alice:pw")), None).await,
            unknown("alice")
        );
    }

    #[tokio::test]
    async fn unsupported_hash_is_its_own_outcome_not_unknown_user() {
        let dir = tempfile::tempdir().unwrap();
        let a = authenticator(
            dir.path(),
            "md5:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\nsha:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\ncrypt:rqXexS6ZhobKA\n",
        );
        for user in ["md5", "sha", "crypt"] {
            let o = a
                .authenticate(Some(&basic(&format!("{user}:password"))), None)
                .await;
            assert_eq!(
                o,
                Outcome::UnsupportedHash {
                    attempted: user.into()
                }
            );
            assert_eq!(o.label(), "unsupported_hash");
            assert_eq!(o.attempted_user(), Some(user));
        }
        assert!(a.bcrypt.peak() >= 1, "an unsupported hash costs a bcrypt");
        assert_eq!(a.users(), 0);
    }

    #[tokio::test]
    async fn guard_throttles_failures_but_not_cached_successes() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = authenticator(dir.path(), &format!("alice:{hash}\n"));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let other: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(
            a.authenticate(Some(&basic("alice:pw")), Some(ip))
                .await
                .label(),
            "ok"
        );
        for _ in 0..3 {
            assert_eq!(
                a.authenticate(Some(&basic("alice:x")), Some(ip)).await,
                bad("alice")
            );
        }
        let t = a.authenticate(Some(&basic("alice:y")), Some(ip)).await;
        assert!(
            matches!(t, Outcome::Throttled { retry_after } if retry_after >= 1),
            "{t:?}"
        );
        assert_eq!(
            a.authenticate(Some(&basic("alice:pw")), Some(ip))
                .await
                .label(),
            "cached"
        );
        assert_eq!(
            a.authenticate(Some(&basic("alice:x")), Some(other)).await,
            bad("alice")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_wrong_passwords_from_one_address_get_at_most_the_burst_checked() {
        // The guard reserves before bcrypt: 100 attempts at once from one address, burst 3, bcrypt
        // limit 2 (so most of them would queue): exactly 3 reach bcrypt, 97 are throttled.
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = Arc::new(authenticator(dir.path(), &format!("alice:{hash}\n")));
        let ip: IpAddr = "192.0.2.11".parse().unwrap();
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let a = a.clone();
                tokio::spawn(async move {
                    a.authenticate(Some(&basic(&format!("alice:wrong{i}"))), Some(ip))
                        .await
                })
            })
            .collect();
        let mut labels = Vec::new();
        for t in tasks {
            labels.push(t.await.unwrap().label());
        }
        let checked = labels.iter().filter(|&&l| l == "bad_password").count();
        let throttled = labels.iter().filter(|&&l| l == "throttled").count();
        assert_eq!((checked, throttled), (3, 97), "{labels:?}");
    }

    #[tokio::test]
    async fn a_successful_uncached_login_does_not_spend_the_guard() {
        let dir = tempfile::tempdir().unwrap();
        let hashes: Vec<String> = (0..6).map(|_| bcrypt::hash("pw", 4).unwrap()).collect();
        let lines: String = hashes
            .iter()
            .enumerate()
            .map(|(i, h)| format!("u{i}:{h}\n"))
            .collect();
        let a = authenticator(dir.path(), &lines);
        let ip: IpAddr = "192.0.2.12".parse().unwrap();
        // Six first logins (burst 3): each reserves and gives back.
        for i in 0..6 {
            let o = a
                .authenticate(Some(&basic(&format!("u{i}:pw"))), Some(ip))
                .await;
            assert_eq!(o.label(), "ok", "u{i}");
        }
    }

    #[tokio::test]
    async fn failed_logins_expose_the_attempted_user_and_never_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let a = authenticator(dir.path(), &format!("alice:{hash}\n"));
        let o = a.authenticate(Some(&basic("alice:secret-pw")), None).await;
        assert_eq!(o.attempted_user(), Some("alice"));
        let o = a
            .authenticate(Some(&basic("mal\"lory x\n:secret-pw")), None)
            .await;
        assert_eq!(o.attempted_user(), Some("mal\\x22lory\\x20x\\x0a"));
        assert!(!format!("{o:?}").contains("secret-pw"));
        let long = "a".repeat(500);
        let o = a
            .authenticate(Some(&basic(&format!("{long}:secret-pw"))), None)
            .await;
        assert_eq!(o.attempted_user().map(str::len), Some(MAX_LOGGED_USER));
        for none in [
            a.authenticate(None, None).await,
            a.authenticate(Some(&HeaderValue::from_static("Basic !!")), None)
                .await,
            a.authenticate(Some(&basic("alice:pw")), None).await,
            Outcome::Throttled { retry_after: 1 },
        ] {
            assert_eq!(none.attempted_user(), None, "{none:?}");
        }
    }

    #[tokio::test]
    async fn health_reports_a_stale_file_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let a = authenticator(dir.path(), "# nobody yet\n");
        assert_eq!(a.health(), Ok(()), "an empty set in force is healthy");
        a.set_stale(Some("garbage: 2 content lines".into()));
        let why = a.health().unwrap_err();
        assert!(why.contains("garbage") && why.contains("htpasswd"), "{why}");
        a.set_stale(None);
        assert_eq!(a.health(), Ok(()));
    }

    #[test]
    fn open_refuses_a_garbage_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "not htpasswd\n").unwrap();
        let config = AuthConfig {
            mode: AuthMode::Htpasswd,
            realm: "r".into(),
            htpasswd: path,
            bcrypt_concurrency: 1,
            cache_ttl: Duration::ZERO,
            cache_capacity: 0,
        };
        let e = Authenticator::open(&config, None)
            .err()
            .expect("garbage refused");
        assert!(e.to_string().contains("garbage"), "{e}");
    }

    #[test]
    fn creates_a_private_default_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/htpasswd");
        create_default(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let p = htpasswd::load(&path).unwrap();
        assert!(p.credentials.hash_of("admin").is_some());
        assert!(create_default(&path).is_err(), "never overwrites");
    }
}
