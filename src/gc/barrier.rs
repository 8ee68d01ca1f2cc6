//! The online barrier: how a collector running beside the server never deletes a blob that a manifest
//! accepted with 201 references, across any number of gatehouse instances on one storage.
//!
//! Unreferenced blobs are not deleted at once: they are first moved to a quarantine
//! (`.gatehouse-gc/quarantine/<alg>/<hex>`), then the collector looks again at every link that is new or
//! rewritten since its first look (another key, or another modification time: no clocks are compared), puts
//! back every quarantined blob such a link needs (for a manifest: its config, layers and children), and only
//! then deletes the rest. The write
//! path does the mirror image: a manifest put, a blob commit and a mount first write their link, then check
//! that every blob they rely on is there ([`settle`]), taking it back from the quarantine when it is not.
//!
//! Both sides write first and look second, so at least one sees the other: either the writer's check comes
//! after the quarantine move (it finds the blob missing, takes it back or, when it was already deleted, fails
//! the request — no 201), or it comes before it, and then the writer's link was written before the
//! collector's second look, which sees it and puts the blob back. Storage must be read-after-write
//! consistent (a local disk; S3 since 2020).
//!
//! Every read of a blob's presence (a GET, a HEAD, a manifest put's check, a mount) takes it back from the
//! quarantine when it is there, so a blob a collector moved answers as it did before the move: a blob that is
//! garbage and still asked for stays until a later run, and a manifest put whose check came just before the
//! move (its 201 sent before the second look puts the blob back) never has a blob answer 404 meanwhile. A GET
//! that already opened the blob keeps reading it (a move does not cut it).
//!
//! Untagged manifests (online `delete_untagged`, or a retention rule's `untagged_older_than`) go the same
//! way: their revision links move to `.gatehouse-gc/unlinked/<alg>/<hex>/<repository>/link` before their
//! blobs are judged; the second look puts back every one that a tag written or moved since the first look
//! reaches (through index children and referrers), every one that a new or rewritten revision link reaches
//! (an index put by digest), and every one whose link was rewritten before it was moved (its modification
//! time is not the one first seen; on object storage a move rewrites it, so there nothing is deleted online
//! that way); their blobs come back with them. The writer's mirror is [`settle_links`], called after the tag
//! links are written: a put whose own revision link or index child is in the quarantine takes it back, with
//! what that manifest references. A manifest is unlinked only after one run saw it untagged and a later run,
//! at least the grace later, still does (the collector remembers when it first saw each one untagged), so a
//! manifest untagged for less than the grace is never deleted. With zero grace a put can still lose that
//! race: it then fails (no 201) and takes back the tag it wrote (`untag_failed_put` in the manifest store).
//!
//! Layer links to the blobs deleted go last, each one only while its blob is still absent and the link is
//! the one first seen, and the blob is looked at once more after the delete: a push of the same blob (an
//! upload's commit, a mount) writes the data before its last write of the link, so a link it rewrote between
//! the collector's look and its delete is always followed by data that this last look sees, and the link is
//! written back. A manifest put that checks that link in the moment between the delete and the write back
//! (one storage round trip) answers `MANIFEST_BLOB_UNKNOWN`, and its retry succeeds; nothing is lost.
//!
//! A run that dies leaves blobs and links in quarantine: the next run puts them all back first, and `fsck`
//! counts quarantined blobs as stored.

use super::lease::LEASE_DIR;
use crate::names::{Digest, Name};
use crate::storage::driver::{Driver, DriverError};
use crate::storage::paths;

/// Where a quarantined blob's data waits.
pub fn quarantine_key(d: &Digest) -> String {
    format!(
        "{LEASE_DIR}/quarantine/{}/{}",
        d.algorithm().as_str(),
        d.hex()
    )
}

/// The quarantine's root.
pub fn quarantine_root() -> String {
    format!("{LEASE_DIR}/quarantine")
}

/// The blob a quarantine key holds.
pub fn quarantined(key: &str) -> Option<Digest> {
    let rest = key.strip_prefix(&quarantine_root())?.strip_prefix('/')?;
    let (alg, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// Moves a quarantined blob back; `Ok(false)` when it is not in quarantine (put back already, or deleted).
pub async fn restore(driver: &dyn Driver, d: &Digest) -> Result<bool, DriverError> {
    match driver
        .rename(&quarantine_key(d), &paths::blob_data(d))
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The write path's half of the barrier, called after a link was written: every blob of `needed` is stored,
/// taken back from the quarantine when a collector moved it there. Returns the first blob that is gone.
pub async fn settle(driver: &dyn Driver, needed: &[Digest]) -> Result<Option<Digest>, DriverError> {
    for d in needed {
        if driver.stat(&paths::blob_data(d)).await?.is_some() {
            continue;
        }
        restore(driver, d).await?;
        if driver.stat(&paths::blob_data(d)).await?.is_none() {
            return Ok(Some(d.clone()));
        }
    }
    Ok(None)
}

/// Where an unlinked revision link of `repo` waits.
pub fn unlinked_key(repo: &Name, d: &Digest) -> String {
    format!(
        "{}/{}/{}/{repo}/link",
        unlinked_root(),
        d.algorithm().as_str(),
        d.hex()
    )
}

/// The unlinked revision links' root.
pub fn unlinked_root() -> String {
    format!("{LEASE_DIR}/unlinked")
}

/// The repository and manifest an unlinked key holds.
pub fn unlinked(key: &str) -> Option<(Name, Digest)> {
    let rest = key.strip_prefix(&unlinked_root())?.strip_prefix('/')?;
    let rest = rest.strip_suffix("/link")?;
    let mut parts = rest.splitn(3, '/');
    let (alg, hex, repo) = (parts.next()?, parts.next()?, parts.next()?);
    Some((
        Name::parse(repo).ok()?,
        Digest::parse(&format!("{alg}:{hex}")).ok()?,
    ))
}

/// Moves an unlinked revision link back; `Ok(false)` when it is not in quarantine.
pub async fn relink(driver: &dyn Driver, repo: &Name, d: &Digest) -> Result<bool, DriverError> {
    match driver
        .rename(&unlinked_key(repo, d), &paths::revision_link(repo, d))
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The write path's half for manifests, called after a manifest put wrote its links (tags included): every
/// manifest of `repo` in `linked` (the put's own, an index's children) is linked, taken back from the
/// quarantine with everything it references when a collector unlinked it. Returns the first that is gone.
pub async fn settle_links(
    driver: &dyn Driver,
    repo: &Name,
    linked: &[Digest],
) -> Result<Option<Digest>, DriverError> {
    for d in linked {
        if driver.stat(&paths::revision_link(repo, d)).await?.is_some()
            || !relink(driver, repo, d).await?
        {
            // Linked, or never unlinked by a collector (a child linked as a layer, say): as the put found it.
            if driver.stat(&paths::revision_link(repo, d)).await?.is_some()
                || driver.stat(&paths::layer_link(repo, d)).await?.is_some()
            {
                continue;
            }
            return Ok(Some(d.clone()));
        }
        // Taken back: its blob and what it references may be in quarantine too.
        if let Some(gone) = settle(driver, std::slice::from_ref(d)).await? {
            return Ok(Some(gone));
        }
        let key = paths::blob_data(d);
        let body = match driver.read(&key, 32 << 20).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(Some(d.clone())),
            Err(e) => return Err(e),
        };
        let Ok(refs) = super::mark::refs_of(&key, &body) else {
            continue;
        };
        let blobs: Vec<Digest> = refs
            .blobs
            .iter()
            .filter(|b| !refs.foreign.contains(b))
            .cloned()
            .collect();
        if let Some(gone) = settle(driver, &blobs).await? {
            return Ok(Some(gone));
        }
        if let Some(gone) = Box::pin(settle_links(driver, repo, &refs.children)).await? {
            return Ok(Some(gone));
        }
    }
    Ok(None)
}
