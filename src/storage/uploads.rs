//! Upload sessions: `_uploads/<id>/{startedat,data}` in storage, hash state in a bounded in-memory table.
//!
//! Bytes are hashed as they are appended, and after every chunk the hash midstate is stored beside the session
//! (`hashstates/<alg>/<offset>`, Go's layout, as distribution stores it), so another instance or a restarted one
//! resumes it. When no state for the current offset can be read (a failed write; a digest of another algorithm
//! than the chunks were hashed with, SHA-256 unless the digest was known at the start) the data is re-hashed
//! when needed, so a lost state costs time, never correctness.
//!
//! A chunk (PATCH) is parked ([`super::driver::Writer::park`]): on object storage it joins the session's open
//! multipart upload, copying nothing that came before. A commit makes the data whole (the open chunk committed,
//! or the parked ones sealed), verifies the digest, renames the data into the blob store unless the blob is
//! already there, links it into the repository and removes the session.

use super::digester::{hash_file, Digester};
use super::driver::Writer;
use super::paths::{self, UploadId};
use super::upload_table::HashState;
use super::{StorageError, Store};
use crate::names::{Algorithm, Digest, Name};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::OwnedMutexGuard;

pub use super::upload_table::DEFAULT_TRACKED_UPLOADS;

/// Formats a time as RFC 3339 in UTC, the format distribution writes to `startedat`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
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

    /// The hash of an upload's first `offset` bytes: resumed from its stored hash state for exactly that offset
    /// (written after every chunk, by this instance, another one or distribution), else by re-reading the data.
    async fn hash_upload(
        &self,
        repo: &Name,
        id: &UploadId,
        data: &str,
        alg: Algorithm,
        offset: u64,
    ) -> Result<Digester, super::DriverError> {
        if let Some(d) = self.saved_hash(repo, id, alg, offset).await {
            return Ok(d);
        }
        // Parked bytes (object storage's open multipart upload) are made readable first.
        self.driver.seal(data).await?;
        hash_file(&*self.driver, data, alg, offset).await
    }

    /// The hash of an upload's first `offset` bytes from its stored hash state, when one for exactly that offset
    /// can be read.
    async fn saved_hash(
        &self,
        repo: &Name,
        id: &UploadId,
        alg: Algorithm,
        offset: u64,
    ) -> Option<Digester> {
        if offset == 0 {
            return Some(Digester::new(alg));
        }
        let saved = paths::upload_hash_state(repo, id, alg, offset);
        match self.driver.read(&saved, 1024).await {
            Ok(b) => match Digester::resume(alg, &b) {
                Some((d, n)) if n == offset => return Some(d),
                _ => tracing::warn!(
                    path = saved,
                    "an unreadable upload hash state: re-hashing the data"
                ),
            },
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                tracing::warn!(error = %e, "reading an upload hash state: re-hashing the data")
            }
        }
        None
    }

    /// Starts an upload session: an empty `data` file, then `startedat` (which makes the session known).
    pub async fn start_upload(&self, repo: &Name) -> Result<UploadId, StorageError> {
        let id = UploadId::new_random();
        let started = async {
            self.driver
                .writer(&paths::upload_data(repo, &id))
                .await?
                .commit()
                .await?;
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
            .append_len(&paths::upload_data(repo, &id))
            .await?
            .unwrap_or(0))
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
        let mut chunk = self.driver.writer(&data).await?;
        let offset = chunk.len();
        if let Some(start) = start {
            if start != offset {
                chunk.cancel().await?;
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
            let d = match self.saved_hash(repo, &id, alg, offset).await {
                Some(d) => d,
                None => {
                    // Re-reading the data needs it sealed, which the open writer must not outlive.
                    chunk.cancel().await?;
                    let d = self.hash_upload(repo, &id, &data, alg, offset).await?;
                    chunk = self.driver.writer(&data).await?;
                    if chunk.len() != offset {
                        let now = chunk.len();
                        chunk.cancel().await?;
                        return Err(StorageError::RangeMismatch {
                            repo: repo.clone(),
                            id: id.to_string(),
                            start: offset,
                            offset: now,
                        });
                    }
                    d
                }
            };
            guard.digester = Some(d);
            guard.hashed = offset;
        }
        let saved = guard.digester.clone();
        Ok(UploadWriter {
            store: self,
            repo: repo.clone(),
            id,
            chunk: Some(chunk),
            len: offset,
            state: Some(guard),
            chunk_start: offset,
            saved,
            spoilt: false,
            finishing: alg.is_some(),
        })
    }
}

/// One chunk being appended to an upload session; the session stays locked while this exists.
///
/// The chunk's bytes go to a driver [`Writer`]: [`UploadWriter::end_chunk`] commits them (once it returns, the
/// bytes are in storage for every reader, so a 202 to a PATCH means they are there) or cancels them when the
/// chunk is refused. A writer dropped before its chunk ended (the client went away, the body failed) cancels
/// the chunk in a task that holds the session until the cut is done: a failed chunk is never part of the upload.
pub struct UploadWriter<'a> {
    store: &'a Store,
    repo: Name,
    id: UploadId,
    /// The open chunk; `None` once it was committed or cancelled.
    chunk: Option<Box<dyn Writer>>,
    /// The session's length when the chunk ended (while it is open: see [`UploadWriter::offset`]).
    len: u64,
    /// The session's hash state, locked; `None` only while being dropped.
    state: Option<OwnedMutexGuard<HashState>>,
    chunk_start: u64,
    /// The hash state at the chunk's start, to go back to when the chunk is cancelled.
    saved: Option<Digester>,
    /// Whether a write of the open chunk failed (it can only be cancelled then).
    spoilt: bool,
    /// Whether this chunk is the last one (the digest was known at open): ending it only checks its length and
    /// leaves it to [`UploadWriter::commit`], so it is not parked just to be sealed again at once.
    finishing: bool,
}

impl UploadWriter<'_> {
    /// The session id.
    pub fn id(&self) -> &UploadId {
        &self.id
    }

    /// The session's length so far.
    pub fn offset(&self) -> u64 {
        self.chunk.as_ref().map_or(self.len, |c| c.len())
    }

    fn hash_state(&mut self) -> &mut HashState {
        self.state
            .as_mut()
            .expect("the session is locked until drop")
    }

    /// Drops the open chunk's bytes and goes back to the hash state of its start.
    async fn cancel_chunk(&mut self) -> Result<(), StorageError> {
        let (start, saved) = (self.chunk_start, self.saved.clone());
        let state = self.hash_state();
        state.digester = saved;
        state.hashed = start;
        self.len = start;
        match self.chunk.take() {
            Some(chunk) => Ok(chunk.cancel().await?),
            None => Ok(()),
        }
    }

    /// Appends bytes and hashes them. When the driver fails, the chunk is spoilt: ending it cancels it (and so
    /// does dropping the writer), so none of it becomes part of the upload.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        let path = || paths::upload_data(&self.repo, &self.id);
        let Some(writer) = self.chunk.as_mut().filter(|_| !self.spoilt) else {
            return Err(StorageError::Driver(super::DriverError::Io {
                op: "write",
                path: path(),
                source: std::io::Error::other("the chunk has already ended or failed"),
            }));
        };
        if let Err(e) = writer.write(chunk).await {
            self.spoilt = true;
            return Err(e.into());
        }
        let state = self.hash_state();
        if let Some(d) = state.digester.as_mut() {
            d.update(chunk);
            state.hashed += chunk.len() as u64;
        }
        self.store
            .stats
            .upload_bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Ends the chunk: when its Content-Range declared a length and a different number of bytes came, the chunk is
    /// cancelled and [`StorageError::ChunkLength`] returned; otherwise it is committed. Returns the session's length.
    pub async fn end_chunk(&mut self, declared: Option<u64>) -> Result<u64, StorageError> {
        if self.finishing && !self.spoilt {
            self.check_length(declared).await?;
            return Ok(self.offset());
        }
        let len = self.finish_chunk(declared, true).await?;
        self.save_hash_state().await;
        Ok(len)
    }

    /// Stores the session's hash state beside it (`hashstates/<alg>/<offset>`, as distribution does), so the
    /// next chunk or the commit on any instance resumes it instead of re-reading the data. A failure only costs
    /// that re-read later.
    async fn save_hash_state(&mut self) {
        let len = self.len;
        let state = self.hash_state();
        let Some(bytes) = state
            .digester
            .as_ref()
            .filter(|_| state.hashed == len && len > 0)
            .and_then(|d| d.saved_state().map(|b| (d.algorithm(), b)))
        else {
            return;
        };
        let path = paths::upload_hash_state(&self.repo, &self.id, bytes.0, len);
        if let Err(e) = self.store.driver.write_atomic(&path, &bytes.1).await {
            tracing::warn!(error = %e, "storing an upload hash state");
        }
    }

    /// Cancels the chunk when its Content-Range declared another length than came.
    async fn check_length(&mut self, declared: Option<u64>) -> Result<(), StorageError> {
        let received = self.offset() - self.chunk_start;
        if let Some(declared) = declared.filter(|&d| d != received) {
            self.cancel_chunk().await?;
            return Err(StorageError::ChunkLength {
                repo: self.repo.clone(),
                id: self.id.to_string(),
                declared,
                received,
            });
        }
        Ok(())
    }

    /// [`UploadWriter::end_chunk`] without storing the hash state: the chunk parked (`park`: more may come) or
    /// committed (readable).
    async fn finish_chunk(
        &mut self,
        declared: Option<u64>,
        park: bool,
    ) -> Result<u64, StorageError> {
        if self.spoilt {
            self.cancel_chunk().await?;
            self.spoilt = false;
            return Err(StorageError::Driver(super::DriverError::Io {
                op: "write",
                path: paths::upload_data(&self.repo, &self.id),
                source: std::io::Error::other(
                    "a write of this chunk failed: the chunk was dropped",
                ),
            }));
        }
        self.check_length(declared).await?;
        if let Some(chunk) = self.chunk.take() {
            let ended = if park {
                chunk.park().await
            } else {
                chunk.commit().await
            };
            match ended {
                Ok(len) => self.len = len,
                Err(e) => {
                    // Whatever reached the file is of unknown extent: re-hash when needed.
                    self.hash_state().digester = None;
                    self.len = self.chunk_start;
                    return Err(e.into());
                }
            }
        }
        Ok(self.len)
    }

    /// Verifies the data against `expected` and commits it as a blob linked into the repository; returns its size.
    ///
    /// An open chunk is ended first. On a mismatch the session is removed and [`StorageError::DigestMismatch`]
    /// returned: nothing is stored.
    pub async fn commit(mut self, expected: &Digest) -> Result<u64, StorageError> {
        let open = self.chunk.is_some();
        let len = self.finish_chunk(None, false).await?;
        let store = self.store;
        let data = paths::upload_data(&self.repo, &self.id);
        if !open {
            // The chunks were parked: the data becomes one object before it is verified and moved.
            store.driver.seal(&data).await?;
        }
        let state = self.hash_state();
        let actual = match state.digester.as_ref() {
            Some(d) if d.algorithm() == expected.algorithm() && state.hashed == len => d.digest(),
            _ => store
                .hash_upload(&self.repo, &self.id, &data, expected.algorithm(), len)
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
            store.link_layer(&self.repo, expected).await?;
            // The online collector's barrier (crate::gc::barrier): look again after the link is written; a
            // stored copy found above and deleted since is replaced by this upload's bytes.
            if crate::gc::barrier::settle(store.driver(), std::slice::from_ref(expected))
                .await?
                .is_some()
            {
                store
                    .driver
                    .rename(&data, &paths::blob_data(expected))
                    .await?;
            }
            Ok::<_, StorageError>(())
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

impl Drop for UploadWriter<'_> {
    fn drop(&mut self) {
        let Some(chunk) = self.chunk.take() else {
            return;
        };
        let Some(mut state) = self.state.take() else {
            return;
        };
        let (start, saved) = (self.chunk_start, self.saved.take());
        let path = paths::upload_data(&self.repo, &self.id);
        match tokio::runtime::Handle::try_current() {
            // The session stays locked (the guard moves into the task) until the chunk is cut off again.
            Ok(rt) => {
                rt.spawn(async move {
                    match chunk.cancel().await {
                        Ok(()) => {
                            state.digester = saved;
                            state.hashed = start;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, path, "cancelling an interrupted upload chunk");
                            state.digester = None;
                        }
                    }
                });
            }
            Err(_) => state.digester = None,
        }
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

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(crate::storage::StorageConfig {
            root: dir.path().to_path_buf(),
            delete_enabled: false,
            s3: None,
        })
        .await
        .unwrap();
        (dir, store)
    }

    /// Every chunk stores the hash state (Go's layout, where distribution keeps it), and a store that never saw
    /// the session (another instance, a restart) resumes it instead of re-reading the data: with the data
    /// altered behind its back, the commit still verifies the bytes that were hashed as they came.
    #[tokio::test]
    async fn another_instance_resumes_the_stored_hash_state_instead_of_rehashing() {
        let (dir, store) = store().await;
        let repo = Name::parse("a/b").unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        let first = vec![7u8; 100_000];
        let mut w = store
            .begin_write(&repo, id.as_str(), Some(0), None)
            .await
            .unwrap();
        w.write(&first).await.unwrap();
        assert_eq!(w.end_chunk(None).await.unwrap(), 100_000);
        drop(w);
        let uid = UploadId::parse(id.as_str()).unwrap();
        let saved = paths::upload_hash_state(&repo, &uid, Algorithm::Sha256, 100_000);
        let state = store.driver().read(&saved, 1024).await.unwrap();
        assert_eq!(state.len(), crate::storage::midstate::STATE_BYTES);
        assert_eq!(&state[..4], b"sha\x03");
        // The data changes under the session (same length); a fresh store must not re-read it.
        let data = paths::upload_data(&repo, &uid);
        store
            .driver()
            .write_atomic(&data, &[9u8; 100_000])
            .await
            .unwrap();
        let other = Store::open(crate::storage::StorageConfig {
            root: dir.path().to_path_buf(),
            delete_enabled: false,
            s3: None,
        })
        .await
        .unwrap();
        let mut w = other
            .begin_write(&repo, id.as_str(), Some(100_000), None)
            .await
            .unwrap();
        w.write(b"tail").await.unwrap();
        let mut whole = first.clone();
        whole.extend_from_slice(b"tail");
        let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, &whole);
        assert_eq!(w.commit(&d).await.unwrap(), 100_004);
        // A state for another offset or a broken one is not used: the data is re-read (and here mismatches).
        let id = other.start_upload(&repo).await.unwrap();
        let uid = UploadId::parse(id.as_str()).unwrap();
        let mut w = other
            .begin_write(&repo, id.as_str(), None, None)
            .await
            .unwrap();
        w.write(b"abc").await.unwrap();
        w.end_chunk(None).await.unwrap();
        drop(w);
        let saved = paths::upload_hash_state(&repo, &uid, Algorithm::Sha256, 3);
        other
            .driver()
            .write_atomic(&saved, b"garbage")
            .await
            .unwrap();
        let third = Store::open(crate::storage::StorageConfig {
            root: dir.path().to_path_buf(),
            delete_enabled: false,
            s3: None,
        })
        .await
        .unwrap();
        let w = third
            .begin_write(&repo, id.as_str(), None, None)
            .await
            .unwrap();
        let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, b"abc");
        assert_eq!(w.commit(&d).await.unwrap(), 3, "re-hashed from the data");
    }

    /// A chunk whose request failed half way (the writer dropped before its end) is cut off again, and the
    /// session continues from where it was, with a digest that still matches.
    #[tokio::test]
    async fn an_interrupted_chunk_is_never_part_of_the_upload() {
        let (_dir, store) = store().await;
        let repo = Name::parse("a/b").unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        let mut w = store
            .begin_write(&repo, id.as_str(), Some(0), None)
            .await
            .unwrap();
        w.write(b"kept ").await.unwrap();
        assert_eq!(w.end_chunk(Some(5)).await.unwrap(), 5);
        drop(w);
        let mut w = store
            .begin_write(&repo, id.as_str(), Some(5), None)
            .await
            .unwrap();
        w.write(&[b'!'; 100_000]).await.unwrap();
        drop(w); // The body failed: no end_chunk.
                 // The next writer waits for the cut: the session is at 5 again.
        let mut w = store
            .begin_write(&repo, id.as_str(), None, None)
            .await
            .unwrap();
        assert_eq!(w.offset(), 5);
        w.write(b"and this").await.unwrap();
        let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, b"kept and this");
        assert_eq!(w.commit(&d).await.unwrap(), 13);
    }

    /// A chunk whose write failed (ENOSPC from /dev/full) cannot be committed: ending it cancels it and says so.
    #[tokio::test]
    async fn a_chunk_with_a_failed_write_is_cancelled_not_committed() {
        let (dir, store) = store().await;
        let repo = Name::parse("a").unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        let data = dir.path().join(paths::upload_data(&repo, &id));
        std::fs::remove_file(&data).unwrap();
        std::os::unix::fs::symlink("/dev/full", &data).unwrap();
        let mut w = store
            .begin_write(&repo, id.as_str(), None, None)
            .await
            .unwrap();
        let mut failed = false;
        for _ in 0..64 {
            if w.write(&[1u8; 65_536]).await.is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "a write to /dev/full fails");
        assert!(
            w.write(b"more").await.is_err(),
            "a spoilt chunk takes no more"
        );
        assert!(matches!(
            w.end_chunk(None).await,
            Err(StorageError::Driver(_))
        ));
        assert_eq!(w.offset(), 0);
    }

    /// A chunk whose length differs from its Content-Range is cancelled: the upload's length and hash are as
    /// before it.
    #[tokio::test]
    async fn a_chunk_of_the_wrong_length_is_cancelled() {
        let (_dir, store) = store().await;
        let repo = Name::parse("a").unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        let mut w = store
            .begin_write(&repo, id.as_str(), Some(0), None)
            .await
            .unwrap();
        w.write(b"abc").await.unwrap();
        assert!(matches!(
            w.end_chunk(Some(4)).await,
            Err(StorageError::ChunkLength {
                declared: 4,
                received: 3,
                ..
            })
        ));
        drop(w);
        assert_eq!(store.upload_offset(&repo, id.as_str()).await.unwrap(), 0);
        let mut w = store
            .begin_write(&repo, id.as_str(), Some(0), None)
            .await
            .unwrap();
        w.write(b"xyz").await.unwrap();
        let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, b"xyz");
        assert_eq!(w.commit(&d).await.unwrap(), 3);
    }

    /// Issue 9 finding 4: once a chunk's end returns (the PATCH's 202), its bytes are in storage: a fresh store on
    /// the same root (no shared hash state, no shared file handle) hashes them all.
    #[tokio::test]
    async fn a_chunk_is_in_storage_when_its_end_returns() {
        let (dir, store) = store().await;
        let repo = Name::parse("a").unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        let mut data = Vec::new();
        for round in 0..8u8 {
            let mut w = store
                .begin_write(&repo, id.as_str(), None, None)
                .await
                .unwrap();
            for _ in 0..16 {
                let piece = vec![round; 65_536 + round as usize];
                w.write(&piece).await.unwrap();
                data.extend_from_slice(&piece);
            }
            assert_eq!(w.end_chunk(None).await.unwrap(), data.len() as u64);
            drop(w);
            let fresh = Store::open(crate::storage::StorageConfig {
                root: dir.path().to_path_buf(),
                delete_enabled: false,
                s3: None,
            })
            .await
            .unwrap();
            assert_eq!(
                fresh.upload_offset(&repo, id.as_str()).await.unwrap(),
                data.len() as u64
            );
            let hashed = hash_file(
                fresh.driver(),
                &paths::upload_data(&repo, &id),
                Algorithm::Sha256,
                data.len() as u64,
            )
            .await
            .unwrap();
            assert_eq!(
                hashed.digest(),
                crate::storage::digester::digest_bytes(Algorithm::Sha256, &data),
                "round {round}"
            );
        }
    }

    /// Issue 12 on S3: an upload of 1 MiB chunks alternating two stores on one bucket (two instances, nothing
    /// shared in memory), with a chunk whose request died half way (after it sent a part) and one of the wrong
    /// length in between, keeps its offset right and commits with its digest verified; what the offset status
    /// reports is the parked length; the session leaves nothing behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_chunks_alternating_two_stores_keep_offset_and_digest() {
        let bucket = crate::storage::driver::s3::testing::bucket().await;
        let mut section = bucket.section();
        section.chunksize = crate::storage::driver::s3::settings::MIN_CHUNK;
        let s3 = section.validate().unwrap();
        let open = || {
            Store::open(crate::storage::StorageConfig {
                root: std::path::PathBuf::from("/nonexistent"),
                delete_enabled: false,
                s3: Some(s3.clone()),
            })
        };
        let (a, b) = (open().await.unwrap(), open().await.unwrap());
        let repo = Name::parse("team/app").unwrap();
        let id = a.start_upload(&repo).await.unwrap();
        let mut data = Vec::new();
        for i in 0..9u8 {
            let st = if i % 2 == 0 { &b } else { &a };
            let piece: Vec<u8> = (0..1usize << 20).map(|j| (j % 241) as u8 ^ i).collect();
            if i == 3 {
                // Dies after 6 MiB: a part went out, the chunk never ended.
                let mut w = st
                    .begin_write(&repo, id.as_str(), Some(data.len() as u64), None)
                    .await
                    .unwrap();
                w.write(&vec![0xee; 6 << 20]).await.unwrap();
                drop(w);
            }
            if i == 5 {
                let mut w = st
                    .begin_write(&repo, id.as_str(), Some(data.len() as u64), None)
                    .await
                    .unwrap();
                w.write(&piece[..10]).await.unwrap();
                assert!(w.end_chunk(Some(11)).await.is_err());
            }
            let mut w = st
                .begin_write(&repo, id.as_str(), Some(data.len() as u64), None)
                .await
                .unwrap();
            w.write(&piece).await.unwrap();
            data.extend_from_slice(&piece);
            assert_eq!(
                w.end_chunk(Some(piece.len() as u64)).await.unwrap(),
                data.len() as u64
            );
            drop(w);
            assert_eq!(
                a.upload_offset(&repo, id.as_str()).await.unwrap(),
                data.len() as u64
            );
        }
        let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, &data);
        let w = a
            .begin_write(&repo, id.as_str(), None, Some(Algorithm::Sha256))
            .await
            .unwrap();
        assert_eq!(w.commit(&d).await.unwrap(), data.len() as u64);
        assert!(
            b.driver()
                .read(&paths::blob_data(&d), 16 << 20)
                .await
                .unwrap()[..]
                == data[..]
        );
        let uid = UploadId::parse(id.as_str()).unwrap();
        assert!(b
            .driver()
            .stat(&paths::upload_dir(&repo, &uid))
            .await
            .unwrap()
            .is_none());
        let left = b
            .driver()
            .abort_multipart_before(
                paths::V2_ROOT,
                SystemTime::now() + std::time::Duration::from_secs(3600),
                true,
            )
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}
