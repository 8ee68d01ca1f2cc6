//! Authorization: (Route, Principal) → [`Permit`], or a refusal. The decision reads the Route alone (every
//! parameter was parsed there once), and the Permit names what was allowed: the action, the cross-repository
//! mount (only when the caller may pull its source), and which repositories a catalog may show. Both backends
//! take a `&Permit`, so neither can be reached without a decision.
//!
//! With no rules, every authenticated user may do everything (distribution's htpasswd behaviour). With rules,
//! a request is allowed when some rule names its repository (glob), its user (or a group of the user, or `*`
//! for any authenticated user) and its action. Repositories matching `public_pull` may be pulled by anyone.

use crate::auth::Principal;
use crate::names::Name;
use crate::route::{Action, Mount, Op, Route};
use std::collections::BTreeMap;

/// One access rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Repository globs: `*` stays within one path component, `**` crosses `/`.
    pub repositories: Vec<String>,
    /// User names, `group:<name>`, or `*` for any authenticated user.
    pub principals: Vec<String>,
    /// The actions granted.
    pub actions: Vec<Action>,
}

/// The access policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Named groups of users.
    pub groups: BTreeMap<String, Vec<String>>,
    /// The rules; empty means every authenticated user may do everything.
    pub rules: Vec<Rule>,
    /// Repository globs anyone may pull without credentials.
    pub public_pull: Vec<String>,
}

/// Proof that a request was authorized; only [`Policy::decide`] makes one.
#[derive(Debug)]
pub struct Permit {
    action: Action,
    mount: Option<Mount>,
    catalog: Option<Visibility>,
}

/// Which repositories a caller may see in the catalog, when the policy restricts it.
#[derive(Debug, Clone)]
pub struct Visibility {
    policy: Policy,
    principal: Option<Principal>,
}

impl Visibility {
    /// Whether the caller may see (pull) `repository`.
    pub fn shows(&self, repository: &str) -> bool {
        self.policy
            .allows(self.principal.as_ref(), repository, Action::Pull)
    }
}

impl Permit {
    /// The action that was allowed.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The cross-repository mount that was allowed: the route asked for it and the caller may pull its source.
    /// `None` otherwise, and then a plain upload starts.
    pub fn mount(&self) -> Option<&Mount> {
        self.mount.as_ref()
    }

    /// For the catalog: the filter to apply before paging, `None` when the caller may see every repository.
    pub fn catalog_filter(&self) -> Option<&Visibility> {
        self.catalog.as_ref()
    }

    /// Whether a catalog entry may be shown to this caller.
    pub fn shows(&self, repository: &str) -> bool {
        self.catalog.as_ref().is_none_or(|v| v.shows(repository))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Anonymous and not public: challenge for credentials (401).
    NeedCredentials,
    /// Authenticated but not allowed (403 DENIED).
    Denied,
}

impl Policy {
    /// Whether the policy restricts anything beyond "authenticated users may do everything".
    pub fn is_restrictive(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Whether a principal (None: anonymous) may do `action` on `repository`.
    pub fn allows(&self, principal: Option<&Principal>, repository: &str, action: Action) -> bool {
        if action == Action::Pull && self.public_pull.iter().any(|g| glob(g, repository)) {
            return true;
        }
        let Some(p) = principal else {
            return false;
        };
        if self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|r| {
            r.actions.contains(&action)
                && r.repositories.iter().any(|g| glob(g, repository))
                && r.principals.iter().any(|who| self.names(who, &p.user))
        })
    }

    fn names(&self, who: &str, user: &str) -> bool {
        if who == "*" || who == user {
            return true;
        }
        who.strip_prefix("group:")
            .and_then(|g| self.groups.get(g))
            .is_some_and(|members| members.iter().any(|m| m == user))
    }

    /// Decides one request. `authenticated` is false for a request without credentials; `principal` is
    /// `None` for anonymous requests and when auth is disabled (then `authenticated` is true).
    pub fn decide(
        &self,
        route: &Route,
        principal: Option<&Principal>,
        authenticated: bool,
    ) -> Result<Permit, Refusal> {
        let refuse = if authenticated {
            Refusal::Denied
        } else {
            Refusal::NeedCredentials
        };
        // Auth disabled: everything is allowed.
        let open = authenticated && principal.is_none();
        let allowed =
            |repo: &Name, action: Action| open || self.allows(principal, repo.as_str(), action);
        let ok = match (&route.op, route.name()) {
            // `/v2/` keeps challenging anonymous callers so docker clients send credentials.
            (Op::Base, _) | (Op::Catalog { .. }, _) => authenticated,
            (_, Some(name)) => allowed(name, route.action),
            (_, None) => authenticated,
        };
        if !ok {
            return Err(refuse);
        }
        let mount = match &route.op {
            Op::StartUpload { mount: Some(m), .. } if allowed(&m.from, Action::Pull) => {
                Some(m.clone())
            }
            _ => None,
        };
        let catalog = match &route.op {
            Op::Catalog { .. } if !open && self.is_restrictive() => Some(Visibility {
                policy: self.clone(),
                principal: principal.cloned(),
            }),
            _ => None,
        };
        Ok(Permit {
            action: route.action,
            mount,
            catalog,
        })
    }
}

/// Glob match: `*` any run without `/`, `**` any run, `?` one character other than `/`.
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = &p[2..];
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                let limit = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
                (0..=limit).any(|i| go(rest, &t[i..]))
            }
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(&c) => t.first() == Some(&c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Result<Route, crate::errcode::ApiError> {
        crate::route::parse(method, path, query, &http::HeaderMap::new())
    }
    use http::Method;

    fn policy() -> Policy {
        let mut groups = BTreeMap::new();
        groups.insert("devs".to_string(), vec!["bob".to_string()]);
        Policy {
            groups,
            rules: vec![
                Rule {
                    repositories: vec!["team/**".into()],
                    principals: vec!["alice".into(), "group:devs".into()],
                    actions: vec![Action::Pull, Action::Push],
                },
                Rule {
                    repositories: vec!["team/**".into()],
                    principals: vec!["alice".into()],
                    actions: vec![Action::Delete],
                },
                Rule {
                    repositories: vec!["*".into()],
                    principals: vec!["*".into()],
                    actions: vec![Action::Pull],
                },
            ],
            public_pull: vec!["public/*".into()],
        }
    }

    fn who(u: &str) -> Option<Principal> {
        (!u.is_empty()).then(|| Principal { user: u.into() })
    }

    #[test]
    fn table() {
        let p = policy();
        let d = "sha256:".to_string() + &"a".repeat(64);
        let rows: &[(&str, Method, String, Result<(), Refusal>)] = &[
            (
                "alice",
                Method::PUT,
                "/v2/team/app/manifests/v1".into(),
                Ok(()),
            ),
            (
                "alice",
                Method::DELETE,
                format!("/v2/team/app/manifests/{d}"),
                Ok(()),
            ),
            (
                "bob",
                Method::PUT,
                "/v2/team/a/b/manifests/v1".into(),
                Ok(()),
            ),
            (
                "bob",
                Method::DELETE,
                format!("/v2/team/app/manifests/{d}"),
                Err(Refusal::Denied),
            ),
            (
                "carol",
                Method::GET,
                "/v2/team/app/manifests/v1".into(),
                Err(Refusal::Denied),
            ),
            ("carol", Method::GET, "/v2/solo/manifests/v1".into(), Ok(())),
            (
                "carol",
                Method::PUT,
                "/v2/solo/manifests/v1".into(),
                Err(Refusal::Denied),
            ),
            (
                "",
                Method::GET,
                "/v2/public/img/manifests/v1".into(),
                Ok(()),
            ),
            (
                "",
                Method::HEAD,
                format!("/v2/public/img/blobs/{d}"),
                Ok(()),
            ),
            (
                "",
                Method::PUT,
                "/v2/public/img/manifests/v1".into(),
                Err(Refusal::NeedCredentials),
            ),
            (
                "",
                Method::GET,
                "/v2/public/a/b/manifests/v1".into(),
                Err(Refusal::NeedCredentials),
            ),
            (
                "",
                Method::GET,
                "/v2/".into(),
                Err(Refusal::NeedCredentials),
            ),
            (
                "",
                Method::GET,
                "/v2/_catalog".into(),
                Err(Refusal::NeedCredentials),
            ),
            ("carol", Method::GET, "/v2/".into(), Ok(())),
        ];
        for (user, method, path, want) in rows {
            let route = parse(method, path, None).unwrap();
            let got = p
                .decide(&route, who(user).as_ref(), !user.is_empty())
                .map(|_| ());
            assert_eq!(&got, want, "{user} {method} {path}");
        }
    }

    #[test]
    fn no_rules_means_authenticated_may_do_all() {
        let p = Policy::default();
        let route = parse(&Method::DELETE, "/v2/x/manifests/latest", None).unwrap();
        assert!(p.decide(&route, who("u").as_ref(), true).is_ok());
        assert_eq!(
            p.decide(&route, None, false).unwrap_err(),
            Refusal::NeedCredentials
        );
        // Auth disabled: no principal but "authenticated".
        assert!(p.decide(&route, None, true).is_ok());
    }

    #[test]
    fn mount_needs_pull_on_the_source() {
        let p = policy();
        let path = "/v2/team/app/blobs/uploads/";
        let d = "sha256:".to_string() + &"a".repeat(64);
        let q = format!("mount={d}&from=team/other");
        let route = parse(&Method::POST, path, Some(&q)).unwrap();
        let permit = p.decide(&route, who("bob").as_ref(), true).unwrap();
        assert_eq!(permit.mount().unwrap().from.as_str(), "team/other");
        let q = format!("mount={d}&from=secret%2Fthing");
        let route = parse(&Method::POST, path, Some(&q)).unwrap();
        let permit = p.decide(&route, who("bob").as_ref(), true).unwrap();
        // `*` stays within one component, so no rule lets bob pull secret/thing: the mount is dropped.
        assert!(permit.mount().is_none());
    }

    /// Finding "mount authorization bypass": however the query spells the mount, a Permit that did not allow
    /// it carries no mount, and the query rebuilt for the upstream from Route + Permit has none.
    #[test]
    fn unallowed_mount_is_never_in_the_permit_whatever_the_encoding() {
        let p = Policy {
            rules: vec![Rule {
                repositories: vec!["bob/*".into()],
                principals: vec!["bob".into()],
                actions: vec![Action::Push],
            }],
            ..Policy::default()
        };
        let d = "sha256:".to_string() + &"a".repeat(64);
        for q in [
            format!("mount={d}&fr%6Fm=secret/thing"),
            format!("m%6Funt={d}&from=secret/thing"),
            format!("mount={d}&from=secret%2Fthing&from=bob/k2"),
            format!("mount={d}&from=secret/thing&mount={d}"),
        ] {
            let route = parse(&Method::POST, "/v2/bob/k1/blobs/uploads/", Some(&q)).unwrap();
            let permit = p.decide(&route, who("bob").as_ref(), true).unwrap();
            assert!(permit.mount().is_none(), "{q}");
            let forwarded = route.upstream_query(permit.mount()).unwrap();
            assert!(
                !forwarded.contains("mount") && !forwarded.contains("from"),
                "{q}: {forwarded}"
            );
        }
        for q in [
            format!("mount={d};from=secret/thing"),
            format!("mount={d}&from=secret/thing%"),
        ] {
            assert!(
                parse(&Method::POST, "/v2/bob/k1/blobs/uploads/", Some(&q)).is_err(),
                "{q}"
            );
        }
    }

    #[test]
    fn catalog_permit_filters_only_under_a_restrictive_policy() {
        let route = parse(&Method::GET, "/v2/_catalog", None).unwrap();
        let permit = policy()
            .decide(&route, who("carol").as_ref(), true)
            .unwrap();
        assert!(permit.shows("solo") && !permit.shows("team/app"));
        let open = Policy::default()
            .decide(&route, who("carol").as_ref(), true)
            .unwrap();
        assert!(open.catalog_filter().is_none() && open.shows("team/app"));
    }

    #[test]
    fn globs() {
        assert!(glob("team/*", "team/app"));
        assert!(!glob("team/*", "team/app/x"));
        assert!(glob("team/**", "team/app/x"));
        assert!(glob("**", "a/b/c"));
        assert!(!glob("*", "a/b"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "a/c"));
        assert!(glob("*-prod", "web-prod"));
    }
}
