//! Small pieces of the proxy's phases: reading a request body from and streaming a body to a pingora session,
//! the request id, the client's view of the connection, fixed metric labels.

use crate::reply::{ByteStream, RequestBody};
use crate::route::Action;
use crate::upstream::ClientView;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Method};
use pingora::prelude::*;
use pingora::proxy::Session;

/// Reads the request body from the pingora session; a client that sent `Expect: 100-continue` gets its
/// `100 Continue` when the body is first asked for, so a request refused before that never invites the body.
/// A body that sends nothing for `stall` fails with `TimedOut`, over HTTP/1 and HTTP/2 alike (pingora's own
/// read timeout does nothing on an HTTP/2 stream).
pub(super) struct SessionBody<'a> {
    session: &'a mut Session,
    continue_pending: bool,
    stall: std::time::Duration,
}

impl<'a> SessionBody<'a> {
    /// The body of the session's request.
    pub(super) fn new(session: &'a mut Session, stall: std::time::Duration) -> SessionBody<'a> {
        let req = session.req_header();
        let continue_pending = matches!(req.method, Method::PUT | Method::PATCH | Method::POST)
            && req
                .headers
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        SessionBody {
            session,
            continue_pending,
            stall,
        }
    }
}

#[async_trait]
impl RequestBody for SessionBody<'_> {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        if std::mem::take(&mut self.continue_pending) {
            self.session
                .write_continue_response()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        let stalled = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the request body sent nothing for {:?}", self.stall),
            )
        };
        match tokio::time::timeout(self.stall, self.session.read_request_body()).await {
            Err(_) => Err(stalled()),
            Ok(Err(e)) if e.etype() == &ErrorType::ReadTimedout => Err(stalled()),
            Ok(r) => r.map_err(|e| std::io::Error::other(e.to_string())),
        }
    }
}

/// Sends exactly `len` bytes of `stream` as body chunks; a stream that ends early or fails is an error (the
/// client sees a short body and a closed connection, never a silently truncated success).
pub(super) async fn stream_chunks(
    session: &mut Session,
    stream: &mut dyn ByteStream,
    len: u64,
) -> Result<()> {
    let mut left = len;
    while left > 0 {
        let chunk = match stream.next_chunk().await {
            Ok(Some(chunk)) if chunk.len() as u64 <= left => chunk,
            Ok(Some(_)) => {
                return Error::e_explain(ErrorType::InternalError, "stream longer than its length")
            }
            Ok(None) => {
                return Error::e_explain(ErrorType::InternalError, "stream shorter than its length")
            }
            Err(e) => return Err(Error::because(ErrorType::InternalError, "read stream", e)),
        };
        left -= chunk.len() as u64;
        session.write_response_body(Some(chunk), left == 0).await?;
    }
    if len == 0 {
        session.write_response_body(None, true).await?;
    }
    Ok(())
}

/// A fixed label for an action.
pub(super) fn action_label(a: Action) -> &'static str {
    match a {
        Action::None => "none",
        Action::Pull => "pull",
        Action::Push => "push",
        Action::Delete => "delete",
    }
}

/// A fixed label for the request method.
pub(super) fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The client's `X-Request-Id` when it is sane (1-128 of `[A-Za-z0-9._:-]`), else a new UUID.
pub(super) fn request_id(headers: &http::HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get("x-request-id") {
        let b = v.as_bytes();
        if !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
        {
            return v.clone();
        }
    }
    HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is a header value")
}

/// How the client reached us: `X-Forwarded-Proto/Host` from a fronting proxy (Caprover's nginx), else ours.
pub(super) fn client_view(session: &Session, trusted: &[crate::net::Cidr]) -> ClientView {
    let h = &session.req_header().headers;
    let text = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // A TLS connection is https whatever a header says (the UI's session cookie is Secure then).
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let proto = match text("x-forwarded-proto").as_deref() {
        _ if tls => "https",
        Some("https") => "https",
        _ => "http",
    };
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let ip = crate::net::client_ip(peer, text("x-forwarded-for").as_deref(), trusted);
    ClientView {
        proto: proto.to_string(),
        host: text("x-forwarded-host").or_else(|| text("host")),
        addr: peer.map(|ip| ip.to_string()),
        ip,
    }
}
