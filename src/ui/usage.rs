//! The UI's storage page: `api/usage`, the GC issue's per-repository report ([`crate::gc::du`]) cut down to
//! the repositories the caller may pull, with what this process knows of the last garbage collection.
//!
//! Measuring walks the whole store, so one measurement serves every caller for [`FRESH_FOR`]; callers that
//! arrive while one is running wait for it instead of starting their own. The answer says when it was
//! measured. Totals are sums over the repositories shown: a user who may pull one repository learns nothing
//! about the size of the others.

use super::api::may;
use super::Rules;
use crate::gc::du::{RepoUsage, Usage};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one measurement is served before the next caller measures again.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

/// One measurement and when it was taken.
#[derive(Clone)]
struct Measured {
    at: Instant,
    unix: f64,
    usage: Arc<Usage>,
}

/// The last measurement, shared by all sessions of this process.
#[derive(Default)]
pub struct UsageCache {
    last: tokio::sync::Mutex<Option<Measured>>,
}

/// Why there is no report.
#[derive(Debug)]
pub enum Unavailable {
    /// The backend is an upstream registry: its storage is not ours to measure.
    NoStore,
    /// Measuring failed.
    Failed(String),
}

impl UsageCache {
    /// The store's usage, measured at most once per [`FRESH_FOR`], with the Unix time it was measured.
    async fn get(&self) -> Result<(Arc<Usage>, f64), Unavailable> {
        let mut last = self.last.lock().await;
        if let Some(m) = last.as_ref().filter(|m| m.at.elapsed() < FRESH_FOR) {
            return Ok((m.usage.clone(), m.unix));
        }
        let collector = crate::gc::service::registered().ok_or(Unavailable::NoStore)?;
        let usage = crate::gc::du::usage(collector.driver().as_ref())
            .await
            .map_err(|e| Unavailable::Failed(e.to_string()))?;
        let m = Measured {
            at: Instant::now(),
            unix: unix_now(),
            usage: Arc::new(usage),
        };
        *last = Some(m.clone());
        Ok((m.usage, m.unix))
    }

    /// The answer of `api/usage` for `user` (None: auth is off).
    pub async fn answer(
        &self,
        rules: &Rules<'_>,
        user: Option<&str>,
    ) -> Result<Value, Unavailable> {
        let (usage, measured_at) = self.get().await?;
        let mut out = visible(&usage, rules, user);
        out["measured_at"] = json!(measured_at);
        out["gc"] = last_gc();
        Ok(out)
    }
}

/// Whether this process can report usage at all (the embedded registry is its backend).
pub fn available() -> bool {
    crate::gc::service::registered().is_some()
}

/// The repositories of `usage` that `user` may pull, and their sums.
pub fn visible(usage: &Usage, rules: &Rules<'_>, user: Option<&str>) -> Value {
    let shown: Vec<&RepoUsage> = usage
        .repositories
        .iter()
        .filter(|r| may(rules, user, &r.name)["pull"] == json!(true))
        .collect();
    let sum = |f: fn(&RepoUsage) -> u64| shown.iter().map(|r| f(r)).sum::<u64>();
    json!({
        "repositories": shown,
        "bytes": sum(|r| r.bytes),
        "exclusive_bytes": sum(|r| r.exclusive_bytes),
        "upload_bytes": sum(|r| r.upload_bytes),
    })
}

/// What this process's collector last did, from its metrics (`null` fields: no run since the start).
fn last_gc() -> Value {
    let m = &crate::metrics::metrics().gc;
    let last = m.last_run.get();
    json!({
        "interval_seconds": crate::gc::service::registered().and_then(|c| c.interval()).map(|d| d.as_secs()),
        "last_run": (last > 0.0).then_some(last),
        "last_duration_seconds": (last > 0.0).then(|| m.last_duration.get()),
        "reclaimable_bytes": (last > 0.0).then(|| m.reclaimable_bytes.get()),
        "bytes_freed_since_start": m.bytes_freed.get(),
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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
        let cases: [(Option<&str>, &[&str], u64, u64); 3] = [
            (Some("carol"), &["carol/app", "carol/tool"], 300, 30),
            (Some("mallory"), &[], 0, 0),
            // Auth off: everyone may pull everything.
            (
                None,
                &["carol/app", "secret/thing", "carol/tool"],
                5300,
                5030,
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
            assert!(!v.to_string().contains("secret") || user.is_none(), "{v}");
        }
    }
}
