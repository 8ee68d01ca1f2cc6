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
