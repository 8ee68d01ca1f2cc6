//! The S3 driver: distribution's `s3` storage driver layout (`<rootdirectory>/docker/registry/v2/...`, the
//! root's leading `/` trimmed) in any S3-compatible bucket, on the `object_store` crate.
//!
//! S3 puts, copies and multipart completions are atomic, so [`Driver::write_atomic`] is one PUT and
//! [`Driver::rename`] a server-side copy and a delete: nothing partial is ever visible at a key. A
//! [`Writer`] ([`writer`]) holds at most one part in memory and makes the object whole only at commit (a
//! multipart upload completed, or one PUT); between an upload's chunks the multipart upload stays open, parked
//! in the bucket ([`parked`]), so no chunk copies what came before. Ranged reads ([`read`]) fetch bounded ranges one after another, so
//! a slow client never holds a request open past its timeout. Directories are key prefixes. Requests are
//! retried with backoff on 5xx, SlowDown and connection errors (`object_store`'s retry policy, bounded here so a
//! client sees a 503 within seconds when the store is down). Building the client is [`open`]; errors are read in
//! [`error`]; listings `object_store` lacks are [`list`] and [`multipart`].

mod copy_part;
mod error;
mod list;
mod multipart;
mod open;
mod parked;
mod read;
pub mod settings;
#[cfg(test)]
pub(crate) mod testing;
mod writer;

use super::{
    check_key, ByteStream, DirEntry, DirPage, Driver, DriverError, Metadata, Walk, WalkEntry,
    Writer,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(crate) use error::{os_err, to_system};
pub use settings::{S3Section, S3Settings};

/// How long a presigned blob URL stays valid (distribution's S3 driver: 20 minutes).
pub const REDIRECT_TTL: Duration = Duration::from_secs(20 * 60);

/// The shared state of an [`S3Driver`] and its readers and writers.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: AmazonS3,
    /// The key prefix with a trailing `/`, or empty.
    prefix: String,
    pub(crate) chunk: u64,
    pub(crate) bucket: String,
    pub(crate) region: String,
    /// The client for requests `object_store` does not offer (UploadPartCopy).
    pub(crate) http: reqwest::Client,
    /// Whether [`Driver::redirect_url`] gives presigned URLs.
    redirect: bool,
}

/// A [`Driver`] over an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Driver {
    inner: Arc<Inner>,
}

impl S3Driver {
    /// The bucket's key of a driver key (checked).
    fn loc(&self, key: &str) -> Result<Path, DriverError> {
        self.inner.loc(key)
    }

    /// Metadata of the object at exactly `key`.
    async fn head(&self, key: &str) -> Result<Option<object_store::ObjectMeta>, DriverError> {
        match self.inner.store.head(&self.loc(key)?).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(os_err("stat", key, e)),
        }
    }

    /// A writer on `path`: its object's metadata and its parked session, if any.
    async fn open_writer(&self, path: &str) -> Result<writer::S3Writer, DriverError> {
        let loc = self.loc(path)?;
        let existing = self.head(path).await?;
        writer::S3Writer::open(
            self.inner.clone(),
            path.to_string(),
            loc,
            existing.map(|m| (m.size, m.e_tag)),
        )
        .await
    }

    /// The objects under `key/`, lazily paged.
    fn below(
        &self,
        key: &str,
    ) -> Result<BoxStream<'static, object_store::Result<object_store::ObjectMeta>>, DriverError>
    {
        Ok(self.inner.store.list(Some(&self.loc(key)?)))
    }
}

impl Inner {
    pub(crate) fn loc(&self, key: &str) -> Result<Path, DriverError> {
        let key = check_key(key)?;
        Path::parse(format!("{}{key}", self.prefix)).map_err(|_| DriverError::InvalidPath {
            path: key.to_string(),
        })
    }

    /// The driver key of a bucket key under the prefix.
    fn key_of(&self, loc: &Path) -> String {
        let s = loc.as_ref();
        s.strip_prefix(&self.prefix).unwrap_or(s).to_string()
    }
}

struct S3Walk {
    inner: Arc<Inner>,
    stream: BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
    prefix: String,
}

#[async_trait]
impl Walk for S3Walk {
    async fn next(&mut self) -> Result<Option<WalkEntry>, DriverError> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(os_err("walk", &self.prefix, e)),
            Some(Ok(m)) => Ok(Some(WalkEntry {
                key: self.inner.key_of(&m.location),
                size: m.size,
                modified: to_system(m.last_modified.timestamp_millis()),
            })),
        }
    }
}

#[async_trait]
impl Driver for S3Driver {
    async fn stat(&self, path: &str) -> Result<Option<Metadata>, DriverError> {
        if let Some(m) = self.head(path).await? {
            return Ok(Some(Metadata {
                size: m.size,
                is_dir: false,
                modified: to_system(m.last_modified.timestamp_millis()),
            }));
        }
        match self.below(path)?.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(os_err("stat", path, e)),
            Some(Ok(_)) => Ok(Some(Metadata {
                size: 0,
                is_dir: true,
                modified: SystemTime::UNIX_EPOCH,
            })),
        }
    }

    async fn read(&self, path: &str, max: u64) -> Result<Bytes, DriverError> {
        let got = self
            .inner
            .store
            .get(&self.loc(path)?)
            .await
            .map_err(|e| os_err("read", path, e))?;
        if got.meta.size > max {
            return Err(DriverError::TooLarge {
                path: path.to_string(),
                max,
            });
        }
        got.bytes().await.map_err(|e| os_err("read", path, e))
    }

    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn ByteStream>, DriverError> {
        let loc = self.loc(path)?;
        let Some(meta) = self.head(path).await? else {
            return Err(DriverError::NotFound {
                path: path.to_string(),
            });
        };
        if offset > meta.size {
            return Err(DriverError::InvalidOffset {
                path: path.to_string(),
                offset,
                size: meta.size,
            });
        }
        let end = offset.saturating_add(len).min(meta.size);
        Ok(Box::new(read::RangeStream::new(
            self.inner.clone(),
            path.to_string(),
            loc,
            meta.e_tag,
            offset..end,
        )))
    }

    async fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), DriverError> {
        self.inner
            .store
            .put(
                &self.loc(path)?,
                PutPayload::from(Bytes::copy_from_slice(data)),
            )
            .await
            .map_err(|e| os_err("write", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn Writer>, DriverError> {
        Ok(Box::new(self.open_writer(path).await?))
    }

    async fn append_len(&self, path: &str) -> Result<Option<u64>, DriverError> {
        let w = self.open_writer(path).await?;
        Ok((w.is_parked() || w.has_object()).then(|| w.len()))
    }

    async fn seal(&self, path: &str) -> Result<(), DriverError> {
        let w = self.open_writer(path).await?;
        if w.is_parked() {
            Box::new(w).commit().await?;
        }
        Ok(())
    }

    async fn create_new(&self, path: &str, data: &[u8]) -> Result<bool, DriverError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .inner
            .store
            .put_opts(
                &self.loc(path)?,
                PutPayload::from(Bytes::copy_from_slice(data)),
                opts,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(os_err("create_new", path, e)),
        }
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError> {
        let (src, dst) = (self.loc(from)?, self.loc(to)?);
        let size = self.head(from).await?.map(|m| (m.size, m.e_tag));
        match size {
            None => {
                return Err(DriverError::NotFound {
                    path: from.to_string(),
                })
            }
            // CopyObject stops at 5 GiB: larger objects are copied as parts of a multipart upload.
            Some((n, etag)) if n > copy_part::MAX_COPY_PART => {
                self.multipart_copy(from, &src, &dst, n, etag).await?
            }
            Some(_) => self
                .inner
                .store
                .copy(&src, &dst)
                .await
                .map_err(|e| os_err("rename", from, e))?,
        }
        self.inner
            .store
            .delete(&src)
            .await
            .map_err(|e| os_err("rename", from, e))
    }

    async fn list(&self, dir: &str) -> Result<Vec<DirEntry>, DriverError> {
        let listed = self
            .inner
            .store
            .list_with_delimiter(Some(&self.loc(dir)?))
            .await
            .map_err(|e| os_err("list", dir, e))?;
        let name = |p: &Path| p.filename().unwrap_or_default().to_string();
        let mut out: Vec<DirEntry> = listed
            .common_prefixes
            .iter()
            .map(|p| DirEntry {
                name: name(p),
                is_dir: true,
            })
            .chain(listed.objects.iter().map(|o| DirEntry {
                name: name(&o.location),
                is_dir: false,
            }))
            .collect();
        if out.is_empty() {
            return Err(DriverError::NotFound {
                path: dir.to_string(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn abort_multipart_before(
        &self,
        prefix: &str,
        before: SystemTime,
        dry_run: bool,
    ) -> Result<Vec<String>, DriverError> {
        let loc = self.loc(prefix)?;
        multipart::abort_before(&self.inner, prefix, &loc, before, dry_run).await
    }

    async fn list_dirs_after(
        &self,
        dir: &str,
        after: &str,
        limit: usize,
    ) -> Result<DirPage, DriverError> {
        let loc = self.loc(dir)?;
        list::list_dirs(&self.inner, dir, &loc, after, limit).await
    }

    async fn walk(&self, prefix: &str) -> Result<Box<dyn Walk>, DriverError> {
        Ok(Box::new(S3Walk {
            inner: self.inner.clone(),
            stream: self.below(prefix)?,
            prefix: prefix.to_string(),
        }))
    }

    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        let loc = self.loc(path)?;
        match self.inner.store.delete(&loc).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(os_err("delete", path, e)),
        }
        // A parked session's multipart upload goes with its state object.
        let inner = self.inner.clone();
        let below = self
            .below(path)?
            .and_then(move |m| {
                let inner = inner.clone();
                async move {
                    if m.location.as_ref().ends_with(parked::SUFFIX) {
                        parked::abort_parked(&inner, &m.location).await;
                    }
                    Ok(m.location)
                }
            })
            .boxed();
        let mut deleted = self.inner.store.delete_stream(below);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(os_err("delete", path, e)),
            }
        }
        Ok(())
    }

    async fn redirect_url(&self, path: &str) -> Result<Option<String>, DriverError> {
        let loc = self.loc(path)?;
        if !self.inner.redirect {
            return Ok(None);
        }
        let url = self
            .inner
            .store
            .signed_url(http::Method::GET, &loc, REDIRECT_TTL)
            .await
            .map_err(|e| os_err("presign", path, e))?;
        Ok(Some(url.to_string()))
    }
}

#[cfg(test)]
mod tests;
