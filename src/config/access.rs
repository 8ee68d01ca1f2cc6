//! `[access]` → [`crate::authz::Policy`]: the action names of the file become authz's actions, and every
//! group a rule names must be defined.

use super::schema::AccessSection;
use super::ConfigError;
use crate::authz::{Policy, Rule};
use crate::route::Action;

/// Validates the access rules into the policy.
pub fn policy(a: &AccessSection) -> Result<Policy, ConfigError> {
    let invalid = |problem: String| ConfigError::Invalid {
        key: "access.rules".into(),
        problem,
    };
    let mut rules = Vec::new();
    for (i, r) in a.rules.iter().enumerate() {
        let n = i + 1;
        if r.repositories.is_empty() || r.principals.is_empty() || r.actions.is_empty() {
            return Err(invalid(format!(
                "rule {n} needs repositories, principals and actions"
            )));
        }
        let mut actions = Vec::new();
        for act in &r.actions {
            let granted: &[Action] = match act.as_str() {
                "pull" => &[Action::Pull],
                "push" => &[Action::Push],
                "delete" => &[Action::Delete],
                "*" => &[Action::Pull, Action::Push, Action::Delete],
                other => {
                    return Err(invalid(format!(
                        "rule {n}: action `{other}` is not pull, push, delete or *"
                    )))
                }
            };
            actions.extend_from_slice(granted);
        }
        for who in &r.principals {
            if let Some(g) = who.strip_prefix("group:") {
                if !a.groups.contains_key(g) {
                    return Err(invalid(format!(
                        "rule {n}: group `{g}` is not defined in [access.groups]"
                    )));
                }
            }
        }
        rules.push(Rule {
            repositories: r.repositories.clone(),
            principals: r.principals.clone(),
            actions,
        });
    }
    Ok(Policy {
        groups: a.groups.clone(),
        rules,
        public_pull: a.public_pull.clone(),
    })
}
