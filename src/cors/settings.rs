//! The validated CORS settings. `config` fills [`CorsConfig`] from `[cors]` (and distribution's
//! `REGISTRY_HTTP_HEADERS_Access-Control-*` variables) and calls [`CorsConfig::validate`].

use crate::settings::Invalid;

/// Validated CORS settings.
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// Allowed origins, exactly as browsers send them (`*` allows any).
    pub allow_origins: Vec<String>,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: Vec<String>,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: Vec<String>,
    /// `Access-Control-Expose-Headers`.
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age`.
    pub max_age_seconds: u64,
}

impl CorsConfig {
    /// Checks every origin (a browser sends `scheme://host[:port]`, never a path); returns warnings for
    /// settings that work but are risky.
    pub fn validate(&self) -> Result<Vec<String>, Invalid> {
        for origin in &self.allow_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(Invalid::new(
                    "allow_origins",
                    format!("`{origin}` is not an origin like https://ui.example.com or *"),
                ));
            }
            if origin.ends_with('/') {
                return Err(Invalid::new(
                    "allow_origins",
                    format!("`{origin}` ends with `/`; browsers send origins without a path"),
                ));
            }
        }
        let mut warnings = Vec::new();
        if self.allow_origins.iter().any(|o| o == "*") && self.allow_credentials {
            warnings.push(
                "cors: allow_origins has `*` with allow_credentials: the requesting origin is echoed, \
                 so any web page may call the registry with a user's credentials"
                    .to_string(),
            );
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_origins(origins: &[&str], credentials: bool) -> CorsConfig {
        CorsConfig {
            allow_origins: origins.iter().map(|s| s.to_string()).collect(),
            allow_credentials: credentials,
            ..CorsConfig::default()
        }
    }

    #[test]
    fn origins_are_scheme_host_port_or_star() {
        for ok in ["http://ui.example", "https://ui.example:8443", "*"] {
            assert!(with_origins(&[ok], false).validate().is_ok(), "{ok}");
        }
        for bad in ["ui.example", "https://ui.example/", "ftp://x", ""] {
            let e = with_origins(&[bad], false).validate().unwrap_err();
            assert_eq!(e.field, "allow_origins", "{bad}");
        }
    }

    #[test]
    fn star_with_credentials_warns() {
        assert_eq!(with_origins(&["*"], true).validate().unwrap().len(), 1);
        assert!(with_origins(&["*"], false).validate().unwrap().is_empty());
    }
}
