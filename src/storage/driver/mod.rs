//! The storage driver trait: the few byte-level operations the registry logic needs, shaped so that a local
//! directory and an object store can both offer them (filesystem now, object storage next).
//!
//! Keys are relative, `/`-separated strings built by [`crate::storage::paths`] (distribution's layout, the same on
//! every driver); [`check_key`] is the one check, shared by every driver, that no key can leave the root. A driver
//! promises that a reader never sees a partial object at a final key: [`Driver::write_atomic`] and
//! [`Driver::rename`] are the only ways content reaches one, and bytes given to a [`Writer`] become part of the
//! object only by [`Writer::commit`] ([`Writer::cancel`] drops them). Reads stream in bounded chunks
//! ([`ByteStream`]), so a reader that stops reading holds memory, never a thread. [`open`] is the factory that
//! builds the driver a configuration names.

#[cfg(test)]
pub(crate) mod conformance;
pub mod fs;
#[cfg(test)]
pub(crate) mod hooked;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

pub use fs::FsDriver;

/// A stream of bytes read from storage (a blob, or a range of one): the reply vocabulary's stream, so a blob
/// read goes out as `ReplyBody::Stream` untouched.
pub use crate::reply::ByteStream;

/// Where [`Driver::ready`] writes its probe objects (outside distribution's `docker/registry/v2`).
pub const READY_PREFIX: &str = ".gatehouse-ready";

/// The longest key a driver accepts (S3's limit is 1024 bytes).
pub const MAX_KEY_LEN: usize = 1024;

/// An error from a driver, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The key does not exist.
    #[error("{path}: not found")]
    NotFound {
        /// The storage key.
        path: String,
    },
    /// An object was larger than the caller allowed.
    #[error("{path}: larger than {max} bytes")]
    TooLarge {
        /// The storage key.
        path: String,
        /// The limit.
        max: u64,
    },
    /// A key that would leave the root or is otherwise malformed.
    #[error("{path}: invalid storage path")]
    InvalidPath {
        /// The offending key (cut to [`MAX_KEY_LEN`] characters).
        path: String,
    },
    /// A ranged read that starts after the object's end.
    #[error("{path}: offset {offset} is past the end ({size} bytes)")]
    InvalidOffset {
        /// The storage key.
        path: String,
        /// Where the read was to start.
        offset: u64,
        /// The object's size.
        size: u64,
    },
    /// The driver does not implement an operation (the caller fails closed).
    #[error("{path}: {op} is not supported by this storage driver")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The storage key.
        path: String,
    },
    /// The storage service could not be reached or answered 5xx, after retries (the client may retry later).
    #[error("{path}: {op}: storage unavailable: {source}")]
    Unavailable {
        /// The operation that failed.
        op: &'static str,
        /// The storage key.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Any other I/O failure.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The storage key.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl DriverError {
    /// Whether this is [`DriverError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, DriverError::NotFound { .. })
    }
}

/// Checks that `key` is a relative storage key that cannot leave the root: not empty, at most [`MAX_KEY_LEN`]
/// bytes, `/`-separated components that are neither empty, `.` nor `..`, and no backslash, NUL or other control
/// character anywhere. Every driver calls this before it touches anything.
pub fn check_key(key: &str) -> Result<&str, DriverError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && !c.chars().any(|ch| ch == '\\' || ch.is_control())
        });
    if ok {
        Ok(key)
    } else {
        Err(DriverError::InvalidPath {
            path: key.chars().take(MAX_KEY_LEN).collect(),
        })
    }
}

/// What [`Driver::stat`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The size in bytes (0 for directories).
    pub size: u64,
    /// Whether the key is a directory (a common prefix of other keys on object storage).
    pub is_dir: bool,
    /// When the object was last written (for a directory on object storage: the epoch).
    pub modified: SystemTime,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (one key component).
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// What a walk of keys may take a directory to be without reading it ([`Driver::walk_keys_assuming`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assumed {
    /// It holds this one object: its key is reported.
    Holds(&'static str),
    /// Nothing under it is wanted: nothing is reported.
    Skipped,
}

/// For a directory's key, what a walk of keys may take it to be without reading it; `None`: read it.
pub type Assume = fn(&str) -> Option<Assumed>;

/// One object found by [`Driver::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// The object's full key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// One page of [`Driver::list_dirs_after`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirPage {
    /// Directory names (one key component each), in the order of `name/`.
    pub names: Vec<String>,
    /// The `after` of the next page, `None` when this was the last.
    pub next: Option<String>,
}

/// The `after` that continues a listing past the directory whose common prefix is `name_slash` (`name/`): every
/// key under `name/` sorts before `name0` (`0` follows `/`), and nothing else sorts between.
pub fn after_dir(name_slash: &str) -> String {
    let mut s = name_slash
        .strip_suffix('/')
        .unwrap_or(name_slash)
        .to_string();
    s.push('0');
    s
}

/// The objects under a prefix, found a batch at a time (memory stays bounded by one directory, not the tree).
#[async_trait]
pub trait Walk: Send {
    /// The next object, or `None` when the walk is done; order is unspecified.
    async fn next(&mut self) -> Result<Option<WalkEntry>, DriverError>;
}

/// Bytes being appended to one object; nothing written becomes part of it before [`Writer::commit`] (or, for
/// the next writer only, [`Writer::park`]).
///
/// A writer must end with `commit` or `cancel`: what dropping it in between leaves is unspecified.
#[async_trait]
pub trait Writer: Send {
    /// The object's length if committed now: its length at open plus the bytes written since.
    fn len(&self) -> u64;
    /// Whether the object would be empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends all of `data`.
    async fn write(&mut self, data: &[u8]) -> Result<(), DriverError>;
    /// Makes what was written part of the object, durably: when this returns, every fresh reader sees it.
    /// Returns the object's length.
    async fn commit(self: Box<Self>) -> Result<u64, DriverError>;
    /// Drops what was written since the writer was opened; the object is as it was.
    async fn cancel(self: Box<Self>) -> Result<(), DriverError>;
    /// Makes what was written durable and part of the object for the next writer and for
    /// [`Driver::append_len`], but not necessarily for readers: they see it after [`Driver::seal`] or a later
    /// [`Writer::commit`] (object storage keeps an upload's chunks in one open multipart upload). Returns the
    /// object's length. A driver that appends in place commits.
    async fn park(self: Box<Self>) -> Result<u64, DriverError> {
        self.commit().await
    }
}

/// The byte-level storage operations the registry logic is written against.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Metadata of a key, `None` when it does not exist.
    async fn stat(&self, path: &str) -> Result<Option<Metadata>, DriverError>;
    /// The whole content of a small object; [`DriverError::TooLarge`] when it exceeds `max` bytes.
    async fn read(&self, path: &str, max: u64) -> Result<Bytes, DriverError>;
    /// Streams `len` bytes from `offset`, fewer when the object ends first; [`DriverError::InvalidOffset`] when
    /// `offset` is past the end (at the end: an empty stream), [`DriverError::NotFound`] when there is no object.
    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn ByteStream>, DriverError>;
    /// Writes `data` so that `path` holds either its old content or all of `data`, durably.
    async fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), DriverError>;
    /// Opens `path` for appending (creating it, empty, when absent); see [`Writer`].
    async fn writer(&self, path: &str) -> Result<Box<dyn Writer>, DriverError>;
    /// Writes `data` at `path` only when no object is there, atomically (a lock or lease object):
    /// `Ok(true)` when written, `Ok(false)` when something already was.
    async fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, DriverError> {
        let _ = data;
        Err(DriverError::Unsupported {
            op: "create_new",
            path: check_key(path)?.to_string(),
        })
    }
    /// The length of an object being appended to, parked bytes ([`Writer::park`]) included; `None` when absent.
    async fn append_len(&self, path: &str) -> Result<Option<u64>, DriverError> {
        Ok(self.stat(path).await?.filter(|m| !m.is_dir).map(|m| m.size))
    }
    /// Makes the bytes parked at `path` ([`Writer::park`]) part of the object readers see (read, stat, rename);
    /// nothing to do when none are. A driver that never parks has nothing to do.
    async fn seal(&self, path: &str) -> Result<(), DriverError> {
        check_key(path)?;
        Ok(())
    }
    /// Moves `from` to `to` atomically, replacing what is there.
    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError>;
    /// The entries directly under a prefix, sorted by name; [`DriverError::NotFound`] when there are none.
    async fn list(&self, dir: &str) -> Result<Vec<DirEntry>, DriverError>;
    /// One page of the directories directly under `dir`, in object storage's order of common prefixes (by name
    /// with a `/` appended, which is not the order of the names: `a-b/` < `a/`), starting with the first whose
    /// `name/` sorts after `after` (`""`: from the start), at most `limit` of them. Returns the names and where the
    /// next page starts (`None`: there is none). An absent directory has no entries. Object storage answers it with
    /// one delimited listing from `after` (S3's `StartAfter`), so a large directory is never read whole for a page.
    async fn list_dirs_after(
        &self,
        dir: &str,
        after: &str,
        limit: usize,
    ) -> Result<DirPage, DriverError> {
        let mut names: Vec<String> = match self.list(dir).await {
            Ok(entries) => entries
                .into_iter()
                .filter(|e| e.is_dir)
                .map(|e| e.name + "/")
                .filter(|n| n.as_str() > after)
                .collect(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        let limit = limit.max(1);
        let next = (names.len() > limit).then(|| after_dir(&names[limit - 1]));
        names.truncate(limit);
        for n in &mut names {
            n.pop();
        }
        Ok(DirPage { names, next })
    }
    /// Aborts the unfinished multipart uploads under `prefix` started before `before` (object storage's
    /// abandoned writes: invisible at any key, their parts stored until aborted); with `dry_run` only finds them.
    /// Returns their keys. A driver without multipart uploads has none.
    async fn abort_multipart_before(
        &self,
        prefix: &str,
        before: SystemTime,
        dry_run: bool,
    ) -> Result<Vec<String>, DriverError> {
        let _ = (before, dry_run);
        check_key(prefix)?;
        Ok(Vec::new())
    }
    /// Every object under a prefix, at any depth (an absent prefix walks nothing).
    async fn walk(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError>;
    /// The objects [`Driver::walk`] finds, for a caller that needs neither sizes nor times: a driver may report
    /// size 0 and the epoch when knowing them costs a call per object (a disk's stat; a listing has them).
    async fn walk_keys(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError> {
        self.walk(prefix).await
    }
    /// [`Driver::walk_keys`], where a directory that `assume` names an object for is taken to hold that object
    /// and is not read: a layout whose leaf directories each hold one known object (a registry's links and blob
    /// data) is walked reading a fraction of its directories. The object may be missing (the caller reading it
    /// finds out), and what else such a directory holds is not seen; a directory `assume` skips is not read
    /// at all. A driver with a flat listing (object storage) may walk keys as usual, skipped directories
    /// included: that costs it no more.
    async fn walk_keys_assuming(
        &self,
        prefix: &str,
        _assume: Assume,
    ) -> Result<Box<dyn Walk>, DriverError> {
        self.walk_keys(prefix).await
    }
    /// Removes an object or every object under a prefix; succeeds when nothing is there.
    async fn delete(&self, path: &str) -> Result<(), DriverError>;
    /// [`Driver::delete`] of each path, in order, stopping at the first error; a driver may do them in fewer
    /// round trips (a disk: one blocking job, instead of one per path).
    async fn delete_many(&self, paths: &[&str]) -> Result<(), DriverError> {
        for p in paths {
            self.delete(p).await?;
        }
        Ok(())
    }
    /// A URL a client may fetch the object from directly (object storage's presigned GET); `None` when the
    /// driver has none, so the registry streams the object itself.
    async fn redirect_url(&self, path: &str) -> Result<Option<String>, DriverError> {
        check_key(path)?;
        Ok(None)
    }
    /// Whether the storage can be written now: an object written, read back and deleted; the error says why not.
    async fn ready(&self) -> Result<(), String> {
        // Unique per probe: two probes at once must not delete each other's object.
        let key = format!(
            "{READY_PREFIX}/{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let probe = async {
            self.write_atomic(&key, b"ok").await?;
            let back = self.read(&key, 16).await?;
            self.delete(&key).await?;
            Ok::<_, DriverError>(back)
        }
        .await;
        match probe {
            Ok(back) if &back[..] == b"ok" => Ok(()),
            Ok(_) => Err(format!(
                "storage: {key}: read back other bytes than written"
            )),
            Err(e) => Err(format!("storage not writable: {e}")),
        }
    }
}

/// Builds the driver `config` names (the filesystem driver at its root; object storage next), creating the
/// top directories of distribution's layout so a fresh root is recognisable.
pub async fn open(config: &crate::storage::StorageConfig) -> Result<Arc<dyn Driver>, DriverError> {
    if let Some(s3) = &config.s3 {
        return Ok(Arc::new(s3::S3Driver::open(s3).await?));
    }
    let fs = FsDriver::new(&config.root).await?;
    for dir in [
        crate::storage::paths::blobs_root(),
        crate::storage::paths::repositories_root(),
    ] {
        fs.create_dir(&dir).await?;
    }
    Ok(Arc::new(fs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_keys_are_refused() {
        let long = "a/".repeat(MAX_KEY_LEN / 2) + "b";
        for bad in [
            "",
            "/",
            "/etc/passwd",
            "..",
            ".",
            "../x",
            "a/../../x",
            "a/..",
            "a/./b",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "..\\..\\x",
            "a\0b",
            "a\nb",
            "a\rb",
            "a\u{7f}b",
            "a\u{85}b",
            &long,
        ] {
            assert!(
                matches!(check_key(bad), Err(DriverError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn layout_keys_are_accepted() {
        for good in [
            "docker/registry/v2/blobs/sha256/ab/abcd/data",
            "docker/registry/v2/repositories/team/app/_manifests/tags/v1.0/current/link",
            ".gatehouse-ready-1",
            "a...b/..c/c..",
            "x",
        ] {
            assert_eq!(check_key(good).unwrap(), good);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn an_accepted_key_never_climbs_out(key in "[a-z./\\\\]{0,24}") {
            if check_key(&key).is_ok() {
                let mut depth = 0i32;
                for c in key.split('/') {
                    depth += if c == ".." { -1 } else { 1 };
                    proptest::prop_assert!(depth > 0 && c != "." && !c.is_empty());
                }
                proptest::prop_assert!(!key.starts_with('/') && !key.contains('\\'));
            }
        }
    }
}
