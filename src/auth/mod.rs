//! Authentication: Basic credentials checked against an htpasswd file of bcrypt hashes.
//!
//! The credential set lives in an [`ArcSwap`] and is replaced whole when the file changes ([`watch`]), so a
//! request sees either the old set or the new one. Verified credentials are cached ([`cache`]); bcrypt runs on
//! tokio's blocking pool behind a semaphore, so a flood of wrong passwords cannot starve the async workers; an
//! unknown user costs a bcrypt like a wrong password, so user names do not leak by timing.

pub mod cache;
pub mod guard;
pub mod htpasswd;
pub mod settings;
pub mod watch;

use arc_swap::ArcSwap;
use base64::Engine;
use cache::CredentialCache;
use htpasswd::Credentials;
use http::HeaderValue;
pub use settings::{AuthConfig, AuthMode, GuardConfig};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// The longest `Authorization` header gatehouse will decode.
const MAX_AUTH_HEADER: usize = 4096;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name from htpasswd.
    pub user: String,
}

/// The result of checking a request's credentials.
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
    UnknownUser,
    /// A known user with the wrong password.
    BadPassword,
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
            Outcome::UnknownUser => "unknown_user",
            Outcome::BadPassword => "bad_password",
            Outcome::Throttled { .. } => "throttled",
        }
    }
}

/// A problem loading the htpasswd file, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read or created.
    #[error("htpasswd {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Checks Basic credentials against the current htpasswd set.
pub struct Authenticator {
    path: PathBuf,
    credentials: ArcSwap<Credentials>,
    cache: CredentialCache,
    bcrypt_slots: Semaphore,
    dummy_hashes: Mutex<HashMap<u32, String>>,
    guard: Option<guard::Guard>,
}

impl Authenticator {
    /// Loads the file (creating it with one random `admin` user when it does not exist).
    pub fn open(
        config: &AuthConfig,
        guard: Option<&GuardConfig>,
    ) -> Result<Authenticator, AuthError> {
        let io = |source| AuthError::Io {
            path: config.htpasswd.clone(),
            source,
        };
        if !config.htpasswd.exists() && std::fs::symlink_metadata(&config.htpasswd).is_err() {
            create_default(&config.htpasswd).map_err(io)?;
        }
        let parsed = htpasswd::load(&config.htpasswd).map_err(io)?;
        log_warnings(&config.htpasswd, &parsed.warnings);
        tracing::info!(
            file = %config.htpasswd.display(),
            users = parsed.credentials.len(),
            "htpasswd loaded"
        );
        let m = crate::metrics::metrics();
        m.htpasswd_users.set(parsed.credentials.len() as i64);
        m.htpasswd_last_reload.set(watch::unix_now());
        Ok(Authenticator {
            path: config.htpasswd.clone(),
            credentials: ArcSwap::from_pointee(parsed.credentials),
            cache: CredentialCache::new(config.cache_ttl, config.cache_capacity),
            bcrypt_slots: Semaphore::new(config.bcrypt_concurrency),
            dummy_hashes: Mutex::new(HashMap::new()),
            guard: guard.map(guard::Guard::new),
        })
    }

    /// The htpasswd file this authenticator reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many users are loaded.
    pub fn users(&self) -> usize {
        self.credentials.load().len()
    }

    /// Replaces the credential set (the cache needs no flush: its keys include the stored hash).
    pub fn replace(&self, credentials: Credentials) {
        self.credentials.store(Arc::new(credentials));
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
        if let (Some(guard), Some(ip)) = (&self.guard, client) {
            if let Some(wait) = guard.retry_after(ip) {
                crate::metrics::metrics().guard_throttled.inc();
                return Outcome::Throttled {
                    retry_after: wait.as_secs().max(1),
                };
            }
        }
        let outcome = self.verify_uncached(parsed, &credentials).await;
        if !matches!(outcome, Outcome::Ok { .. }) {
            if let (Some(guard), Some(ip)) = (&self.guard, client) {
                guard.record_failure(ip);
            }
        }
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
        let Some(hash) = credentials.hash_of(&user) else {
            // Spend what a real verification would, so unknown names are not told apart by timing.
            let dummy = self.dummy_hash(credentials.typical_cost()).await;
            self.verify(password, dummy).await;
            return Outcome::UnknownUser;
        };
        let hash = hash.to_string();
        if self.verify(password.clone(), hash.clone()).await {
            self.cache.insert(&user, &password, &hash);
            Outcome::Ok {
                principal: Principal { user },
                cached: false,
            }
        } else {
            Outcome::BadPassword
        }
    }

    async fn verify(&self, password: Vec<u8>, hash: String) -> bool {
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
    }

    async fn dummy_hash(&self, cost: u32) -> String {
        if let Some(h) = self.dummy_hashes.lock().expect("dummy lock").get(&cost) {
            return h.clone();
        }
        let h = tokio::task::spawn_blocking(move || {
            bcrypt::hash(rand::random::<[u8; 16]>(), cost.clamp(4, 31)).unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        self.dummy_hashes
            .lock()
            .expect("dummy lock")
            .insert(cost, h.clone());
        h
    }
}

/// Whether the header is `Basic` with an empty user and password (`Og==`), which skopeo `--no-creds` and
/// other anonymous clients send after a challenge: such a request is anonymous, not a failed login.
pub fn is_empty_basic(header: &HeaderValue) -> bool {
    let b = header.as_bytes();
    b.len() >= 6
        && b[..6].eq_ignore_ascii_case(b"basic ")
        && base64::engine::general_purpose::STANDARD
            .decode(b[6..].trim_ascii())
            .is_ok_and(|d| d == b":")
}

/// Decodes `Basic base64(user:password)`.
fn parse_basic(header: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let bytes = header.as_bytes();
    if bytes.len() > MAX_AUTH_HEADER || bytes.len() < 6 {
        return None;
    }
    if !bytes[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let token = std::str::from_utf8(&bytes[6..]).ok()?.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    if user.is_empty() {
        return None;
    }
    Some((user, decoded[colon + 1..].to_vec()))
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

    fn basic(s: &str) -> HeaderValue {
        let t = base64::engine::general_purpose::STANDARD.encode(s);
        HeaderValue::from_str(&format!("Basic {t}")).unwrap()
    }

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
            Outcome::BadPassword
        );
        assert_eq!(
            a.authenticate(Some(&basic("bob:pw")), None).await,
            Outcome::UnknownUser
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
            Outcome::UnknownUser
        );
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
                Outcome::BadPassword
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
            Outcome::BadPassword
        );
    }

    #[test]
    fn empty_basic_is_anonymous() {
        assert!(is_empty_basic(&HeaderValue::from_static("Basic Og==")));
        assert!(is_empty_basic(&HeaderValue::from_static("basic  Og==")));
        assert!(!is_empty_basic(&basic("a:")));
        assert!(!is_empty_basic(&basic(":b")));
        assert!(!is_empty_basic(&HeaderValue::from_static("Bearer Og==")));
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
