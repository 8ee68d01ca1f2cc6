//! The door's auth and CORS contract, through gatehouse in front of a real distribution: both bcrypt
//! flavours users really have (`htpasswd -nbB` cost 5 `$2y$`, passlib cost 12 `$2b$`) log in; no, wrong,
//! unknown or malformed credentials get distribution's 401 (Basic challenge, API version, UNAUTHORIZED body);
//! an allowed Origin is echoed with `Vary: Origin` on 200, 401 and 404 alike, another origin is not;
//! preflights are answered at the door; configured extra headers are on every response. Users whose line
//! has a hash gatehouse cannot verify (`htpasswd -m`, `-s`, `-d`) get a 401 counted and logged as
//! `unsupported_hash`, not `unknown_user`.

use std::process::Command;
use std::time::Instant;

use crate::util::frontdoor::{access_lines, bcrypt_line, file_text, Front, FrontConfig};
use crate::util::process::require_tool;

use crate::util::http::Http;
use crate::util::{
    door, htpasswd, net, Distribution, Gatehouse, GatehouseConfig, ORIGIN, PASS, REALM, USER,
};

/// The passlib-style user.
const BOB: &str = "bob";
/// The passlib-style user's password.
const BOB_PASS: &str = "builder-12";

#[test]
fn apache_cost5_and_passlib_cost12_users_both_log_in() {
    let dist = Distribution::start();
    let started = Instant::now();
    let lines = [
        htpasswd::apache_line(USER, PASS, 5),
        htpasswd::passlib_line(BOB, BOB_PASS),
    ];
    eprintln!("htpasswd lines made in {:?}", started.elapsed());
    assert!(
        lines[1].starts_with("bob:$2b$12$"),
        "not a passlib-style line: {}",
        lines[1]
    );
    let gatehouse = Gatehouse::start(&GatehouseConfig::fronting(&dist.url()).users(REALM, &lines));
    let http = Http::new(&gatehouse.url());
    for _ in 0..2 {
        http.req("GET", "/v2/")
            .creds(USER, PASS)
            .send()
            .expect(200)
            .expect_api_version();
        http.req("GET", "/v2/")
            .creds(BOB, BOB_PASS)
            .send()
            .expect(200)
            .expect_api_version();
    }
    http.req("GET", "/v2/_catalog")
        .creds(BOB, BOB_PASS)
        .send()
        .expect(200);
    http.req("GET", "/v2/")
        .creds(BOB, PASS)
        .send()
        .expect_unauthorized(REALM);
    http.req("GET", "/v2/")
        .creds(USER, BOB_PASS)
        .send()
        .expect_unauthorized(REALM);
}

/// Every check below that sends bad credentials uses its own loopback source address, so that a
/// failed-login throttle (gatehouse's guard: a burst of 10 per address) never turns the 401 under test
/// into a 429.
#[test]
fn missing_wrong_unknown_or_malformed_credentials_get_distributions_401() {
    let dist = Distribution::start();
    let gatehouse = door(&dist.url());
    let mut next_source = 10u8;
    let mut client = || {
        next_source += 1;
        Http::from_source(&gatehouse.url(), [127, 0, 0, next_source])
    };
    let paths = [
        "/v2/",
        "/v2/_catalog",
        "/v2/team/app/tags/list",
        "/v2/team/app/manifests/latest",
    ];
    for path in paths {
        let http = client();
        http.req("GET", path).send().expect_unauthorized(REALM);
        http.req("GET", path)
            .creds(USER, "wrong")
            .send()
            .expect_unauthorized(REALM);
        http.req("GET", path)
            .creds("nobody", PASS)
            .send()
            .expect_unauthorized(REALM);
    }
    let http = client();
    for bad in [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic YWxpY2U=",
        "Bearer abc.def.ghi",
        "basic",
    ] {
        http.req("GET", "/v2/")
            .header("Authorization", bad)
            .send()
            .expect_unauthorized(REALM);
    }
    let http = client();
    let head = http.req("HEAD", "/v2/team/app/manifests/latest").send();
    head.expect(401).expect_api_version();
    assert_eq!(
        head.header("WWW-Authenticate"),
        Some(format!("Basic realm=\"{REALM}\"")),
        "{head:?}"
    );
    http.req("DELETE", "/v2/team/app/manifests/latest")
        .send()
        .expect_unauthorized(REALM);
    http.req("POST", "/v2/team/app/blobs/uploads/")
        .send()
        .expect_unauthorized(REALM);
    http.req("GET", "/v2/").creds(USER, PASS).send().expect(200);
}

#[test]
fn allowed_origin_is_echoed_on_200_401_and_404_and_others_are_not() {
    let dist = Distribution::start();
    let gatehouse = door(&dist.url());
    let http = Http::new(&gatehouse.url());
    let unauthorized = http.req("GET", "/v2/").origin(ORIGIN).send();
    unauthorized.expect_unauthorized(REALM).expect_cors(ORIGIN);
    http.req("GET", "/v2/")
        .origin(ORIGIN)
        .creds(USER, PASS)
        .send()
        .expect(200)
        .expect_api_version()
        .expect_cors(ORIGIN);
    http.req("GET", "/v2/team/none/manifests/latest")
        .origin(ORIGIN)
        .creds(USER, PASS)
        .send()
        .expect_error(404, "MANIFEST_UNKNOWN")
        .expect_api_version()
        .expect_cors(ORIGIN);
    http.req("GET", "/v2/")
        .origin("http://evil.example")
        .creds(USER, PASS)
        .send()
        .expect(200)
        .expect_no_cors();
    http.req("GET", "/v2/")
        .origin("http://evil.example")
        .send()
        .expect_unauthorized(REALM)
        .expect_no_cors();
    http.req("GET", "/v2/")
        .creds(USER, PASS)
        .send()
        .expect(200)
        .expect_no_cors();
}

#[test]
fn preflight_from_an_allowed_origin_is_answered_at_the_door_and_never_forwarded() {
    // Nothing listens on the upstream port: a forwarded preflight would come back 503, not 204.
    let dead_upstream = format!("http://127.0.0.1:{}", net::free_port());
    let gatehouse = door(&dead_upstream);
    let http = Http::new(&gatehouse.url());
    let paths = [
        "/v2/",
        "/v2/team/app/manifests/latest",
        "/v2/team/app/manifests/sha256:0123",
        "/anything/else",
        "/v2/_catalog?n=1000",
    ];
    for path in paths {
        for method in ["GET", "DELETE", "HEAD"] {
            let reply = http
                .req("OPTIONS", path)
                .origin(ORIGIN)
                .header("Access-Control-Request-Method", method)
                .header("Access-Control-Request-Headers", "accept,authorization")
                .send();
            reply.expect(204).expect_api_version().expect_cors(ORIGIN);
            for allowed in ["GET", "HEAD", "DELETE", "OPTIONS"] {
                reply.expect_token("Access-Control-Allow-Methods", allowed);
            }
            for allowed in ["Authorization", "Accept", "Cache-Control"] {
                reply.expect_token("Access-Control-Allow-Headers", allowed);
            }
            reply.expect_token("Access-Control-Allow-Credentials", "true");
        }
    }
    // Not from an allowed origin: whatever the status, no CORS headers.
    let evil = http
        .req("OPTIONS", "/v2/")
        .origin("http://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send();
    evil.expect_no_cors();
    // With credentials, the dead upstream shows: 503 with the CORS headers.
    http.req("GET", "/v2/")
        .origin(ORIGIN)
        .creds(USER, PASS)
        .send()
        .expect_error(503, "UNAVAILABLE")
        .expect_cors(ORIGIN);
}

#[test]
fn configured_extra_headers_are_on_every_response() {
    let dist = Distribution::start();
    let line = htpasswd::apache_line(USER, PASS, 5);
    let config = GatehouseConfig::fronting(&dist.url())
        .users(REALM, &[line])
        .origin(ORIGIN)
        .header("X-Content-Type-Options", &["nosniff"])
        .header("X-Gatehouse-Test", &["one", "two"]);
    let gatehouse = Gatehouse::start(&config);
    let http = Http::new(&gatehouse.url());
    let replies = [
        http.req("GET", "/v2/").send(),
        http.req("GET", "/v2/").creds(USER, PASS).send(),
        http.req("GET", "/v2/team/none/tags/list")
            .creds(USER, PASS)
            .send(),
        http.req("OPTIONS", "/v2/")
            .origin(ORIGIN)
            .header("Access-Control-Request-Method", "GET")
            .send(),
    ];
    for reply in &replies {
        reply.expect_api_version();
        assert_eq!(
            reply.header("X-Content-Type-Options").as_deref(),
            Some("nosniff"),
            "{reply:?}"
        );
        reply
            .expect_token("X-Gatehouse-Test", "one")
            .expect_token("X-Gatehouse-Test", "two");
    }
}

/// Issue 9 finding 21: users whose line has an MD5, SHA-1 or crypt hash were logged as `unknown_user`. They
/// are `unsupported_hash` now, in the access log and in `gatehouse_auth_attempts_total`, and still a 401.
#[test]
fn unsupported_hash_users_are_counted_and_logged_as_unsupported_hash_not_unknown_user() {
    let dist = Distribution::start();
    let tool = require_tool("htpasswd", "apache2-utils");
    let mut lines = vec![bcrypt_line("good", "good-pw", 4)];
    for (user, flag) in [("md5", "-m"), ("sha", "-s"), ("crypt", "-d")] {
        let out = Command::new(&tool)
            .args(["-nb", flag, user, "their-pw"])
            .output()
            .expect("running htpasswd");
        assert!(out.status.success(), "htpasswd -nb {flag}");
        lines.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let dir = crate::util::temp_dir("unsupported");
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, file_text(&lines)).expect("writing htpasswd");
    let front = Front::start(&FrontConfig::new(&dist.url(), &path).no_guard());
    let http = Http::new(&front.url());
    for user in ["md5", "sha", "crypt"] {
        http.req("GET", "/v2/")
            .creds(user, "their-pw")
            .send()
            .expect_unauthorized(&front.realm);
    }
    http.req("GET", "/v2/")
        .creds("nobody", "their-pw")
        .send()
        .expect_unauthorized(&front.realm);
    http.req("GET", "/v2/")
        .creds("good", "good-pw")
        .send()
        .expect(200);

    let m = front.samples();
    let attempts = |result: &str| m.sum("gatehouse_auth_attempts_total", &[("result", result)]);
    assert_eq!(attempts("unsupported_hash"), 3.0);
    assert_eq!(attempts("unknown_user"), 1.0);
    let log = front.log_text();
    let logged = access_lines(&log)
        .iter()
        .filter(|l| l["auth"] == "unsupported_hash")
        .count();
    assert_eq!(
        logged, 3,
        "access-log lines with auth=unsupported_hash:\n{log}"
    );
    for line in &lines[1..] {
        let hash = line.split_once(':').expect("user:hash").1;
        assert!(!log.contains(hash), "the log echoes a hash");
    }
}
