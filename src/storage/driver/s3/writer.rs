//! Appending to an S3 object: S3 has no append, so a [`Writer`] builds the object in a multipart upload and
//! makes it whole at commit; between chunks the upload stays open, parked in the bucket ([`parked`]).
//!
//! New bytes collect in one buffer; once a part's worth (`chunksize`) is there it goes out as a part, so at most
//! about one part is held in memory. What the object held before comes first: a parked session's parts are
//! already in its multipart upload and its tail starts the buffer; a plain object is copied server-side into the
//! leading parts when it is at least S3's 5 MiB minimum part ([`copy_part`]), read back otherwise, either way
//! pinned to its ETag.
//!
//! [`Writer::park`] (the end of a PATCH) sends what makes a part (at least 5 MiB), keeps the shorter rest as the
//! tail, and records the session with one conditional PUT of its state: no copy of what came before, whatever
//! the number of chunks. [`Writer::commit`] sends the tail as the last part and completes the upload, which
//! replaces the object in one step (a small result is one PUT instead), then removes the state. A cancel drops
//! what this writer sent: a multipart upload it started is aborted, parts it added to a parked one are never
//! recorded. A process that dies leaves the object as it was (an abandoned multipart upload holds no visible
//! key; the upload purge aborts it).

use super::copy_part::{copy_part, MAX_COPY_PART};
use super::parked::{self, Header, Parked};
use super::read::RangeStream;
use super::settings::MIN_CHUNK;
use super::{os_err, Inner};
use crate::storage::driver::{ByteStream, DriverError, Writer};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, ObjectStore, PutPayload};
use std::sync::Arc;

/// An open multipart upload.
struct Upload {
    id: MultipartId,
    /// Its parts in order, with their sizes.
    parts: Vec<(PartId, u64)>,
    /// Whether this writer started it (and so aborts it when the writer fails or is cancelled).
    ours: bool,
}

/// A [`Writer`] on one S3 key.
pub(crate) struct S3Writer {
    inner: Arc<Inner>,
    key: String,
    loc: Path,
    /// The object's size and ETag when the writer was opened (`None`: absent).
    old: Option<(u64, Option<String>)>,
    /// The parked session found at open, if any.
    parked: Option<Parked>,
    /// The length at open: the parked session's, else the object's.
    base_len: u64,
    /// Bytes written since.
    written: u64,
    /// Bytes not yet sent (fewer than a part, after each write).
    pending: BytesMut,
    /// Whether what came before this writer is in place (in the upload's parts, or at the front of `pending`).
    placed: bool,
    upload: Option<Upload>,
}

impl S3Writer {
    /// Opens a writer on `key`: its object's metadata, then its parked state if one is current.
    pub(crate) async fn open(
        inner: Arc<Inner>,
        key: String,
        loc: Path,
        old: Option<(u64, Option<String>)>,
    ) -> Result<S3Writer, DriverError> {
        let now = old.as_ref().map(|(n, e)| (e.as_deref(), *n));
        let parked = parked::load(&inner, &key, &loc, now).await?;
        let (base_len, pending, upload) = match &parked {
            Some(p) => (
                p.len(),
                BytesMut::from(&p.tail[..]),
                p.header.upload_id.as_ref().map(|id| Upload {
                    id: id.clone(),
                    parts: p
                        .header
                        .parts
                        .iter()
                        .map(|(e, n)| {
                            (
                                PartId {
                                    content_id: e.clone(),
                                },
                                *n,
                            )
                        })
                        .collect(),
                    ours: false,
                }),
            ),
            None => (old.as_ref().map_or(0, |o| o.0), BytesMut::new(), None),
        };
        Ok(S3Writer {
            inner,
            key,
            loc,
            placed: parked.is_some() || base_len == 0,
            old,
            parked,
            base_len,
            written: 0,
            pending,
            upload,
        })
    }

    /// Whether the object has a parked session (bytes readers do not see until a commit).
    pub(crate) fn is_parked(&self) -> bool {
        self.parked.is_some()
    }

    /// Whether there was an object at the key when the writer was opened.
    pub(crate) fn has_object(&self) -> bool {
        self.old.is_some()
    }

    fn err(&self, op: &'static str) -> impl Fn(object_store::Error) -> DriverError + '_ {
        move |e| os_err(op, &self.key, e)
    }

    /// Starts a multipart upload (this writer's).
    async fn create_upload(&mut self) -> Result<(), DriverError> {
        let id = self
            .inner
            .store
            .create_multipart(&self.loc)
            .await
            .map_err(self.err("write"))?;
        self.upload = Some(Upload {
            id,
            parts: Vec::new(),
            ours: true,
        });
        Ok(())
    }

    /// Sends one part (starting the upload when there is none).
    async fn put_part(&mut self, data: Bytes) -> Result<(), DriverError> {
        if self.upload.is_none() {
            self.create_upload().await?;
        }
        let upload = self.upload.as_ref().expect("a multipart upload is open");
        let size = data.len() as u64;
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
        self.upload.as_mut().expect("open").parts.push((part, size));
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

    /// Puts the plain object's old content in front of the pending bytes: copied server-side into the leading
    /// parts of a new multipart upload when it is large enough to be parts, else read back into the buffer.
    async fn place(&mut self) -> Result<(), DriverError> {
        if self.placed {
            return Ok(());
        }
        let (old_len, etag) = match &self.old {
            Some((n, etag)) => (*n, etag.clone()),
            None => (0, None),
        };
        if old_len >= MIN_CHUNK {
            self.create_upload().await?;
            let id = self.upload.as_ref().expect("open").id.clone();
            let mut start = 0;
            while start < old_len {
                let end = old_len.min(start + MAX_COPY_PART);
                let part = self.upload.as_ref().expect("open").parts.len() + 1;
                let copied = copy_part(
                    &self.inner,
                    &self.key,
                    &self.loc,
                    &self.loc,
                    &id,
                    part,
                    etag.as_deref(),
                    start..end,
                )
                .await?;
                self.upload
                    .as_mut()
                    .expect("open")
                    .parts
                    .push((copied, end - start));
                start = end;
            }
            self.placed = true;
            return self.flush_parts().await;
        }
        let fresh = std::mem::take(&mut self.pending);
        let mut got = 0u64;
        if old_len > 0 {
            let mut old = RangeStream::new(
                self.inner.clone(),
                self.key.clone(),
                self.loc.clone(),
                etag,
                0..old_len,
            );
            while let Some(c) = old.next_chunk().await.map_err(|e| DriverError::Io {
                op: "append",
                path: self.key.clone(),
                source: e,
            })? {
                got += c.len() as u64;
                self.pending.extend_from_slice(&c);
            }
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
        self.placed = true;
        self.flush_parts().await
    }

    /// Aborts the multipart upload if this writer started it.
    async fn abort(&mut self) -> Result<(), DriverError> {
        match self.upload.take() {
            Some(u) if u.ours => self
                .inner
                .store
                .abort_multipart(&self.loc, &u.id)
                .await
                .map_err(self.err("cancel")),
            _ => Ok(()),
        }
    }

    /// Records what was written as the parked session: whole parts sent, the rest as the tail.
    async fn park_now(&mut self) -> Result<u64, DriverError> {
        let len = Writer::len(self);
        if self.written == 0 {
            return Ok(len);
        }
        self.place().await?;
        self.flush_parts().await?;
        if self.pending.len() as u64 >= MIN_CHUNK {
            let part = std::mem::take(&mut self.pending).freeze();
            self.put_part(part).await?;
        }
        let base = match &self.parked {
            Some(p) => p.header.base.clone(),
            None => self
                .old
                .as_ref()
                .map(|(n, e)| (e.clone().unwrap_or_default(), *n)),
        };
        let header = Header {
            base,
            upload_id: self.upload.as_ref().map(|u| u.id.clone()),
            parts: self.upload.as_ref().map_or_else(Vec::new, |u| {
                u.parts
                    .iter()
                    .map(|(p, n)| (p.content_id.clone(), *n))
                    .collect()
            }),
        };
        parked::store(
            &self.inner,
            &self.key,
            &self.loc,
            self.parked.as_ref(),
            &header,
            &self.pending,
        )
        .await?;
        // The upload is the session's now: it outlives this writer.
        if let Some(u) = self.upload.as_mut() {
            u.ours = false;
        }
        self.pending.clear();
        Ok(len)
    }

    async fn finish(&mut self) -> Result<u64, DriverError> {
        let len = Writer::len(self);
        if self.written == 0 && self.parked.is_none() {
            if self.old.is_none() {
                self.inner
                    .store
                    .put(&self.loc, PutPayload::new())
                    .await
                    .map_err(self.err("write"))?;
            }
            return Ok(len);
        }
        if self.upload.is_none() && len <= self.inner.chunk {
            self.place().await?;
            if self.upload.is_none() {
                let whole = std::mem::take(&mut self.pending).freeze();
                self.inner
                    .store
                    .put(&self.loc, PutPayload::from(whole))
                    .await
                    .map_err(self.err("write"))?;
                return self.unpark(len).await;
            }
        }
        self.place().await?;
        self.flush_parts().await?;
        if !self.pending.is_empty() || self.upload.is_none() {
            let last = std::mem::take(&mut self.pending).freeze();
            self.put_part(last).await?;
        }
        let u = self.upload.as_ref().expect("a multipart upload is open");
        let parts: Vec<PartId> = u.parts.iter().map(|p| p.0.clone()).collect();
        self.inner
            .store
            .complete_multipart(&self.loc, &u.id, parts)
            .await
            .map_err(|e| os_err("commit", &self.key, e))?;
        self.upload = None;
        self.unpark(len).await
    }

    /// Removes the parked state once the object is whole (a state left behind is stale: the object changed).
    async fn unpark(&mut self, len: u64) -> Result<u64, DriverError> {
        if self.parked.take().is_some() {
            if let Err(e) = parked::remove(&self.inner, &self.key, &self.loc).await {
                tracing::warn!(error = %e, key = self.key, "removing a sealed upload's state");
            }
        }
        Ok(len)
    }
}

#[async_trait]
impl Writer for S3Writer {
    fn len(&self) -> u64 {
        self.base_len + self.written
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), DriverError> {
        self.pending.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.pending.len() as u64 >= self.inner.chunk {
            self.place().await?;
            self.flush_parts().await?;
        }
        Ok(())
    }

    async fn park(mut self: Box<Self>) -> Result<u64, DriverError> {
        match self.park_now().await {
            Ok(len) => Ok(len),
            Err(e) => {
                if let Err(abort) = self.abort().await {
                    tracing::warn!(error = %abort, key = self.key, "aborting a failed multipart upload");
                }
                Err(e)
            }
        }
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
        let Some(u) = self.upload.take().filter(|u| u.ours) else {
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
