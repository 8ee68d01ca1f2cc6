//! The blob store: content-addressed data shared by all repositories, reached only through a repository's links.
//!
//! A blob is visible in a repository when `_layers/<alg>/<hex>/link` exists there (or, for a manifest fetched as a
//! blob, `_manifests/revisions/<alg>/<hex>/link`) and its `blobs/.../data` exists.

use super::driver::ByteStream;
use super::{paths, StorageError, Store};
use crate::names::{Digest, Name};

/// A blob found through a repository's link ([`Store::find_blob`]), ready to be streamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    repo: Name,
    digest: Digest,
    key: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// Which link kinds make a digest visible in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Only `_layers` links (blob uploads and mounts).
    Layer,
    /// `_layers` or `_manifests/revisions` links.
    LayerOrManifest,
}

impl Store {
    /// The size of a blob in the global store, `None` when it is not there. A blob an online collector holds in
    /// quarantine is taken back first (found in review: a manifest put whose check came just before the
    /// collector's move answered 201, and its blobs answered 404 until the collector's second look put them
    /// back; see [`crate::gc::barrier`]). That costs a blob that is not there one more call (a rename).
    pub async fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        let data = paths::blob_data(digest);
        let size = |m: Option<super::driver::Metadata>| m.filter(|m| !m.is_dir).map(|m| m.size);
        if let Some(n) = size(self.driver.stat(&data).await?) {
            return Ok(Some(n));
        }
        if !crate::gc::barrier::restore(self.driver.as_ref(), digest).await? {
            return Ok(None);
        }
        Ok(size(self.driver.stat(&data).await?))
    }

    /// The digest a repository's link resolves to, `None` when the repository has no such link.
    async fn linked(
        &self,
        repo: &Name,
        digest: &Digest,
        kind: LinkKind,
    ) -> Result<Option<Digest>, StorageError> {
        if let Some(d) = self.read_link(&paths::layer_link(repo, digest)).await? {
            return Ok(Some(d));
        }
        if kind == LinkKind::LayerOrManifest {
            return self.read_link(&paths::revision_link(repo, digest)).await;
        }
        Ok(None)
    }

    /// The size of a blob visible in `repo`; [`StorageError::BlobUnknown`] when it is not linked or its data is gone.
    pub async fn stat_blob(
        &self,
        repo: &Name,
        digest: &Digest,
        kind: LinkKind,
    ) -> Result<u64, StorageError> {
        let unknown = || StorageError::BlobUnknown {
            repo: repo.clone(),
            digest: digest.clone(),
        };
        let target = self.linked(repo, digest, kind).await?.ok_or_else(unknown)?;
        self.blob_size(&target).await?.ok_or_else(unknown)
    }

    /// Finds a blob visible in `repo` (through a layer or manifest link) whose data exists: its key and size.
    pub async fn find_blob(&self, repo: &Name, digest: &Digest) -> Result<BlobRef, StorageError> {
        let unknown = || StorageError::BlobUnknown {
            repo: repo.clone(),
            digest: digest.clone(),
        };
        let target = self
            .linked(repo, digest, LinkKind::LayerOrManifest)
            .await?
            .ok_or_else(unknown)?;
        let size = self.blob_size(&target).await?.ok_or_else(unknown)?;
        Ok(BlobRef {
            repo: repo.clone(),
            digest: digest.clone(),
            key: paths::blob_data(&target),
            size,
        })
    }

    /// Streams `len` bytes of a found blob from `offset` (the range must lie within [`BlobRef::size`]).
    pub async fn blob_stream(
        &self,
        blob: &BlobRef,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn ByteStream>, StorageError> {
        match self.driver.read_range(&blob.key, offset, len).await {
            Ok(s) => Ok(s),
            Err(e) if e.is_not_found() => Err(StorageError::BlobUnknown {
                repo: blob.repo.clone(),
                digest: blob.digest.clone(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A URL the client may fetch a found blob from directly (object storage), `None` to stream it.
    pub async fn blob_redirect(&self, blob: &BlobRef) -> Result<Option<String>, StorageError> {
        Ok(self.driver.redirect_url(&blob.key).await?)
    }

    /// Whether `repo` has a layer link for `digest` whose data exists.
    pub async fn has_layer(&self, repo: &Name, digest: &Digest) -> Result<bool, StorageError> {
        match self.stat_blob(repo, digest, LinkKind::Layer).await {
            Ok(_) => Ok(true),
            Err(StorageError::BlobUnknown { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Links a blob that is in the global store into `repo`.
    pub async fn link_layer(&self, repo: &Name, digest: &Digest) -> Result<(), StorageError> {
        self.write_link(&paths::layer_link(repo, digest), digest)
            .await
    }

    /// Mounts a blob from `from` into `repo`: links it when `from` has it; returns its size, or `None`.
    pub async fn mount_blob(
        &self,
        repo: &Name,
        from: &Name,
        digest: &Digest,
    ) -> Result<Option<u64>, StorageError> {
        match self.stat_blob(from, digest, LinkKind::Layer).await {
            Ok(size) => {
                self.link_layer(repo, digest).await?;
                // The online collector's barrier (crate::gc::barrier): look again after the link is written.
                if crate::gc::barrier::settle(self.driver(), std::slice::from_ref(digest))
                    .await?
                    .is_some()
                {
                    return Ok(None);
                }
                Ok(Some(size))
            }
            Err(StorageError::BlobUnknown { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes `repo`'s layer link for `digest` (the data stays for garbage collection, as in distribution).
    pub async fn delete_layer_link(
        &self,
        repo: &Name,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let link = paths::layer_link(repo, digest);
        if self.read_link(&link).await?.is_none() {
            return Err(StorageError::BlobUnknown {
                repo: repo.clone(),
                digest: digest.clone(),
            });
        }
        Ok(self.driver.delete(&link).await?)
    }

    /// Stores small content (a manifest) in the global store under its digest, unless it is already there.
    pub(crate) async fn put_blob_bytes(
        &self,
        digest: &Digest,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let existing = self.blob_size(digest).await?;
        if existing == Some(data.len() as u64) {
            return Ok(());
        }
        self.driver
            .write_atomic(&paths::blob_data(digest), data)
            .await?;
        if existing.is_none() {
            self.count_new_blob(data.len() as u64);
        }
        Ok(())
    }
}
