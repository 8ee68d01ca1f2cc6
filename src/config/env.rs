//! Environment overrides: distribution's own variable names, as the seed's compose file writes them, plus
//! `GATEHOUSE_*` for what distribution has no name for. [`VARS`] is the list of every variable gatehouse
//! reads; anything else with a `REGISTRY_` or `GATEHOUSE_` prefix is judged by [`super::foreign`].
//!
//! Overrides are applied to the file schema, so `check-config` shows the merged result, and [`Sources`]
//! remembers which key came from which variable, so a bad value is reported under the variable's name.
//!
//! An empty value never changes behaviour silently: per variable it is either an error naming the variable
//! (when it would open access, move data or drop a safety setting) or a warning saying it is ignored.

use super::foreign::{self, Verdict};
use super::schema::FileConfig;
use super::values::{parse_bool, parse_duration, parse_list};
use super::ConfigError;
use crate::storage::driver::s3::settings as s3;
use std::collections::BTreeMap;

/// The prefix distribution uses for extra response headers.
pub const HEADERS_PREFIX: &str = "REGISTRY_HTTP_HEADERS_";

/// The hint for an empty `GATEHOUSE_CONFIG` (also used by `main`, which checks it before parsing arguments).
pub const CONFIG_EMPTY: &str =
    "name the config file, or unset it to run on the defaults and the environment";

/// What an empty (or all-blank) value of a variable does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenEmpty {
    /// A config error naming the variable, with this hint.
    Error(&'static str),
    /// A warning naming the variable; the file's (or the default) value stays in force.
    Ignore,
}

/// One environment variable gatehouse reads.
pub struct Var {
    /// The variable's name.
    pub name: &'static str,
    /// The config key it overrides (empty when it has none, such as `GATEHOUSE_CONFIG`).
    pub key: &'static str,
    /// What an empty value does.
    pub when_empty: WhenEmpty,
    /// Whether a bad value is only warned about (the value is ignored) instead of failing the config.
    pub bad_is_ignored: bool,
    set: fn(&mut FileConfig, &str) -> Result<(), String>,
}

const fn var(
    name: &'static str,
    key: &'static str,
    when_empty: WhenEmpty,
    set: fn(&mut FileConfig, &str) -> Result<(), String>,
) -> Var {
    Var {
        name,
        key,
        when_empty,
        bad_is_ignored: false,
        set,
    }
}

use WhenEmpty::{Error as Refuse, Ignore};

/// One `REGISTRY_STORAGE_S3_*` variable (the S3 settings module parses it); an empty value is refused.
const fn s3_var(
    name: &'static str,
    key: &'static str,
    set: fn(&mut FileConfig, &str) -> Result<(), String>,
) -> Var {
    var(name, key, Refuse("give a value or unset it"), set)
}

/// Every variable gatehouse reads (besides `REGISTRY_HTTP_HEADERS_<Name>`), with the key it sets.
pub const VARS: &[Var] = &[
    var(
        "REGISTRY_HTTP_ADDR",
        "server.listen",
        Refuse("give an address like :5000 or unset it"),
        |f, v| {
            f.server.listen = v.to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_LISTEN",
        "server.listen",
        Refuse("give an address like :5000 or unset it"),
        |f, v| {
            f.server.listen = v.to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_HTTP_DRAINTIMEOUT",
        "server.grace_period_seconds",
        Ignore,
        |f, v| {
            f.server.grace_period_seconds = parse_duration(v)?.as_secs();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_UPGRADE_SOCKET",
        "server.upgrade_socket",
        Refuse("give a socket path or unset it"),
        |f, v| {
            f.server.upgrade_socket = v.to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_IDLE_TIMEOUT",
        "server.idle_timeout_seconds",
        Ignore,
        |f, v| {
            f.server.idle_timeout_seconds = whole_seconds(v)?;
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_HEADER_TIMEOUT",
        "server.header_timeout_seconds",
        Ignore,
        |f, v| {
            f.server.header_timeout_seconds = whole_seconds(v)?;
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_BODY_TIMEOUT",
        "server.body_timeout_seconds",
        Ignore,
        |f, v| {
            f.server.body_timeout_seconds = whole_seconds(v)?;
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_SEND_TIMEOUT",
        "server.send_timeout_seconds",
        Ignore,
        |f, v| {
            f.server.send_timeout_seconds = whole_seconds(v)?;
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_MAX_CONNECTIONS_PER_CLIENT",
        "server.max_connections_per_client",
        Ignore,
        |f, v| {
            f.server.max_connections_per_client = v.trim().parse().map_err(|_| {
                format!("`{}` is not a whole number (0 turns the cap off)", v.trim())
            })?;
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_TRUSTED_PROXIES",
        "server.trusted_proxies",
        Ignore,
        |f, v| {
            f.server.trusted_proxies = parse_list(v);
            Ok(())
        },
    ),
    var(
        "REGISTRY_AUTH",
        "auth.mode",
        Refuse("authentication is off only with REGISTRY_AUTH=none; use htpasswd or none"),
        |f, v| {
            f.auth.mode = v.to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_AUTH_HTPASSWD_REALM",
        "auth.realm",
        Ignore,
        |f, v| {
            f.auth.realm = v.to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_AUTH_HTPASSWD_PATH",
        "auth.htpasswd",
        Refuse("name the htpasswd file or unset it"),
        |f, v| {
            f.auth.htpasswd = v.to_string();
            Ok(())
        },
    ),
    var("REGISTRY_STORAGE", "", Ignore, |f, v| {
        s3::select(&mut f.storage.s3, v)
    }),
    var(
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
        "storage.root",
        Refuse("name the data directory or unset it"),
        |f, v| {
            f.storage.root = v.to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_STORAGE_DELETE_ENABLED",
        "storage.delete_enabled",
        Ignore,
        |f, v| {
            f.storage.delete_enabled = parse_bool(v)?;
            Ok(())
        },
    ),
    var(
        "REGISTRY_STORAGE_REDIRECT_DISABLE",
        "storage.s3.redirect_disable",
        Ignore,
        |f, v| s3::set_redirect_disable(&mut f.storage.s3, v),
    ),
    s3_var("REGISTRY_STORAGE_S3_REGION", "storage.s3.region", |f, v| {
        s3::set(&mut f.storage.s3, "region", v)
    }),
    s3_var("REGISTRY_STORAGE_S3_BUCKET", "storage.s3.bucket", |f, v| {
        s3::set(&mut f.storage.s3, "bucket", v)
    }),
    s3_var(
        "REGISTRY_STORAGE_S3_REGIONENDPOINT",
        "storage.s3.regionendpoint",
        |f, v| s3::set(&mut f.storage.s3, "regionendpoint", v),
    ),
    s3_var(
        "REGISTRY_STORAGE_S3_ACCESSKEY",
        "storage.s3.accesskey",
        |f, v| s3::set(&mut f.storage.s3, "accesskey", v),
    ),
    s3_var(
        "REGISTRY_STORAGE_S3_SECRETKEY",
        "storage.s3.secretkey",
        |f, v| s3::set(&mut f.storage.s3, "secretkey", v),
    ),
    s3_var(
        "REGISTRY_STORAGE_S3_ROOTDIRECTORY",
        "storage.s3.rootdirectory",
        |f, v| s3::set(&mut f.storage.s3, "rootdirectory", v),
    ),
    s3_var(
        "REGISTRY_STORAGE_S3_FORCEPATHSTYLE",
        "storage.s3.forcepathstyle",
        |f, v| s3::set(&mut f.storage.s3, "forcepathstyle", v),
    ),
    s3_var("REGISTRY_STORAGE_S3_SECURE", "storage.s3.secure", |f, v| {
        s3::set(&mut f.storage.s3, "secure", v)
    }),
    s3_var(
        "REGISTRY_STORAGE_S3_CHUNKSIZE",
        "storage.s3.chunksize",
        |f, v| s3::set(&mut f.storage.s3, "chunksize", v),
    ),
    s3_var(
        "GATEHOUSE_S3_TAG_CACHE_TTL",
        "storage.s3.tag_cache_ttl",
        |f, v| s3::set(&mut f.storage.s3, "tag_cache_ttl", v),
    ),
    var(
        "GATEHOUSE_UPSTREAM_URL",
        "upstream.url",
        Refuse("an empty URL would switch to the embedded backend; unset it for that"),
        |f, v| {
            f.upstream.url = v.to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_UPSTREAM_USERNAME",
        "upstream.username",
        Ignore,
        |f, v| {
            f.upstream.username = v.to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_UPSTREAM_PASSWORD",
        "upstream.password",
        Ignore,
        |f, v| {
            f.upstream.password = v.to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_METRICS_ADDR",
        "metrics.listen",
        Ignore,
        |f, v| {
            f.metrics.listen = if v.trim().eq_ignore_ascii_case("none") {
                String::new()
            } else {
                v.to_string()
            };
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_METRICS_USERNAME",
        "metrics.username",
        Refuse("an empty user would leave /metrics open; unset it for that"),
        |f, v| {
            f.metrics.username = v.to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_METRICS_PASSWORD",
        "metrics.password",
        Refuse("an empty password would leave /metrics open; unset it for that"),
        |f, v| {
            f.metrics.password = v.to_string();
            Ok(())
        },
    ),
    var("GATEHOUSE_GC_INTERVAL", "gc.interval", Ignore, |f, v| {
        f.gc.interval = v.to_string();
        Ok(())
    }),
    var(
        "GATEHOUSE_GC_GRACE",
        "gc.grace",
        Refuse("give a duration like 1h (0 for none) or unset it for the default"),
        |f, v| {
            f.gc.grace = v.to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_GC_DELETE_UNTAGGED",
        "gc.delete_untagged",
        Ignore,
        |f, v| {
            f.gc.delete_untagged = parse_bool(v)?;
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_GC_BUDGET",
        "gc.budget",
        Refuse("give a percentage like 25% or unset it for the default"),
        |f, v| {
            f.gc.budget = v.to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED",
        "gc.upload_purging.enabled",
        Ignore,
        |f, v| {
            f.gc.upload_purging.enabled = parse_bool(v)?;
            Ok(())
        },
    ),
    var(
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE",
        "gc.upload_purging.age",
        Ignore,
        |f, v| {
            f.gc.upload_purging.age = v.to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL",
        "gc.upload_purging.interval",
        Ignore,
        |f, v| {
            f.gc.upload_purging.interval = v.to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN",
        "gc.upload_purging.dryrun",
        Ignore,
        |f, v| {
            f.gc.upload_purging.dryrun = parse_bool(v)?;
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_GUARD_ENABLED",
        "guard.enabled",
        Ignore,
        |f, v| {
            f.guard.enabled = parse_bool(v)?;
            Ok(())
        },
    ),
    var("GATEHOUSE_LOG_FORMAT", "log.format", Ignore, |f, v| {
        f.log.format = v.to_string();
        Ok(())
    }),
    var("REGISTRY_LOG_FORMATTER", "log.format", Ignore, |f, v| {
        match v.trim().to_ascii_lowercase().as_str() {
            format @ ("text" | "json") => f.log.format = format.to_string(),
            other => return Err(format!("`{other}` is not implemented (text or json)")),
        }
        Ok(())
    }),
    var(
        "REGISTRY_LOG_ACCESSLOG_DISABLED",
        "log.access_log",
        Ignore,
        |f, v| {
            f.log.access_log = !parse_bool(v)?;
            Ok(())
        },
    ),
    Var {
        bad_is_ignored: true,
        ..var("GATEHOUSE_LOG", "log.level", Ignore, |f, v| {
            if let Some(problem) = super::log_filter_problem(v) {
                return Err(problem);
            }
            f.log.level = v.trim().to_string();
            Ok(())
        })
    },
    Var {
        bad_is_ignored: true,
        ..var("REGISTRY_LOG_LEVEL", "log.level", Ignore, |f, v| {
            if let Some(problem) = super::log_filter_problem(v) {
                return Err(problem);
            }
            f.log.level = v.trim().to_string();
            Ok(())
        })
    },
    var(
        "REGISTRY_HTTP_TLS_CERTIFICATE",
        "tls.certificate",
        Refuse("an empty certificate would serve plain HTTP; unset it for that"),
        |f, v| {
            f.tls.certificate = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_HTTP_TLS_KEY",
        "tls.key",
        Refuse("an empty key would serve plain HTTP; unset it for that"),
        |f, v| {
            f.tls.key = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_HTTP_TLS_CLIENTCAS",
        "tls.client_cas",
        Refuse("an empty list would accept clients without certificates; unset it for that"),
        |f, v| {
            f.tls.client_cas = parse_list(v);
            Ok(())
        },
    ),
    var("GATEHOUSE_UI", "ui.enabled", Ignore, |f, v| {
        f.ui.enabled = parse_bool(v)?;
        Ok(())
    }),
    var(
        "GATEHOUSE_UI_PREFIX",
        "ui.prefix",
        Refuse("give a path like / or /ui/, or unset it"),
        |f, v| {
            f.ui.prefix = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_UI_SESSION_TTL",
        "ui.session_ttl_seconds",
        Ignore,
        |f, v| {
            f.ui.session_ttl_seconds = whole_seconds(v)?;
            Ok(())
        },
    ),
    var(
        "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS",
        "tls.acme.hosts",
        Ignore,
        |f, v| {
            f.tls.acme.hosts = parse_list(v);
            Ok(())
        },
    ),
    var(
        "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE",
        "tls.acme.cache",
        Ignore,
        |f, v| {
            f.tls.acme.cache = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL",
        "tls.acme.email",
        Ignore,
        |f, v| {
            f.tls.acme.email = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "REGISTRY_HTTP_TLS_LETSENCRYPT_DIRECTORYURL",
        "tls.acme.directory_url",
        Ignore,
        |f, v| {
            f.tls.acme.directory_url = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_ACME_DIRECTORY_CA",
        "tls.acme.directory_ca",
        Ignore,
        |f, v| {
            f.tls.acme.directory_ca = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_HTTP_ADDR",
        "server.http_listen",
        Ignore,
        |f, v| {
            f.server.http_listen = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_PUBLIC_URL",
        "server.public_url",
        Ignore,
        |f, v| {
            f.server.public_url = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_ACME_WEBROOT",
        "server.acme_webroot",
        Ignore,
        |f, v| {
            f.server.acme_webroot = v.trim().to_string();
            Ok(())
        },
    ),
    var(
        "GATEHOUSE_TLS_IN_FRONT",
        "server.tls_in_front",
        Ignore,
        |f, v| {
            f.server.tls_in_front = parse_bool(v)?;
            Ok(())
        },
    ),
    // Read by the command line itself (clap, after `main` refuses an empty value): listed so it is known.
    var("GATEHOUSE_CONFIG", "", Refuse(CONFIG_EMPTY), |_, _| Ok(())),
];

/// A duration for a `*_seconds` key: whole seconds, at least one (`90s`, `2m`, `30`).
fn whole_seconds(v: &str) -> Result<u64, String> {
    let d = parse_duration(v)?;
    if d.subsec_nanos() != 0 || d.as_secs() == 0 {
        return Err(format!(
            "`{}` is not a whole number of seconds, at least 1s",
            v.trim()
        ));
    }
    Ok(d.as_secs())
}

/// Which config key took its value from which environment variable.
#[derive(Debug, Clone, Default)]
pub struct Sources(BTreeMap<String, String>);

impl Sources {
    /// The variable that set `key`, if one did.
    pub fn var_of(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Notes that `var` set `key`; returns the variable it overrides, if another one set it before.
    fn record(&mut self, key: impl Into<String>, var: &str) -> Option<String> {
        self.0
            .insert(key.into(), var.to_string())
            .filter(|earlier| earlier != var)
    }
}

/// What applying the environment did: the user's warnings, and where each overridden key came from.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Things the user should hear about (ignored variables, deprecated spellings).
    pub warnings: Vec<String>,
    /// Keys set from variables.
    pub sources: Sources,
}

impl Applied {
    /// Notes that `var` set `key`, with a warning when another variable had set it already.
    fn record(&mut self, key: &str, var: &str) {
        if let Some(earlier) = self.sources.record(key, var) {
            self.warnings
                .push(format!("{earlier} and {var} both set {key}: {var} is used"));
        }
    }
}

/// The `GATEHOUSE_*` names gatehouse reads.
pub fn gatehouse_names() -> Vec<&'static str> {
    VARS.iter()
        .map(|v| v.name)
        .filter(|n| n.starts_with("GATEHOUSE_"))
        .collect()
}

/// Whether gatehouse reads the variable `name` (one of [`VARS`] or a `REGISTRY_HTTP_HEADERS_<Name>`).
pub fn is_known(name: &str) -> bool {
    VARS.iter().any(|v| v.name == name)
        || name
            .strip_prefix(HEADERS_PREFIX)
            .is_some_and(|h| !h.is_empty())
}

/// Applies every variable in `vars` to `file`: known ones override their key, others with gatehouse's
/// prefixes are warned about or refused.
pub fn apply(
    file: &mut FileConfig,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Applied, ConfigError> {
    let mut out = Applied::default();
    // Sorted, so repeated runs (and warnings) are deterministic; gatehouse's own names come last, so when
    // both spellings of a setting are given (GATEHOUSE_LISTEN and REGISTRY_HTTP_ADDR) gatehouse's wins.
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with("REGISTRY_") || k.starts_with("GATEHOUSE_"))
        .collect();
    vars.sort_by(|(a, _), (b, _)| {
        (a.starts_with("GATEHOUSE_"), a).cmp(&(b.starts_with("GATEHOUSE_"), b))
    });
    let known = gatehouse_names();
    for (name, value) in vars {
        let bad = |problem: String| ConfigError::Env {
            var: name.clone(),
            problem,
        };
        if let Some(header) = name.strip_prefix(HEADERS_PREFIX).filter(|h| !h.is_empty()) {
            if value.trim().is_empty() {
                out.warnings
                    .push(format!("{name} is set but empty: ignored"));
                continue;
            }
            let key =
                apply_header(file, header, parse_list(&value), &mut out.warnings).map_err(bad)?;
            out.record(&key, &name);
            continue;
        }
        let Some(v) = VARS.iter().find(|v| v.name == name) else {
            match foreign::judge(&name, &value, &known) {
                Verdict::Quiet => {}
                Verdict::Warn(w) => out.warnings.push(w),
                Verdict::Error(problem) => return Err(bad(problem)),
            }
            continue;
        };
        if value.trim().is_empty() {
            match v.when_empty {
                WhenEmpty::Error(hint) => return Err(bad(format!("is empty: {hint}"))),
                WhenEmpty::Ignore => {
                    out.warnings.push(ignored_empty(v));
                    continue;
                }
            }
        }
        match (v.set)(file, &value) {
            Ok(()) => {
                if !v.key.is_empty() {
                    out.record(v.key, &name);
                }
            }
            Err(problem) if v.bad_is_ignored => {
                out.warnings.push(format!("{name}: {problem}; ignored"));
            }
            Err(problem) => return Err(bad(problem)),
        }
    }
    Ok(out)
}

fn ignored_empty(v: &Var) -> String {
    if v.key.is_empty() {
        format!("{} is set but empty: ignored", v.name)
    } else {
        format!(
            "{} is set but empty: ignored ({} keeps its value from the file or the default)",
            v.name, v.key
        )
    }
}

/// Routes one `REGISTRY_HTTP_HEADERS_<Name>` to the CORS setting it means, or to the extra headers; returns
/// the config key it set.
fn apply_header(
    file: &mut FileConfig,
    header: &str,
    values: Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let lower = header.to_ascii_lowercase();
    let cors = &mut file.cors;
    let key = match lower.as_str() {
        "access-control-allow-origin" | "access-control-origin" => {
            if lower == "access-control-origin" {
                warnings.push(format!(
                    "{HEADERS_PREFIX}{header}: browsers read no header named Access-Control-Origin; \
                     treating it as Access-Control-Allow-Origin"
                ));
            }
            cors.allow_origins = values;
            "cors.allow_origins"
        }
        "access-control-allow-methods" => {
            cors.allow_methods = values;
            "cors.allow_methods"
        }
        "access-control-allow-headers" => {
            cors.allow_headers = values;
            "cors.allow_headers"
        }
        "access-control-expose-headers" => {
            cors.expose_headers = values;
            "cors.expose_headers"
        }
        "access-control-allow-credentials" | "access-control-credentials" => {
            if lower == "access-control-credentials" {
                warnings.push(format!(
                    "{HEADERS_PREFIX}{header}: browsers read no header named Access-Control-Credentials; \
                     treating it as Access-Control-Allow-Credentials"
                ));
            }
            cors.allow_credentials = match values.first() {
                Some(v) => parse_bool(v)?,
                None => false,
            };
            "cors.allow_credentials"
        }
        "access-control-max-age" => {
            let v = values.first().map(String::as_str).unwrap_or("");
            cors.max_age_seconds = v
                .parse()
                .map_err(|_| format!("`{v}` is not a number of seconds"))?;
            "cors.max_age_seconds"
        }
        _ => {
            file.headers.insert(header.to_string(), values);
            return Ok(format!("headers.{header}"));
        }
    };
    Ok(key.to_string())
}

#[cfg(test)]
mod tests;
