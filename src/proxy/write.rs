//! The one writer of every reply gatehouse makes itself: preflights, errors, challenges and the embedded
//! registry's answers all leave through [`Gatehouse::write`], which adds the common headers and streams the body.

use super::support::stream_chunks;
use super::{Ctx, Gatehouse};
use crate::headers;
use crate::reply::{Reply, ReplyBody};
use http::Method;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

impl Gatehouse {
    /// Writes a reply with the common headers; a HEAD gets the headers only. Streams go out as the client
    /// takes them, each write under the send timeout set on the session.
    pub(super) async fn write(&self, session: &mut Session, ctx: &Ctx, reply: Reply) -> Result<()> {
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
                session.write_response_header(Box::new(resp), false).await?;
                stream_chunks(session, &mut *stream, len).await
            }
        }
    }
}
