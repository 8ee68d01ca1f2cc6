//! Manifests and tags: manifests are blobs in the global store, linked from `_manifests/revisions`; a tag is
//! `_manifests/tags/<tag>/current/link` plus an `index/<alg>/<hex>/link` history entry, as distribution writes them.

use super::blobs::LinkKind;
use super::digester::digest_bytes;
use super::manifest::{self, Kind, MAX_MANIFEST_BYTES};
use super::{paths, StorageError, Store};
use crate::names::{Algorithm, Digest, Name, Reference, Tag};
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// The largest stored manifest served (larger ones may have been written by other tools).
const MAX_STORED_MANIFEST: u64 = 32 << 20;

/// What a successful manifest PUT stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PutManifest {
    /// The manifest's digest.
    pub digest: Digest,
    /// The digest of its `subject`, when it has one.
    pub subject: Option<Digest>,
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type (from its JSON, else sniffed from its shape).
    pub media_type: String,
    /// Its bytes, exactly as pushed.
    pub body: Bytes,
}

/// What a tag was before a put wrote it: its current link (`Err`: unreadable) and whether the put's history
/// entry was already there.
struct TagBefore {
    current: Result<Option<Digest>, ()>,
    indexed: bool,
}

impl Store {
    /// The digest a tag points at, `None` when the tag does not exist.
    pub async fn resolve_tag(
        &self,
        repo: &Name,
        tag: &Tag,
    ) -> Result<Option<Digest>, StorageError> {
        self.read_link(&paths::tag_current_link(repo, tag)).await
    }

    /// Whether `repo` has a revision (or, as distribution 2.1.0 wrote them, a layer link) for the manifest.
    async fn manifest_linked(
        &self,
        repo: &Name,
        digest: &Digest,
    ) -> Result<Option<Digest>, StorageError> {
        if let Some(d) = self.read_link(&paths::revision_link(repo, digest)).await? {
            return Ok(Some(d));
        }
        self.read_link(&paths::layer_link(repo, digest)).await
    }

    /// Takes back the tag a put wrote when the put then failed (a collector deleted its manifest in the
    /// moment before, under zero grace): the tag points where it did before, or is gone if it was new, and the
    /// history entry the put added goes; a tag another put moved meanwhile is left to that put.
    async fn untag_failed_put(
        &self,
        repo: &Name,
        tag: &Tag,
        digest: &Digest,
        before: TagBefore,
    ) -> Result<(), StorageError> {
        self.manifests.forget_tag(repo, tag);
        if !before.indexed {
            self.driver()
                .delete(crate::gc::sweep::link_dir(&paths::tag_index_link(
                    repo, tag, digest,
                )))
                .await?;
        }
        let current = paths::tag_current_link(repo, tag);
        if self.read_link(&current).await.ok().flatten().as_ref() != Some(digest) {
            return Ok(());
        }
        match before.current {
            Ok(Some(d)) => self.write_link(&current, &d).await,
            Ok(None) => Ok(self.driver().delete(&paths::tag_dir(repo, tag)).await?),
            // Unreadable before: nothing known to put back.
            Err(()) => Ok(()),
        }
    }

    /// Stores a manifest pushed to `repo` under `reference` after checking its shape and references.
    pub async fn put_manifest(
        &self,
        repo: &Name,
        reference: &Reference,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Result<PutManifest, StorageError> {
        if body.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(StorageError::ManifestTooLarge {
                repo: repo.clone(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        let parsed = manifest::parse(&body, content_type).map_err(|reason| {
            StorageError::ManifestInvalid {
                repo: repo.clone(),
                reason,
            }
        })?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = digest_bytes(expected.algorithm(), &body);
                if &actual != expected {
                    return Err(StorageError::DigestMismatch {
                        repo: repo.clone(),
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => digest_bytes(Algorithm::Sha256, &body),
        };
        let required: Vec<_> = match parsed.kind {
            Kind::Image => parsed
                .config
                .iter()
                .chain(&parsed.layers)
                .filter(|d| !d.has_urls)
                .collect(),
            Kind::Index => parsed.manifests.iter().collect(),
        };
        let mut needed: Vec<Digest> = required.iter().map(|d| d.digest.clone()).collect();
        for d in required {
            let present = match parsed.kind {
                Kind::Image => self
                    .stat_blob(repo, &d.digest, LinkKind::LayerOrManifest)
                    .await
                    .map(|_| true),
                // A child must be a manifest of this repository: its revision link, not distribution 2.1.0's
                // layer-link fallback, which no child can need (2.1.0 wrote schema 1 only, which no index
                // lists) and which let a layer pass as a child (found in review; fsck then repaired the
                // accepted index away).
                Kind::Index => self
                    .read_link(&paths::revision_link(repo, &d.digest))
                    .await
                    .map(|l| l.is_some()),
            };
            match present {
                Ok(true) => {}
                Ok(false) | Err(StorageError::BlobUnknown { .. }) => {
                    return Err(StorageError::ManifestBlobUnknown {
                        repo: repo.clone(),
                        digest: d.digest.clone(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        self.put_blob_bytes(&digest, &body).await?;
        self.write_link(&paths::revision_link(repo, &digest), &digest)
            .await?;
        // The online collector's barrier (crate::gc::barrier): look again after the link is written.
        needed.push(digest.clone());
        if let Some(gone) = crate::gc::barrier::settle(self.driver(), &needed).await? {
            return Err(StorageError::ManifestBlobUnknown {
                repo: repo.clone(),
                digest: gone,
            });
        }
        let mut tagged = None;
        if let Reference::Tag(tag) = reference {
            // Both looks at once: a tagged put pays one round trip for them, not two.
            let (current_link, index_link) = (
                paths::tag_current_link(repo, tag),
                paths::tag_index_link(repo, tag, &digest),
            );
            let (current, indexed) = tokio::join!(
                self.read_link(&current_link),
                self.driver().stat(&index_link),
            );
            let before = TagBefore {
                current: current.map_err(|_| ()),
                indexed: indexed?.is_some(),
            };
            self.write_link(&index_link, &digest).await?;
            self.write_link(&current_link, &digest).await?;
            self.manifests.put_tag(repo, tag, &digest);
            tagged = Some((tag, before));
        }
        // The collector's barrier for untagged manifests (crate::gc::barrier): look again after the tag.
        let linked = match parsed.kind {
            Kind::Index => needed,
            Kind::Image => vec![digest.clone()],
        };
        if let Some(gone) = crate::gc::barrier::settle_links(self.driver(), repo, &linked).await? {
            if let Some((tag, before)) = tagged {
                self.untag_failed_put(repo, tag, &digest, before).await?;
            }
            return Err(StorageError::ManifestBlobUnknown {
                repo: repo.clone(),
                digest: gone,
            });
        }
        self.manifests
            .put_body(&digest, &manifest::media_type_of(&body), &body);
        self.stats.manifests_put.fetch_add(1, Ordering::Relaxed);
        Ok(PutManifest {
            digest,
            subject: parsed.subject.map(|s| s.digest),
        })
    }

    /// Reads a manifest of `repo` by tag or digest, through the manifest cache ([`super::manifest_cache`]): by
    /// digest the revision link is read every time, by tag the tag's link (unless read within the tag TTL); a
    /// body already cached is not read again.
    pub async fn get_manifest(
        &self,
        repo: &Name,
        reference: &Reference,
    ) -> Result<StoredManifest, StorageError> {
        let unknown = || StorageError::ManifestUnknown {
            repo: repo.clone(),
            reference: reference.to_string(),
        };
        let digest = match reference {
            Reference::Tag(tag) => match self.manifests.tag(repo, tag) {
                Some(d) => d,
                None => {
                    let d = self.resolve_tag(repo, tag).await?.ok_or_else(unknown)?;
                    self.manifests.put_tag(repo, tag, &d);
                    d
                }
            },
            Reference::Digest(d) => d.clone(),
        };
        let by_tag = matches!(reference, Reference::Tag(_));
        if by_tag {
            if let Some(c) = self.manifests.body(&digest) {
                return Ok(StoredManifest {
                    digest,
                    media_type: c.media_type.clone(),
                    body: c.body.clone(),
                });
            }
        }
        let target = self
            .manifest_linked(repo, &digest)
            .await?
            .ok_or_else(unknown)?;
        if let Some(c) = self.manifests.body(&target) {
            return Ok(StoredManifest {
                digest,
                media_type: c.media_type.clone(),
                body: c.body.clone(),
            });
        }
        let body = match self
            .driver
            .read(&paths::blob_data(&target), MAX_STORED_MANIFEST)
            .await
        {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(unknown()),
            Err(e) => return Err(e.into()),
        };
        let media_type = manifest::media_type_of(&body);
        self.manifests.put_body(&target, &media_type, &body);
        Ok(StoredManifest {
            media_type,
            digest,
            body,
        })
    }

    /// Deletes by tag (the tag only) or by digest (its revision link and every tag pointing at it).
    pub async fn delete_manifest(
        &self,
        repo: &Name,
        reference: &Reference,
    ) -> Result<(), StorageError> {
        let unknown = || StorageError::ManifestUnknown {
            repo: repo.clone(),
            reference: reference.to_string(),
        };
        match reference {
            Reference::Tag(tag) => {
                // A tag directory without its current link (a crash between the two link writes) is deletable too.
                let dir = paths::tag_dir(repo, tag);
                self.manifests.forget_tag(repo, tag);
                if self.driver.stat(&dir).await?.is_none_or(|m| !m.is_dir) {
                    return Err(unknown());
                }
                self.driver.delete(&dir).await?;
                // Again after the delete: a GET that raced it may have cached the tag meanwhile.
                self.manifests.forget_tag(repo, tag);
                Ok(())
            }
            Reference::Digest(digest) => {
                let link = paths::revision_link(repo, digest);
                self.manifests.forget_manifest(repo, digest);
                if self.read_link(&link).await?.is_none() {
                    return Err(unknown());
                }
                self.driver.delete(&link).await?;
                for tag in self.tags_pointing_to(repo, digest).await? {
                    self.driver.delete(&paths::tag_dir(repo, &tag)).await?;
                }
                self.manifests.forget_manifest(repo, digest);
                Ok(())
            }
        }
    }
}
