//! Appending to an S3 object: S3 has no append, so a [`Writer`] rebuilds the object and replaces it atomically
//! at commit.
//!
//! New bytes collect in one buffer; once a part's worth (`chunksize`) is there, a multipart upload to the same
//! key starts and the buffer goes out as a part, so at most about one part is held in memory. The object's old
//! content comes first: read back (pinned to its ETag) into the leading parts. A commit sends the last part and
//! completes the upload, which replaces the object in one step; a small result is one PUT instead. A cancel
//! aborts the multipart upload: the object stays as it was, and so it does when the process dies (the
//! abandoned multipart upload holds no visible key; the upload purge aborts it).

use super::read::RangeStream;
use super::{os_err, Inner};
use crate::storage::driver::{ByteStream, DriverError, Writer};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{GetOptions, MultipartId, ObjectStore, PutPayload};
use std::sync::Arc;

/// An open multipart upload.
struct Upload {
    id: MultipartId,
    parts: Vec<PartId>,
}

/// A [`Writer`] on one S3 key.
pub(crate) struct S3Writer {
    inner: Arc<Inner>,
    key: String,
    loc: Path,
    /// The object's size and ETag when the writer was opened (`None`: absent).
    old: Option<(u64, Option<String>)>,
    /// Bytes written since.
    written: u64,
    /// Bytes not yet sent (fewer than a part, after each write).
    pending: BytesMut,
    upload: Option<Upload>,
}

impl S3Writer {
    pub(crate) fn new(
        inner: Arc<Inner>,
        key: String,
        loc: Path,
        old: Option<(u64, Option<String>)>,
    ) -> S3Writer {
        S3Writer {
            inner,
            key,
            loc,
            old,
            written: 0,
            pending: BytesMut::new(),
            upload: None,
        }
    }

    fn old_len(&self) -> u64 {
        self.old.as_ref().map_or(0, |o| o.0)
    }

    fn err(&self, op: &'static str) -> impl Fn(object_store::Error) -> DriverError + '_ {
        move |e| os_err(op, &self.key, e)
    }

    /// Sends one part.
    async fn put_part(&mut self, data: Bytes) -> Result<(), DriverError> {
        let upload = self.upload.as_mut().expect("a multipart upload is open");
        let part = self
            .inner
            .store
            .put_part(
                &self.loc,
                &upload.id,
                upload.parts.len(),
                PutPayload::from(data),
            )
            .await
            .map_err(|e| os_err("write", &self.key, e))?;
        self.upload.as_mut().expect("open").parts.push(part);
        Ok(())
    }

    /// Sends every whole part of `pending`.
    async fn flush_parts(&mut self) -> Result<(), DriverError> {
        let chunk = self.inner.chunk as usize;
        while self.pending.len() >= chunk {
            let part = self.pending.split_to(chunk).freeze();
            self.put_part(part).await?;
        }
        Ok(())
    }

    /// Starts the multipart upload and puts the object's old content in front of the pending bytes.
    async fn start_upload(&mut self) -> Result<(), DriverError> {
        let id = self
            .inner
            .store
            .create_multipart(&self.loc)
            .await
            .map_err(self.err("write"))?;
        self.upload = Some(Upload {
            id,
            parts: Vec::new(),
        });
        let (old_len, etag) = match &self.old {
            Some((n, etag)) if *n > 0 => (*n, etag.clone()),
            _ => return Ok(()),
        };
        let fresh = std::mem::take(&mut self.pending);
        let mut old = RangeStream::new(
            self.inner.clone(),
            self.key.clone(),
            self.loc.clone(),
            etag,
            0..old_len,
        );
        let mut got = 0u64;
        while let Some(c) = old.next_chunk().await.map_err(|e| DriverError::Io {
            op: "append",
            path: self.key.clone(),
            source: e,
        })? {
            got += c.len() as u64;
            self.pending.extend_from_slice(&c);
            self.flush_parts().await?;
        }
        if got != old_len {
            return Err(DriverError::Io {
                op: "append",
                path: self.key.clone(),
                source: std::io::Error::other(format!(
                    "read back {got} of the object's {old_len} bytes"
                )),
            });
        }
        self.pending.extend_from_slice(&fresh);
        self.flush_parts().await
    }

    /// Aborts the multipart upload, if one is open.
    async fn abort(&mut self) -> Result<(), DriverError> {
        if let Some(u) = self.upload.take() {
            self.inner
                .store
                .abort_multipart(&self.loc, &u.id)
                .await
                .map_err(self.err("cancel"))?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<u64, DriverError> {
        let len = self.old_len() + self.written;
        if self.upload.is_none() {
            if self.written == 0 {
                if self.old.is_none() {
                    self.inner
                        .store
                        .put(&self.loc, PutPayload::new())
                        .await
                        .map_err(self.err("write"))?;
                }
                return Ok(len);
            }
            if len <= self.inner.chunk {
                let mut whole = BytesMut::with_capacity(len as usize);
                if let Some((n, etag)) = self.old.clone().filter(|o| o.0 > 0) {
                    let opts = GetOptions {
                        if_match: etag,
                        ..GetOptions::default()
                    };
                    let old = self
                        .inner
                        .store
                        .get_opts(&self.loc, opts)
                        .await
                        .map_err(self.err("append"))?
                        .bytes()
                        .await
                        .map_err(self.err("append"))?;
                    if old.len() as u64 != n {
                        return Err(DriverError::Io {
                            op: "append",
                            path: self.key.clone(),
                            source: std::io::Error::other(
                                "the object changed while being appended to",
                            ),
                        });
                    }
                    whole.extend_from_slice(&old);
                }
                whole.extend_from_slice(&self.pending);
                self.pending.clear();
                self.inner
                    .store
                    .put(&self.loc, PutPayload::from(whole.freeze()))
                    .await
                    .map_err(self.err("write"))?;
                return Ok(len);
            }
            self.start_upload().await?;
        }
        self.flush_parts().await?;
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending).freeze();
            self.put_part(last).await?;
        }
        let u = self.upload.take().expect("a multipart upload is open");
        let done = self
            .inner
            .store
            .complete_multipart(&self.loc, &u.id, u.parts)
            .await;
        if let Err(e) = done {
            self.upload = Some(Upload {
                id: u.id,
                parts: Vec::new(),
            });
            return Err(os_err("commit", &self.key, e));
        }
        Ok(len)
    }
}

#[async_trait]
impl Writer for S3Writer {
    fn len(&self) -> u64 {
        self.old_len() + self.written
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), DriverError> {
        self.pending.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.pending.len() as u64 >= self.inner.chunk {
            if self.upload.is_none() {
                self.start_upload().await?;
            }
            self.flush_parts().await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, DriverError> {
        match self.finish().await {
            Ok(len) => Ok(len),
            Err(e) => {
                if let Err(abort) = self.abort().await {
                    tracing::warn!(error = %abort, key = self.key, "aborting a failed multipart upload");
                }
                Err(e)
            }
        }
    }

    async fn cancel(mut self: Box<Self>) -> Result<(), DriverError> {
        self.pending.clear();
        self.abort().await
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        let Some(u) = self.upload.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (inner, loc, key) = (self.inner.clone(), self.loc.clone(), self.key.clone());
            rt.spawn(async move {
                if let Err(e) = inner.store.abort_multipart(&loc, &u.id).await {
                    tracing::warn!(error = %e, key, "aborting an abandoned multipart upload");
                }
            });
        }
    }
}
