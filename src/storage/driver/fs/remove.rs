//! Removing an object, or a directory and everything in it, beneath the root in few system calls and never
//! through a symbolic link. The parent is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, which
//! refuses a link anywhere on the path in one call; the object is opened relative to it (`O_NOFOLLOW`), a
//! directory's entries are read with getdents64 and removed relative to it. A collector deletes thousands of
//! one-file directories: checking each path component with its own `lstat` and then `remove_dir_all` cost it
//! about twice the system calls. A symbolic link inside what is removed is removed itself, never followed.
//!
//! Files are opened for reading the same way ([`open_file_beneath`]): no link on the path, the file included.
//!
//! Where the kernel has no `openat2` (before 5.6, or a seccomp profile that forbids it) the caller falls back
//! to its component-by-component check.

use super::walk::{entries_once, open_dir_at, DIRENT_BUF};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`remove_beneath`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Beneath {
    /// The object is gone (or was never there: the caller hears `NotFound`).
    Removed,
    /// A component of the path is a symbolic link: nothing was removed.
    ThroughSymlink,
    /// The kernel cannot do it this way: nothing was tried.
    Unsupported,
}

/// Set once `openat2` is found missing or forbidden.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// What [`open_file_beneath`] found.
pub(super) enum Opened {
    /// The file, open for reading.
    File(std::fs::File),
    /// A component of the path, or the file, is a symbolic link: nothing was opened.
    ThroughSymlink,
    /// The kernel cannot do it this way: nothing was tried.
    Unsupported,
}

/// What a refused `openat2` means: `Ok(true)` a symbolic link (or an escape) on the path, `Ok(false)` no
/// `openat2` here (remembered), `Err` anything else.
fn refusal(e: io::Error) -> io::Result<bool> {
    match e.raw_os_error() {
        Some(libc::ELOOP | libc::EXDEV) => Ok(true),
        Some(libc::ENOSYS | libc::EPERM | libc::E2BIG) => {
            NO_OPENAT2.store(true, Ordering::Relaxed);
            Ok(false)
        }
        _ => Err(e),
    }
}

/// `openat2` of `rel` beneath `root` with `flags`; `Err(Ok(..))` says why it cannot be used here.
fn open_resolved(root: &Path, rel: &Path, flags: libc::c_int) -> io::Result<Result<OwnedFd, bool>> {
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return Ok(Err(false));
    }
    let root = open_dir_path(&c_path(root)?)?;
    match open_beneath(&root, &c_path(rel)?, flags) {
        Ok(fd) => Ok(Ok(fd)),
        Err(e) => refusal(e).map(Err),
    }
}

/// Opens the file `rel` beneath the directory `root` for reading, never through a symbolic link.
pub(super) fn open_file_beneath(root: &Path, rel: &Path) -> io::Result<Opened> {
    Ok(
        match open_resolved(root, rel, libc::O_RDONLY | libc::O_CLOEXEC)? {
            Ok(fd) => Opened::File(std::fs::File::from(fd)),
            Err(true) => Opened::ThroughSymlink,
            Err(false) => Opened::Unsupported,
        },
    )
}

/// Removes objects beneath one root, for a batch of deletes: the root is opened once, and objects that share
/// a parent directory (a blob's `<xx>` directory, a repository's `_layers/<alg>`) share its descriptor.
pub(super) struct Remover {
    root: OwnedFd,
    /// The last parent opened, by its path relative to the root.
    parent: Option<(std::path::PathBuf, OwnedFd)>,
    buf: Vec<u8>,
}

impl Remover {
    /// A remover beneath `root`; `None` where the kernel has no `openat2` (the caller falls back).
    pub(super) fn new(root: &Path) -> io::Result<Option<Remover>> {
        if NO_OPENAT2.load(Ordering::Relaxed) {
            return Ok(None);
        }
        Ok(Some(Remover {
            root: open_dir_path(&c_path(root)?)?,
            parent: None,
            buf: vec![0u8; DIRENT_BUF],
        }))
    }

    /// Removes `rel` (a file, or a directory and all it holds).
    pub(super) fn remove(&mut self, rel: &Path) -> io::Result<Beneath> {
        let (Some(name), Some(parent)) = (rel.file_name(), rel.parent()) else {
            return Ok(Beneath::Unsupported);
        };
        // The root itself when `rel` has one component ("" beneath the root is the root).
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if self.parent.as_ref().is_none_or(|(p, _)| p != parent) {
            self.parent = None;
            let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
            match open_beneath(&self.root, &c_path(parent)?, flags) {
                Ok(fd) => self.parent = Some((parent.to_path_buf(), fd)),
                Err(e) => {
                    return Ok(if refusal(e)? {
                        Beneath::ThroughSymlink
                    } else {
                        Beneath::Unsupported
                    })
                }
            }
        }
        let (_, parent_fd) = self.parent.as_ref().expect("opened above");
        remove_at(parent_fd, &c_path(Path::new(name))?, &mut self.buf)?;
        Ok(Beneath::Removed)
    }
}

/// Removes `rel` (a file, or a directory and all it holds) beneath the directory `root`.
#[cfg(test)]
fn remove_beneath(root: &Path, rel: &Path) -> io::Result<Beneath> {
    match Remover::new(root)? {
        Some(mut r) => r.remove(rel),
        None => Ok(Beneath::Unsupported),
    }
}

/// `open(path, O_PATH | O_DIRECTORY)`.
fn open_dir_path(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated; a descriptor returned is owned by nothing else.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `rel` beneath `root` with `flags`, refusing symbolic links and anything outside `root`.
fn open_beneath(root: &OwnedFd, rel: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: `open_how` is plain integers; all zero is a valid value, filled in below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `rel` is NUL-terminated and `how` is the kernel's `open_how`, both valid for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            rel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor (it fits a c_int: the kernel returned it as one).
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn unlink_at(dir: &OwnedFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` is open.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Removes `name` in `dir`: a file or symbolic link is unlinked, a directory emptied (depth first) and removed.
///
/// A directory is read one `getdents64` buffer at a time, and its removal is tried after each: most hold one
/// file, and the read that would only say "no more entries" is skipped. Where it is not empty yet, reading goes
/// on from where it was (never from the start again), and once the reads are done the removal's answer is
/// final: an entry created meanwhile (found in review: a directory swapped in under the same name made a loop
/// that never ended) is an error, as it was with one whole read first.
fn remove_at(dir: &OwnedFd, name: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
    let fd = match open_dir_at(Some(dir), name, libc::O_NOFOLLOW) {
        Ok(fd) => fd,
        // Not a directory, or a symbolic link (to anything): the entry itself goes.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
            return unlink_at(dir, name, 0)
        }
        Err(e) => return Err(e),
    };
    empty_and_remove(dir, name, &fd, buf)
}

/// Empties the directory open as `fd` and removes `name` in `dir`, which was opened as `fd` ([`remove_at`]).
fn empty_and_remove(dir: &OwnedFd, name: &CStr, fd: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let mut children: Vec<(CString, u8)> = Vec::new();
        let more = entries_once(fd, buf, |child, d_type| {
            children.push((child.to_owned(), d_type));
            Ok(())
        })?;
        for (child, d_type) in children {
            let r = if d_type == libc::DT_DIR {
                remove_at(fd, &child, buf)
            } else {
                match unlink_at(fd, &child, 0) {
                    Err(e) if e.raw_os_error() == Some(libc::EISDIR) => remove_at(fd, &child, buf),
                    r => r,
                }
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                r => r?,
            }
        }
        match unlink_at(dir, name, libc::AT_REMOVEDIR) {
            Err(e) if more && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) => {}
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found in review: a directory swapped in under the name being removed made `rmdir` fail for good, and
    /// the delete read the one it had open from the start again, forever. Now the open one is emptied, reading
    /// ends, and the delete says the name is not empty.
    #[test]
    fn a_directory_swapped_in_while_one_is_emptied_ends_the_delete_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("x")).unwrap();
        for i in 0..3000 {
            std::fs::write(root.join(format!("x/{i:04}")), b"f").unwrap();
        }
        let parent = open_dir_path(&c_path(root).unwrap()).unwrap();
        let name = CString::new("x").unwrap();
        let open = open_dir_at(Some(&parent), &name, libc::O_NOFOLLOW).unwrap();
        std::fs::rename(root.join("x"), root.join("moved")).unwrap();
        std::fs::create_dir(root.join("x")).unwrap();
        std::fs::write(root.join("x/newcomer"), b"n").unwrap();
        let mut buf = vec![0u8; DIRENT_BUF];
        let e = empty_and_remove(&parent, &name, &open, &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTEMPTY), "{e}");
        assert_eq!(std::fs::read_dir(root.join("moved")).unwrap().count(), 0);
        assert!(
            root.join("x/newcomer").exists(),
            "the swapped-in one is left"
        );
    }

    /// A file, a one-file directory and a deep tree with a symbolic link inside go; the link's target stays; a
    /// path through a symbolic link removes nothing; an absent object is `NotFound`.
    #[test]
    fn removes_files_and_trees_and_never_passes_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("a/b/c/d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"k").unwrap();
        std::fs::write(root.join("a/file"), b"f").unwrap();
        std::fs::create_dir_all(root.join("a/one")).unwrap();
        std::fs::write(root.join("a/one/data"), b"d").unwrap();
        std::fs::write(root.join("a/b/c/d/deep"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/b/c/to-outside")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        if remove_beneath(&root, Path::new("a/file")).unwrap() == Beneath::Unsupported {
            assert!(NO_OPENAT2.load(Ordering::Relaxed));
            return; // The fallback is the fs driver's own tests.
        }
        assert!(!root.join("a/file").exists());
        assert_eq!(
            remove_beneath(&root, Path::new("a/one")).unwrap(),
            Beneath::Removed
        );
        assert!(!root.join("a/one").exists());
        assert_eq!(
            remove_beneath(&root, Path::new("a/b")).unwrap(),
            Beneath::Removed
        );
        assert!(!root.join("a/b").exists());
        assert!(
            outside.join("keep").exists(),
            "a link inside is not followed"
        );
        assert_eq!(
            remove_beneath(&root, Path::new("link/keep")).unwrap(),
            Beneath::ThroughSymlink
        );
        assert!(outside.join("keep").exists());
        assert_eq!(
            remove_beneath(&root, Path::new("link")).unwrap(),
            Beneath::Removed,
            "the link itself may go"
        );
        assert!(outside.join("keep").exists());
        std::fs::write(root.join("plain"), b"p").unwrap();
        std::os::unix::fs::symlink(outside.join("keep"), root.join("file-link")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dir-link")).unwrap();
        assert!(matches!(
            open_file_beneath(&root, Path::new("plain")).unwrap(),
            Opened::File(_)
        ));
        for through in ["file-link", "dir-link/keep"] {
            assert!(
                matches!(
                    open_file_beneath(&root, Path::new(through)).unwrap(),
                    Opened::ThroughSymlink
                ),
                "{through}"
            );
        }
        let e = remove_beneath(&root, Path::new("a/absent")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = remove_beneath(&root, Path::new("absent/x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
