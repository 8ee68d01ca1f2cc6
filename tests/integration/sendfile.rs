//! Blob downloads the kernel sends (`sendfile`) on a plain-TCP HTTP/1.1 connection to the embedded disk
//! backend: the bytes and ranges are exact, the connection stays alive for the next request and then idles out
//! like any other, and the access log and metrics count what went out. (TLS connections, where the kernel
//! cannot send, take the copying path: the TLS tests pull through it.)

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::adversarial::{embedded, log_text, pass_of, write_users};
use crate::util::embedded::{sha256_of, Reg};
use crate::util::frontdoor::{access_lines, noise, Samples};
use crate::util::gatehouse::Gatehouse;
use crate::util::raw::{self, basic, peek, Peek};
use crate::util::temp_dir;
use tempfile::TempDir;

/// Splits one raw reply into its head (lower-cased) and body.
fn split(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a reply head");
    (
        String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(),
        &raw[end + 4..],
    )
}

/// An embedded gatehouse with `server` lines in `[server]`, holding `len` bytes of noise as a blob of `repo`
/// (pushed as alice); the temp dir, the server, the bytes and their digest.
fn serving_a_blob(
    what: &str,
    server: &str,
    repo: &str,
    len: usize,
    seed: u64,
) -> (TempDir, Gatehouse, Vec<u8>, String) {
    let dir = temp_dir(what);
    let htpasswd = write_users(dir.path());
    let gh = embedded(&dir.path().join("root"), &htpasswd, server, "");
    let reg = Reg::new(&gh.url(), Some(("alice", pass_of("alice"))));
    let data = noise(len, seed);
    let digest = reg.push_blob(repo, &data);
    (dir, gh, data, digest)
}

/// Writes `GET path` as alice on `c`, with `extra` header lines (each ending in CRLF).
fn send_get(c: &mut TcpStream, path: &str, extra: &str) {
    let auth = basic("alice", pass_of("alice"));
    c.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n{extra}\r\n")
            .as_bytes(),
    )
    .unwrap_or_else(|e| panic!("writing GET {path}: {e}"));
}

#[test]
fn sendfile_downloads_are_exact_keep_the_connection_alive_idle_out_and_are_counted() {
    let (_dir, gh, data, digest) = serving_a_blob(
        "sendfile",
        "idle_timeout_seconds = 2\n",
        "direct/blob",
        (3 << 20) + 17,
        91,
    );
    assert_eq!(digest, sha256_of(&data));

    let mut c = TcpStream::connect(("127.0.0.1", gh.port)).expect("connecting");
    let blob = format!("/v2/direct/blob/blobs/{digest}");
    let get = |c: &mut TcpStream, extra: &str| {
        send_get(c, &blob, extra);
        raw::read_one_reply(c, Duration::from_secs(30))
    };

    // The whole blob, a small request and a range, all on one connection.
    let whole = get(&mut c, "");
    let (head, body) = split(&whole);
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", data.len())),
        "{head}"
    );
    assert!(head.contains("connection: keep-alive"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(
        head.contains(&format!("docker-content-digest: {digest}")),
        "{head}"
    );
    assert!(
        body == &data[..],
        "the body is the blob ({} bytes)",
        body.len()
    );

    send_get(&mut c, "/v2/", "");
    let small = raw::read_one_reply(&mut c, Duration::from_secs(10));
    let (head, _) = split(&small);
    assert!(
        head.starts_with("http/1.1 200"),
        "after a direct reply: {head}"
    );

    let ranged = get(&mut c, "Range: bytes=1000-2001999\r\n");
    let (head, body) = split(&ranged);
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(
        head.contains(&format!("content-range: bytes 1000-2001999/{}", data.len())),
        "{head}"
    );
    assert!(body == &data[1000..2_002_000], "the range is exact");

    // Idle after the last reply, a direct one: closed by the idle timeout (2 s), as after any reply.
    let idle_since = Instant::now();
    let mut closed = None;
    while idle_since.elapsed() < Duration::from_secs(20) {
        if peek(&mut c) == Peek::Closed {
            closed = Some(idle_since.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed = closed.expect("the idle connection was never closed");
    assert!(
        closed >= Duration::from_millis(1500),
        "closed after {closed:?}"
    );

    let sent = data.len() + 2_001_000;
    let body = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", gh.metrics_port))
        .expect("GET /metrics")
        .text()
        .expect("metrics text");
    let samples = Samples::parse(&body);
    let direct = samples.sum("gatehouse_http_sendfile_bytes_total", &[]);
    assert_eq!(direct, sent as f64, "sendfile bytes");
    let blob_bytes = samples.sum("gatehouse_http_sent_bytes_total", &[("route", "blob")]);
    assert!(
        blob_bytes >= sent as f64,
        "sent bytes {blob_bytes} < {sent}"
    );
    let lines = access_lines(&log_text(&gh));
    let outs: Vec<(u64, u64)> = lines
        .iter()
        .filter(|l| l["route"] == "blob" && l["method"] == "GET")
        .map(|l| {
            (
                l["status"].as_u64().unwrap_or(0),
                l["bytes_out"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        outs.contains(&(200, data.len() as u64)) && outs.contains(&(206, 2_001_000)),
        "access log of the blob GETs: {outs:?}"
    );
}

/// Review of the sendfile path, F1: a blob GET that carries a body (`Content-Length`, or chunked) got a direct
/// reply with `Connection: keep-alive`, and the body, drained afterwards, was taken for the next request's
/// head: the connection was then held past every timeout. Such a reply now says `Connection: close` and the
/// connection ends with it.
#[test]
fn a_blob_get_with_a_body_is_answered_and_the_connection_closed() {
    let (_dir, gh, data, digest) = serving_a_blob(
        "sendfile-body",
        "idle_timeout_seconds = 2\nheader_timeout_seconds = 2\n",
        "direct/body",
        256 << 10,
        17,
    );
    for (framing, body) in [
        ("Content-Length: 4\r\n", &b"\r\n\r\n"[..]),
        ("Transfer-Encoding: chunked\r\n", &b"0\r\n\r\n"[..]),
    ] {
        let mut c = TcpStream::connect(("127.0.0.1", gh.port)).expect("connecting");
        send_get(&mut c, &format!("/v2/direct/body/blobs/{digest}"), framing);
        let reply = raw::read_one_reply(&mut c, Duration::from_secs(30));
        let (head, got) = split(&reply);
        assert!(head.starts_with("http/1.1 200"), "{framing}: {head}");
        assert!(got == &data[..], "{framing}: the body is the blob");
        assert!(head.contains("connection: close"), "{framing}: {head}");
        let _ = c.write_all(body);
        let since = Instant::now();
        while peek(&mut c) != Peek::Closed {
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "{framing}: the connection is still open 10 s after the reply (idle timeout 2 s)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Review of the sendfile path, F4: a client that keeps reading, slowly, was cut off by the send timeout,
/// because the kernel wakes a writer only once a third of a full send buffer has drained. It now gets the whole
/// blob: a wait that times out while the client's unsent queue shrank goes on.
#[test]
fn a_slow_but_moving_reader_gets_the_whole_blob_past_the_send_timeout() {
    let (_dir, gh, data, digest) = serving_a_blob(
        "sendfile-slow",
        "send_timeout_seconds = 2\n",
        "direct/slow",
        24 << 20,
        29,
    );
    let mut c = TcpStream::connect(("127.0.0.1", gh.port)).expect("connecting");
    send_get(&mut c, &format!("/v2/direct/slow/blobs/{digest}"), "");
    c.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    // 64 KiB every 200 ms (320 KiB/s) for 8 s: far longer between the kernel's wake-ups than the 2 s timeout.
    let mut got = Vec::with_capacity(data.len() + 1024);
    let mut buf = vec![0u8; 64 << 10];
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(8) {
        match std::io::Read::read(&mut c, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading slowly: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Then the rest at full speed: a connection cut meanwhile shows as a short body.
    loop {
        let end = got.windows(4).position(|w| w == b"\r\n\r\n");
        if end.is_some_and(|e| got.len() >= e + 4 + data.len()) {
            break;
        }
        match std::io::Read::read(&mut c, &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the rest: {e}"),
        }
    }
    let (head, body) = split(&got);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(
        body.len(),
        data.len(),
        "the slow reader was cut off after {} of {} bytes",
        body.len(),
        data.len()
    );
    assert!(body == &data[..]);
}
