//! The one writer of every reply gatehouse makes itself: preflights, errors, challenges and the embedded
//! registry's answers all leave through [`Gatehouse::write`], which adds the common headers and streams the body.
//! A large body that is a range of a local file goes to a plain TCP client by `sendfile` ([`super::sendfile`]).

use super::sendfile::{self, SendError};
use super::support::stream_chunks;
use super::{Ctx, Gatehouse};
use crate::headers;
use crate::reply::{Reply, ReplyBody};
use bytes::{BufMut, BytesMut};
use http::Method;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::fs::File;
use std::sync::Arc;

impl Gatehouse {
    /// Writes a reply with the common headers; a HEAD gets the headers only. Streams go out as the client
    /// takes them, each write under the send timeout set on the session.
    pub(super) async fn write(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        reply: Reply,
    ) -> Result<()> {
        let head_only = session.req_header().method == Method::HEAD;
        let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 8))?;
        for (name, value) in reply.headers {
            resp.append_header(name, value)?;
        }
        let needs_length = !matches!(reply.status.as_u16(), 100..=199 | 204 | 304);
        if needs_length && resp.headers.get(http::header::CONTENT_LENGTH).is_none() {
            resp.insert_header(http::header::CONTENT_LENGTH, reply.body.len())?;
        }
        headers::decorate(&mut resp, &self.decoration(ctx));
        let body = if head_only {
            ReplyBody::Empty
        } else {
            reply.body
        };
        match body {
            ReplyBody::Empty => session.write_response_header(Box::new(resp), true).await,
            ReplyBody::Bytes(b) => {
                session.write_response_header(Box::new(resp), false).await?;
                session.write_response_body(Some(b), true).await
            }
            ReplyBody::Stream { mut stream, len } => {
                if let Some((file, offset, file_len)) = stream.file_range() {
                    // A request body not read yet (a GET may have one) is left to pingora's writer, which
                    // answers `Connection: close` then; a reply past pingora would leave it to be drained
                    // as if it were the next request (found in review: it held the connection forever).
                    if len >= sendfile::MIN_LEN && file_len == len && session.is_body_done() {
                        if let Some(done) = self
                            .write_direct(session, ctx, &mut resp, file, offset, len)
                            .await
                        {
                            return done;
                        }
                    }
                }
                session.write_response_header(Box::new(resp), false).await?;
                stream_chunks(session, &mut *stream, len).await
            }
        }
    }

    /// Writes the reply straight to the socket, its body by `sendfile`, when the connection is plain TCP
    /// HTTP/1.1; `None` (nothing written) otherwise. The head gets what pingora would add (Date, Connection).
    async fn write_direct(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        resp: &mut ResponseHeader,
        file: Arc<File>,
        offset: u64,
        len: u64,
    ) -> Option<Result<()>> {
        let keep_alive = session.get_keepalive().is_some();
        let (guarded, fd) = sendfile::direct_socket(session)?;
        let socket = match sendfile::Socket::open(fd) {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, say: nothing is written yet, so the copying path answers.
                tracing::debug!("sendfile unavailable for this reply: {e}");
                return None;
            }
        };
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let headed = resp
            .insert_header(
                http::header::DATE,
                pingora::protocols::http::date::get_cached_date(),
            )
            .and_then(|()| resp.insert_header(http::header::CONNECTION, connection));
        if let Err(e) = headed {
            return Some(Err(e));
        }
        let mut head = BytesMut::with_capacity(512);
        head.put_slice(b"HTTP/1.1 ");
        head.put_slice(resp.status.as_str().as_bytes());
        head.put_u8(b' ');
        head.put_slice(resp.get_reason_phrase().unwrap_or("").as_bytes());
        head.put_slice(b"\r\n");
        resp.header_to_h1_wire(&mut head);
        head.put_slice(b"\r\n");
        let status = resp.status.as_u16();
        let r = sendfile::send(socket, &head, file, offset, len, self.timeouts.send).await;
        guarded.answered_past_me();
        let sent = match &r {
            Ok(sent) | Err((_, sent)) => *sent,
        };
        ctx.direct = Some((status, sent));
        crate::metrics::metrics().sendfile_bytes.inc_by(sent);
        Some(match r {
            Ok(_) => Ok(()),
            Err((why, _)) => Err(match why {
                SendError::Client { error, timed_out } => {
                    let kind = if timed_out {
                        ErrorType::WriteTimedout
                    } else {
                        ErrorType::WriteError
                    };
                    Error::because(kind, "sending a file body", error).into_down()
                }
                SendError::File(error) => {
                    Error::because(ErrorType::InternalError, "reading a file body", error)
                }
            }),
        })
    }
}
