//! Validation of whole configs: defaults, errors that name the key or the variable, secrets kept out of
//! everything that is printed.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    validate(toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: "test.toml".into(),
        message: e.to_string(),
    })?)
}

/// Validates `text` with `vars` applied on top, as `load` does with the process environment.
fn parse_with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut file: FileConfig = toml::from_str(text).unwrap();
    let env = env::apply(
        &mut file,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )?;
    validate_loaded(Loaded { file, env })
}

#[test]
fn empty_file_is_the_embedded_default() {
    let c = parse("").unwrap();
    assert!(matches!(c.backend, Backend::Embedded));
    assert_eq!(c.auth.mode, AuthMode::Htpasswd);
    assert_eq!(c.listen.port(), 5000);
    assert_eq!(c.log.filter, "info");
    // The default listener is public, with auth and without TLS: the one warning is about clear text.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("clear text"), "{:?}", c.warnings);
}

#[test]
fn clear_text_warning_is_silenced_by_tls_a_trusted_proxy_loopback_or_the_setting() {
    let warns = |toml: &str, env: &[(&str, &str)]| {
        parse_with_env(toml, env)
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.contains("clear text"))
    };
    assert!(warns("", &[]));
    assert!(warns("[server]\nlisten = \"10.0.0.5:5000\"", &[]));
    assert!(!warns("[server]\nlisten = \"127.0.0.1:5000\"", &[]));
    assert!(!warns("[server]\ntrusted_proxies = [\"10.0.0.0/8\"]", &[]));
    assert!(!warns("[server]\ntls_in_front = true", &[]));
    assert!(!warns("", &[("GATEHOUSE_TLS_IN_FRONT", "true")]));
    assert!(!warns("", &[("GATEHOUSE_TRUSTED_PROXIES", "[10.0.0.0/8]")]));
    assert!(!warns(
        "[tls]\ncertificate = \"/c.pem\"\nkey = \"/k.pem\"",
        &[]
    ));
    // With auth off the warning is the stronger one about open access, not this one.
    assert!(!warns("[auth]\nmode = \"none\"", &[]));
}

#[test]
fn plain_http_listener_settings() {
    use crate::tls::plain::Target;
    let tls = "[tls]\ncertificate = \"/c.pem\"\nkey = \"/k.pem\"\n";
    let c = parse_with_env(
        &format!("{tls}[server]\nlisten = \":443\""),
        &[("GATEHOUSE_HTTP_ADDR", ":80")],
    )
    .unwrap();
    let p = c.plain_http.expect("plain http on");
    assert_eq!(p.listen.port(), 80);
    assert_eq!(p.target, Target::RequestHost(443));
    let c = parse_with_env(
        tls,
        &[
            ("GATEHOUSE_HTTP_ADDR", ":80"),
            ("GATEHOUSE_PUBLIC_URL", "https://reg.example:8443"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.plain_http.unwrap().target,
        Target::Public("reg.example:8443".into())
    );
    let err = parse_with_env("", &[("GATEHOUSE_HTTP_ADDR", ":80")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GATEHOUSE_HTTP_ADDR") && err.contains("TLS"),
        "{err}"
    );
    let err = parse_with_env(
        &format!("{tls}[server]\nlisten = \":8443\""),
        &[("GATEHOUSE_HTTP_ADDR", ":8443")],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("must differ"), "{err}");
    let err = parse_with_env(tls, &[("GATEHOUSE_ACME_WEBROOT", "/var/www/acme")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GATEHOUSE_ACME_WEBROOT") && err.contains("http_listen"),
        "{err}"
    );
    let c = parse_with_env(
        tls,
        &[
            ("GATEHOUSE_HTTP_ADDR", ":80"),
            ("GATEHOUSE_ACME_WEBROOT", "/var/www/acme"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.plain_http.unwrap().webroot,
        Some(std::path::PathBuf::from("/var/www/acme"))
    );
    let err = parse_with_env(tls, &[("GATEHOUSE_PUBLIC_URL", "http://reg.example")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("GATEHOUSE_PUBLIC_URL"), "{err}");
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("[server]\nlisten = \"nowhere\"", "server.listen"),
        ("[auth]\nmode = \"token\"", "auth.mode"),
        ("[auth]\nmode = \"\"", "auth.mode"),
        ("[auth]\nrealm = \"a\\\"b\"", "auth.realm"),
        ("[upstream]\nurl = \"ftp://x\"", "upstream.url"),
        ("[upstream]\nurl = \"http://x/sub\"", "upstream.url"),
        (
            "[cors]\nallow_origins = [\"ui.example\"]",
            "cors.allow_origins",
        ),
        ("[headers]\n\"Bad Name\" = [\"x\"]", "headers"),
        ("[server]\nthreads = 0", "server.threads"),
        ("[server]\nlisen = \"x\"", "lisen"),
        ("[guard]\nfailures_burst = 0", "guard.failures_burst"),
        ("[log]\nlevel = \"verbose\"", "log.level"),
        ("[metrics]\nlisten = \"0.0.0.0:5000\"", "metrics.listen"),
    ];
    for (text, key) in cases {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(key), "{text:?}: {err}");
    }
}

#[test]
fn env_errors_name_the_variable() {
    let cases = [
        (("REGISTRY_HTTP_ADDR", "not-an-address"), "server.listen"),
        (("REGISTRY_AUTH", "kerberos"), "auth.mode"),
        (("REGISTRY_AUTH_HTPASSWD_REALM", "a\"b"), "auth.realm"),
        (("GATEHOUSE_UPSTREAM_URL", "ftp://x"), "upstream.url"),
        (
            ("GATEHOUSE_TRUSTED_PROXIES", "[10.0.0.0/99]"),
            "server.trusted_proxies",
        ),
        (
            (
                "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin",
                "[ui.example]",
            ),
            "cors.allow_origins",
        ),
        (("GATEHOUSE_METRICS_ADDR", "nowhere"), "metrics.listen"),
    ];
    for ((var, value), key) in cases {
        let err = parse_with_env("", &[(var, value)]).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, ConfigError::Env { var: v, .. } if v == var),
            "{var}: {text}"
        );
        assert!(text.contains(var) && text.contains(key), "{text}");
    }
    // The same bad value from the file names the key.
    let err = parse("[server]\nlisten = \"not-an-address\"").unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
}

#[test]
fn auth_none_on_a_public_address_warns_naming_it() {
    let c = parse("[auth]\nmode = \"none\"").unwrap();
    assert_eq!(c.auth.mode, AuthMode::None);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("0.0.0.0:5000"), "{:?}", c.warnings);
    let c = parse("[server]\nlisten = \"127.0.0.1:5000\"\n[auth]\nmode = \"none\"").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = parse_with_env("", &[("REGISTRY_AUTH", "none")]).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("not a loopback")));
}

#[test]
fn env_warnings_come_first() {
    let c = parse_with_env(
        "[auth]\nmode = \"none\"",
        &[("REGISTRY_HTTP_TLS_MINIMUMTLS", "tls1.2")],
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("REGISTRY_HTTP_TLS_MINIMUMTLS"));
}

#[test]
fn upstream_url_forms() {
    let c = parse("[upstream]\nurl = \"https://reg.example\"\nusername = \"u\"\npassword = \"p\"")
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
fn upstream_url_password_is_elided_everywhere() {
    let text = "[upstream]\nurl = \"http://svc:PASSWORD@127.0.0.1:5001\"";
    let file: FileConfig = toml::from_str(text).unwrap();
    let rendered = render(&file);
    assert!(!rendered.contains("PASSWORD"), "{rendered}");
    assert!(
        rendered.contains("http://svc:<elided>@127.0.0.1:5001"),
        "{rendered}"
    );
    let c = validate(file).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("PASSWORD"), "{debug}");
    let Backend::Upstream(u) = &c.backend else {
        panic!("not upstream")
    };
    assert_eq!(u.url, "http://127.0.0.1:5001");
    assert!(u.authorization.is_some());
    // From the environment, too, and in errors.
    let err = parse_with_env("", &[("GATEHOUSE_UPSTREAM_URL", "ftp://svc:PASSWORD@h")])
        .unwrap_err()
        .to_string();
    assert!(!err.contains("PASSWORD"), "{err}");
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
fn metrics_password_is_elided_from_debug() {
    let c = parse("[metrics]\nusername = \"prom\"\npassword = \"hunter2\"").unwrap();
    let debug = format!("{c:?}");
    assert!(
        debug.contains("prom") && !debug.contains("hunter2"),
        "{debug}"
    );
    assert!(
        !render(&toml::from_str("[metrics]\npassword = \"hunter2\"").unwrap()).contains("hunter2")
    );
}

#[test]
fn listeners_accept_host_names() {
    let c = parse("[server]\nlisten = \"localhost:5000\"\n[metrics]\nlisten = \"localhost:9091\"")
        .unwrap();
    assert!(c.listen.ip().is_loopback());
    assert_eq!(c.listen.to_string(), "127.0.0.1:5000");
    assert_eq!(c.metrics.unwrap().listen.to_string(), "127.0.0.1:9091");
    let c = parse_with_env("", &[("REGISTRY_HTTP_ADDR", "localhost:5000")]).unwrap();
    assert_eq!(c.listen.port(), 5000);
}

#[test]
fn read_error_shows_the_os_error_once() {
    use std::error::Error;
    let err = load_schema(Some(Path::new("/nonexistent/gatehouse.toml"))).unwrap_err();
    let text = err.to_string();
    assert_eq!(text.matches("os error 2").count(), 1, "{text}");
    assert!(text.contains("/nonexistent/gatehouse.toml"), "{text}");
    assert!(
        err.source().is_none(),
        "the cause is in the message, not also a source"
    );
}

#[test]
fn log_filters() {
    for ok in [
        "info",
        "WARN",
        "warn,gatehouse=debug",
        "gatehouse::proxy=trace",
        "off",
    ] {
        assert_eq!(log_filter_problem(ok), None, "{ok}");
    }
    for bad in ["", "verbose", "gatehouse=loud", "info,nonsense", "5"] {
        assert!(log_filter_problem(bad).is_some(), "{bad:?}");
    }
}

#[test]
fn tls_settings_from_env_and_file() {
    let c = parse_with_env(
        "",
        &[
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/c.pem"),
            ("REGISTRY_HTTP_TLS_KEY", "/k.pem"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS", "[/ca1.pem,/ca2.pem]"),
        ],
    )
    .unwrap();
    let tls = c.tls.expect("tls on");
    assert_eq!(tls.certificate, std::path::PathBuf::from("/c.pem"));
    assert_eq!(tls.client_cas.len(), 2);
    assert!(parse("").unwrap().tls.is_none());
    let err = parse_with_env("", &[("REGISTRY_HTTP_TLS_CERTIFICATE", "/c.pem")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.key"), "{err}");
    let err = parse("[tls]\nkey = \"/k.pem\"").unwrap_err().to_string();
    assert!(err.contains("tls.certificate"), "{err}");
    let err = parse_with_env("", &[("REGISTRY_HTTP_TLS_KEY", " ")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("REGISTRY_HTTP_TLS_KEY"), "{err}");
    let err = parse_with_env("", &[("REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL", "a@b")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.acme.hosts"), "{err}");
}

#[test]
fn acme_settings_from_distributions_names() {
    let env = [
        (
            "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS",
            "[reg.example,www.reg.example]",
        ),
        (
            "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE",
            "/var/lib/gatehouse/acme",
        ),
        ("REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL", "ops@reg.example"),
        ("GATEHOUSE_ACME_DIRECTORY_CA", "/ca.pem"),
        ("GATEHOUSE_HTTP_ADDR", ":80"),
    ];
    let c = parse_with_env("", &env).unwrap();
    let a = c.acme.expect("acme on");
    assert_eq!(a.hosts, ["reg.example", "www.reg.example"]);
    assert_eq!(a.directory_url, crate::acme::settings::LETS_ENCRYPT);
    assert!(
        !c.warnings.iter().any(|w| w.contains("clear text")),
        "{:?}",
        c.warnings
    );
    assert_eq!(a.challenge, crate::acme::Challenge::Http01);
    // Without the plain-HTTP listener, TLS-ALPN-01 on the main listener; an IP host then has no challenge.
    let alpn = parse_with_env("", &env[..4])
        .unwrap()
        .acme
        .expect("acme on");
    assert_eq!(alpn.challenge, crate::acme::Challenge::TlsAlpn01);
    let mut ip = env[..4].to_vec();
    ip[0] = (
        "REGISTRY_HTTP_TLS_LETSENCRYPT_HOSTS",
        "[reg.example,192.0.2.1]",
    );
    let err = parse_with_env("", &ip).unwrap_err().to_string();
    assert!(
        err.contains("tls.acme.hosts") && err.contains("http_listen"),
        "{err}"
    );
    // Files or ACME, not both.
    let mut both = env.to_vec();
    both.push(("REGISTRY_HTTP_TLS_CERTIFICATE", "/c.pem"));
    both.push(("REGISTRY_HTTP_TLS_KEY", "/k.pem"));
    let err = parse_with_env("", &both).unwrap_err().to_string();
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn an_upgrade_socket_in_a_world_writable_directory_is_warned_about() {
    // /tmp is world-writable: another local user could listen there and receive the listening sockets.
    let c = parse("[server]\nupgrade_socket = \"/tmp/gh-upgrade.sock\"\n").unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("server.upgrade_socket") && w.contains("/tmp")),
        "{:?}",
        c.warnings
    );
    let private = tempfile::tempdir().unwrap();
    let path = private.path().join("upgrade.sock");
    let c = parse(&format!(
        "[server]\nupgrade_socket = {:?}\n",
        path.display().to_string()
    ))
    .unwrap();
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.contains("server.upgrade_socket")),
        "{:?}",
        c.warnings
    );
}
