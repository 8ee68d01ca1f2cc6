//! The pingora [`ProxyHttp`] implementation: each phase is thin and delegates to the pipeline's modules.
//!
//! `request_filter` is admission (`admit`: CORS preflight, the branch on the path's first segment, route,
//! auth, authz) and then one backend call ([`crate::backend::Backend::serve`]): the backend either answers
//! in-process, or hands back a [`Forward`] and pingora forwards the request upstream. Every reply gatehouse
//! makes itself leaves through one writer (`write`); every response, forwarded or our own, gets its common
//! headers from [`crate::headers::decorate`]; `logging` writes one access-log line and the request metrics.

use crate::backend::{Backend, Forward};
use crate::errcode::{ApiError, Code};
use crate::headers::{self, Decoration};
use crate::live::{Live, LiveConfig};
use crate::metrics::metrics;
use crate::reply::Request;
use crate::timeouts::Timeouts;
use crate::upstream::{self, ClientView};
use async_trait::async_trait;
use http::{HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::Instant;

mod admit;
mod sendfile;
mod support;
#[cfg(test)]
mod tests;
mod write;

use support::{client_view, method_label, request_id, SessionBody};

/// The front door: shared by every request.
pub struct Gatehouse {
    live: Arc<LiveConfig>,
    backend: Arc<Backend>,
    timeouts: Timeouts,
    /// The web UI, when it is on (its settings wait for a restart; its sessions outlive reloads).
    ui: Option<crate::ui::Ui>,
}

/// Per-request state carried across pingora's phases.
pub struct Ctx {
    /// The configuration this request is decided with, start to end (a reload does not change it midway).
    live: Arc<Live>,
    /// Holds shutdown back until this request is done ([`crate::drain`]).
    in_flight: Option<crate::drain::InFlight>,
    start: Instant,
    counted: bool,
    request_id: HeaderValue,
    upstream_start: Option<Instant>,
    upstream_time: Option<std::time::Duration>,
    /// Set when the backend forwards this request upstream.
    forward: Option<Forward>,
    kind: &'static str,
    repository: Option<String>,
    origin: Option<HeaderValue>,
    user: Option<String>,
    auth: &'static str,
    client: ClientView,
    /// A reply written straight to the socket (`sendfile`), which pingora never saw: its status and the body
    /// bytes that went out.
    direct: Option<(u16, u64)>,
}

impl Gatehouse {
    /// Assembles the door from the running configuration (replaced on reload) and the backend.
    pub fn new(live: Arc<LiveConfig>, backend: Arc<Backend>) -> Gatehouse {
        Gatehouse {
            ui: crate::ui::Ui::new(&live.snapshot().config.ui),
            timeouts: live.snapshot().config.timeouts,
            live,
            backend,
        }
    }

    fn decoration<'a>(&'a self, ctx: &'a Ctx) -> Decoration<'a> {
        Decoration {
            cors: &ctx.live.cors,
            origin: ctx.origin.as_ref(),
            extra: &ctx.live.config.headers,
            request_id: &ctx.request_id,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gatehouse {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            live: self.live.snapshot(),
            in_flight: None,
            start: Instant::now(),
            counted: false,
            request_id: HeaderValue::from_static("-"),
            upstream_start: None,
            upstream_time: None,
            forward: None,
            kind: "unparsed",
            repository: None,
            origin: None,
            user: None,
            auth: "none",
            client: ClientView::default(),
            direct: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        metrics().in_flight.inc();
        ctx.counted = true;
        ctx.in_flight = Some(crate::drain::InFlight::begin());
        // A body that stalls, and a client that takes nothing of a response, are cut off.
        session.set_read_timeout(Some(self.timeouts.body));
        session.set_write_timeout(Some(self.timeouts.send));
        let req = session.req_header();
        ctx.request_id = request_id(&req.headers);
        ctx.origin = ctx.live.cors.allowed_origin(&req.headers);
        ctx.client = client_view(session, &ctx.live.config.trusted_proxies);

        let reply = match self.admit(session.req_header(), ctx).await {
            Err(reply) => reply,
            Ok(admitted) => {
                if let Some(forward) = self.backend.forward(&admitted.route, &admitted.permit) {
                    ctx.forward = Some(forward);
                    return Ok(false);
                }
                // Answered in-process: the handler reads the body from the session while it looks at the head.
                let head = session.req_header().clone();
                let request = Request {
                    route: &admitted.route,
                    method: &head.method,
                    headers: &head.headers,
                };
                let mut body = SessionBody::new(session, self.timeouts.body);
                self.backend
                    .serve(&admitted.permit, &request, &mut body)
                    .await
            }
        };
        self.write(session, ctx, reply).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        match &ctx.forward {
            Some(f) => Ok(upstream::peer(&f.upstream)),
            None => Error::e_explain(
                ErrorType::InternalError,
                "only forwarded requests reach upstream_peer",
            ),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(f) = &ctx.forward {
            upstream::prepare_request(upstream_request, &f.upstream, &ctx.client);
            if let Some(q) = &f.query {
                let path = upstream_request.uri.path();
                let uri = if q.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{q}")
                };
                let uri = uri.parse().map_err(|e| {
                    Error::because(ErrorType::InternalError, "rebuilding the upstream query", e)
                })?;
                upstream_request.set_uri(uri);
            }
            upstream_request.insert_header("X-Request-Id", ctx.request_id.clone())?;
        }
        ctx.upstream_start = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(start) = ctx.upstream_start {
            let took = start.elapsed();
            ctx.upstream_time = Some(took);
            let m = metrics();
            m.upstream_duration
                .with_label_values(&[ctx.kind])
                .observe(took.as_secs_f64());
            m.upstream_up.set(1);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(f) = &ctx.forward {
            upstream::rewrite_location(resp, &f.upstream, &ctx.client);
        }
        headers::decorate(resp, &self.decoration(ctx));
        Ok(())
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        // A client hanging up is normal traffic (the access log records it), not a server error.
        matches!(error.esource(), ErrorSource::Downstream)
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed
                    | ErrorType::ReadError
                    | ErrorType::WriteError
                    | ErrorType::ReadTimedout
                    | ErrorType::WriteTimedout
            )
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let downstream_gone = matches!(e.esource(), ErrorSource::Downstream)
            && matches!(
                e.etype(),
                ErrorType::WriteError
                    | ErrorType::ReadError
                    | ErrorType::ConnectionClosed
                    | ErrorType::WriteTimedout
            );
        if downstream_gone || session.response_written().is_some() || ctx.direct.is_some() {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        }
        if matches!(e.esource(), ErrorSource::Upstream) {
            let kind = if ctx.upstream_time.is_none() {
                "connect"
            } else {
                "proxy"
            };
            metrics().upstream_errors.with_label_values(&[kind]).inc();
            metrics().upstream_up.set(0);
        }
        let api = match (e.esource(), e.etype()) {
            (ErrorSource::Upstream, _) => ApiError::new(Code::Unavailable)
                .message("the upstream registry is unavailable; try again shortly"),
            (ErrorSource::Downstream, ErrorType::ReadTimedout) => {
                ApiError::new(Code::BlobUploadInvalid)
                    .message("the request body stalled")
                    .with_status(StatusCode::REQUEST_TIMEOUT)
            }
            (ErrorSource::Downstream, _) => {
                ApiError::new(Code::Unknown).with_status(StatusCode::BAD_REQUEST)
            }
            _ => ApiError::new(Code::Unknown),
        };
        let code = api.status.as_u16();
        // pingora closes the connection after a failed proxy attempt: say so, or a client that trusts
        // `keep-alive` sends its next request into a closed socket.
        session.set_keepalive(None);
        if let Err(err) = self.write(session, ctx, api.into()).await {
            tracing::debug!("could not send the error response: {err}");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let (status, bytes_out) = match ctx.direct {
            Some((status, sent)) => (status, sent as usize),
            None => (
                session
                    .response_written()
                    .map(|r| r.status.as_u16())
                    .unwrap_or(0),
                session.body_bytes_sent(),
            ),
        };
        let req = session.req_header();
        let method = method_label(&req.method);
        let bytes_in = session.body_bytes_read();
        let elapsed = ctx.start.elapsed();
        let m = metrics();
        if ctx.counted {
            m.in_flight.dec();
        }
        m.requests
            .with_label_values(&[ctx.kind, method, crate::metrics::status_label(status)])
            .inc();
        m.request_duration
            .with_label_values(&[ctx.kind])
            .observe(elapsed.as_secs_f64());
        m.received_bytes
            .with_label_values(&[ctx.kind])
            .inc_by(bytes_in as u64);
        m.sent_bytes
            .with_label_values(&[ctx.kind])
            .inc_by(bytes_out as u64);
        if !ctx.live.config.log.access_log {
            return;
        }
        tracing::info!(
            target: "gatehouse::access",
            client = %ctx.client.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            user = ctx.user.as_deref().unwrap_or("-"),
            method = %req.method,
            route = ctx.kind,
            repository = ctx.repository.as_deref().unwrap_or("-"),
            status,
            auth = ctx.auth,
            bytes_in,
            bytes_out,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            upstream_ms = ctx.upstream_time.map(|t| t.as_secs_f64() * 1000.0),
            request_id = ctx.request_id.to_str().unwrap_or("-"),
            error = e.map(|e| e.etype().as_str()).unwrap_or("-"),
            "request"
        );
    }
}
