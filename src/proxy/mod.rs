//! The pingora [`ProxyHttp`] implementation: each phase is thin and delegates to the pipeline's modules.
//!
//! `request_filter` runs route → CORS preflight → auth → authz, then either answers in-process (embedded
//! backend, or any error) or lets pingora forward the request upstream. Every response, forwarded or our own,
//! gets its common headers from [`crate::headers::decorate`], and `logging` writes one access-log line.

use crate::auth::{Authenticator, Outcome, Principal};
use crate::authz::{Permit, Refusal};
use crate::config::Config;
use crate::cors::Cors;
use crate::errcode::{ApiError, Code};
use crate::headers::{self, Decoration};
use crate::metrics::metrics;
use crate::registry::{Registry, Reply, ReplyBody, Request, RequestBody};
use crate::route::{self, Action, Route, Target};
use crate::upstream::{self, ClientView, UpstreamConfig};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, StatusCode};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::Instant;

mod support;
use support::*;

/// How much of a file is read per body chunk when serving blobs in-process.
const FILE_CHUNK: usize = 512 * 1024;

/// Where the backend step goes.
pub enum BackendHandle {
    /// The in-process registry.
    Embedded(Arc<Registry>),
    /// An upstream registry, forwarded to by pingora.
    Upstream(UpstreamConfig),
}

/// The front door: shared by every request.
pub struct Gatehouse {
    config: Arc<Config>,
    cors: Cors,
    auth: Option<Arc<Authenticator>>,
    backend: BackendHandle,
}

/// Per-request state carried across pingora's phases.
pub struct Ctx {
    start: Instant,
    counted: bool,
    request_id: HeaderValue,
    upstream_start: Option<Instant>,
    upstream_time: Option<std::time::Duration>,
    /// The query sent to the backend when it differs from the client's (a refused mount dropped).
    query: Option<String>,
    /// A catalog answer being collected for filtering by the access rules.
    catalog: Option<BytesMut>,
    route: Option<Route>,
    kind: &'static str,
    origin: Option<HeaderValue>,
    user: Option<String>,
    auth: &'static str,
    client: ClientView,
    principal: Option<Principal>,
}

impl Gatehouse {
    /// Assembles the door from validated config, the authenticator (None when auth is off) and the backend.
    pub fn new(
        config: Arc<Config>,
        auth: Option<Arc<Authenticator>>,
        backend: BackendHandle,
    ) -> Gatehouse {
        Gatehouse {
            cors: Cors::new(&config.cors),
            config,
            auth,
            backend,
        }
    }

    fn decoration<'a>(&'a self, ctx: &'a Ctx) -> Decoration<'a> {
        Decoration {
            cors: &self.cors,
            origin: ctx.origin.as_ref(),
            extra: &self.config.headers,
            request_id: &ctx.request_id,
        }
    }

    /// Writes one of gatehouse's own answers, with the common headers.
    async fn respond(&self, session: &mut Session, ctx: &Ctx, reply: Reply) -> Result<()> {
        let head_only = session.req_header().method == Method::HEAD;
        let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 8))?;
        for (name, value) in reply.headers {
            resp.append_header(name, value)?;
        }
        let needs_length = !matches!(reply.status.as_u16(), 100..=199 | 204 | 304);
        if needs_length && resp.headers.get(http::header::CONTENT_LENGTH).is_none() {
            let len = match &reply.body {
                ReplyBody::Empty => 0,
                ReplyBody::Bytes(b) => b.len() as u64,
                ReplyBody::File { len, .. } => *len,
            };
            resp.insert_header(http::header::CONTENT_LENGTH, len)?;
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
            ReplyBody::File { file, offset, len } => {
                session.write_response_header(Box::new(resp), false).await?;
                stream_file(session, file, offset, len).await
            }
        }
    }

    async fn respond_error(&self, session: &mut Session, ctx: &Ctx, e: ApiError) -> Result<()> {
        self.respond(session, ctx, Reply::from(e)).await
    }

    /// The 401 challenge, as distribution writes it.
    async fn challenge(&self, session: &mut Session, ctx: &Ctx) -> Result<()> {
        let mut reply = Reply::from(ApiError::new(Code::Unauthorized));
        let realm = format!("Basic realm=\"{}\"", self.config.auth.realm);
        if let Ok(v) = HeaderValue::from_str(&realm) {
            reply.headers.push((http::header::WWW_AUTHENTICATE, v));
        }
        self.respond(session, ctx, reply).await
    }

    /// Runs the embedded backend for an authorized request.
    async fn serve_embedded(
        &self,
        registry: &Registry,
        _permit: &Permit,
        route: &Route,
        session: &mut Session,
        ctx: &Ctx,
    ) -> Result<Reply> {
        let req = session.req_header().clone();
        let has_body = matches!(req.method, Method::PUT | Method::PATCH | Method::POST);
        if has_body
            && req
                .headers
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        {
            session.write_continue_response().await?;
        }
        let request = Request {
            route,
            method: &req.method,
            headers: &req.headers,
            query: ctx
                .query
                .as_deref()
                .unwrap_or(req.uri.query().unwrap_or("")),
        };
        let mut body = SessionBody { session };
        Ok(registry.handle(&request, &mut body).await)
    }
}

#[async_trait]
impl ProxyHttp for Gatehouse {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            start: Instant::now(),
            counted: false,
            request_id: HeaderValue::from_static("-"),
            upstream_start: None,
            upstream_time: None,
            query: None,
            catalog: None,
            route: None,
            kind: "unparsed",
            origin: None,
            user: None,
            auth: "none",
            client: ClientView::default(),
            principal: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        metrics().in_flight.inc();
        ctx.counted = true;
        let req = session.req_header();
        ctx.request_id = request_id(&req.headers);
        ctx.origin = self.cors.allowed_origin(&req.headers);
        ctx.client = client_view(session, &self.config.trusted_proxies);

        // cors: a preflight is answered here, on any path, without auth, and never forwarded.
        if Cors::is_preflight(&req.method, &req.headers) {
            ctx.kind = "preflight";
            let headers = if ctx.origin.is_some() {
                self.cors.preflight_headers()
            } else {
                Vec::new()
            };
            let reply = Reply {
                status: StatusCode::NO_CONTENT,
                headers,
                body: ReplyBody::Empty,
            };
            self.respond(session, ctx, reply).await?;
            return Ok(true);
        }

        // route
        let route = match route::parse(&req.method, req.uri.path()) {
            Ok(route) => route,
            Err(e) => {
                self.respond_error(session, ctx, e).await?;
                return Ok(true);
            }
        };
        ctx.kind = route.kind();

        // auth
        let header = req
            .headers
            .get(http::header::AUTHORIZATION)
            .filter(|h| !crate::auth::is_empty_basic(h));
        let (principal, authenticated) = match (&self.auth, header) {
            (None, _) => (None, true),
            // No credentials: maybe a public pull; authz decides between that and a challenge.
            (Some(_), None) => (None, false),
            (Some(auth), Some(header)) => {
                let outcome = auth.authenticate(Some(header), ctx.client.ip).await;
                ctx.auth = outcome.label();
                metrics().auth_attempts.with_label_values(&[ctx.auth]).inc();
                match outcome {
                    Outcome::Ok { principal, .. } => (Some(principal), true),
                    Outcome::Throttled { retry_after } => {
                        let mut reply =
                            Reply::from(ApiError::new(Code::TooManyRequests).message(
                                "too many failed logins from this address; try again later",
                            ));
                        reply
                            .headers
                            .push((http::header::RETRY_AFTER, HeaderValue::from(retry_after)));
                        self.respond(session, ctx, reply).await?;
                        return Ok(true);
                    }
                    _ => {
                        self.challenge(session, ctx).await?;
                        return Ok(true);
                    }
                }
            }
        };
        ctx.user = principal.as_ref().map(|p| p.user.clone());

        // authz, then the backend
        let query = req.uri.query().unwrap_or("");
        let policy = &self.config.policy;
        let permit = match policy.decide(&route, principal.as_ref(), authenticated, query) {
            Ok(permit) => permit,
            Err(refusal) => {
                match refusal {
                    // An anonymous caller being asked to log in is not a denial (every docker login starts so).
                    Refusal::NeedCredentials => self.challenge(session, ctx).await?,
                    Refusal::Denied => {
                        metrics()
                            .authz_denials
                            .with_label_values(&[action_label(route.action)])
                            .inc();
                        self.respond_error(session, ctx, ApiError::new(Code::Denied))
                            .await?
                    }
                }
                return Ok(true);
            }
        };
        if !permit.mount_allowed() {
            ctx.query = Some(crate::registry::query_without_mount(query));
        }
        if policy.is_restrictive() && route.target == Target::Catalog {
            ctx.catalog = Some(BytesMut::new());
        }
        let principal_for_filter = principal;
        match &self.backend {
            BackendHandle::Upstream(_) => {
                ctx.route = Some(route);
                ctx.principal = principal_for_filter;
                Ok(false)
            }
            BackendHandle::Embedded(registry) => {
                let reply = if ctx.catalog.take().is_some() {
                    // Filter before paging, so `n` and `Link` count only what the caller may see.
                    let req = session.req_header();
                    let request = Request {
                        route: &route,
                        method: &req.method,
                        headers: &req.headers,
                        query: req.uri.query().unwrap_or(""),
                    };
                    let visible = |name: &crate::names::Name| {
                        policy.allows(principal_for_filter.as_ref(), name.as_str(), Action::Pull)
                    };
                    registry.catalog_visible(&request, &visible).await
                } else {
                    self.serve_embedded(registry, &permit, &route, session, ctx)
                        .await?
                };
                self.respond(session, ctx, reply).await?;
                ctx.route = Some(route);
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        match &self.backend {
            BackendHandle::Upstream(config) => Ok(upstream::peer(config)),
            BackendHandle::Embedded(_) => Error::e_explain(
                ErrorType::InternalError,
                "embedded requests are answered in request_filter",
            ),
        }
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let BackendHandle::Upstream(config) = &self.backend {
            upstream::prepare_request(upstream_request, config, &ctx.client);
            if let Some(q) = &ctx.query {
                let path = upstream_request.uri.path();
                let uri = if q.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{q}")
                };
                if let Ok(uri) = uri.parse() {
                    upstream_request.set_uri(uri);
                }
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
        if let BackendHandle::Upstream(config) = &self.backend {
            upstream::rewrite_location(resp, config, &ctx.client);
        }
        if ctx.catalog.is_some() {
            // The filtered catalog is shorter: it goes out chunked.
            resp.remove_header(&http::header::CONTENT_LENGTH);
            if resp.status != StatusCode::OK {
                ctx.catalog = None;
            }
        }
        headers::decorate(resp, &self.decoration(ctx));
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        let Some(buf) = ctx.catalog.as_mut() else {
            return Ok(None);
        };
        if let Some(chunk) = body.take() {
            if buf.len() + chunk.len() > MAX_CATALOG_BODY {
                return Error::e_explain(
                    ErrorType::InternalError,
                    "catalog answer too large to filter",
                );
            }
            buf.extend_from_slice(&chunk);
        }
        if end_of_stream {
            let all = ctx.catalog.take().unwrap_or_default().freeze();
            let policy = &self.config.policy;
            let principal = ctx.principal.as_ref();
            *body = Some(filter_catalog(&all, |repo| {
                policy.allows(principal, repo, Action::Pull)
            }));
        }
        Ok(None)
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, error: &Error) -> bool {
        // A client hanging up is normal traffic (the access log records it), not a server error.
        matches!(error.esource(), ErrorSource::Downstream)
            && matches!(
                error.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            )
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let downstream_gone = matches!(e.esource(), ErrorSource::Downstream)
            && matches!(
                e.etype(),
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed
            );
        if downstream_gone || session.response_written().is_some() {
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
        let api = match e.esource() {
            ErrorSource::Upstream => ApiError::new(Code::Unavailable)
                .message("the upstream registry is unavailable; try again shortly"),
            ErrorSource::Downstream => {
                ApiError::new(Code::Unknown).with_status(StatusCode::BAD_REQUEST)
            }
            _ => ApiError::new(Code::Unknown),
        };
        let code = api.status.as_u16();
        // pingora closes the connection after a failed proxy attempt: say so, or a client that trusts
        // `keep-alive` sends its next request into a closed socket.
        session.set_keepalive(None);
        if let Err(err) = self.respond_error(session, ctx, api).await {
            tracing::debug!("could not send the error response: {err}");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        let req = session.req_header();
        let method = method_label(&req.method);
        let (bytes_in, bytes_out) = (session.body_bytes_read(), session.body_bytes_sent());
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
        if !self.config.log.access_log {
            return;
        }
        tracing::info!(
            target: "gatehouse::access",
            client = %ctx.client.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into()),
            user = ctx.user.as_deref().unwrap_or("-"),
            method = %req.method,
            route = ctx.kind,
            repository = ctx.route.as_ref().and_then(|r| r.name()).map(|n| n.as_str()).unwrap_or("-"),
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
