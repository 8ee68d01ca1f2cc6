//! Findings 6 and 2: clients that hold connections without finishing them. Idle keep-alives, request heads
//! sent halfway, heads trickled one line at a time and stalled bodies are each closed by gatehouse within its
//! configured timeout while a new client is still served; downloads that are never read hold no thread and
//! little memory, are closed after the send timeout, and do not slow a well-behaved client; a slow reader
//! that keeps reading is not cut off. Embedded backend; bounds are generous (the figures are in
//! benches/hostile.sh).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{embedded, pass_of, write_users};
use crate::util::embedded::{sha256_of, Reg, ACCEPT_ALL};
use crate::util::frontdoor::noise;
use crate::util::gatehouse::Gatehouse;
use crate::util::http::Http;
use crate::util::raw::{self, basic, open_sockets, peek, threads, vm_rss_kib, Peek};
use crate::util::temp_dir;

/// The timeouts under test, short enough for a test.
const TIMEOUTS: &str = "idle_timeout_seconds = 2\nheader_timeout_seconds = 3\n\
                        body_timeout_seconds = 3\nsend_timeout_seconds = 3\n";

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connecting to gatehouse")
}

/// One group of held connections and when gatehouse closed each.
struct Group {
    what: &'static str,
    conns: Vec<Option<TcpStream>>,
    closed_after: Vec<Option<Duration>>,
}

impl Group {
    fn new(what: &'static str, conns: Vec<TcpStream>) -> Group {
        let n = conns.len();
        Group {
            what,
            conns: conns.into_iter().map(Some).collect(),
            closed_after: vec![None; n],
        }
    }

    /// Peeks at every connection still open; records those gatehouse closed.
    fn sweep(&mut self, since: Instant) {
        for (conn, closed) in self.conns.iter_mut().zip(self.closed_after.iter_mut()) {
            if let Some(c) = conn {
                if peek(c) == Peek::Closed {
                    *closed = Some(since.elapsed());
                    *conn = None;
                }
            }
        }
    }

    fn open(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }
}

/// Times a fresh client's authenticated `GET /v2/` (cached credentials) while the others hold on.
fn probe(base: &str, user: &str) -> Duration {
    let http = Http::fresh(base);
    let started = Instant::now();
    http.req("GET", "/v2/")
        .creds(user, pass_of(user))
        .send()
        .expect(200);
    started.elapsed()
}

#[test]
fn idle_half_sent_trickling_and_stalled_body_connections_are_closed_within_their_timeouts() {
    let dir = temp_dir("adv-idle");
    let htpasswd = write_users(dir.path());
    let gh = embedded(&dir.path().join("root"), &htpasswd, TIMEOUTS, "");
    let port = gh.port;
    let base = gh.url();
    probe(&base, "bob");
    let auth = basic("bob", pass_of("bob"));
    let baseline = open_sockets(gh.pid());

    // 200 keep-alives that got their answer and then say nothing.
    let mut idle = Vec::new();
    for _ in 0..200 {
        let mut c = connect(port);
        c.write_all(
            format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
        )
        .expect("writing a request");
        raw::read_one_reply(&mut c, Duration::from_secs(30));
        idle.push(c);
    }
    // 50 request heads cut off halfway.
    let half: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = connect(port);
            c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nAccept: */")
                .expect("writing half a head");
            c
        })
        .collect();
    // 50 heads trickled one header line a second, never finished.
    let trickle: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut c = connect(port);
            c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
                .expect("writing a request line");
            c
        })
        .collect();
    // 20 upload bodies that stop after 100 of 1,048,576 bytes.
    let digest = sha256_of(&noise(1 << 20, 5));
    let stalled_body: Vec<TcpStream> = (0..20)
        .map(|i| {
            let mut c = connect(port);
            let head = format!(
                "POST /v2/bob/stall{i}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n\
                 Authorization: {auth}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Length: 1048576\r\n\r\n"
            );
            c.write_all(head.as_bytes())
                .expect("writing an upload head");
            c.write_all(&[7u8; 100])
                .expect("writing the first body bytes");
            c
        })
        .collect();
    let since = Instant::now();
    let mut groups = [
        Group::new("idle keep-alive (idle_timeout 2 s)", idle),
        Group::new("half-sent head (header_timeout 3 s)", half),
        Group::new("trickled head (header_timeout 3 s)", trickle),
        Group::new("stalled body (body_timeout 3 s)", stalled_body),
    ];
    let limit = Duration::from_secs(15);
    let mut slowest_probe = Duration::ZERO;
    let mut line = 0;
    while since.elapsed() < limit && groups.iter().any(|g| g.open() > 0) {
        line += 1;
        let trickled = &mut groups[2];
        for (c, closed) in trickled
            .conns
            .iter_mut()
            .zip(trickled.closed_after.iter_mut())
        {
            if let Some(conn) = c {
                if conn
                    .write_all(format!("X-Trickle-{line}: y\r\n").as_bytes())
                    .is_err()
                {
                    *closed = Some(since.elapsed());
                    *c = None;
                }
            }
        }
        for _ in 0..5 {
            for g in groups.iter_mut() {
                g.sweep(since);
            }
            sleep(Duration::from_millis(200));
        }
        slowest_probe = slowest_probe.max(probe(&base, "bob"));
    }
    let mut wrong = Vec::new();
    for g in &groups {
        let latest = g.closed_after.iter().flatten().max();
        eprintln!(
            "{}: {} of {} still open after {:?}; latest close at {latest:?}",
            g.what,
            g.open(),
            g.conns.len(),
            since.elapsed()
        );
        if g.open() > 0 {
            wrong.push(format!(
                "{}: {} of {} connections still open {limit:?} after they went quiet",
                g.what,
                g.open(),
                g.conns.len()
            ));
        }
    }
    eprintln!(
        "slowest new client meanwhile: {slowest_probe:?}; gatehouse sockets {} (baseline {baseline})",
        open_sockets(gh.pid())
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        slowest_probe < Duration::from_secs(1),
        "a new client waited {slowest_probe:?} while the others held connections"
    );
    assert!(
        open_sockets(gh.pid()) <= baseline + 5,
        "gatehouse still holds {} sockets (baseline {baseline})",
        open_sockets(gh.pid())
    );
    // A stalled body is told so: 408, as config/gatehouse.toml says (it was a 400).
    let mut c = connect(port);
    let start = format!(
        "POST /v2/bob/stall408/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    c.write_all(start.as_bytes()).expect("starting an upload");
    let started =
        String::from_utf8_lossy(&raw::read_one_reply(&mut c, Duration::from_secs(10))).to_string();
    let location = started
        .lines()
        .find_map(|l| {
            l.strip_prefix("location: ")
                .or_else(|| l.strip_prefix("Location: "))
        })
        .unwrap_or_else(|| panic!("no Location: {started}"))
        .trim()
        .to_string();
    c.write_all(
        format!(
            "PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("writing a chunk head");
    c.write_all(&[1u8; 10]).expect("the first bytes");
    let reply =
        String::from_utf8_lossy(&raw::read_one_reply(&mut c, Duration::from_secs(30))).to_string();
    assert!(reply.starts_with("HTTP/1.1 408"), "a stalled body: {reply}");
}

/// A 64 MiB blob in `big/blob` and a small image in `small/app:v1`, pushed as alice; returns the blob digest.
fn push_big(gh: &Gatehouse) -> String {
    let reg = Reg::new(&gh.url(), Some(("alice", pass_of("alice"))));
    let big = noise(64 << 20, 64);
    let digest = reg.push_blob("big/blob", &big);
    reg.push_image("small/app", "v1", "slow readers");
    reg.get_manifest("small/app", "v1").expect(200);
    digest
}

/// `count` connections that each ask for `digest` and never read a byte.
fn stall_downloads(port: u16, digest: &str, count: usize) -> Vec<TcpStream> {
    let auth = basic("alice", pass_of("alice"));
    (0..count)
        .map(|_| {
            let mut c = connect(port);
            c.write_all(
                format!(
                    "GET /v2/big/blob/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n"
                )
                .as_bytes(),
            )
            .expect("writing a blob GET");
            c
        })
        .collect()
}

/// Times `GET /v2/small/app/manifests/v1` on a fresh connection as `user`.
fn timed_manifest_get(base: &str, user: &str) -> Duration {
    let http = Http::fresh(base);
    let started = Instant::now();
    http.req("GET", "/v2/small/app/manifests/v1")
        .creds(user, pass_of(user))
        .header("Accept", ACCEPT_ALL)
        .send()
        .expect(200);
    started.elapsed()
}

#[test]
fn stalled_downloads_hold_no_thread_and_little_memory_and_others_are_still_served() {
    let dir = temp_dir("adv-stall");
    let htpasswd = write_users(dir.path());
    let gh = embedded(&dir.path().join("root"), &htpasswd, "", "");
    let digest = push_big(&gh);
    let before = (threads(gh.pid()), vm_rss_kib(gh.pid()));
    let conns = stall_downloads(gh.port, &digest, 300);
    sleep(Duration::from_secs(3));
    let mut peak = (0, 0);
    let mut slowest = (Duration::ZERO, Duration::ZERO);
    for user in ["bob", "carol", "lead"] {
        // alice's credentials are cached; bob, carol and lead log in for the first time.
        slowest.0 = slowest.0.max(timed_manifest_get(&gh.url(), "alice"));
        slowest.1 = slowest.1.max(timed_manifest_get(&gh.url(), user));
        peak = (
            peak.0.max(threads(gh.pid())),
            peak.1.max(vm_rss_kib(gh.pid())),
        );
        sleep(Duration::from_millis(500));
    }
    eprintln!(
        "300 stalled 64 MiB downloads: threads {} -> {}, VmRSS {} -> {} KiB; slowest cached GET {:?}, \
         slowest first login {:?}",
        before.0, peak.0, before.1, peak.1, slowest.0, slowest.1
    );
    assert!(peak.0 < 64, "gatehouse grew to {} threads", peak.0);
    assert!(
        peak.1 < 300 * 1024,
        "gatehouse's VmRSS reached {} MiB",
        peak.1 / 1024
    );
    assert!(
        slowest.0 < Duration::from_secs(2),
        "a cached-credential manifest GET took {:?}",
        slowest.0
    );
    assert!(
        slowest.1 < Duration::from_secs(2),
        "a first login took {:?}",
        slowest.1
    );
    drop(conns);
}

#[test]
fn stalled_downloads_are_closed_after_the_send_timeout_but_a_slow_reader_is_not() {
    let dir = temp_dir("adv-send");
    let htpasswd = write_users(dir.path());
    let gh = embedded(&dir.path().join("root"), &htpasswd, TIMEOUTS, "");
    let digest = push_big(&gh);
    let baseline = open_sockets(gh.pid());
    let mut slow = stall_downloads(gh.port, &digest, 1).remove(0);
    let conns = stall_downloads(gh.port, &digest, 100);
    let since = Instant::now();
    // The slow reader takes 64 KiB every 250 ms (256 KiB/s): slow, but it never stops for a second.
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut closed_at = None;
    while since.elapsed() < Duration::from_secs(12) {
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => {
                closed_at = Some(since.elapsed());
                break;
            }
            Ok(n) => got += n,
        }
        sleep(Duration::from_millis(250));
    }
    let sockets = open_sockets(gh.pid());
    eprintln!(
        "after {:?}: gatehouse holds {sockets} sockets (baseline {baseline}, 101 downloads); the slow reader \
         read {got} bytes, closed at {closed_at:?}",
        since.elapsed()
    );
    assert_eq!(
        closed_at, None,
        "a slow reader that kept reading was cut off after {got} bytes"
    );
    assert!(
        got > 1 << 20,
        "the slow reader got only {got} bytes in 12 s"
    );
    assert!(
        sockets <= baseline + 5,
        "12 s after 100 downloads stopped reading (send timeout 3 s), gatehouse holds {sockets} sockets \
         (baseline {baseline})"
    );
    drop(conns);
}
