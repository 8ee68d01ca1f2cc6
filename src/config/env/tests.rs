//! The environment overlay: the seed's compose variables, empty values, unknown and unimplemented names.

use super::*;

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn applied(list: &[(&str, &str)]) -> Result<(FileConfig, Applied), ConfigError> {
    let mut f = FileConfig::default();
    let a = apply(&mut f, vars(list))?;
    Ok((f, a))
}

#[test]
fn seed_compose_env_means_what_its_author_meant() {
    let (f, a) = applied(&[
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
    ])
    .unwrap();
    let warnings = a.warnings;
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
    assert_eq!(
        a.sources.var_of("cors.allow_origins"),
        Some("REGISTRY_HTTP_HEADERS_Access-Control-Origin")
    );
    assert_eq!(
        a.sources.var_of("headers.X-Frame-Options"),
        Some("REGISTRY_HTTP_HEADERS_X-Frame-Options")
    );
    assert_eq!(
        a.sources.var_of("server.listen"),
        Some("REGISTRY_HTTP_ADDR")
    );
}

#[test]
fn bad_bool_names_the_variable() {
    let err = applied(&[("REGISTRY_STORAGE_DELETE_ENABLED", "maybe")]).unwrap_err();
    assert!(
        err.to_string().contains("REGISTRY_STORAGE_DELETE_ENABLED"),
        "{err}"
    );
}

#[test]
fn empty_registry_auth_is_an_error_naming_the_variable() {
    for value in ["", "  "] {
        let err = applied(&[("REGISTRY_AUTH", value)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("REGISTRY_AUTH") && err.contains("none"),
            "{err}"
        );
    }
}

#[test]
fn every_empty_variable_is_an_error_or_an_ignored_warning_naming_it() {
    for v in VARS {
        let mut f = FileConfig::default();
        let before = toml::to_string(&f).unwrap();
        match (apply(&mut f, vars(&[(v.name, "")])), v.when_empty) {
            (Err(e), WhenEmpty::Error(_)) => {
                assert!(e.to_string().contains(v.name), "{e}")
            }
            (Ok(a), WhenEmpty::Ignore) => {
                assert_eq!(a.warnings.len(), 1, "{}", v.name);
                assert!(a.warnings[0].contains(v.name), "{:?}", a.warnings);
                assert!(a.warnings[0].contains("ignored"), "{:?}", a.warnings);
                assert_eq!(toml::to_string(&f).unwrap(), before, "{} changed", v.name);
            }
            (got, want) => panic!("{}: {got:?} for {want:?}", v.name),
        }
    }
    let (_, a) = applied(&[("REGISTRY_HTTP_HEADERS_X-Frame-Options", "")]).unwrap();
    assert!(a.warnings[0].contains("ignored"), "{:?}", a.warnings);
}

#[test]
fn empty_values_that_would_open_or_move_something_are_errors() {
    for name in [
        "REGISTRY_AUTH",
        "REGISTRY_AUTH_HTPASSWD_PATH",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
        "GATEHOUSE_UPSTREAM_URL",
        "GATEHOUSE_METRICS_USERNAME",
        "GATEHOUSE_METRICS_PASSWORD",
        "REGISTRY_HTTP_ADDR",
    ] {
        assert!(applied(&[(name, "")]).is_err(), "{name}");
    }
    // Empty guard switch: ignored, so the guard stays on.
    let (f, _) = applied(&[("GATEHOUSE_GUARD_ENABLED", "")]).unwrap();
    assert!(f.guard.enabled);
}

#[test]
fn unknown_gatehouse_variable_is_an_error_suggesting_the_closest() {
    let err = applied(&[("GATEHOUSE_UPSTREAM_ULR", "http://x")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("GATEHOUSE_UPSTREAM_ULR"), "{err}");
    assert!(
        err.contains("did you mean GATEHOUSE_UPSTREAM_URL?"),
        "{err}"
    );
}

#[test]
fn registry_storage_gcs_is_an_error_and_tls_ciphersuites_a_warning() {
    let err = applied(&[("REGISTRY_STORAGE", "gcs")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("REGISTRY_STORAGE") && err.contains("filesystem"),
        "{err}"
    );
    assert!(applied(&[("REGISTRY_STORAGE", "filesystem")]).is_ok());
    let (_, a) = applied(&[
        ("REGISTRY_HTTP_TLS_CIPHERSUITES", "[TLS_AES_128_GCM_SHA256]"),
        ("REGISTRY_PROXY_REMOTEURL", "https://registry-1.docker.io"),
    ])
    .unwrap();
    assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
    assert!(a.warnings[0].contains("REGISTRY_HTTP_TLS_CIPHERSUITES"));
    assert!(a.warnings[0].contains("rustls"));
    assert!(a.warnings[1].contains("pull-through cache"));
}

#[test]
fn invalid_gatehouse_log_is_ignored_with_a_warning() {
    for bad in ["verbose", "gatehouse=loud", "[{"] {
        let (f, a) = applied(&[("GATEHOUSE_LOG", bad)]).unwrap();
        assert_eq!(f.log.level, "info", "{bad}");
        assert!(a.warnings[0].contains("GATEHOUSE_LOG"), "{:?}", a.warnings);
    }
    let (f, _) = applied(&[("GATEHOUSE_LOG", "warn,gatehouse=debug")]).unwrap();
    assert_eq!(f.log.level, "warn,gatehouse=debug");
}

#[test]
fn two_spellings_of_one_setting_warn_and_gatehouses_wins() {
    let (f, a) = applied(&[
        ("REGISTRY_HTTP_ADDR", ":5000"),
        ("GATEHOUSE_LISTEN", "127.0.0.1:6000"),
        ("REGISTRY_LOG_LEVEL", "debug"),
    ])
    .unwrap();
    assert_eq!(f.server.listen, "127.0.0.1:6000");
    assert_eq!(f.log.level, "debug");
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    assert!(
        a.warnings[0].contains("REGISTRY_HTTP_ADDR and GATEHOUSE_LISTEN both set server.listen"),
        "{:?}",
        a.warnings
    );
    assert_eq!(a.sources.var_of("server.listen"), Some("GATEHOUSE_LISTEN"));
}

#[test]
fn other_variables_pass() {
    let (f, a) = applied(&[
        ("PATH", "/usr/bin"),
        ("HOSTNAME", "abc"),
        ("REGISTRY_AUTH_FILE", "/x/auth.json"),
        ("REGISTRY_SERVICE_HOST", "10.0.0.1"),
        ("REGISTRY_HTTP_DRAINTIMEOUT", "1m"),
        ("GATEHOUSE_METRICS_ADDR", "none"),
    ])
    .unwrap();
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(f.server.grace_period_seconds, 60);
    assert_eq!(f.metrics.listen, "");
}

#[test]
fn timeouts_from_the_environment_are_durations() {
    let (f, _) = applied(&[
        ("GATEHOUSE_IDLE_TIMEOUT", "2m"),
        ("GATEHOUSE_HEADER_TIMEOUT", "10"),
        ("GATEHOUSE_BODY_TIMEOUT", "1h"),
        ("GATEHOUSE_SEND_TIMEOUT", "90s"),
    ])
    .unwrap();
    let s = &f.server;
    assert_eq!(
        (
            s.idle_timeout_seconds,
            s.header_timeout_seconds,
            s.body_timeout_seconds,
            s.send_timeout_seconds
        ),
        (120, 10, 3600, 90)
    );
    for bad in ["0s", "500ms", "1.5s", "soon"] {
        let err = applied(&[("GATEHOUSE_SEND_TIMEOUT", bad)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("GATEHOUSE_SEND_TIMEOUT"), "{bad}: {err}");
    }
}

#[test]
fn registry_storage_s3_fills_the_s3_section() {
    let (f, a) = applied(&[
        ("REGISTRY_STORAGE", "s3"),
        ("REGISTRY_STORAGE_S3_BUCKET", "reg"),
        ("REGISTRY_STORAGE_S3_REGION", "eu-west-1"),
        (
            "REGISTRY_STORAGE_S3_REGIONENDPOINT",
            "http://127.0.0.1:9000",
        ),
        ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"),
        ("REGISTRY_STORAGE_S3_SECURE", "false"),
        ("REGISTRY_STORAGE_S3_CHUNKSIZE", "5242880"),
        ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/r"),
    ])
    .unwrap();
    let s3 = f.storage.s3.unwrap();
    assert_eq!(
        (s3.bucket.as_str(), s3.region.as_str()),
        ("reg", "eu-west-1")
    );
    assert!(s3.forcepathstyle && !s3.secure);
    assert_eq!((s3.chunksize, s3.rootdirectory.as_str()), (5 << 20, "/r"));
    assert_eq!(
        a.sources.var_of("storage.s3.bucket"),
        Some("REGISTRY_STORAGE_S3_BUCKET")
    );
    // An S3 setting without the S3 driver would not take effect; a bad flag or size is refused.
    for bad in [
        vec![("REGISTRY_STORAGE_S3_BUCKET", "reg")],
        vec![
            ("REGISTRY_STORAGE", "filesystem"),
            ("REGISTRY_STORAGE_S3_BUCKET", "reg"),
        ],
        vec![
            ("REGISTRY_STORAGE", "s3"),
            ("REGISTRY_STORAGE_S3_SECURE", "maybe"),
        ],
        vec![
            ("REGISTRY_STORAGE", "s3"),
            ("REGISTRY_STORAGE_S3_CHUNKSIZE", "5M"),
        ],
        vec![
            ("REGISTRY_STORAGE", "s3"),
            ("REGISTRY_STORAGE_S3_BUCKET", " "),
        ],
    ] {
        let err = applied(&bad).unwrap_err().to_string();
        assert!(err.contains(bad.last().unwrap().0), "{bad:?}: {err}");
    }
}
