//! Finding 16: a listener that cannot bind must end the process with a non-zero exit and a message that
//! names the address, so that systemd and docker restart it (it used to log "serving", panic a thread and
//! stay up with `/readyz` 200). Both the registry listener and the metrics listener, the port held by the
//! test's own `TcpListener`.

use std::fs;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::write_users;
use crate::util::frontdoor::toml_str;
use crate::util::gatehouse::bin;
use crate::util::net;
use crate::util::process::scrub_env;
use crate::util::temp_dir;

/// Starts `gatehouse serve` with listen address `listen` and metrics address `metrics`, waits up to 30 s
/// for it to exit, and returns its exit code (`None`: still running, then killed) and its output.
fn serve_until_exit(listen: &str, metrics: &str) -> (Option<i32>, String) {
    let dir = temp_dir("adv-bind");
    let htpasswd = write_users(dir.path());
    let config = dir.path().join("gatehouse.toml");
    fs::write(
        &config,
        format!(
            "[server]\nlisten = {}\nthreads = 2\n\n[auth]\nmode = \"htpasswd\"\nhtpasswd = {}\n\n\
             [storage]\nroot = {}\n\n[metrics]\nlisten = {}\n",
            toml_str(listen),
            toml_str(&htpasswd.display().to_string()),
            toml_str(&dir.path().join("root").display().to_string()),
            toml_str(metrics),
        ),
    )
    .expect("writing the config");
    let log = dir.path().join("out.log");
    let out = fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone"))
        .stderr(out);
    let mut child = cmd.spawn().expect("starting gatehouse");
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        sleep(Duration::from_millis(100));
    };
    (code, fs::read_to_string(&log).unwrap_or_default())
}

fn assert_fails_loudly(taken: &str, code: Option<i32>, output: &str) {
    assert!(
        code.is_some(),
        "gatehouse was still running 30 s after {taken} was found taken; output:\n{output}"
    );
    assert_ne!(
        code,
        Some(0),
        "gatehouse exited 0 although {taken} was taken; output:\n{output}"
    );
    assert!(
        output.contains(taken),
        "the output does not name the address {taken}; output:\n{output}"
    );
}

fn hold_a_port() -> (TcpListener, String) {
    let holder = TcpListener::bind("127.0.0.1:0").expect("binding a port to hold");
    let addr = holder.local_addr().expect("local_addr").to_string();
    (holder, addr)
}

#[test]
fn listen_port_taken_exits_non_zero_naming_the_address() {
    let (_holder, taken) = hold_a_port();
    let metrics = format!("127.0.0.1:{}", net::free_port());
    let (code, output) = serve_until_exit(&taken, &metrics);
    eprintln!("listen {taken} taken: exit {code:?}\n{output}");
    assert_fails_loudly(&taken, code, &output);
}

#[test]
fn metrics_port_taken_exits_non_zero_naming_the_address() {
    let (_holder, taken) = hold_a_port();
    let listen = format!("127.0.0.1:{}", net::free_port());
    let (code, output) = serve_until_exit(&listen, &taken);
    eprintln!("metrics {taken} taken: exit {code:?}\n{output}");
    assert_fails_loudly(&taken, code, &output);
}
