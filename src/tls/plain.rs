//! The plain-HTTP listener (`server.http_listen`, typically `:80`): it answers ACME HTTP-01 challenges at
//! `/.well-known/acme-challenge/<token>` from [`Http01Tokens`] and sends everything else to https, 301 for
//! reads (GET, HEAD) and 308 for writes (so a client repeats the method and body). The redirect names the
//! configured public URL's host and port, or else the request's host with the TLS listener's port (omitted
//! when it is 443). It never serves the registry: credentials are not accepted in clear text here.
//!
//! Tokens may also come from a webroot directory (`server.acme_webroot`) that an outside ACME client such as
//! certbot (`certbot certonly --webroot -w DIR`) writes to: `DIR/.well-known/acme-challenge/<token>`.

use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The path prefix of HTTP-01 challenges (RFC 8555 section 8.3).
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The HTTP-01 challenges being validated now: token -> key authorization. The ACME client adds a token
/// before it tells the CA to validate, and removes it when the authorization is done.
#[derive(Debug, Default)]
pub struct Http01Tokens(RwLock<HashMap<String, String>>);

impl Http01Tokens {
    /// Answers `token` with `key_authorization` until it is removed.
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.0
            .write()
            .expect("tokens lock")
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        self.0.write().expect("tokens lock").remove(token);
    }

    /// The key authorization of `token`, when it is being validated.
    pub fn get(&self, token: &str) -> Option<String> {
        self.0.read().expect("tokens lock").get(token).cloned()
    }
}

/// Where redirects point: a fixed public host and port, or the request's host with the TLS port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `https://<authority>` of the configured public URL (`host` or `host:port`, port omitted when 443).
    Public(String),
    /// The request's host, with this port (omitted when 443).
    RequestHost(u16),
}

/// The plain-HTTP listener's handler.
pub struct PlainHttpApp {
    target: Target,
    tokens: Arc<Http01Tokens>,
    webroot: Option<std::path::PathBuf>,
}

/// The largest challenge file read from the webroot (a key authorization is under 100 bytes).
const MAX_TOKEN_FILE: u64 = 4096;

impl PlainHttpApp {
    /// Builds the handler; `webroot` is where an outside ACME client writes its HTTP-01 files.
    pub fn new(
        target: Target,
        tokens: Arc<Http01Tokens>,
        webroot: Option<std::path::PathBuf>,
    ) -> PlainHttpApp {
        PlainHttpApp {
            target,
            tokens,
            webroot,
        }
    }

    /// The answer to `token`: from the ACME client in this process, else from the webroot.
    fn answer(&self, token: &str) -> Option<Vec<u8>> {
        if !is_token(token) {
            return None;
        }
        if let Some(auth) = self.tokens.get(token) {
            return Some(auth.into_bytes());
        }
        let path = self
            .webroot
            .as_ref()?
            .join(".well-known/acme-challenge")
            .join(token);
        let file = std::fs::File::open(&path).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_TOKEN_FILE), &mut body)
            .ok()?;
        Some(body)
    }

    /// The reply to `method path_and_query` with `host` (the Host header, or the URI's authority).
    pub fn reply(
        &self,
        method: &Method,
        path_and_query: &str,
        host: Option<&str>,
    ) -> Response<Vec<u8>> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        if let Some(token) = path.strip_prefix(CHALLENGE_PREFIX) {
            if method != Method::GET && method != Method::HEAD {
                return plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
            }
            return match self.answer(token) {
                Some(auth) => {
                    tracing::info!(token, "acme: answered an HTTP-01 challenge");
                    let mut r = plain(StatusCode::OK, auth);
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/octet-stream"),
                    );
                    r
                }
                None => plain(StatusCode::NOT_FOUND, "no such challenge\n"),
            };
        }
        let authority = match &self.target {
            Target::Public(authority) => authority.clone(),
            Target::RequestHost(port) => match host.and_then(host_only) {
                Some(h) if *port == 443 => h.to_string(),
                Some(h) => format!("{h}:{port}"),
                None => return plain(StatusCode::BAD_REQUEST, "a valid Host header is needed\n"),
            },
        };
        let pq = if path_and_query.starts_with('/') {
            path_and_query
        } else {
            "/"
        };
        let status = if method == Method::GET || method == Method::HEAD {
            StatusCode::MOVED_PERMANENTLY
        } else {
            StatusCode::PERMANENT_REDIRECT
        };
        let location = format!("https://{authority}{pq}");
        let mut r = plain(status, "use https\n");
        match http::HeaderValue::from_str(&location) {
            Ok(v) => {
                r.headers_mut().insert(http::header::LOCATION, v);
                r
            }
            Err(_) => plain(StatusCode::BAD_REQUEST, "bad request target\n"),
        }
    }
}

/// Whether `token` has the shape ACME gives tokens (base64url, no padding).
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The host part of a Host header (`name`, `name:port`, `[v6]`, `[v6]:port`), when it is a plain DNS name
/// or IP literal; `None` for anything else (userinfo, paths, spaces), so a redirect never points elsewhere
/// than a host name.
pub fn host_only(header: &str) -> Option<&str> {
    let h = header.trim();
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let end = rest.find(']')?;
        let v6 = &rest[..end];
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        (&h[..end + 2], &rest[end + 1..])
    } else {
        match h.split_once(':') {
            Some((host, _)) => (host, &h[host.len()..]),
            None => (h, ""),
        }
    };
    if let Some(p) = port.strip_prefix(':') {
        p.parse::<u16>().ok()?;
    } else if !port.is_empty() {
        return None;
    }
    let dns_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (host.starts_with('[') || dns_ok).then_some(host)
}

fn plain(status: StatusCode, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static response parts")
}

#[async_trait]
impl ServeHttp for PlainHttpApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()));
        let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        self.reply(&req.method, pq, host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(target: Target) -> PlainHttpApp {
        let tokens = Arc::new(Http01Tokens::default());
        tokens.insert("tok-EN_1", "tok-EN_1.thumb");
        PlainHttpApp::new(target, tokens, None)
    }

    #[test]
    fn redirects_table() {
        // (target, method, path and query, Host, status, Location)
        type Case = (
            Target,
            Method,
            &'static str,
            Option<&'static str>,
            u16,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                Some("reg.example"),
                301,
                Some("https://reg.example/v2/"),
            ),
            (
                Target::RequestHost(443),
                Method::HEAD,
                "/v2/a/manifests/x",
                Some("reg.example:80"),
                301,
                Some("https://reg.example/v2/a/manifests/x"),
            ),
            (
                Target::RequestHost(8443),
                Method::PUT,
                "/v2/a/blobs/uploads/u?digest=sha256:1",
                Some("reg.example"),
                308,
                Some("https://reg.example:8443/v2/a/blobs/uploads/u?digest=sha256:1"),
            ),
            (
                Target::RequestHost(443),
                Method::POST,
                "/v2/a/blobs/uploads/",
                Some("[::1]:80"),
                308,
                Some("https://[::1]/v2/a/blobs/uploads/"),
            ),
            (
                Target::RequestHost(443),
                Method::DELETE,
                "/v2/a/manifests/x",
                Some("10.0.0.1"),
                308,
                Some("https://10.0.0.1/v2/a/manifests/x"),
            ),
            (
                Target::RequestHost(443),
                Method::PATCH,
                "/x",
                Some("reg.example"),
                308,
                Some("https://reg.example/x"),
            ),
            (
                Target::Public("pub.example:9443".into()),
                Method::GET,
                "/v2/",
                Some("evil.example"),
                301,
                Some("https://pub.example:9443/v2/"),
            ),
            (
                Target::Public("pub.example".into()),
                Method::GET,
                "/",
                None,
                301,
                Some("https://pub.example/"),
            ),
            // Hostile or missing hosts never become a redirect elsewhere.
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                None,
                400,
                None,
            ),
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                Some("evil.example/x"),
                400,
                None,
            ),
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                Some("user@evil.example"),
                400,
                None,
            ),
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                Some("a b"),
                400,
                None,
            ),
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                Some("reg.example:99999"),
                400,
                None,
            ),
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                Some("[not-v6]"),
                400,
                None,
            ),
            (
                Target::RequestHost(443),
                Method::GET,
                "/v2/",
                Some(""),
                400,
                None,
            ),
        ];
        for (target, method, pq, host, status, location) in cases {
            let r = app(target.clone()).reply(method, pq, *host);
            assert_eq!(r.status().as_u16(), *status, "{method} {pq} {host:?}");
            let got = r
                .headers()
                .get(http::header::LOCATION)
                .map(|v| v.to_str().unwrap());
            assert_eq!(got, *location, "{method} {pq} {host:?}");
        }
    }

    #[test]
    fn challenges_are_answered_only_for_known_tokens() {
        let a = app(Target::RequestHost(443));
        let r = a.reply(
            &Method::GET,
            "/.well-known/acme-challenge/tok-EN_1",
            Some("reg.example"),
        );
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.body(), b"tok-EN_1.thumb");
        for (method, path, status) in [
            (Method::GET, "/.well-known/acme-challenge/other", 404),
            (Method::GET, "/.well-known/acme-challenge/", 404),
            (Method::GET, "/.well-known/acme-challenge/../tok-EN_1", 404),
            (Method::GET, "/.well-known/acme-challenge/tok-EN_1/x", 404),
            (Method::POST, "/.well-known/acme-challenge/tok-EN_1", 405),
        ] {
            let r = a.reply(&method, path, Some("reg.example"));
            assert_eq!(r.status().as_u16(), status, "{method} {path}");
        }
        a.tokens.remove("tok-EN_1");
        let r = a.reply(
            &Method::GET,
            "/.well-known/acme-challenge/tok-EN_1",
            Some("reg.example"),
        );
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
