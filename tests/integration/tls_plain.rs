//! The plain-HTTP listener next to the TLS one, with curl: reads get 301 and writes 308 to the TLS
//! listener's port (or the configured public URL), a client that follows lands on https and negotiates h2,
//! unknown ACME challenge tokens are 404, and nothing of the registry is served in clear text.

use crate::tls::{curl, start_on, Key, Pki};
use crate::util::{net, temp_dir};

/// `curl -X METHOD URL` without following: (status, Location).
fn redirect_of(method: &str, url: &str, host: Option<&str>) -> (String, String) {
    let host_header = host.map(|h| format!("Host: {h}"));
    // curl's -X HEAD would wait for a body; --head knows there is none.
    let mut args = if method == "HEAD" {
        vec!["--head"]
    } else {
        vec!["-X", method]
    };
    args.extend(["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}"]);
    if let Some(h) = &host_header {
        args.extend(["-H", h.as_str()]);
    }
    args.push(url);
    let out = curl(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, location) = text.split_once(' ').unwrap_or((&text, ""));
    (status.to_string(), location.to_string())
}

#[test]
fn plain_http_redirects_reads_301_and_writes_308_to_the_tls_port() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 51, Key::Ec, false);
    let work = temp_dir("tls-plain");
    let (port, http_port) = (net::free_port(), net::free_port());
    let webroot = work.path().join("webroot");
    let challenges = webroot.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&challenges).unwrap();
    std::fs::write(challenges.join("Tok_1-a"), "Tok_1-a.thumbprint").unwrap();
    let server = format!(
        "http_listen = \"127.0.0.1:{http_port}\"\nacme_webroot = {}\n",
        crate::util::frontdoor::toml_str(&webroot.display().to_string())
    );
    let gh = start_on(
        port,
        &server,
        &work.path().join("data"),
        &cert,
        &key,
        "",
        true,
    );
    crate::util::frontdoor::wait_accepting(http_port, std::time::Duration::from_secs(10));
    let base = format!("http://localhost:{http_port}");
    let cases = [
        ("GET", "/v2/", "301"),
        ("HEAD", "/v2/team/app/manifests/v1", "301"),
        ("PUT", "/v2/team/app/manifests/v1", "308"),
        (
            "POST",
            "/v2/team/app/blobs/uploads/?mount=sha256:ab&from=x",
            "308",
        ),
        ("DELETE", "/v2/team/app/manifests/v1", "308"),
        ("PATCH", "/v2/team/app/blobs/uploads/u", "308"),
    ];
    for (method, path, status) in cases {
        let (got, location) = redirect_of(method, &format!("{base}{path}"), None);
        assert_eq!(got, status, "{method} {path}");
        assert_eq!(
            location,
            format!("https://localhost:{port}{path}"),
            "{method} {path}"
        );
    }
    // A Host header that is not a host name is refused, not redirected somewhere else.
    let (got, location) = redirect_of("GET", &format!("{base}/v2/"), Some("evil.example/x"));
    assert_eq!((got.as_str(), location.as_str()), ("400", ""));
    // Unknown challenge tokens.
    let (got, _) = redirect_of(
        "GET",
        &format!("{base}/.well-known/acme-challenge/nothing"),
        None,
    );
    assert_eq!(got, "404");
    // A token an outside ACME client (certbot --webroot) wrote.
    let out = curl(&[&format!("{base}/.well-known/acme-challenge/Tok_1-a")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Tok_1-a.thumbprint");

    // A client that follows ends on the TLS listener, speaking h2, and is challenged for credentials there.
    let ca = pki.ca().display().to_string();
    let out = curl(&[
        "-L",
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code} %{url_effective}",
        &format!("{base}/v2/"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("2 401 https://localhost:{port}/v2/"),
        "{out:?}"
    );
    drop(gh);
}

#[test]
fn plain_http_redirects_name_the_public_url() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 52, Key::Ec, false);
    let work = temp_dir("tls-plain-public");
    let (port, http_port) = (net::free_port(), net::free_port());
    let server = format!(
        "http_listen = \"127.0.0.1:{http_port}\"\npublic_url = \"https://registry.example\"\n"
    );
    let _gh = start_on(
        port,
        &server,
        &work.path().join("data"),
        &cert,
        &key,
        "",
        true,
    );
    crate::util::frontdoor::wait_accepting(http_port, std::time::Duration::from_secs(10));
    let url = format!("http://127.0.0.1:{http_port}/v2/_catalog?n=10");
    let (got, location) = redirect_of("GET", &url, Some("other.example"));
    assert_eq!(got, "301");
    assert_eq!(location, "https://registry.example/v2/_catalog?n=10");
}

/// The plain-HTTP listener faces the internet like the TLS one, but had none of its connection limits (found in
/// review): a connection that sent nothing, or half a request head, stayed open for good, and one address could
/// hold any number. It now has the main listener's timeouts and per-address cap.
#[test]
fn plain_http_listener_closes_quiet_and_half_sent_connections_and_caps_one_address() {
    use crate::util::raw::{peek, Peek};
    use std::io::Write;
    use std::time::{Duration, Instant};
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 53, Key::Ec, false);
    let work = temp_dir("tls-plain-limits");
    let (port, http_port) = (net::free_port(), net::free_port());
    let server = format!(
        "http_listen = \"127.0.0.1:{http_port}\"\nidle_timeout_seconds = 2\nheader_timeout_seconds = 2\n\
         max_connections_per_client = 2\n"
    );
    let _gh = start_on(
        port,
        &server,
        &work.path().join("data"),
        &cert,
        &key,
        "",
        true,
    );
    crate::util::frontdoor::wait_accepting(http_port, Duration::from_secs(10));
    // wait_accepting's own probe connection may still hold a slot for a moment.
    std::thread::sleep(Duration::from_millis(500));
    let connect = || std::net::TcpStream::connect(("127.0.0.1", http_port)).expect("connecting");
    // Two connections whose slots are surely taken: each got an answer. Then one goes quiet (idle timeout) and
    // the other sends half a request head (header timeout).
    let ask = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut quiet = connect();
    quiet.write_all(ask).unwrap();
    crate::util::raw::read_one_reply(&mut quiet, Duration::from_secs(10));
    let quiet_since = Instant::now();
    let mut half = connect();
    half.write_all(ask).unwrap();
    crate::util::raw::read_one_reply(&mut half, Duration::from_secs(10));
    half.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nAccept: */")
        .unwrap();
    let half_since = Instant::now();
    // A third from the same address is closed at once, while the two are open.
    let mut third = connect();
    let t0 = Instant::now();
    let mut third_closed = None;
    while third_closed.is_none() && t0.elapsed() < Duration::from_secs(5) {
        if peek(&mut third) == Peek::Closed {
            third_closed = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        third_closed.is_some(),
        "a third connection over a cap of 2 stayed open"
    );
    // The two it holds are closed by their timeouts (2 s each), not left open.
    let mut closed = [None, None];
    while closed.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(15) {
        for ((c, since), at) in [(&mut quiet, quiet_since), (&mut half, half_since)]
            .into_iter()
            .zip(closed.iter_mut())
        {
            if at.is_none() && peek(c) == Peek::Closed {
                *at = Some(since.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (what, at) in ["a connection gone quiet", "half a request head"]
        .iter()
        .zip(closed)
    {
        let at = at.unwrap_or_else(|| panic!("{what} was still open 15 s later"));
        assert!(
            at >= Duration::from_millis(1500),
            "{what} closed too early: {at:?}"
        );
    }
    // With its slots back, the address is served again.
    let (got, _) = redirect_of("GET", &format!("http://127.0.0.1:{http_port}/v2/"), None);
    assert_eq!(got, "301");
}
