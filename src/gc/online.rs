//! One online run: mark as offline, unlink the untagged manifests that go (with `delete_untagged` or a
//! retention rule's `untagged_older_than`), quarantine what is unreferenced and older than the grace, look
//! again at what was linked meanwhile, put back what is needed, delete the rest ([`super::barrier`] says why
//! this is safe against concurrent pushes).

use super::barrier::{
    quarantine_key, quarantine_root, quarantined, relink, restore, unlinked, unlinked_key,
    unlinked_root,
};
use super::keeper::Kept;
use super::layout::{inventory, Inventory, Link};
use super::mark::{self, refs_of, Refs, Untagged};
use super::sweep::{blob_of, link_dir};
use super::{lease, GcError, Options, Report, LEASE_TTL};
use crate::names::{Digest, Name};
use crate::storage::driver::Driver;
use crate::storage::paths;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

/// Puts every quarantined blob and unlinked revision link back (what a dead run left); returns how many.
pub async fn recover(driver: &dyn Driver) -> Result<u64, GcError> {
    let mut found = Vec::new();
    let mut walk = driver.walk(&quarantine_root()).await?;
    while let Some(e) = walk.next().await? {
        found.extend(quarantined(&e.key));
    }
    let mut links = Vec::new();
    let mut walk = driver.walk(&unlinked_root()).await?;
    while let Some(e) = walk.next().await? {
        links.extend(unlinked(&e.key));
    }
    let mut n = 0;
    for d in found {
        n += u64::from(restore(driver, &d).await?);
    }
    for (repo, d) in links {
        n += u64::from(relink(driver, &repo, &d).await?);
    }
    Ok(n)
}

/// The links of the first look (layers, revisions, tags' current links), with their modification times.
type Seen = HashMap<String, SystemTime>;

fn seen(inv: &Inventory) -> Seen {
    inv.values()
        .flat_map(|r| {
            r.layers
                .iter()
                .chain(&r.revisions)
                .map(|l| (l.key.clone(), l.modified))
                .chain(r.tags.iter().map(|t| (t.key.clone(), t.modified)))
        })
        .collect()
}

/// The references of `d`: from the run's cache, else read (from its place or the quarantine); `None` when
/// its blob is gone.
async fn refs(
    driver: &dyn Driver,
    cache: &mut HashMap<Digest, Option<Refs>>,
    d: &Digest,
) -> Result<Option<Refs>, GcError> {
    if let Some(Some(r)) = cache.get(d) {
        return Ok(Some(r.clone()));
    }
    let key = paths::blob_data(d);
    let body = match driver.read(&key, 32 << 20).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => match driver.read(&quarantine_key(d), 32 << 20).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let r = refs_of(&key, &body)?;
    cache.insert(d.clone(), Some(r.clone()));
    Ok(Some(r))
}

/// What the second look found needed: blobs, and unlinked manifests (by repository).
#[derive(Default)]
struct Needed {
    blobs: HashSet<Digest>,
    manifests: HashSet<(Name, Digest)>,
}

/// The second look: links that are new or rewritten since the first look (another key, or another
/// modification time: no clock is compared, so instances whose clocks differ cannot hide a link), and
/// unlinked links rewritten before they were moved. Everything they reach (index children, referrers among
/// the unlinked, and the blobs of all of those) is needed.
async fn second_look(
    driver: &dyn Driver,
    before: &Seen,
    unlinked_now: &[(Name, Link)],
    cache: &mut HashMap<Digest, Option<Refs>>,
) -> Result<Needed, GcError> {
    let (inv, _) = inventory(driver).await?;
    let fresh = |key: &str, modified: SystemTime| before.get(key) != Some(&modified);
    let mut out = Needed::default();
    let mut roots: BTreeMap<Name, Vec<Digest>> = BTreeMap::new();
    for (name, repo) in &inv {
        for l in repo.layers.iter().filter(|l| fresh(&l.key, l.modified)) {
            out.blobs.insert(l.digest.clone());
        }
        let r = roots.entry(name.clone()).or_default();
        for l in repo.revisions.iter().filter(|l| fresh(&l.key, l.modified)) {
            r.push(l.digest.clone());
        }
        for t in repo.tags.iter().filter(|t| fresh(&t.key, t.modified)) {
            if let Ok(b) = driver.read(&t.key, 1024).await {
                if let Some(d) = std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| Digest::parse(s.trim()).ok())
                {
                    r.push(d);
                }
            }
        }
    }
    let mut referrers: HashMap<(Name, Digest), Vec<Digest>> = HashMap::new();
    for (name, l) in unlinked_now {
        if let Some(m) = driver.stat(&unlinked_key(name, &l.digest)).await? {
            if m.modified != l.modified {
                roots
                    .entry(name.clone())
                    .or_default()
                    .push(l.digest.clone());
            }
        }
        if let Some(Some(Refs {
            subject: Some(s), ..
        })) = cache.get(&l.digest)
        {
            referrers
                .entry((name.clone(), s.clone()))
                .or_default()
                .push(l.digest.clone());
        }
    }
    for (name, mut queue) in roots {
        let mut done = HashSet::new();
        while let Some(d) = queue.pop() {
            if !done.insert(d.clone()) {
                continue;
            }
            out.blobs.insert(d.clone());
            out.manifests.insert((name.clone(), d.clone()));
            if let Some(r) = refs(driver, cache, &d).await? {
                out.blobs.extend(r.blobs.iter().cloned());
                out.blobs.extend(r.children.iter().cloned());
                queue.extend(r.children);
            }
            if let Some(rs) = referrers.get(&(name.clone(), d)) {
                queue.extend(rs.iter().cloned());
            }
        }
    }
    Ok(out)
}

/// One online run, under the collector lock. `template` gives the grace, `delete_untagged` and the retention
/// rules (its `now` is the run's start); `untagged` is the collector's memory of when it first saw each
/// manifest untagged.
pub async fn collect_online(
    driver: &Arc<dyn Driver>,
    template: &Options,
    untagged: &mut Untagged,
) -> Result<Report, GcError> {
    let owner = lease::owner_name();
    let lease = lease::acquire(driver.as_ref(), &owner, LEASE_TTL, SystemTime::now()).await??;
    let kept = Kept::start(driver.clone(), lease, LEASE_TTL);
    let result = run(driver, template, untagged, &kept).await;
    kept.release().await?;
    result
}

async fn run(
    driver: &Arc<dyn Driver>,
    template: &Options,
    untagged: &mut Untagged,
    lease: &Kept,
) -> Result<Report, GcError> {
    let d = driver.as_ref();
    let recovered = recover(d).await?;
    if recovered > 0 {
        tracing::warn!(
            objects = recovered,
            "gc: put back the blobs and links an interrupted run had in quarantine"
        );
    }
    let opts = Options {
        dry_run: false,
        ..template.clone()
    };
    let (mut inv, _) = inventory(d).await?;
    let first = seen(&inv);
    let mut report = Report::default();
    super::retention::apply_tags(d, &mut inv, &opts, &mut report).await?;
    let mut marks = mark::mark_remembering(driver, &inv, &opts, Some(untagged)).await?;
    lease.renew().await?;
    report.repositories = inv.len() as u64;
    report.manifests = marks.manifests;
    report.marked = marks.blobs.len() as u64;
    report.manifests_missing = marks.missing.clone();
    // Untagged manifests that go: their revision links move first, then their blobs are judged.
    let mut unlinked_now: Vec<(Name, Link)> = Vec::new();
    for (name, l) in &marks.unreachable {
        match d.rename(&l.key, &unlinked_key(name, &l.digest)).await {
            Ok(()) => unlinked_now.push((name.clone(), l.clone())),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut moved: BTreeMap<Digest, u64> = BTreeMap::new();
    for e in super::scan::walk_all(d, &paths::blobs_root()).await? {
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
            lease.renew().await?;
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
    let needed = second_look(d, &first, &unlinked_now, &mut marks.refs).await?;
    let mut put_back = 0u64;
    for b in &needed.blobs {
        if moved.remove(b).is_some() {
            restore(d, b).await?;
            put_back += 1;
        }
    }
    let mut kept_links = Vec::new();
    for (name, l) in &unlinked_now {
        if needed.manifests.contains(&(name.clone(), l.digest.clone())) {
            relink(d, name, &l.digest).await?;
            kept_links.push(l.key.clone());
            put_back += 1;
        }
    }
    unlinked_now.retain(|(_, l)| !kept_links.contains(&l.key));
    if put_back > 0 {
        tracing::info!(
            objects = put_back,
            "gc: blobs and manifests linked during the run were put back"
        );
    }
    // Still the collector? If not, everything goes back and the run stops.
    if let Err(lost) = lease.check().await? {
        for b in moved.keys() {
            restore(d, b).await?;
        }
        for (name, l) in &unlinked_now {
            relink(d, name, &l.digest).await?;
        }
        return Err(lost.into());
    }
    // A writer may have taken a blob or a link back itself (its link came after the second look): it stays.
    let mut taken_back = Vec::new();
    for b in moved.keys() {
        if d.stat(&quarantine_key(b)).await?.is_none() {
            taken_back.push(b.clone());
        }
    }
    for b in taken_back {
        moved.remove(&b);
    }
    let mut gone = Vec::new();
    for (name, l) in unlinked_now {
        let key = unlinked_key(&name, &l.digest);
        if d.stat(&key).await?.is_none() {
            continue;
        }
        d.delete(&key).await?;
        gone.push((name, l));
    }
    if !gone.is_empty() {
        // What is left there is empty directories (on a disk): every link was deleted or put back.
        d.delete(&unlinked_root()).await?;
    }
    for (name, l) in &gone {
        // The tags' history entries for it, unless rewritten since the first look.
        for (_, entry) in inv[name]
            .tag_index
            .iter()
            .filter(|(_, e)| e.digest == l.digest)
        {
            if let Some(m) = d.stat(&entry.key).await? {
                if m.modified == entry.modified {
                    d.delete(link_dir(&entry.key)).await?;
                }
            }
        }
        tracing::info!(repository = %name, digest = %l.digest, "gc: untagged manifest deleted");
        report
            .manifests_deleted
            .push((name.clone(), l.digest.clone()));
        if !opts.delete_untagged {
            report.retention_manifests += 1;
        }
    }
    for (b, size) in &moved {
        d.delete(&quarantine_key(b)).await?;
        report.bytes_deleted += size;
        report.blobs_deleted.push((b.clone(), *size));
    }
    // Layer links to deleted blobs, unless the blob was pushed again.
    for repo in inv.values() {
        for l in repo.layers.iter().filter(|l| moved.contains_key(&l.digest)) {
            if unlink_layer(d, l).await? {
                report.layer_links_deleted += 1;
            }
        }
    }
    Ok(report)
}

/// Deletes the layer link `l` to a blob this run deleted; `true` when it is gone. It stays when the blob is
/// stored again (a push of the same blob) or the link was rewritten since the first look; and it is written
/// back when the blob turns out to be stored again after the delete ([`super::barrier`]: a push's last write
/// of a layer link follows its data, so a link it rewrote between this look and the delete is always
/// followed by data that the second look at the blob sees).
async fn unlink_layer(d: &dyn Driver, l: &Link) -> Result<bool, GcError> {
    let data = paths::blob_data(&l.digest);
    if d.stat(&data).await?.is_some() {
        return Ok(false);
    }
    match d.stat(&l.key).await? {
        Some(m) if m.modified == l.modified => {}
        _ => return Ok(false),
    }
    d.delete(link_dir(&l.key)).await?;
    if d.stat(&data).await?.is_some() {
        d.write_atomic(&l.key, l.digest.to_string().as_bytes())
            .await?;
        tracing::info!(link = %l.key, "gc: a layer link deleted while its blob was pushed again was put back");
        return Ok(false);
    }
    Ok(true)
}
