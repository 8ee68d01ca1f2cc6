//! The collector lock kept for a run of any length: a task renews the lease every third of its duration while
//! the run goes on (an online run pauses for its budget, [`super::budget`], so it may take far longer than
//! one lease). The run checks the same lease before every destructive step; a renewal that finds the lock
//! lost makes every later check fail.

use super::lease::{Lease, LeaseError};
use super::GcError;
use crate::storage::driver::Driver;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// A held lease and the task that renews it.
pub struct Kept {
    /// The lease, or why it was lost.
    lease: Arc<Mutex<Result<Lease, LeaseError>>>,
    driver: Arc<dyn Driver>,
    ttl: Duration,
    renewer: tokio::task::JoinHandle<()>,
}

impl Kept {
    /// Keeps `lease` (taken for `ttl`) on `driver`, renewing it every `ttl / 3` on the current runtime.
    pub fn start(driver: Arc<dyn Driver>, lease: Lease, ttl: Duration) -> Kept {
        let shared = Arc::new(Mutex::new(Ok(lease)));
        let (s, d) = (shared.clone(), driver.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let mut held = s.lock().await;
                let Ok(l) = held.as_mut() else { return };
                match l.renew(d.as_ref(), ttl, SystemTime::now()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(lost)) => {
                        tracing::error!(error = %lost, "gc: the collector lock was lost during the run");
                        *held = Err(lost);
                        return;
                    }
                    // The next tick tries again; a check fails once the lease expired by this clock.
                    Err(e) => tracing::warn!(error = %e, "gc: renewing the collector lock failed"),
                }
            }
        });
        Kept {
            lease: shared,
            driver,
            ttl,
            renewer,
        }
    }

    /// Renews the lease now; an error when it was lost.
    pub async fn renew(&self) -> Result<(), GcError> {
        let mut held = self.lease.lock().await;
        let l = held.as_mut().map_err(|lost| lost.clone())?;
        match l
            .renew(self.driver.as_ref(), self.ttl, SystemTime::now())
            .await?
        {
            Ok(()) => Ok(()),
            Err(lost) => {
                *held = Err(lost.clone());
                Err(lost.into())
            }
        }
    }

    /// Whether the lock is still held (see [`Lease::check`]).
    pub async fn check(&self) -> Result<Result<(), LeaseError>, GcError> {
        match &*self.lease.lock().await {
            Ok(l) => l.check(self.driver.as_ref(), SystemTime::now()).await,
            Err(lost) => Ok(Err(lost.clone())),
        }
    }

    /// Stops renewing and gives the lock up (nothing to give up when it was lost).
    pub async fn release(self) -> Result<(), GcError> {
        self.renewer.abort();
        let held = self.lease.lock().await.clone();
        match held {
            Ok(l) => l.release(self.driver.as_ref()).await,
            Err(_) => Ok(()),
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gc::lease::acquire;
    use crate::storage::driver::FsDriver;

    /// A run that outlasts several leases still holds the lock at its end; a lost lock stays lost.
    #[tokio::test]
    async fn a_run_longer_than_its_lease_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let d: Arc<dyn Driver> = Arc::new(FsDriver::new(dir.path()).await.unwrap());
        let ttl = Duration::from_secs(2);
        let lease = acquire(&*d, "a", ttl, SystemTime::now())
            .await
            .unwrap()
            .unwrap();
        let unkept = lease.clone();
        let kept = Kept::start(d.clone(), lease, ttl);
        tokio::time::sleep(ttl + ttl / 2).await;
        assert_eq!(kept.check().await.unwrap(), Ok(()), "renewed on its timer");
        assert!(
            matches!(
                unkept.check(&*d, SystemTime::now()).await.unwrap(),
                Err(LeaseError::Lost { .. })
            ),
            "without renewals the same lease would have expired"
        );
        assert!(
            matches!(
                acquire(&*d, "b", ttl, SystemTime::now()).await.unwrap(),
                Err(LeaseError::Busy { .. })
            ),
            "nobody else can take it"
        );
        kept.renew().await.unwrap();
        kept.release().await.unwrap();
        let b = acquire(&*d, "b", ttl, SystemTime::now())
            .await
            .unwrap()
            .unwrap();
        // The lock taken by another: a keeper of the old epoch finds it lost and stays so.
        let stale = Lease {
            epoch: b.epoch - 1,
            owner: "a".into(),
            expires: SystemTime::now() + ttl,
        };
        let kept = Kept::start(d.clone(), stale, ttl);
        assert!(matches!(
            kept.renew().await,
            Err(GcError::Lease(LeaseError::Lost { .. }))
        ));
        assert!(matches!(
            kept.check().await.unwrap(),
            Err(LeaseError::Lost { .. })
        ));
        kept.release().await.unwrap();
        assert_eq!(
            b.check(&*d, SystemTime::now()).await.unwrap(),
            Ok(()),
            "a lost keeper's release leaves the new holder's lock alone"
        );
    }
}
