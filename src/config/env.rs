//! Environment overrides: distribution's own variable names, as the seed's compose file writes them, plus
//! `GATEHOUSE_*` for what distribution has no name for.
//!
//! Overrides are applied to the file schema, so `check-config` shows the merged result.

use super::schema::FileConfig;
use super::ConfigError;

/// The prefix distribution uses for extra response headers.
const HEADERS_PREFIX: &str = "REGISTRY_HTTP_HEADERS_";

/// Applies every recognised variable in `vars` to `file`; returns warnings for the user.
pub fn apply(
    file: &mut FileConfig,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<String>, ConfigError> {
    let mut warnings = Vec::new();
    // Sorted, so repeated runs (and warnings) are deterministic.
    let mut vars: Vec<(String, String)> = vars.into_iter().collect();
    vars.sort();
    for (key, value) in vars {
        let bad = |problem: String| ConfigError::Env {
            var: key.clone(),
            problem,
        };
        match key.as_str() {
            "REGISTRY_HTTP_ADDR" | "GATEHOUSE_LISTEN" => file.server.listen = value,
            "REGISTRY_AUTH" => file.auth.mode = value,
            "REGISTRY_AUTH_HTPASSWD_REALM" => file.auth.realm = value,
            "REGISTRY_AUTH_HTPASSWD_PATH" => file.auth.htpasswd = value,
            "REGISTRY_STORAGE_DELETE_ENABLED" => {
                file.storage.delete_enabled = parse_bool(&value).map_err(bad)?
            }
            "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY" => file.storage.root = value,
            "GATEHOUSE_UPSTREAM_URL" => file.upstream.url = value,
            "GATEHOUSE_UPSTREAM_USERNAME" => file.upstream.username = value,
            "GATEHOUSE_UPSTREAM_PASSWORD" => file.upstream.password = value,
            "GATEHOUSE_METRICS_ADDR" => file.metrics.listen = value,
            "GATEHOUSE_METRICS_USERNAME" => file.metrics.username = value,
            "GATEHOUSE_METRICS_PASSWORD" => file.metrics.password = value,
            "GATEHOUSE_TRUSTED_PROXIES" => file.server.trusted_proxies = parse_list(&value),
            "GATEHOUSE_GUARD_ENABLED" => file.guard.enabled = parse_bool(&value).map_err(bad)?,
            "GATEHOUSE_LOG_FORMAT" => file.log.format = value,
            _ => {
                if let Some(header) = key.strip_prefix(HEADERS_PREFIX) {
                    let values = parse_list(&value);
                    apply_header(file, header, values, &mut warnings).map_err(bad)?;
                }
            }
        }
    }
    Ok(warnings)
}

/// Routes one `REGISTRY_HTTP_HEADERS_<Name>` to the CORS settings it means, or to the extra headers.
fn apply_header(
    file: &mut FileConfig,
    header: &str,
    values: Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let lower = header.to_ascii_lowercase();
    let cors = &mut file.cors;
    match lower.as_str() {
        "access-control-allow-origin" => cors.allow_origins = values,
        "access-control-origin" => {
            warnings.push(format!(
                "{HEADERS_PREFIX}{header}: browsers read no header named Access-Control-Origin; \
                 treating it as Access-Control-Allow-Origin"
            ));
            cors.allow_origins = values;
        }
        "access-control-allow-methods" => cors.allow_methods = values,
        "access-control-allow-headers" => cors.allow_headers = values,
        "access-control-expose-headers" => cors.expose_headers = values,
        "access-control-allow-credentials" | "access-control-credentials" => {
            if lower == "access-control-credentials" {
                warnings.push(format!(
                    "{HEADERS_PREFIX}{header}: browsers read no header named Access-Control-Credentials; \
                     treating it as Access-Control-Allow-Credentials"
                ));
            }
            let v = values.first().map(String::as_str).unwrap_or("false");
            cors.allow_credentials = parse_bool(v)?;
        }
        "access-control-max-age" => {
            let v = values.first().map(String::as_str).unwrap_or("");
            cors.max_age_seconds = v
                .parse()
                .map_err(|_| format!("`{v}` is not a number of seconds"))?;
        }
        _ => {
            file.headers.insert(header.to_string(), values);
        }
    }
    Ok(())
}

/// Parses distribution's list form `[a,b]` (a YAML flow sequence); a bare value is a list of one.
pub fn parse_list(value: &str) -> Vec<String> {
    let v = value.trim();
    let inner = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    inner
        .split(',')
        .map(|s| unquote(s.trim()).to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn seed_compose_env_means_what_its_author_meant() {
        let mut f = FileConfig::default();
        let warnings = apply(
            &mut f,
            vars(&[
                (
                    "REGISTRY_HTTP_HEADERS_Access-Control-Origin",
                    "[http://ui.example]",
                ),
                (
                    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Methods",
                    "[HEAD,GET,OPTIONS,DELETE]",
                ),
                ("REGISTRY_HTTP_HEADERS_Access-Control-Credentials", "[true]"),
                (
                    "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Headers",
                    "[Authorization,Accept,Cache-Control]",
                ),
                (
                    "REGISTRY_HTTP_HEADERS_Access-Control-Expose-Headers",
                    "[Docker-Content-Digest]",
                ),
                ("REGISTRY_HTTP_HEADERS_X-Frame-Options", "['DENY']"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("REGISTRY_HTTP_ADDR", ":5000"),
            ]),
        )
        .unwrap();
        assert_eq!(f.cors.allow_origins, vec!["http://ui.example"]);
        assert_eq!(
            f.cors.allow_methods,
            vec!["HEAD", "GET", "OPTIONS", "DELETE"]
        );
        assert!(f.cors.allow_credentials);
        assert_eq!(f.cors.expose_headers, vec!["Docker-Content-Digest"]);
        assert_eq!(f.headers["X-Frame-Options"], vec!["DENY"]);
        assert!(f.storage.delete_enabled);
        assert_eq!(f.server.listen, ":5000");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings
            .iter()
            .any(|w| w.contains("Access-Control-Allow-Origin")));
    }

    #[test]
    fn bad_bool_names_the_variable() {
        let mut f = FileConfig::default();
        let err = apply(
            &mut f,
            vars(&[("REGISTRY_STORAGE_DELETE_ENABLED", "maybe")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("REGISTRY_STORAGE_DELETE_ENABLED"),
            "{err}"
        );
    }

    #[test]
    fn list_forms() {
        assert_eq!(parse_list("[a, b]"), vec!["a", "b"]);
        assert_eq!(parse_list("['*']"), vec!["*"]);
        assert_eq!(parse_list("single"), vec!["single"]);
        assert_eq!(parse_list("[]"), Vec::<String>::new());
    }
}
