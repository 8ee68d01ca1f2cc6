//! Hot reload of the htpasswd file: in-place edits, write-to-temp + rename, symlink swaps and delete +
//! recreate all take effect within a second, by an atomic swap of the credential set.
//!
//! A watch on the file's directory wakes the checker at once; a stat poll of the path (following symlinks)
//! every [`POLL_INTERVAL`] catches what no event reports, such as a single-file bind mount. A change is seen
//! as a new (device, inode, size, mtime, ctime) of the path. Once the file has held still for [`SETTLE`],
//! what it says is in force, zero users included (a deliberate lock-out works, and cached credentials of
//! removed users stop working at once). A file that is missing, unreadable or garbage
//! ([`htpasswd::FileError`]) keeps the last good set; until a good file is back, [`Authenticator::health`]
//! says why (so `/readyz` is not ready), `gatehouse_htpasswd_stale` is 1, and a warning is logged.

use super::{htpasswd, log_warnings, Authenticator};
use std::os::unix::fs::MetadataExt;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// How often the file is checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How long the file must hold still before it is read.
pub const SETTLE: Duration = Duration::from_millis(25);
/// How long an empty file must stay empty before its zero users are in force (a stalled writer between
/// truncate and write must not lock everyone out).
pub const EMPTY_SETTLE: Duration = Duration::from_millis(300);

/// What identifies one version of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
    })
}

/// The result of one reload attempt, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The new set is in force.
    Ok {
        /// Users loaded.
        users: usize,
    },
    /// The last good set stays in force.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Reads the file and swaps its set in, zero users included; a missing, unreadable or garbage file keeps
/// the last good set and marks the authenticator stale. Logs and counts the result.
pub fn reload(auth: &Authenticator) -> Reload {
    apply(auth, htpasswd::load(auth.path()))
}

/// Puts what was read in force (or keeps the last good set), then logs and counts the result.
fn apply(auth: &Authenticator, loaded: Result<htpasswd::Parsed, htpasswd::FileError>) -> Reload {
    let path = auth.path();
    let result = match loaded {
        Err(e) => {
            auth.set_stale(Some(e.to_string()));
            Reload::Failed {
                reason: e.to_string(),
            }
        }
        Ok(parsed) => {
            log_warnings(path, &parsed.warnings);
            super::warn_if_nobody(path, &parsed.credentials);
            let users = parsed.credentials.len();
            auth.replace(parsed.credentials);
            auth.set_stale(None);
            Reload::Ok { users }
        }
    };
    record(&result);
    match &result {
        Reload::Ok { users } => tracing::info!(
            file = %path.display(),
            users,
            "htpasswd reloaded"
        ),
        Reload::Failed { reason } => tracing::warn!(
            file = %path.display(),
            "htpasswd not reloaded, keeping the last good set ({} users): {reason}",
            auth.users()
        ),
    }
    result
}

/// Counts a reload in the metrics.
fn record(result: &Reload) {
    let m = crate::metrics::metrics();
    match result {
        Reload::Ok { users } => {
            m.htpasswd_reloads.with_label_values(&["ok"]).inc();
            m.htpasswd_users.set(*users as i64);
            m.htpasswd_last_reload.set(unix_now());
        }
        Reload::Failed { .. } => m.htpasswd_reloads.with_label_values(&["failed"]).inc(),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Watches the file's directory; each event wakes the checker. `None` when no watch could be set up.
fn watch_dir(path: &std::path::Path, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |_event| {
        let _ = wake.send(());
    })
    .ok()?;
    match watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(e) => {
            tracing::debug!(dir = %dir.display(), "no directory watch, polling only: {e}");
            None
        }
    }
}

/// Starts the checker on its own thread; it runs until `stop` is set (checked at least every poll interval).
/// The server runs it as a background service ([`crate::services`]), so it stops with the server.
pub fn spawn(
    auth: Arc<Authenticator>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    let (wake, events) = mpsc::channel();
    let watcher = watch_dir(auth.path(), wake);
    std::thread::Builder::new()
        .name("htpasswd-watch".into())
        .spawn(move || {
            let _watcher = watcher;
            let mut last = stamp(auth.path());
            while !stop.load(Ordering::Relaxed) {
                // An event or the poll interval, whichever comes first; drain bursts of events.
                let _ = events.recv_timeout(POLL_INTERVAL);
                while events.try_recv().is_ok() {}
                let now = stamp(auth.path());
                if now == last {
                    continue;
                }
                // Let a writer finish (an editor truncates, then writes): read only a file that held still
                // for SETTLE; one still moving is looked at again on the next event or poll.
                std::thread::sleep(SETTLE);
                if stamp(auth.path()) != now {
                    continue;
                }
                let loaded = htpasswd::load(auth.path());
                // A write that raced the read (an in-place rewrite truncates first) may have shown a
                // half-written file: such a read is thrown away, and the new stamp read again.
                if stamp(auth.path()) != now {
                    continue;
                }
                // An empty file is what an in-place rewrite shows between its truncate and its write: it
                // locks everyone out only once it has stayed empty for EMPTY_SETTLE.
                if now.as_ref().is_some_and(|s| s.size == 0) {
                    std::thread::sleep(EMPTY_SETTLE);
                    if stamp(auth.path()) != now {
                        continue;
                    }
                }
                apply(&auth, loaded);
                last = now;
            }
        })
}
