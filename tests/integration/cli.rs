//! The command line: `gatehouse check-config` prints the effective config (file, then env vars on top)
//! with secrets elided; a bad value, from the file or from an env var, makes `check-config` and `serve`
//! exit non-zero with a message that names the key.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::gatehouse::bin;
use crate::util::process::scrub_env;
use crate::util::temp_dir;

const SECRET: &str = "s3cret-upstream-password";

/// Runs `gatehouse ARGS --config FILE` with `config` as the file and `env` on top; waits at most 20 s.
fn gatehouse(args: &[&str], config: &str, env: &[(&str, &str)]) -> Output {
    let dir = temp_dir("cli");
    let path = dir.path().join("gatehouse.toml");
    std::fs::write(&path, config).expect("writing the config");
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    cmd.args(args)
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path());
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting gatehouse");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("gatehouse output");
            panic!(
                "gatehouse {args:?} still running after 20 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("gatehouse output")
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:5811"
[auth]
mode = "htpasswd"
realm = "File Realm"
htpasswd = "./htpasswd"
[upstream]
url = "http://127.0.0.1:5812"
username = "robot"
password = "s3cret-upstream-password"
"#;

#[test]
fn check_config_prints_the_effective_config_with_env_on_top_and_secrets_elided() {
    let out = gatehouse(&["check-config"], GOOD, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check-config of a good file failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("127.0.0.1:5811") && stdout.contains("File Realm"),
        "file values missing:\n{stdout}"
    );
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the upstream password was printed:\n{stdout}"
    );

    let env = [
        ("REGISTRY_HTTP_ADDR", "127.0.0.1:6123"),
        ("REGISTRY_AUTH_HTPASSWD_REALM", "Env Realm"),
    ];
    let out = gatehouse(&["check-config"], GOOD, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check-config with env overrides failed:\n{stdout}"
    );
    assert!(
        stdout.contains("127.0.0.1:6123"),
        "REGISTRY_HTTP_ADDR did not override the file:\n{stdout}"
    );
    assert!(
        stdout.contains("Env Realm"),
        "REGISTRY_AUTH_HTPASSWD_REALM did not override the file:\n{stdout}"
    );
    assert!(
        !stdout.contains(SECRET),
        "the upstream password was printed:\n{stdout}"
    );
}

/// A config file, env vars on top, and the key names of which the error must mention one.
type BadCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn a_bad_value_fails_check_config_and_serve_naming_the_key() {
    let bad_file = GOOD.replace("mode = \"htpasswd\"", "mode = \"kerberos\"");
    let cases: [BadCase; 3] = [
        (&bad_file, &[], &["auth.mode"]),
        (
            GOOD,
            &[("REGISTRY_AUTH", "kerberos")],
            &["auth.mode", "REGISTRY_AUTH"],
        ),
        (
            GOOD,
            &[("REGISTRY_HTTP_ADDR", "not-an-address")],
            &["server.listen", "REGISTRY_HTTP_ADDR"],
        ),
    ];
    for (config, env, keys) in cases {
        for command in ["check-config", "serve"] {
            let out = gatehouse(&[command], config, env);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "gatehouse {command} accepted a bad value (env {env:?})"
            );
            assert!(
                keys.iter().any(|key| stderr.contains(key)),
                "gatehouse {command}'s error does not name any of {keys:?} (env {env:?}):\n{stderr}"
            );
        }
    }
}

/// Waits (up to 10 s, for the log writer to catch up) until gatehouse's log holds `needle`; returns the log.
fn log_with(g: &crate::util::gatehouse::Gatehouse, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(g.dir().join("gatehouse.log")).unwrap_or_default();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A config for `serve` on 127.0.0.1:`port`, embedded storage and htpasswd under the working directory.
fn serve_config(port: u16) -> String {
    format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\nroot = \"./data\"\n[auth]\nhtpasswd = \"./data/htpasswd\"\n")
}

#[test]
fn empty_registry_auth_fails_check_config_and_serve_naming_the_variable() {
    for command in ["check-config", "serve"] {
        let out = gatehouse(&[command], GOOD, &[("REGISTRY_AUTH", "")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "gatehouse {command} with REGISTRY_AUTH= (empty) was accepted: an open registry"
        );
        assert!(
            stderr.contains("REGISTRY_AUTH") && stderr.contains("none"),
            "gatehouse {command}'s error does not name REGISTRY_AUTH and the way to say none:\n{stderr}"
        );
    }
    // An empty auth.mode in the file is refused too.
    let out = gatehouse(
        &["check-config"],
        &GOOD.replace("mode = \"htpasswd\"", "mode = \"\""),
        &[],
    );
    assert!(!out.status.success(), "auth.mode = \"\" was accepted");
}

#[test]
fn auth_none_on_a_public_address_warns_naming_the_address_at_startup() {
    let port = crate::util::net::free_port();
    let config = format!("[server]\nlisten = \"0.0.0.0:{port}\"\n[storage]\nroot = \"./data\"\n");
    let g =
        crate::util::gatehouse::Gatehouse::start_with(port, &config, &[("REGISTRY_AUTH", "none")]);
    let log = log_with(&g, "not a loopback address");
    assert!(
        log.contains("not a loopback address") && log.contains(&format!("0.0.0.0:{port}")),
        "no warning naming the public address with auth off:\n{log}"
    );
    // On loopback there is nothing to warn about.
    let out = gatehouse(&["check-config"], GOOD, &[("REGISTRY_AUTH", "none")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("not a loopback"), "{stderr}");
}

#[test]
fn upstream_url_password_is_not_printed_by_check_config_or_the_startup_log() {
    const IN_URL: &str = "url-embedded-s3cret";
    let url = format!("http://robot:{IN_URL}@127.0.0.1:5812");
    let config = GOOD
        .replace(
            "url = \"http://127.0.0.1:5812\"",
            &format!("url = \"{url}\""),
        )
        .replace(
            "username = \"robot\"\npassword = \"s3cret-upstream-password\"\n",
            "",
        );
    let out = gatehouse(&["check-config"], &config, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains(IN_URL) && !stderr.contains(IN_URL),
        "check-config printed the URL's password:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("robot:<elided>@127.0.0.1:5812"), "{stdout}");

    let port = crate::util::net::free_port();
    let serve = format!("{}[upstream]\nurl = \"{url}\"\n", serve_config(port));
    let g = crate::util::gatehouse::Gatehouse::start_with(port, &serve, &[]);
    let log = log_with(&g, "fronting an upstream registry");
    assert!(log.contains("fronting an upstream registry"), "{log}");
    assert!(
        !log.contains(IN_URL),
        "the startup log holds the URL's password:\n{log}"
    );
    // The same from the environment, and in an error.
    let out = gatehouse(
        &["check-config"],
        GOOD,
        &[(
            "GATEHOUSE_UPSTREAM_URL",
            "ftp://robot:url-embedded-s3cret@x",
        )],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("GATEHOUSE_UPSTREAM_URL"), "{stderr}");
    assert!(!stderr.contains(IN_URL), "{stderr}");
}

#[test]
fn unknown_and_unimplemented_variables_are_named() {
    let out = gatehouse(&["serve"], GOOD, &[("GATEHOUSE_UPSTREAM_ULR", "http://x")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a typo'd GATEHOUSE_ variable was ignored"
    );
    assert!(
        stderr.contains("GATEHOUSE_UPSTREAM_ULR")
            && stderr.contains("did you mean GATEHOUSE_UPSTREAM_URL?"),
        "{stderr}"
    );
    let out = gatehouse(&["serve"], GOOD, &[("REGISTRY_STORAGE", "gcs")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "REGISTRY_STORAGE=gcs was ignored: the data would go elsewhere"
    );
    assert!(stderr.contains("REGISTRY_STORAGE"), "{stderr}");
    let out = gatehouse(
        &["check-config"],
        GOOD,
        &[
            ("REGISTRY_HTTP_TLS_CIPHERSUITES", "[TLS_AES_128_GCM_SHA256]"),
            ("REGISTRY_PROXY_REMOTEURL", "https://registry-1.docker.io"),
            // Set by Kubernetes for a service named `registry`: not the user's doing.
            ("REGISTRY_SERVICE_HOST", "10.0.0.7"),
            ("REGISTRY_PORT", "tcp://10.0.0.7:5000"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("REGISTRY_HTTP_TLS_CIPHERSUITES") && stderr.contains("rustls"),
        "{stderr}"
    );
    assert!(
        stderr.contains("REGISTRY_PROXY_REMOTEURL") && stderr.contains("pull-through cache"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("REGISTRY_SERVICE_HOST") && !stderr.contains("REGISTRY_PORT"),
        "{stderr}"
    );
}

#[test]
fn invalid_gatehouse_log_warns_and_the_first_start_password_is_always_shown() {
    for level in ["verbose", "off", "error"] {
        let port = crate::util::net::free_port();
        let g = crate::util::gatehouse::Gatehouse::start_with(
            port,
            &serve_config(port),
            &[("GATEHOUSE_LOG", level)],
        );
        let log = log_with(&g, "created htpasswd with user `admin` and password");
        assert!(
            log.contains("created htpasswd with user `admin` and password"),
            "GATEHOUSE_LOG={level} hid the one-time admin password:\n{log}"
        );
        if level == "verbose" {
            let log = log_with(&g, "gatehouse serving");
            assert!(
                log.contains("GATEHOUSE_LOG") && log.contains("ignored"),
                "{log}"
            );
            assert!(
                log.contains("gatehouse serving"),
                "not logging at info:\n{log}"
            );
        }
    }
}

#[test]
fn a_missing_config_file_is_reported_with_its_os_error_once() {
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    let out = cmd
        .args(["check-config", "--config", "/nonexistent/gatehouse.toml"])
        .output()
        .expect("running gatehouse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/gatehouse.toml"), "{stderr}");
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    let out = cmd
        .arg("check-config")
        .env("GATEHOUSE_CONFIG", "")
        .output()
        .expect("running gatehouse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("GATEHOUSE_CONFIG"),
        "{stderr}"
    );
}

#[test]
fn registry_http_addr_may_name_a_host() {
    let port = crate::util::net::free_port();
    let addr = format!("localhost:{port}");
    let g = crate::util::gatehouse::Gatehouse::start_with(
        port,
        &serve_config(1),
        &[("REGISTRY_HTTP_ADDR", addr.as_str())],
    );
    let log = log_with(&g, "gatehouse serving");
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
}
