//! Garbage collection on distribution's layout, through the [`Driver`] trait only (so it runs on any driver).
//!
//! A run is: one walk of `repositories/` ([`layout`]), the mark ([`mark`]: what every kept manifest
//! references), and the sweep ([`sweep`]: unreachable manifests, unreferenced blobs, their layer links).
//! Without `delete_untagged` the blobs left are exactly those distribution 2.8's `garbage-collect` leaves on
//! the same data. Anything younger than the grace stays (the time a client may take between a blob upload and
//! the manifest put that references it); offline runs default to no grace, as distribution's.

pub mod cli;
pub mod fsck;
pub mod layout;
pub mod mark;
pub mod settings;
pub mod sweep;

use crate::names::{Digest, Name};
use crate::storage::driver::{Driver, DriverError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// An error that stops a run; nothing after it is deleted.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A driver operation failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// An object that must be read to prove something unreferenced cannot be read as what it should be.
    #[error("{path}: corrupt: {reason}")]
    Corrupt {
        /// The storage key.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A background read task failed.
    #[error("gc: a read task failed: {0}")]
    Task(String),
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Report only; delete nothing.
    pub dry_run: bool,
    /// Delete manifests no tag reaches (following index children and referrers).
    pub delete_untagged: bool,
    /// Objects younger than this stay.
    pub grace: Duration,
    /// The run's reference time for the grace.
    pub now: SystemTime,
}

impl Options {
    /// Whether an object written at `modified` is within the grace (a clock step backwards counts as young).
    pub fn is_young(&self, modified: SystemTime) -> bool {
        !self.grace.is_zero()
            && self
                .now
                .duration_since(modified)
                .map_or(true, |age| age < self.grace)
    }
}

/// What a run did (or, dry, would do).
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Repositories seen.
    pub repositories: u64,
    /// Manifest revisions seen.
    pub manifests: u64,
    /// Blobs kept by the mark.
    pub marked: u64,
    /// Blob data objects seen by the sweep.
    pub blobs_seen: u64,
    /// Unmarked blobs kept because they are younger than the grace.
    pub blobs_young: u64,
    /// Blobs deleted, with their sizes.
    pub blobs_deleted: Vec<(Digest, u64)>,
    /// Bytes of the blobs deleted.
    pub bytes_deleted: u64,
    /// Manifests deleted (revision link and tag history), by repository.
    pub manifests_deleted: Vec<(Name, Digest)>,
    /// Layer links removed with their blobs.
    pub layer_links_deleted: u64,
    /// Manifest revisions whose blob is missing (skipped).
    pub manifests_missing: Vec<(Name, Digest)>,
}

/// One mark and sweep over the store `driver` holds.
pub async fn collect(driver: &Arc<dyn Driver>, opts: &Options) -> Result<Report, GcError> {
    let (inv, _strays) = layout::inventory(driver.as_ref()).await?;
    let marks = mark::mark(driver, &inv, opts).await?;
    let mut report = Report {
        repositories: inv.len() as u64,
        manifests: marks.manifests,
        marked: marks.blobs.len() as u64,
        manifests_missing: marks.missing.clone(),
        ..Report::default()
    };
    sweep::sweep(driver.as_ref(), &inv, &marks, opts, &mut report).await?;
    Ok(report)
}

#[cfg(test)]
mod tests;
