//! Upload sessions: `_uploads/<id>/{startedat,data}` on disk, hash state in a bounded in-memory table.
//!
//! Bytes are hashed as they are appended. When the hash state is lost (restart, eviction from the table, a failed
//! write, a session started by distribution) the data file is re-hashed when needed, so a lost state costs time,
//! never correctness. A commit verifies the digest, syncs the data, renames it into the blob store unless the blob is
//! already there, links it into the repository and removes the session.

use super::digester::{hash_file, Digester};
use super::driver::AppendFile;
use super::paths::{self, UploadId};
use super::{StorageError, Store};
use crate::names::{Algorithm, Digest, Name};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// How many upload sessions keep their hash state in memory by default.
pub const DEFAULT_TRACKED_UPLOADS: usize = 4096;

/// The hash of an upload's data file, as far as it has been hashed.
#[derive(Default)]
struct HashState {
    digester: Option<Digester>,
    hashed: u64,
}

struct Entry {
    state: Arc<AsyncMutex<HashState>>,
    used: u64,
}

#[derive(Default)]
struct Table {
    map: HashMap<(Name, UploadId), Entry>,
    tick: u64,
}

/// Per-session hash states, bounded: the least recently used idle state is dropped when the table is full.
pub(crate) struct UploadTable {
    inner: Mutex<Table>,
    cap: usize,
}

impl UploadTable {
    /// An empty table holding at most `cap` idle states.
    pub(crate) fn new(cap: usize) -> UploadTable {
        UploadTable {
            inner: Mutex::new(Table::default()),
            cap: cap.max(1),
        }
    }

    fn get(&self, repo: &Name, id: &UploadId) -> Arc<AsyncMutex<HashState>> {
        let mut t = self.inner.lock().expect("upload table lock");
        t.tick += 1;
        let tick = t.tick;
        let key = (repo.clone(), id.clone());
        if let Some(e) = t.map.get_mut(&key) {
            e.used = tick;
            return e.state.clone();
        }
        if t.map.len() >= self.cap {
            let victim = t
                .map
                .iter()
                .filter(|(_, e)| Arc::strong_count(&e.state) == 1)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                t.map.remove(&k);
            }
        }
        let state = Arc::new(AsyncMutex::new(HashState::default()));
        t.map.insert(
            key,
            Entry {
                state: state.clone(),
                used: tick,
            },
        );
        state
    }

    fn remove(&self, repo: &Name, id: &UploadId) {
        self.inner
            .lock()
            .expect("upload table lock")
            .map
            .remove(&(repo.clone(), id.clone()));
    }

    /// How many states are held.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("upload table lock").map.len()
    }
}

/// Formats a time as RFC 3339 in UTC, the format distribution writes to `startedat`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Store {
    fn upload_id(repo: &Name, id: &str) -> Result<UploadId, StorageError> {
        UploadId::parse(id).ok_or_else(|| StorageError::UploadUnknown {
            repo: repo.clone(),
            id: id.chars().take(64).collect(),
        })
    }

    async fn upload_known(&self, repo: &Name, id: &UploadId) -> Result<bool, StorageError> {
        Ok(self
            .driver
            .stat(&paths::upload_started_at(repo, id))
            .await?
            .is_some_and(|m| !m.is_dir))
    }

    /// Starts an upload session: an empty `data` file, then `startedat` (which makes the session known).
    pub async fn start_upload(&self, repo: &Name) -> Result<UploadId, StorageError> {
        let id = UploadId::new_random();
        let started = async {
            drop(self.driver.append(&paths::upload_data(repo, &id)).await?);
            self.driver
                .write_atomic(
                    &paths::upload_started_at(repo, &id),
                    rfc3339(SystemTime::now()).as_bytes(),
                )
                .await
        };
        if let Err(e) = started.await {
            // A session that could not be started (disk full) leaves nothing behind.
            let _ = self.driver.delete(&paths::upload_dir(repo, &id)).await;
            return Err(e.into());
        }
        self.stats.uploads_started.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// The number of bytes a session has received.
    pub async fn upload_offset(&self, repo: &Name, id: &str) -> Result<u64, StorageError> {
        let id = Self::upload_id(repo, id)?;
        if !self.upload_known(repo, &id).await? {
            return Err(StorageError::UploadUnknown {
                repo: repo.clone(),
                id: id.to_string(),
            });
        }
        Ok(self
            .driver
            .stat(&paths::upload_data(repo, &id))
            .await?
            .map_or(0, |m| m.size))
    }

    /// Removes an upload's directory and its in-memory hash state.
    async fn forget_upload(&self, repo: &Name, id: &UploadId) -> Result<(), StorageError> {
        self.driver.delete(&paths::upload_dir(repo, id)).await?;
        self.uploads.remove(repo, id);
        Ok(())
    }

    /// Cancels a session, removing everything it stored.
    pub async fn cancel_upload(&self, repo: &Name, id: &str) -> Result<(), StorageError> {
        let id = Self::upload_id(repo, id)?;
        let state = self.uploads.get(repo, &id);
        let _guard = state.lock().await;
        if !self.upload_known(repo, &id).await? {
            self.uploads.remove(repo, &id);
            return Err(StorageError::UploadUnknown {
                repo: repo.clone(),
                id: id.to_string(),
            });
        }
        self.forget_upload(repo, &id).await
    }

    /// Opens a session for appending one chunk, holding it against concurrent writers until the writer is dropped.
    ///
    /// `start` is the chunk's first byte from `Content-Range` (it must equal the current length); `alg` is the
    /// algorithm of the expected digest when it is already known (a monolithic upload).
    pub async fn begin_write(
        &self,
        repo: &Name,
        id: &str,
        start: Option<u64>,
        alg: Option<Algorithm>,
    ) -> Result<UploadWriter<'_>, StorageError> {
        let id = Self::upload_id(repo, id)?;
        let state = self.uploads.get(repo, &id);
        let mut guard = state.lock_owned().await;
        if !self.upload_known(repo, &id).await? {
            self.uploads.remove(repo, &id);
            return Err(StorageError::UploadUnknown {
                repo: repo.clone(),
                id: id.to_string(),
            });
        }
        let data = paths::upload_data(repo, &id);
        let file = self.driver.append(&data).await?;
        let offset = file.len();
        if let Some(start) = start {
            if start != offset {
                return Err(StorageError::RangeMismatch {
                    repo: repo.clone(),
                    id: id.to_string(),
                    start,
                    offset,
                });
            }
        }
        let fresh = guard.digester.is_none() || guard.hashed != offset;
        if fresh {
            let alg = alg.unwrap_or(Algorithm::Sha256);
            guard.digester = Some(if offset == 0 {
                Digester::new(alg)
            } else {
                hash_file(&*self.driver, &data, alg, offset).await?
            });
            guard.hashed = offset;
        }
        Ok(UploadWriter {
            store: self,
            repo: repo.clone(),
            id,
            file,
            state: guard,
            chunk_start: offset,
        })
    }
}

/// One chunk being appended to an upload session; the session stays locked while this exists.
pub struct UploadWriter<'a> {
    store: &'a Store,
    repo: Name,
    id: UploadId,
    file: Box<dyn AppendFile>,
    state: OwnedMutexGuard<HashState>,
    chunk_start: u64,
}

impl UploadWriter<'_> {
    /// The session id.
    pub fn id(&self) -> &UploadId {
        &self.id
    }

    /// The session's length so far.
    pub fn offset(&self) -> u64 {
        self.file.len()
    }

    /// Appends bytes and hashes them.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        if let Err(e) = self.file.write_all(chunk).await {
            self.state.digester = None; // The file may hold part of the chunk: re-hash when needed.
            return Err(e.into());
        }
        if let Some(d) = self.state.digester.as_mut() {
            d.update(chunk);
            self.state.hashed += chunk.len() as u64;
        }
        self.store
            .stats
            .upload_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Ends the chunk: when its Content-Range declared a length and a different number of bytes came, the chunk is
    /// cut off again and [`StorageError::ChunkLength`] returned. Returns the session's length.
    pub async fn end_chunk(&mut self, declared: Option<u64>) -> Result<u64, StorageError> {
        let received = self.file.len() - self.chunk_start;
        if let Some(declared) = declared.filter(|&d| d != received) {
            self.state.digester = None;
            self.file.truncate(self.chunk_start).await?;
            return Err(StorageError::ChunkLength {
                repo: self.repo.clone(),
                id: self.id.to_string(),
                declared,
                received,
            });
        }
        Ok(self.file.len())
    }

    /// Verifies the data against `expected` and commits it as a blob linked into the repository; returns its size.
    ///
    /// On a mismatch the session is removed and [`StorageError::DigestMismatch`] returned: nothing is stored.
    pub async fn commit(mut self, expected: &Digest) -> Result<u64, StorageError> {
        let store = self.store;
        let data = paths::upload_data(&self.repo, &self.id);
        self.file.sync().await?;
        let len = self.file.len();
        let actual = match self.state.digester.as_ref() {
            Some(d) if d.algorithm() == expected.algorithm() && self.state.hashed == len => {
                d.digest()
            }
            _ => hash_file(&*store.driver, &data, expected.algorithm(), len)
                .await?
                .digest(),
        };
        if &actual != expected {
            store.forget_upload(&self.repo, &self.id).await?;
            store
                .stats
                .uploads_digest_invalid
                .fetch_add(1, Ordering::Relaxed);
            return Err(StorageError::DigestMismatch {
                repo: self.repo.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        let committed = async {
            let existing = store.blob_size(expected).await?;
            if existing != Some(len) {
                store
                    .driver
                    .rename(&data, &paths::blob_data(expected))
                    .await?;
                if existing.is_none() {
                    store.count_new_blob(len);
                }
            }
            store.link_layer(&self.repo, expected).await
        }
        .await;
        if committed.is_err() {
            store.stats.commit_failures.fetch_add(1, Ordering::Relaxed);
        }
        committed?;
        store.forget_upload(&self.repo, &self.id).await?;
        store
            .stats
            .uploads_committed
            .fetch_add(1, Ordering::Relaxed);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn table_evicts_idle_least_recently_used() {
        let t = UploadTable::new(2);
        let r = Name::parse("a").unwrap();
        let ids: Vec<_> = (0..3).map(|_| UploadId::new_random()).collect();
        let held = t.get(&r, &ids[0]);
        t.get(&r, &ids[1]);
        t.get(&r, &ids[2]); // evicts ids[1]: ids[0] is in use
        assert_eq!(t.len(), 2);
        assert!(Arc::ptr_eq(&held, &t.get(&r, &ids[0])));
    }
}
