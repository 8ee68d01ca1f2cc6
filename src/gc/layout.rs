//! One walk of `repositories/` classified into what the collector needs: every repository's manifest
//! revisions, tags (current links and history entries), layer links and upload sessions, each with its key and
//! modification time. One listing of the tree (in parallel subtrees, [`super::scan`]), so it costs the same on
//! object storage as on a disk.

use super::GcError;
use crate::names::{Digest, Name, Tag};
use crate::storage::driver::{Assumed, Driver};
use crate::storage::paths;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// A link found in a repository: its key, the digest its path names, and when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The link's storage key (`.../link`).
    pub key: String,
    /// The digest named by the link's directory (`<alg>/<hex>`).
    pub digest: Digest,
    /// When the link was written.
    pub modified: SystemTime,
}

/// A tag's current link: the tag, its key, and when it was written (distribution's push time of the tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLink {
    /// The tag.
    pub tag: Tag,
    /// `_manifests/tags/<tag>/current/link`.
    pub key: String,
    /// When the link was last written: the tag's last push.
    pub modified: SystemTime,
}

/// What one repository holds.
#[derive(Debug, Default, Clone)]
pub struct Repo {
    /// `_manifests/revisions/<alg>/<hex>/link`.
    pub revisions: Vec<Link>,
    /// `_manifests/tags/<tag>/current/link` objects (their content is read by the marker).
    pub tags: Vec<TagLink>,
    /// `_manifests/tags/<tag>/index/<alg>/<hex>/link`: the tags' history entries.
    pub tag_index: Vec<(Tag, Link)>,
    /// `_layers/<alg>/<hex>/link`.
    pub layers: Vec<Link>,
    /// Upload sessions by id (`_uploads/<id>`).
    pub uploads: BTreeMap<String, Upload>,
    /// Objects in the repository that fit no part of the layout.
    pub strays: Vec<String>,
}

/// One upload session directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    /// The newest modification time of its objects.
    pub modified: SystemTime,
    /// Whether it has its `startedat` object (what makes a session known).
    pub started: bool,
    /// The bytes of its objects.
    pub bytes: u64,
}

/// Every repository, by name.
pub type Inventory = BTreeMap<Name, Repo>;

/// The digest named by `<alg>/<hex>` path components.
fn digest_of(alg: &str, hex: &str) -> Option<Digest> {
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// Splits a key under `repositories/` into the repository name and the components from its first `_`
/// component on (distribution's rule: a component starting with `_` ends the name).
fn split_repo(rel: &str) -> Option<(Name, Vec<&str>)> {
    let parts: Vec<&str> = rel.split('/').collect();
    let at = parts.iter().position(|p| p.starts_with('_'))?;
    let name = Name::parse(&parts[..at].join("/")).ok()?;
    Some((name, parts[at..].to_vec()))
}

/// The one object a directory of distribution's layout holds, by the directory's key: a link directory's
/// `link` (`_layers/<alg>/<hex>`, `_manifests/revisions/<alg>/<hex>`, `_manifests/tags/<tag>/current`,
/// `_manifests/tags/<tag>/index/<alg>/<hex>`), a blob directory's `data` (`blobs/<alg>/<xx>/<hex>`). The
/// walks of a run that compares no time take these directories to hold that object without reading them: a
/// link's digest is in its path, and a link or blob that is missing is found missing where it is read.
pub fn leaf_object(key: &str) -> Option<Assumed> {
    let v2 = paths::blobs_root();
    if let Some(rel) = key.strip_prefix(&v2).and_then(|r| r.strip_prefix('/')) {
        return match rel.split('/').collect::<Vec<_>>().as_slice() {
            [_, xx, hex] if xx.len() == 2 && hex.starts_with(xx) => Some(Assumed::Holds("data")),
            _ => None,
        };
    }
    match repo_parts(key)?.as_slice() {
        ["_layers", _, _]
        | ["_manifests", "revisions", _, _]
        | ["_manifests", "tags", _, "current"]
        | ["_manifests", "tags", _, "index", _, _] => Some(Assumed::Holds("link")),
        _ => None,
    }
}

/// [`leaf_object`], and a repository's `_manifests/tags` is not read at all: for a run that reads no tag
/// (no `delete_untagged`, no retention rule: every revision is kept, as distribution's `garbage-collect`
/// keeps them). Tags are most of a repository's directories (three per tag).
pub fn leaf_object_skipping_tags(key: &str) -> Option<Assumed> {
    match repo_parts(key).as_deref() {
        Some(["_manifests", "tags"]) => Some(Assumed::Skipped),
        _ => leaf_object(key),
    }
}

/// The components of a key under `repositories/` from the repository name's end on.
fn repo_parts(key: &str) -> Option<Vec<&str>> {
    let rel = key
        .strip_prefix(&paths::repositories_root())?
        .strip_prefix('/')?;
    Some(split_repo(rel)?.1)
}

/// Walks `repositories/` once; objects that are under no repository name are returned as strays too.
pub async fn inventory(driver: &dyn Driver) -> Result<(Inventory, Vec<String>), GcError> {
    inventory_with(driver, Needs::Times).await
}

/// What an [`inventory_with`] must find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Everything, with modification times and sizes.
    Times,
    /// Keys only (times may be the epoch, sizes 0): a walk that reads no link directory ([`leaf_object`]),
    /// for a run that compares no time (no grace, no retention rule).
    Keys,
    /// Keys only, and no tags (they may be missing): for such a run that reads no tag either (no
    /// `delete_untagged`), [`leaf_object_skipping_tags`].
    KeysWithoutTags,
}

/// [`inventory`], finding what `needs` says.
pub async fn inventory_with(
    driver: &dyn Driver,
    needs: Needs,
) -> Result<(Inventory, Vec<String>), GcError> {
    let root = paths::repositories_root();
    let mut repos = Inventory::new();
    let mut strays = Vec::new();
    let found = match needs {
        Needs::Times => super::scan::walk_all(driver, &root).await?,
        Needs::Keys => super::scan::walk_all_assuming(driver, &root, leaf_object).await?,
        Needs::KeysWithoutTags => {
            super::scan::walk_all_assuming(driver, &root, leaf_object_skipping_tags).await?
        }
    };
    for e in found {
        let Some(rel) = e.key.strip_prefix(&root).and_then(|r| r.strip_prefix('/')) else {
            strays.push(e.key);
            continue;
        };
        let Some((name, parts)) = split_repo(rel) else {
            strays.push(e.key);
            continue;
        };
        let repo = repos.entry(name).or_default();
        let link = |alg: &str, hex: &str| {
            digest_of(alg, hex).map(|digest| Link {
                key: e.key.clone(),
                digest,
                modified: e.modified,
            })
        };
        match parts.as_slice() {
            ["_manifests", "revisions", alg, hex, "link"] => match link(alg, hex) {
                Some(l) => repo.revisions.push(l),
                None => repo.strays.push(e.key.clone()),
            },
            ["_manifests", "tags", tag, "current", "link"] => match Tag::parse(tag) {
                Ok(tag) => repo.tags.push(TagLink {
                    tag,
                    key: e.key.clone(),
                    modified: e.modified,
                }),
                Err(_) => repo.strays.push(e.key.clone()),
            },
            ["_manifests", "tags", tag, "index", alg, hex, "link"] => {
                match (Tag::parse(tag), link(alg, hex)) {
                    (Ok(t), Some(l)) => repo.tag_index.push((t, l)),
                    _ => repo.strays.push(e.key.clone()),
                }
            }
            ["_layers", alg, hex, "link"] => match link(alg, hex) {
                Some(l) => repo.layers.push(l),
                None => repo.strays.push(e.key.clone()),
            },
            ["_uploads", id, rest @ ..] => {
                let u = repo.uploads.entry(id.to_string()).or_insert(Upload {
                    modified: SystemTime::UNIX_EPOCH,
                    started: false,
                    bytes: 0,
                });
                u.bytes += e.size;
                u.modified = u.modified.max(e.modified);
                u.started |= rest == ["startedat"];
            }
            _ => repo.strays.push(e.key.clone()),
        }
    }
    Ok((repos, strays))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_objects_are_the_links_and_blob_data_of_distributions_layout() {
        let r = paths::repositories_root();
        let b = paths::blobs_root();
        let hex = "ab".to_string() + &"0".repeat(62);
        for (key, want) in [
            (format!("{r}/team/app/_layers/sha256/{hex}"), Some("link")),
            (
                format!("{r}/a/_manifests/revisions/sha256/{hex}"),
                Some("link"),
            ),
            (format!("{r}/a/_manifests/tags/v1/current"), Some("link")),
            (
                format!("{r}/a/_manifests/tags/current/current"),
                Some("link"),
            ),
            (format!("{r}/a/_manifests/tags/current"), None),
            (
                format!("{r}/a/_manifests/tags/_x/index/sha256/{hex}"),
                Some("link"),
            ),
            (format!("{r}/a/_manifests/tags/v1/index/sha256"), None),
            (format!("{r}/a/_manifests/revisions/sha256"), None),
            (format!("{r}/a/_uploads/{hex}"), None),
            (format!("{r}/a/_uploads/id/hashstates/sha256"), None),
            (format!("{r}/UPPER/_layers/sha256/{hex}"), None),
            (format!("{r}/a/_layers"), None),
            (format!("{b}/sha256/ab/{hex}"), Some("data")),
            (format!("{b}/sha256/cd/{hex}"), None),
            (format!("{b}/sha256/ab"), None),
            (format!("{b}/sha256"), None),
        ] {
            assert_eq!(leaf_object(&key), want.map(Assumed::Holds), "{key}");
        }
        let r = paths::repositories_root();
        for (key, want) in [
            (format!("{r}/a/_manifests/tags"), Some(Assumed::Skipped)),
            (
                format!("{r}/team/app/_manifests/tags"),
                Some(Assumed::Skipped),
            ),
            (
                format!("{r}/a/_manifests/tags/v1/current"),
                Some(Assumed::Holds("link")),
            ),
            (format!("{r}/a/_manifests/revisions"), None),
            (format!("{r}/a/_manifests"), None),
            (format!("{r}/_manifests/tags"), None),
            (
                format!("{r}/a/b/_layers/sha256/{hex}"),
                Some(Assumed::Holds("link")),
            ),
        ] {
            assert_eq!(leaf_object_skipping_tags(&key), want, "{key}");
        }
    }

    #[test]
    fn repository_names_end_at_the_first_underscore_component() {
        for (rel, want) in [
            ("a/_layers/sha256/x/link", Some(("a", "_layers"))),
            (
                "team/app/_manifests/tags/v1/current/link",
                Some(("team/app", "_manifests")),
            ),
            ("team/app/_uploads/id/data", Some(("team/app", "_uploads"))),
            ("_layers/sha256/x/link", None),
            ("UPPER/_layers/x", None),
            ("no/underscore/at/all", None),
        ] {
            let got = split_repo(rel).map(|(n, p)| (n.to_string(), p[0].to_string()));
            assert_eq!(
                got,
                want.map(|(n, p)| (n.to_string(), p.to_string())),
                "{rel}"
            );
        }
    }
}
