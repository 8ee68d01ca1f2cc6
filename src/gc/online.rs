//! One online run: mark as offline, quarantine what is unreferenced and older than the grace, look again at
//! what was linked meanwhile, put back what is needed, delete the rest ([`super::barrier`] says why this is
//! safe against concurrent pushes). Untagged manifests are never deleted online.

use super::barrier::{quarantine_key, quarantine_root, quarantined, restore};
use super::layout::inventory;
use super::mark::{self, refs_of};
use super::retention::Rule;
use super::sweep::{blob_of, link_dir};
use super::{lease, renew, GcError, Options, Report, LEASE_TTL};
use crate::names::Digest;
use crate::storage::driver::Driver;
use crate::storage::paths;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Puts every quarantined blob back (what a dead run left); returns how many.
pub async fn recover(driver: &dyn Driver) -> Result<u64, GcError> {
    let mut walk = driver.walk(&quarantine_root()).await?;
    let mut found = Vec::new();
    while let Some(e) = walk.next().await? {
        found.extend(quarantined(&e.key));
    }
    let mut n = 0;
    for d in found {
        n += u64::from(restore(driver, &d).await?);
    }
    Ok(n)
}

/// The links of the first look, with their modification times.
type Seen = HashMap<String, SystemTime>;

fn seen(inv: &super::layout::Inventory) -> Seen {
    inv.values()
        .flat_map(|r| r.layers.iter().chain(&r.revisions))
        .map(|l| (l.key.clone(), l.modified))
        .collect()
}

/// Digests linked since the first look: links that are new or rewritten (another modification time) —
/// no clock is compared, so instances whose clocks differ cannot hide a link. For revisions, what their
/// manifests reference too.
async fn linked_since(driver: &dyn Driver, before: &Seen) -> Result<HashSet<Digest>, GcError> {
    let (inv, _) = inventory(driver).await?;
    let fresh = |l: &&super::layout::Link| before.get(&l.key) != Some(&l.modified);
    let mut out = HashSet::new();
    for repo in inv.values() {
        for l in repo.layers.iter().filter(fresh) {
            out.insert(l.digest.clone());
        }
        for l in repo.revisions.iter().filter(fresh) {
            out.insert(l.digest.clone());
            let key = paths::blob_data(&l.digest);
            let body = match driver.read(&key, 32 << 20).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => {
                    match driver.read(&quarantine_key(&l.digest), 32 << 20).await {
                        Ok(b) => b,
                        Err(e) if e.is_not_found() => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let refs = refs_of(&key, &body)?;
            out.extend(refs.blobs.into_iter().chain(refs.children));
        }
    }
    Ok(out)
}

/// One online run with `grace` and the `[[retention]]` rules, under the collector lock.
pub async fn collect_online(
    driver: &Arc<dyn Driver>,
    grace: Duration,
    retention: &[Rule],
) -> Result<Report, GcError> {
    let owner = lease::owner_name();
    let mut held =
        Some(lease::acquire(driver.as_ref(), &owner, LEASE_TTL, SystemTime::now()).await??);
    let result = run(driver, grace, retention, &mut held).await;
    if let Some(l) = held {
        l.release(driver.as_ref()).await?;
    }
    result
}

async fn run(
    driver: &Arc<dyn Driver>,
    grace: Duration,
    retention: &[Rule],
    lease: &mut Option<lease::Lease>,
) -> Result<Report, GcError> {
    let d = driver.as_ref();
    let recovered = recover(d).await?;
    if recovered > 0 {
        tracing::warn!(
            blobs = recovered,
            "gc: put back the blobs an interrupted run had in quarantine"
        );
    }
    let start = SystemTime::now();
    let opts = Options {
        dry_run: false,
        delete_untagged: false,
        grace,
        now: start,
        // Online runs apply the rules' tag deletions; untagged manifests are never deleted online.
        retention: retention
            .iter()
            .map(|r| Rule {
                untagged_older_than: None,
                ..r.clone()
            })
            .collect(),
    };
    let (mut inv, _) = inventory(d).await?;
    let first = seen(&inv);
    let mut report = Report::default();
    super::retention::apply_tags(d, &mut inv, &opts, &mut report).await?;
    let marks = mark::mark(driver, &inv, &opts).await?;
    renew(d, lease).await?;
    report.repositories = inv.len() as u64;
    report.manifests = marks.manifests;
    report.marked = marks.blobs.len() as u64;
    report.manifests_missing = marks.missing.clone();
    let mut moved: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut walk = d.walk(&paths::blobs_root()).await?;
    while let Some(e) = walk.next().await? {
        let Some(b) = blob_of(&e.key) else { continue };
        report.blobs_seen += 1;
        if marks.blobs.contains(&b) {
            continue;
        }
        report.reclaimable_bytes += e.size;
        if opts.is_young(e.modified) {
            report.blobs_young += 1;
            continue;
        }
        if moved.len() as u64 % super::RENEW_EVERY == super::RENEW_EVERY - 1 {
            renew(d, lease).await?;
        }
        match d.rename(&e.key, &quarantine_key(&b)).await {
            Ok(()) => {
                moved.insert(b, e.size);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The second look: whatever was linked since the first goes back.
    let needed = linked_since(d, &first).await?;
    let mut put_back = 0u64;
    for b in &needed {
        if moved.remove(b).is_some() {
            restore(d, b).await?;
            put_back += 1;
        }
    }
    if put_back > 0 {
        tracing::info!(
            blobs = put_back,
            "gc: blobs linked during the run were put back"
        );
    }
    // Still the collector? If not, everything goes back and the run stops.
    if let Some(l) = lease.as_ref() {
        if let Err(lost) = l.check(d, SystemTime::now()).await? {
            for b in moved.keys() {
                restore(d, b).await?;
            }
            return Err(lost.into());
        }
    }
    // A writer may have taken a blob back itself (its link came after the second look): it stays.
    let mut taken_back = Vec::new();
    for b in moved.keys() {
        if d.stat(&quarantine_key(b)).await?.is_none() {
            taken_back.push(b.clone());
        }
    }
    for b in taken_back {
        moved.remove(&b);
    }
    for (b, size) in &moved {
        d.delete(&quarantine_key(b)).await?;
        report.bytes_deleted += size;
        report.blobs_deleted.push((b.clone(), *size));
    }
    // Layer links to deleted blobs, unless rewritten since the first look (a push of the same blob again).
    for repo in inv.values() {
        for l in repo.layers.iter().filter(|l| moved.contains_key(&l.digest)) {
            match d.stat(&l.key).await? {
                Some(m) if m.modified == l.modified => {
                    d.delete(link_dir(&l.key)).await?;
                    report.layer_links_deleted += 1;
                }
                _ => {}
            }
        }
    }
    Ok(report)
}
