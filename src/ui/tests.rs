//! The UI end to end in-process: assets with ETags and gzip, the security headers on every answer, login
//! through the real authenticator, sessions that end at logout or when the user leaves htpasswd, CSRF, and
//! permissions asked of the Policy.

use super::*;
use crate::auth::{AuthConfig, AuthMode};
use crate::authz::Rule;
use base64::Engine;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    auth: Arc<Authenticator>,
    bob: String,
}

fn line(user: &str, pass: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(pass, 4).unwrap())
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    let bob = line("bob", "bobpw");
    std::fs::write(&path, line("alice", "right") + &bob).unwrap();
    let config = AuthConfig {
        mode: AuthMode::Htpasswd,
        realm: "r".into(),
        htpasswd: path,
        bcrypt_concurrency: 1,
        cache_ttl: Duration::from_secs(60),
        cache_capacity: 10,
    };
    Fixture {
        auth: Arc::new(Authenticator::open(&config, None).unwrap()),
        _dir: dir,
        bob,
    }
}

fn policy() -> Policy {
    Policy {
        groups: BTreeMap::new(),
        rules: vec![
            Rule {
                repositories: vec!["**".into()],
                principals: vec!["alice".into()],
                actions: vec![Action::Pull, Action::Push, Action::Delete],
            },
            Rule {
                repositories: vec!["**".into()],
                principals: vec!["bob".into()],
                actions: vec![Action::Pull],
            },
        ],
        public_pull: Vec::new(),
    }
}

use crate::route::Action;

/// A UI with the rules it is asked with (in gatehouse they come from the request's config snapshot).
struct Site {
    ui: Ui,
    auth: Option<Arc<Authenticator>>,
    policy: Policy,
}

impl std::ops::Deref for Site {
    type Target = Ui;
    fn deref(&self) -> &Ui {
        &self.ui
    }
}

impl Site {
    fn rules(&self) -> Rules<'_> {
        Rules {
            auth: self.auth.as_deref(),
            policy: &self.policy,
            delete_enabled: true,
        }
    }
    fn session(&self, headers: &HeaderMap) -> Option<Active> {
        self.ui.session(headers, self.auth.as_deref())
    }
}

fn ui(prefix: &str, auth: Option<Arc<Authenticator>>) -> Site {
    let config = UiConfig {
        prefix: prefix.into(),
        ..UiConfig::default()
    };
    Site {
        ui: Ui::new(&config).expect("enabled"),
        auth,
        policy: policy(),
    }
}

struct Call {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

fn call(method: Method, path: &str) -> Call {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("reg.example"));
    Call {
        method,
        path: path.into(),
        query: None,
        headers,
    }
}

impl Call {
    fn h(mut self, name: &'static str, value: &str) -> Call {
        self.headers
            .append(name, HeaderValue::from_str(value).unwrap());
        self
    }
    fn basic(self, user: &str, pass: &str) -> Call {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        self.h("authorization", &format!("Basic {b}"))
    }
    fn q(mut self, query: &str) -> Call {
        self.query = Some(query.into());
        self
    }
    async fn on(&self, site: &Site) -> Handled {
        site.ui
            .handle(&UiRequest {
                method: &self.method,
                path: &self.path,
                query: self.query.as_deref(),
                headers: &self.headers,
                client: Some("192.0.2.1".parse().unwrap()),
                proto: "http",
                host: self.headers.get("host").and_then(|v| v.to_str().ok()),
                rules: site.rules(),
            })
            .await
    }
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.to_str().ok())
}

fn body(r: &Reply) -> serde_json::Value {
    match &r.body {
        ReplyBody::Bytes(b) => serde_json::from_slice(b).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}

/// Logs in and returns (cookie header value, csrf token).
async fn login(ui: &Site, user: &str, pass: &str) -> (String, String) {
    let r = call(Method::POST, "/api/login")
        .basic(user, pass)
        .on(ui)
        .await
        .reply;
    assert_eq!(r.status, 200, "{:?}", body(&r));
    let cookie = header(&r, "set-cookie").unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    (pair, body(&r)["csrf"].as_str().unwrap().to_string())
}

#[test]
fn serves_only_under_its_prefix() {
    let root = ui("/", None);
    let sub = ui("/ui/", None);
    for (path, at_root, at_sub) in [
        ("/", true, false),
        ("/index.html", true, false),
        ("/ui", true, true),
        ("/ui/", true, true),
        ("/ui/assets/app.js", true, true),
        ("/uix", true, false),
        ("/u", true, false),
    ] {
        assert_eq!(root.serves(path), at_root, "/ {path}");
        assert_eq!(sub.serves(path), at_sub, "/ui/ {path}");
    }
}

#[test]
fn turned_off_is_none() {
    let off = UiConfig {
        enabled: false,
        ..UiConfig::default()
    };
    assert!(Ui::new(&off).is_none());
}

#[tokio::test]
async fn every_ui_answer_carries_the_security_headers() {
    let f = fixture();
    let ui = ui("/ui/", Some(f.auth.clone()));
    for c in [
        call(Method::GET, "/ui/"),
        call(Method::GET, "/ui"),
        call(Method::GET, "/ui/assets/app.js"),
        call(Method::GET, "/ui/nope"),
        call(Method::POST, "/ui/index.html"),
        call(Method::GET, "/ui/api/whoami"),
        call(Method::GET, "/ui/api/nope"),
        call(Method::POST, "/ui/api/login").basic("alice", "wrong"),
        call(Method::DELETE, "/ui/api/login"),
    ] {
        let r = c.on(&ui).await.reply;
        assert_eq!(
            header(&r, "content-security-policy"),
            Some(CSP),
            "{}",
            c.path
        );
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
        assert_eq!(header(&r, "x-frame-options"), Some("DENY"), "{}", c.path);
        assert_eq!(
            header(&r, "referrer-policy"),
            Some("no-referrer"),
            "{}",
            c.path
        );
        assert_eq!(
            header(&r, "x-content-type-options"),
            Some("nosniff"),
            "{}",
            c.path
        );
    }
}

#[tokio::test]
async fn prefix_without_slash_redirects_to_it() {
    let r = call(Method::GET, "/ui").on(&ui("/ui/", None)).await.reply;
    assert_eq!(r.status, 308);
    assert_eq!(header(&r, "location"), Some("/ui/"));
}

#[tokio::test]
async fn assets_have_etags_304_and_gzip() {
    let ui = ui("/", None);
    let r = call(Method::GET, "/assets/app.js").on(&ui).await.reply;
    assert_eq!(r.status, 200);
    assert_eq!(
        header(&r, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(header(&r, "content-encoding").is_none());
    let etag = header(&r, "etag").unwrap().to_string();
    let again = call(Method::GET, "/assets/app.js")
        .h("if-none-match", &etag)
        .on(&ui)
        .await
        .reply;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let zipped = call(Method::GET, "/")
        .h("accept-encoding", "gzip, br")
        .on(&ui)
        .await
        .reply;
    assert_eq!(zipped.status, 200);
    assert_eq!(header(&zipped, "content-encoding"), Some("gzip"));
    assert_eq!(header(&zipped, "vary"), Some("Accept-Encoding"));
    let stale = call(Method::GET, "/assets/app.js")
        .h("if-none-match", "\"0000\"")
        .on(&ui)
        .await
        .reply;
    assert_eq!(stale.status, 200);
}

#[tokio::test]
async fn login_wrong_then_right_password_starts_a_session() {
    let f = fixture();
    let ui = ui("/", Some(f.auth.clone()));
    for c in [
        call(Method::POST, "/api/login").basic("alice", "wrong"),
        call(Method::POST, "/api/login").basic("nobody", "right"),
        call(Method::POST, "/api/login"),
        call(Method::POST, "/api/login").h("authorization", "Basic !!!"),
    ] {
        let h = c.on(&ui).await;
        assert_eq!(h.reply.status, 401);
        assert!(
            header(&h.reply, "www-authenticate").is_none(),
            "no browser popup"
        );
        assert!(header(&h.reply, "set-cookie").is_none());
    }
    let (cookie, csrf) = login(&ui, "alice", "right").await;
    let who = call(Method::GET, "/api/whoami")
        .h("cookie", &cookie)
        .on(&ui)
        .await
        .reply;
    assert_eq!(who.status, 200);
    let who = body(&who);
    assert_eq!(who["user"], "alice");
    assert_eq!(who["csrf"], csrf.as_str());
    assert_eq!(who["delete_enabled"], true);
    let anon = call(Method::GET, "/api/whoami").on(&ui).await.reply;
    assert_eq!(anon.status, 401);
}

#[tokio::test]
async fn login_from_another_origin_is_refused() {
    let f = fixture();
    let ui = ui("/", Some(f.auth.clone()));
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        // The right host with a scheme that is not the web's.
        ("origin", "ftp://reg.example"),
        ("origin", "reg.example"),
    ] {
        let r = call(Method::POST, "/api/login")
            .basic("alice", "right")
            .h(name, value)
            .on(&ui)
            .await
            .reply;
        assert_eq!(r.status, 403, "{name}: {value}");
        assert!(header(&r, "set-cookie").is_none());
    }
    let same = call(Method::POST, "/api/login")
        .basic("alice", "right")
        .h("origin", "http://reg.example")
        .h("sec-fetch-site", "same-origin")
        .on(&ui)
        .await
        .reply;
    assert_eq!(same.status, 200);
}

#[tokio::test]
async fn a_foreign_origin_cannot_read_the_csrf_token() {
    let f = fixture();
    let ui = ui("/", Some(f.auth.clone()));
    let (cookie, _) = login(&ui, "alice", "right").await;
    for path in ["/api/whoami", "/api/permissions"] {
        let r = call(Method::GET, path)
            .h("cookie", &cookie)
            .h("origin", "http://joxit.example")
            .q("repository=a")
            .on(&ui)
            .await
            .reply;
        assert_eq!(r.status, 403, "{path}");
        assert!(!format!("{:?}", body(&r)).contains("csrf\""), "{path}");
    }
}

#[tokio::test]
async fn logout_needs_the_csrf_token_then_the_old_cookie_is_refused() {
    let f = fixture();
    let ui = ui("/", Some(f.auth.clone()));
    let (cookie, csrf) = login(&ui, "alice", "right").await;
    let forged = call(Method::POST, "/api/logout")
        .h("cookie", &cookie)
        .on(&ui)
        .await
        .reply;
    assert_eq!(forged.status, 403);
    assert!(ui
        .session(&call(Method::GET, "/").h("cookie", &cookie).headers)
        .is_some());
    let out = call(Method::POST, "/api/logout")
        .h("cookie", &cookie)
        .h("x-csrf-token", &csrf)
        .on(&ui)
        .await
        .reply;
    assert_eq!(out.status, 204);
    assert!(header(&out, "set-cookie").unwrap().contains("Max-Age=0"));
    let after = call(Method::GET, "/api/whoami")
        .h("cookie", &cookie)
        .on(&ui)
        .await
        .reply;
    assert_eq!(after.status, 401);
}

#[tokio::test]
async fn session_ends_when_the_user_is_removed_from_htpasswd() {
    let f = fixture();
    let ui = ui("/", Some(f.auth.clone()));
    let (cookie, _) = login(&ui, "alice", "right").await;
    let (bob, _) = login(&ui, "bob", "bobpw").await;
    let headers = |c: &str| call(Method::GET, "/").h("cookie", c).headers;
    f.auth
        .replace(crate::auth::htpasswd::parse(&f.bob).credentials);
    assert!(ui.session(&headers(&cookie)).is_none(), "alice was removed");
    assert!(
        ui.session(&headers(&bob)).is_some(),
        "bob's line is unchanged"
    );
    // The same password hashed again (a new salt) is a changed line: the session ends too.
    f.auth
        .replace(crate::auth::htpasswd::parse(&line("bob", "bobpw")).credentials);
    assert!(ui.session(&headers(&bob)).is_none(), "bob's line changed");
}

#[test]
fn csrf_is_needed_only_on_state_changing_methods() {
    let live = Active {
        user: "alice".into(),
        csrf: "tok".into(),
    };
    let with = |t: &str| {
        let mut h = HeaderMap::new();
        h.insert(session::CSRF_HEADER, HeaderValue::from_str(t).unwrap());
        h
    };
    for (method, headers, ok) in [
        (Method::GET, HeaderMap::new(), true),
        (Method::HEAD, HeaderMap::new(), true),
        (Method::DELETE, HeaderMap::new(), false),
        (Method::DELETE, with("nope"), false),
        (Method::DELETE, with("tok"), true),
        (Method::PUT, with("tok"), true),
        (Method::POST, HeaderMap::new(), false),
        (Method::PATCH, with("TOK"), false),
    ] {
        assert_eq!(Ui::csrf_allows(&method, &headers, &live), ok, "{method}");
    }
}

#[tokio::test]
async fn permissions_follow_the_policy() {
    let f = fixture();
    let ui = ui("/", Some(f.auth.clone()));
    let (alice, _) = login(&ui, "alice", "right").await;
    let (bob, _) = login(&ui, "bob", "bobpw").await;
    let a = body(&ask(&ui, &alice).await);
    assert_eq!(a["repositories"]["a/b"]["delete"], true, "{a}");
    assert_eq!(a["repositories"]["c"]["push"], true, "{a}");
    let b = body(&ask(&ui, &bob).await);
    assert_eq!(b["repositories"]["a/b"]["pull"], true, "{b}");
    assert_eq!(b["repositories"]["a/b"]["push"], false, "{b}");
    assert_eq!(b["repositories"]["c"]["delete"], false, "{b}");
    let anon = ask(&ui, "").await;
    assert_eq!(anon.status, 401);
    let many = "repository=x&".repeat(MAX_NAMES + 1);
    let (alice, _) = login(&ui, "alice", "right").await;
    let r = call(Method::GET, "/api/permissions")
        .h("cookie", &alice)
        .q(&many)
        .on(&ui)
        .await
        .reply;
    assert_eq!(r.status, 400);
}

async fn ask(ui: &Site, cookie: &str) -> Reply {
    call(Method::GET, "/api/permissions")
        .h("cookie", cookie)
        .q("repository=a/b&repository=c")
        .on(ui)
        .await
        .reply
}

const MAX_NAMES: usize = api::MAX_PERMISSION_NAMES;

#[tokio::test]
async fn with_auth_off_whoami_answers_without_a_session() {
    let ui = ui("/", None);
    let r = call(Method::GET, "/api/whoami").on(&ui).await.reply;
    assert_eq!(r.status, 200);
    let b = body(&r);
    assert_eq!(b["auth"], false);
    assert!(b["user"].is_null());
}

#[tokio::test]
async fn sessions_outlive_a_reload_that_rebuilds_the_authenticator() {
    let f = fixture();
    let site = ui("/", Some(f.auth.clone()));
    let (cookie, _) = login(&site, "alice", "right").await;
    // A reload with changed auth settings opens a new authenticator on the same file.
    let config = AuthConfig {
        mode: AuthMode::Htpasswd,
        realm: "other".into(),
        htpasswd: f.auth.path().to_path_buf(),
        bcrypt_concurrency: 2,
        cache_ttl: Duration::from_secs(1),
        cache_capacity: 1,
    };
    let reloaded = Site {
        ui: site.ui,
        auth: Some(Arc::new(Authenticator::open(&config, None).unwrap())),
        policy: policy(),
    };
    let headers = call(Method::GET, "/").h("cookie", &cookie).headers;
    assert_eq!(reloaded.session(&headers).unwrap().user, "alice");
}

#[test]
fn same_origin_compares_scheme_and_host_and_refuses_sibling_origins() {
    let h = |pairs: &[(&str, &str)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    };
    let host = Some("reg.example:5000");
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool);
    let cases: &[Case] = &[
        (&[], "http", true),
        (&[("sec-fetch-site", "same-origin")], "http", true),
        (&[("sec-fetch-site", "none")], "https", true),
        (&[("sec-fetch-site", "same-site")], "http", false),
        (&[("sec-fetch-site", "cross-site")], "http", false),
        (&[("origin", "http://reg.example:5000")], "http", true),
        (&[("origin", "https://reg.example:5000")], "https", true),
        // A TLS proxy that does not say X-Forwarded-Proto: the browser's https origin is still ours.
        (&[("origin", "https://reg.example:5000")], "http", true),
        // A downgrade: a plain-http page on the same host and port of a TLS door.
        (&[("origin", "http://reg.example:5000")], "https", false),
        (&[("origin", "http://reg.example:5001")], "http", false),
        (&[("origin", "http://evil.example")], "http", false),
        (&[("origin", "ftp://reg.example:5000")], "http", false),
        (&[("origin", "null")], "http", false),
    ];
    for (headers, proto, want) in cases {
        assert_eq!(
            super::same_origin(&h(headers), proto, host),
            *want,
            "{headers:?} over {proto}"
        );
    }
    assert!(!super::same_origin(
        &h(&[("origin", "http://reg.example:5000")]),
        "http",
        None
    ));
}
