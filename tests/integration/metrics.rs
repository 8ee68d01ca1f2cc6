//! Observability (issue 5) against a running gatehouse in front of a real distribution: after a scripted
//! skopeo push and pull plus some 401s, the scrape agrees with the JSON access log request for request (by
//! route kind, method and status) and byte for byte, the byte counters cover the blob sizes moved, nothing is
//! labelled by repository, and `promtool check metrics` accepts it; the access log has exactly one line per
//! request (by the `X-Request-Id` the test set, echoed back), names the user, and never holds credentials;
//! `/healthz`, `/readyz` (503 once the upstream is gone, 200 when it is back) and `gatehouse healthcheck`;
//! the metrics address from `GATEHOUSE_METRICS_ADDR`, and Basic auth on `/metrics` only; `X-Request-Id` is
//! passed upstream (checked with a stand-in upstream that records request heads).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::util::frontdoor::{
    access_lines, bcrypt_line, file_text, fresh_seed, noise, plain_client, within, Front,
    FrontConfig, Samples,
};
use crate::util::gatehouse::bin;
use crate::util::http::Http;
use crate::util::oci::Layout;
use crate::util::process::{require_tool, scrub_env};
use crate::util::{net, skopeo, temp_dir, Distribution, Gatehouse};

const USER: &str = "metrics-user";
const PASS: &str = "m3trics-Pa55word";
const WRONG: &str = "not-the-Pa55word";

/// A gatehouse (JSON logs, metrics listener) in front of `dist`, with [`USER`] at cost 5.
fn start(dist: &Distribution) -> (Front, tempfile::TempDir) {
    let dir = temp_dir("metrics");
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, file_text(&[bcrypt_line(USER, PASS, 5)])).expect("writing htpasswd");
    (Front::start(&FrontConfig::new(&dist.url(), &path)), dir)
}

/// Runs `promtool check metrics` on `text`; panics (the test fails) when promtool is missing or objects.
fn promtool_accepts(text: &str) {
    let bin = require_tool("promtool", "prometheus");
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feeding promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics rejected the scrape ({}):\n{}{}\n--- scrape ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (route, method, status) → count, from the access log.
fn log_counts(lines: &[serde_json::Value]) -> BTreeMap<(String, String, String), f64> {
    let mut counts = BTreeMap::new();
    for l in lines {
        let key = (
            l["route"].as_str().unwrap_or("?").to_string(),
            l["method"].as_str().unwrap_or("?").to_string(),
            l["status"]
                .as_u64()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        );
        *counts.entry(key).or_insert(0.0) += 1.0;
    }
    counts
}

/// (route, method, status) → count, from the scrape.
fn metric_counts(m: &Samples) -> BTreeMap<(String, String, String), f64> {
    let mut counts = BTreeMap::new();
    for s in m.matching("gatehouse_http_requests_total", &[]) {
        let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        if s.value > 0.0 {
            counts.insert((label("route"), label("method"), label("status")), s.value);
        }
    }
    counts
}

/// Sum of an access-log number field over the lines of `route`.
fn log_bytes(lines: &[serde_json::Value], route: &str, field: &str) -> f64 {
    lines
        .iter()
        .filter(|l| l["route"] == route)
        .map(|l| l[field].as_f64().unwrap_or(0.0))
        .sum()
}

#[test]
fn metrics_match_a_skopeo_push_and_pull_and_the_access_log() {
    let dist = Distribution::start();
    let (front, _dir) = start(&dist);
    let host = front.gh.host();

    // An image with a 300 KB incompressible layer, unique to this run.
    let img_dir = temp_dir("metrics-img");
    let layout = Layout::create(&img_dir.path().join("oci"));
    let payload = noise(300_000, fresh_seed());
    let image = layout.image("amd64", &[("payload.bin", &payload)]);
    layout.tag("v1", &image.manifest);
    let pushed = image.layer.size + image.config.size;
    assert!(
        image.layer.size > 290_000,
        "the layer compressed: {}",
        image.layer.size
    );

    skopeo::copy(
        &format!("oci:{}:v1", layout.dir().display()),
        &format!("docker://{host}/metrics/app:v1"),
        None,
        Some((USER, PASS)),
        false,
    );
    let pull_dir = temp_dir("metrics-pull");
    skopeo::copy(
        &format!("docker://{host}/metrics/app:v1"),
        &format!("oci:{}:v1", pull_dir.path().join("oci").display()),
        Some((USER, PASS)),
        None,
        false,
    );

    // Requests of our own, each with an X-Request-Id.
    let http = Http::new(&front.url());
    let manifest_path = "/v2/metrics/app/manifests/v1";
    let layer_path = format!("/v2/metrics/app/blobs/{}", image.layer.digest);
    let mut mine: Vec<(String, u16)> = Vec::new();
    let mut send = |id: &str, method: &str, path: &str, creds: Option<(&str, &str)>, want: u16| {
        let mut req = http
            .req(method, path)
            .header("X-Request-Id", id)
            .header("Accept", crate::util::oci::MANIFEST);
        if let Some((u, p)) = creds {
            req = req.creds(u, p);
        }
        let reply = req.send();
        reply.expect(want);
        assert_eq!(
            reply.header("X-Request-Id").as_deref(),
            Some(id),
            "X-Request-Id not echoed:\n{reply:?}"
        );
        mine.push((id.to_string(), want));
    };
    for i in 0..3 {
        send(&format!("gh-anon-{i}"), "GET", "/v2/", None, 401);
    }
    for i in 0..2 {
        send(
            &format!("gh-bad-{i}"),
            "GET",
            "/v2/",
            Some((USER, WRONG)),
            401,
        );
    }
    send("gh-manifest", "GET", manifest_path, Some((USER, PASS)), 200);
    send(
        "gh-head-layer",
        "HEAD",
        &layer_path,
        Some((USER, PASS)),
        200,
    );
    send(
        "gh-missing",
        "GET",
        "/v2/metrics/app/manifests/nope",
        Some((USER, PASS)),
        404,
    );
    send(
        "gh-unrouted",
        "GET",
        "/not-the-api",
        Some((USER, PASS)),
        404,
    );
    send("gh-unknown", "GET", "/v2/", Some(("nobody", PASS)), 401);
    let reply = http
        .req("GET", "/v2/")
        .header("X-Request-Id", "gh-malformed")
        .header("Authorization", "Basic !!!not-base64")
        .send();
    reply.expect(401);
    mine.push(("gh-malformed".to_string(), 401));
    // No id, and an id with spaces: gatehouse makes one up, returns it and logs it.
    let mut generated = Vec::new();
    for bad in [None, Some("has spaces; and=more")] {
        let mut req = http.req("GET", "/v2/").creds(USER, PASS);
        if let Some(v) = bad {
            req = req.header("X-Request-Id", v);
        }
        let reply = req.send();
        reply.expect(200);
        let id = reply
            .header("X-Request-Id")
            .unwrap_or_else(|| panic!("no X-Request-Id generated:\n{reply:?}"));
        assert!(!id.is_empty() && Some(id.as_str()) != bad, "{reply:?}");
        generated.push(id);
    }

    // The log line is written after the response: wait until the log and the counters agree in total.
    let settle = Instant::now();
    let (lines, m, text) = loop {
        let text = front.scrape();
        let m = Samples::parse(&text);
        let lines = access_lines(&front.log_text());
        let total = m.sum("gatehouse_http_requests_total", &[]);
        if total == lines.len() as f64 && m.sum("gatehouse_http_requests_in_flight", &[]) == 0.0 {
            break (lines, m, text);
        }
        assert!(
            settle.elapsed() < Duration::from_secs(5),
            "access log ({} lines) and gatehouse_http_requests_total ({total}) never agreed",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    // Request counts by route kind, method and status: the scrape and the access log agree exactly.
    let from_log = log_counts(&lines);
    let from_metrics = metric_counts(&m);
    eprintln!("requests by (route, method, status): {from_metrics:?}");
    assert_eq!(
        from_metrics, from_log,
        "gatehouse_http_requests_total (left) vs access log (right)"
    );
    let count = |route: &str, method: &str, status: &str| {
        m.sum(
            "gatehouse_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert!(
        count("upload_start", "POST", "202") >= 2.0,
        "{from_metrics:?}"
    );
    assert!(
        count("upload_finish", "PUT", "201") >= 2.0,
        "{from_metrics:?}"
    );
    assert!(count("manifest", "PUT", "201") >= 1.0, "{from_metrics:?}");
    assert!(count("blob", "GET", "200") >= 2.0, "{from_metrics:?}");
    assert!(count("manifest", "GET", "200") >= 2.0, "{from_metrics:?}");
    assert!(count("manifest", "GET", "404") >= 1.0, "{from_metrics:?}");
    assert!(count("blob", "HEAD", "200") >= 1.0, "{from_metrics:?}");
    assert!(count("base", "GET", "401") >= 5.0, "{from_metrics:?}");
    // Auth attempts by result: as the access log has them, and as we made them.
    for result in [
        "ok",
        "cached",
        "bad_password",
        "unknown_user",
        "malformed",
        "throttled",
    ] {
        let counted = m.sum("gatehouse_auth_attempts_total", &[("result", result)]);
        let logged = lines.iter().filter(|l| l["auth"] == result).count() as f64;
        assert_eq!(
            counted, logged,
            "auth attempts {result}: metrics vs access log"
        );
    }
    let attempts = |result: &str| m.sum("gatehouse_auth_attempts_total", &[("result", result)]);
    assert_eq!(attempts("bad_password"), 2.0);
    assert_eq!(attempts("unknown_user"), 1.0);
    assert_eq!(attempts("malformed"), 1.0);
    assert!(attempts("ok") >= 1.0 && attempts("cached") >= 1.0);

    // Bytes: the counters equal the access log's sums, and cover what was moved.
    for route in [
        "upload_start",
        "upload_chunk",
        "upload_finish",
        "manifest",
        "blob",
        "base",
    ] {
        let received = m.sum("gatehouse_http_received_bytes_total", &[("route", route)]);
        let sent = m.sum("gatehouse_http_sent_bytes_total", &[("route", route)]);
        assert_eq!(
            received,
            log_bytes(&lines, route, "bytes_in"),
            "received bytes of {route}"
        );
        assert_eq!(
            sent,
            log_bytes(&lines, route, "bytes_out"),
            "sent bytes of {route}"
        );
    }
    for name in [
        "gatehouse_http_received_bytes_total",
        "gatehouse_http_sent_bytes_total",
    ] {
        let by_route: Vec<String> = m
            .matching(name, &[])
            .map(|s| format!("{}={}", s.labels["route"], s.value))
            .collect();
        eprintln!("{name}: {by_route:?} (blobs pushed and pulled: {pushed} bytes)");
    }
    let uploaded: f64 = ["upload_start", "upload_chunk", "upload_finish"]
        .iter()
        .map(|r| m.sum("gatehouse_http_received_bytes_total", &[("route", r)]))
        .sum();
    assert!(
        uploaded >= pushed as f64,
        "upload bytes received {uploaded} < blob bytes pushed {pushed}"
    );
    assert!(
        m.sum(
            "gatehouse_http_received_bytes_total",
            &[("route", "manifest")]
        ) >= image.manifest.size as f64
    );
    let blob_sent = m.sum("gatehouse_http_sent_bytes_total", &[("route", "blob")]);
    assert!(
        blob_sent >= pushed as f64,
        "blob bytes sent {blob_sent} < blob bytes pulled {pushed}"
    );
    assert!(
        m.sum("gatehouse_http_sent_bytes_total", &[("route", "manifest")])
            >= 2.0 * image.manifest.size as f64
    );

    // Durations: one observation per request, buckets from 1 ms to at least 10 minutes.
    for route in ["blob", "manifest", "base"] {
        let requests = m.sum("gatehouse_http_requests_total", &[("route", route)]);
        let observed = m.sum(
            "gatehouse_http_request_duration_seconds_count",
            &[("route", route)],
        );
        assert_eq!(observed, requests, "duration observations of {route}");
    }
    let bounds: Vec<f64> = m
        .matching(
            "gatehouse_http_request_duration_seconds_bucket",
            &[("route", "blob")],
        )
        .filter_map(|s| s.labels.get("le").and_then(|le| le.parse().ok()))
        .collect();
    assert!(bounds.iter().any(|&b| b <= 0.001), "{bounds:?}");
    assert!(
        bounds.iter().any(|&b| (600.0..f64::INFINITY).contains(&b)),
        "{bounds:?}"
    );

    // The rest of the set, with low-cardinality labels only.
    for name in [
        "gatehouse_build_info",
        "gatehouse_htpasswd_users",
        "gatehouse_htpasswd_last_reload_timestamp_seconds",
        "gatehouse_upstream_up",
        "gatehouse_upstream_response_duration_seconds_count",
        "gatehouse_http_requests_in_flight",
    ] {
        assert!(m.has(name), "{name} missing from the scrape");
    }
    assert_eq!(m.sum("gatehouse_htpasswd_users", &[]), 1.0);
    assert_eq!(m.sum("gatehouse_upstream_up", &[]), 1.0);
    assert!(
        !text.contains("metrics/app") && !text.contains(USER),
        "a repository or user name in the metrics:\n{text}"
    );
    assert!(
        m.0.iter()
            .all(|s| !s.labels.contains_key("repository") && !s.labels.contains_key("user")),
        "per-repository or per-user labels"
    );
    for s in &m.0 {
        assert!(
            s.name.starts_with("gatehouse_"),
            "unprefixed metric {}",
            s.name
        );
    }
    promtool_accepts(&text);

    // The access log: one line per request we made, the user named, no credentials anywhere.
    for (id, status) in &mine {
        let found: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "access-log lines for request id {id}: {found:?}"
        );
        assert_eq!(found[0]["status"], *status, "{id}: {}", found[0]);
    }
    for id in &generated {
        let n = lines
            .iter()
            .filter(|l| l["request_id"] == id.as_str())
            .count();
        assert_eq!(n, 1, "access-log lines for generated request id {id}");
    }
    for l in &lines {
        let auth = l["auth"].as_str().unwrap_or("");
        if auth == "ok" || auth == "cached" {
            assert_eq!(
                l["user"], USER,
                "an authenticated line without its user: {l}"
            );
        }
        for field in ["client", "method", "route", "repository", "request_id"] {
            assert!(l[field].is_string(), "no {field} in {l}");
        }
        for field in ["status", "bytes_in", "bytes_out", "duration_ms"] {
            assert!(l[field].is_number(), "no {field} in {l}");
        }
    }
    let manifest_line = lines
        .iter()
        .find(|l| l["request_id"] == "gh-manifest")
        .expect("gh-manifest line");
    assert_eq!(manifest_line["repository"], "metrics/app");
    assert_eq!(manifest_line["user"], USER);
    assert!(manifest_line["upstream_ms"].is_number(), "{manifest_line}");
    let anon_line = lines
        .iter()
        .find(|l| l["request_id"] == "gh-anon-0")
        .expect("gh-anon-0 line");
    assert_eq!(anon_line["user"], "-", "{anon_line}");

    let log = front.log_text();
    let b64 = base64::engine::general_purpose::STANDARD;
    for secret in [
        PASS.to_string(),
        WRONG.to_string(),
        b64.encode(format!("{USER}:{PASS}")),
        b64.encode(format!("{USER}:{WRONG}")),
    ] {
        assert!(!log.contains(&secret), "the log holds {secret:?}");
    }
    assert!(
        !log.to_ascii_lowercase().contains("authorization"),
        "the log mentions an Authorization header"
    );
    let not_json: Vec<&str> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert!(
        not_json.is_empty(),
        "[log] format = \"json\" but some lines are not JSON: {not_json:?}"
    );
}

/// `GET {base}{path}` status, or `None` when nothing answered.
fn status_of(base: &str, path: &str) -> Option<u16> {
    plain_client(None)
        .get(format!("{base}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

/// `gatehouse healthcheck --config FILE` with `env`; whether it exited 0.
fn healthcheck(config: &std::path::Path, env: &[(&str, &str)]) -> bool {
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    cmd.arg("healthcheck")
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let out = cmd.output().expect("running gatehouse healthcheck");
    eprintln!(
        "healthcheck: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out.status.success()
}

#[test]
fn metrics_health_and_readiness_follow_the_upstream() {
    let mut dist = Distribution::start();
    let (front, _dir) = start(&dist);
    let admin = front.metrics_url();
    let config = front.config_path();
    assert_eq!(status_of(&admin, "/healthz"), Some(200));
    assert_eq!(status_of(&admin, "/readyz"), Some(200));
    assert_eq!(status_of(&admin, "/nothing-here"), Some(404));
    assert!(healthcheck(&config, &[]), "healthcheck while ready");

    dist.stop();
    let stopped = Instant::now();
    within(
        stopped,
        Duration::from_secs(5),
        Duration::from_millis(100),
        "/readyz says 503 once the upstream is gone",
        || status_of(&admin, "/readyz") == Some(503),
    );
    assert_eq!(
        status_of(&admin, "/healthz"),
        Some(200),
        "alive while not ready"
    );
    assert!(
        !healthcheck(&config, &[]),
        "healthcheck while the upstream is down"
    );
    Http::new(&front.url())
        .req("GET", "/v2/")
        .creds(USER, PASS)
        .send()
        .expect(503);

    dist.restart();
    let restarted = Instant::now();
    within(
        restarted,
        Duration::from_secs(5),
        Duration::from_millis(100),
        "/readyz says 200 once the upstream is back",
        || status_of(&admin, "/readyz") == Some(200),
    );
    assert!(healthcheck(&config, &[]), "healthcheck after recovery");
}

#[test]
fn metrics_address_from_env_and_basic_auth_on_metrics_only() {
    let dist = Distribution::start();
    let dir = temp_dir("metrics-env");
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, file_text(&[bcrypt_line(USER, PASS, 4)])).expect("writing htpasswd");
    let port = net::free_port();
    let file_port = net::free_port();
    let env_port = net::free_port();
    let text = FrontConfig::new(&dist.url(), &path)
        .metrics("username = \"scraper\"\npassword = \"scrape-pw\"")
        .to_toml(port, file_port);
    let env_addr = format!("127.0.0.1:{env_port}");
    let gh = Gatehouse::start_with(
        port,
        &text,
        &[("GATEHOUSE_METRICS_ADDR", env_addr.as_str())],
    );
    crate::util::frontdoor::wait_accepting(env_port, Duration::from_secs(10));
    assert!(
        !net::port_accepts(file_port),
        "the file's metrics address is in use although GATEHOUSE_METRICS_ADDR overrides it"
    );
    let admin = format!("http://{env_addr}");
    assert_eq!(status_of(&admin, "/healthz"), Some(200));
    assert_eq!(status_of(&admin, "/readyz"), Some(200));
    assert_eq!(
        status_of(&admin, "/metrics"),
        Some(401),
        "/metrics without credentials"
    );
    let client = plain_client(None);
    let wrong = client
        .get(format!("{admin}/metrics"))
        .basic_auth("scraper", Some("nope"))
        .send()
        .expect("GET /metrics");
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = client
        .get(format!("{admin}/metrics"))
        .basic_auth("scraper", Some("scrape-pw"))
        .send()
        .expect("GET /metrics");
    assert_eq!(ok.status().as_u16(), 200);
    let text = ok.text().expect("metrics text");
    assert!(text.contains("gatehouse_build_info"), "{text}");
    let config = gh.dir().join("gatehouse.toml");
    assert!(
        healthcheck(&config, &[("GATEHOUSE_METRICS_ADDR", env_addr.as_str())]),
        "healthcheck with the env address"
    );
}

/// A stand-in upstream on a free port that answers every request `200 {}` (keep-alive) and records each
/// request head, lower-cased.
fn recording_upstream() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the stand-in upstream");
    let port = listener.local_addr().expect("local_addr").port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || serve_recording(stream, &seen));
        }
    });
    (port, heads)
}

fn serve_recording(mut stream: TcpStream, seen: &Mutex<Vec<String>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            buf.drain(..end + 4);
            seen.lock().expect("heads").push(head);
            let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Docker-Distribution-API-Version: registry/2.0\r\nContent-Length: 2\r\n\r\n{}";
            if stream.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn metrics_request_id_is_passed_upstream_and_credentials_are_not() {
    let (up_port, heads) = recording_upstream();
    let dir = temp_dir("metrics-reqid");
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, file_text(&[bcrypt_line(USER, PASS, 4)])).expect("writing htpasswd");
    let front = Front::start(&FrontConfig::new(
        &format!("http://127.0.0.1:{up_port}"),
        &path,
    ));
    let http = Http::new(&front.url());
    // Every credential the door consumes rides along: none may reach the upstream.
    let given = http
        .req("GET", "/v2/")
        .creds(USER, PASS)
        .header("X-Request-Id", "gh-passed-upstream-1")
        .header(
            "Cookie",
            "theme=dark; gatehouse_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .header("X-CSRF-Token", "csrf-token-value")
        .header("Proxy-Authorization", "Basic eDp5")
        .header("Forwarded", "host=evil.example;proto=https")
        .send();
    given.expect(200);
    assert_eq!(
        given.header("X-Request-Id").as_deref(),
        Some("gh-passed-upstream-1")
    );
    let made = http.req("GET", "/v2/").creds(USER, PASS).send();
    made.expect(200);
    let made_id = made
        .header("X-Request-Id")
        .unwrap_or_else(|| panic!("no X-Request-Id generated:\n{made:?}"));
    let heads = heads.lock().expect("heads").clone();
    let with = |id: &str| {
        heads
            .iter()
            .filter(|h| h.contains(&format!("\r\nx-request-id: {}", id.to_ascii_lowercase())))
            .count()
    };
    assert_eq!(with("gh-passed-upstream-1"), 1, "upstream saw: {heads:?}");
    assert_eq!(with(&made_id), 1, "upstream saw: {heads:?}");
    assert!(
        heads.iter().all(|h| !h.contains("\r\nauthorization:")),
        "the client's Authorization reached the upstream: {heads:?}"
    );
    for gone in [
        "gatehouse_session",
        "x-csrf-token:",
        "csrf-token-value",
        "proxy-authorization:",
        "forwarded:",
        "evil.example",
    ] {
        assert!(
            heads.iter().all(|h| !h.to_ascii_lowercase().contains(gone)),
            "{gone} reached the upstream: {heads:?}"
        );
    }
    assert!(
        heads.iter().any(|h| h.contains("theme=dark")),
        "the client's other cookies go on: {heads:?}"
    );
}

/// The attacks this pins: a page on any site started a garbage collection with a no-cors POST, and a
/// DNS-rebinding page (same origin to the browser) could read `/usage` and `/metrics`; `POST /usage` was
/// answered. Browsers mark their requests (`Origin`, `Sec-Fetch-Site`); scrapers and curl do not.
#[test]
fn metrics_admin_listener_refuses_requests_from_web_pages() {
    let work = temp_dir("admin-pages");
    let gh = crate::util::embedded::Embedded::launch(
        &work.path().join("root"),
        crate::util::embedded::Setup::DEFAULT,
    );
    let admin = Http::new(&format!("http://127.0.0.1:{}", gh.gh.metrics_port));
    let page = |method: &str, path: &str, name: &str, value: &str| {
        admin.req(method, path).header(name, value).send().status
    };
    for (method, path) in [("POST", "/gc"), ("GET", "/usage"), ("GET", "/metrics")] {
        for (name, value) in [
            ("Origin", "http://evil.example"),
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-origin"),
            ("Sec-Fetch-Site", "same-site"),
        ] {
            assert_eq!(
                page(method, path, name, value),
                403,
                "{method} {path} with {name}: {value}"
            );
        }
        // Typed into the address bar.
        let typed = page(method, path, "Sec-Fetch-Site", "none");
        assert_eq!(typed, 200, "{method} {path} typed in");
    }
    admin.req("POST", "/usage").send().expect(405);
    admin.req("GET", "/usage").send().expect(200);
    admin.req("POST", "/gc").send().expect(200);
    // Only /gc takes a write (found in review: DELETE /metrics answered 200).
    for path in ["/metrics", "/healthz", "/readyz"] {
        for method in ["DELETE", "POST", "PUT"] {
            admin.req(method, path).send().expect(405);
        }
        admin.req("HEAD", path).send().expect(200);
    }
}
