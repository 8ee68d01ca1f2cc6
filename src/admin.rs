//! The metrics and health listener: `/metrics` (Prometheus text format, optionally behind Basic auth),
//! `/healthz` (the process answers) and `/readyz` (the htpasswd file in force; the TLS files in force; storage
//! writable or upstream reachable).
//! It runs as its own pingora service on its own address, loopback by default.

use crate::backend::Backend;
use async_trait::async_trait;
use base64::Engine;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// What `/readyz` checks.
pub struct Readiness {
    /// The running configuration: when auth is on, ready while what the htpasswd file says is in force.
    pub live: Arc<crate::live::LiveConfig>,
    /// The backend: embedded storage writable, or the upstream reachable.
    pub backend: Arc<Backend>,
    /// The TLS certificate store, when TLS is on: ready while the files on disk are what is served.
    pub tls: Option<Arc<crate::tls::CertStore>>,
}

impl Readiness {
    /// Runs the checks; `Err` names the first one that failed.
    pub async fn check(&self) -> Result<(), String> {
        if let Some(auth) = &self.live.snapshot().auth {
            auth.health()?;
        }
        if let Some(tls) = &self.tls {
            tls.health()?;
        }
        self.backend.ready().await
    }
}

/// The listener's request handler.
pub struct AdminApp {
    /// The readiness checks.
    pub readiness: Readiness,

    /// The expected `Authorization` value for `/metrics`, when protected.
    pub metrics_auth: Option<String>,
}

impl AdminApp {
    /// Builds the app; `basic_auth` protects `/metrics`.
    pub fn new(readiness: Readiness, basic_auth: Option<(String, String)>) -> AdminApp {
        let metrics_auth = basic_auth.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        AdminApp {
            readiness,
            metrics_auth,
        }
    }

    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(expected) = &self.metrics_auth else {
            return true;
        };
        let given = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        constant_time_eq(given, expected.as_bytes())
    }
}

/// Whether a browser sent the request from a page: it carries an `Origin`, or a `Sec-Fetch-Site` other than
/// `none` (a URL typed into the address bar). Prometheus, curl and `gatehouse healthcheck` send neither. A
/// page on any site could otherwise start a collection with a form POST, and a DNS-rebinding page (same
/// origin as far as the browser knows, so no CORS stands in the way) could read `/usage` and `/metrics`.
pub fn from_a_web_page(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"none")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(status: StatusCode, body: impl Into<Vec<u8>>, content_type: &str) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .expect("static response parts")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let plain = "text/plain; charset=utf-8";
        if from_a_web_page(&session.req_header().headers) {
            return text(
                StatusCode::FORBIDDEN,
                "the admin listener does not answer web pages\n",
                plain,
            );
        }
        let read = matches!(
            session.req_header().method,
            http::Method::GET | http::Method::HEAD
        );
        match path.as_str() {
            // Only /gc takes a POST; everything else is read with GET or HEAD (found in review: DELETE /metrics
            // answered 200).
            "/healthz" | "/readyz" | "/metrics" if !read => {
                text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n", plain)
            }
            "/healthz" => text(StatusCode::OK, "ok\n", plain),
            "/readyz" => match self.readiness.check().await {
                Ok(()) => text(StatusCode::OK, "ready\n", plain),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"), plain),
            },
            "/metrics" => {
                if !self.authorized(session) {
                    let mut r = text(StatusCode::UNAUTHORIZED, "authentication required\n", plain);
                    r.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        http::HeaderValue::from_static("Basic realm=\"metrics\""),
                    );
                    return r;
                }
                // The embedded registry's in-memory counters are copied into the storage gauges at each scrape.
                if let Some(s) = self.readiness.backend.stats() {
                    let m = crate::metrics::metrics();
                    m.storage_blobs.set(s.blobs as i64);
                    m.storage_bytes.set(s.blob_bytes as i64);
                    m.storage_uploads.set(s.uploads_tracked as i64);
                    let new_failures = s
                        .commit_failures
                        .saturating_sub(m.storage_commit_failures.get());
                    m.storage_commit_failures.inc_by(new_failures);
                }
                text(
                    StatusCode::OK,
                    crate::metrics::render(),
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            }
            "/gc" | "/usage" if !self.authorized(session) => {
                text(StatusCode::UNAUTHORIZED, "authentication required\n", plain)
            }
            "/gc" if session.req_header().method != http::Method::POST => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST to run garbage collection\n",
                plain,
            ),
            "/gc" => {
                let (status, body) = crate::gc::service::admin_run().await;
                text(status, body, "application/json")
            }
            "/usage" if !read => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "GET the usage report\n",
                plain,
            ),
            "/usage" => {
                let (status, body) = crate::gc::service::admin_usage().await;
                text(status, body, "application/json")
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n", plain),
        }
    }
}
