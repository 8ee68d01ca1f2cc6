//! The catalog: every repository under `repositories/`, found as distribution finds them.
//!
//! A directory is a repository when it has a `_layers` or `_manifests` child; directories whose names start with
//! `_` (or `.`) are not descended into, every other child is, so names nest (`team` and `team/app` may both be
//! repositories). Directory names that are not valid repository names are skipped.

use super::{paths, StorageError, Store};
use crate::names::Name;

/// How deep the walk goes at most (a name has at most 255 characters, so at most 128 components).
const MAX_DEPTH: usize = 128;

impl Store {
    /// Every repository name, in lexical (byte) order.
    pub async fn catalog(&self) -> Result<Vec<String>, StorageError> {
        let root = paths::repositories_root();
        let mut found = Vec::new();
        // Depth-first over (storage path, repository name so far).
        let mut stack = vec![(root.clone(), String::new(), 0usize)];
        while let Some((dir, name, depth)) = stack.pop() {
            let entries = match self.driver.list(&dir).await {
                Ok(e) => e,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let is_repo = entries
                .iter()
                .any(|e| e.is_dir && (e.name == "_layers" || e.name == "_manifests"));
            if is_repo && Name::parse(&name).is_ok() {
                found.push(name.clone());
            }
            if depth >= MAX_DEPTH {
                continue;
            }
            for e in entries {
                if !e.is_dir || e.name.starts_with('_') || e.name.starts_with('.') {
                    continue;
                }
                let child = if name.is_empty() {
                    e.name.clone()
                } else {
                    format!("{name}/{}", e.name)
                };
                if Name::parse(&child).is_ok() {
                    stack.push((format!("{dir}/{}", e.name), child, depth + 1));
                }
            }
        }
        found.sort();
        Ok(found)
    }
}
