//! The UI's storage page: `api/usage`, the GC issue's per-repository report ([`crate::gc::du`]) cut down to
//! the repositories the caller may pull, with what this process knows of the last garbage collection.
//!
//! Measuring walks the whole store, so one measurement ([`crate::gc::service::Collector::usage`]) serves every caller, and
//! the admin listener's `/usage`, for 30 s; the answer says when it was measured. Totals are sums over the
//! repositories shown, and what would tell about the others (bytes only one repository holds, the
//! collector's store-wide figures) only goes to a caller who may pull them all.

use super::api::allows;
use super::Rules;
use crate::gc::du::{RepoUsage, Usage};
use crate::route::Action;
use serde_json::{json, Value};

/// Why there is no report.
#[derive(Debug)]
pub enum Unavailable {
    /// The backend is an upstream registry: its storage is not ours to measure.
    NoStore,
    /// Measuring failed.
    Failed(String),
}

/// The answer of `api/usage` for `user` (None: auth is off).
pub async fn answer(rules: &Rules<'_>, user: Option<&str>) -> Result<Value, Unavailable> {
    let collector = crate::gc::service::registered().ok_or(Unavailable::NoStore)?;
    let (usage, measured_at) = collector
        .usage()
        .await
        .map_err(|e| Unavailable::Failed(e.to_string()))?;
    let mut out = visible(&usage, rules, user);
    out["measured_at"] = json!(measured_at);
    out["gc"] = last_gc(out["whole_store"] == json!(true));
    Ok(out)
}

/// Whether this process can report usage at all (the embedded registry is its backend).
pub fn available() -> bool {
    crate::gc::service::registered().is_some()
}

/// The repositories of `usage` that `user` may pull, and their sums. What depends on the repositories the
/// caller may not see is left out (`null`) unless they may pull every one: a blob's "only here" bytes say
/// whether a hidden repository holds it too (upload a guessed layer, watch the figure), and the collector's
/// figures are the whole store's.
pub fn visible(usage: &Usage, rules: &Rules<'_>, user: Option<&str>) -> Value {
    let shown: Vec<&RepoUsage> = usage
        .repositories
        .iter()
        .filter(|r| allows(rules, user, &r.name, Action::Pull))
        .collect();
    let everything = shown.len() == usage.repositories.len();
    let sum = |f: fn(&RepoUsage) -> u64| shown.iter().map(|r| f(r)).sum::<u64>();
    let repositories: Vec<Value> = shown
        .iter()
        .map(|r| {
            let mut v = json!(r);
            if !everything {
                v["exclusive_bytes"] = Value::Null;
            }
            v
        })
        .collect();
    json!({
        "repositories": repositories,
        "bytes": sum(|r| r.bytes),
        "exclusive_bytes": everything.then(|| sum(|r| r.exclusive_bytes)),
        "upload_bytes": sum(|r| r.upload_bytes),
        "whole_store": everything,
    })
}

/// What this process's collector last did, from its metrics (`null` fields: no run since the start); its
/// byte counts are the whole store's, so they go only to a caller who sees the whole store.
fn last_gc(whole_store: bool) -> Value {
    let m = &crate::metrics::metrics().gc;
    let last = m.last_run.get();
    let ran = last > 0.0;
    let interval = crate::gc::service::registered().and_then(|c| c.interval());
    json!({
        "interval_seconds": interval.map(|d| d.as_secs()),
        "last_run": ran.then_some(last),
        "last_duration_seconds": ran.then(|| m.last_duration.get()),
        "reclaimable_bytes": (ran && whole_store).then(|| m.reclaimable_bytes.get()),
        "bytes_freed_since_start": whole_store.then(|| m.bytes_freed.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::{Policy, Rule};
    use crate::route::Action;
    use std::collections::BTreeMap;

    fn repo(name: &str, bytes: u64, exclusive: u64) -> RepoUsage {
        RepoUsage {
            name: name.into(),
            tags: 1,
            manifests: 1,
            blobs: 2,
            bytes,
            exclusive_bytes: exclusive,
            uploads: 0,
            upload_bytes: 0,
        }
    }

    #[test]
    fn usage_shows_only_repositories_the_caller_may_pull_and_sums_only_those() {
        let usage = Usage {
            repositories: vec![
                repo("carol/app", 100, 10),
                repo("secret/thing", 5000, 5000),
                repo("carol/tool", 200, 20),
            ],
            blobs: 9,
            bytes: 5300,
        };
        let policy = Policy {
            groups: BTreeMap::new(),
            rules: vec![Rule {
                repositories: vec!["carol/*".into()],
                principals: vec!["carol".into()],
                actions: vec![Action::Pull],
            }],
            public_pull: Vec::new(),
        };
        let rules = Rules {
            auth: None,
            policy: &policy,
            delete_enabled: false,
        };
        // The leak this pins: "only here" bytes are counted over the whole store, so a user who uploads a
        // guessed layer to their own repository learned from it whether a hidden repository holds that layer.
        type Case<'a> = (Option<&'a str>, &'a [&'a str], u64, Option<u64>);
        let cases: [Case; 3] = [
            (Some("carol"), &["carol/app", "carol/tool"], 300, None),
            (Some("mallory"), &[], 0, None),
            // Auth off: everyone may pull everything.
            (
                None,
                &["carol/app", "secret/thing", "carol/tool"],
                5300,
                Some(5030),
            ),
        ];
        for (user, names, bytes, exclusive) in cases {
            let v = visible(&usage, &rules, user);
            let shown: Vec<&str> = v["repositories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap())
                .collect();
            assert_eq!(shown, names, "{user:?}");
            assert_eq!(v["bytes"], json!(bytes), "{user:?}");
            assert_eq!(v["exclusive_bytes"], json!(exclusive), "{user:?}");
            for r in v["repositories"].as_array().unwrap() {
                assert_eq!(
                    r["exclusive_bytes"].is_null(),
                    exclusive.is_none(),
                    "{user:?}: {r}"
                );
            }
            assert!(!v.to_string().contains("secret") || user.is_none(), "{v}");
        }
    }
}
