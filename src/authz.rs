//! Authorization: (Route, Principal) → [`Permit`], or a refusal. The backend takes a `&Permit`, so it cannot
//! be reached without a decision.
//!
//! With no rules, every authenticated user may do everything (distribution's htpasswd behaviour). With rules,
//! a request is allowed when some rule names its repository (glob), its user (or a group of the user, or `*`
//! for any authenticated user) and its action. Repositories matching `public_pull` may be pulled by anyone.

use crate::auth::Principal;
use crate::names::Name;
use crate::route::{Action, Route, Target};
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
    mount_allowed: bool,
}

impl Permit {
    /// The action that was allowed.
    pub fn action(&self) -> Action {
        self.action
    }

    /// For an upload start with `mount`/`from`: whether the caller may pull the source repository.
    /// When false, the mount parameters are dropped and a plain upload starts.
    pub fn mount_allowed(&self) -> bool {
        self.mount_allowed
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
        query: &str,
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
        let ok = match (&route.target, route.name()) {
            // `/v2/` keeps challenging anonymous callers so docker clients send credentials.
            (Target::Base, _) | (Target::Catalog, _) => authenticated,
            (_, Some(name)) => allowed(name, route.action),
            (_, None) => authenticated,
        };
        if !ok {
            return Err(refuse);
        }
        let mount_allowed = match (&route.target, crate::registry::mount_source(query)) {
            (Target::UploadStart { .. }, Some(from)) => allowed(&from, Action::Pull),
            _ => true,
        };
        Ok(Permit {
            action: route.action,
            mount_allowed,
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
    use crate::route::parse;
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
            let route = parse(method, path).unwrap();
            let got = p
                .decide(&route, who(user).as_ref(), !user.is_empty(), "")
                .map(|_| ());
            assert_eq!(&got, want, "{user} {method} {path}");
        }
    }

    #[test]
    fn no_rules_means_authenticated_may_do_all() {
        let p = Policy::default();
        let route = parse(&Method::DELETE, "/v2/x/manifests/latest").unwrap();
        assert!(p.decide(&route, who("u").as_ref(), true, "").is_ok());
        assert_eq!(
            p.decide(&route, None, false, "").unwrap_err(),
            Refusal::NeedCredentials
        );
        // Auth disabled: no principal but "authenticated".
        assert!(p.decide(&route, None, true, "").is_ok());
    }

    #[test]
    fn mount_needs_pull_on_the_source() {
        let p = policy();
        let route = parse(&Method::POST, "/v2/team/app/blobs/uploads/").unwrap();
        let d = "sha256:".to_string() + &"a".repeat(64);
        let q = format!("mount={d}&from=team/other");
        assert!(p
            .decide(&route, who("bob").as_ref(), true, &q)
            .unwrap()
            .mount_allowed());
        let q = format!("mount={d}&from=secret%2Fthing");
        let permit = p.decide(&route, who("bob").as_ref(), true, &q).unwrap();
        // `*` stays within one component, so no rule lets bob pull secret/thing: the mount is dropped.
        assert!(!permit.mount_allowed());
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
