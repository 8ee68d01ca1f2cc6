//! What a manifest GET may skip reading again, and for how long, with several instances on one bucket.
//!
//! Two caches, kept apart because their correctness differs:
//! - **Bodies by digest** (content-addressed, so never stale): a manifest's bytes and media type, bounded by
//!   bytes and evicted least recently used first. A body enters only when it hashes to its digest.
//! - **Tags** (`repository, tag -> digest`): mutable, so each entry lives at most the tag TTL
//!   (`storage.s3.tag_cache_ttl`, 0 by default on the filesystem driver). What this instance writes or deletes
//!   updates or drops its own entries at once; a tag moved or deleted **on another instance** may still be
//!   answered with the digest it had for up to one TTL (a pull by digest is never affected: the repository's
//!   revision link is read on every GET by digest).
//!
//! A GET by tag whose digest and body are both known is answered without a storage request; with a TTL of 0 it
//! costs one (the tag's link). It does not read the revision link: a tag link is written only after its
//! revision link, and deleting a manifest by digest removes its tags, so a readable tag names a linked manifest
//! (except for the moment between those two deletes on another instance).

use crate::names::{Digest, Name, Tag};
use bytes::Bytes;
use lru::LruCache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bytes of manifest bodies kept by default.
pub const DEFAULT_BODY_BYTES: usize = 64 << 20;
/// The largest body kept (a bigger one is read every time).
pub const MAX_CACHED_BODY: usize = 4 << 20;
/// How many tags are remembered at most (the map is cleared when full).
pub const MAX_TAG_ENTRIES: usize = 65_536;
/// The longest tag TTL accepted: a tag moved elsewhere must show within seconds, not minutes.
pub const MAX_TAG_TTL: Duration = Duration::from_secs(60);

/// A cached manifest: its media type and bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedBody {
    /// The media type (from its JSON, else sniffed).
    pub media_type: String,
    /// The bytes as pushed.
    pub body: Bytes,
}

/// Bodies bounded by their total size.
struct Bodies {
    lru: LruCache<Digest, Arc<CachedBody>>,
    bytes: usize,
    cap: usize,
}

/// The manifest caches of one [`super::Store`].
pub struct ManifestCache {
    bodies: Mutex<Bodies>,
    tags: Mutex<HashMap<(Name, Tag), (Digest, Instant)>>,
    tag_ttl: Duration,
}

impl ManifestCache {
    /// Caches holding up to `body_bytes` of bodies and tags for `tag_ttl` (zero: tags are always read).
    pub fn new(body_bytes: usize, tag_ttl: Duration) -> ManifestCache {
        ManifestCache {
            bodies: Mutex::new(Bodies {
                lru: LruCache::unbounded(),
                bytes: 0,
                cap: body_bytes,
            }),
            tags: Mutex::new(HashMap::new()),
            tag_ttl: tag_ttl.min(MAX_TAG_TTL),
        }
    }

    /// How long a tag is trusted without reading it.
    pub fn tag_ttl(&self) -> Duration {
        self.tag_ttl
    }

    /// The body of `digest`, when cached.
    pub fn body(&self, digest: &Digest) -> Option<Arc<CachedBody>> {
        self.bodies
            .lock()
            .expect("manifest cache lock")
            .lru
            .get(digest)
            .cloned()
    }

    /// Keeps `body` under `digest` if it hashes to it and fits; evicts the least recently used bodies past the cap.
    pub fn put_body(&self, digest: &Digest, media_type: &str, body: &Bytes) {
        let size = body.len() + media_type.len();
        if body.len() > MAX_CACHED_BODY
            || super::digester::digest_bytes(digest.algorithm(), body) != *digest
        {
            return;
        }
        let mut b = self.bodies.lock().expect("manifest cache lock");
        if size > b.cap {
            return;
        }
        let entry = Arc::new(CachedBody {
            media_type: media_type.to_string(),
            body: body.clone(),
        });
        if let Some(old) = b.lru.put(digest.clone(), entry) {
            b.bytes -= old.body.len() + old.media_type.len();
        }
        b.bytes += size;
        while b.bytes > b.cap {
            let Some((_, old)) = b.lru.pop_lru() else {
                break;
            };
            b.bytes -= old.body.len() + old.media_type.len();
        }
    }

    /// The digest `repo:tag` had when read less than a TTL ago.
    pub fn tag(&self, repo: &Name, tag: &Tag) -> Option<Digest> {
        if self.tag_ttl.is_zero() {
            return None;
        }
        let key = (repo.clone(), tag.clone());
        let mut tags = self.tags.lock().expect("manifest cache lock");
        match tags.get(&key) {
            Some((d, at)) if at.elapsed() < self.tag_ttl => Some(d.clone()),
            Some(_) => {
                tags.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `repo:tag` points at `digest`, read or written now.
    pub fn put_tag(&self, repo: &Name, tag: &Tag, digest: &Digest) {
        if self.tag_ttl.is_zero() {
            return;
        }
        let mut tags = self.tags.lock().expect("manifest cache lock");
        if tags.len() >= MAX_TAG_ENTRIES {
            tags.clear();
        }
        tags.insert(
            (repo.clone(), tag.clone()),
            (digest.clone(), Instant::now()),
        );
    }

    /// Forgets `repo:tag` (deleted here).
    pub fn forget_tag(&self, repo: &Name, tag: &Tag) {
        self.tags
            .lock()
            .expect("manifest cache lock")
            .remove(&(repo.clone(), tag.clone()));
    }

    /// Forgets the manifest `digest` of `repo` (deleted here): its body and every tag of `repo` pointing at it.
    pub fn forget_manifest(&self, repo: &Name, digest: &Digest) {
        self.tags
            .lock()
            .expect("manifest cache lock")
            .retain(|(r, _), (d, _)| !(r == repo && d == digest));
        let mut b = self.bodies.lock().expect("manifest cache lock");
        if let Some(old) = b.lru.pop(digest) {
            b.bytes -= old.body.len() + old.media_type.len();
        }
    }

    /// The bytes of bodies held.
    pub fn body_bytes(&self) -> usize {
        self.bodies.lock().expect("manifest cache lock").bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Algorithm;
    use crate::storage::digester::digest_bytes;

    fn body(n: usize, seed: u8) -> (Digest, Bytes) {
        let b = Bytes::from(vec![seed; n]);
        (digest_bytes(Algorithm::Sha256, &b), b)
    }

    #[test]
    fn bodies_are_bounded_by_bytes_least_recently_used_first() {
        let c = ManifestCache::new(3000, Duration::ZERO);
        let (d1, b1) = body(1000, 1);
        let (d2, b2) = body(1000, 2);
        let (d3, b3) = body(1000, 3);
        c.put_body(&d1, "t", &b1);
        c.put_body(&d2, "t", &b2);
        assert!(c.body(&d1).is_some(), "d1 is now the most recent");
        c.put_body(&d3, "t", &b3);
        assert!(c.body(&d2).is_none(), "d2 was the least recently used");
        assert!(c.body(&d1).is_some() && c.body(&d3).is_some());
        assert!(c.body_bytes() <= 3000);
        // The same body again does not count twice.
        c.put_body(&d3, "t", &b3);
        assert_eq!(c.body_bytes(), 2002);
    }

    #[test]
    fn a_body_that_does_not_hash_to_its_digest_or_is_too_big_is_not_kept() {
        let c = ManifestCache::new(DEFAULT_BODY_BYTES, Duration::ZERO);
        let (d1, _) = body(10, 1);
        let (_, other) = body(10, 2);
        c.put_body(&d1, "t", &other);
        assert!(c.body(&d1).is_none());
        let (big_d, big) = body(MAX_CACHED_BODY + 1, 7);
        c.put_body(&big_d, "t", &big);
        assert!(c.body(&big_d).is_none());
        let tiny = ManifestCache::new(5, Duration::ZERO);
        let (d, b) = body(10, 3);
        tiny.put_body(&d, "t", &b);
        assert_eq!((tiny.body(&d), tiny.body_bytes()), (None, 0));
    }

    #[test]
    fn tags_expire_after_the_ttl_and_a_zero_ttl_keeps_none() {
        let repo = Name::parse("team/app").unwrap();
        let tag = Tag::parse("v1").unwrap();
        let (d, _) = body(3, 1);
        let off = ManifestCache::new(0, Duration::ZERO);
        off.put_tag(&repo, &tag, &d);
        assert_eq!(off.tag(&repo, &tag), None);
        let on = ManifestCache::new(0, Duration::from_millis(50));
        on.put_tag(&repo, &tag, &d);
        assert_eq!(on.tag(&repo, &tag), Some(d.clone()));
        assert_eq!(on.tag(&Name::parse("team/other").unwrap(), &tag), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(on.tag(&repo, &tag), None, "expired after the TTL");
        assert_eq!(
            ManifestCache::new(0, Duration::from_secs(3600)).tag_ttl(),
            MAX_TAG_TTL
        );
    }

    #[test]
    fn forgetting_a_manifest_drops_its_body_and_its_tags_in_that_repository_only() {
        let c = ManifestCache::new(DEFAULT_BODY_BYTES, Duration::from_secs(30));
        let (a, b) = (Name::parse("a").unwrap(), Name::parse("b").unwrap());
        let (t1, t2) = (Tag::parse("t1").unwrap(), Tag::parse("t2").unwrap());
        let (d, bytes) = body(20, 4);
        let (other, _) = body(20, 5);
        c.put_body(&d, "t", &bytes);
        c.put_tag(&a, &t1, &d);
        c.put_tag(&a, &t2, &other);
        c.put_tag(&b, &t1, &d);
        c.forget_manifest(&a, &d);
        assert_eq!(c.tag(&a, &t1), None);
        assert_eq!(c.tag(&a, &t2), Some(other));
        assert_eq!(c.tag(&b, &t1), Some(d.clone()));
        assert!(c.body(&d).is_none());
        assert_eq!(c.body_bytes(), 0);
        c.forget_tag(&b, &t1);
        assert_eq!(c.tag(&b, &t1), None);
    }
}
