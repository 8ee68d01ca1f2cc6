//! Authorization: (Route, Principal) → [`Permit`], or a refusal. The backend takes a `&Permit`, so it cannot
//! be reached without a decision.
//!
//! With no access rules, every authenticated user may do everything (distribution's htpasswd behaviour).

use crate::auth::Principal;
use crate::route::{Action, Route};

/// Proof that a request was authorized; only [`decide`] makes one.
#[derive(Debug)]
pub struct Permit {
    action: Action,
}

impl Permit {
    /// The action that was allowed.
    pub fn action(&self) -> Action {
        self.action
    }
}

/// Decides a request. `principal` is `None` only when auth is disabled.
pub fn decide(route: &Route, _principal: Option<&Principal>) -> Permit {
    Permit {
        action: route.action,
    }
}
