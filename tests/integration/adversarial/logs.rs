//! Finding 14: the access log is what fail2ban-style tools and an operator read after an attack. A refused
//! request (403) must name the repository it tried, and a failed login must name the attempted user (escaped,
//! capped in length), never the password. Embedded backend, JSON and text logs.

use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{embedded, embedded_logging, log_text, pass_of, write_users};
use crate::util::frontdoor::access_lines;
use crate::util::gatehouse::Gatehouse;
use crate::util::raw::{self, basic};
use crate::util::temp_dir;

/// bob may pull and push `bob/*` only.
const ACCESS: &str = r#"
[[access.rules]]
repositories = ["bob/*"]
principals = ["bob"]
actions = ["pull", "push"]
"#;

/// Waits (up to 10 s: the log writer is non-blocking) until `gh`'s log has `count` access lines with
/// `status`, and returns them.
fn access_with_status(gh: &Gatehouse, status: u64, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<serde_json::Value> = access_lines(&log_text(gh))
            .into_iter()
            .filter(|f| f["status"].as_u64() == Some(status))
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        sleep(Duration::from_millis(100));
    }
}

/// The string values of a JSON object's fields.
fn string_fields(fields: &serde_json::Value) -> Vec<String> {
    fields
        .as_object()
        .map(|o| {
            o.values()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn denied_request_access_log_names_the_repository() {
    let dir = temp_dir("adv-log-403");
    let htpasswd = write_users(dir.path());
    let gh = embedded(&dir.path().join("root"), &htpasswd, "", ACCESS);
    let auth = basic("bob", pass_of("bob"));
    let attempts = [
        ("GET", "/v2/secret/thing/manifests/latest"),
        ("HEAD", "/v2/secret/thing/manifests/latest"),
        ("GET", "/v2/secret/thing/tags/list"),
        ("POST", "/v2/secret/thing/blobs/uploads/"),
        (
            "GET",
            "/v2/secret/thing/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ),
    ];
    for (method, path) in attempts {
        let reply = raw::request(gh.port, method, path, &[("Authorization", &auth)], b"");
        assert_eq!(reply.status, 403, "precondition: bob is denied\n{reply:?}");
    }
    let lines = access_with_status(&gh, 403, attempts.len());
    assert_eq!(
        lines.len(),
        attempts.len(),
        "one access line per 403; log:\n{}",
        log_text(&gh)
    );
    for line in &lines {
        assert_eq!(
            line["repository"].as_str(),
            Some("secret/thing"),
            "a 403's access line does not name the repository: {line}"
        );
        assert_eq!(line["user"].as_str(), Some("bob"), "{line}");
    }
}

/// The attempted names: an unknown user, a known one with a wrong password, one with a quote, a newline,
/// an ANSI escape and a forged log line, and one of 1,000 bytes. Each with a password that must never show.
fn attempts() -> Vec<(String, String)> {
    vec![
        ("mallory".to_string(), "Pw-never-logged-1".to_string()),
        ("bob".to_string(), "Pw-never-logged-2".to_string()),
        (
            "evil\"quote\n2026-12-01T00:00:00Z FAKE access user=admin status=200 \u{1b}[31mred"
                .to_string(),
            "Pw-never-logged-3".to_string(),
        ),
        ("m".repeat(1000), "Pw-never-logged-4".to_string()),
    ]
}

fn fail_logins(gh: &Gatehouse) {
    for (user, pass) in attempts() {
        let reply = raw::request(
            gh.port,
            "GET",
            "/v2/target/app/tags/list",
            &[("Authorization", &basic(&user, &pass))],
            b"",
        );
        assert_eq!(reply.status, 401, "precondition: a failed login\n{reply:?}");
    }
}

fn assert_no_password(log: &str) {
    for (_, pass) in attempts() {
        assert!(
            !log.contains(&pass),
            "the log holds a password ({pass}):\n{log}"
        );
    }
}

#[test]
fn failed_login_access_log_names_the_attempted_user_capped_never_the_password() {
    let dir = temp_dir("adv-log-401");
    let htpasswd = write_users(dir.path());
    let gh = embedded(&dir.path().join("root"), &htpasswd, "", ACCESS);
    fail_logins(&gh);
    let lines = access_with_status(&gh, 401, attempts().len());
    let log = log_text(&gh);
    assert_no_password(&log);
    assert!(
        !log.contains('\u{1b}'),
        "a raw escape byte reached the log:\n{log}"
    );
    let mut missing = Vec::new();
    for (user, _) in attempts() {
        // The name may be escaped and capped: a field must start with its first characters.
        let head: String = user.chars().take(4).collect();
        let line = lines.iter().find(|l| {
            string_fields(l)
                .iter()
                .any(|v| v.starts_with(&head) && v.len() >= head.len())
        });
        match line {
            None => missing.push(format!("{:?}", &user[..user.len().min(40)])),
            Some(line) => {
                for v in string_fields(line) {
                    assert!(
                        v.len() <= 512,
                        "an access-log field of {} bytes: the attempted name is not capped: {line}",
                        v.len()
                    );
                    assert!(
                        !v.contains('\n'),
                        "a newline in an access-log field: the name is not escaped: {line}"
                    );
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no 401 access line names the attempted user {}; 401 lines:\n{}",
        missing.join(", "),
        lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn failed_login_in_the_text_log_cannot_forge_a_line() {
    let dir = temp_dir("adv-log-text");
    let htpasswd = write_users(dir.path());
    let gh = embedded_logging(&dir.path().join("root"), &htpasswd, "", ACCESS, "text");
    fail_logins(&gh);
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = log_text(&gh);
        if log.contains("mallory") || Instant::now() > deadline {
            break log;
        }
        sleep(Duration::from_millis(100));
    };
    assert_no_password(&log);
    assert!(
        log.contains("mallory"),
        "the text access log does not name the attempted user mallory:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00Z FAKE")),
        "an attempted user name forged a log line:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "a raw escape byte reached the log:\n{log}"
    );
    assert!(
        !log.contains(&"m".repeat(600)),
        "a 1,000-byte attempted name is logged uncapped"
    );
}
