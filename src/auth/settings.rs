//! The validated settings of authentication and of the brute-force guard. `config` fills them from the
//! `[auth]` and `[guard]` sections (and the environment) and calls [`AuthConfig::validate`] and
//! [`GuardConfig::validate`]; auth itself never reads the config schema.

use crate::settings::Invalid;
use std::path::PathBuf;
use std::time::Duration;

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// No authentication: everyone may do everything (for a registry on a private network only).
    None,
    /// Basic auth against an htpasswd file of bcrypt hashes.
    Htpasswd,
}

impl AuthMode {
    /// Parses `htpasswd` or `none` (any case). Empty is refused: auth is off only when `none` is said.
    pub fn parse(value: &str) -> Result<AuthMode, Invalid> {
        match value.trim().to_ascii_lowercase().as_str() {
            "htpasswd" => Ok(AuthMode::Htpasswd),
            "none" => Ok(AuthMode::None),
            "" => Err(Invalid::new(
                "mode",
                "is empty: use htpasswd, or none to turn authentication off",
            )),
            other => Err(Invalid::new(
                "mode",
                format!("`{other}` is not supported (use htpasswd or none)"),
            )),
        }
    }
}

/// Validated auth settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The mode.
    pub mode: AuthMode,
    /// The realm in the challenge.
    pub realm: String,
    /// The htpasswd file.
    pub htpasswd: PathBuf,
    /// Concurrent bcrypt verifications.
    pub bcrypt_concurrency: usize,
    /// How long a verified credential stays cached (zero: no cache).
    pub cache_ttl: Duration,
    /// The most verified credentials kept.
    pub cache_capacity: usize,
}

impl AuthConfig {
    /// Checks the values that would make a broken challenge or an unusable authenticator.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.mode == AuthMode::Htpasswd && self.htpasswd.as_os_str().is_empty() {
            return Err(Invalid::new(
                "htpasswd",
                "is empty but the mode is htpasswd",
            ));
        }
        if self.realm.contains('"') || self.realm.chars().any(char::is_control) {
            return Err(Invalid::new(
                "realm",
                "must not contain quotes or control characters",
            ));
        }
        if self.bcrypt_concurrency == 0 {
            return Err(Invalid::new("bcrypt_concurrency", "must be at least 1"));
        }
        Ok(())
    }
}

/// Validated brute-force guard settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// Failures earned back per minute.
    pub per_minute: u32,
    /// Addresses tracked at most.
    pub max_tracked: usize,
}

impl GuardConfig {
    /// The fewest addresses the guard tracks, whatever is configured.
    pub const MIN_TRACKED: usize = 16;

    /// Checks the limits; a table smaller than [`GuardConfig::MIN_TRACKED`] is raised to it, not refused.
    pub fn validate(mut self) -> Result<GuardConfig, Invalid> {
        if self.burst == 0 || self.per_minute == 0 {
            return Err(Invalid::new(
                "failures_burst",
                "burst and per-minute must be at least 1",
            ));
        }
        self.max_tracked = self.max_tracked.max(Self::MIN_TRACKED);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_auth_mode_is_refused_not_none() {
        for (value, want) in [
            ("htpasswd", Ok(AuthMode::Htpasswd)),
            ("HTPASSWD", Ok(AuthMode::Htpasswd)),
            ("none", Ok(AuthMode::None)),
            (" None ", Ok(AuthMode::None)),
            ("", Err("is empty")),
            ("   ", Err("is empty")),
            ("token", Err("not supported")),
            ("nonee", Err("not supported")),
        ] {
            match (AuthMode::parse(value), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{value:?}"),
                (Err(e), Err(text)) => {
                    assert_eq!(e.field, "mode");
                    assert!(e.problem.contains(text), "{value:?}: {e}");
                }
                (got, want) => panic!("{value:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn auth_validate_names_the_field() {
        let good = AuthConfig {
            mode: AuthMode::Htpasswd,
            realm: "Registry Realm".into(),
            htpasswd: "./htpasswd".into(),
            bcrypt_concurrency: 2,
            cache_ttl: Duration::from_secs(1),
            cache_capacity: 1,
        };
        assert_eq!(good.validate(), Ok(()));
        type Spoil = fn(&mut AuthConfig);
        let cases: [(Spoil, &str); 4] = [
            (|c| c.htpasswd = PathBuf::new(), "htpasswd"),
            (|c| c.realm = "a\"b".into(), "realm"),
            (|c| c.realm = "a\nb".into(), "realm"),
            (|c| c.bcrypt_concurrency = 0, "bcrypt_concurrency"),
        ];
        for (spoil, field) in cases {
            let mut c = good.clone();
            spoil(&mut c);
            assert_eq!(c.validate().unwrap_err().field, field);
        }
        let mut open = good.clone();
        open.mode = AuthMode::None;
        open.htpasswd = PathBuf::new();
        assert_eq!(open.validate(), Ok(()), "no file is needed without auth");
    }

    #[test]
    fn guard_limits() {
        let g = GuardConfig {
            burst: 1,
            per_minute: 1,
            max_tracked: 0,
        };
        assert_eq!(g.validate().unwrap().max_tracked, GuardConfig::MIN_TRACKED);
        for (burst, per_minute) in [(0, 1), (1, 0)] {
            let g = GuardConfig {
                burst,
                per_minute,
                max_tracked: 100,
            };
            assert_eq!(g.validate().unwrap_err().field, "failures_burst");
        }
    }
}
