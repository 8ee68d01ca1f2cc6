//! Admission: everything the door decides before a backend sees a request — a CORS preflight answered, paths
//! outside the registry API branched off, the route parsed once, credentials checked, the rules applied.
//!
//! [`Gatehouse::admit`] returns the route and the Permit, or the [`Reply`] that ends the request here (204
//! preflight, 401 challenge, 403, 404, 429 ...). It writes nothing: the proxy's one writer does.

use super::{Ctx, Gatehouse};
use crate::auth::Outcome;
use crate::authz::{Permit, Refusal};
use crate::cors::Cors;
use crate::errcode::{ApiError, Code};
use crate::live::Live;
use crate::metrics::metrics;
use crate::reply::Reply;
use crate::route::{self, Route};
use http::{HeaderValue, StatusCode};
use pingora::http::RequestHeader;

/// A request the door let in: its route and what authz allowed.
pub(super) struct Admitted {
    /// The parsed route.
    pub route: Route,
    /// The decision; the backend needs it.
    pub permit: Permit,
}

/// The first segment of a path (`"v2"` for `/v2/a/b`), where requests that are not registry API calls branch.
fn first_segment(path: &str) -> &str {
    path.strip_prefix('/')
        .map(|p| p.split('/').next().unwrap_or(""))
        .unwrap_or("")
}

impl Gatehouse {
    /// Decides one request: `Ok` admits it to the backend, `Err` is the answer to send instead.
    pub(super) async fn admit(
        &self,
        req: &RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<Admitted, Reply> {
        // cors: a preflight is answered here, on any path, without auth, and never forwarded.
        if Cors::is_preflight(&req.method, &req.headers) {
            ctx.kind = "preflight";
            let mut reply = Reply::status(StatusCode::NO_CONTENT);
            if ctx.origin.is_some() {
                reply.headers = ctx.live.cors.preflight_headers();
            }
            return Err(reply);
        }

        // Requests outside the registry API branch here, before the route parser (a web UI, ACME
        // challenges and redirects add their arm).
        match first_segment(req.uri.path()) {
            "v2" => {}
            _ => match &self.ui {
                Some(ui) if ui.serves(req.uri.path()) => return Err(ui_reply(ui, req, ctx).await),
                _ => return Err(ApiError::new(Code::NotFound).into()),
            },
        }

        // route: parsed once; everything after reads it, nothing re-reads the URL.
        let route = route::parse(&req.method, req.uri.path(), req.uri.query(), &req.headers)?;
        ctx.kind = route.kind();
        ctx.repository = route.name().map(|n| n.to_string());

        // auth
        let header = req
            .headers
            .get(http::header::AUTHORIZATION)
            .filter(|h| !crate::auth::is_empty_basic(h));
        let live = ctx.live.clone();
        let (principal, authenticated) = match (&live.auth, header) {
            (None, _) => (None, true),
            // No credentials: a UI session cookie, or maybe a public pull (authz decides that or a challenge).
            // The cookie is credentials only from the UI's own origin: a sibling origin of the same site
            // (another port or subdomain) gets it sent along by the browser, and must not read with it.
            (Some(auth), None) => match self
                .ui
                .as_ref()
                .filter(|_| {
                    let host = ctx.client.host.as_deref();
                    crate::ui::same_origin(&req.headers, &ctx.client.proto, host)
                })
                .and_then(|ui| ui.session(&req.headers, Some(auth)))
            {
                None => (None, false),
                Some(active) => {
                    ctx.auth = "session";
                    if !crate::ui::Ui::csrf_allows(&req.method, &req.headers, &active) {
                        return Err(ApiError::new(Code::Denied)
                            .message("the CSRF token is missing or wrong")
                            .into());
                    }
                    let user = active.user;
                    (Some(crate::auth::Principal { user }), true)
                }
            },
            (Some(auth), Some(header)) => {
                let outcome = auth.authenticate(Some(header), ctx.client.ip).await;
                ctx.auth = outcome.label();
                metrics().auth_attempts.with_label_values(&[ctx.auth]).inc();
                // A failed login is logged with the name it tried (log-safe, capped; never the password).
                ctx.user = outcome.attempted_user().map(str::to_string);
                match outcome {
                    Outcome::Ok { principal, .. } => (Some(principal), true),
                    Outcome::Throttled { retry_after } => {
                        let reply: Reply = ApiError::new(Code::TooManyRequests)
                            .message("too many failed logins from this address; try again later")
                            .into();
                        return Err(
                            reply.header(http::header::RETRY_AFTER, HeaderValue::from(retry_after))
                        );
                    }
                    _ => return Err(challenge(&live)),
                }
            }
        };
        ctx.user = principal.as_ref().map(|p| p.user.clone());

        // authz
        match live
            .config
            .policy
            .decide(&route, principal.as_ref(), authenticated)
        {
            Ok(permit) => Ok(Admitted { route, permit }),
            // An anonymous caller being asked to log in is not a denial (every docker login starts so).
            // A browser holding a stale UI session cookie gets no Basic challenge (it would pop up the
            // browser's own login over the UI's); docker clients never carry that cookie.
            Err(Refusal::NeedCredentials)
                if crate::ui::Ui::stale_cookie(self.ui.as_ref(), &req.headers) =>
            {
                Err(ApiError::new(Code::Unauthorized).into())
            }
            Err(Refusal::NeedCredentials) => Err(challenge(&live)),
            Err(Refusal::Denied) => {
                metrics()
                    .authz_denials
                    .with_label_values(&[super::support::action_label(route.action)])
                    .inc();
                Err(ApiError::new(Code::Denied).into())
            }
        }
    }
}

/// The web UI's answer to a request under its prefix, decided with the request's configuration snapshot.
async fn ui_reply(ui: &crate::ui::Ui, req: &RequestHeader, ctx: &mut Ctx) -> Reply {
    ctx.kind = "ui";
    let live = ctx.live.clone();
    let handled = ui
        .handle(&crate::ui::UiRequest {
            method: &req.method,
            path: req.uri.path(),
            query: req.uri.query(),
            headers: &req.headers,
            client: ctx.client.ip,
            proto: &ctx.client.proto,
            host: ctx.client.host.as_deref(),
            rules: crate::ui::Rules::of(&live),
        })
        .await;
    ctx.user = handled.user;
    if let Some(label) = handled.auth {
        ctx.auth = label;
    }
    handled.reply
}

/// The 401 challenge, as distribution writes it, with the realm in force.
pub(super) fn challenge(live: &Live) -> Reply {
    let reply = Reply::from(ApiError::new(Code::Unauthorized));
    let realm = format!("Basic realm=\"{}\"", live.config.auth.realm);
    match HeaderValue::from_str(&realm) {
        Ok(v) => reply.header(http::header::WWW_AUTHENTICATE, v),
        Err(_) => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::first_segment;

    #[test]
    fn first_segments() {
        for (path, want) in [
            ("/v2/", "v2"),
            ("/v2", "v2"),
            ("/v2/a/b", "v2"),
            ("/v2x/a", "v2x"),
            ("//v2/", ""),
            ("/", ""),
            ("", ""),
            ("/ui/index.html", "ui"),
        ] {
            assert_eq!(first_segment(path), want, "{path}");
        }
    }
}
