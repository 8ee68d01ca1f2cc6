//! Configuration: a TOML file (see `config/gatehouse.toml`) plus environment overrides, validated once into
//! [`Config`]. Errors name the key, or the environment variable when the value came from one.
//!
//! config parses ([`schema`]), overlays the environment ([`mod@env`]) and validates section by section, calling
//! into the settings type each module owns: [`crate::auth::AuthConfig`] and [`crate::auth::GuardConfig`],
//! [`crate::cors::CorsConfig`], [`crate::upstream::UpstreamConfig`], [`crate::authz::Policy`] and
//! [`crate::storage::StorageConfig`]. Those modules never import config.

mod access;
#[cfg(test)]
mod deploy_check;
pub mod env;
pub mod foreign;
pub mod listen;
pub mod schema;
pub mod values;

use crate::auth::{AuthConfig, AuthMode, GuardConfig};
use crate::cors::CorsConfig;
use crate::settings::Invalid;
use crate::storage::StorageConfig;
use crate::upstream::settings::{redact_url, UpstreamInput};
use crate::upstream::UpstreamConfig;
use http::{HeaderName, HeaderValue};
use listen::parse_listen;
use schema::FileConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A warning when the upgrade socket sits in a directory other users may write (such as /tmp): on SIGQUIT the
/// running process connects to that path and hands its listening sockets to whoever listens there.
fn upgrade_socket_warning(socket: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = socket.parent().filter(|d| !d.as_os_str().is_empty())?;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode();
    (mode & 0o002 != 0).then(|| {
        format!(
            "server.upgrade_socket {} is in a directory any local user may write ({}): on SIGQUIT gatehouse \
             hands its listening sockets to whoever listens on that path; use a private directory such as \
             /run/gatehouse",
            socket.display(),
            dir.display()
        )
    })
}

/// The log target of messages that are shown whatever the log filter says (such as the one-time password
/// of a generated htpasswd file): the logging set-up always lets it through.
pub const NOTICE_TARGET: &str = "gatehouse::notice";

/// A configuration problem, naming where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (shown in the message, so it is not also a `source`: that would print it twice).
        error: std::io::Error,
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
        key: String,
        /// Why.
        problem: String,
    },
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
    /// The listen address (a host name is resolved when the config is validated).
    pub listen: SocketAddr,
    /// Worker threads.
    pub threads: usize,
    /// Shutdown grace period.
    pub grace_period_seconds: u64,
    /// Where `serve --upgrade` receives the listeners from the running process.
    pub upgrade_socket: PathBuf,
    /// Connection and transfer timeouts of the main listener.
    pub timeouts: crate::timeouts::Timeouts,
    /// Connections one client address may hold open on the main listener (0: no cap).
    pub max_connections_per_client: u32,
    /// Authentication.
    pub auth: AuthConfig,
    /// CORS.
    pub cors: CorsConfig,
    /// Extra response headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Storage of the embedded backend.
    pub storage: StorageConfig,
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
    /// TLS on the main listener, when configured.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Garbage collection.
    pub gc: crate::gc::settings::GcSettings,
    /// The built-in web UI.
    pub ui: crate::ui::UiConfig,
    /// Automatic certificates for the main listener, when configured (instead of files).
    pub acme: Option<crate::acme::AcmeConfig>,
    /// The plain-HTTP listener (ACME HTTP-01, redirects to https), when configured.
    pub plain_http: Option<crate::tls::settings::PlainHttpConfig>,
    /// Things the user should hear about (ignored variables, deprecated spellings, risky values).
    pub warnings: Vec<String>,
}

/// Validated metrics listener settings.
#[derive(Clone)]
pub struct MetricsConfig {
    /// The listen address.
    pub listen: SocketAddr,
    /// `(user, password)` required for `/metrics`, when set.
    pub basic_auth: Option<(String, String)>,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("listen", &self.listen)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(user, _)| (user, "<elided>")),
            )
            .finish()
    }
}

/// Validated logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The level filter (`info`, `warn,gatehouse=debug`), checked to be one.
    pub filter: String,
    /// JSON lines instead of text.
    pub json: bool,
    /// One line per request.
    pub access_log: bool,
}

/// The file and the environment merged, before validation.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The merged schema.
    pub file: FileConfig,
    /// What the environment did: warnings, and which keys it set.
    pub env: env::Applied,
}

/// Loads the file (when given) and the process environment into a merged schema.
pub fn load_schema(path: Option<&Path>) -> Result<Loaded, ConfigError> {
    let mut file = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.to_path_buf(),
                error,
            })?;
            toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        }
        None => FileConfig::default(),
    };
    let env = env::apply(&mut file, std::env::vars())?;
    Ok(Loaded { file, env })
}

/// Loads and validates the configuration.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    validate_loaded(load_schema(path)?)
}

/// Validates a merged schema; an error about a key the environment set names the variable, and the
/// environment's warnings come first.
pub fn validate_loaded(loaded: Loaded) -> Result<Config, ConfigError> {
    let sources = loaded.env.sources;
    let mut config = validate(loaded.file).map_err(|e| match e {
        ConfigError::Invalid { key, problem } => match sources.var_of(&key) {
            Some(var) => ConfigError::Env {
                var: var.to_string(),
                problem: format!("{problem} (it sets {key})"),
            },
            None => ConfigError::Invalid { key, problem },
        },
        other => other,
    })?;
    config.warnings.splice(0..0, loaded.env.warnings);
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
    shown.upstream.url = redact_url(&shown.upstream.url);
    toml::to_string_pretty(&shown).expect("config renders as TOML")
}

/// Why `filter` is not a log filter gatehouse accepts, if it is not. Bare words must be levels (`trace`,
/// `debug`, `info`, `warn`, `error`, `off`): tracing would read `verbose` as a target and silence the rest.
pub fn log_filter_problem(filter: &str) -> Option<String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let f = filter.trim();
    if f.is_empty() {
        return Some("is empty".to_string());
    }
    let is_level = |s: &str| LEVELS.contains(&s.trim().to_ascii_lowercase().as_str());
    for d in f.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match d.rsplit_once('=') {
            Some((_, level)) => level,
            None if d.contains('[') => continue,
            None => d,
        };
        if !is_level(level) {
            return Some(format!(
                "`{d}` is neither a level ({}) nor target=level",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(f)
        .err()
        .map(|e| format!("`{f}` is not a log filter: {e}"))
}

/// Validates a merged schema (errors name the config key).
pub fn validate(file: FileConfig) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let listen = parse_listen(&file.server.listen).map_err(|p| invalid("server.listen", p))?;
    if file.server.threads == 0 {
        return Err(invalid("server.threads", "must be at least 1"));
    }
    let a = &file.auth;
    let mode = AuthMode::parse(&a.mode).map_err(|e| section("auth", e))?;
    let auth = AuthConfig {
        mode,
        realm: a.realm.clone(),
        htpasswd: PathBuf::from(&a.htpasswd),
        bcrypt_concurrency: a.bcrypt_concurrency,
        cache_ttl: Duration::from_secs(a.cache_ttl_seconds),
        cache_capacity: a.cache_capacity,
    };
    auth.validate().map_err(|e| section("auth", e))?;
    if mode == AuthMode::None && !listen.ip().is_loopback() {
        warnings.push(format!(
            "auth.mode is none and server.listen {listen} is not a loopback address: anyone who can reach \
             it may pull, push and delete"
        ));
    }
    let c = &file.cors;
    let cors = CorsConfig {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        allow_credentials: c.allow_credentials,
        max_age_seconds: c.max_age_seconds,
    };
    warnings.extend(cors.validate().map_err(|e| section("cors", e))?);
    let headers = extra_headers(&file)?;
    let backend = if file.upstream.url.is_empty() {
        Backend::Embedded
    } else {
        let u = &file.upstream;
        Backend::Upstream(
            UpstreamConfig::new(UpstreamInput {
                url: &u.url,
                username: &u.username,
                password: &u.password,
                connect_timeout_seconds: u.connect_timeout_seconds,
                io_timeout_seconds: u.io_timeout_seconds,
                tls_verify: u.tls_verify,
            })
            .map_err(|e| section("upstream", e))?,
        )
    };
    let metrics = metrics(&file, listen)?;
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
    if let Some(problem) = log_filter_problem(&file.log.level) {
        return Err(invalid("log.level", problem));
    }
    let policy = access::policy(&file.access)?;
    let guard = if file.guard.enabled {
        let g = &file.guard;
        let guard = GuardConfig {
            burst: g.failures_burst,
            per_minute: g.failures_per_minute,
            max_tracked: g.max_tracked,
        };
        Some(guard.validate().map_err(|e| section("guard", e))?)
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
    let t = &file.tls;
    // With ACME and no files, the client CAs go to the ACME settings.
    let acme_cas =
        !t.acme.hosts.is_empty() && t.certificate.trim().is_empty() && t.key.trim().is_empty();
    let file_cas = if acme_cas { &[][..] } else { &t.client_cas[..] };
    let tls = crate::tls::TlsConfig::from_parts(&t.certificate, &t.key, file_cas)
        .map_err(|e| section("tls", e))?;
    let (mut gc, gc_warnings) =
        crate::gc::settings::validate(&file.gc).map_err(|e| section("gc", e))?;
    gc.retention =
        crate::gc::retention::parse(&file.retention).map_err(|e| ConfigError::Invalid {
            key: e.key,
            problem: e.problem,
        })?;
    warnings.extend(gc_warnings);
    let a = &t.acme;
    let acme = crate::acme::AcmeConfig::from_parts(
        &a.hosts,
        &a.cache,
        &a.email,
        &a.directory_url,
        &a.directory_ca,
    )
    .map_err(|e| section("tls.acme", e))?;
    if acme.is_some() && tls.is_some() {
        return Err(invalid(
            "tls.acme.hosts",
            "certificates come from files (tls.certificate, tls.key) or from ACME, not both",
        ));
    }
    let plain_http = plain_http(&file, listen, tls.is_some() || acme.is_some())?;
    let acme = acme
        .map(|a| a.challenge_for(plain_http.is_some(), &t.client_cas))
        .transpose()
        .map_err(|e| section("tls.acme", e))?;
    if mode == AuthMode::Htpasswd
        && tls.is_none()
        && acme.is_none()
        && !listen.ip().is_loopback()
        && trusted_proxies.is_empty()
        && !file.server.tls_in_front
    {
        warnings.push(format!(
            "server.listen {listen} is not a loopback address and speaks plain HTTP: passwords cross the \
             network in clear text; set tls.certificate and tls.key (or tls.acme), or list the TLS proxy in \
             front in server.trusted_proxies (or say server.tls_in_front = true)"
        ));
    }
    // StorageConfig has no validation of its own yet: an empty root is the one thing refused.
    if file.storage.root.is_empty() {
        return Err(invalid("storage.root", "is empty"));
    }
    if file.server.upgrade_socket.trim().is_empty() {
        return Err(invalid(
            "server.upgrade_socket",
            "is empty (a path such as /run/gatehouse/upgrade.sock)",
        ));
    }
    if let Some(w) = upgrade_socket_warning(Path::new(file.server.upgrade_socket.trim())) {
        warnings.push(w);
    }
    let s3 = file
        .storage
        .s3
        .as_ref()
        .map(|s| s.validate().map_err(|e| section("storage.s3", e)))
        .transpose()?;
    let ui = crate::ui::UiConfig {
        enabled: file.ui.enabled,
        prefix: file.ui.prefix.clone(),
        session_ttl: Duration::from_secs(file.ui.session_ttl_seconds),
        max_sessions: file.ui.max_sessions,
    };
    ui.validate().map_err(|e| section("ui", e))?;
    Ok(Config {
        listen,
        ui,
        threads: file.server.threads,
        grace_period_seconds: file.server.grace_period_seconds,
        upgrade_socket: PathBuf::from(&file.server.upgrade_socket),
        timeouts: crate::timeouts::Timeouts::from_seconds(
            file.server.idle_timeout_seconds,
            file.server.header_timeout_seconds,
            file.server.body_timeout_seconds,
            file.server.send_timeout_seconds,
        )
        .map_err(|(key, problem)| invalid(key, problem))?,
        max_connections_per_client: file.server.max_connections_per_client,
        auth,
        cors,
        headers,
        storage: StorageConfig {
            root: PathBuf::from(&file.storage.root),
            delete_enabled: file.storage.delete_enabled,
            s3,
        },
        backend,
        metrics,
        policy,
        guard,
        trusted_proxies,
        log: LogConfig {
            filter: file.log.level.trim().to_string(),
            json,
            access_log: file.log.access_log,
        },
        tls,
        gc,
        acme,
        plain_http,
        warnings,
    })
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

/// A module's [`Invalid`] under its section's name.
fn section(name: &str, e: Invalid) -> ConfigError {
    invalid(format!("{name}.{}", e.field), e.problem)
}

fn extra_headers(file: &FileConfig) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut headers = Vec::new();
    for (name, values) in &file.headers {
        let key = format!("headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(key.clone(), format!("`{name}` is not a header name")))?;
        for v in values {
            let value = HeaderValue::from_str(v)
                .map_err(|_| invalid(key.clone(), format!("`{v}` is not a header value")))?;
            headers.push((header.clone(), value));
        }
    }
    Ok(headers)
}

fn plain_http(
    file: &FileConfig,
    main: SocketAddr,
    tls: bool,
) -> Result<Option<crate::tls::settings::PlainHttpConfig>, ConfigError> {
    use crate::tls::plain::Target;
    let s = &file.server;
    let public = if s.public_url.trim().is_empty() {
        None
    } else {
        Some(
            crate::tls::settings::public_authority(&s.public_url)
                .map_err(|e| section("server", e))?,
        )
    };
    let webroot = s.acme_webroot.trim();
    if s.http_listen.trim().is_empty() {
        if !webroot.is_empty() {
            return Err(invalid(
                "server.acme_webroot",
                "is served by the plain-HTTP listener: set server.http_listen too",
            ));
        }
        return Ok(None);
    }
    let listen = parse_listen(&s.http_listen).map_err(|p| invalid("server.http_listen", p))?;
    if !tls {
        return Err(invalid(
            "server.http_listen",
            "redirects to https need TLS on the main listener (tls.certificate and tls.key, or tls.acme)",
        ));
    }
    let overlaps =
        listen.ip() == main.ip() || listen.ip().is_unspecified() || main.ip().is_unspecified();
    if overlaps && listen.port() == main.port() && listen.port() != 0 {
        return Err(invalid(
            "server.http_listen",
            "must differ from server.listen",
        ));
    }
    let target = match public {
        Some(authority) => Target::Public(authority),
        None => Target::RequestHost(main.port()),
    };
    Ok(Some(crate::tls::settings::PlainHttpConfig {
        listen,
        target,
        webroot: (!webroot.is_empty()).then(|| PathBuf::from(webroot)),
    }))
}

fn metrics(file: &FileConfig, main: SocketAddr) -> Result<Option<MetricsConfig>, ConfigError> {
    let m = &file.metrics;
    if m.listen.is_empty() {
        return Ok(None);
    }
    let listen = parse_listen(&m.listen).map_err(|p| invalid("metrics.listen", p))?;
    let overlaps =
        listen.ip() == main.ip() || listen.ip().is_unspecified() || main.ip().is_unspecified();
    if overlaps && listen.port() == main.port() && listen.port() != 0 {
        return Err(invalid("metrics.listen", "must differ from server.listen"));
    }
    let basic_auth = match (m.username.is_empty(), m.password.is_empty()) {
        (true, true) => None,
        (false, false) => Some((m.username.clone(), m.password.clone())),
        _ => {
            return Err(invalid(
                "metrics.username",
                "username and password go together",
            ))
        }
    };
    Ok(Some(MetricsConfig { listen, basic_auth }))
}

#[cfg(test)]
mod tests;
