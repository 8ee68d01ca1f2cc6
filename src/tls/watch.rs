//! Picks up renewed certificate files: both paths are stat-ed every [`POLL_INTERVAL`] (following symlinks,
//! so rename-over, in-place rewrites, symlink swaps and bind mounts all show), and once a change has held
//! still for [`SETTLE`] the store reloads. A pair caught half-written fails to load and the last good pair
//! stays; the write that completes it is a change again.

use super::store::CertStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often the files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a change must hold still before the files are read.
pub const SETTLE: Duration = Duration::from_millis(100);

/// What identifies one version of a file (`None`: it cannot be stat-ed).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, u64, i64, i64, i64, i64)>);

fn stamp(path: &Path) -> Stamp {
    Stamp(std::fs::metadata(path).ok().map(|m| {
        (
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        )
    }))
}

fn stamps(store: &CertStore) -> (Stamp, Stamp) {
    (stamp(store.cert_path()), stamp(store.key_path()))
}

/// The background service that reloads the store when its files change, until the server stops.
pub struct FileWatch(pub Arc<CertStore>);

impl FileWatch {
    /// Waits for the next settled change of the files after `seen`, and returns its stamps.
    async fn next_change(&self, seen: &(Stamp, Stamp)) -> (Stamp, Stamp) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = stamps(&self.0);
            if now == *seen {
                continue;
            }
            tokio::time::sleep(SETTLE).await;
            if stamps(&self.0) == now {
                return now;
            }
        }
    }
}

#[async_trait]
impl BackgroundService for FileWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut seen = stamps(&self.0);
        loop {
            tokio::select! {
                now = self.next_change(&seen) => {
                    seen = now;
                    let store = self.0.clone();
                    let _ = tokio::task::spawn_blocking(move || store.reload()).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rename_over_and_an_in_place_rewrite_are_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "one").unwrap();
        let first = stamp(&p);
        let tmp = dir.path().join("f.tmp");
        std::fs::write(&tmp, "one").unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        let renamed = stamp(&p);
        assert_ne!(first, renamed, "same content renamed over is a new inode");
        std::fs::write(&p, "two!").unwrap();
        assert_ne!(renamed, stamp(&p));
        std::fs::remove_file(&p).unwrap();
        assert_eq!(stamp(&p), Stamp(None));
    }
}
