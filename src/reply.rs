//! The vocabulary the door and both backends share: what a handler sees of a request, the request body it
//! reads, and the [`Reply`] gatehouse writes when it answers itself (errors, the embedded registry, preflights).
//!
//! Nothing here knows about pingora or storage: the proxy adapts a pingora session to [`RequestBody`] and writes
//! a [`Reply`] in one place; storage hands blob bytes over as a [`ByteStream`].

use crate::errcode::ApiError;
use crate::route::Route;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// What a handler sees of a request: the parsed route carries every parameter, so there is no raw query here.
pub struct Request<'a> {
    /// The parsed route with its typed parameters.
    pub route: &'a Route,
    /// The HTTP method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// A streaming request body.
#[async_trait::async_trait]
pub trait RequestBody: Send {
    /// The next chunk of the body, or `None` at its end.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>>;
}

/// A stream of reply bytes, such as a blob read from a storage driver.
///
/// An implementation holds no thread while its consumer is not asking for the next chunk, and a bounded amount
/// of memory.
#[async_trait::async_trait]
pub trait ByteStream: Send {
    /// The next chunk, or `None` at the end.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>>;

    /// The local file and the byte range (offset, length) this stream reads, when it is exactly that and
    /// nothing of it has been read yet: the proxy may then have the kernel send the range (`sendfile`) and
    /// never call [`ByteStream::next_chunk`].
    fn file_range(&self) -> Option<(std::sync::Arc<std::fs::File>, u64, u64)> {
        None
    }
}

/// The body of a reply.
pub enum ReplyBody {
    /// No body.
    Empty,
    /// A small body held in memory (JSON, manifests).
    Bytes(Bytes),
    /// Exactly `len` bytes from a stream, written by the proxy as the client takes them.
    Stream {
        /// Where the bytes come from.
        stream: Box<dyn ByteStream>,
        /// How many bytes the reply promises (its Content-Length).
        len: u64,
    },
}

impl ReplyBody {
    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            ReplyBody::Empty => 0,
            ReplyBody::Bytes(b) => b.len() as u64,
            ReplyBody::Stream { len, .. } => *len,
        }
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An answer gatehouse writes itself; the proxy adds the common headers and writes it in one place.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// Headers specific to this reply (Content-Type, Content-Length, Docker-Content-Digest, Location ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: ReplyBody,
}

impl Reply {
    /// A reply with a status and no body or headers of its own.
    pub fn status(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Empty,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Reply {
        self.headers.push((name, value));
        self
    }
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
