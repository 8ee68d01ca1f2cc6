//! Background work tied to the server's lifecycle: pingora background services that start with the server and
//! stop with it (htpasswd watching, counting the blobs already stored; later GC, upload purging, ACME renewal).

use crate::auth::Authenticator;
use crate::registry::Registry;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Watches the htpasswd file and reloads it (see [`crate::auth::watch`]) until the server stops.
pub struct HtpasswdWatch(pub Arc<Authenticator>);

#[async_trait]
impl BackgroundService for HtpasswdWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = match crate::auth::watch::spawn(self.0.clone(), stop.clone()) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the htpasswd watcher: edits will not be picked up");
                return;
            }
        };
        let _ = shutdown.changed().await;
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
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
