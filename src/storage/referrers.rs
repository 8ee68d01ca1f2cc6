//! The referrers of a manifest (OCI 1.1): the repository's manifests whose `subject` names it.
//!
//! Found by walking `_manifests/revisions` and reading each manifest's subject. A manifest's content never changes
//! under its digest, so what was parsed is kept in a bounded cache keyed by digest and never invalidated.

use super::manifest;
use super::{paths, StorageError, Store};
use crate::names::{Digest, Name};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many parsed manifests the subject cache holds by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 65_536;

/// One entry of a referrers list: an OCI descriptor of the referring manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Referrer {
    /// The referring manifest's media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its digest.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its `artifactType`, else its config's media type.
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its annotations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What a manifest contributes to referrers: its subject and its descriptor.
type Parsed = Option<Arc<(Digest, Referrer)>>;

/// Parsed subjects by manifest digest; cleared whole when full (content-addressed, so never stale).
pub(crate) struct SubjectCache {
    map: Mutex<HashMap<Digest, Parsed>>,
    cap: usize,
}

impl SubjectCache {
    /// An empty cache of at most `cap` entries.
    pub(crate) fn new(cap: usize) -> SubjectCache {
        SubjectCache {
            map: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    fn get(&self, d: &Digest) -> Option<Parsed> {
        self.map.lock().expect("subject cache lock").get(d).cloned()
    }

    fn put(&self, d: Digest, p: Parsed) {
        let mut m = self.map.lock().expect("subject cache lock");
        if m.len() >= self.cap {
            m.clear();
        }
        m.insert(d, p);
    }
}

fn referrer_of(digest: &Digest, body: &[u8]) -> Parsed {
    let m = manifest::parse(body, None).ok()?;
    let subject = m.subject?;
    let artifact_type = m.artifact_type.or(m.config.map(|c| c.media_type));
    Some(Arc::new((
        subject.digest,
        Referrer {
            media_type: m.media_type,
            digest: digest.to_string(),
            size: body.len() as u64,
            artifact_type,
            annotations: m.annotations,
        },
    )))
}

impl Store {
    /// Every manifest digest with a revision link in `repo` (empty when the repository does not exist).
    pub async fn manifest_revisions(&self, repo: &Name) -> Result<Vec<Digest>, StorageError> {
        let root = paths::revisions_dir(repo);
        let mut out = Vec::new();
        let algs = match self.driver.list(&root).await {
            Ok(a) => a,
            Err(e) if e.is_not_found() => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for alg in algs.into_iter().filter(|e| e.is_dir) {
            let dir = format!("{root}/{}", alg.name);
            let entries = match self.driver.list(&dir).await {
                Ok(e) => e,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            for hex in entries.into_iter().filter(|e| e.is_dir) {
                let Ok(d) = Digest::parse(&format!("{}:{}", alg.name, hex.name)) else {
                    continue;
                };
                // A revision whose link was deleted leaves its directory behind: not a manifest any more.
                if self
                    .read_link(&paths::revision_link(repo, &d))
                    .await?
                    .is_some()
                {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// The manifests of `repo` whose subject is `subject`, optionally only those of one artifact type.
    pub async fn referrers(
        &self,
        repo: &Name,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>, StorageError> {
        let mut out = Vec::new();
        for d in self.manifest_revisions(repo).await? {
            let parsed = match self.referrers.get(&d) {
                Some(p) => p,
                None => {
                    let body = match self
                        .driver
                        .read(&paths::blob_data(&d), manifest::MAX_MANIFEST_BYTES)
                        .await
                    {
                        Ok(b) => b,
                        // Missing or oversized data: not a manifest that can refer to anything.
                        Err(e) if e.is_not_found() => continue,
                        Err(super::driver::DriverError::TooLarge { .. }) => bytes::Bytes::new(),
                        Err(e) => return Err(e.into()),
                    };
                    let p = referrer_of(&d, &body);
                    self.referrers.put(d.clone(), p.clone());
                    p
                }
            };
            if let Some(p) = parsed {
                let (s, r) = &*p;
                if s == subject
                    && artifact_type.is_none_or(|t| r.artifact_type.as_deref() == Some(t))
                {
                    out.push(r.clone());
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}
