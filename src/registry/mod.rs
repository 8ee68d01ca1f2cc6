//! The embedded registry: the OCI distribution spec answered in-process, over [`crate::storage`].
//!
//! The proxy calls [`Registry::handle`] with a parsed [`Route`] once auth and authz have passed; the handler reads
//! the request body through [`RequestBody`] and returns a [`Reply`] that the proxy writes out (adding the common
//! headers in one place). Nothing here knows about pingora, so handlers are tested without a server.

use crate::errcode::ApiError;
use crate::route::Route;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// What a handler sees of a request.
pub struct Request<'a> {
    /// The parsed route.
    pub route: &'a Route,
    /// The HTTP method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, without the `?` (empty when there is none).
    pub query: &'a str,
}

/// A streaming request body.
#[async_trait::async_trait]
pub trait RequestBody: Send {
    /// The next chunk of the body, or `None` at its end.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>>;
}

/// The body of a reply.
pub enum ReplyBody {
    /// No body.
    Empty,
    /// A small body held in memory (JSON, manifests).
    Bytes(Bytes),
    /// A byte range of a file, streamed by the proxy.
    File {
        /// The open file.
        file: tokio::fs::File,
        /// Where the range starts.
        offset: u64,
        /// How many bytes to send.
        len: u64,
    },
}

/// A handler's answer; the proxy adds the common headers and writes it.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// Headers specific to this reply (Content-Type, Content-Length, Docker-Content-Digest, Location ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: ReplyBody,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        let body = e.body();
        Reply {
            status: e.status,
            headers: vec![
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                ),
                (http::header::CONTENT_LENGTH, HeaderValue::from(body.len())),
            ],
            body: ReplyBody::Bytes(body),
        }
    }
}

// TEMPORARY STUB until the embedded registry lands (replaced by the real implementation).
/// The embedded registry.
pub struct Registry;
impl Registry {
    /// Answers one request.
    pub async fn handle(&self, _req: &Request<'_>, _body: &mut dyn RequestBody) -> Reply {
        Reply::from(
            ApiError::new(crate::errcode::Code::Unavailable)
                .message("embedded backend not built yet"),
        )
    }
}
