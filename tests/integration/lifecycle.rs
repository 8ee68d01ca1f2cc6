//! The process lifecycle (issue 10, item 5), against the real binary with the embedded registry: SIGHUP
//! reloads the config file (a good one takes effect in the same process; a broken one leaves the running
//! config in force and says so), SIGTERM exits at once when idle and lets a transfer in flight finish, and
//! SIGQUIT hands the listening sockets to a new process started with `serve --upgrade`: a download in flight
//! on the old process completes, no connection is refused, and new connections are served by the new one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::util::embedded::{sha256_of, Reg};
use crate::util::frontdoor::bcrypt_line;
use crate::util::gatehouse::bin;
use crate::util::http::Http;
use crate::util::process::{scrub_env, Service};
use crate::util::{net, temp_dir, Gatehouse, PASS, USER};

/// The config a lifecycle test starts with: embedded storage under `dir`, htpasswd auth with `realm`, and
/// `extra` appended (more sections).
fn config_text(port: u16, dir: &Path, realm: &str, extra: &str) -> String {
    let htpasswd = dir.join("htpasswd");
    if !htpasswd.exists() {
        std::fs::write(&htpasswd, format!("{}\n", bcrypt_line(USER, PASS, 4))).unwrap();
    }
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nthreads = 2\ngrace_period_seconds = 60\n\
         upgrade_socket = {socket:?}\n\n\
         [auth]\nmode = \"htpasswd\"\nrealm = {realm:?}\nhtpasswd = {htpasswd:?}\n\n\
         [storage]\nroot = {root:?}\ndelete_enabled = true\n\n[guard]\nenabled = false\n{extra}",
        socket = dir.join("upgrade.sock").display().to_string(),
        htpasswd = htpasswd.display().to_string(),
        root = dir.join("data").display().to_string(),
    )
}

/// The realm a fresh connection's 401 names.
fn realm_of(base: &str) -> Option<String> {
    Http::fresh(base)
        .req("GET", "/v2/")
        .send()
        .header("WWW-Authenticate")
}

/// Polls `f` every 50 ms until it is true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        sleep(Duration::from_millis(50));
    }
    f()
}

/// A GET of a blob on a raw connection whose reader the test controls: it reads the head and `first` body
/// bytes, then waits until told to read the rest.
struct Download {
    conn: TcpStream,
    got: Vec<u8>,
    length: usize,
}

impl Download {
    fn start(port: u16, path: &str, first: usize) -> Download {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let auth = crate::util::raw::basic(USER, PASS);
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            conn.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            })
            .expect("a Content-Length");
        let mut got = vec![0u8; first];
        conn.read_exact(&mut got).unwrap();
        Download { conn, got, length }
    }

    /// Reads to the end; returns the whole body.
    fn finish(mut self) -> Vec<u8> {
        self.conn.read_to_end(&mut self.got).unwrap();
        assert_eq!(self.got.len(), self.length, "the whole body arrived");
        self.got
    }
}

/// A blob big enough that a paused reader keeps its transfer in flight (the socket buffers cannot hold it).
fn big_blob() -> Vec<u8> {
    (0..48u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[test]
fn sighup_applies_a_good_config_in_the_same_process() {
    let dir = temp_dir("sighup-good");
    let port = net::free_port();
    let text = config_text(port, dir.path(), "Before", "");
    let mut gh = Gatehouse::start_with(port, &text, &[]);
    let pid = gh.pid();
    let base = gh.url();
    assert_eq!(realm_of(&base).as_deref(), Some("Basic realm=\"Before\""));
    // Before: no rules, alice may push anywhere.
    let reg = Reg::new(&base, Some((USER, PASS)));
    reg.push_blob("open/a", b"before the reload");
    // After: alice may only pull from `open/**`, and the public may pull `pub/**`.
    let extra = "[headers]\nX-Reloaded = [\"yes\"]\n\n[access]\npublic_pull = [\"pub/**\"]\n\n\
                 [[access.rules]]\nrepositories = [\"open/**\"]\nprincipals = [\"alice\"]\nactions = [\"pull\"]\n";
    std::fs::write(
        gh.config_path(),
        config_text(port, dir.path(), "After", extra),
    )
    .unwrap();
    gh.signal(libc::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || realm_of(&base).as_deref()
            == Some("Basic realm=\"After\"")),
        "the new realm is in force after SIGHUP; log:\n{}",
        gh.log_tail()
    );
    let reply = Http::fresh(&base).req("GET", "/v2/").send();
    assert_eq!(reply.header("X-Reloaded").as_deref(), Some("yes"));
    // The new access rules are in force: the push alice made before is now denied.
    Http::fresh(&base)
        .req("POST", "/v2/open/a/blobs/uploads/")
        .creds(USER, PASS)
        .send()
        .expect_error(403, "DENIED");
    Http::fresh(&base)
        .req("GET", "/v2/pub/x/tags/list")
        .send()
        .expect_error(404, "NAME_UNKNOWN");
    assert!(gh.is_running());
    assert_eq!(gh.pid(), pid);
    let log = gh.log_text();
    assert!(log.contains("config reloaded"), "{log}");
    assert!(
        log.contains("auth") && log.contains("headers") && log.contains("access rules"),
        "{log}"
    );
}

#[test]
fn sighup_with_a_broken_config_keeps_the_running_one_and_says_so() {
    let dir = temp_dir("sighup-broken");
    let port = net::free_port();
    let text = config_text(port, dir.path(), "Kept", "");
    let mut gh = Gatehouse::start_with(port, &text, &[]);
    let base = gh.url();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, [0u8, 159, 146, 150, 0, 1]).unwrap();
    let htpasswd = dir.path().join("htpasswd").display().to_string();
    // Not TOML; an unknown auth mode; an htpasswd file that does not load.
    for broken in [
        "[server\nlisten = ".to_string(),
        text.replace("mode = \"htpasswd\"", "mode = \"token\""),
        text.replace("realm = \"Kept\"", "realm = \"Other\"")
            .replace(&htpasswd, &garbage.display().to_string()),
    ] {
        std::fs::write(gh.config_path(), &broken).unwrap();
        let failures = gh.log_text().matches("config reload failed").count();
        gh.signal(libc::SIGHUP);
        assert!(
            eventually(Duration::from_secs(10), || gh
                .log_text()
                .matches("config reload failed")
                .count()
                > failures),
            "a failed reload is logged for:\n{broken}\nlog:\n{}",
            gh.log_tail()
        );
        assert!(gh.is_running(), "a broken config does not stop gatehouse");
        assert_eq!(realm_of(&base).as_deref(), Some("Basic realm=\"Kept\""));
        Http::fresh(&base)
            .req("GET", "/v2/")
            .creds(USER, PASS)
            .send()
            .expect(200);
    }
    // A listener change cannot be applied in place: it is named, and the rest of the config still applies.
    let other = net::free_port();
    let moved = config_text(other, dir.path(), "Moved", "");
    std::fs::write(gh.config_path(), moved).unwrap();
    gh.signal(libc::SIGHUP);
    assert!(eventually(Duration::from_secs(10), || realm_of(&base)
        .as_deref()
        == Some("Basic realm=\"Moved\"")));
    let log = gh.log_text();
    assert!(
        log.contains("need a restart") && log.contains("server.listen"),
        "{log}"
    );
    assert!(!net::port_accepts(other), "no new listener was opened");
}

#[test]
fn sigterm_while_idle_exits_at_once() {
    let dir = temp_dir("sigterm-idle");
    let port = net::free_port();
    let mut gh = Gatehouse::start_with(port, &config_text(port, dir.path(), "R", ""), &[]);
    // An idle keep-alive connection does not hold the exit up either.
    let idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let start = Instant::now();
    gh.signal(libc::SIGTERM);
    let status = gh
        .wait_exit(Duration::from_secs(30))
        .expect("gatehouse exits on SIGTERM");
    let took = start.elapsed();
    drop(idle);
    assert!(status.success(), "{status}");
    // Far below the 60 s grace period: an idle server does not wait it out (measured about 1 s).
    assert!(took < Duration::from_secs(15), "took {took:?}");
    eprintln!("idle SIGTERM exit took {took:?}");
}

#[test]
fn sigterm_lets_a_transfer_in_flight_finish() {
    let dir = temp_dir("sigterm-busy");
    let port = net::free_port();
    let mut gh = Gatehouse::start_with(port, &config_text(port, dir.path(), "R", ""), &[]);
    let reg = Reg::new(&gh.url(), Some((USER, PASS)));
    let blob = big_blob();
    let digest = reg.push_blob("life/busy", &blob);
    let download = Download::start(port, &format!("/v2/life/busy/blobs/{digest}"), 1 << 20);
    gh.signal(libc::SIGTERM);
    // The listener closes; the transfer in flight goes on.
    assert!(
        eventually(Duration::from_secs(15), || !net::port_accepts(port)),
        "the listener closes on SIGTERM"
    );
    sleep(Duration::from_millis(500));
    assert!(gh.is_running(), "gatehouse waits for the transfer");
    let body = download.finish();
    assert_eq!(sha256_of(&body), digest);
    let status = gh
        .wait_exit(Duration::from_secs(30))
        .expect("gatehouse exits once the transfer is done");
    assert!(status.success(), "{status}");
}

/// The new process of an upgrade: the same config and metrics address, `serve --upgrade`.
fn start_upgrade(config: &Path, metrics_port: u16, log: &Path) -> Service {
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    cmd.arg("serve")
        .arg("--upgrade")
        .arg("--config")
        .arg(config);
    cmd.env(
        "GATEHOUSE_METRICS_ADDR",
        format!("127.0.0.1:{metrics_port}"),
    );
    cmd.env("RUST_LOG", "info");
    Service::spawn("gatehouse (upgrade)", cmd, log)
}

#[test]
fn upgrade_hands_the_listeners_over_without_refusing_a_connection() {
    let dir = temp_dir("upgrade");
    let port = net::free_port();
    let mut old = Gatehouse::start_with(port, &config_text(port, dir.path(), "R", ""), &[]);
    let reg = Reg::new(&old.url(), Some((USER, PASS)));
    let blob = big_blob();
    let digest = reg.push_blob("life/upgrade", &blob);
    let download = Download::start(port, &format!("/v2/life/upgrade/blobs/{digest}"), 1 << 20);

    let new_log: PathBuf = dir.path().join("new.log");
    let mut new = start_upgrade(&old.config_path(), old.metrics_port, &new_log);
    assert!(
        eventually(Duration::from_secs(30), || new
            .log_text()
            .contains("waiting for the running")),
        "the new process waits for the sockets; log:\n{}",
        new.log_tail()
    );
    // Give it a moment to listen on the upgrade socket, then hand over.
    assert!(eventually(Duration::from_secs(10), || dir
        .path()
        .join("upgrade.sock")
        .exists()));
    old.signal(libc::SIGQUIT);

    // Every connection is answered throughout; soon the new process answers them.
    let base = old.url();
    let mut served_by_new = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut n = 0;
    while Instant::now() < deadline && !served_by_new {
        n += 1;
        let id = format!("upgrade-probe-{n}");
        Http::fresh(&base)
            .req("GET", "/v2/")
            .creds(USER, PASS)
            .header("X-Request-Id", &id)
            .send()
            .expect(200);
        served_by_new = new.log_text().contains(&id);
        sleep(Duration::from_millis(100));
    }
    assert!(
        served_by_new,
        "a new connection reached the new process; its log:\n{}",
        new.log_tail()
    );
    assert!(new.is_running());

    // The download on the old process completes.
    let body = download.finish();
    assert_eq!(sha256_of(&body), digest);
    let status = old
        .wait_exit(Duration::from_secs(60))
        .expect("the old process exits after handing over");
    assert!(status.success(), "{status}");
    // And the new one keeps serving, data and all.
    let fetched = Http::fresh(&base)
        .req("HEAD", &format!("/v2/life/upgrade/blobs/{digest}"))
        .creds(USER, PASS)
        .send();
    fetched.expect(200);
}

#[test]
fn sigterm_cuts_a_stalled_transfer_when_the_grace_period_ends() {
    let dir = temp_dir("sigterm-stalled");
    let port = net::free_port();
    let text = config_text(port, dir.path(), "R", "")
        .replace("grace_period_seconds = 60", "grace_period_seconds = 2");
    let mut gh = Gatehouse::start_with(port, &text, &[]);
    let reg = Reg::new(&gh.url(), Some((USER, PASS)));
    let digest = reg.push_blob("life/stalled", &big_blob());
    // A client that reads a little and then nothing: the grace period bounds how long it holds the exit up.
    let download = Download::start(port, &format!("/v2/life/stalled/blobs/{digest}"), 1 << 20);
    let start = Instant::now();
    gh.signal(libc::SIGTERM);
    let status = gh
        .wait_exit(Duration::from_secs(30))
        .expect("gatehouse exits once the grace period is over");
    let took = start.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_secs(2),
        "exited before the grace period: {took:?}"
    );
    drop(download);
}
