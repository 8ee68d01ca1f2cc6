//! The mark phase: which manifests are kept and which blobs they reference.
//!
//! As distribution's `garbage-collect`, every manifest revision of every repository is kept and marks itself,
//! its config and layers (schema 1's `fsLayers` too) and, for an index, its children. With `delete_untagged`,
//! a manifest is kept only when it is reachable: from a tag, through an index's children, and from a kept
//! manifest to the manifests whose `subject` it is (signatures, SBOMs) — distribution deletes a tagged
//! index's children here, gatehouse keeps them. Revisions younger than the grace are kept whatever reaches
//! them (their tag may be on its way). A retention rule's `untagged_older_than` does the same for the
//! repositories it matches, keeping untagged manifests pushed more recently than its age.

use super::layout::{Inventory, Link};
use super::{GcError, Options};
use crate::names::{Digest, Name};
use crate::storage::driver::Driver;
use crate::storage::paths;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

/// The largest stored manifest read (other tools may have written larger ones than gatehouse accepts).
const MAX_STORED_MANIFEST: u64 = 32 << 20;

/// How many manifests are read at once.
const READ_AHEAD: usize = 16;

/// What one manifest references.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refs {
    /// Config and layers (or schema 1's `fsLayers`, or an artifact's `blobs`).
    pub blobs: Vec<Digest>,
    /// Those of `blobs` that name external `urls` (foreign layers: not required to be stored).
    pub foreign: Vec<Digest>,
    /// An index's child manifests.
    pub children: Vec<Digest>,
    /// The manifest this one refers to (OCI 1.1 `subject`).
    pub subject: Option<Digest>,
}

/// The references in a manifest's bytes; an error (the run stops, nothing is deleted) when the bytes are not a
/// JSON object or a descriptor's digest cannot be read: what cannot be read cannot be proven unreferenced.
pub fn refs_of(key: &str, body: &[u8]) -> Result<Refs, GcError> {
    let corrupt = |reason: String| GcError::Corrupt {
        path: key.to_string(),
        reason,
    };
    let v: Value =
        serde_json::from_slice(body).map_err(|e| corrupt(format!("manifest is not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| corrupt("manifest is not a JSON object".into()))?;
    let digest = |d: &Value, field: &str| -> Result<Digest, GcError> {
        let s = d
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt(format!("a descriptor without a {field}")))?;
        Digest::parse(s).map_err(|_| corrupt(format!("unreadable digest {s:?}")))
    };
    let list = |name: &str, field: &str| -> Result<Vec<Digest>, GcError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a.iter().map(|d| digest(d, field)).collect(),
            Some(_) => Err(corrupt(format!("{name} is not an array"))),
        }
    };
    let one = |name: &str| -> Result<Option<Digest>, GcError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(d) => digest(d, "digest").map(Some),
        }
    };
    let foreign = match obj.get("layers") {
        Some(Value::Array(a)) => a
            .iter()
            .filter(|l| {
                l.get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty())
            })
            .map(|l| digest(l, "digest"))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let mut blobs: Vec<Digest> = one("config")?.into_iter().collect();
    blobs.extend(list("layers", "digest")?);
    blobs.extend(list("fsLayers", "blobSum")?);
    blobs.extend(list("blobs", "digest")?);
    Ok(Refs {
        blobs,
        foreign,
        children: list("manifests", "digest")?,
        subject: one("subject")?,
    })
}

/// What the mark phase decided.
#[derive(Debug, Default)]
pub struct Marks {
    /// Blobs that stay: kept manifests and everything they reference.
    pub blobs: HashSet<Digest>,
    /// Manifest revisions no tag reaches (only with `delete_untagged`), with the repository.
    pub unreachable: Vec<(Name, Link)>,
    /// Revisions seen.
    pub manifests: u64,
    /// Revisions whose manifest blob is missing (skipped, as distribution does; `fsck` reports them).
    pub missing: Vec<(Name, Digest)>,
    /// What every manifest read references (`None`: its blob is missing).
    pub refs: HashMap<Digest, Option<Refs>>,
}

/// Reads every distinct manifest of the inventory once, [`READ_AHEAD`] at a time; `None` for a missing blob.
async fn read_all(
    driver: &Arc<dyn Driver>,
    inv: &Inventory,
) -> Result<HashMap<Digest, Option<Refs>>, GcError> {
    let mut wanted: Vec<Digest> = inv
        .values()
        .flat_map(|r| r.revisions.iter().map(|l| l.digest.clone()))
        .collect();
    wanted.sort();
    wanted.dedup();
    let mut out = HashMap::with_capacity(wanted.len());
    let mut set = tokio::task::JoinSet::new();
    let mut todo = wanted.into_iter();
    loop {
        while set.len() < READ_AHEAD {
            let Some(d) = todo.next() else { break };
            let driver = driver.clone();
            set.spawn(async move {
                let key = paths::blob_data(&d);
                let r = match driver.read(&key, MAX_STORED_MANIFEST).await {
                    Ok(body) => refs_of(&key, &body).map(Some),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(GcError::from(e)),
                };
                (d, r)
            });
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (d, r) = joined.map_err(|e| GcError::Task(e.to_string()))?;
        out.insert(d, r?);
    }
    Ok(out)
}

/// What a tag's current link says.
enum TagLink {
    /// The manifest it points at.
    Points(Digest),
    /// The tag is gone (deleted since the inventory).
    Gone,
    /// It holds no digest (empty, garbage): what the tag meant is unknown.
    Corrupt,
}

/// Reads a tag's current link.
async fn tag_target(driver: &dyn Driver, key: &str) -> Result<TagLink, GcError> {
    match driver.read(key, 1024).await {
        Ok(b) => Ok(std::str::from_utf8(&b)
            .ok()
            .and_then(|t| Digest::parse(t.trim()).ok())
            .map_or(TagLink::Corrupt, TagLink::Points)),
        Err(e) if e.is_not_found() => Ok(TagLink::Gone),
        Err(e) => Err(e.into()),
    }
}

/// When a collector first saw each manifest untagged, by repository and digest (online runs remember it
/// from run to run, so a manifest untagged for less than the grace is never deleted).
pub type Untagged = HashMap<(Name, Digest), SystemTime>;

/// Every manifest of one repository that `roots` reach through index children and referrers.
fn closure(
    roots: Vec<Digest>,
    linked: &HashSet<&Digest>,
    manifests: &HashMap<Digest, Option<Refs>>,
    referrers: &HashMap<&Digest, Vec<&Digest>>,
) -> HashSet<Digest> {
    let mut queue = roots;
    let mut kept = HashSet::new();
    while let Some(d) = queue.pop() {
        if !linked.contains(&d) || !kept.insert(d.clone()) {
            continue;
        }
        if let Some(Some(refs)) = manifests.get(&d) {
            queue.extend(refs.children.iter().cloned());
        }
        if let Some(rs) = referrers.get(&d) {
            queue.extend(rs.iter().map(|r| (*r).clone()));
        }
    }
    kept
}

/// Marks what stays.
pub async fn mark(
    driver: &Arc<dyn Driver>,
    inv: &Inventory,
    opts: &Options,
) -> Result<Marks, GcError> {
    mark_remembering(driver, inv, opts, None).await
}

/// Marks what stays; with `untagged` (online runs), an untagged manifest is kept until the grace has passed
/// since a run first saw it untagged, and the memory is brought up to date.
pub async fn mark_remembering(
    driver: &Arc<dyn Driver>,
    inv: &Inventory,
    opts: &Options,
    mut untagged: Option<&mut Untagged>,
) -> Result<Marks, GcError> {
    let manifests = read_all(driver, inv).await?;
    let mut marks = Marks::default();
    let mut seen_untagged = HashSet::new();
    for (name, repo) in inv {
        marks.manifests += repo.revisions.len() as u64;
        let linked: HashSet<&Digest> = repo.revisions.iter().map(|l| &l.digest).collect();
        let kept: HashSet<Digest> = if let Some(age) = opts.untagged_after(name) {
            let mut referrers: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
            for l in &repo.revisions {
                if let Some(Some(Refs {
                    subject: Some(s), ..
                })) = manifests.get(&l.digest)
                {
                    referrers.entry(s).or_default().push(&l.digest);
                }
            }
            let mut roots: Vec<Digest> = Vec::new();
            let mut corrupt = None;
            for t in &repo.tags {
                match tag_target(driver.as_ref(), &t.key).await? {
                    TagLink::Points(d) => roots.push(d),
                    TagLink::Gone => {}
                    TagLink::Corrupt => corrupt = corrupt.or(Some(&t.key)),
                }
            }
            // Fail closed (found in review: an emptied tag link made its tagged image look untagged, and it was
            // deleted without a word): a tag that says nothing readable may reach any manifest.
            if let Some(key) = corrupt {
                tracing::warn!(
                    repository = %name,
                    link = %key,
                    "gc: a tag link holds no digest, so no untagged manifest of this repository is deleted \
                     (`gatehouse fsck` reports the link; rewrite or delete the tag)"
                );
                roots.extend(linked.iter().map(|d| (*d).clone()));
            }
            roots.extend(
                repo.revisions
                    .iter()
                    .filter(|l| opts.is_younger_than(l.modified, age))
                    .map(|l| l.digest.clone()),
            );
            let reached = closure(roots, &linked, &manifests, &referrers);
            match untagged.as_deref_mut() {
                None => reached,
                Some(memory) => {
                    let mut roots: Vec<Digest> = reached.iter().cloned().collect();
                    for l in repo
                        .revisions
                        .iter()
                        .filter(|l| !reached.contains(&l.digest))
                    {
                        let key = (name.clone(), l.digest.clone());
                        let first = *memory.entry(key.clone()).or_insert(opts.now);
                        seen_untagged.insert(key);
                        if opts.is_young(first) {
                            roots.push(l.digest.clone());
                        }
                    }
                    closure(roots, &linked, &manifests, &referrers)
                }
            }
        } else {
            linked.iter().map(|d| (*d).clone()).collect()
        };
        for l in &repo.revisions {
            if !kept.contains(&l.digest) {
                marks.unreachable.push((name.clone(), l.clone()));
                continue;
            }
            match manifests.get(&l.digest) {
                Some(Some(refs)) => {
                    marks.blobs.insert(l.digest.clone());
                    marks.blobs.extend(refs.blobs.iter().cloned());
                    marks.blobs.extend(refs.children.iter().cloned());
                }
                _ => marks.missing.push((name.clone(), l.digest.clone())),
            }
        }
    }
    if let Some(memory) = untagged {
        memory.retain(|k, _| seen_untagged.contains(k));
    }
    marks.refs = manifests;
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn d(s: &str) -> Digest {
        Digest::parse(s).unwrap()
    }

    #[test]
    fn references_of_every_manifest_shape() {
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{A}"}},"layers":[{{"digest":"{B}"}},{{"digest":"{C}","urls":["http://x"]}}],"subject":{{"digest":"{C}"}}}}"#
        );
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{A}"}}]}}"#);
        let schema1 = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{B}"}}]}}"#);
        for (body, want) in [
            (
                image.as_str(),
                Refs {
                    blobs: vec![d(A), d(B), d(C)],
                    foreign: vec![d(C)],
                    children: vec![],
                    subject: Some(d(C)),
                },
            ),
            (
                index.as_str(),
                Refs {
                    children: vec![d(A)],
                    ..Refs::default()
                },
            ),
            (
                schema1.as_str(),
                Refs {
                    blobs: vec![d(B)],
                    ..Refs::default()
                },
            ),
            ("{}", Refs::default()),
        ] {
            assert_eq!(refs_of("k", body.as_bytes()).unwrap(), want, "{body}");
        }
    }

    #[test]
    fn an_unreadable_manifest_stops_the_run_naming_its_key() {
        for hostile in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"layers\":{}}",
            b"{\"layers\":[{\"size\":1}]}",
            b"{\"config\":{\"digest\":\"sha256:short\"}}",
            b"{\"manifests\":[{\"digest\":\"md5:00\"}]}",
            b"{\"subject\":{\"digest\":7}}",
        ] {
            let e = refs_of("docker/registry/v2/blobs/x/data", hostile).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("docker/registry/v2/blobs/x/data: corrupt"),
                "{e}"
            );
        }
    }
}
