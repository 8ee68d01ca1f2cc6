//! Configuration: a TOML file (see `config/gatehouse.toml`) plus environment overrides, validated once into
//! [`Config`]. Errors name the key (or variable) and the problem.

pub mod env;
pub mod schema;

use http::{HeaderName, HeaderValue};
use schema::FileConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, naming where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the line and key).
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {var}: {problem}")]
    Env {
        /// The variable.
        var: String,
        /// Why.
        problem: String,
    },
    /// A key has a bad value.
    #[error("config key {key}: {problem}")]
    Invalid {
        /// The dotted key, such as `upstream.url`.
        key: &'static str,
        /// Why.
        problem: String,
    },
}

/// How clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// No authentication: everyone may do everything (for a registry on a private network only).
    None,
    /// Basic auth against an htpasswd file of bcrypt hashes.
    Htpasswd,
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

/// Validated storage settings of the embedded backend.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The root directory.
    pub root: PathBuf,
    /// Whether deletes are allowed.
    pub delete_enabled: bool,
}

/// Validated upstream settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The URL as configured (for messages).
    pub url: String,
    /// `host:port` to connect to.
    pub address: String,
    /// Whether to speak TLS.
    pub tls: bool,
    /// The host name (SNI and `Host`).
    pub host: String,
    /// A ready `Authorization` header for the upstream, when credentials are configured.
    pub authorization: Option<HeaderValue>,
    /// TCP (+TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Read/write stall timeout.
    pub io_timeout: Duration,
    /// Whether to verify the upstream certificate.
    pub tls_verify: bool,
}

/// Where requests are answered.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The in-process registry.
    Embedded,
    /// Another v2 registry.
    Upstream(UpstreamConfig),
}

/// The validated configuration gatehouse runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The listen address.
    pub listen: SocketAddr,
    /// Worker threads.
    pub threads: usize,
    /// Shutdown grace period.
    pub grace_period_seconds: u64,
    /// Connection and transfer timeouts of the main listener.
    pub timeouts: crate::timeouts::Timeouts,
    /// Authentication.
    pub auth: AuthConfig,
    /// CORS.
    pub cors: CorsConfig,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Storage of the embedded backend.
    pub storage: StorageSettings,
    /// The backend.
    pub backend: Backend,
    /// The metrics/health listener, when enabled.
    pub metrics: Option<MetricsConfig>,
    /// Logging.
    pub log: LogConfig,
    /// Access rules.
    pub policy: crate::authz::Policy,
    /// The brute-force guard, when enabled.
    pub guard: Option<GuardConfig>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::net::Cidr>,
    /// Things the user should hear about (deprecated spellings, odd values).
    pub warnings: Vec<String>,
}

/// Validated metrics listener settings.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// The listen address.
    pub listen: SocketAddr,
    /// `(user, password)` required for `/metrics`, when set.
    pub basic_auth: Option<(String, String)>,
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

/// Validated logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// JSON lines instead of text.
    pub json: bool,
    /// One line per request.
    pub access_log: bool,
}

/// Loads the file (when given) and the process environment into a merged schema, plus warnings.
pub fn load_schema(path: Option<&Path>) -> Result<(FileConfig, Vec<String>), ConfigError> {
    let mut file = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        }
        None => FileConfig::default(),
    };
    let warnings = env::apply(&mut file, std::env::vars())?;
    Ok((file, warnings))
}

/// Loads and validates the configuration.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let (file, warnings) = load_schema(path)?;
    let mut config = validate(file)?;
    config.warnings.splice(0..0, warnings);
    Ok(config)
}

/// The merged schema as TOML, with secrets elided, for `check-config`.
pub fn render(file: &FileConfig) -> String {
    let mut shown = file.clone();
    for secret in [&mut shown.upstream.password, &mut shown.metrics.password] {
        if !secret.is_empty() {
            *secret = "<elided>".into();
        }
    }
    toml::to_string_pretty(&shown).expect("config renders as TOML")
}

/// Validates a merged schema.
pub fn validate(file: FileConfig) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let listen = parse_listen(&file.server.listen).map_err(|problem| ConfigError::Invalid {
        key: "server.listen",
        problem,
    })?;
    if file.server.threads == 0 {
        return Err(invalid("server.threads", "must be at least 1"));
    }
    let mode = match file.auth.mode.to_ascii_lowercase().as_str() {
        "htpasswd" => AuthMode::Htpasswd,
        "none" | "" => AuthMode::None,
        other => {
            return Err(invalid(
                "auth.mode",
                format!("`{other}` is not supported (use htpasswd or none)"),
            ))
        }
    };
    if mode == AuthMode::Htpasswd && file.auth.htpasswd.is_empty() {
        return Err(invalid(
            "auth.htpasswd",
            "is empty but auth.mode is htpasswd",
        ));
    }
    if file.auth.realm.contains('"') || file.auth.realm.chars().any(char::is_control) {
        return Err(invalid(
            "auth.realm",
            "must not contain quotes or control characters",
        ));
    }
    if file.auth.bcrypt_concurrency == 0 {
        return Err(invalid("auth.bcrypt_concurrency", "must be at least 1"));
    }
    for origin in &file.cors.allow_origins {
        if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
            return Err(invalid(
                "cors.allow_origins",
                format!("`{origin}` is not an origin like https://ui.example.com or *"),
            ));
        }
        if origin.ends_with('/') {
            return Err(invalid(
                "cors.allow_origins",
                format!("`{origin}` ends with `/`; browsers send origins without a path"),
            ));
        }
    }
    if file.cors.allow_origins.iter().any(|o| o == "*") && file.cors.allow_credentials {
        warnings.push(
            "cors: allow_origins has `*` with allow_credentials: the requesting origin is echoed, \
             so any web page may call the registry with a user's credentials"
                .to_string(),
        );
    }
    let mut headers = Vec::new();
    for (name, values) in &file.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("headers", format!("`{name}` is not a header name")))?;
        for v in values {
            let value = HeaderValue::from_str(v)
                .map_err(|_| invalid("headers", format!("{name}: `{v}` is not a header value")))?;
            headers.push((header.clone(), value));
        }
    }
    let backend = if file.upstream.url.is_empty() {
        Backend::Embedded
    } else {
        Backend::Upstream(parse_upstream(&file.upstream)?)
    };
    let metrics = if file.metrics.listen.is_empty() {
        None
    } else {
        let listen =
            parse_listen(&file.metrics.listen).map_err(|problem| ConfigError::Invalid {
                key: "metrics.listen",
                problem,
            })?;
        let main = parse_listen(&file.server.listen).unwrap_or(listen);
        let overlaps =
            listen.ip() == main.ip() || listen.ip().is_unspecified() || main.ip().is_unspecified();
        if overlaps && listen.port() == main.port() && listen.port() != 0 {
            return Err(invalid("metrics.listen", "must differ from server.listen"));
        }
        let basic_auth = match (
            file.metrics.username.is_empty(),
            file.metrics.password.is_empty(),
        ) {
            (true, true) => None,
            (false, false) => Some((file.metrics.username.clone(), file.metrics.password.clone())),
            _ => {
                return Err(invalid(
                    "metrics.username",
                    "username and password go together",
                ))
            }
        };
        Some(MetricsConfig { listen, basic_auth })
    };
    let json = match file.log.format.as_str() {
        "text" | "" => false,
        "json" => true,
        other => {
            return Err(invalid(
                "log.format",
                format!("`{other}` is not text or json"),
            ))
        }
    };
    let policy = parse_access(&file.access)?;
    let guard = if file.guard.enabled {
        if file.guard.failures_burst == 0 || file.guard.failures_per_minute == 0 {
            return Err(invalid(
                "guard.failures_burst",
                "burst and per-minute must be at least 1",
            ));
        }
        Some(GuardConfig {
            burst: file.guard.failures_burst,
            per_minute: file.guard.failures_per_minute,
            max_tracked: file.guard.max_tracked.max(16),
        })
    } else {
        None
    };
    let trusted_proxies = file
        .server
        .trusted_proxies
        .iter()
        .map(|c| {
            c.parse::<crate::net::Cidr>()
                .map_err(|e| invalid("server.trusted_proxies", format!("`{c}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if file.storage.root.is_empty() {
        return Err(invalid("storage.root", "is empty"));
    }
    Ok(Config {
        listen,
        threads: file.server.threads,
        grace_period_seconds: file.server.grace_period_seconds,
        timeouts: crate::timeouts::Timeouts::from_seconds(
            file.server.idle_timeout_seconds,
            file.server.header_timeout_seconds,
            file.server.body_timeout_seconds,
            file.server.send_timeout_seconds,
        )
        .map_err(|(key, problem)| ConfigError::Invalid { key, problem })?,
        auth: AuthConfig {
            mode,
            realm: file.auth.realm,
            htpasswd: PathBuf::from(file.auth.htpasswd),
            bcrypt_concurrency: file.auth.bcrypt_concurrency,
            cache_ttl: Duration::from_secs(file.auth.cache_ttl_seconds),
            cache_capacity: file.auth.cache_capacity,
        },
        cors: CorsConfig {
            allow_origins: file.cors.allow_origins,
            allow_methods: file.cors.allow_methods,
            allow_headers: file.cors.allow_headers,
            expose_headers: file.cors.expose_headers,
            allow_credentials: file.cors.allow_credentials,
            max_age_seconds: file.cors.max_age_seconds,
        },
        headers,
        storage: StorageSettings {
            root: PathBuf::from(file.storage.root),
            delete_enabled: file.storage.delete_enabled,
        },
        backend,
        metrics,
        policy,
        guard,
        trusted_proxies,
        log: LogConfig {
            json,
            access_log: file.log.access_log,
        },
        warnings,
    })
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

fn parse_access(a: &schema::AccessSection) -> Result<crate::authz::Policy, ConfigError> {
    use crate::route::Action;
    let mut rules = Vec::new();
    for (i, r) in a.rules.iter().enumerate() {
        let n = i + 1;
        if r.repositories.is_empty() || r.principals.is_empty() || r.actions.is_empty() {
            return Err(invalid(
                "access.rules",
                format!("rule {n} needs repositories, principals and actions"),
            ));
        }
        let mut actions = Vec::new();
        for act in &r.actions {
            let granted: &[Action] = match act.as_str() {
                "pull" => &[Action::Pull],
                "push" => &[Action::Push],
                "delete" => &[Action::Delete],
                "*" => &[Action::Pull, Action::Push, Action::Delete],
                other => {
                    return Err(invalid(
                        "access.rules",
                        format!("rule {n}: action `{other}` is not pull, push, delete or *"),
                    ))
                }
            };
            actions.extend_from_slice(granted);
        }
        for who in &r.principals {
            if let Some(g) = who.strip_prefix("group:") {
                if !a.groups.contains_key(g) {
                    return Err(invalid(
                        "access.rules",
                        format!("rule {n}: group `{g}` is not defined in [access.groups]"),
                    ));
                }
            }
        }
        rules.push(crate::authz::Rule {
            repositories: r.repositories.clone(),
            principals: r.principals.clone(),
            actions,
        });
    }
    Ok(crate::authz::Policy {
        groups: a.groups.clone(),
        rules,
        public_pull: a.public_pull.clone(),
    })
}

/// Parses `host:port` or distribution's `:port`.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .map_err(|_| format!("`{s}` is not an address like 0.0.0.0:5000 or :5000"))
}

fn parse_upstream(u: &schema::UpstreamSection) -> Result<UpstreamConfig, ConfigError> {
    let url = url::Url::parse(&u.url)
        .map_err(|e| invalid("upstream.url", format!("`{}`: {e}", u.url)))?;
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(invalid(
                "upstream.url",
                format!("scheme `{other}` is not http or https"),
            ))
        }
    };
    if url.path() != "/" && !url.path().is_empty() {
        return Err(invalid(
            "upstream.url",
            "must not have a path: the registry API lives at /v2/ of the upstream",
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| invalid("upstream.url", "has no host"))?
        .to_string();
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let authorization = if u.username.is_empty() {
        None
    } else {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", u.username, u.password));
        let mut v = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| invalid("upstream.username", "not usable in a header"))?;
        v.set_sensitive(true);
        Some(v)
    };
    let bracketed = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Ok(UpstreamConfig {
        url: u.url.clone(),
        address: format!("{bracketed}:{port}"),
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        authorization,
        connect_timeout: Duration::from_secs(u.connect_timeout_seconds.max(1)),
        io_timeout: Duration::from_secs(u.io_timeout_seconds.max(1)),
        tls_verify: u.tls_verify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        validate(toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "test.toml".into(),
            message: e.to_string(),
        })?)
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        let c = parse("").unwrap();
        assert!(matches!(c.backend, Backend::Embedded));
        assert_eq!(c.auth.mode, AuthMode::Htpasswd);
        assert_eq!(c.listen.port(), 5000);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[auth]\nmode = \"token\"", "auth.mode"),
            ("[upstream]\nurl = \"ftp://x\"", "upstream.url"),
            ("[upstream]\nurl = \"http://x/sub\"", "upstream.url"),
            (
                "[cors]\nallow_origins = [\"ui.example\"]",
                "cors.allow_origins",
            ),
            ("[headers]\n\"Bad Name\" = [\"x\"]", "headers"),
            ("[server]\nthreads = 0", "server.threads"),
            ("[server]\nlisen = \"x\"", "lisen"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?}: {err}");
        }
    }

    #[test]
    fn upstream_url_forms() {
        let c =
            parse("[upstream]\nurl = \"https://reg.example\"\nusername = \"u\"\npassword = \"p\"")
                .unwrap();
        let Backend::Upstream(u) = c.backend else {
            panic!("not upstream")
        };
        assert_eq!(u.address, "reg.example:443");
        assert!(u.tls);
        assert_eq!(u.authorization.unwrap(), "Basic dTpw");
        let c = parse("[upstream]\nurl = \"http://127.0.0.1:5001/\"").unwrap();
        let Backend::Upstream(u) = c.backend else {
            panic!("not upstream")
        };
        assert_eq!(u.address, "127.0.0.1:5001");
    }

    #[test]
    fn render_elides_the_upstream_password() {
        let mut f = FileConfig::default();
        f.upstream.password = "hunter2".into();
        let text = render(&f);
        assert!(!text.contains("hunter2"));
        assert!(text.contains("<elided>"));
    }

    #[test]
    fn distribution_style_listen() {
        assert_eq!(parse_listen(":5000").unwrap().to_string(), "0.0.0.0:5000");
        assert!(parse_listen("5000").is_err());
    }
}
