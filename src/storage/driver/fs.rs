//! The filesystem driver: distribution's `filesystem` storage driver layout on a local directory.
//!
//! Atomic writes go to a staging directory on the same filesystem (`<root>/docker/registry/.gatehouse-tmp`,
//! outside what distribution reads), are synced, then renamed into place and the parent directory synced. The
//! staging directory is emptied when the driver is opened, which is all the cleanup a killed process needs.
//!
//! Every blocking call is one short job on tokio's blocking pool; nothing waits there on a client. A ranged read
//! `pread`s [`READ_CHUNK`] bytes per job straight into the chunk it hands over, with one chunk read ahead while
//! the previous one is sent: a reader that stops reading leaves at most two chunks in memory and no thread busy.
//! A [`Writer`] appends to the file itself; its commit flushes and syncs what it wrote, and its cancel cuts the
//! file back to where the writer found it.

mod read;
mod remove;
mod walk;

pub use read::READ_CHUNK;

use super::{check_key, Assume, ByteStream, DirEntry, Driver, DriverError, Metadata, Walk, Writer};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;

/// Where atomic writes are staged, relative to the root.
const STAGING: &str = "docker/registry/.gatehouse-tmp";

/// A [`Driver`] over a local directory.
#[derive(Debug, Clone)]
pub struct FsDriver {
    root: PathBuf,
    staging: PathBuf,
}

fn io_err(op: &'static str, path: &str, source: io::Error) -> DriverError {
    if source.kind() == io::ErrorKind::NotFound {
        DriverError::NotFound {
            path: path.to_string(),
        }
    } else {
        DriverError::Io {
            op,
            path: path.to_string(),
            source,
        }
    }
}

async fn blocking<T: Send + 'static>(
    op: &'static str,
    path: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, DriverError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| io_err(op, path, e)),
        Err(join) => Err(io_err(op, path, io::Error::other(join.to_string()))),
    }
}

/// Syncs a directory so a rename or create inside it survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn temp_name() -> String {
    format!(
        "tmp-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

fn modified(m: &std::fs::Metadata) -> SystemTime {
    m.modified().unwrap_or(SystemTime::UNIX_EPOCH)
}

impl FsDriver {
    /// Opens a driver on `root`, creating it and emptying the staging directory of leftovers.
    pub async fn new(root: impl Into<PathBuf>) -> Result<FsDriver, DriverError> {
        let root = root.into();
        let staging = root.join(STAGING);
        let s = staging.clone();
        blocking("prepare staging", STAGING, move || {
            match std::fs::remove_dir_all(&s) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            std::fs::create_dir_all(&s)
        })
        .await?;
        Ok(FsDriver { root, staging })
    }

    /// A driver on an existing `root` that leaves the staging directory alone (for tools that run beside a
    /// server: `du`, `fsck`).
    pub fn open_existing(root: impl Into<PathBuf>) -> FsDriver {
        let root = root.into();
        FsDriver {
            staging: root.join(STAGING),
            root,
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a directory and its parents (a filesystem-only nicety: object storage has no directories).
    pub async fn create_dir(&self, path: &str) -> Result<(), DriverError> {
        let p = self.resolve(path)?;
        blocking("create directory", path, move || std::fs::create_dir_all(p)).await
    }

    /// Maps a storage key to a local path, refusing anything that could leave the root ([`check_key`]).
    fn resolve(&self, path: &str) -> Result<PathBuf, DriverError> {
        Ok(self.root.join(check_key(path)?))
    }
}

/// Why a symbolic link inside the root is an error: distribution never writes one, and following one would let
/// a listing, a garbage collection or a repair reach (and delete) files outside the root.
const SYMLINK_REFUSED: &str =
    "a symbolic link inside the storage root; gatehouse does not follow links there (replace it with what it \
     points to, or remove it)";

fn symlink_refused(op: &'static str, key: &str) -> DriverError {
    DriverError::Io {
        op,
        path: key.to_string(),
        source: io::Error::other(SYMLINK_REFUSED),
    }
}

/// The first directory between `root` (exclusive) and `target` (exclusive) that is a symbolic link, if any; a
/// component that does not exist ends the search (nothing below it exists either).
fn symlink_between(root: &Path, target: &Path) -> io::Result<Option<PathBuf>> {
    let Ok(below) = target.strip_prefix(root) else {
        return Ok(None);
    };
    let mut at = root.to_path_buf();
    let mut parts: Vec<_> = below.components().collect();
    parts.pop();
    for part in parts {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Ok(Some(at)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Runs `place` (stage a file in the directory it is given, then move it into `parent`) with `parent` created
/// first. A staging directory on another filesystem means staging beside the target. A directory that vanished
/// meanwhile is made again and the move retried: the staging directory, or `parent` itself, which a garbage
/// collection removes when it deletes the last link in it (found in review: a re-pushed blob's link write
/// raced the collector's removal of that link's directory and the upload answered 500).
fn staged<T>(
    staging: &Path,
    parent: &Path,
    place: impl Fn(&Path) -> io::Result<T>,
) -> io::Result<T> {
    const ATTEMPTS: usize = 4;
    for attempt in 1.. {
        std::fs::create_dir_all(parent)?;
        match place(staging) {
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => return place(parent),
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < ATTEMPTS => {
                std::fs::create_dir_all(staging)?;
            }
            other => return other,
        }
    }
    unreachable!("the loop returns by its last attempt")
}

/// Writes `data` to a temp file in `tmp_dir`, syncs it and renames it to `target`, syncing the parent.
fn write_via(tmp_dir: &Path, target: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = tmp_dir.join(temp_name());
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `data` to a temp file in `tmp_dir`, syncs it and hard-links it to `target`, which fails when `target`
/// exists (link(2) never replaces); the temp name is removed either way. `Ok(false)` when `target` existed.
fn create_via(tmp_dir: &Path, target: &Path, data: &[u8]) -> io::Result<bool> {
    let tmp = tmp_dir.join(temp_name());
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[async_trait]
impl Driver for FsDriver {
    async fn stat(&self, path: &str) -> Result<Option<Metadata>, DriverError> {
        let p = self.resolve(path)?;
        match tokio::fs::symlink_metadata(&p).await {
            // Where the object itself is a link (a `data` or `link` file, a blob directory), say so: its size
            // and time are another file's (found in review: gc counted a link target's size as freed).
            Ok(m) if m.file_type().is_symlink() => Err(symlink_refused("stat", path)),
            Ok(m) => Ok(Some(Metadata {
                size: if m.is_dir() { 0 } else { m.len() },
                is_dir: m.is_dir(),
                modified: modified(&m),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            // A path component that is a file (ENOTDIR) also means "not there".
            Err(e) if e.raw_os_error() == Some(20) => Ok(None),
            Err(e) => Err(io_err("stat", path, e)),
        }
    }

    async fn read(&self, path: &str, max: u64) -> Result<Bytes, DriverError> {
        let p = self.resolve(path)?;
        // One blocking hop for open + read: small files (links, manifests) are on every pull's path.
        let (root, key) = (self.root.clone(), path.to_string());
        let buf = blocking("read", path, move || {
            use std::io::Read;
            // Room for a link or a manifest up front: read_to_end from empty probes with small reads first
            // (seven system calls for a 500-byte manifest, two with this).
            let mut buf = Vec::with_capacity(usize::try_from(max.min(16 << 10)).unwrap_or(0) + 1);
            open_read(&root, &p, &key)?
                .take(max + 1)
                .read_to_end(&mut buf)?;
            Ok(buf)
        })
        .await?;
        if buf.len() as u64 > max {
            return Err(DriverError::TooLarge {
                path: path.to_string(),
                max,
            });
        }
        Ok(Bytes::from(buf))
    }

    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn ByteStream>, DriverError> {
        let p = self.resolve(path)?;
        let (root, key) = (self.root.clone(), path.to_string());
        let (file, meta) = blocking("open", path, move || {
            let file = open_read(&root, &p, &key)?;
            let meta = file.metadata()?;
            Ok((file, meta))
        })
        .await?;
        if meta.is_dir() {
            return Err(DriverError::NotFound {
                path: path.to_string(),
            });
        }
        let size = meta.len();
        if offset > size {
            return Err(DriverError::InvalidOffset {
                path: path.to_string(),
                offset,
                size,
            });
        }
        Ok(Box::new(read::FsRange::new(
            Arc::new(file),
            path,
            offset,
            len.min(size - offset),
        )))
    }

    async fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), DriverError> {
        let target = self.resolve(path)?;
        let staging = self.staging.clone();
        let data = data.to_vec();
        blocking("write", path, move || {
            let parent = target
                .parent()
                .expect("resolved paths have a parent")
                .to_path_buf();
            staged(&staging, &parent, |tmp_dir| {
                write_via(tmp_dir, &target, &data)
            })?;
            sync_dir(&parent)
        })
        .await
    }

    async fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, DriverError> {
        let target = self.resolve(path)?;
        let staging = self.staging.clone();
        let data = data.to_vec();
        blocking("create", path, move || {
            let parent = target
                .parent()
                .expect("resolved paths have a parent")
                .to_path_buf();
            let created = staged(&staging, &parent, |tmp_dir| {
                create_via(tmp_dir, &target, &data)
            })?;
            if created {
                sync_dir(&parent)?;
            }
            Ok(created)
        })
        .await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn Writer>, DriverError> {
        let p = self.resolve(path)?;
        let (file, len) = blocking("create", path, move || {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)?;
            let len = file.metadata()?.len();
            Ok((file, len))
        })
        .await?;
        Ok(Box::new(FsWriter {
            file: tokio::fs::File::from_std(file),
            base: len,
            len,
            path: path.to_string(),
        }))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError> {
        let src = self.resolve(from)?;
        let dst = self.resolve(to)?;
        blocking("rename", from, move || {
            let parent = dst
                .parent()
                .expect("resolved paths have a parent")
                .to_path_buf();
            match std::fs::rename(&src, &dst) {
                // The destination's directory is missing (a new blob or link): made, then moved again. A
                // source that is not there makes nothing: every blob lookup that misses tries to take the
                // blob back from the collector's quarantine, and each left an empty blob directory.
                Err(e) if e.kind() == io::ErrorKind::NotFound && src.symlink_metadata().is_ok() => {
                    std::fs::create_dir_all(&parent)?;
                    std::fs::rename(&src, &dst)?;
                }
                r => r?,
            }
            sync_dir(&parent)
        })
        .await
    }

    async fn list(&self, dir: &str) -> Result<Vec<DirEntry>, DriverError> {
        let p = self.resolve(dir)?;
        let mut rd = tokio::fs::read_dir(&p)
            .await
            .map_err(|e| io_err("list", dir, e))?;
        let mut out = Vec::new();
        while let Some(e) = rd.next_entry().await.map_err(|e| io_err("list", dir, e))? {
            let Ok(name) = e.file_name().into_string() else {
                continue; // Not UTF-8: nothing the registry could have written.
            };
            let is_dir = match e.file_type().await {
                Ok(t) if t.is_symlink() => {
                    return Err(symlink_refused("list", &format!("{dir}/{name}")))
                }
                Ok(t) => t.is_dir(),
                Err(_) => false,
            };
            out.push(DirEntry { name, is_dir });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn walk(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError> {
        let p = self.resolve(prefix)?;
        Ok(Box::new(walk::FsWalk::new(p, prefix)))
    }

    async fn walk_keys(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError> {
        let p = self.resolve(prefix)?;
        Ok(Box::new(walk::FsWalk::keys(p, prefix, None)))
    }

    async fn walk_keys_assuming(
        &self,
        prefix: &str,
        assume: Assume,
    ) -> Result<Box<dyn Walk>, DriverError> {
        let p = self.resolve(prefix)?;
        Ok(Box::new(walk::FsWalk::keys(p, prefix, Some(assume))))
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        self.delete_many(&[path]).await
    }

    async fn delete_many(&self, paths: &[&str]) -> Result<(), DriverError> {
        let Some(first) = paths.first() else {
            return Ok(());
        };
        let doomed: Vec<(String, PathBuf)> = paths
            .iter()
            .map(|k| Ok((k.to_string(), self.resolve(k)?)))
            .collect::<Result<_, DriverError>>()?;
        let root = self.root.clone();
        let failed = blocking("delete", first, move || {
            let mut remover = match remove::Remover::new(&root) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                r => r?,
            };
            for (key, p) in doomed {
                match remove(&root, remover.as_mut(), &p, &key) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Ok(Some((key, e))),
                    _ => {}
                }
            }
            Ok(None)
        })
        .await?;
        match failed {
            Some((key, e)) => Err(io_err("delete", &key, e)),
            None => Ok(()),
        }
    }
}

/// Opens the file at `p` (key `key`) beneath `root` for reading, never through a symbolic link (found in
/// review: a `data` file or blob directory made a link to a file outside the root was served).
fn open_read(root: &Path, p: &Path, key: &str) -> io::Result<std::fs::File> {
    let refused = || io::Error::other(format!("{key}: {SYMLINK_REFUSED}"));
    if let Ok(rel) = p.strip_prefix(root) {
        match remove::open_file_beneath(root, rel)? {
            remove::Opened::File(f) => return Ok(f),
            remove::Opened::ThroughSymlink => return Err(refused()),
            remove::Opened::Unsupported => {}
        }
    }
    if symlink_between(root, p)?.is_some() {
        return Err(refused());
    }
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
    {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(refused()),
        r => r,
    }
}

/// Removes the object or tree at `p` (key `key`) beneath `root`, never through a symbolic link: through
/// `remover` where the kernel has `openat2`.
fn remove(
    root: &Path,
    remover: Option<&mut remove::Remover>,
    p: &Path,
    key: &str,
) -> io::Result<()> {
    if let (Ok(rel), Some(remover)) = (p.strip_prefix(root), remover) {
        match remover.remove(rel)? {
            remove::Beneath::Removed => return Ok(()),
            // Final: a check by path and a delete by path after it could pass a link swapped back in between
            // (found in review: a blob directory swapped with a link to outside the root lost a file there).
            remove::Beneath::ThroughSymlink => {
                let at = symlink_between(root, p)
                    .ok()
                    .flatten()
                    .map_or_else(|| key.to_string(), |l| l.display().to_string());
                return Err(io::Error::other(format!(
                    "{at}: {SYMLINK_REFUSED} (refusing to delete {key} through it)"
                )));
            }
            remove::Beneath::Unsupported => {}
        }
    }
    // No openat2: one component at a time.
    if let Some(link) = symlink_between(root, p)? {
        return Err(io::Error::other(format!(
            "{}: {SYMLINK_REFUSED} (refusing to delete {key} through it)",
            link.display()
        )));
    }
    let meta = std::fs::symlink_metadata(p)?;
    if meta.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    }
}

/// An append to one file.
struct FsWriter {
    file: tokio::fs::File,
    /// The file's length when the writer was opened: what cancel goes back to.
    base: u64,
    len: u64,
    path: String,
}

#[async_trait]
impl Writer for FsWriter {
    fn len(&self) -> u64 {
        self.len
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), DriverError> {
        self.file
            .write_all(data)
            .await
            .map_err(|e| io_err("write", &self.path, e))?;
        self.len += data.len() as u64;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, DriverError> {
        // tokio's File finishes writes in the background: without this flush a reader could still see the file
        // shorter than what this writer was given (issue 9, finding 4).
        self.file
            .flush()
            .await
            .map_err(|e| io_err("flush", &self.path, e))?;
        if self.len != self.base {
            self.file
                .sync_data()
                .await
                .map_err(|e| io_err("sync", &self.path, e))?;
        }
        Ok(self.len)
    }

    async fn cancel(mut self: Box<Self>) -> Result<(), DriverError> {
        // A write that failed in the background fails the flush too; the cut below undoes it either way.
        let _ = self.file.flush().await;
        self.file
            .set_len(self.base)
            .await
            .map_err(|e| io_err("truncate", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn driver() -> (tempfile::TempDir, FsDriver) {
        let dir = tempfile::tempdir().unwrap();
        let d = FsDriver::new(dir.path()).await.unwrap();
        (dir, d)
    }

    crate::driver_conformance_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let d = FsDriver::new(dir.path()).await.unwrap();
        (
            Box::new(dir) as Box<dyn std::any::Any + Send>,
            std::sync::Arc::new(d) as std::sync::Arc<dyn Driver>,
        )
    });

    /// Found in review: a repository directory that was a symlink to a directory outside the root was listed as
    /// a repository, and `gc`/`fsck --repair` deleted files outside the root through it. A listing that meets a
    /// symlink now fails naming it, and a delete through one is refused; the files outside stay.
    #[tokio::test]
    async fn a_symlink_inside_the_root_fails_a_listing_and_no_delete_goes_through_it() {
        let (dir, d) = driver().await;
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(outside.path().join("_layers/x")).unwrap();
        std::fs::write(outside.path().join("_layers/x/link"), "sha256:0").unwrap();
        std::fs::write(outside.path().join("precious.txt"), "keep").unwrap();
        d.write_atomic("repositories/real/_layers/y/link", b"sha256:1")
            .await
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("repositories/evil")).unwrap();

        let err = d.list("repositories").await.unwrap_err().to_string();
        assert!(
            err.contains("repositories/evil") && err.contains("symbolic link"),
            "{err}"
        );
        let mut walk = d.walk("repositories").await.unwrap();
        let err = loop {
            match walk.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("a walk went past the symlink without a word"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(
            err.contains("repositories/evil") && err.contains("symbolic link"),
            "{err}"
        );
        for key in [
            "repositories/evil/_layers/x",
            "repositories/evil/precious.txt",
        ] {
            let err = d.delete(key).await.unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "{key}: {err}");
        }
        assert!(outside.path().join("_layers/x/link").exists());
        assert!(outside.path().join("precious.txt").exists());
        // Deleting the symlink itself removes the link, never what it points to.
        d.delete("repositories/evil").await.unwrap();
        assert!(outside.path().join("precious.txt").exists());
        assert_eq!(d.list("repositories").await.unwrap().len(), 1);
    }

    /// A rename makes the destination's directory when it has to, and nothing when the source is not there
    /// (every blob lookup that misses tries a rename out of the collector's quarantine, and each left an empty
    /// blob directory behind).
    #[tokio::test]
    async fn a_rename_of_a_missing_source_makes_no_directory() {
        let (dir, d) = driver().await;
        let e = d
            .rename("q/absent", "blobs/ab/abcd/data")
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(!dir.path().join("blobs").exists());
        d.write_atomic("q/present", b"x").await.unwrap();
        d.rename("q/present", "blobs/ab/abcd/data").await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("blobs/ab/abcd/data")).unwrap(),
            b"x"
        );
    }

    /// Review of the sendfile path (F2, F6): a blob's `data` made a link to a file outside the root, or its
    /// directory a link to a directory outside, was served (read, ranged read) and stat'ed as the target. Every
    /// read and stat of such an object is now an error naming it, and the target is never read.
    #[tokio::test]
    async fn no_read_or_stat_goes_through_a_symlink_inside_the_root() {
        let (dir, d) = driver().await;
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside the root").unwrap();
        std::fs::create_dir_all(outside.path().join("blobdir")).unwrap();
        std::fs::write(outside.path().join("blobdir/data"), "outside too").unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/ab/one")).unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/cd")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            dir.path().join("blobs/ab/one/data"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("blobdir"),
            dir.path().join("blobs/cd/two"),
        )
        .unwrap();
        for key in ["blobs/ab/one/data", "blobs/cd/two/data"] {
            let err = d.read(key, 1024).await.unwrap_err().to_string();
            assert!(err.contains("symbolic link"), "read {key}: {err}");
            let err = d
                .read_range(key, 0, 5)
                .await
                .err()
                .expect("refused")
                .to_string();
            assert!(err.contains("symbolic link"), "read_range {key}: {err}");
        }
        let err = d.stat("blobs/ab/one/data").await.unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "stat: {err}");
        let err = d.stat("blobs/cd/two").await.unwrap_err().to_string();
        assert!(
            err.contains("symbolic link"),
            "stat of a linked directory: {err}"
        );
    }

    /// The collector may remove a link's directory between the write's mkdir and its rename; the write makes the
    /// directory again instead of failing the upload.
    #[test]
    fn a_write_whose_directory_vanishes_before_its_rename_makes_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let (staging, parent) = (
            dir.path().join("staging"),
            dir.path().join("repo/_layers/x"),
        );
        std::fs::create_dir_all(&staging).unwrap();
        let target = parent.join("link");
        let calls = std::cell::Cell::new(0);
        staged(&staging, &parent, |tmp| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                std::fs::remove_dir_all(dir.path().join("repo")).unwrap();
            }
            write_via(tmp, &target, b"sha256:1")
        })
        .unwrap();
        assert_eq!(calls.get(), 2);
        assert_eq!(std::fs::read(&target).unwrap(), b"sha256:1");
        // A directory that keeps vanishing is an error after a few attempts, not a loop.
        let err = staged(&staging, &parent, |tmp| {
            std::fs::remove_dir_all(dir.path().join("repo")).unwrap();
            write_via(tmp, &target, b"sha256:2")
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn atomic_write_list_rename_delete() {
        let (dir, d) = driver().await;
        d.write_atomic("a/b/link", b"sha256:x").await.unwrap();
        assert_eq!(&d.read("a/b/link", 100).await.unwrap()[..], b"sha256:x");
        assert!(matches!(
            d.read("a/b/link", 3).await,
            Err(DriverError::TooLarge { .. })
        ));
        let m = d.stat("a/b/link").await.unwrap().unwrap();
        assert_eq!((m.size, m.is_dir), (8, false));
        assert_eq!(d.stat("a/b/link/x").await.unwrap(), None);
        let names: Vec<_> = d
            .list("a")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        assert_eq!(names, vec![("b".to_string(), true)]);
        let mut w = d.writer("u/data").await.unwrap();
        w.write(b"hello").await.unwrap();
        assert_eq!(w.commit().await.unwrap(), 5);
        let mut w = d.writer("u/data").await.unwrap();
        w.write(b" world").await.unwrap();
        assert_eq!(w.len(), 11);
        w.cancel().await.unwrap();
        d.rename("u/data", "z/y/data").await.unwrap();
        assert_eq!(&d.read("z/y/data", 100).await.unwrap()[..], b"hello");
        d.delete("z").await.unwrap();
        d.delete("z").await.unwrap();
        assert!(d.list("z").await.unwrap_err().is_not_found());
        // Nothing is left in staging.
        assert!(std::fs::read_dir(dir.path().join(STAGING))
            .unwrap()
            .next()
            .is_none());
    }

    #[tokio::test]
    async fn hostile_paths_are_refused() {
        let (_dir, d) = driver().await;
        for bad in ["", "/etc/passwd", "a/../../x", "a//b", "./a", "a\\b"] {
            assert!(
                matches!(d.stat(bad).await, Err(DriverError::InvalidPath { .. })),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn staging_leftovers_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(STAGING)).unwrap();
        std::fs::write(dir.path().join(STAGING).join("tmp-dead"), b"partial").unwrap();
        FsDriver::new(dir.path()).await.unwrap();
        assert!(std::fs::read_dir(dir.path().join(STAGING))
            .unwrap()
            .next()
            .is_none());
    }

    /// Issue 9 finding 4: tokio's `File` finishes writes in the background, so a PATCH answered before a flush
    /// let the PUT that followed hash a shorter file. After a chunk's commit, a fresh handle sees every byte.
    #[tokio::test]
    async fn committed_chunk_is_readable_through_a_fresh_handle() {
        let (dir, d) = driver().await;
        let mut expected = Vec::new();
        for round in 0..64u32 {
            let mut w = d.writer("u/data").await.unwrap();
            // Many small writes, then one large one: each lands in tokio's background writer.
            for i in 0..32u32 {
                let piece = vec![(round * 32 + i) as u8; 1000 + i as usize];
                w.write(&piece).await.unwrap();
                expected.extend_from_slice(&piece);
            }
            let big = vec![round as u8; 3 << 20];
            w.write(&big).await.unwrap();
            expected.extend_from_slice(&big);
            assert_eq!(w.commit().await.unwrap(), expected.len() as u64);
            // A fresh handle (another driver on the same root, a plain std read) sees it all at once.
            let fresh = FsDriver::new(dir.path()).await.unwrap();
            assert_eq!(
                fresh.stat("u/data").await.unwrap().unwrap().size,
                expected.len() as u64,
                "round {round}"
            );
            let on_disk = std::fs::read(dir.path().join("u/data")).unwrap();
            assert!(on_disk == expected, "round {round}: content differs");
        }
    }
}
