//! The UI's JSON endpoints under `<prefix>api/`: `login` (POST, Basic credentials in `Authorization`, checked
//! by the same authenticator as every request: cache, bcrypt pool and guard), `logout` (POST, CSRF token),
//! `whoami` and `permissions` (what the logged-in user may do per repository, asked of the same Policy that
//! admission applies), and `usage` (storage per repository the user may pull, [`super::usage`]). Every one of them answers only the UI's own origin, also when CORS allows another. All answers are `Cache-Control: no-store`; none of them challenges with
//! `WWW-Authenticate`, so a browser never shows its own Basic prompt over the login page.

use super::session::{self, Active};
use super::{Handled, Rules, Ui, UiRequest};
use crate::auth::{Outcome, Principal};
use crate::errcode::{ApiError, Code};
use crate::metrics::metrics;
use crate::query::Query;
use crate::reply::{Reply, ReplyBody};
use crate::route::Action;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

/// The most repositories one `permissions` call may ask about.
pub const MAX_PERMISSION_NAMES: usize = 200;

/// Answers `<prefix>api/<endpoint>`.
pub async fn handle(ui: &Ui, endpoint: &str, req: &UiRequest<'_>) -> Handled {
    let wants = |m: Method| *req.method == m;
    let plain = |reply: Reply| Handled {
        reply: no_store(reply),
        user: None,
        auth: None,
    };
    // A page on another origin (even one CORS allows, such as joxit's) must not read the CSRF token or log in.
    if !same_origin(req) {
        return plain(cross_origin());
    }
    match endpoint {
        "login" if wants(Method::POST) => login(ui, req).await,
        "logout" if wants(Method::POST) => plain(logout(ui, req)),
        "whoami" if wants(Method::GET) => plain(whoami(ui, req)),
        "permissions" if wants(Method::GET) => plain(permissions(ui, req)),
        "usage" if wants(Method::GET) => plain(usage(ui, req).await),
        "login" | "logout" | "whoami" | "permissions" | "usage" => plain(
            ApiError::new(Code::Unsupported)
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
                .message(format!("{} is not a method of api/{endpoint}", req.method))
                .into(),
        ),
        _ => plain(ApiError::new(Code::NotFound).into()),
    }
}

fn json_reply(status: StatusCode, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body: ReplyBody::Bytes(body.to_string().into()),
    }
}

fn no_store(reply: Reply) -> Reply {
    reply.header(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    )
}

fn not_logged_in() -> Reply {
    ApiError::new(Code::Unauthorized)
        .message("not logged in")
        .into()
}

/// Whether the request comes from the UI's own origin ([`super::same_origin`]).
pub fn same_origin(req: &UiRequest<'_>) -> bool {
    super::same_origin(req.headers, req.proto, req.host)
}

fn cross_origin() -> Reply {
    ApiError::new(Code::Denied)
        .message("this call is accepted only from the UI's own origin")
        .into()
}

async fn login(ui: &Ui, req: &UiRequest<'_>) -> Handled {
    let done = |reply: Reply, user: Option<String>, auth: Option<&'static str>| Handled {
        reply: no_store(reply),
        user,
        auth,
    };
    let Some(auth) = req.rules.auth else {
        // Auth is off: there is nobody to log in as, and nothing to protect with a session.
        return done(whoami(ui, req), None, None);
    };
    let header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .filter(|h| !crate::auth::is_empty_basic(h));
    let outcome = auth.authenticate(header, req.client).await;
    let label = outcome.label();
    metrics().auth_attempts.with_label_values(&[label]).inc();
    let attempted = outcome.attempted_user().map(str::to_string);
    match outcome {
        Outcome::Ok { principal, .. } => {
            let Some(hash) = auth.stored_hash(&principal.user) else {
                // Removed between the check and now.
                return done(not_logged_in(), Some(principal.user), Some(label));
            };
            let Some(created) = ui.sessions.create(&principal.user, &hash) else {
                tracing::warn!(
                    user = %principal.user,
                    "ui: login refused, the session table is full (ui.max_sessions)"
                );
                let reply: Reply = ApiError::new(Code::Unavailable)
                    .message("too many sessions are open; try again later")
                    .into();
                let reply = reply.header(http::header::RETRY_AFTER, HeaderValue::from(60));
                return done(reply, Some(principal.user), Some(label));
            };
            let body = json!({ "user": principal.user, "csrf": created.csrf });
            let reply = json_reply(StatusCode::OK, body).header(
                http::header::SET_COOKIE,
                session::set_cookie(&created.id, ui.sessions.ttl(), req.proto == "https"),
            );
            done(reply, Some(principal.user), Some(label))
        }
        Outcome::Throttled { retry_after } => {
            let reply: Reply = ApiError::new(Code::TooManyRequests)
                .message("too many failed logins from this address; try again later")
                .into();
            let reply = reply.header(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
            done(reply, attempted, Some(label))
        }
        _ => done(
            ApiError::new(Code::Unauthorized)
                .message("wrong user name or password")
                .into(),
            attempted,
            Some(label),
        ),
    }
}

fn logout(ui: &Ui, req: &UiRequest<'_>) -> Reply {
    let secure = req.proto == "https";
    let cleared = |status| {
        Reply::status(status).header(http::header::SET_COOKIE, session::clear_cookie(secure))
    };
    let Some(id) = session::cookie_id(req.headers) else {
        return cleared(StatusCode::NO_CONTENT);
    };
    match ui.session(req.headers, req.rules.auth) {
        Some(live) if !Ui::csrf_allows(req.method, req.headers, &live) => {
            ApiError::new(Code::Denied)
                .message("the CSRF token is missing or wrong")
                .into()
        }
        _ => {
            ui.sessions.end(id);
            cleared(StatusCode::NO_CONTENT)
        }
    }
}

/// Who is asking: `Ok(None)` when auth is off (everyone may do everything), `Ok(Some)` for a live session.
fn caller(ui: &Ui, req: &UiRequest<'_>) -> Result<Option<Active>, Reply> {
    if req.rules.auth.is_none() {
        return Ok(None);
    }
    ui.session(req.headers, req.rules.auth)
        .map(Some)
        .ok_or_else(not_logged_in)
}

fn whoami(ui: &Ui, req: &UiRequest<'_>) -> Reply {
    match caller(ui, req) {
        Err(reply) => reply,
        Ok(live) => json_reply(
            StatusCode::OK,
            json!({
                "auth": req.rules.auth.is_some(),
                "user": live.as_ref().map(|l| l.user.as_str()),
                "csrf": live.as_ref().map(|l| l.csrf.as_str()),
                "delete_enabled": req.rules.delete_enabled,
                "usage": super::usage::available(),
            }),
        ),
    }
}

/// Whether `user` (None: auth is off) may do `action` on `repository`, as admission's Policy would decide it.
pub fn allows(rules: &Rules<'_>, user: Option<&str>, repository: &str, action: Action) -> bool {
    match user {
        None => true,
        Some(u) => {
            let p = Principal {
                user: u.to_string(),
            };
            rules.policy.allows(Some(&p), repository, action)
        }
    }
}

/// What `user` (None: auth is off) may do on `repository`.
pub fn may(rules: &Rules<'_>, user: Option<&str>, repository: &str) -> Value {
    let allows = |action| allows(rules, user, repository, action);
    json!({
        "pull": allows(Action::Pull),
        "push": allows(Action::Push),
        "delete": rules.delete_enabled && allows(Action::Delete),
    })
}

fn permissions(ui: &Ui, req: &UiRequest<'_>) -> Reply {
    let live = match caller(ui, req) {
        Err(reply) => return reply,
        Ok(live) => live,
    };
    let query = match Query::parse(req.query) {
        Ok(q) => q,
        Err(e) => return e.into(),
    };
    let names: Vec<String> = query
        .without(&[])
        .into_iter()
        .filter(|(k, _)| k == "repository")
        .map(|(_, v)| v)
        .collect();
    if names.len() > MAX_PERMISSION_NAMES || names.iter().any(|n| n.is_empty() || n.len() > 255) {
        return ApiError::new(Code::NameInvalid)
            .message(format!(
                "ask about 1 to {MAX_PERMISSION_NAMES} repositories of at most 255 bytes each"
            ))
            .into();
    }
    let user = live.as_ref().map(|l| l.user.as_str());
    let mut out = Map::new();
    for name in names {
        let v = may(&req.rules, user, &name);
        out.insert(name, v);
    }
    json_reply(StatusCode::OK, json!({ "repositories": out }))
}

async fn usage(ui: &Ui, req: &UiRequest<'_>) -> Reply {
    let live = match caller(ui, req) {
        Err(reply) => return reply,
        Ok(live) => live,
    };
    let user = live.as_ref().map(|l| l.user.as_str());
    match super::usage::answer(&req.rules, user).await {
        Ok(body) => json_reply(StatusCode::OK, body),
        Err(super::usage::Unavailable::NoStore) => ApiError::new(Code::NotFound)
            .message("storage usage is reported for the embedded registry only")
            .into(),
        Err(super::usage::Unavailable::Failed(e)) => {
            tracing::error!(error = %e, "ui: measuring storage usage failed");
            ApiError::new(Code::Unknown)
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
                .message("measuring storage usage failed; the server log says why")
                .into()
        }
    }
}
