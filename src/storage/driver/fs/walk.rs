//! Walking a directory tree: a blocking job reads directories until it has found a batch of files (or read a
//! batch of directories), and the files are handed out one by one. A registry tree is mostly small
//! directories (one per tag, revision and layer link), so one job per directory spent more on hand-offs to
//! the blocking pool than on the reads.

use super::super::{check_key, DriverError, Walk, WalkEntry};
use super::{blocking, modified};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

/// A directory still to be read by a walk: its local path and its key.
type PendingDir = (PathBuf, String);

/// Files one blocking job collects before it hands them over.
const BATCH_FILES: usize = 512;
/// Directories one blocking job reads at most.
const BATCH_DIRS: usize = 256;

/// A depth-first walk of a directory tree, a batch of directory reads per blocking job.
pub(super) struct FsWalk {
    /// Directories still to read.
    dirs: Vec<PendingDir>,
    /// Files found and not yet handed out.
    found: VecDeque<WalkEntry>,
}

/// A symbolic link met by a walk: an error naming it (see [`super::SYMLINK_REFUSED`]), so a collector or a
/// repair stops instead of missing what is behind it.
fn symlink_error(key: &str) -> io::Error {
    io::Error::other(format!("{key}: {}", super::SYMLINK_REFUSED))
}

/// Reads one directory: the files in it and the subdirectories to read next; a symbolic link is an error. A directory that is gone, or a file given as the prefix, is handled here too.
fn read_one_dir(dir: &Path, key: &str) -> io::Result<(Vec<WalkEntry>, Vec<PendingDir>)> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
            return Ok((files, dirs));
        }
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Err(symlink_error(key));
    }
    if !meta.is_dir() {
        if let Some(m) = std::fs::metadata(dir).ok().filter(|m| m.is_file()) {
            files.push(WalkEntry {
                key: key.to_string(),
                size: m.len(),
                modified: modified(&m),
            });
        }
        return Ok((files, dirs));
    }
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let Ok(name) = e.file_name().into_string() else {
            continue; // Not UTF-8: nothing the registry could have written.
        };
        let child = format!("{key}/{name}");
        if check_key(&child).is_err() {
            continue;
        }
        let Ok(t) = e.file_type() else { continue };
        if t.is_symlink() {
            return Err(symlink_error(&child));
        }
        if t.is_dir() {
            dirs.push((e.path(), child));
        } else if let Some(m) = std::fs::metadata(e.path()).ok().filter(|m| m.is_file()) {
            files.push(WalkEntry {
                key: child,
                size: m.len(),
                modified: modified(&m),
            });
        }
    }
    Ok((files, dirs))
}

impl FsWalk {
    /// A walk of the tree at local path `dir`, whose key is `key`.
    pub(super) fn new(dir: PathBuf, key: &str) -> FsWalk {
        FsWalk {
            dirs: vec![(dir, key.to_string())],
            found: VecDeque::new(),
        }
    }
}

#[async_trait]
impl Walk for FsWalk {
    async fn next(&mut self) -> Result<Option<WalkEntry>, DriverError> {
        loop {
            if let Some(e) = self.found.pop_front() {
                return Ok(Some(e));
            }
            let Some((_, key)) = self.dirs.last() else {
                return Ok(None);
            };
            let key = key.clone();
            let mut dirs = std::mem::take(&mut self.dirs);
            let (files, dirs) = blocking("walk", &key, move || {
                let mut files = Vec::new();
                for _ in 0..BATCH_DIRS {
                    let Some((dir, key)) = dirs.pop() else { break };
                    // The job is named after the first directory; an error names its own.
                    let (found, more) = read_one_dir(&dir, &key)
                        .map_err(|e| io::Error::new(e.kind(), format!("{key}: {e}")))?;
                    files.extend(found);
                    dirs.extend(more);
                    if files.len() >= BATCH_FILES {
                        break;
                    }
                }
                Ok((files, dirs))
            })
            .await?;
            self.found.extend(files);
            self.dirs = dirs;
        }
    }
}
