//! The sweep phase: unreachable manifests' revision links and tag history entries (only with
//! `delete_untagged`), then every blob the mark phase did not keep, then the layer links to the blobs deleted.
//! With `dry_run` nothing is deleted; the report is the same.

use super::layout::Inventory;
use super::mark::Marks;
use super::{GcError, Options, Report};
use crate::names::Digest;
use crate::storage::driver::{Driver, WalkEntry};
use crate::storage::paths;
use std::collections::HashSet;

/// The directory holding a link (`.../<hex>/link` → `.../<hex>`): deleted whole, as distribution does.
pub(crate) fn link_dir(key: &str) -> &str {
    key.strip_suffix("/link").unwrap_or(key)
}

/// The blob a key under `blobs/` holds the data of: `blobs/<alg>/<xx>/<hex>/data`.
pub fn blob_of(key: &str) -> Option<Digest> {
    let rel = key.strip_prefix(&paths::blobs_root())?.strip_prefix('/')?;
    match rel.split('/').collect::<Vec<_>>().as_slice() {
        [alg, xx, hex, "data"] if hex.starts_with(xx) && xx.len() == 2 => {
            Digest::parse(&format!("{alg}:{hex}")).ok()
        }
        _ => None,
    }
}

/// Every object under `blobs/`: when the run compares no times, a walk of keys that reads no blob directory
/// ([`super::layout::leaf_object`]), and only the unmarked blobs are stat'ed for their sizes (one that is gone
/// meanwhile, or was never there, is left out).
async fn blobs(
    driver: &dyn Driver,
    marks: &Marks,
    opts: &Options,
) -> Result<Vec<WalkEntry>, GcError> {
    let root = paths::blobs_root();
    if opts.compares_times() {
        return Ok(super::scan::walk_all(driver, &root).await?);
    }
    let mut found =
        super::scan::walk_all_assuming(driver, &root, super::layout::leaf_object).await?;
    found.retain(|e| blob_of(&e.key).is_some());
    let (marked, mut unmarked): (Vec<WalkEntry>, Vec<WalkEntry>) = found
        .into_iter()
        .partition(|e| blob_of(&e.key).is_some_and(|d| marks.blobs.contains(&d)));
    let keys: Vec<&str> = unmarked.iter().map(|e| e.key.as_str()).collect();
    let sizes = super::scan::sizes(driver, &keys).await?;
    let mut sizes = sizes.into_iter();
    unmarked.retain_mut(|e| match sizes.next().flatten() {
        Some(s) => {
            e.size = s;
            true
        }
        None => false,
    });
    Ok(marked.into_iter().chain(unmarked).collect())
}

/// Deletes what the marks leave unreferenced; fills `report`.
pub async fn sweep(
    driver: &dyn Driver,
    inv: &Inventory,
    marks: &Marks,
    opts: &Options,
    lease: &mut Option<super::lease::Lease>,
    report: &mut Report,
) -> Result<(), GcError> {
    for (name, link) in &marks.unreachable {
        let repo = &inv[name];
        for (_, entry) in repo
            .tag_index
            .iter()
            .filter(|(_, e)| e.digest == link.digest)
        {
            if !opts.dry_run {
                driver.delete(link_dir(&entry.key)).await?;
            }
        }
        if !opts.dry_run {
            driver.delete(link_dir(&link.key)).await?;
        }
        tracing::info!(repository = %name, digest = %link.digest, dry_run = opts.dry_run, "gc: untagged manifest deleted");
        report
            .manifests_deleted
            .push((name.clone(), link.digest.clone()));
        if !opts.delete_untagged {
            report.retention_manifests += 1;
        }
    }
    let mut deleted = HashSet::new();
    for e in blobs(driver, marks, opts).await? {
        let Some(d) = blob_of(&e.key) else { continue };
        report.blobs_seen += 1;
        if marks.blobs.contains(&d) {
            continue;
        }
        report.reclaimable_bytes += e.size;
        if opts.is_young(e.modified) {
            report.blobs_young += 1;
            continue;
        }
        tracing::debug!(digest = %d, bytes = e.size, dry_run = opts.dry_run, "gc: blob deleted");
        report.bytes_deleted += e.size;
        report.blobs_deleted.push((d.clone(), e.size));
        deleted.insert(d);
    }
    let mut doomed: Vec<String> = report
        .blobs_deleted
        .iter()
        .map(|(d, _)| paths::blob_dir(d))
        .collect();
    for repo in inv.values() {
        for l in repo.layers.iter().filter(|l| deleted.contains(&l.digest)) {
            doomed.push(link_dir(&l.key).to_string());
            report.layer_links_deleted += 1;
        }
    }
    if !opts.dry_run {
        // Blobs first, then the layer links to them, PARALLEL at a time; the lease is renewed between batches.
        for batch in doomed.chunks(super::RENEW_EVERY as usize) {
            let keys: Vec<&str> = batch.iter().map(String::as_str).collect();
            super::scan::delete_all(driver, &keys).await?;
            super::renew(driver, lease).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_files_at_their_digest_path_are_blobs() {
        let hex = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";
        let root = paths::blobs_root();
        assert_eq!(
            blob_of(&format!("{root}/sha256/b5/{hex}/data")),
            Some(Digest::parse(&format!("sha256:{hex}")).unwrap())
        );
        for stray in [
            format!("{root}/sha256/b6/{hex}/data"),
            format!("{root}/sha256/b5/{hex}/data.tmp"),
            format!("{root}/sha256/b5/{hex}"),
            format!("{root}/sha256/{hex}/data"),
            format!("{root}/md5/b5/{hex}/data"),
            format!("{root}/sha256/b5/short/data"),
            format!("{root}x/sha256/b5/{hex}/data"),
        ] {
            assert_eq!(blob_of(&stray), None, "{stray}");
        }
    }
}
