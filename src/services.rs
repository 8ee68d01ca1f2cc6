//! Background work tied to the server's lifecycle: pingora background services that start with the server and
//! stop with it (htpasswd watching, config reload on SIGHUP, counting the blobs already stored; later GC,
//! upload purging, ACME renewal).

use crate::live::LiveConfig;
use crate::metrics::metrics;
use crate::registry::Registry;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Watches the htpasswd file of the authenticator in force and reloads it (see [`crate::auth::watch`]) until
/// the server stops; a config reload that replaces the authenticator moves the watch to the new one.
pub struct HtpasswdWatch(pub Arc<LiveConfig>);

#[async_trait]
impl BackgroundService for HtpasswdWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            // Armed before the snapshot, so a replacement between the two is not missed.
            let replaced = self.0.auth_replaced.notified();
            tokio::pin!(replaced);
            replaced.as_mut().enable();
            let watching = match self.0.snapshot().auth.clone() {
                None => None,
                Some(auth) => {
                    let stop = Arc::new(AtomicBool::new(false));
                    match crate::auth::watch::spawn(auth, stop.clone()) {
                        Ok(thread) => Some((stop, thread)),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot start the htpasswd watcher: edits will not be picked up");
                            None
                        }
                    }
                }
            };
            let stopping = tokio::select! {
                _ = shutdown.changed() => true,
                _ = &mut replaced => false,
            };
            if let Some((stop, thread)) = watching {
                stop.store(true, Ordering::Relaxed);
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            if stopping {
                return;
            }
        }
    }
}

/// Reloads the config file on SIGHUP (see [`crate::live`]) until the server stops.
pub struct ConfigReload(pub Arc<LiveConfig>);

#[async_trait]
impl BackgroundService for ConfigReload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP: the config cannot be reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hangups.recv() => if got.is_none() { return },
            }
            let file = self
                .0
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(no file: environment only)".into());
            let live = self.0.clone();
            let result = tokio::task::spawn_blocking(move || live.reload()).await;
            match result {
                Ok(Ok(applied)) => {
                    metrics().config_reloads.with_label_values(&["ok"]).inc();
                    for w in &applied.warnings {
                        tracing::warn!(config = %file, "SIGHUP: {w}");
                    }
                    if applied.applied.is_empty() && applied.need_restart.is_empty() {
                        tracing::info!(config = %file, "SIGHUP: config reloaded, nothing changed");
                    } else if !applied.applied.is_empty() {
                        tracing::info!(config = %file, changed = ?applied.applied, "SIGHUP: config reloaded");
                    }
                    if !applied.need_restart.is_empty() {
                        tracing::warn!(
                            config = %file,
                            sections = ?applied.need_restart,
                            "SIGHUP: these changes need a restart (new listeners or backend); the running values stay"
                        );
                    }
                }
                Ok(Err(e)) => {
                    metrics().config_reloads.with_label_values(&["error"]).inc();
                    tracing::error!(config = %file, "SIGHUP: config reload failed, the running config stays: {e}");
                }
                Err(e) => {
                    metrics().config_reloads.with_label_values(&["error"]).inc();
                    tracing::error!(config = %file, "SIGHUP: config reload panicked, the running config stays: {e}");
                }
            }
        }
    }
}

/// Counts the blobs already in the embedded store once (a large volume must not delay start); commits keep
/// the count from then on.
pub struct BlobCount(pub Arc<Registry>);

#[async_trait]
impl BackgroundService for BlobCount {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            counted = self.0.store().count_blobs() => match counted {
                Ok((blobs, bytes)) => tracing::info!(blobs, bytes, "stored blobs counted"),
                Err(e) => tracing::warn!(error = %e, "counting the stored blobs failed; the blob gauges start at zero"),
            },
            _ = shutdown.changed() => {}
        }
    }
}
