//! A driver over a disk for tests that watch or interleave with a caller: it counts directory listings, and
//! runs hooks before each delete and after each atomic write (a concurrent writer's or collector's step put
//! exactly in the other's window).

use super::{ByteStream, DirEntry, Driver, DriverError, FsDriver, Metadata, Walk, Writer};
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What runs at a delete or write of the key it is given.
pub type Hook = Box<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// An [`FsDriver`] that counts listings and runs [`Hook`]s around deletes and writes.
pub struct Hooked {
    /// The driver every call goes to.
    pub inner: FsDriver,
    /// Directory listings so far.
    pub listings: AtomicUsize,
    /// Run before each delete, when set.
    pub before_delete: Option<Hook>,
    /// Run after each [`Driver::write_atomic`] that succeeded, when set.
    pub after_write: Option<Hook>,
}

impl Hooked {
    /// A driver over `inner` with no hook.
    pub fn new(inner: FsDriver) -> Hooked {
        Hooked {
            inner,
            listings: AtomicUsize::new(0),
            before_delete: None,
            after_write: None,
        }
    }

    /// Listings since the last call.
    pub fn take_listings(&self) -> usize {
        self.listings.swap(0, Ordering::Relaxed)
    }
}

#[async_trait]
impl Driver for Hooked {
    async fn stat(&self, path: &str) -> Result<Option<Metadata>, DriverError> {
        self.inner.stat(path).await
    }
    async fn read(&self, path: &str, max: u64) -> Result<Bytes, DriverError> {
        self.inner.read(path, max).await
    }
    async fn read_range(
        &self,
        p: &str,
        o: u64,
        l: u64,
    ) -> Result<Box<dyn ByteStream>, DriverError> {
        self.inner.read_range(p, o, l).await
    }
    async fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), DriverError> {
        self.inner.write_atomic(path, data).await?;
        if let Some(hook) = &self.after_write {
            hook(path.to_string()).await;
        }
        Ok(())
    }
    async fn writer(&self, path: &str) -> Result<Box<dyn Writer>, DriverError> {
        self.inner.writer(path).await
    }
    async fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, DriverError> {
        self.inner.create_new(path, data).await
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError> {
        self.inner.rename(from, to).await
    }
    async fn list(&self, dir: &str) -> Result<Vec<DirEntry>, DriverError> {
        self.listings.fetch_add(1, Ordering::Relaxed);
        self.inner.list(dir).await
    }
    async fn walk(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError> {
        self.inner.walk(prefix).await
    }
    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        if let Some(hook) = &self.before_delete {
            hook(path.to_string()).await;
        }
        self.inner.delete(path).await
    }
}
