//! Usage per repository (`gatehouse du`, `GET /usage` on the admin listener): tags, manifests, the blobs a
//! repository links and their bytes, and the bytes only it links (what deleting it would free).

use super::layout::inventory;
use super::sweep::blob_of;
use super::GcError;
use crate::names::Digest;
use crate::storage::driver::Driver;
use crate::storage::paths;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// One repository's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoUsage {
    /// The repository.
    pub name: String,
    /// Tags.
    pub tags: u64,
    /// Manifest revisions.
    pub manifests: u64,
    /// Distinct stored blobs it links (layers and manifests).
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes of the blobs no other repository links.
    pub exclusive_bytes: u64,
    /// Upload sessions in progress, and their bytes.
    pub uploads: u64,
    /// Bytes of those sessions.
    pub upload_bytes: u64,
}

/// The store's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Per repository, by name.
    pub repositories: Vec<RepoUsage>,
    /// Blobs stored.
    pub blobs: u64,
    /// Their bytes (each blob once).
    pub bytes: u64,
}

/// Measures the store through the driver.
pub async fn usage(driver: &dyn Driver) -> Result<Usage, GcError> {
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    let mut walk = driver.walk(&paths::blobs_root()).await?;
    while let Some(e) = walk.next().await? {
        if let Some(d) = blob_of(&e.key) {
            sizes.insert(d, e.size);
        }
    }
    let (inv, _) = inventory(driver).await?;
    let linked: Vec<HashSet<&Digest>> = inv
        .values()
        .map(|r| {
            r.layers
                .iter()
                .chain(&r.revisions)
                .map(|l| &l.digest)
                .filter(|d| sizes.contains_key(*d))
                .collect()
        })
        .collect();
    let mut owners: HashMap<&Digest, u32> = HashMap::new();
    for set in &linked {
        for d in set {
            *owners.entry(d).or_default() += 1;
        }
    }
    let repositories = inv
        .iter()
        .zip(&linked)
        .map(|((name, repo), set)| RepoUsage {
            name: name.to_string(),
            tags: repo.tags.len() as u64,
            manifests: repo.revisions.len() as u64,
            blobs: set.len() as u64,
            bytes: set.iter().map(|d| sizes[*d]).sum(),
            exclusive_bytes: set
                .iter()
                .filter(|d| owners[*d] == 1)
                .map(|d| sizes[*d])
                .sum(),
            uploads: repo.uploads.len() as u64,
            upload_bytes: repo.uploads.values().map(|u| u.bytes).sum(),
        })
        .collect();
    Ok(Usage {
        repositories,
        blobs: sizes.len() as u64,
        bytes: sizes.values().sum(),
    })
}

/// How long one measurement of the running server's store is served ([`super::service::Collector::usage`]:
/// the UI's storage page and the admin listener's `GET /usage` share it) before the next caller measures again.
pub const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// The usage as `gatehouse du` prints it: one line per repository, then the total.
pub fn render(u: &Usage) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{:>14} {:>14} {:>6} {:>9} {:>6}  repository\n",
        "bytes", "exclusive", "tags", "manifests", "blobs"
    );
    for r in &u.repositories {
        let _ = writeln!(
            out,
            "{:>14} {:>14} {:>6} {:>9} {:>6}  {}",
            r.bytes, r.exclusive_bytes, r.tags, r.manifests, r.blobs, r.name
        );
    }
    let _ = writeln!(
        out,
        "{:>14} {:>14} {:>6} {:>9} {:>6}  (store)",
        u.bytes, "", "", "", u.blobs
    );
    out
}
