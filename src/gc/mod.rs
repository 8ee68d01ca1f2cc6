//! Garbage collection on distribution's layout, through the [`Driver`] trait only (so it runs on any driver).
//!
//! A run is: one walk of `repositories/` ([`layout`]), the mark ([`mark`]: what every kept manifest
//! references), and the sweep ([`sweep`]: unreachable manifests, unreferenced blobs, their layer links).
//! Without `delete_untagged` the blobs left are exactly those distribution 2.8's `garbage-collect` leaves on
//! the same data. Anything younger than the grace stays (the time a client may take between a blob upload and
//! the manifest put that references it); offline runs default to no grace, as distribution's.

pub mod barrier;
pub mod budget;
pub mod cli;
pub mod du;
pub mod fsck;
pub mod keeper;
pub mod layout;
pub mod lease;
pub mod mark;
pub mod metrics;
pub mod online;
pub mod purge;
pub mod retention;
pub mod scan;
pub mod service;
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
    /// The collector lock is held by another collector, or was lost during the run.
    #[error(transparent)]
    Lease(#[from] lease::LeaseError),
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
    /// `[[retention]]` rules (none: retention removes nothing).
    pub retention: Vec<retention::Rule>,
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

    /// Whether an object written at `modified` is younger than `age` or within the grace.
    pub fn is_younger_than(&self, modified: SystemTime, age: Duration) -> bool {
        self.is_young(modified) || self.now.duration_since(modified).map_or(true, |a| a < age)
    }

    /// Whether the run compares modification times (a grace, or retention rules): without, the walks need not
    /// stat what they find.
    pub fn compares_times(&self) -> bool {
        !self.grace.is_zero() || !self.retention.is_empty()
    }

    /// How old an untagged manifest of `repo` must be to be deleted: no age with `delete_untagged` (the grace
    /// still holds), the rules' age otherwise, `None` when untagged manifests of `repo` stay.
    pub fn untagged_after(&self, repo: &Name) -> Option<Duration> {
        if self.delete_untagged {
            Some(Duration::ZERO)
        } else {
            retention::untagged_after(&self.retention, repo.as_str())
        }
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
    /// Of those, the ones deleted because a retention rule's `untagged_older_than` said so.
    pub retention_manifests: u64,
    /// Tags deleted by retention rules.
    pub tags_deleted: Vec<(Name, crate::names::Tag)>,
    /// Layer links removed with their blobs.
    pub layer_links_deleted: u64,
    /// Bytes of the unreferenced blobs the mark found (deleted, or kept by the grace).
    pub reclaimable_bytes: u64,
    /// Manifest revisions whose blob is missing (skipped).
    pub manifests_missing: Vec<(Name, Digest)>,
}

/// How long a run's hold on the collector lock lasts without renewal (checked between phases and every
/// [`RENEW_EVERY`] deletes, and rewritten there once a third of it has passed; an online run's is also
/// rewritten every third of it on a timer, [`keeper`], since its budget makes it slow).
pub const LEASE_TTL: Duration = Duration::from_secs(600);

/// Deletes between two looks at the lease.
pub const RENEW_EVERY: u64 = 256;

/// Checks that the run still holds `lease` (when it holds one), and extends it once a third of its time has
/// passed; an error when it was lost. Not every look writes: a write is a synced file, and on a journaled
/// disk its sync commits every delete before it (an offline run of the gc bench wrote it 22 times, and
/// those 44 syncs took 0.18 s of its 2.0 s under strace).
pub(crate) async fn renew(
    driver: &dyn Driver,
    lease: &mut Option<lease::Lease>,
) -> Result<(), GcError> {
    if let Some(l) = lease {
        let now = SystemTime::now();
        let left = l.expires.duration_since(now).unwrap_or_default();
        if left < LEASE_TTL - LEASE_TTL / 3 {
            l.renew(driver, LEASE_TTL, now).await??;
        } else {
            l.check(driver, now).await??;
        }
    }
    Ok(())
}

/// One mark and sweep over the store `driver` holds, under the collector lock ([`lease`]); a dry run takes no
/// lock (it writes nothing at all).
pub async fn collect(driver: &Arc<dyn Driver>, opts: &Options) -> Result<Report, GcError> {
    let mut held = if opts.dry_run {
        None
    } else {
        let owner = lease::owner_name();
        Some(lease::acquire(driver.as_ref(), &owner, LEASE_TTL, SystemTime::now()).await??)
    };
    let result = run(driver, opts, &mut held).await;
    if let Some(l) = held {
        l.release(driver.as_ref()).await?;
    }
    result
}

async fn run(
    driver: &Arc<dyn Driver>,
    opts: &Options,
    lease: &mut Option<lease::Lease>,
) -> Result<Report, GcError> {
    if lease.is_some() {
        // What an interrupted online run left in quarantine goes back first, to be judged again.
        online::recover(driver.as_ref()).await?;
    }
    let needs = if opts.compares_times() {
        layout::Needs::Times
    } else if opts.delete_untagged {
        layout::Needs::Keys
    } else {
        layout::Needs::KeysWithoutTags
    };
    let (mut inv, _strays) = layout::inventory_with(driver.as_ref(), needs).await?;
    renew(driver.as_ref(), lease).await?;
    let mut report = Report::default();
    retention::apply_tags(driver.as_ref(), &mut inv, opts, &mut report).await?;
    let marks = mark::mark(driver, &inv, opts).await?;
    renew(driver.as_ref(), lease).await?;
    report.repositories = inv.len() as u64;
    report.manifests = marks.manifests;
    report.marked = marks.blobs.len() as u64;
    report.manifests_missing = marks.missing.clone();
    sweep::sweep(driver.as_ref(), &inv, &marks, opts, lease, &mut report).await?;
    Ok(report)
}

#[cfg(test)]
mod tests;
