//! The brute-force guard (issue 4), through a running gatehouse in front of a real distribution: 100 wrong
//! passwords from 127.0.0.1 turn into 429 TOOMANYREQUESTS with `Retry-After` right after the configured
//! burst; the throttled address keeps its cached login but an uncached one is refused without bcrypt; a client
//! on 127.0.0.2 is not affected; `X-Forwarded-For` counts only from a configured trusted proxy; the guard's
//! metrics (throttled requests, tracked addresses) agree with what the clients saw. Bounded memory under a
//! spray of 100,000 addresses is a unit test in `src/auth/guard.rs`.

use std::net::IpAddr;

use reqwest::blocking::Client;

use crate::util::frontdoor::{bcrypt_line, file_text, plain_client, Front, FrontConfig};
use crate::util::{temp_dir, Distribution};

/// The configured burst of failed logins per address.
const BURST: usize = 10;

const GUARD: &str = "[guard]\nenabled = true\nfailures_burst = 10\nfailures_per_minute = 10\n";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}

/// A gatehouse with users alice, bob and carol (cost 4) and the guard above; `server` goes into `[server]`.
fn start(dist: &Distribution, server: &str) -> (Front, tempfile::TempDir) {
    let dir = temp_dir("guard");
    let path = dir.path().join("htpasswd");
    let lines: Vec<String> = [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ]
    .iter()
    .map(|(u, p)| bcrypt_line(u, p, 4))
    .collect();
    std::fs::write(&path, file_text(&lines)).expect("writing htpasswd");
    let front = Front::start(
        &FrontConfig::new(&dist.url(), &path)
            .server(server)
            .tables(GUARD),
    );
    (front, dir)
}

/// What came back: status, Retry-After, the error code in the body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    code: Option<String>,
}

fn get(client: &Client, base: &str, user: &str, pass: &str, xff: Option<&str>) -> Answer {
    let mut rb = client
        .get(format!("{base}/v2/"))
        .basic_auth(user, Some(pass));
    if let Some(xff) = xff {
        rb = rb.header("X-Forwarded-For", xff);
    }
    let resp = rb
        .send()
        .unwrap_or_else(|e| panic!("GET /v2/ as {user}: no reply: {e:?}"));
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let body: serde_json::Value = resp.json().unwrap_or(serde_json::Value::Null);
    let code = body["errors"][0]["code"].as_str().map(str::to_string);
    Answer {
        status,
        retry_after,
        code,
    }
}

/// Checks a 429: `Retry-After` is a positive number of seconds and the body says TOOMANYREQUESTS.
fn expect_throttled(a: &Answer, what: &str) {
    assert_eq!(a.status, 429, "{what}: status");
    let secs: u64 = a
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: a 429 without Retry-After"))
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After {:?} is not seconds", a.retry_after));
    assert!(secs >= 1, "{what}: Retry-After {secs}");
    assert_eq!(
        a.code.as_deref(),
        Some("TOOMANYREQUESTS"),
        "{what}: error code"
    );
}

#[test]
fn guard_100_wrong_passwords_get_429_while_others_and_cached_logins_get_in() {
    let dist = Distribution::start();
    let (front, _dir) = start(&dist, "");
    let base = front.url();
    let local = plain_client(Some(ip("127.0.0.1")));
    let other = plain_client(Some(ip("127.0.0.2")));

    // alice logs in once from the address that will be throttled: her verification is cached.
    assert_eq!(get(&local, &base, "alice", "alice-pw", None).status, 200);

    let answers: Vec<Answer> = (0..100)
        .map(|i| get(&local, &base, "alice", &format!("wrong-{i}"), None))
        .collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let first_429 = statuses
        .iter()
        .position(|&s| s == 429)
        .unwrap_or_else(|| panic!("no 429 in 100 wrong passwords: {statuses:?}"));
    assert!(
        first_429 <= BURST + 2,
        "the first 429 came after {first_429} failures (burst {BURST}): {statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    let throttled = statuses.iter().filter(|&&s| s == 429).count();
    let let_through = statuses.len() - throttled;
    assert!(
        let_through <= BURST + 3,
        "{let_through} wrong passwords were checked (burst {BURST}): {statuses:?}"
    );
    for (i, a) in answers.iter().enumerate().filter(|(_, a)| a.status == 429) {
        expect_throttled(a, &format!("wrong password #{i}"));
    }

    // The cached login from the throttled address still works; an uncached one is refused without bcrypt.
    for _ in 0..3 {
        assert_eq!(
            get(&local, &base, "alice", "alice-pw", None).status,
            200,
            "a cached login from the throttled address"
        );
    }
    let bob_local = get(&local, &base, "bob", "bob-pw", None);
    expect_throttled(&bob_local, "an uncached login from the throttled address");

    // Another address is not affected: correct logins work, a wrong one is a plain 401.
    assert_eq!(get(&other, &base, "bob", "bob-pw", None).status, 200);
    assert_eq!(get(&other, &base, "carol", "carol-pw", None).status, 200);
    assert_eq!(get(&other, &base, "alice", "nope", None).status, 401);
    assert_eq!(get(&other, &base, "alice", "alice-pw", None).status, 200);

    let m = front.samples();
    assert_eq!(
        m.sum("gatehouse_guard_tracked_addresses", &[]),
        2.0,
        "tracked addresses (127.0.0.1 and 127.0.0.2 failed logins)"
    );
    let refused = (throttled + 1) as f64;
    assert_eq!(m.sum("gatehouse_guard_throttled_total", &[]), refused);
    assert_eq!(
        m.sum("gatehouse_auth_attempts_total", &[("result", "throttled")]),
        refused
    );
    assert_eq!(
        m.sum("gatehouse_http_requests_total", &[("status", "429")]),
        refused
    );
    assert_eq!(
        m.sum(
            "gatehouse_auth_attempts_total",
            &[("result", "bad_password")]
        ),
        (let_through + 1) as f64,
        "wrong passwords that reached bcrypt"
    );
}

#[test]
fn guard_trusts_x_forwarded_for_only_from_a_trusted_proxy() {
    let dist = Distribution::start();
    let (front, _dir) = start(&dist, "trusted_proxies = [\"127.0.0.4/32\"]");
    let base = front.url();
    let untrusted = plain_client(Some(ip("127.0.0.3")));
    let proxy = plain_client(Some(ip("127.0.0.4")));

    // From an untrusted peer, a new X-Forwarded-For per request does not dodge the guard.
    let statuses: Vec<u16> = (0..30)
        .map(|i| {
            let xff = format!("198.51.100.{}", i + 1);
            get(&untrusted, &base, "alice", "wrong", Some(&xff)).status
        })
        .collect();
    let first = statuses.iter().position(|&s| s == 429);
    assert!(
        first.is_some_and(|i| i <= BURST + 2),
        "spoofed X-Forwarded-For from an untrusted peer dodged the guard: {statuses:?}"
    );

    // Through the trusted proxy, the forwarded client is the one throttled...
    let statuses: Vec<u16> = (0..30)
        .map(|_| get(&proxy, &base, "alice", "wrong", Some("203.0.113.7")).status)
        .collect();
    let first = statuses.iter().position(|&s| s == 429);
    assert!(
        first.is_some_and(|i| i <= BURST + 2),
        "the forwarded client was not throttled: {statuses:?}"
    );
    expect_throttled(
        &get(&proxy, &base, "bob", "bob-pw", Some("203.0.113.7")),
        "an uncached login of the throttled forwarded client",
    );
    // ...and another client behind the same proxy is not.
    assert_eq!(
        get(&proxy, &base, "carol", "carol-pw", Some("203.0.113.8")).status,
        200,
        "another client behind the trusted proxy"
    );
    assert_eq!(
        front
            .samples()
            .sum("gatehouse_guard_tracked_addresses", &[]),
        2.0,
        "tracked: 127.0.0.3 and 203.0.113.7"
    );
    // The access-log line is written after the response: wait for it.
    crate::util::frontdoor::within(
        std::time::Instant::now(),
        std::time::Duration::from_secs(5),
        std::time::Duration::from_millis(50),
        "an access-log line for carol as client 203.0.113.8",
        || {
            crate::util::frontdoor::access_lines(&front.log_text())
                .iter()
                .any(|l| l["client"] == "203.0.113.8" && l["user"] == "carol" && l["status"] == 200)
        },
    );
    let lines = crate::util::frontdoor::access_lines(&front.log_text());
    assert!(
        !lines.iter().any(|l| l["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("198.51.100."))),
        "the access log took X-Forwarded-For from an untrusted peer"
    );
}

/// Issue 9 finding 3: the guard was checked, not reserved, so 1,000 concurrent wrong passwords from one
/// address all queued for bcrypt and all got 401. Now a token is reserved before bcrypt: of 200 concurrent
/// wrong passwords from one address at most the burst (plus one refilled token, for a slow machine) reach
/// bcrypt, the rest are 429 at once, and a cached login from that address still gets in.
#[test]
fn guard_200_concurrent_wrong_passwords_from_one_address_get_at_most_burst_401s_and_the_rest_429() {
    const FLOOD: usize = 200;
    let dist = Distribution::start();
    let (front, _dir) = start(&dist, "");
    let base = front.url();
    let local = plain_client(Some(ip("127.0.0.1")));
    assert_eq!(get(&local, &base, "alice", "alice-pw", None).status, 200);

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(FLOOD));
    let threads: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (barrier, base) = (barrier.clone(), base.clone());
            std::thread::spawn(move || {
                let client = plain_client(Some(ip("127.0.0.1")));
                barrier.wait();
                get(&client, &base, "alice", &format!("wrong-{i}"), None)
            })
        })
        .collect();
    let answers: Vec<Answer> = threads
        .into_iter()
        .map(|t| t.join().expect("a flood thread"))
        .collect();
    let count = |status: u16| answers.iter().filter(|a| a.status == status).count();
    let (checked, throttled) = (count(401), count(429));
    assert_eq!(
        checked + throttled,
        FLOOD,
        "every answer is 401 or 429: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert!(
        checked <= BURST + 1,
        "{checked} concurrent wrong passwords reached bcrypt (burst {BURST}), {throttled} got 429"
    );
    assert!(checked >= 1, "the burst let nothing through");
    for (i, a) in answers.iter().enumerate().filter(|(_, a)| a.status == 429) {
        expect_throttled(a, &format!("concurrent wrong password #{i}"));
    }

    // The flooded address keeps its cached login.
    assert_eq!(
        get(&local, &base, "alice", "alice-pw", None).status,
        200,
        "a cached login from the flooded address"
    );
    let m = front.samples();
    assert_eq!(
        m.sum("gatehouse_guard_throttled_total", &[]),
        throttled as f64
    );
    assert_eq!(
        m.sum(
            "gatehouse_auth_attempts_total",
            &[("result", "bad_password")]
        ),
        checked as f64,
        "wrong passwords that reached bcrypt"
    );
}

/// The `Threads:` count of process `pid`.
fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

/// Issue 9 finding 9: the dummy bcrypt hash for unknown users was computed outside the bcrypt limit, so 300
/// concurrent unknown users on a fresh process drove gatehouse to 98 threads. Now every bcrypt, the dummy
/// hash's included, runs inside the limit (2 here): the thread count stays near where it started (generous
/// bound; the precise figure belongs in a bench), and every one of them still gets its 401.
#[test]
fn unknown_user_flood_on_a_fresh_process_keeps_bcrypt_inside_the_limit_and_threads_bounded() {
    const FLOOD: usize = 300;
    let dist = Distribution::start();
    let dir = temp_dir("unknown-flood");
    let path = dir.path().join("htpasswd");
    // Cost 5 (as `htpasswd -B`): enough for dummy hashes computed outside the limit to pile up threads.
    std::fs::write(&path, file_text(&[bcrypt_line("alice", "alice-pw", 5)])).expect("htpasswd");
    let front = Front::start(&FrontConfig::new(&dist.url(), &path).no_guard());
    let pid = front.gh.pid();
    let base = front.url();
    let before = threads_of(pid);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(threads_of(pid));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak.max(threads_of(pid))
        })
    };
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(FLOOD));
    let flood: Vec<_> = (0..FLOOD)
        .map(|i| {
            let (barrier, base) = (barrier.clone(), base.clone());
            std::thread::spawn(move || {
                let client = plain_client(None);
                barrier.wait();
                get(&client, &base, &format!("nobody-{i}"), "pw", None).status
            })
        })
        .collect();
    let statuses: Vec<u16> = flood
        .into_iter()
        .map(|t| t.join().expect("a flood thread"))
        .collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().expect("the sampler");
    assert!(
        statuses.iter().all(|&s| s == 401),
        "unknown users: {statuses:?}"
    );
    eprintln!("threads: {before} before, {peak} at most during {FLOOD} concurrent unknown users");
    assert!(
        peak <= before + 12,
        "gatehouse went from {before} to {peak} threads under {FLOOD} concurrent unknown users (limit 2)"
    );
    assert_eq!(
        front.samples().sum(
            "gatehouse_auth_attempts_total",
            &[("result", "unknown_user")]
        ),
        FLOOD as f64
    );
}
