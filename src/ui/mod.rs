//! The built-in web UI, served from the main listener under a prefix (`/` by default; never shadowing `/v2/`).
//!
//! It is a static page ([`assets`], embedded) that talks to the registry API gatehouse serves (`/v2/`), plus a
//! few JSON endpoints for what the API lacks ([`api`]: login, logout, whoami, permissions). Logging in goes
//! through the same htpasswd check, credential cache and brute-force guard as a Basic request, and starts a
//! server-side [`session`]; admission accepts the session cookie as credentials on `/v2/` (with the CSRF token
//! on state-changing methods) and the same [`crate::authz::Policy`] decides. Every UI response carries a strict
//! Content-Security-Policy (no inline script, no eval) and the other security headers.
//!
//! Storage usage per repository comes from the GC's report ([`usage`]); `whoami` says whether this backend
//! has one (`"usage"`).

pub mod api;
pub mod assets;
pub mod session;
pub mod settings;
pub mod usage;

pub use settings::UiConfig;

use crate::auth::Authenticator;
use crate::authz::Policy;
use crate::errcode::{ApiError, Code};
use crate::reply::{Reply, ReplyBody};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use session::{Active, Sessions};
use std::net::IpAddr;

/// The Content-Security-Policy of every UI response: only the UI's own files, no inline code, no framing.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the UI needs of one request.
pub struct UiRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path (starts with the prefix, or is the prefix without its last `/`).
    pub path: &'a str,
    /// The raw query.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The client's address, for the brute-force guard.
    pub client: Option<IpAddr>,
    /// `http` or `https`, as the client reached the door.
    pub proto: &'a str,
    /// The `Host` the client used.
    pub host: Option<&'a str>,
    /// What the running configuration says about logins and access.
    pub rules: Rules<'a>,
}

/// The parts of the running configuration the UI asks per request (a reload swaps them: new users, new
/// rules; sessions stay valid while their user's htpasswd line is unchanged).
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// The authenticator, None when auth is off.
    pub auth: Option<&'a Authenticator>,
    /// The access rules.
    pub policy: &'a Policy,
    /// Whether deletes can succeed (the embedded store's setting; an upstream decides for itself).
    pub delete_enabled: bool,
}

impl<'a> Rules<'a> {
    /// The rules of a running configuration snapshot.
    pub fn of(live: &'a crate::live::Live) -> Rules<'a> {
        let c = &live.config;
        Rules {
            auth: live.auth.as_deref(),
            policy: &c.policy,
            delete_enabled: c.storage.delete_enabled
                || matches!(c.backend, crate::config::Backend::Upstream(_)),
        }
    }
}

/// What the UI answered, with what the access log should say about it.
pub struct Handled {
    /// The reply.
    pub reply: Reply,
    /// The user, when one is known.
    pub user: Option<String>,
    /// The authentication label for logs and metrics, when a login was tried.
    pub auth: Option<&'static str>,
}

/// The web UI: its settings and the session table (auth and the rules come with each request).
pub struct Ui {
    config: UiConfig,
    sessions: Sessions,
}

impl Ui {
    /// The UI, or `None` when it is turned off.
    pub fn new(config: &UiConfig) -> Option<Ui> {
        config.enabled.then(|| Ui {
            sessions: Sessions::new(config.session_ttl, config.max_sessions),
            config: config.clone(),
        })
    }

    /// Whether `path` is the UI's (admission asks this for paths outside `/v2/`).
    pub fn serves(&self, path: &str) -> bool {
        let p = &self.config.prefix;
        path.starts_with(p.as_str()) || path == &p[..p.len() - 1]
    }

    /// The live session the request's cookie names, if any: admission's credentials from a cookie, which
    /// count only from the UI's own origin ([`same_origin`]).
    pub fn session(&self, headers: &HeaderMap, auth: Option<&Authenticator>) -> Option<Active> {
        let id = session::cookie_id(headers)?;
        let auth = auth?;
        self.sessions.resolve(id, |user| auth.stored_hash(user))
    }

    /// Whether the request carries a UI session cookie (one that did not resolve, when admission asks): its
    /// 401 then goes without `WWW-Authenticate`, so the browser shows the UI's login, not its Basic prompt.
    pub fn stale_cookie(ui: Option<&Ui>, headers: &HeaderMap) -> bool {
        ui.is_some() && session::cookie_id(headers).is_some()
    }

    /// Whether a request with credentials from a cookie may go on: safe methods always, others only with the
    /// session's CSRF token.
    pub fn csrf_allows(method: &Method, headers: &HeaderMap, live: &Active) -> bool {
        is_safe(method) || live.csrf_matches(headers.get(session::CSRF_HEADER))
    }

    /// Answers one request under the prefix.
    pub async fn handle(&self, req: &UiRequest<'_>) -> Handled {
        let p = &self.config.prefix;
        let Some(rest) = req.path.strip_prefix(p.as_str()) else {
            // The prefix without its slash: send the browser to it, so relative asset paths resolve.
            let reply = Reply::status(StatusCode::PERMANENT_REDIRECT)
                .header(http::header::LOCATION, header_value(p));
            return plain(secured(reply));
        };
        let mut handled = if let Some(endpoint) = rest.strip_prefix("api/") {
            api::handle(self, endpoint, req).await
        } else {
            plain(self.asset(rest, req))
        };
        handled.reply = secured(handled.reply);
        handled
    }

    fn asset(&self, name: &str, req: &UiRequest<'_>) -> Reply {
        if !matches!(*req.method, Method::GET | Method::HEAD) {
            return ApiError::new(Code::Unsupported)
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
                .message("the UI's files are read with GET")
                .into();
        }
        let Some(found) = assets::find(name) else {
            return ApiError::new(Code::NotFound).into();
        };
        let text = |h: HeaderName| req.headers.get(h).and_then(|v| v.to_str().ok());
        let etag = header_value(&found.etag);
        let common = |r: Reply| {
            r.header(http::header::ETAG, etag.clone())
                .header(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-cache"),
                )
                .header(
                    http::header::VARY,
                    HeaderValue::from_static("Accept-Encoding"),
                )
        };
        if text(http::header::IF_NONE_MATCH).is_some_and(|v| assets::etag_matches(v, &found.etag)) {
            return common(Reply::status(StatusCode::NOT_MODIFIED));
        }
        let gzip = found
            .gzip
            .as_ref()
            .filter(|_| text(http::header::ACCEPT_ENCODING).is_some_and(assets::accepts_gzip));
        let mut reply = Reply {
            status: StatusCode::OK,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(found.asset.content_type),
            )],
            body: ReplyBody::Bytes(match gzip {
                Some(z) => Bytes::from(z.clone()),
                None => Bytes::from_static(found.asset.bytes),
            }),
        };
        if gzip.is_some() {
            reply = reply.header(
                http::header::CONTENT_ENCODING,
                HeaderValue::from_static("gzip"),
            );
        }
        common(reply)
    }
}

/// Whether a request comes from the origin it was sent to: an `Origin` (which browsers send on every
/// non-GET request, same-origin ones included), when present, must be `http(s)://<the Host the request was
/// sent to>` (an `http` origin is refused when the client came over https: a downgrade), and a browser's
/// `Sec-Fetch-Site` must not say `cross-site` or `same-site` (another port or subdomain of the same site,
/// which SameSite=Strict lets the cookie go to). Refuses login CSRF and keeps sibling origins from using the
/// session cookie as credentials.
pub fn same_origin(headers: &HeaderMap, proto: &str, host: Option<&str>) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s == "cross-site" || s == "same-site") {
        return false;
    }
    let Some(origin) = header("origin") else {
        return true;
    };
    let (scheme, origin_host) = match origin.split_once("://") {
        Some(parts) => parts,
        None => return false,
    };
    let scheme_ok = match scheme {
        "https" => true,
        "http" => proto != "https",
        _ => false,
    };
    scheme_ok && host.is_some_and(|h| origin_host.eq_ignore_ascii_case(h))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn plain(reply: Reply) -> Handled {
    Handled {
        reply,
        user: None,
        auth: None,
    }
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("/"))
}

/// Adds the security headers every UI response carries.
pub fn secured(reply: Reply) -> Reply {
    reply
        .header(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(CSP),
        )
        .header(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        )
        .header(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        )
        .header(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        )
        .header(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        )
}

#[cfg(test)]
mod tests;
