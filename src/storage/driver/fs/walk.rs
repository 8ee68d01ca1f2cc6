//! Walking a directory tree: a blocking job reads directories until it has found a batch of files (or read a
//! batch of directories), and the files are handed out one by one. A registry tree is mostly small
//! directories (one per tag, revision and layer link), so one job per directory spent more on hand-offs to
//! the blocking pool than on the reads.
//!
//! Only the walk's root is stat'ed by path (it may be a file, or absent); below it the directory entries'
//! types say what is a directory, and a file is stat'ed relative to its directory, or not at all for a walk of
//! keys ([`FsWalk::keys`]: size 0, modified at the epoch), which a caller that needs neither uses to save a
//! system call per object.

use super::super::{check_key, Assume, Assumed, DriverError, Walk, WalkEntry};
use super::{blocking, modified};
use async_trait::async_trait;
use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

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
    /// The root, until it was looked at (it may be a file, or absent).
    root: Option<PendingDir>,
    /// Files found and not yet handed out.
    found: VecDeque<WalkEntry>,
    /// Whether files are stat'ed (sizes and modification times).
    stat: bool,
    /// Directories taken to hold one known file, not read ([`FsWalk::keys`]).
    assume: Option<Assume>,
}

/// A symbolic link met by a walk: an error naming it (see [`super::SYMLINK_REFUSED`]), so a collector or a
/// repair stops instead of missing what is behind it.
fn symlink_error(key: &str) -> io::Error {
    io::Error::other(format!("{key}: {}", super::SYMLINK_REFUSED))
}

/// A found file as an entry: with its size and modification time when `meta` is given.
fn entry(key: String, meta: Option<&std::fs::Metadata>) -> WalkEntry {
    WalkEntry {
        key,
        size: meta.map_or(0, |m| m.len()),
        modified: meta.map_or(SystemTime::UNIX_EPOCH, modified),
    }
}

/// Looks at the walk's root: `Some(dir)` to read when it is a directory; a file given as the prefix is
/// found here; an absent one (or a path through a file) walks nothing.
fn read_root(
    dir: PathBuf,
    key: &str,
    files: &mut Vec<WalkEntry>,
) -> io::Result<Option<PendingDir>> {
    let meta = match std::fs::symlink_metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Err(symlink_error(key));
    }
    if meta.is_dir() {
        return Ok(Some((dir, key.to_string())));
    }
    if let Some(m) = std::fs::metadata(&dir).ok().filter(|m| m.is_file()) {
        files.push(entry(key.to_string(), Some(&m)));
    }
    Ok(None)
}

/// The buffer one blocking job reads directory entries into.
pub(super) const DIRENT_BUF: usize = 32 * 1024;

/// What a directory entry is, from its `d_type` (or a stat of it when the filesystem gives none).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

fn kind_of_mode(mode: libc::mode_t) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

/// `fstatat(dir, name)`, following a symlink when `follow`.
fn stat_at(dir: &OwnedFd, name: &CStr, follow: bool) -> io::Result<libc::stat> {
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: `st` is written by the kernel before it is read; `name` is NUL-terminated; `dir` is open.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, flags) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

/// The size and modification time a stat says.
fn meta_of(st: &libc::stat) -> (u64, SystemTime) {
    let mtime = u64::try_from(st.st_mtime)
        .ok()
        .map(|s| Duration::new(s, u32::try_from(st.st_mtime_nsec).unwrap_or(0)));
    let modified = mtime.map_or(SystemTime::UNIX_EPOCH, |d| SystemTime::UNIX_EPOCH + d);
    (u64::try_from(st.st_size).unwrap_or(0), modified)
}

/// Set once `O_NOATIME` is refused (a directory this process does not own, without `CAP_FOWNER`).
static NOATIME_REFUSED: AtomicBool = AtomicBool::new(false);

/// Opens the directory `name` relative to `dir` (`None`: `name` is a path) for [`entries`], with `extra`
/// flags. std's `read_dir` goes through opendir(3), which stats the directory it just opened: one system
/// call per directory more, in a tree of mostly one-entry directories. `O_NOATIME` where allowed: a walk or a
/// delete is no access, and an access time written on every directory a collector reads is a write per
/// directory (relatime writes it once a day, so a daily run meets it every time).
pub(super) fn open_dir_at(
    dir: Option<&OwnedFd>,
    name: &CStr,
    extra: libc::c_int,
) -> io::Result<OwnedFd> {
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | extra;
    loop {
        let noatime = !NOATIME_REFUSED.load(Ordering::Relaxed);
        let with = if noatime {
            flags | libc::O_NOATIME
        } else {
            flags
        };
        // SAFETY: `name` is NUL-terminated and `at` is open (or AT_FDCWD); a descriptor returned is owned by
        // nothing else.
        let fd = unsafe { libc::openat(at, name.as_ptr(), with) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if noatime && e.raw_os_error() == Some(libc::EPERM) {
            NOATIME_REFUSED.store(true, Ordering::Relaxed);
            continue;
        }
        return Err(e);
    }
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    open_dir_at(None, &c, 0)
}

/// Calls `f` with the name and `d_type` of every entry of `dir` but `.` and `..` (getdents64 into `buf`).
pub(super) fn entries(
    dir: &OwnedFd,
    buf: &mut [u8],
    mut f: impl FnMut(&CStr, u8) -> io::Result<()>,
) -> io::Result<()> {
    while entries_once(dir, buf, &mut f)? {}
    Ok(())
}

/// One `getdents64` of `dir` into `buf`: `f` is called for each entry but `.` and `..`; `false` when there
/// were no more entries.
pub(super) fn entries_once(
    dir: &OwnedFd,
    buf: &mut [u8],
    mut f: impl FnMut(&CStr, u8) -> io::Result<()>,
) -> io::Result<bool> {
    let n = loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    let mut at = 0usize;
    while at < n {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "a malformed directory entry");
        let head = buf.get(at..at + 19).ok_or_else(bad)?;
        let len = usize::from(u16::from_ne_bytes([head[16], head[17]]));
        let d_type = head[18];
        let record = buf.get(at..at + len).filter(|_| len > 19).ok_or_else(bad)?;
        let name = CStr::from_bytes_until_nul(&record[19..]).map_err(|_| bad())?;
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            f(name, d_type)?;
        }
        at += len;
    }
    Ok(n > 0)
}

/// Reads one directory: the files in it and the subdirectories to read next; a symbolic link is an error. A
/// directory that is gone meanwhile has nothing.
fn read_one_dir(
    dir: &Path,
    key: &str,
    (stat, assume): (bool, Option<Assume>),
    buf: &mut [u8],
    files: &mut Vec<WalkEntry>,
    dirs: &mut Vec<PendingDir>,
) -> io::Result<()> {
    let fd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    // A directory removed after it was opened reads as ENOENT: gone meanwhile, like one that could not be
    // opened (the likely cause of online runs a review saw fail with `_uploads/<id>: not found` while uploads
    // finished).
    let read = entries(&fd, buf, |name, d_type| {
        let Ok(utf8) = name.to_str() else {
            return Ok(()); // Not UTF-8: nothing the registry could have written.
        };
        let child = format!("{key}/{utf8}");
        if check_key(&child).is_err() {
            return Ok(());
        }
        let kind = match d_type {
            libc::DT_DIR => Kind::Dir,
            libc::DT_REG => Kind::File,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_UNKNOWN => match stat_at(&fd, name, false) {
                Ok(st) => kind_of_mode(st.st_mode),
                Err(_) => return Ok(()), // Gone meanwhile.
            },
            _ => Kind::Other,
        };
        match kind {
            Kind::Dir => match assume.and_then(|a| a(&child)) {
                Some(Assumed::Holds(file)) => files.push(entry(format!("{child}/{file}"), None)),
                Some(Assumed::Skipped) => {}
                None => dirs.push((dir.join(OsStr::from_bytes(name.to_bytes())), child)),
            },
            Kind::File if !stat => files.push(entry(child, None)),
            Kind::Symlink => return Err(symlink_error(&child)),
            Kind::File => {
                // Stat'ed relative to the directory (no lookup of the whole path).
                let Ok(st) = stat_at(&fd, name, false) else {
                    return Ok(());
                };
                if kind_of_mode(st.st_mode) == Kind::File {
                    let (size, modified) = meta_of(&st);
                    files.push(if stat {
                        WalkEntry {
                            key: child,
                            size,
                            modified,
                        }
                    } else {
                        entry(child, None)
                    });
                }
            }
            Kind::Other => {}
        }
        Ok(())
    });
    match read {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

impl FsWalk {
    /// A walk of the tree at local path `dir`, whose key is `key`.
    pub(super) fn new(dir: PathBuf, key: &str) -> FsWalk {
        FsWalk {
            dirs: Vec::new(),
            root: Some((dir, key.to_string())),
            found: VecDeque::new(),
            stat: true,
            assume: None,
        }
    }

    /// A walk of keys only: the files are not stat'ed (size 0, modified at the epoch), and the directories
    /// `assume` names a file for are taken to hold it, unread (those it skips are not read either).
    pub(super) fn keys(dir: PathBuf, key: &str, assume: Option<Assume>) -> FsWalk {
        FsWalk {
            stat: false,
            assume,
            ..FsWalk::new(dir, key)
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
            let root = self.root.take();
            let Some((_, key)) = root.as_ref().or(self.dirs.last()) else {
                return Ok(None);
            };
            let key = key.clone();
            let (mut dirs, how) = (std::mem::take(&mut self.dirs), (self.stat, self.assume));
            let (files, dirs) = blocking("walk", &key, move || {
                let mut files = Vec::new();
                let mut buf = vec![0u8; DIRENT_BUF];
                if let Some((dir, key)) = root {
                    dirs.extend(read_root(dir, &key, &mut files)?);
                }
                for _ in 0..BATCH_DIRS {
                    let Some((dir, key)) = dirs.pop() else { break };
                    // The job is named after the first directory; an error names its own.
                    read_one_dir(&dir, &key, how, &mut buf, &mut files, &mut dirs)
                        .map_err(|e| io::Error::new(e.kind(), format!("{key}: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn walk(w: FsWalk) -> Vec<(String, u64, bool)> {
        let mut w: Box<dyn Walk> = Box::new(w);
        let mut out = Vec::new();
        while let Some(e) = w.next().await.unwrap() {
            out.push((e.key, e.size, e.modified > SystemTime::UNIX_EPOCH));
        }
        out.sort();
        out
    }

    /// What the walk relies on to take a directory removed while it is read for gone: the kernel answers
    /// ENOENT to reading a directory that was removed after it was opened.
    #[test]
    fn reading_a_directory_removed_after_it_was_opened_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("upload");
        std::fs::create_dir(&gone).unwrap();
        let fd = open_dir(&gone).unwrap();
        std::fs::remove_dir(&gone).unwrap();
        let mut buf = vec![0u8; DIRENT_BUF];
        let e = entries(&fd, &mut buf, |_, _| Ok(())).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    /// Files are found with their sizes and times (none for a walk of keys); a FIFO and a name that is not
    /// UTF-8 are not walked; a symbolic link of any kind (to a file, a directory, nowhere; the root itself) ends
    /// the walk with an error naming it (see `a_symlink_inside_the_root_fails_a_listing...` in fs.rs).
    #[tokio::test]
    async fn a_walk_finds_files_and_refuses_every_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("a/b/c")).unwrap();
        std::fs::write(t.join("top"), b"12345").unwrap();
        std::fs::write(t.join("a/b/c/deep"), b"xy").unwrap();
        let fifo = CString::new(t.join("a/fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::write(t.join(OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
        for i in 0..600 {
            std::fs::create_dir_all(t.join(format!("wide/{i}"))).unwrap();
            std::fs::write(t.join(format!("wide/{i}/link")), b"l").unwrap();
        }
        let mut want = vec![
            ("t/a/b/c/deep".to_string(), 2, true),
            ("t/top".to_string(), 5, true),
        ];
        want.extend((0..600).map(|i| (format!("t/wide/{i}/link"), 1, true)));
        want.sort();
        assert_eq!(walk(FsWalk::new(t.clone(), "t")).await, want);
        let keys: Vec<_> = want.iter().map(|(k, ..)| (k.clone(), 0, false)).collect();
        assert_eq!(walk(FsWalk::keys(t.clone(), "t", None)).await, keys);
        // The root may be a file, absent, or under a file.
        assert_eq!(
            walk(FsWalk::keys(t.join("top"), "t/top", None)).await,
            [("t/top".to_string(), 5, true)],
            "a file as the root is stat'ed"
        );
        assert!(walk(FsWalk::new(t.join("absent"), "t/absent"))
            .await
            .is_empty());
        assert!(walk(FsWalk::new(t.join("top/x"), "t/top/x"))
            .await
            .is_empty());
        for (link, to) in [
            ("a/to-file", "top"),
            ("a/to-dir", "a/b"),
            ("a/dangling", "nowhere"),
        ] {
            std::os::unix::fs::symlink(t.join(to), t.join(link)).unwrap();
            for stat in [true, false] {
                let w = if stat {
                    FsWalk::new(t.clone(), "t")
                } else {
                    FsWalk::keys(t.clone(), "t", None)
                };
                let mut w: Box<dyn Walk> = Box::new(w);
                let err = loop {
                    match w.next().await {
                        Ok(Some(_)) => {}
                        Ok(None) => panic!("{link}: the walk ended without a word"),
                        Err(e) => break e.to_string(),
                    }
                };
                assert!(
                    err.contains(&format!("t/{link}")) && err.contains("symbolic link"),
                    "{err}"
                );
            }
            std::fs::remove_file(t.join(link)).unwrap();
        }
        // Directories the rule names a file for are not read: their key is reported (even where the file is
        // missing), and what else they hold is not; one it skips (t/a) is not read and reports nothing.
        std::fs::write(t.join("wide/7/extra"), b"e").unwrap();
        std::fs::create_dir_all(t.join("wide/empty")).unwrap();
        fn leaf(key: &str) -> Option<Assumed> {
            if key == "t/a" {
                return Some(Assumed::Skipped);
            }
            key.strip_prefix("t/wide/")
                .filter(|rest| !rest.contains('/'))
                .map(|_| Assumed::Holds("link"))
        }
        let mut assumed: Vec<_> = (0..600)
            .map(|i| (format!("t/wide/{i}/link"), 0, false))
            .chain([("t/wide/empty/link".to_string(), 0, false)])
            .chain([("t/top".to_string(), 0, false)])
            .collect();
        assumed.sort();
        assert_eq!(
            walk(FsWalk::keys(t.clone(), "t", Some(leaf))).await,
            assumed
        );
        std::fs::remove_file(t.join("wide/7/extra")).unwrap();
        std::fs::remove_dir(t.join("wide/empty")).unwrap();
        std::os::unix::fs::symlink(&t, dir.path().join("root-link")).unwrap();
        let mut w: Box<dyn Walk> = Box::new(FsWalk::new(dir.path().join("root-link"), "r"));
        assert!(w.next().await.is_err(), "a symlinked walk root");
    }
}
