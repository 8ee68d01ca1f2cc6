//! Registry storage: blobs, repository links, uploads, manifests, tags, the catalog and referrers, kept in
//! distribution 2.8's on-disk layout so a `registry:2` data volume is served as it is.
//!
//! The logic here ([`Store`]) is written against the [`driver::Driver`] trait; [`paths`] maps every object to
//! distribution's path. Commits follow one order so nothing partial appears at a final path: upload data synced →
//! renamed into `blobs/` (unless already there) → link files written atomically.

pub mod blobs;
pub mod catalog;
pub mod digester;
pub mod driver;
pub mod manifest;
pub mod manifest_cache;
pub mod manifests;
pub mod midstate;
pub mod paths;
pub mod referrers;
pub mod tags;
mod upload_table;
pub mod uploads;

use crate::names::{Digest, Name};
use driver::{Driver, DriverError};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Where and how the embedded registry stores data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// distribution's `storage.filesystem.rootdirectory` (the directory holding `docker/registry/v2`).
    pub root: PathBuf,
    /// Whether manifest, tag and blob deletes are allowed (`storage.delete.enabled`).
    pub delete_enabled: bool,
    /// The S3 driver's settings (`storage.s3`); `None` for the filesystem driver at `root`.
    pub s3: Option<driver::s3::S3Settings>,
}

/// An error of the registry logic, with the repository and object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A driver operation failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A link or stored manifest that cannot be read as what it should be.
    #[error("{path}: corrupt: {reason}")]
    Corrupt {
        /// The storage path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading the client's request body failed.
    #[error("reading the request body: {0}")]
    Body(#[source] std::io::Error),
    /// The blob is not linked into the repository (or its data is gone).
    #[error("{repo}: blob {digest} unknown")]
    BlobUnknown {
        /// The repository.
        repo: Name,
        /// The blob.
        digest: Digest,
    },
    /// The upload session does not exist in the repository.
    #[error("{repo}: upload {id} unknown")]
    UploadUnknown {
        /// The repository.
        repo: Name,
        /// The session id as given.
        id: String,
    },
    /// A chunk did not start where the upload ends.
    #[error("{repo}: upload {id}: chunk starts at {start}, upload is at {offset}")]
    RangeMismatch {
        /// The repository.
        repo: Name,
        /// The session id.
        id: String,
        /// Where the chunk claimed to start.
        start: u64,
        /// The upload's current length.
        offset: u64,
    },
    /// A chunk's body length differs from its Content-Range.
    #[error("{repo}: upload {id}: chunk declared {declared} bytes, sent {received}")]
    ChunkLength {
        /// The repository.
        repo: Name,
        /// The session id.
        id: String,
        /// The length the Content-Range declared.
        declared: u64,
        /// The bytes received.
        received: u64,
    },
    /// The content does not hash to the digest the client gave; nothing was stored.
    #[error("{repo}: digest mismatch: expected {expected}, content is {actual}")]
    DigestMismatch {
        /// The repository.
        repo: Name,
        /// The digest the client gave.
        expected: Digest,
        /// The digest of what was received.
        actual: Digest,
    },
    /// The manifest (tag or digest) is not known to the repository.
    #[error("{repo}: manifest {reference} unknown")]
    ManifestUnknown {
        /// The repository.
        repo: Name,
        /// The tag or digest asked for.
        reference: String,
    },
    /// The manifest is malformed.
    #[error("{repo}: manifest invalid: {reason}")]
    ManifestInvalid {
        /// The repository.
        repo: Name,
        /// What is wrong with it.
        reason: String,
    },
    /// The manifest is larger than the limit.
    #[error("{repo}: manifest larger than {max} bytes")]
    ManifestTooLarge {
        /// The repository.
        repo: Name,
        /// The limit.
        max: u64,
    },
    /// The manifest references a blob or manifest the repository does not have.
    #[error("{repo}: manifest references unknown {digest}")]
    ManifestBlobUnknown {
        /// The repository.
        repo: Name,
        /// The missing reference.
        digest: Digest,
    },
    /// The repository does not exist.
    #[error("{repo}: repository unknown")]
    NameUnknown {
        /// The repository.
        repo: Name,
    },
}

/// Running counters the metrics module can export.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Upload sessions started (POST), including monolithic ones.
    pub uploads_started: AtomicU64,
    /// Uploads committed into the blob store (or found already there).
    pub uploads_committed: AtomicU64,
    /// Uploads rejected for a digest mismatch.
    pub uploads_digest_invalid: AtomicU64,
    /// Bytes of upload data written.
    pub upload_bytes: AtomicU64,
    /// Manifests stored.
    pub manifests_put: AtomicU64,
    /// Blobs in the store (counted once at open, then kept up to date as blobs are added).
    pub blobs: AtomicU64,
    /// Bytes of blobs in the store.
    pub blob_bytes: AtomicU64,
    /// Upload commits that failed after verification (I/O while moving or linking).
    pub commit_failures: AtomicU64,
}

/// A point-in-time copy of [`StoreStats`] plus the in-memory upload table size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Upload sessions started.
    pub uploads_started: u64,
    /// Uploads committed.
    pub uploads_committed: u64,
    /// Uploads rejected for a digest mismatch.
    pub uploads_digest_invalid: u64,
    /// Bytes of upload data written.
    pub upload_bytes: u64,
    /// Manifests stored.
    pub manifests_put: u64,
    /// Upload sessions whose hash state is held in memory.
    pub uploads_tracked: u64,
    /// Blobs in the store.
    pub blobs: u64,
    /// Bytes of blobs in the store.
    pub blob_bytes: u64,
    /// Failed commits.
    pub commit_failures: u64,
}

/// The registry logic over one storage driver.
pub struct Store {
    driver: Arc<dyn Driver>,
    delete_enabled: bool,
    uploads: upload_table::UploadTable,
    referrers: referrers::SubjectCache,
    manifests: manifest_cache::ManifestCache,
    stats: Arc<StoreStats>,
}

impl Store {
    /// Opens the store on the driver [`driver::open`] builds from `config` (the filesystem driver: creates its
    /// directories and removes staged temp files). Blobs already stored are not counted here: run
    /// [`Store::count_blobs`] in the background (a large volume must not delay start).
    pub async fn open(config: StorageConfig) -> Result<Store, StorageError> {
        let driver = driver::open(&config).await?;
        let mut store = Store::with_driver(driver, config.delete_enabled);
        if let Some(s3) = &config.s3 {
            store.manifests = manifest_cache::ManifestCache::new(
                manifest_cache::DEFAULT_BODY_BYTES,
                s3.tag_cache_ttl,
            );
        }
        Ok(store)
    }

    /// Counts the blobs in the store once, through the driver, and adds them to the counters (commits keep them
    /// from then on); returns the blobs and bytes found. Meant for a background service started with the server.
    pub async fn count_blobs(&self) -> Result<(u64, u64), StorageError> {
        let mut walk = self.driver.walk(&paths::blobs_root()).await?;
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some(e) = walk.next().await? {
            if e.key.rsplit('/').next() == Some("data") {
                n += 1;
                bytes += e.size;
            }
        }
        self.stats.blobs.fetch_add(n, Ordering::Relaxed);
        self.stats.blob_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok((n, bytes))
    }

    /// Whether the storage can be written now (the readiness probe, done through the driver); the error says why.
    pub async fn ready(&self) -> Result<(), String> {
        self.driver.ready().await
    }

    /// Counts a blob newly added to the store.
    pub(crate) fn count_new_blob(&self, len: u64) {
        self.stats.blobs.fetch_add(1, Ordering::Relaxed);
        self.stats.blob_bytes.fetch_add(len, Ordering::Relaxed);
    }

    /// A store over any driver.
    pub fn with_driver(driver: Arc<dyn Driver>, delete_enabled: bool) -> Store {
        Store {
            driver,
            delete_enabled,
            uploads: upload_table::UploadTable::new(upload_table::DEFAULT_TRACKED_UPLOADS),
            referrers: referrers::SubjectCache::new(referrers::DEFAULT_CACHE_ENTRIES),
            manifests: manifest_cache::ManifestCache::new(
                manifest_cache::DEFAULT_BODY_BYTES,
                std::time::Duration::ZERO,
            ),
            stats: Arc::new(StoreStats::default()),
        }
    }

    /// Whether deletes are enabled.
    pub fn delete_enabled(&self) -> bool {
        self.delete_enabled
    }

    /// The driver underneath.
    pub fn driver(&self) -> &dyn Driver {
        &*self.driver
    }

    /// The driver underneath, shared (for background services that outlive a borrow).
    pub fn shared_driver(&self) -> Arc<dyn Driver> {
        self.driver.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        StatsSnapshot {
            uploads_started: s.uploads_started.load(Ordering::Relaxed),
            uploads_committed: s.uploads_committed.load(Ordering::Relaxed),
            uploads_digest_invalid: s.uploads_digest_invalid.load(Ordering::Relaxed),
            upload_bytes: s.upload_bytes.load(Ordering::Relaxed),
            manifests_put: s.manifests_put.load(Ordering::Relaxed),
            uploads_tracked: self.uploads.len() as u64,
            blobs: s.blobs.load(Ordering::Relaxed),
            blob_bytes: s.blob_bytes.load(Ordering::Relaxed),
            commit_failures: s.commit_failures.load(Ordering::Relaxed),
        }
    }

    /// Whether the repository exists: it has `_layers` or `_manifests`.
    pub async fn repo_exists(&self, repo: &Name) -> Result<bool, StorageError> {
        for dir in [paths::layers_dir(repo), paths::manifests_dir(repo)] {
            if self.driver.stat(&dir).await?.is_some_and(|m| m.is_dir) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads a link file (`sha256:<hex>`, trailing whitespace tolerated); `None` when absent.
    pub(crate) async fn read_link(&self, path: &str) -> Result<Option<Digest>, StorageError> {
        match self.driver.read(path, 1024).await {
            Ok(b) => {
                let text =
                    std::str::from_utf8(&b).map_err(|_| corrupt(path, "link is not UTF-8"))?;
                Digest::parse(text.trim())
                    .map(Some)
                    .map_err(|_| corrupt(path, "link does not hold a digest"))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a link file atomically: `sha256:<hex>`, no newline, as distribution writes it.
    pub(crate) async fn write_link(&self, path: &str, digest: &Digest) -> Result<(), StorageError> {
        Ok(self
            .driver
            .write_atomic(path, digest.to_string().as_bytes())
            .await?)
    }
}

/// A [`StorageError::Corrupt`] for `path`.
pub(crate) fn corrupt(path: &str, reason: &str) -> StorageError {
    StorageError::Corrupt {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_are_counted_through_the_driver_and_readiness_probes_it() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            root: dir.path().to_path_buf(),
            delete_enabled: false,
            s3: None,
        };
        let store = Store::open(config.clone()).await.unwrap();
        assert_eq!(store.ready().await, Ok(()));
        for data in [&b"one"[..], b"three", b"three"] {
            let d = digester::digest_bytes(crate::names::Algorithm::Sha256, data);
            store.put_blob_bytes(&d, data).await.unwrap();
        }
        // Upload data and staged files are not blobs.
        let repo = Name::parse("a").unwrap();
        let id = store.start_upload(&repo).await.unwrap();
        let mut w = store
            .begin_write(&repo, id.as_str(), None, None)
            .await
            .unwrap();
        w.write(b"pending").await.unwrap();
        w.end_chunk(None).await.unwrap();
        drop(w);
        let reopened = Store::open(config).await.unwrap();
        assert_eq!(reopened.stats().blobs, 0, "open does not walk the volume");
        assert_eq!(reopened.count_blobs().await.unwrap(), (2, 8));
        let s = reopened.stats();
        assert_eq!((s.blobs, s.blob_bytes), (2, 8));
    }
}
