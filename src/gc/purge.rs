//! Upload purging, as distribution's `storage.maintenance.uploadpurging`: upload sessions with no object
//! written for longer than the age are removed (an upload still receiving chunks is never purged, however
//! old its start), and their bytes counted.

use super::layout::inventory;
use super::GcError;
use crate::storage::driver::Driver;
use crate::storage::paths;
use std::time::{Duration, SystemTime};

/// What a purge removed (or, dry, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    /// The sessions' directories.
    pub sessions: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// The keys of object storage's unfinished multipart uploads started before the age (a writer that died).
    pub multipart: Vec<String>,
}

/// Removes the upload sessions idle for longer than `age` at `now`; with `dry_run`, only reports them.
pub async fn purge_uploads(
    driver: &dyn Driver,
    age: Duration,
    now: SystemTime,
    dry_run: bool,
) -> Result<Purged, GcError> {
    let (inv, _) = inventory(driver).await?;
    let mut out = Purged::default();
    for (name, repo) in &inv {
        for (id, u) in &repo.uploads {
            let idle = now.duration_since(u.modified).unwrap_or(Duration::ZERO);
            if idle <= age {
                continue;
            }
            let dir = format!("{}/{id}", paths::uploads_dir(name));
            if !dry_run {
                driver.delete(&dir).await?;
            }
            tracing::info!(repository = %name, upload = %id, bytes = u.bytes, idle_seconds = idle.as_secs(), dry_run, "upload purged");
            out.bytes += u.bytes;
            out.sessions.push(dir);
        }
    }
    let cutoff = now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH);
    out.multipart = driver
        .abort_multipart_before(paths::V2_ROOT, cutoff, dry_run)
        .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::driver::FsDriver;

    #[tokio::test]
    async fn sessions_idle_past_the_age_go_and_active_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = FsDriver::new(dir.path()).await.unwrap();
        let up = "docker/registry/v2/repositories/app/_uploads";
        for (id, bytes) in [("old", 5usize), ("young", 7)] {
            d.write_atomic(&format!("{up}/{id}/startedat"), b"t")
                .await
                .unwrap();
            d.write_atomic(&format!("{up}/{id}/data"), &vec![0; bytes])
                .await
                .unwrap();
        }
        let now = SystemTime::now();
        let age = Duration::from_secs(3600);
        for (case, at, want) in [
            ("nothing is idle yet", now, vec![]),
            (
                "just under the age",
                now + age - Duration::from_secs(1),
                vec![],
            ),
            (
                "past the age",
                now + age + Duration::from_secs(2),
                vec!["old", "young"],
            ),
        ] {
            let r = purge_uploads(&d, age, at, true).await.unwrap();
            let ids: Vec<&str> = r
                .sessions
                .iter()
                .map(|s| s.rsplit('/').next().unwrap())
                .collect();
            assert_eq!(ids, want, "{case}");
        }
        // A chunk written now makes "young" active again; a real purge removes "old" only.
        let later = now + age + Duration::from_secs(2);
        let r = purge_uploads(&d, age, later, true).await.unwrap();
        assert_eq!(r.bytes, 5 + 1 + 7 + 1);
        let mut w = d.writer(&format!("{up}/young/data")).await.unwrap();
        w.write(b"more").await.unwrap();
        w.commit().await.unwrap();
        // Make "old" old in fact: its mtimes are set back past the age.
        let back = filetime_back(
            dir.path().join(format!("{up}/old")),
            age + Duration::from_secs(5),
        );
        let r = purge_uploads(&d, age, SystemTime::now(), false)
            .await
            .unwrap();
        assert_eq!(r.sessions, [format!("{up}/old")], "{back:?}");
        assert_eq!(d.stat(&format!("{up}/old")).await.unwrap(), None);
        assert!(d.stat(&format!("{up}/young/data")).await.unwrap().is_some());
    }

    /// Sets every file under `dir` back by `by` (std's File::set_modified).
    fn filetime_back(dir: std::path::PathBuf, by: Duration) -> Vec<std::path::PathBuf> {
        let mut done = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let f = std::fs::File::options().write(true).open(e.path()).unwrap();
            f.set_modified(SystemTime::now() - by).unwrap();
            done.push(e.path());
        }
        done
    }
}
