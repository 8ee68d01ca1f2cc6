//! The catalog: the repositories under `repositories/`, found as distribution finds them, a page at a time.
//!
//! A directory is a repository when it has a `_layers` or `_manifests` child; directories whose names start with
//! `_` (or `.`) are not descended into, every other child is, so names nest (`team` and `team/app` may both be
//! repositories). Directory names that are not valid repository names are skipped.
//!
//! Names come out in byte order, which is not the order of a depth-first walk (`a-b` < `a/b`), so the walk is a
//! merge: a heap of directories not yet listed (each the smallest name of its subtree) and of listings not yet
//! read to their end (each with a lower bound of the names still to come), the smallest taken first. A page
//! after `last` lists only the directories on the way to `last` and those after it
//! ([`crate::storage::driver::Driver::list_dirs_after`], S3's `StartAfter`), and stops once it has what it
//! needs: nothing is kept between requests, so any instance answers any page.

use super::driver::DirPage;
use super::{paths, StorageError, Store};
use crate::names::Name;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How deep the walk goes at most (a name has at most 255 characters, so at most 128 components).
const MAX_DEPTH: usize = 128;
/// The longest listing start sent (a name component has at most 255 bytes).
const MAX_START: usize = 256;
/// The fewest and most directories one listing asks for.
const PAGE: (usize, usize) = (16, 1000);

/// What the walk still has to look at, smallest `key` first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    /// A directory's repository name, or a lower bound of the names a listing's next page holds.
    key: String,
    kind: Kind,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A directory not listed yet.
    Dir { depth: usize },
    /// The rest of the listing of the directory `dir`, from `after`.
    More {
        dir: String,
        after: String,
        depth: usize,
    },
}

/// `parent/child`, or `child` at the top.
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether the subtree of the directory `name` can hold a name after `last`: `name` itself, or `name/...`.
fn reaches_past(name: &str, last: &str) -> bool {
    let slash = format!("{name}/");
    last.is_empty() || slash.as_str() > last || last.starts_with(&slash)
}

/// Where the listing of `name`'s children starts for a page after `last`: at `last`'s next component when `last`
/// is inside `name`'s subtree (no child whose `child/` sorts before it can hold anything after `last`), else at
/// the start.
fn start_after(name: &str, last: &str) -> String {
    let rel = if name.is_empty() {
        Some(last)
    } else {
        last.strip_prefix(name).and_then(|r| r.strip_prefix('/'))
    };
    let first = rel.map(|r| r.split('/').next().unwrap_or_default());
    let mut first = first.unwrap_or_default();
    // A shorter start is a lower bound too; a hostile `last` does not make a listing request too long.
    while first.len() > MAX_START {
        let mut cut = MAX_START;
        while !first.is_char_boundary(cut) {
            cut -= 1;
        }
        first = &first[..cut];
    }
    first.to_string()
}

/// The smallest child name a listing that continues after `after` may still return: every child `c` with
/// `c/` > `after` is at least `after` cut before its first byte below `/` (`a` for `a-b`: `a/` > `a-b`).
fn lower_bound(after: &str) -> &str {
    let cut = after
        .bytes()
        .enumerate()
        .skip(1)
        .find(|&(_, b)| b < b'/')
        .map_or(after.len(), |(i, _)| i);
    &after[..cut]
}

impl Store {
    /// Every repository name, in byte order.
    pub async fn catalog(&self) -> Result<Vec<String>, StorageError> {
        self.catalog_page(None, None, &|_| true).await
    }

    /// The first `want` (all when `None`) repository names after `last` that `visible` accepts, in byte order.
    pub async fn catalog_page(
        &self,
        last: Option<&str>,
        want: Option<usize>,
        visible: &(dyn Fn(&Name) -> bool + Sync),
    ) -> Result<Vec<String>, StorageError> {
        let (last, want) = (last.unwrap_or(""), want.unwrap_or(usize::MAX));
        let mut found = Vec::new();
        if want == 0 {
            return Ok(found);
        }
        let page = want.saturating_add(1).clamp(PAGE.0, PAGE.1);
        let mut heap = BinaryHeap::new();
        heap.push(Reverse(Item {
            key: String::new(),
            kind: Kind::More {
                dir: String::new(),
                after: start_after("", last),
                depth: 0,
            },
        }));
        while let Some(Reverse(item)) = heap.pop() {
            match item.kind {
                Kind::Dir { depth } => {
                    let name = item.key;
                    let dir = self.repo_dir(&name);
                    let after = start_after(&name, last);
                    let listed = self.driver.list_dirs_after(&dir, &after, page).await?;
                    // `after` is empty whenever `name` is after `last`: the listing is from the start.
                    if name.as_str() > last && Name::parse(&name).is_ok_and(|n| visible(&n)) {
                        let marked = if listed.next.is_none() {
                            listed.names.iter().any(|n| is_marker(n))
                        } else {
                            let underscored = self.driver.list_dirs_after(&dir, "_", 3).await?;
                            underscored.names.iter().any(|n| is_marker(n))
                        };
                        if marked {
                            found.push(name.clone());
                            if found.len() >= want {
                                break;
                            }
                        }
                    }
                    push_children(&mut heap, &name, listed, depth, last);
                }
                Kind::More { dir, after, depth } => {
                    let listed = self
                        .driver
                        .list_dirs_after(&self.repo_dir(&dir), &after, page)
                        .await?;
                    push_children(&mut heap, &dir, listed, depth, last);
                }
            }
        }
        Ok(found)
    }

    /// The storage key of the directory of a repository name (`""`: `repositories/` itself).
    fn repo_dir(&self, name: &str) -> String {
        match name {
            "" => paths::repositories_root(),
            n => join(&paths::repositories_root(), n),
        }
    }
}

/// Whether a child directory marks its parent as a repository.
fn is_marker(name: &str) -> bool {
    name == "_layers" || name == "_manifests"
}

/// Queues the children of `parent` from one page of its listing, and the rest of the listing when there is more.
fn push_children(
    heap: &mut BinaryHeap<Reverse<Item>>,
    parent: &str,
    listed: DirPage,
    depth: usize,
    last: &str,
) {
    if depth >= MAX_DEPTH {
        return;
    }
    for c in listed.names {
        if c.starts_with('_') || c.starts_with('.') {
            continue;
        }
        let child = join(parent, &c);
        if Name::parse(&child).is_ok() && reaches_past(&child, last) {
            heap.push(Reverse(Item {
                key: child,
                kind: Kind::Dir { depth: depth + 1 },
            }));
        }
    }
    if let Some(after) = listed.next {
        heap.push(Reverse(Item {
            key: join(parent, lower_bound(&after)),
            kind: Kind::More {
                dir: parent.to_string(),
                after,
                depth,
            },
        }));
    }
}

#[cfg(test)]
mod tests;
