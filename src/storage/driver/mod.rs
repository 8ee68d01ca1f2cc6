//! The storage driver trait: the few byte-level operations the registry logic needs, filesystem now and object
//! storage later.
//!
//! Paths are relative, `/`-separated strings built by [`crate::storage::paths`]. A driver promises that a
//! reader never sees a partial file at a final path: [`Driver::write_atomic`] and [`Driver::rename`] are the only
//! ways content reaches one.

pub mod fs;

use async_trait::async_trait;
use bytes::Bytes;
use std::io;

pub use fs::FsDriver;

/// An error from a driver, with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The path does not exist.
    #[error("{path}: not found")]
    NotFound {
        /// The storage path.
        path: String,
    },
    /// A file was larger than the caller allowed.
    #[error("{path}: larger than {max} bytes")]
    TooLarge {
        /// The storage path.
        path: String,
        /// The limit.
        max: u64,
    },
    /// A path that would leave the root or is otherwise malformed.
    #[error("{path}: invalid storage path")]
    InvalidPath {
        /// The offending path.
        path: String,
    },
    /// Any other I/O failure.
    #[error("{path}: {op}: {source}")]
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The storage path.
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

/// What [`Driver::stat`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The size in bytes (0 for directories).
    pub size: u64,
    /// Whether the path is a directory.
    pub is_dir: bool,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's file name (one path component).
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// An open readable object.
pub enum ReadHandle {
    /// A local file and its length (object storage will add a streaming variant).
    File {
        /// The open file, positioned at 0.
        file: tokio::fs::File,
        /// Its length when opened.
        len: u64,
    },
}

/// A file open for appending (upload data).
#[async_trait]
pub trait AppendFile: Send {
    /// The current length: bytes written so far.
    fn len(&self) -> u64;
    /// Whether nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Appends all of `data`.
    async fn write_all(&mut self, data: &[u8]) -> Result<(), DriverError>;
    /// Cuts the file back to `len` bytes (to drop a rejected chunk).
    async fn truncate(&mut self, len: u64) -> Result<(), DriverError>;
    /// Flushes buffers and makes the content durable.
    async fn sync(&mut self) -> Result<(), DriverError>;
}

/// The byte-level storage operations the registry logic is written against.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    /// Metadata of a path, `None` when it does not exist.
    async fn stat(&self, path: &str) -> Result<Option<Metadata>, DriverError>;
    /// The whole content of a small file; [`DriverError::TooLarge`] when it exceeds `max` bytes.
    async fn read(&self, path: &str, max: u64) -> Result<Bytes, DriverError>;
    /// Opens a file for streaming reads.
    async fn open(&self, path: &str) -> Result<ReadHandle, DriverError>;
    /// Writes `data` so that `path` holds either its old content or all of `data`, durably.
    async fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), DriverError>;
    /// Opens `path` for appending, creating it (and its parents) when absent.
    async fn append(&self, path: &str) -> Result<Box<dyn AppendFile>, DriverError>;
    /// Moves `from` to `to` atomically, creating `to`'s parents and replacing what is there.
    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError>;
    /// The entries of a directory, sorted by name; [`DriverError::NotFound`] when it does not exist.
    async fn list(&self, dir: &str) -> Result<Vec<DirEntry>, DriverError>;
    /// Removes a file or a whole directory tree; succeeds when the path is already gone.
    async fn delete(&self, path: &str) -> Result<(), DriverError>;
}
