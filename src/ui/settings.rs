//! The web UI's settings: whether it is served, under which path prefix, and how long a login lasts.
//! `config` fills [`UiConfig`] from `[ui]` and `GATEHOUSE_UI*`, and [`UiConfig::validate`] names what is wrong.

use crate::settings::Invalid;
use std::time::Duration;

/// Validated UI settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiConfig {
    /// Whether the UI is served at all (`GATEHOUSE_UI=false` turns it off).
    pub enabled: bool,
    /// The path it is served under: starts and ends with `/` (`/` by default, or `/ui/`).
    pub prefix: String,
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// The most sessions held at once (the oldest goes first).
    pub max_sessions: usize,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            enabled: true,
            prefix: "/".into(),
            session_ttl: Duration::from_secs(8 * 3600),
            max_sessions: 10_000,
        }
    }
}

impl UiConfig {
    /// Checks the prefix (a plain path that cannot shadow `/v2/`) and the session limits.
    pub fn validate(&self) -> Result<(), Invalid> {
        let p = &self.prefix;
        if !p.starts_with('/') || !p.ends_with('/') {
            return Err(Invalid::new(
                "prefix",
                format!("`{p}` must start and end with `/` (such as `/` or `/ui/`)"),
            ));
        }
        if p.contains("//") {
            return Err(Invalid::new(
                "prefix",
                format!("`{p}` has an empty segment"),
            ));
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~');
        if !p.chars().all(plain) {
            return Err(Invalid::new(
                "prefix",
                format!("`{p}` may hold only letters, digits, `-`, `_`, `.`, `~` and `/`"),
            ));
        }
        if p.split('/').any(|s| s == "." || s == "..") {
            return Err(Invalid::new(
                "prefix",
                format!("`{p}` has a `.` or `..` segment"),
            ));
        }
        if p.starts_with("/v2/") {
            return Err(Invalid::new(
                "prefix",
                format!("`{p}` would shadow the registry API under /v2/"),
            ));
        }
        if self.session_ttl.is_zero() {
            return Err(Invalid::new("session_ttl_seconds", "must be at least 1"));
        }
        if self.max_sessions == 0 {
            return Err(Invalid::new("max_sessions", "must be at least 1"));
        }
        Ok(())
    }

    /// The prefix's first segment (`""` for `/`, `"ui"` for `/ui/` and `/ui/x/`), where admission branches.
    pub fn first_segment(&self) -> &str {
        self.prefix[1..].split('/').next().unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        for (prefix, ok) in [
            ("/", true),
            ("/ui/", true),
            ("/a/b-c_d.e~/", true),
            ("", false),
            ("ui/", false),
            ("/ui", false),
            ("//", false),
            ("/a//b/", false),
            ("/v2/", false),
            ("/v2/ui/", false),
            ("/v2x/", true),
            ("/../", false),
            ("/./", false),
            ("/ü/", false),
            ("/a b/", false),
            ("/a?b/", false),
            ("/a%2f/", false),
        ] {
            let c = UiConfig {
                prefix: prefix.into(),
                ..UiConfig::default()
            };
            assert_eq!(c.validate().is_ok(), ok, "{prefix:?}: {:?}", c.validate());
        }
    }

    #[test]
    fn zero_limits_are_refused() {
        let ttl = UiConfig {
            session_ttl: Duration::ZERO,
            ..UiConfig::default()
        };
        assert_eq!(ttl.validate().unwrap_err().field, "session_ttl_seconds");
        let max = UiConfig {
            max_sessions: 0,
            ..UiConfig::default()
        };
        assert_eq!(max.validate().unwrap_err().field, "max_sessions");
    }

    #[test]
    fn first_segments() {
        for (prefix, want) in [("/", ""), ("/ui/", "ui"), ("/a/b/", "a")] {
            let c = UiConfig {
                prefix: prefix.into(),
                ..UiConfig::default()
            };
            assert_eq!(c.first_segment(), want);
        }
    }
}
