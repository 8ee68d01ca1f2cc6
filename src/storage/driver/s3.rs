//! The S3 driver: distribution's `s3` storage driver layout (`<rootdirectory>/docker/registry/v2/...`, the
//! root's leading `/` trimmed) in any S3-compatible bucket, on the `object_store` crate.
//!
//! S3 puts, copies and multipart completions are atomic, so [`Driver::write_atomic`] is one PUT and
//! [`Driver::rename`] a server-side copy and a delete: nothing partial is ever visible at a key. A
//! [`Writer`] ([`writer`]) holds at most one part in memory and makes the object whole only at commit (a
//! multipart upload completed, or one PUT). Ranged reads ([`read`]) fetch bounded ranges one after another, so
//! a slow client never holds a request open past its timeout. Directories are key prefixes. Requests are
//! retried with backoff on 5xx, SlowDown and connection errors (`object_store`'s retry policy, bounded here so a
//! client sees a 503 within seconds when the store is down).

mod copy_part;
mod list;
mod multipart;
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
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// Whether an error means the service is down or overloaded (connection failures, timeouts, 5xx and
/// SlowDown after the retries), not that the request was wrong.
fn unavailable(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<HttpError>() {
            if matches!(
                h.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            ) {
                return true;
            }
        }
        source = s.source();
    }
    // object_store's retry error is private and hides its HttpError; what it retries is what is transient.
    let text = e.to_string();
    text.contains("max_retries:")
        || text.contains("error sending request")
        || text.contains("status code: 5")
        || text.contains("SlowDown")
}

/// An `object_store` error as a [`DriverError`] for `op` on `key`.
pub(crate) fn os_err(op: &'static str, key: &str, e: object_store::Error) -> DriverError {
    match e {
        object_store::Error::NotFound { .. } => DriverError::NotFound {
            path: key.to_string(),
        },
        e if unavailable(&e) => DriverError::Unavailable {
            op,
            path: key.to_string(),
            source: io::Error::other(e),
        },
        e => DriverError::Io {
            op,
            path: key.to_string(),
            source: io::Error::other(e),
        },
    }
}

/// An object's modification time (milliseconds since the epoch) as a `SystemTime`.
fn to_system(millis: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

impl S3Driver {
    /// Builds a driver from validated settings and checks that the bucket answers: a missing bucket or refused
    /// credentials are an error that names the setting.
    pub async fn open(s: &S3Settings) -> Result<S3Driver, DriverError> {
        let mut b = AmazonS3Builder::from_env()
            .with_region(&s.region)
            .with_bucket_name(&s.bucket)
            .with_virtual_hosted_style_request(!s.path_style)
            .with_allow_http(s.allow_http)
            .with_retry(RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: 4,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(s.allow_http)
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120))
                    .with_pool_idle_timeout(Duration::from_secs(60)),
            );
        if let Some(e) = &s.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some((key, secret)) = &s.credentials {
            b = b.with_access_key_id(key).with_secret_access_key(secret);
        }
        let store = b.build().map_err(|e| DriverError::Io {
            op: "configure",
            path: format!("s3://{}", s.bucket),
            source: io::Error::other(e),
        })?;
        let driver = S3Driver {
            inner: Arc::new(Inner {
                store,
                prefix: if s.root.is_empty() {
                    String::new()
                } else {
                    format!("{}/", s.root)
                },
                chunk: s.chunk,
                bucket: s.bucket.clone(),
                region: s.region.clone(),
                http: reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .timeout(Duration::from_secs(300))
                    .build()
                    .map_err(|e| DriverError::Io {
                        op: "configure",
                        path: format!("s3://{}", s.bucket),
                        source: io::Error::other(e),
                    })?,
                redirect: s.redirect,
            }),
        };
        driver.check_bucket(s).await?;
        Ok(driver)
    }

    /// Lists one key of the root: the bucket exists and the credentials may read it.
    async fn check_bucket(&self, s: &S3Settings) -> Result<(), DriverError> {
        let root = Path::from(self.inner.prefix.trim_end_matches('/'));
        let first = self.inner.store.list(Some(&root)).next().await.transpose();
        match first {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = e.to_string();
                let hint = if text.contains("NoSuchBucket") || text.contains("404") {
                    format!(
                        "the bucket `{}` does not exist (REGISTRY_STORAGE_S3_BUCKET, storage.s3.bucket)",
                        s.bucket
                    )
                } else if text.contains("InvalidAccessKeyId")
                    || text.contains("SignatureDoesNotMatch")
                    || text.contains("403")
                {
                    "the credentials were refused (REGISTRY_STORAGE_S3_ACCESSKEY, REGISTRY_STORAGE_S3_SECRETKEY, \
                     storage.s3.accesskey/secretkey, or the AWS environment)"
                        .to_string()
                } else {
                    format!(
                        "the bucket `{}` cannot be reached (REGISTRY_STORAGE_S3_REGIONENDPOINT, \
                         storage.s3.regionendpoint)",
                        s.bucket
                    )
                };
                Err(DriverError::Io {
                    op: "open",
                    path: format!("s3://{}/{}", s.bucket, self.inner.prefix),
                    source: io::Error::other(format!("{hint}: {text}")),
                })
            }
        }
    }

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

    /// Copies `size` bytes at `src` to `dst` server-side as parts of one multipart upload on `dst`.
    async fn multipart_copy(
        &self,
        from: &str,
        src: &Path,
        dst: &Path,
        size: u64,
        etag: Option<String>,
    ) -> Result<(), DriverError> {
        use object_store::multipart::MultipartStore;
        let store = &self.inner.store;
        let id = store
            .create_multipart(dst)
            .await
            .map_err(|e| os_err("rename", from, e))?;
        let copied = async {
            let mut parts = Vec::new();
            let mut start = 0;
            while start < size {
                let end = size.min(start + copy_part::MAX_COPY_PART);
                parts.push(
                    copy_part::copy_part(
                        &self.inner,
                        from,
                        src,
                        dst,
                        &id,
                        parts.len() + 1,
                        etag.as_deref(),
                        start..end,
                    )
                    .await?,
                );
                start = end;
            }
            store
                .complete_multipart(dst, &id, parts)
                .await
                .map_err(|e| os_err("rename", from, e))
        }
        .await;
        if copied.is_err() {
            let _ = store.abort_multipart(dst, &id).await;
        }
        copied.map(drop)
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

/// Aborts the multipart upload the parked state at `at` names (when the session is deleted); a failure is
/// logged, and the upload purge aborts the upload later.
async fn abort_parked(inner: &Inner, at: &Path) {
    use object_store::multipart::MultipartStore;
    let Some(id) = parked::upload_of(inner, at).await else {
        return;
    };
    let data = Path::from(
        at.as_ref()
            .strip_suffix(parked::SUFFIX)
            .unwrap_or(at.as_ref()),
    );
    match inner.store.abort_multipart(&data, &id).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => {
            tracing::warn!(error = %e, key = %data, "aborting a deleted upload's multipart upload")
        }
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
                        abort_parked(&inner, &m.location).await;
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
mod tests {
    use super::*;

    crate::driver_conformance_tests!(async {
        let bucket = testing::bucket().await;
        let driver: Arc<dyn Driver> = Arc::new(S3Driver::open(&bucket.settings()).await.unwrap());
        (bucket, driver)
    });

    async fn small_parts() -> (testing::Bucket, S3Driver) {
        let bucket = testing::bucket().await;
        let mut section = bucket.section();
        section.chunksize = settings::MIN_CHUNK;
        let driver = S3Driver::open(&section.validate().unwrap()).await.unwrap();
        (bucket, driver)
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i % 253) as u8 ^ seed).collect()
    }

    /// Appends that cross part boundaries (multipart uploads, the old content read back into the leading parts)
    /// and small appends to a large object keep every byte in order; a cancelled multipart append changes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_across_parts_keep_every_byte() {
        let (_b, d) = small_parts().await;
        let k = "docker/registry/v2/repositories/a/_uploads/x/data";
        let mut want = Vec::new();
        // 1 MiB client chunks (smaller than a part), then one 7 MiB chunk, then 100 bytes.
        for (round, size) in [(1u8, 1 << 20), (2, 1 << 20), (3, 7 << 20), (4, 100)] {
            let mut w = d.writer(k).await.unwrap();
            let piece = pattern(size, round);
            for c in piece.chunks(65_536) {
                w.write(c).await.unwrap();
            }
            want.extend_from_slice(&piece);
            assert_eq!(w.commit().await.unwrap(), want.len() as u64);
            assert_eq!(d.stat(k).await.unwrap().unwrap().size, want.len() as u64);
        }
        let mut w = d.writer(k).await.unwrap();
        w.write(&pattern(6 << 20, 9)).await.unwrap();
        w.cancel().await.unwrap();
        let got = d.read(k, 64 << 20).await.unwrap();
        assert!(
            got[..] == want[..],
            "{} bytes back, {} written",
            got.len(),
            want.len()
        );
    }

    /// Keys are distribution's: `<rootdirectory>/docker/registry/v2/...` in the bucket, the root's `/` trimmed.
    #[tokio::test]
    async fn keys_are_distributions_layout_under_the_root() {
        let bucket = testing::bucket().await;
        let d = S3Driver::open(&bucket.settings()).await.unwrap();
        let key = "docker/registry/v2/blobs/sha256/ab/abcd/data";
        d.write_atomic(key, b"x").await.unwrap();
        let (status, listing) =
            testing::raw_text("GET", &format!("/{}?list-type=2", bucket.name)).await;
        assert_eq!(status, 200);
        let keys: Vec<&str> = listing
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .collect();
        assert_eq!(keys, vec![format!("gatehouse/{key}")]);
    }

    /// An object too large for CopyObject is renamed as a multipart copy (exercised here on a small object,
    /// one copied part), byte for byte. (moto does not check `x-amz-copy-source-if-match`; S3 answers 412.)
    #[tokio::test]
    async fn a_multipart_copy_moves_every_byte() {
        let (_b, d) = small_parts().await;
        let data = pattern(6 << 20, 3);
        d.write_atomic("big/src", &data).await.unwrap();
        let src = d.loc("big/src").unwrap();
        let dst = d.loc("big/dst").unwrap();
        let etag = d.head("big/src").await.unwrap().unwrap().e_tag;
        d.multipart_copy("big/src", &src, &dst, data.len() as u64, etag)
            .await
            .unwrap();
        assert!(d.read("big/dst", 8 << 20).await.unwrap()[..] == data[..]);
    }

    /// `create_new` writes only when nothing is there (a conditional put), and reports which.
    #[tokio::test]
    async fn create_new_is_a_conditional_put() {
        let bucket = testing::bucket().await;
        let d = S3Driver::open(&bucket.settings()).await.unwrap();
        assert!(d.create_new("gc/lock", b"one").await.unwrap());
        assert!(!d.create_new("gc/lock", b"two").await.unwrap());
        assert_eq!(&d.read("gc/lock", 8).await.unwrap()[..], b"one");
    }

    /// A missing bucket fails at open, naming the setting.
    #[tokio::test]
    async fn a_missing_bucket_fails_at_open_naming_the_setting() {
        let bucket = testing::Bucket {
            name: format!("absent-{:08x}", rand::random::<u32>()),
        };
        let e = S3Driver::open(&bucket.settings())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("REGISTRY_STORAGE_S3_BUCKET") && e.contains(&bucket.name),
            "{e}"
        );
    }

    /// A presigned URL fetches the object without credentials.
    #[tokio::test]
    async fn a_redirect_url_fetches_the_object() {
        let bucket = testing::bucket().await;
        let d = S3Driver::open(&bucket.settings()).await.unwrap();
        d.write_atomic("b/data", b"signed").await.unwrap();
        let url = d.redirect_url("b/data").await.unwrap().unwrap();
        let url = url::Url::parse(&url).unwrap();
        let path = format!("{}?{}", url.path(), url.query().unwrap_or(""));
        assert!(path.contains("X-Amz-Signature"), "{path}");
        assert_eq!(testing::raw("GET", &path).await, 200);
        // Redirects off: no URL, the registry streams.
        let mut section = bucket.section();
        section.redirect_disable = true;
        let d = S3Driver::open(&section.validate().unwrap()).await.unwrap();
        assert_eq!(d.redirect_url("b/data").await.unwrap(), None);
    }

    /// The upload purge aborts multipart uploads (a writer that died mid-chunk) started before its age, under
    /// the root only; a dry run finds them and leaves them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_upload_purge_aborts_abandoned_multipart_uploads() {
        use crate::gc::purge::purge_uploads;
        use object_store::multipart::MultipartStore;
        let bucket = testing::bucket().await;
        let d = S3Driver::open(&bucket.settings()).await.unwrap();
        let key = "docker/registry/v2/repositories/a/_uploads/x/data";
        let store = &d.inner.store;
        for at in [d.loc(key).unwrap(), Path::from("elsewhere/data")] {
            let id = store.create_multipart(&at).await.unwrap();
            store
                .put_part(&at, &id, 0, PutPayload::from(vec![1u8; 100]))
                .await
                .unwrap();
        }
        let v2 = d.loc(crate::storage::paths::V2_ROOT).unwrap();
        let pending = || async { multipart::list(&d.inner, "v2", &v2).await.unwrap().len() };
        assert_eq!(pending().await, 1);
        // Ages count from the start the store reports (moto reports a fixed time in 2010, S3 the real one).
        let started = multipart::list(&d.inner, "v2", &v2).await.unwrap()[0].initiated;
        let (age, now) = (
            Duration::from_secs(3600),
            started + Duration::from_secs(1800),
        );
        let young = purge_uploads(&d, age, now, false).await.unwrap();
        assert!(young.multipart.is_empty(), "{young:?}");
        let later = now + 2 * age;
        let dry = purge_uploads(&d, age, later, true).await.unwrap();
        assert_eq!(dry.multipart, [format!("gatehouse/{key}")]);
        assert_eq!(pending().await, 1, "a dry run aborts nothing");
        let real = purge_uploads(&d, age, later, false).await.unwrap();
        assert_eq!(real.multipart, dry.multipart);
        assert_eq!(pending().await, 0);
        let outside = multipart::list(&d.inner, "x", &Path::from("elsewhere")).await;
        assert_eq!(outside.unwrap().len(), 1, "outside the root: not ours");
    }
}
