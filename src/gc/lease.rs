//! The collector lock: one collector at a time on one storage, through the storage itself, with a lease that
//! expires so a collector that died does not block the next one forever.
//!
//! It needs nothing beyond [`Driver::create_new`] (write only when absent: link(2) on a disk, a conditional
//! put with `If-None-Match: *` on object storage). Leases are numbered objects `.gatehouse-gc/lease-<epoch>`
//! holding the owner and the expiry. Whoever creates the next epoch holds the lock:
//!
//! - **acquire**: list the leases; with none, create epoch 1; when the newest has expired (or was
//!   released), create the next epoch. Of several instances racing for the same epoch exactly one wins;
//!   the others are told who holds it. The winner removes the older epochs.
//! - **renew**: the holder rewrites its own epoch's expiry; it alone writes that object.
//! - **check** (before every destructive step): the holder's own clock says the lease has not expired and no
//!   newer epoch exists. A holder that stalled past its expiry and was taken over sees the newer epoch and
//!   stops before deleting anything.
//! - **release**: the holder writes an expiry in the past (the object stays, so epochs only grow).
//!
//! A lease whose owner is a process of this host that no longer exists (killed mid-run) is not waited out.
//!
//! Assumption: the instances' clocks agree to well within the lease's duration (renew at a third of it).
//! Epochs never go back, so a zombie holder can never mistake a successor's lease for its own.

use super::GcError;
use crate::storage::driver::{Driver, DriverError};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the leases live (outside distribution's `docker/registry/v2`).
pub const LEASE_DIR: &str = ".gatehouse-gc";

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    owner: String,
    expires_unix_ms: u64,
}

/// A held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The epoch this holder created.
    pub epoch: u64,
    /// Who holds it (host, process, random).
    pub owner: String,
    /// When it expires by the holder's clock.
    pub expires: SystemTime,
}

/// Why the lock was not taken or is no longer held.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Another collector holds an unexpired lease.
    #[error(
        "{LEASE_DIR}/{key}: another collector ({owner}) holds the gc lock for {left_ms} ms more"
    )]
    Busy {
        /// The lease object.
        key: String,
        /// Its owner.
        owner: String,
        /// How long it still runs.
        left_ms: u64,
    },
    /// The lease expired, or a newer epoch exists: this run must stop before deleting anything else.
    #[error("{LEASE_DIR}/{key}: the gc lock was lost ({why})")]
    Lost {
        /// The lease object.
        key: String,
        /// Why.
        why: String,
    },
}

fn key(epoch: u64) -> String {
    format!("{LEASE_DIR}/lease-{epoch:020}")
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The epochs present, sorted.
async fn epochs(driver: &dyn Driver) -> Result<Vec<u64>, GcError> {
    let entries = match driver.list(LEASE_DIR).await {
        Ok(e) => e,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out: Vec<u64> = entries
        .iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| e.name.strip_prefix("lease-")?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

async fn read(driver: &dyn Driver, epoch: u64) -> Result<Option<Body>, GcError> {
    match driver.read(&key(epoch), 4096).await {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| GcError::Corrupt {
                path: key(epoch),
                reason: format!("not a gc lease: {e}"),
            }),
        Err(DriverError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A fresh owner name: host, process id and a random part.
pub fn owner_name() -> String {
    format!(
        "{}/{}/{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Whether `owner` names a process of this host that is gone (killed mid-run): its lease need not be waited
/// out. Anything else (another host, a live process, a name of another shape) is taken as alive.
fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split('/');
    let (Some(host), Some(pid), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == host_name()
        && !host.is_empty()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Takes the lock for `ttl` from `now`, or says who holds it.
pub async fn acquire(
    driver: &dyn Driver,
    owner: &str,
    ttl: Duration,
    now: SystemTime,
) -> Result<Result<Lease, LeaseError>, GcError> {
    let known = epochs(driver).await?;
    let next = match known.last() {
        None => 1,
        Some(&n) => {
            if let Some(b) = read(driver, n).await? {
                let left = b.expires_unix_ms.saturating_sub(unix_ms(now));
                if left > 0 && !owner_is_dead(&b.owner) {
                    return Ok(Err(LeaseError::Busy {
                        key: format!("lease-{n:020}"),
                        owner: b.owner,
                        left_ms: left,
                    }));
                }
            }
            n + 1
        }
    };
    let expires = now + ttl;
    let body = serde_json::to_vec(&Body {
        owner: owner.to_string(),
        expires_unix_ms: unix_ms(expires),
    })
    .expect("a lease serializes");
    if !driver.create_new(&key(next), &body).await? {
        let holder = read(driver, next)
            .await?
            .map(|b| b.owner)
            .unwrap_or_default();
        return Ok(Err(LeaseError::Busy {
            key: format!("lease-{next:020}"),
            owner: holder,
            left_ms: ttl.as_millis() as u64,
        }));
    }
    for old in known {
        driver.delete(&key(old)).await?;
    }
    Ok(Ok(Lease {
        epoch: next,
        owner: owner.to_string(),
        expires,
    }))
}

impl Lease {
    /// Whether the lock is still held at `now`: not expired by this holder's clock, no newer epoch.
    pub async fn check(
        &self,
        driver: &dyn Driver,
        now: SystemTime,
    ) -> Result<Result<(), LeaseError>, GcError> {
        let lost = |why: String| {
            Ok(Err(LeaseError::Lost {
                key: format!("lease-{:020}", self.epoch),
                why,
            }))
        };
        if now >= self.expires {
            return lost("it expired".into());
        }
        if let Some(&newest) = epochs(driver).await?.last() {
            if newest > self.epoch {
                return lost(format!("epoch {newest} was taken"));
            }
        }
        Ok(Ok(()))
    }

    /// Extends the lease to `now + ttl` (after checking it is still held).
    pub async fn renew(
        &mut self,
        driver: &dyn Driver,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Result<(), LeaseError>, GcError> {
        if let Err(e) = self.check(driver, now).await? {
            return Ok(Err(e));
        }
        let expires = now + ttl;
        let body = serde_json::to_vec(&Body {
            owner: self.owner.clone(),
            expires_unix_ms: unix_ms(expires),
        })
        .expect("a lease serializes");
        driver.write_atomic(&key(self.epoch), &body).await?;
        self.expires = expires;
        self.check(driver, now).await
    }

    /// Gives the lock up: the lease object stays with an expiry in the past, so epochs only grow.
    pub async fn release(self, driver: &dyn Driver) -> Result<(), GcError> {
        if epochs(driver).await?.last() != Some(&self.epoch) {
            return Ok(());
        }
        let body = serde_json::to_vec(&Body {
            owner: self.owner,
            expires_unix_ms: 0,
        })
        .expect("a lease serializes");
        Ok(driver.write_atomic(&key(self.epoch), &body).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::driver::FsDriver;
    use std::sync::Arc;

    async fn driver() -> (tempfile::TempDir, Arc<dyn Driver>) {
        let dir = tempfile::tempdir().unwrap();
        let d: Arc<dyn Driver> = Arc::new(FsDriver::new(dir.path()).await.unwrap());
        (dir, d)
    }

    const TTL: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn one_holder_at_a_time_and_an_expired_lease_is_taken_over() {
        let (_dir, d) = driver().await;
        let t0 = SystemTime::now();
        let a = acquire(&*d, "a", TTL, t0).await.unwrap().unwrap();
        assert_eq!(a.epoch, 1);
        match acquire(&*d, "b", TTL, t0 + Duration::from_secs(30))
            .await
            .unwrap()
        {
            Err(LeaseError::Busy { owner, left_ms, .. }) => {
                assert_eq!((owner.as_str(), left_ms), ("a", 30_000))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.check(&*d, t0 + Duration::from_secs(30)).await.unwrap(),
            Ok(())
        );
        // a stalls past its expiry; b takes over with the next epoch, and a finds out before deleting.
        let late = t0 + TTL + Duration::from_secs(1);
        let b = acquire(&*d, "b", TTL, late).await.unwrap().unwrap();
        assert_eq!(b.epoch, 2);
        assert!(
            matches!(
                a.check(&*d, t0).await.unwrap(),
                Err(LeaseError::Lost { .. })
            ),
            "a newer epoch"
        );
        let mut a2 = a.clone();
        assert!(matches!(
            a2.renew(&*d, TTL, t0).await.unwrap(),
            Err(LeaseError::Lost { .. })
        ));
        // a's stale release does not free b's lock.
        a.release(&*d).await.unwrap();
        assert!(matches!(
            acquire(&*d, "c", TTL, late).await.unwrap(),
            Err(LeaseError::Busy { .. })
        ));
        // b releases: the next collector gets a higher epoch at once, the old objects are gone.
        b.release(&*d).await.unwrap();
        let c = acquire(&*d, "c", TTL, late).await.unwrap().unwrap();
        assert_eq!(c.epoch, 3);
        assert_eq!(epochs(&*d).await.unwrap(), [3]);
    }

    #[tokio::test]
    async fn renewal_extends_and_an_own_clock_expiry_is_a_loss() {
        let (_dir, d) = driver().await;
        let t0 = SystemTime::now();
        let mut a = acquire(&*d, "a", TTL, t0).await.unwrap().unwrap();
        let t1 = t0 + Duration::from_secs(50);
        a.renew(&*d, TTL, t1).await.unwrap().unwrap();
        let t2 = t0 + Duration::from_secs(90);
        assert!(matches!(
            acquire(&*d, "b", TTL, t2).await.unwrap(),
            Err(LeaseError::Busy { .. })
        ));
        assert_eq!(a.check(&*d, t2).await.unwrap(), Ok(()));
        assert!(matches!(
            a.check(&*d, t1 + TTL).await.unwrap(),
            Err(LeaseError::Lost { .. })
        ));
    }

    #[tokio::test]
    async fn a_lease_of_a_dead_process_on_this_host_is_not_waited_out() {
        let (_dir, d) = driver().await;
        let now = SystemTime::now();
        // A pid above the kernel's limit (2^22) never exists.
        let dead = format!("{}/{}/00000000", host_name(), 1 << 23);
        acquire(&*d, &dead, TTL, now).await.unwrap().unwrap();
        let taken = acquire(&*d, &owner_name(), TTL, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.epoch, 2);
        for alive in [
            format!("{}/{}/00000000", host_name(), std::process::id()),
            format!("elsewhere/{}/00000000", 1 << 23),
            "no-slashes".to_string(),
        ] {
            assert!(!owner_is_dead(&alive), "{alive}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_racing_collectors_exactly_one_wins() {
        let (_dir, d) = driver().await;
        let now = SystemTime::now();
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let d = d.clone();
                tokio::spawn(async move { acquire(&*d, &format!("r{i}"), TTL, now).await.unwrap() })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            won += usize::from(r.await.unwrap().is_ok());
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn a_lease_that_is_no_lease_stops_the_collector() {
        let (_dir, d) = driver().await;
        d.write_atomic(&key(4), b"garbage").await.unwrap();
        let e = acquire(&*d, "a", TTL, SystemTime::now()).await.unwrap_err();
        assert!(e.to_string().contains("lease-00000000000000000004"), "{e}");
    }
}
