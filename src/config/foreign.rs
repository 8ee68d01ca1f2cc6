//! Environment variables with gatehouse's prefixes (`REGISTRY_`, `GATEHOUSE_`) that it does not read. Each is
//! named, never silently dropped:
//! - registry:2 settings gatehouse does not implement get a warning that says what happens instead, or an
//!   error when ignoring them would change where data lives or who may read it (fail closed);
//! - other `REGISTRY_*` names get a warning that they are ignored;
//! - an unknown `GATEHOUSE_*` name is an error that suggests the closest known name.
//!
//! Names that the container runtime or the tools around gatehouse set on their own are passed over quietly:
//! Kubernetes service links of a service called `registry` or `gatehouse` (`REGISTRY_SERVICE_HOST`,
//! `GATEHOUSE_PORT_5000_TCP`, ...), `REGISTRY_AUTH_FILE` (podman, skopeo and buildah's credentials file), and
//! `GATEHOUSE_BIN`, `GATEHOUSE_BENCH_DIR`, `GATEHOUSE_COMMIT` (the tests, benches and image build).
//! Values are never shown: an unknown variable may hold a secret.

/// What to do about a variable gatehouse does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass over it quietly: the runtime or a tool set it, not the user for gatehouse.
    Quiet,
    /// Tell the user it is ignored, and why.
    Warn(String),
    /// Refuse to start.
    Error(String),
}

/// When a registry:2 setting gatehouse does not implement is fatal.
#[derive(Debug, Clone, Copy)]
enum Severity {
    Warn,
    Error,
    /// An error unless the value (trimmed, any case) is one of these harmless ones.
    ErrorUnless(&'static [&'static str]),
}

const FALSE: &[&str] = &["false", "0", "no", "off", ""];

/// registry:2 settings gatehouse does not implement, with what happens instead. An entry covers its name and
/// every name below it (`REGISTRY_PROXY` covers `REGISTRY_PROXY_REMOTEURL`); the longest match wins.
const DISTRIBUTION: &[(&str, Severity, &str)] = &[
    ("REGISTRY_VERSION", Severity::Warn, "ignored"),
    ("REGISTRY_LOG", Severity::Warn, "ignored; gatehouse's log level is GATEHOUSE_LOG, its format GATEHOUSE_LOG_FORMAT"),
    ("REGISTRY_LOGLEVEL", Severity::Warn, "ignored; gatehouse's log level is GATEHOUSE_LOG"),
    ("REGISTRY_STORAGE", Severity::Error, "this storage driver is not implemented: gatehouse stores data on the filesystem (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY) or in S3 (REGISTRY_STORAGE=s3); refusing to start rather than put the data somewhere else"),
    ("REGISTRY_STORAGE_S3", Severity::Warn, "ignored; the S3 driver implements REGION, BUCKET, REGIONENDPOINT, ACCESSKEY, SECRETKEY, ROOTDIRECTORY, FORCEPATHSTYLE, SECURE and CHUNKSIZE (session tokens: the AWS environment)"),
    ("REGISTRY_STORAGE_S3_ENCRYPT", Severity::ErrorUnless(FALSE), "server-side encryption settings are not implemented: objects would be stored unencrypted; refusing to start"),
    ("REGISTRY_STORAGE_S3_KEYID", Severity::Error, "server-side encryption settings are not implemented: objects would be stored unencrypted; refusing to start"),
    ("REGISTRY_STORAGE_FILESYSTEM", Severity::Warn, "ignored; only the filesystem driver's rootdirectory is implemented"),
    ("REGISTRY_STORAGE_DELETE", Severity::Warn, "ignored; only REGISTRY_STORAGE_DELETE_ENABLED is implemented"),
    ("REGISTRY_STORAGE_CACHE", Severity::Warn, "ignored; gatehouse keeps no blob descriptor cache"),
    ("REGISTRY_STORAGE_REDIRECT", Severity::Warn, "ignored; only REGISTRY_STORAGE_REDIRECT_DISABLE is implemented"),
    ("REGISTRY_STORAGE_TAG", Severity::Warn, "ignored"),
    ("REGISTRY_STORAGE_MAINTENANCE", Severity::Warn, "ignored"),
    ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING", Severity::Warn, "ignored; only REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED, _AGE, _INTERVAL and _DRYRUN are implemented"),
    ("REGISTRY_STORAGE_MAINTENANCE_READONLY", Severity::ErrorUnless(FALSE), "read-only mode is not implemented: gatehouse would accept pushes and deletes; refusing to start"),
    ("REGISTRY_AUTH", Severity::Error, "this auth scheme is not implemented (only htpasswd, or none); refusing to start rather than let requests in unchecked"),
    ("REGISTRY_AUTH_HTPASSWD", Severity::Warn, "ignored; only REGISTRY_AUTH_HTPASSWD_REALM and REGISTRY_AUTH_HTPASSWD_PATH are implemented"),
    ("REGISTRY_HTTP", Severity::Warn, "ignored"),
    ("REGISTRY_HTTP_NET", Severity::ErrorUnless(&["tcp"]), "only tcp is implemented (a unix socket is not); refusing to start on another kind of listener"),
    ("REGISTRY_HTTP_PREFIX", Severity::Warn, "not implemented: the API is served at /v2/"),
    ("REGISTRY_HTTP_HOST", Severity::Warn, "ignored; redirect URLs follow the request's Host or X-Forwarded-Host"),
    ("REGISTRY_HTTP_SECRET", Severity::Warn, "ignored; gatehouse keeps upload state in storage and needs no secret"),
    ("REGISTRY_HTTP_RELATIVEURLS", Severity::Warn, "ignored"),
    ("REGISTRY_HTTP_TLS", Severity::Warn, "ignored; TLS 1.2 and 1.3 with rustls's default cipher suites"),
    ("REGISTRY_HTTP_TLS_CLIENTCAS", Severity::Error, "give the client CAs as one list, REGISTRY_HTTP_TLS_CLIENTCAS='[/ca1.pem,/ca2.pem]'; refusing to start rather than accept clients unchecked"),
    ("REGISTRY_HTTP_TLS_LETSENCRYPT", Severity::Error, "automatic certificates (ACME) are not implemented yet: give REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY; refusing to start rather than serve without TLS"),
    ("REGISTRY_HTTP_DEBUG", Severity::Warn, "the debug server is not implemented; metrics and health are on GATEHOUSE_METRICS_ADDR"),
    ("REGISTRY_HTTP_HTTP2", Severity::Warn, "ignored; with TLS, HTTP/2 and HTTP/1.1 are negotiated by ALPN"),
    ("REGISTRY_HTTP_HEADERS", Severity::Warn, "ignored; name one header per variable, as REGISTRY_HTTP_HEADERS_X-Frame-Options"),
    ("REGISTRY_NOTIFICATIONS", Severity::Warn, "notifications are not implemented: no events are sent"),
    ("REGISTRY_REDIS", Severity::Warn, "ignored; gatehouse uses no redis"),
    ("REGISTRY_HEALTH", Severity::Warn, "ignored; /healthz and /readyz are on the metrics listener (GATEHOUSE_METRICS_ADDR)"),
    ("REGISTRY_PROXY", Severity::Warn, "the pull-through cache is not implemented: nothing is fetched from the remote registry"),
    ("REGISTRY_MIDDLEWARE", Severity::Warn, "middleware is not implemented: ignored"),
    ("REGISTRY_REPORTING", Severity::Warn, "ignored"),
    ("REGISTRY_VALIDATION", Severity::Warn, "ignored"),
    ("REGISTRY_COMPATIBILITY", Severity::Warn, "ignored"),
    ("REGISTRY_CATALOG", Severity::Warn, "ignored; the catalog pages as clients ask with n and last"),
    ("REGISTRY_CONFIGURATION_PATH", Severity::Warn, "gatehouse does not read registry:2's YAML file; give it a TOML file with --config or GATEHOUSE_CONFIG"),
];

/// Names the tools around gatehouse set for themselves.
const TOOLING: &[&str] = &[
    "REGISTRY_AUTH_FILE",
    "GATEHOUSE_BIN",
    "GATEHOUSE_BENCH_DIR",
    "GATEHOUSE_COMMIT",
];

/// Decides about `name` (which starts with `REGISTRY_` or `GATEHOUSE_` and is not one gatehouse reads);
/// `known` lists the `GATEHOUSE_*` names it reads, for the suggestion.
pub fn judge(name: &str, value: &str, known: &[&str]) -> Verdict {
    if TOOLING.contains(&name) || is_service_link(name, value) {
        return Verdict::Quiet;
    }
    if name.starts_with("GATEHOUSE_") {
        let hint = match closest(name, known) {
            Some(near) => format!("did you mean {near}?"),
            None => "see config/gatehouse.toml for the variables gatehouse reads".to_string(),
        };
        return Verdict::Error(format!("not a gatehouse variable; {hint}"));
    }
    let found = DISTRIBUTION
        .iter()
        .filter(|(pattern, _, _)| {
            name.strip_prefix(pattern)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        })
        .max_by_key(|(pattern, _, _)| pattern.len());
    let Some((_, severity, what)) = found else {
        return Verdict::Warn(format!(
            "{name}: not a registry:2 setting gatehouse knows; ignored"
        ));
    };
    let value = value.trim().to_ascii_lowercase();
    match severity {
        Severity::Warn => Verdict::Warn(format!("{name}: {what}")),
        Severity::Error => Verdict::Error(what.to_string()),
        Severity::ErrorUnless(fine) if fine.contains(&value.as_str()) => Verdict::Quiet,
        Severity::ErrorUnless(_) => Verdict::Error(what.to_string()),
    }
}

/// A Kubernetes service link (`<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT[_<NAME>]`, `<SVC>_PORT`,
/// `<SVC>_PORT_<n>_<PROTO>[_ADDR|_PORT|_PROTO]`), recognised by its name and the shape of its value.
fn is_service_link(name: &str, value: &str) -> bool {
    let value = value.trim();
    let numeric = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    if name.ends_with("_SERVICE_HOST") {
        return value.parse::<std::net::IpAddr>().is_ok();
    }
    if name.ends_with("_SERVICE_PORT") || name.contains("_SERVICE_PORT_") {
        return numeric;
    }
    let url_like = ["tcp://", "udp://", "sctp://"]
        .iter()
        .any(|s| value.starts_with(s));
    // <SVC>_PORT_<n>_<PROTO>[_<FIELD>]
    let parts: Vec<&str> = name.split('_').collect();
    let proto = |p: &str| matches!(p, "TCP" | "UDP" | "SCTP");
    let port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let link = matches!(parts.as_slice(), [.., "PORT", n, p, field]
        if port(n) && proto(p) && matches!(*field, "ADDR" | "PORT" | "PROTO"))
        && !value.is_empty();
    let bare = matches!(parts.as_slice(), [.., "PORT", n, p] if port(n) && proto(p)) && url_like;
    link || bare || (name.ends_with("_PORT") && url_like)
}

/// The known name nearest to `name` by edit distance, when it is near enough to be a typo.
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let (best, distance) = known
        .iter()
        .map(|k| (*k, edit_distance(name, k)))
        .min_by_key(|(_, d)| *d)?;
    let suffix = name.len().saturating_sub("GATEHOUSE_".len());
    (distance <= 3.max(suffix / 3)).then_some(best)
}

/// Levenshtein distance over bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &[
        "GATEHOUSE_UPSTREAM_URL",
        "GATEHOUSE_UPSTREAM_USERNAME",
        "GATEHOUSE_METRICS_ADDR",
        "GATEHOUSE_LOG",
    ];

    fn verdict(name: &str, value: &str) -> Verdict {
        judge(name, value, KNOWN)
    }

    #[test]
    fn gatehouse_typo_is_an_error_suggesting_the_closest_name() {
        let Verdict::Error(e) = verdict("GATEHOUSE_UPSTREAM_ULR", "http://x") else {
            panic!("not an error")
        };
        assert!(e.contains("did you mean GATEHOUSE_UPSTREAM_URL?"), "{e}");
        let Verdict::Error(e) = verdict("GATEHOUSE_METRIC_ADR", "x") else {
            panic!("not an error")
        };
        assert!(e.contains("GATEHOUSE_METRICS_ADDR"), "{e}");
        let Verdict::Error(e) = verdict("GATEHOUSE_SOMETHING_ELSE_ENTIRELY", "x") else {
            panic!("not an error")
        };
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn unimplemented_distribution_settings_are_named() {
        let cases = [
            ("REGISTRY_HTTP_TLS_MINIMUMTLS", "tls1.2", "warn", "rustls"),
            (
                "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS",
                "[a.example]",
                "error",
                "ACME",
            ),
            (
                "REGISTRY_HTTP_TLS_CLIENTCAS_0",
                "/ca.pem",
                "error",
                "one list",
            ),
            (
                "REGISTRY_PROXY_REMOTEURL",
                "https://r",
                "warn",
                "pull-through cache",
            ),
            (
                "REGISTRY_PROXY_PASSWORD",
                "hunter2",
                "warn",
                "pull-through cache",
            ),
            (
                "REGISTRY_STORAGE_S3_ENCRYPT",
                "true",
                "error",
                "unencrypted",
            ),
            ("REGISTRY_STORAGE_S3_ENCRYPT", "false", "quiet", ""),
            ("REGISTRY_STORAGE_S3_V4AUTH", "true", "warn", "CHUNKSIZE"),
            (
                "REGISTRY_STORAGE_AZURE_ACCOUNTNAME",
                "a",
                "error",
                "filesystem",
            ),
            (
                "REGISTRY_STORAGE_FILESYSTEM_MAXTHREADS",
                "100",
                "warn",
                "rootdirectory",
            ),
            (
                "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_SOMETHING",
                "true",
                "warn",
                "_DRYRUN",
            ),
            (
                "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED",
                "true",
                "error",
                "read-only",
            ),
            (
                "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED",
                "false",
                "quiet",
                "",
            ),
            (
                "REGISTRY_AUTH_TOKEN_REALM",
                "https://auth",
                "error",
                "auth scheme",
            ),
            ("REGISTRY_AUTH_HTPASSWD_FOO", "x", "warn", "REALM"),
            ("REGISTRY_HTTP_NET", "unix", "error", "tcp"),
            ("REGISTRY_HTTP_NET", "tcp", "quiet", ""),
            ("REGISTRY_HTTP_SECRET", "s", "warn", "no secret"),
            ("REGISTRY_NOTIFICATIONS_ENDPOINTS", "x", "warn", "no events"),
            ("REGISTRY_LOG_LEVEL", "debug", "warn", "GATEHOUSE_LOG"),
            (
                "REGISTRY_SOMETHING",
                "x",
                "warn",
                "not a registry:2 setting",
            ),
        ];
        for (name, value, kind, text) in cases {
            let v = verdict(name, value);
            let (got, message) = match &v {
                Verdict::Quiet => ("quiet", ""),
                Verdict::Warn(m) => ("warn", m.as_str()),
                Verdict::Error(m) => ("error", m.as_str()),
            };
            assert_eq!(got, kind, "{name}={value}: {v:?}");
            assert!(message.contains(text), "{name}: {message}");
            assert!(!message.contains("hunter2"), "a value was shown: {message}");
        }
    }

    #[test]
    fn runtime_and_tool_names_pass_quietly() {
        for (name, value) in [
            ("REGISTRY_SERVICE_HOST", "10.0.0.7"),
            ("REGISTRY_SERVICE_PORT", "5000"),
            ("REGISTRY_SERVICE_PORT_HTTP", "5000"),
            ("REGISTRY_PORT", "tcp://10.0.0.7:5000"),
            ("REGISTRY_PORT_5000_TCP", "tcp://10.0.0.7:5000"),
            ("REGISTRY_PORT_5000_TCP_ADDR", "10.0.0.7"),
            ("REGISTRY_PORT_5000_TCP_PORT", "5000"),
            ("REGISTRY_PORT_5000_TCP_PROTO", "tcp"),
            ("GATEHOUSE_SERVICE_HOST", "10.0.0.8"),
            ("GATEHOUSE_METRICS_SERVICE_PORT", "9090"),
            ("GATEHOUSE_PORT_9090_TCP", "tcp://10.0.0.8:9090"),
            ("REGISTRY_AUTH_FILE", "/run/containers/auth.json"),
            ("GATEHOUSE_BIN", "/x/gatehouse"),
            ("GATEHOUSE_BENCH_DIR", "/tmp/b"),
            ("GATEHOUSE_COMMIT", "abc123"),
        ] {
            assert_eq!(verdict(name, value), Verdict::Quiet, "{name}={value}");
        }
        // The same names with values that are not service links are judged as usual.
        assert!(matches!(
            verdict("GATEHOUSE_PORT", "5000"),
            Verdict::Error(_)
        ));
        assert!(matches!(
            verdict("REGISTRY_SERVICE_HOST", "x"),
            Verdict::Warn(_)
        ));
    }

    #[test]
    fn edit_distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("abc", "abc", 0),
            ("ULR", "URL", 2),
            ("a", "", 1),
            ("kitten", "sitting", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }
}
