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
            // stored copy found above and deleted since is replaced by this upload's bytes, and the link is
            // written again after them (the barrier's rule for layer links: the last link write follows the
            // data).
            if crate::gc::barrier::settle(store.driver(), std::slice::from_ref(expected))
                .await?
                .is_some()
            {
                store
                    .driver
                    .rename(&data, &paths::blob_data(expected))
                    .await?;
                store.link_layer(&self.repo, expected).await?;
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
mod tests;
