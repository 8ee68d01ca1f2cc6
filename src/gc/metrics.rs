//! `gatehouse_gc_*`: what the collector did, registered into the process-wide registry by
//! [`crate::metrics`].

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The collector's metrics.
pub struct GcMetrics {
    /// Runs by result (`ok`, `busy`: another collector held the lock, `failed`).
    pub runs: IntCounterVec,
    /// Blobs deleted.
    pub blobs_freed: IntCounter,
    /// Bytes of blobs deleted.
    pub bytes_freed: IntCounter,
    /// Seconds the last finished run took.
    pub last_duration: Gauge,
    /// Unix time of the last finished run.
    pub last_run: Gauge,
    /// Bytes the last mark found unreferenced (deleted, or kept by the grace).
    pub reclaimable_bytes: IntGauge,
    /// Abandoned upload sessions removed.
    pub uploads_purged: IntCounter,
    /// Bytes of the upload sessions removed.
    pub upload_bytes_purged: IntCounter,
    /// What `[[retention]]` rules deleted, by kind (`tag`, `manifest`).
    pub retention_deletions: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone())).expect("unique metric");
    m
}

impl GcMetrics {
    /// Creates and registers them.
    pub fn register(r: &Registry) -> GcMetrics {
        let counter = |name: &str, help: &str| {
            register(r, IntCounter::new(name, help).expect("valid metric"))
        };
        let gauge =
            |name: &str, help: &str| register(r, Gauge::new(name, help).expect("valid metric"));
        GcMetrics {
            runs: register(
                r,
                IntCounterVec::new(Opts::new("gatehouse_gc_runs_total", "Garbage collection runs by result."), &["result"])
                    .expect("valid metric"),
            ),
            blobs_freed: counter("gatehouse_gc_blobs_freed_total", "Blobs deleted by garbage collection."),
            bytes_freed: counter("gatehouse_gc_bytes_freed_total", "Bytes of blobs deleted by garbage collection."),
            last_duration: gauge("gatehouse_gc_last_duration_seconds", "Seconds the last finished garbage collection run took."),
            last_run: gauge("gatehouse_gc_last_run_timestamp_seconds", "Unix time of the last finished garbage collection run."),
            uploads_purged: counter("gatehouse_gc_uploads_purged_total", "Abandoned upload sessions removed."),
            upload_bytes_purged: counter(
                "gatehouse_gc_upload_bytes_purged_total",
                "Bytes of the abandoned upload sessions removed.",
            ),
            retention_deletions: register(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "gatehouse_gc_retention_deletions_total",
                        "Tags and untagged manifests deleted by retention rules, by kind.",
                    ),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            reclaimable_bytes: register(
                r,
                IntGauge::new(
                    "gatehouse_gc_reclaimable_bytes",
                    "Bytes of unreferenced blobs the last mark found (deleted, or kept by the grace).",
                )
                .expect("valid metric"),
            ),
        }
    }
}
