//! Tag listing and reverse lookup over `_manifests/tags/`.

use super::{paths, StorageError, Store};
use crate::names::{Digest, Name, Tag};

impl Store {
    /// Every tag of `repo`, sorted; [`StorageError::NameUnknown`] when the repository does not exist.
    pub async fn list_tags(&self, repo: &Name) -> Result<Vec<String>, StorageError> {
        match self.driver.list(&paths::tags_dir(repo)).await {
            Ok(entries) => Ok(entries
                .into_iter()
                .filter(|e| e.is_dir && Tag::parse(&e.name).is_ok())
                .map(|e| e.name)
                .collect()),
            Err(e) if e.is_not_found() => {
                if self.repo_exists(repo).await? {
                    Ok(Vec::new())
                } else {
                    Err(StorageError::NameUnknown { repo: repo.clone() })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The tags of `repo` whose current link points at `digest`.
    pub async fn tags_pointing_to(
        &self,
        repo: &Name,
        digest: &Digest,
    ) -> Result<Vec<Tag>, StorageError> {
        let names = match self.list_tags(repo).await {
            Ok(n) => n,
            Err(StorageError::NameUnknown { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for name in names {
            let Ok(tag) = Tag::parse(&name) else { continue };
            // A tag whose link is unreadable is skipped rather than failing the whole delete.
            if let Ok(Some(d)) = self.resolve_tag(repo, &tag).await {
                if &d == digest {
                    out.push(tag);
                }
            }
        }
        Ok(out)
    }
}
