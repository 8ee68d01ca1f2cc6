//! The serde-facing configuration schema: what a user writes in `gatehouse.toml`.
//!
//! Every field has a default, so an empty file is a valid file. Environment overrides are applied to this
//! schema (see [`super::env`]) before it is validated into [`super::Config`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// The main listener.
    pub server: ServerSection,
    /// Authentication.
    pub auth: AuthSection,
    /// CORS.
    pub cors: CorsSection,
    /// Extra response headers, `name = [values]` (distribution's `http.headers`).
    pub headers: BTreeMap<String, Vec<String>>,
    /// The embedded backend's storage.
    pub storage: StorageSection,
    /// The upstream registry; when `url` is set, gatehouse fronts it instead of the embedded backend.
    pub upstream: UpstreamSection,
    /// The metrics and health listener.
    pub metrics: MetricsSection,
    /// Logging.
    pub log: LogSection,
    /// Per-repository access rules.
    pub access: AccessSection,
    /// The brute-force guard on failed logins.
    pub guard: GuardSection,
    /// Garbage collection.
    pub gc: crate::gc::settings::GcSection,
    /// `[[retention]]` rules, validated by [`crate::gc::retention::parse`] (which names the rule's index).
    pub retention: Vec<toml::Table>,
    /// TLS on the main listener.
    pub tls: TlsSection,
    /// The built-in web UI.
    pub ui: UiSection,
}

/// `[tls]`: the main listener speaks TLS when `certificate` and `key` are set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// The PEM certificate chain, leaf first.
    pub certificate: String,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// PEM files of CAs whose client certificates are required (mutual TLS).
    pub client_cas: Vec<String>,
    /// Automatic certificates.
    pub acme: AcmeSection,
}

/// `[tls.acme]`: certificates from an ACME CA (Let's Encrypt by default) for `hosts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeSection {
    /// The host names that get a certificate (one order for all).
    pub hosts: Vec<String>,
    /// The state directory (account, certificate, key).
    pub cache: String,
    /// The contact e-mail.
    pub email: String,
    /// The ACME directory URL (default Let's Encrypt production).
    pub directory_url: String,
    /// A PEM CA for the ACME server's own HTTPS certificate (a test CA).
    pub directory_ca: String,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on, `host:port` or `:port`.
    pub listen: String,
    /// Worker threads.
    pub threads: usize,
    /// Seconds to let in-flight requests finish on shutdown.
    pub grace_period_seconds: u64,
    /// Proxies (CIDRs) whose `X-Forwarded-For` names the real client, such as Caprover's nginx.
    pub trusted_proxies: Vec<String>,
    /// Seconds a connection may wait between requests before it is closed.
    pub idle_timeout_seconds: u64,
    /// Seconds a request head may take from its first byte to its blank line.
    pub header_timeout_seconds: u64,
    /// Seconds a request body may send nothing.
    pub body_timeout_seconds: u64,
    /// Seconds a client may take nothing of a response.
    pub send_timeout_seconds: u64,
    /// Connections one client address (an IPv6 /64) may hold open at once; 0: no cap.
    pub max_connections_per_client: u32,
    /// The Unix socket a new process (`serve --upgrade`) takes the listeners over on.
    pub upgrade_socket: String,
    /// The plain-HTTP listener (ACME HTTP-01 answers, redirects to https), such as `:80`; empty: none.
    pub http_listen: String,
    /// The https URL clients use (scheme, host, optional port), named by the plain-HTTP redirects.
    pub public_url: String,
    /// A directory an outside ACME client (certbot `--webroot -w DIR`) writes HTTP-01 files to, served by
    /// the plain-HTTP listener.
    pub acme_webroot: String,
    /// A TLS-terminating proxy is in front: no warning that credentials cross the network in clear text.
    pub tls_in_front: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "0.0.0.0:5000".into(),
            threads: 2,
            grace_period_seconds: 10,
            trusted_proxies: Vec::new(),
            idle_timeout_seconds: 60,
            header_timeout_seconds: 30,
            body_timeout_seconds: 60,
            send_timeout_seconds: 60,
            max_connections_per_client: crate::conn_limit::DEFAULT_MAX_PER_CLIENT,
            upgrade_socket: "/run/gatehouse/upgrade.sock".into(),
            http_listen: String::new(),
            public_url: String::new(),
            acme_webroot: String::new(),
            tls_in_front: false,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `htpasswd` or `none`.
    pub mode: String,
    /// The Basic realm sent in challenges.
    pub realm: String,
    /// The htpasswd file.
    pub htpasswd: String,
    /// How many bcrypt verifications may run at once.
    pub bcrypt_concurrency: usize,
    /// How long a verified credential stays cached, in seconds (0 disables the cache).
    pub cache_ttl_seconds: u64,
    /// How many verified credentials are cached at most.
    pub cache_capacity: usize,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: "htpasswd".into(),
            realm: "Registry Realm".into(),
            htpasswd: "./data/htpasswd".into(),
            bcrypt_concurrency: 2,
            cache_ttl_seconds: 600,
            cache_capacity: 10_000,
        }
    }
}

/// `[cors]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSection {
    /// Origins allowed to call the API from a browser (`*` allows any).
    pub allow_origins: Vec<String>,
    /// Methods announced in preflight answers.
    pub allow_methods: Vec<String>,
    /// Request headers announced in preflight answers.
    pub allow_headers: Vec<String>,
    /// Response headers a page may read.
    pub expose_headers: Vec<String>,
    /// Whether a page may send credentials.
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_seconds: u64,
}

impl Default for CorsSection {
    fn default() -> Self {
        CorsSection {
            allow_origins: Vec::new(),
            allow_methods: ["HEAD", "GET", "OPTIONS", "DELETE"]
                .map(String::from)
                .to_vec(),
            allow_headers: ["Authorization", "Accept", "Cache-Control"]
                .map(String::from)
                .to_vec(),
            expose_headers: vec!["Docker-Content-Digest".into()],
            allow_credentials: true,
            max_age_seconds: 600,
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Root directory, in distribution's layout (`<root>/docker/registry/v2`).
    pub root: String,
    /// Whether DELETE of manifests and blobs is allowed.
    pub delete_enabled: bool,
    /// The S3 driver's settings; when present, data lives in the bucket and `root` is not used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3: Option<crate::storage::driver::s3::S3Section>,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            root: "./data".into(),
            delete_enabled: false,
            s3: None,
        }
    }
}

/// `[upstream]` (its `Debug` elides the password, also one inside the URL).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSection {
    /// `http://host:port` or `https://host:port` of the registry to front; empty for the embedded backend.
    pub url: String,
    /// Optional user gatehouse sends upstream (the client's own Authorization is never forwarded).
    pub username: String,
    /// Optional password for `username`.
    pub password: String,
    /// Seconds to wait for a TCP (and TLS) connection.
    pub connect_timeout_seconds: u64,
    /// Seconds a read or write may stall before the transfer is failed (not a cap on the whole transfer).
    pub io_timeout_seconds: u64,
    /// Whether to verify the upstream's TLS certificate.
    pub tls_verify: bool,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        UpstreamSection {
            url: String::new(),
            username: String::new(),
            password: String::new(),
            connect_timeout_seconds: 5,
            io_timeout_seconds: 300,
            tls_verify: true,
        }
    }
}

/// `[metrics]` (its `Debug` elides the password).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the metrics/health listener (`/metrics`, `/healthz`, `/readyz`); empty disables it.
    pub listen: String,
    /// Optional Basic auth user for the listener (health endpoints stay open).
    pub username: String,
    /// Password for `username`.
    pub password: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "127.0.0.1:9090".into(),
            username: String::new(),
            password: String::new(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// The level, or a filter like `warn,gatehouse=debug` (`GATEHOUSE_LOG` overrides it).
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// Whether to write one access-log line per request.
    pub access_log: bool,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: "text".into(),
            access_log: true,
        }
    }
}

/// `[access]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessSection {
    /// Repository globs anyone may pull without credentials.
    pub public_pull: Vec<String>,
    /// Named groups of users.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Rules; with none, every authenticated user may do everything.
    pub rules: Vec<RuleSection>,
}

/// One `[[access.rules]]` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSection {
    /// Repository globs (`*` within a component, `**` across).
    pub repositories: Vec<String>,
    /// Users, `group:<name>`, or `*` for any authenticated user.
    pub principals: Vec<String>,
    /// `pull`, `push`, `delete`.
    pub actions: Vec<String>,
}

/// `[guard]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSection {
    /// Whether failed logins are limited per client address.
    pub enabled: bool,
    /// Failed logins an address may make in a burst.
    pub failures_burst: u32,
    /// Failed logins per minute an address earns back.
    pub failures_per_minute: u32,
    /// The most addresses tracked at once (memory stays bounded under address spray).
    pub max_tracked: usize,
}

impl Default for GuardSection {
    fn default() -> Self {
        GuardSection {
            enabled: true,
            failures_burst: 10,
            failures_per_minute: 10,
            max_tracked: 65_536,
        }
    }
}

/// `[ui]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSection {
    /// Whether the web UI is served.
    pub enabled: bool,
    /// The path it is served under (`/` or `/ui/`; never under `/v2/`).
    pub prefix: String,
    /// How long a login lasts, in seconds.
    pub session_ttl_seconds: u64,
    /// The most sessions held at once.
    pub max_sessions: usize,
}

impl Default for UiSection {
    fn default() -> Self {
        let d = crate::ui::UiConfig::default();
        UiSection {
            enabled: d.enabled,
            prefix: d.prefix,
            session_ttl_seconds: d.session_ttl.as_secs(),
            max_sessions: d.max_sessions,
        }
    }
}

fn elided(secret: &str) -> &'static str {
    if secret.is_empty() {
        ""
    } else {
        "<elided>"
    }
}

impl std::fmt::Debug for UpstreamSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSection")
            .field("url", &crate::upstream::settings::redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &elided(&self.password))
            .field("connect_timeout_seconds", &self.connect_timeout_seconds)
            .field("io_timeout_seconds", &self.io_timeout_seconds)
            .field("tls_verify", &self.tls_verify)
            .finish()
    }
}

impl std::fmt::Debug for MetricsSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSection")
            .field("listen", &self.listen)
            .field("username", &self.username)
            .field("password", &elided(&self.password))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_debug_elides_secrets() {
        let mut f = FileConfig::default();
        f.upstream.url = "http://u:URLPASS@h".into();
        f.upstream.password = "UPPASS".into();
        f.metrics.password = "METRICSPASS".into();
        let debug = format!("{f:?}");
        for secret in ["URLPASS", "UPPASS", "METRICSPASS"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("<elided>"), "{debug}");
    }
}
