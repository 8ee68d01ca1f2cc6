//! How an online run stays out of the way of the requests it runs beside: a duty-cycle budget and low
//! priority threads.
//!
//! - **The budget** (`GATEHOUSE_GC_BUDGET`, `gc.budget`, default [`DEFAULT_BUDGET_PERCENT`] %): the share of
//!   the wall time a run may be working. Every storage operation of the run goes through [`Paced`], which
//!   lets operations start freely for a [`QUANTUM`] of work, then waits for those in flight to finish and
//!   pauses for `work × (100 − budget) / budget` before the next one starts. The work counted is the whole
//!   window (the operations, and the parsing and bookkeeping between them), so over a run the collector is
//!   busy at most the budget's share of the time plus one quantum; on a disk it works on the two threads below,
//!   so it uses at most twice the budget's share of one core. At 100 there are no pauses.
//! - **Low priority** (local storage only): runs execute on a runtime of their own, one worker thread and one
//!   blocking thread (the filesystem driver's directory reads, file reads, renames and deletes), both at nice
//!   19, so the kernel gives the server's threads the CPU first whenever both want it. tokio's shared blocking
//!   pool, where request bodies are read, is never reniced. On object storage the run stays on the caller's
//!   runtime: its HTTP connections are pooled with the server's, and a connection's task lives on the runtime
//!   that opened it, so a niced runtime would slow the server's own requests (the budget still applies).
//!
//! A run takes longer that way (at 25 %, about four times as long); nothing in the barrier depends on a run
//! being fast, and the collector lock is renewed on a timer during the run ([`super::lease::Kept`]).

use crate::reply::ByteStream;
use crate::storage::driver::Writer;
use crate::storage::driver::{
    Assume, DirEntry, DirPage, Driver, DriverError, Metadata, Walk, WalkEntry,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{RwLock, RwLockReadGuard};
use tokio::time::Instant;

/// The share of the time an online run may work when `gc.budget` is not set, in percent.
pub const DEFAULT_BUDGET_PERCENT: u8 = 25;

/// How much work goes between two pauses (short, so that the pauses are spread finely over a run).
pub const QUANTUM: Duration = Duration::from_millis(10);

/// The duty cycle of one run: operations hold a shared permit; a pause takes it exclusively.
pub struct Pacer {
    /// The budget in percent, 1–100.
    percent: u64,
    /// When the current window of work began.
    window: RwLock<Instant>,
    /// The pauses taken so far, in nanoseconds.
    paused_ns: AtomicU64,
}

impl Pacer {
    /// A pacer for a budget of `percent` (1–100; out of range values are clamped).
    pub fn new(percent: u8) -> Arc<Pacer> {
        Arc::new(Pacer {
            percent: u64::from(percent.clamp(1, 100)),
            window: RwLock::new(Instant::now()),
            paused_ns: AtomicU64::new(0),
        })
    }

    /// The pauses taken so far.
    pub fn paused(&self) -> Duration {
        Duration::from_nanos(self.paused_ns.load(Ordering::Relaxed))
    }

    /// A permit to start one operation; when the current window holds a quantum of work, first the
    /// operations in flight finish and the pause that pays for the window is taken.
    pub async fn permit(&self) -> Option<RwLockReadGuard<'_, Instant>> {
        if self.percent >= 100 {
            return None;
        }
        loop {
            let open = self.window.read().await;
            if open.elapsed() < QUANTUM {
                return Some(open);
            }
            drop(open);
            let mut window = self.window.write().await;
            let worked = window.elapsed();
            // Another operation may have paid for this window while this one waited.
            if worked >= QUANTUM {
                let ns = worked.as_nanos() as u64 * (100 - self.percent) / self.percent;
                let pause = Duration::from_nanos(ns);
                tokio::time::sleep(pause).await;
                self.paused_ns.fetch_add(ns, Ordering::Relaxed);
                *window = Instant::now();
            }
        }
    }
}

/// A driver whose every operation waits for a permit of a [`Pacer`] (walks: every step).
pub struct Paced {
    inner: Arc<dyn Driver>,
    pacer: Arc<Pacer>,
}

impl Paced {
    /// `inner`, paced by `pacer`.
    pub fn new(inner: Arc<dyn Driver>, pacer: Arc<Pacer>) -> Paced {
        Paced { inner, pacer }
    }

    /// A walk of the inner driver, each step paced.
    fn paced(&self, inner: Box<dyn Walk>) -> Box<dyn Walk> {
        Box::new(PacedWalk {
            inner,
            pacer: self.pacer.clone(),
        })
    }
}

/// A walk whose every step waits for a permit.
struct PacedWalk {
    inner: Box<dyn Walk>,
    pacer: Arc<Pacer>,
}

#[async_trait]
impl Walk for PacedWalk {
    async fn next(&mut self) -> Result<Option<WalkEntry>, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.next().await
    }
}

#[async_trait]
impl Driver for Paced {
    async fn stat(&self, path: &str) -> Result<Option<Metadata>, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.stat(path).await
    }
    async fn read(&self, path: &str, max: u64) -> Result<Bytes, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.read(path, max).await
    }
    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn ByteStream>, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.read_range(path, offset, len).await
    }
    async fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.write_atomic(path, data).await
    }
    async fn writer(&self, path: &str) -> Result<Box<dyn Writer>, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.writer(path).await
    }
    async fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.create_new(path, data).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.rename(from, to).await
    }
    async fn list(&self, dir: &str) -> Result<Vec<DirEntry>, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.list(dir).await
    }
    async fn list_dirs_after(
        &self,
        dir: &str,
        after: &str,
        limit: usize,
    ) -> Result<DirPage, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.list_dirs_after(dir, after, limit).await
    }
    async fn abort_multipart_before(
        &self,
        prefix: &str,
        before: SystemTime,
        dry_run: bool,
    ) -> Result<Vec<String>, DriverError> {
        let _p = self.pacer.permit().await;
        self.inner
            .abort_multipart_before(prefix, before, dry_run)
            .await
    }
    async fn walk(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError> {
        let _p = self.pacer.permit().await;
        Ok(self.paced(self.inner.walk(prefix).await?))
    }
    async fn walk_keys(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError> {
        let _p = self.pacer.permit().await;
        Ok(self.paced(self.inner.walk_keys(prefix).await?))
    }
    async fn walk_keys_assuming(
        &self,
        prefix: &str,
        assume: Assume,
    ) -> Result<Box<dyn Walk>, DriverError> {
        let _p = self.pacer.permit().await;
        Ok(self.paced(self.inner.walk_keys_assuming(prefix, assume).await?))
    }
    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.delete(path).await
    }
    async fn delete_many(&self, paths: &[&str]) -> Result<(), DriverError> {
        let _p = self.pacer.permit().await;
        self.inner.delete_many(paths).await
    }
    async fn redirect_url(&self, path: &str) -> Result<Option<String>, DriverError> {
        self.inner.redirect_url(path).await
    }
    async fn ready(&self) -> Result<(), String> {
        self.inner.ready().await
    }
}

/// The nice value of the collector's threads.
pub const NICE: i32 = 19;

/// Lowers the calling thread's priority to [`NICE`] (on Linux the nice value is per thread).
fn lower_this_thread() {
    // SAFETY: gettid and setpriority take no pointers; they only read and set the calling thread's priority.
    let r = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
    };
    if r != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "gc: could not lower a collector thread to nice {NICE}; it runs at the server's priority"
        );
    }
}

/// The runtime online runs on local storage execute on: one worker and one blocking thread, at nice
/// [`NICE`], for the life of the process (`None`, with a warning, when it cannot be started: runs then stay
/// on the caller's runtime).
pub fn low_priority() -> Option<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1)
            .thread_name("gatehouse-gc")
            .on_thread_start(lower_this_thread)
            .enable_all()
            .build()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "gc: no low-priority threads for the collector; it runs at the server's priority")
            })
            .ok()
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice() -> i32 {
        // SAFETY: as in lower_this_thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn the_collector_runtime_works_at_nice_19_and_the_callers_threads_do_not() {
        let before = nice();
        let rt = low_priority().expect("the collector runtime starts");
        let (worker, blocking) = rt
            .spawn(async { (nice(), tokio::task::spawn_blocking(nice).await.unwrap()) })
            .await
            .unwrap();
        assert_eq!((worker, blocking), (NICE, NICE));
        assert_eq!(nice(), before, "the caller's thread keeps its priority");
        let shared = tokio::task::spawn_blocking(nice).await.unwrap();
        assert_eq!(
            shared, before,
            "tokio's shared blocking pool keeps its priority"
        );
    }

    /// Paused time: the pauses are exactly what the budget says, whatever the budget.
    #[tokio::test(start_paused = true)]
    async fn pauses_pay_for_the_work_in_proportion_to_the_budget() {
        for (percent, work_ms, want_pause_ms) in [
            (100u8, 100u64, 0u64),
            (50, 100, 100),
            (25, 100, 300),
            (10, 40, 360),
            (0, 10, 990), // clamped to 1 %
        ] {
            let pacer = Pacer::new(percent);
            let t0 = Instant::now();
            for _ in 0..work_ms / 10 {
                let _p = pacer.permit().await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The last window is paid for by the next operation.
            drop(pacer.permit().await);
            assert_eq!(
                pacer.paused(),
                Duration::from_millis(want_pause_ms),
                "{percent} %"
            );
            assert_eq!(
                t0.elapsed(),
                Duration::from_millis(work_ms + want_pause_ms),
                "{percent} %"
            );
        }
    }

    /// Operations in flight when a pause is due finish first, and their time counts as work.
    #[tokio::test(start_paused = true)]
    async fn a_pause_waits_for_the_operations_in_flight_and_counts_them() {
        let pacer = Pacer::new(50);
        let slow = {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                let _p = pacer.permit().await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(QUANTUM).await;
        let t0 = Instant::now();
        drop(pacer.permit().await);
        slow.await.unwrap();
        // The window held 30 ms of work (the slow operation): 30 ms of pause at 50 %, after it finished.
        assert_eq!(pacer.paused(), Duration::from_millis(30));
        assert_eq!(t0.elapsed(), Duration::from_millis(20 + 30));
    }

    crate::driver_conformance_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::storage::driver::FsDriver::new(dir.path())
            .await
            .unwrap();
        let paced = Paced::new(Arc::new(d), Pacer::new(20));
        (
            Box::new(dir) as Box<dyn std::any::Any + Send>,
            Arc::new(paced) as Arc<dyn Driver>,
        )
    });
}
