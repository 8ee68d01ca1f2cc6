//! Hostile input at the door, over raw TCP so nothing normalises it first: request smuggling, conflicting
//! lengths, oversized headers, traversal in names. Each case must be refused, must not reach a backend, and
//! must leave the server answering.

use crate::util::{door, Distribution};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `raw` on a new connection and returns everything the server wrote before closing or going quiet.
fn exchange(port: u16, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to gatehouse");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // The server may answer and close before it has read everything (oversized headers): that is fine.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_lines(reply: &str) -> Vec<&str> {
    reply
        .split("\r\n")
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect()
}

fn still_serving(port: u16) {
    let reply = exchange(
        port,
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        reply.starts_with("HTTP/1.1 401"),
        "gatehouse stopped answering after hostile input: {reply:?}"
    );
}

#[test]
fn smuggled_request_behind_content_length_and_chunked_is_never_answered() {
    let upstream = Distribution::start();
    let gh = door(&upstream.url());
    // CL and TE together: a front end that honours one and a back end that honours the other would see
    // a second request. gatehouse must answer at most one and close.
    let reply = exchange(
        gh.port,
        b"POST /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /v2/_catalog HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let lines = status_lines(&reply);
    assert!(
        lines.len() <= 1,
        "a smuggled second request was answered: {reply:?}"
    );
    assert!(
        !reply.contains("repositories"),
        "the smuggled catalog request reached the backend: {reply:?}"
    );
    still_serving(gh.port);
}

#[test]
fn conflicting_content_lengths_are_refused() {
    let upstream = Distribution::start();
    let gh = door(&upstream.url());
    let reply = exchange(
        gh.port,
        b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply:?}");
    still_serving(gh.port);
}

#[test]
fn oversized_and_too_many_headers_are_refused_without_harm() {
    let upstream = Distribution::start();
    let gh = door(&upstream.url());
    let mut big = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let reply = exchange(gh.port, &big);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
        "a 2 MiB header was not refused: {:?}",
        &reply[..reply.len().min(200)]
    );
    let mut many = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..1000 {
        many.extend_from_slice(format!("X-H{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let reply = exchange(gh.port, &many);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 4"),
        "1000 headers were not refused: {reply:?}"
    );
    still_serving(gh.port);
}

#[test]
fn traversal_in_names_never_reaches_the_backend() {
    let upstream = Distribution::start();
    let gh = door(&upstream.url());
    let auth = "Authorization: Basic YWxpY2U6d29uZGVybGFuZC01\r\n"; // alice:wonderland-5
    for path in [
        "/v2/../../etc/passwd/tags/list",
        "/v2/a/%2e%2e/b/tags/list",
        "/v2/a%2fb/tags/list",
        "/v2/A/tags/list",
        "/v2/a//b/tags/list",
        "/v2/a/./b/tags/list",
        "/v2/a/manifests/..%2f..%2fx",
        "/v2/a/blobs/sha256:../../../../etc/passwd",
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
        let reply = exchange(gh.port, raw.as_bytes());
        let status = status_lines(&reply).first().copied().unwrap_or("");
        assert!(
            status.starts_with("HTTP/1.1 400") || status.starts_with("HTTP/1.1 404"),
            "{path}: {reply:?}"
        );
        assert!(
            reply.contains("Docker-Distribution-API-Version: registry/2.0"),
            "{path}: refused by gatehouse itself, with its headers: {reply:?}"
        );
    }
    still_serving(gh.port);
}
