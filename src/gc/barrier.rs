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
//! consistent (a local disk; S3 since 2020). A blob that was only garbage may answer 404 while it is in
//! quarantine (one walk of `repositories/`); blobs younger than the grace are never quarantined, so a push
//! whose manifest follows its blobs within the grace never sees that.
//!
//! A run that dies leaves blobs in quarantine: the next run puts them all back first, and `fsck` counts
//! them as stored.

use super::lease::LEASE_DIR;
use crate::names::Digest;
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
