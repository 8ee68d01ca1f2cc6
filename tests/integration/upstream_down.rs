//! The upstream going away and coming back: with distribution stopped, gatehouse answers 503 with a
//! distribution-style UNAVAILABLE body (API version and CORS headers included) instead of hanging or
//! dying; auth still comes first; once distribution is started again on the same port and data, the very
//! next request succeeds, without restarting gatehouse. A client's keep-alive connection must survive a
//! 503 like any other answer (or be closed with `Connection: close`), since HTTP clients reuse it.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;

use crate::util::http::Http;
use crate::util::oci::{self, MANIFEST};
use crate::util::skopeo;
use crate::util::{door, temp_dir, Distribution, ORIGIN, PASS, REALM, USER};

const MANIFEST_PATH: &str = "/v2/team/steady/manifests/v1";

/// A distribution holding `team/steady:v1`, and that manifest's digest.
fn distribution_with_an_image() -> (Distribution, String) {
    let dist = Distribution::start();
    let work = temp_dir("down");
    let (layout, image) = oci::small_image(&work.path().join("src"), "v1", "upstream down");
    let src = format!("oci:{}:v1", layout.dir().display());
    let dst = format!("docker://{}/team/steady:v1", dist.host());
    skopeo::copy(&src, &dst, None, None, false);
    (dist, image.manifest.digest)
}

#[test]
fn upstream_stopped_gives_503_unavailable_and_restarted_upstream_is_used_at_once() {
    let (mut dist, digest) = distribution_with_an_image();
    let mut gatehouse = door(&dist.url());
    // One connection per request: this test is about the upstream, not about keep-alive.
    let http = Http::fresh(&gatehouse.url());
    let get = |path: &str| {
        http.req("GET", path)
            .creds(USER, PASS)
            .origin(ORIGIN)
            .header("Accept", MANIFEST)
    };
    get("/v2/").send().expect(200).expect_cors(ORIGIN);
    get(MANIFEST_PATH).send().expect(200);

    dist.stop();
    for path in [
        "/v2/",
        MANIFEST_PATH,
        "/v2/_catalog",
        "/v2/team/steady/tags/list",
    ] {
        get(path)
            .send()
            .expect_error(503, "UNAVAILABLE")
            .expect_api_version()
            .expect_cors(ORIGIN);
    }
    http.req("HEAD", MANIFEST_PATH)
        .creds(USER, PASS)
        .send()
        .expect(503)
        .expect_api_version();
    http.req("GET", "/v2/")
        .origin(ORIGIN)
        .send()
        .expect_unauthorized(REALM)
        .expect_cors(ORIGIN);
    assert!(
        gatehouse.is_running(),
        "gatehouse died while its upstream was down:\n{}",
        gatehouse.log_tail()
    );

    dist.restart();
    let reply = get(MANIFEST_PATH).send();
    reply.expect(200).expect_api_version().expect_cors(ORIGIN);
    assert_eq!(
        reply.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str()),
        "{reply:?}"
    );
    get("/v2/").send().expect(200);
}

#[test]
fn upstream_never_started_gives_503_unavailable_then_works_once_it_listens() {
    // Reserve distribution's port and data, stop it, point gatehouse there, then start it again.
    let (mut dist, _) = distribution_with_an_image();
    dist.stop();
    let gatehouse = door(&dist.url());
    let http = Http::fresh(&gatehouse.url());
    for _ in 0..3 {
        http.req("GET", "/v2/")
            .creds(USER, PASS)
            .send()
            .expect_error(503, "UNAVAILABLE")
            .expect_api_version();
    }
    dist.restart();
    http.req("GET", MANIFEST_PATH)
        .creds(USER, PASS)
        .header("Accept", MANIFEST)
        .send()
        .expect(200);
}

/// Sends `GET path` with Basic credentials on `stream` and reads one whole response: (head, body),
/// or the I/O error that ended it.
fn raw_get(stream: &mut TcpStream, host: &str, path: &str) -> std::io::Result<(String, Vec<u8>)> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {basic}\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in a response head:\n{head}"));
    while data.len() < head_end + length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    }
    Ok((head, data[head_end..].to_vec()))
}

/// Regression: gatehouse answered a 503 with `Connection: keep-alive` and then closed the connection,
/// so a client's next request on it failed ("connection reset by peer"; reqwest does not retry that).
#[test]
fn keep_alive_connection_survives_a_503() {
    let (mut dist, _) = distribution_with_an_image();
    let gatehouse = door(&dist.url());
    let host = gatehouse.host();
    let mut stream = TcpStream::connect(&host).expect("connecting to gatehouse");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let (head, _) = raw_get(&mut stream, &host, "/v2/").expect("first request");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    dist.stop();
    for round in 0..3 {
        let (head, body) = raw_get(&mut stream, &host, "/v2/").unwrap_or_else(|e| {
            panic!("request {round} after the upstream stopped, on the same connection: {e}")
        });
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert!(
            String::from_utf8_lossy(&body).contains("UNAVAILABLE"),
            "{head}"
        );
        if head.to_ascii_lowercase().contains("connection: close") {
            return; // Closing is fine when the client is told so.
        }
        // Give a close that was not announced time to happen before the next request.
        std::thread::sleep(Duration::from_millis(300));
    }
    dist.restart();
    let (head, _) = raw_get(&mut stream, &host, MANIFEST_PATH).unwrap_or_else(|e| {
        panic!("request after the upstream came back, on the same connection: {e}")
    });
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
