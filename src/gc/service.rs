//! The collector in the running server: a pingora background service that runs [`super::online`] every
//! `gc.interval` and whenever the admin listener asks (`POST /gc`), one run at a time per process (the
//! storage lock makes it one at a time across instances).

use super::online::collect_online;
use super::{GcError, Report};
use crate::storage::driver::Driver;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The server's collector.
pub struct Collector {
    driver: Arc<dyn Driver>,
    grace: Duration,
    interval: Option<Duration>,
    delete_untagged: bool,
    retention: Vec<super::retention::Rule>,
    /// The share of the time a run may work, in percent ([`super::budget`]).
    budget: u8,
    /// Whether runs go to the low-priority threads (local storage, [`super::budget::low_priority`]).
    low_priority: bool,
    /// One run at a time; it holds when each untagged manifest was first seen untagged.
    running: tokio::sync::Mutex<super::mark::Untagged>,
    /// The last usage measurement and when it was taken ([`Collector::usage`]).
    usage: tokio::sync::Mutex<Option<(Instant, f64, Arc<super::du::Usage>)>>,
}

static COLLECTOR: OnceLock<Arc<Collector>> = OnceLock::new();

/// The collector registered by the server, for the admin listener (`None` without an embedded registry).
pub fn registered() -> Option<Arc<Collector>> {
    COLLECTOR.get().cloned()
}

impl Collector {
    /// A collector over `driver` with the server's settings; registered for the admin listener. With
    /// `local_storage` (a disk, not object storage) its runs work on low-priority threads.
    pub fn register(
        driver: Arc<dyn Driver>,
        settings: &super::settings::GcSettings,
        local_storage: bool,
    ) -> Arc<Collector> {
        let c = Arc::new(Collector {
            driver,
            grace: settings.online_grace(),
            interval: settings.interval,
            delete_untagged: settings.delete_untagged,
            retention: settings.retention.clone(),
            budget: settings.budget,
            low_priority: local_storage,
            running: tokio::sync::Mutex::new(Default::default()),
            usage: tokio::sync::Mutex::new(None),
        });
        if !local_storage && c.deletes_untagged() {
            tracing::warn!(
                "gc: online runs on object storage delete no untagged manifest \
                 (GATEHOUSE_GC_DELETE_UNTAGGED, or a [[retention]] rule's untagged_older_than): a move there \
                 rewrites the link's time, which the barrier reads as a push, so each is kept; run \
                 `gatehouse gc --delete-untagged` with the servers stopped to delete them"
            );
        }
        let _ = COLLECTOR.set(c.clone());
        c
    }

    /// Whether runs are asked to delete untagged manifests (`delete_untagged`, or a retention rule's age).
    fn deletes_untagged(&self) -> bool {
        self.delete_untagged
            || self
                .retention
                .iter()
                .any(|r| r.untagged_older_than.is_some())
    }

    /// The storage it collects.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.driver
    }

    /// How often it runs on its own (None: only on demand).
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// The store's usage, measured at most once per [`super::du::FRESH_FOR`] however many callers ask (the
    /// UI's storage page and `GET /usage`; those that arrive while one measures wait for it), with the Unix
    /// time it was measured. Each measurement walks the whole store: on S3 a listing of every key.
    pub async fn usage(&self) -> Result<(Arc<super::du::Usage>, f64), GcError> {
        let mut last = self.usage.lock().await;
        if let Some((_, unix, u)) = last
            .as_ref()
            .filter(|(at, ..)| at.elapsed() < super::du::FRESH_FOR)
        {
            return Ok((u.clone(), *unix));
        }
        let u = Arc::new(super::du::usage(self.driver.as_ref()).await?);
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        *last = Some((Instant::now(), unix, u.clone()));
        Ok((u, unix))
    }

    /// One run now (waiting for a run in progress in this process to finish first), counted in the metrics.
    pub async fn run_once(&self) -> Result<Report, GcError> {
        let untagged = self.running.lock().await;
        self.run_holding(untagged).await
    }

    /// One run now, or `None` when one is in progress in this process (the admin listener answers 409
    /// then, instead of queueing runs behind it).
    pub async fn try_run_once(&self) -> Option<Result<Report, GcError>> {
        let untagged = self.running.try_lock().ok()?;
        Some(self.run_holding(untagged).await)
    }

    async fn run_holding(
        &self,
        mut untagged: tokio::sync::MutexGuard<'_, super::mark::Untagged>,
    ) -> Result<Report, GcError> {
        let started = Instant::now();
        let opts = super::Options {
            dry_run: false,
            delete_untagged: self.delete_untagged,
            grace: self.grace,
            now: SystemTime::now(),
            retention: self.retention.clone(),
        };
        let result = self.paced_run(opts, &mut untagged).await;
        let m = &crate::metrics::metrics().gc;
        match &result {
            Ok(r) => {
                m.runs.with_label_values(&["ok"]).inc();
                m.blobs_freed.inc_by(r.blobs_deleted.len() as u64);
                m.retention_deletions
                    .with_label_values(&["tag"])
                    .inc_by(r.tags_deleted.len() as u64);
                m.retention_deletions
                    .with_label_values(&["manifest"])
                    .inc_by(r.retention_manifests);
                m.bytes_freed.inc_by(r.bytes_deleted);
                m.reclaimable_bytes.set(r.reclaimable_bytes as i64);
                m.last_duration.set(started.elapsed().as_secs_f64());
                m.last_run.set(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                );
                tracing::info!(
                    blobs = r.blobs_deleted.len(),
                    tags = r.tags_deleted.len(),
                    bytes = r.bytes_deleted,
                    kept_by_grace = r.blobs_young,
                    seconds = started.elapsed().as_secs_f64(),
                    "gc: run finished"
                );
            }
            Err(GcError::Lease(super::lease::LeaseError::Busy { .. })) => {
                m.runs.with_label_values(&["busy"]).inc();
                tracing::info!(error = %result.as_ref().unwrap_err(), "gc: run skipped");
            }
            Err(e) => {
                m.runs.with_label_values(&["failed"]).inc();
                tracing::error!(error = %e, "gc: run failed; nothing more was deleted");
            }
        }
        result
    }
}

impl Collector {
    /// One online run through a [`super::budget::Paced`] driver, on the low-priority threads when the storage
    /// is local. A run moved there goes on to its end even if the caller stops waiting (the lease and the
    /// barrier do not depend on who waits).
    async fn paced_run(
        &self,
        opts: super::Options,
        untagged: &mut super::mark::Untagged,
    ) -> Result<Report, GcError> {
        let pacer = super::budget::Pacer::new(self.budget);
        let paced: Arc<dyn Driver> = Arc::new(super::budget::Paced::new(
            self.driver.clone(),
            pacer.clone(),
        ));
        let rt = self
            .low_priority
            .then(super::budget::low_priority)
            .flatten();
        let result = match rt {
            Some(rt) => {
                let mut memory = std::mem::take(untagged);
                let job = rt.spawn(async move {
                    let r = collect_online(&paced, &opts, &mut memory).await;
                    (r, memory)
                });
                let (r, memory) = job.await.map_err(|e| GcError::Task(e.to_string()))?;
                *untagged = memory;
                r
            }
            None => collect_online(&paced, &opts, untagged).await,
        };
        tracing::debug!(paused = ?pacer.paused(), budget = self.budget, "gc: run paced");
        result
    }
}

/// Runs the collector every interval until the server stops.
pub struct Scheduled(pub Arc<Collector>);

#[async_trait]
impl BackgroundService for Scheduled {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(interval) = self.0.interval else {
            return;
        };
        tracing::info!(?interval, grace = ?self.0.grace, "gc: online garbage collection scheduled");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = self.0.run_once() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The admin listener's `POST /gc`: one run now; the report as JSON.
pub async fn admin_run() -> (http::StatusCode, String) {
    let Some(c) = registered() else {
        return (
            http::StatusCode::NOT_FOUND,
            "{\"error\":\"no embedded registry: nothing to collect\"}\n".into(),
        );
    };
    let Some(result) = c.try_run_once().await else {
        return (
            http::StatusCode::CONFLICT,
            "{\"error\":\"a garbage collection is running in this process\"}\n".into(),
        );
    };
    match result {
        Ok(r) => (
            http::StatusCode::OK,
            format!(
                "{}\n",
                serde_json::json!({
                    "blobs_deleted": r.blobs_deleted.len(),
                    "tags_deleted": r.tags_deleted.len(),
                    "bytes_deleted": r.bytes_deleted,
                    "blobs_kept_by_grace": r.blobs_young,
                    "reclaimable_bytes": r.reclaimable_bytes,
                    "layer_links_deleted": r.layer_links_deleted,
                    "repositories": r.repositories,
                    "manifests": r.manifests,
                })
            ),
        ),
        Err(e) => {
            let status = if matches!(e, GcError::Lease(super::lease::LeaseError::Busy { .. })) {
                http::StatusCode::CONFLICT
            } else {
                http::StatusCode::INTERNAL_SERVER_ERROR
            };
            (
                status,
                format!("{}\n", serde_json::json!({"error": e.to_string()})),
            )
        }
    }
}

/// Removes abandoned uploads every `interval` until the server stops (distribution's upload purging).
pub struct Purging {
    /// The storage.
    pub driver: Arc<dyn Driver>,
    /// The settings.
    pub settings: super::settings::Purging,
}

#[async_trait]
impl BackgroundService for Purging {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let s = &self.settings;
        tracing::info!(age = ?s.age, interval = ?s.interval, dry_run = s.dry_run, "upload purging scheduled");
        loop {
            tokio::select! {
                _ = tokio::time::sleep(s.interval) => {}
                _ = shutdown.changed() => return,
            }
            let purged = super::purge::purge_uploads(
                self.driver.as_ref(),
                s.age,
                SystemTime::now(),
                s.dry_run,
            );
            match purged.await {
                Ok(p) if !s.dry_run => {
                    let m = &crate::metrics::metrics().gc;
                    m.uploads_purged.inc_by(p.sessions.len() as u64);
                    m.upload_bytes_purged.inc_by(p.bytes);
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "upload purging failed"),
            }
        }
    }
}

/// The admin listener's `GET /usage`: [`super::du::usage`] as JSON.
pub async fn admin_usage() -> (http::StatusCode, String) {
    let Some(c) = registered() else {
        return (
            http::StatusCode::NOT_FOUND,
            "{\"error\":\"no embedded registry\"}\n".into(),
        );
    };
    match c.usage().await {
        Ok((u, _)) => (
            http::StatusCode::OK,
            format!(
                "{}\n",
                serde_json::to_string(&*u).expect("usage serializes")
            ),
        ),
        Err(e) => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}\n", serde_json::json!({"error": e.to_string()})),
        ),
    }
}
