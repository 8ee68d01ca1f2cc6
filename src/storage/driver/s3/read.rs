//! Ranged reads from S3 as a [`ByteStream`]: one bounded ranged GET at a time ([`RANGE_REQUEST`] bytes), the
//! next one sent only when the previous body is used up, each pinned to the object's ETag so a replaced object
//! fails the read instead of splicing two versions.

use super::{os_err, Inner};
use crate::storage::driver::ByteStream;
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use std::ops::Range;
use std::sync::Arc;

/// The most bytes one GET asks for: a slow reader holds one request open for at most this much.
pub const RANGE_REQUEST: u64 = 16 << 20;

/// The bytes `range` of one object, fetched a bounded range at a time.
pub(crate) struct RangeStream {
    inner: Arc<Inner>,
    key: String,
    loc: Path,
    etag: Option<String>,
    /// What is still to be requested.
    todo: Range<u64>,
    body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// How many bytes the open body still owes.
    owed: u64,
}

impl RangeStream {
    pub(crate) fn new(
        inner: Arc<Inner>,
        key: String,
        loc: Path,
        etag: Option<String>,
        range: Range<u64>,
    ) -> RangeStream {
        RangeStream {
            inner,
            key,
            loc,
            etag,
            todo: range,
            body: None,
            owed: 0,
        }
    }
}

#[async_trait]
impl ByteStream for RangeStream {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if let Some(body) = self.body.as_mut() {
                match body.next().await {
                    Some(Ok(c)) if c.is_empty() => continue,
                    Some(Ok(c)) if c.len() as u64 <= self.owed => {
                        self.owed -= c.len() as u64;
                        return Ok(Some(c));
                    }
                    Some(Ok(_)) => {
                        self.body = None;
                        return Err(std::io::Error::other(format!(
                            "{}: the store sent more than the range asked",
                            self.key
                        )));
                    }
                    Some(Err(e)) => {
                        self.body = None;
                        return Err(std::io::Error::other(os_err("read", &self.key, e)));
                    }
                    None if self.owed == 0 => self.body = None,
                    None => {
                        self.body = None;
                        return Err(std::io::Error::other(format!(
                            "{}: the store's answer ended {} bytes short",
                            self.key, self.owed
                        )));
                    }
                }
            }
            if self.todo.is_empty() {
                return Ok(None);
            }
            let end = self.todo.end.min(self.todo.start + RANGE_REQUEST);
            let opts = GetOptions {
                range: Some(GetRange::Bounded(self.todo.start..end)),
                if_match: self.etag.clone(),
                ..GetOptions::default()
            };
            let got = self
                .inner
                .store
                .get_opts(&self.loc, opts)
                .await
                .map_err(|e| std::io::Error::other(os_err("read", &self.key, e)))?;
            self.owed = end - self.todo.start;
            self.todo.start = end;
            self.body = Some(got.into_stream());
        }
    }
}
