//! The one place that adds the headers every response carries: the API version, CORS for an allowed origin,
//! and the configured extra headers. Called for upstream responses (`response_filter`) and for gatehouse's own
//! answers alike, since pingora skips `response_filter` for responses written in `request_filter`.

use crate::cors::Cors;
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;

/// The API version header distribution sends on every response.
pub const API_VERSION: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// What [`decorate`] needs to know about the request.
pub struct Decoration<'a> {
    /// The CORS policy.
    pub cors: &'a Cors,
    /// The request's origin, when it is allowed.
    pub origin: Option<&'a HeaderValue>,
    /// Configured extra headers.
    pub extra: &'a [(HeaderName, HeaderValue)],
    /// The request id, returned as `X-Request-Id`.
    pub request_id: &'a HeaderValue,
}

/// Adds the common headers to a response, replacing any an upstream sent under the same names.
pub fn decorate(resp: &mut ResponseHeader, d: &Decoration<'_>) {
    let _ = resp.insert_header(API_VERSION.0, API_VERSION.1);
    let _ = resp.insert_header("X-Request-Id", d.request_id.clone());
    if let Some(origin) = d.origin {
        for (name, value) in d.cors.response_headers(origin) {
            let _ = resp.insert_header(name, value);
        }
    }
    // Repeated names become repeated header lines, as distribution writes `http.headers` lists.
    let mut seen: Vec<&HeaderName> = Vec::new();
    for (name, value) in d.extra {
        if seen.contains(&name) {
            let _ = resp.append_header(name.clone(), value.clone());
        } else {
            seen.push(name);
            let _ = resp.insert_header(name.clone(), value.clone());
        }
    }
}
