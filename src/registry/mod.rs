//! The embedded registry: the OCI distribution spec answered in-process, over [`crate::storage`].
//!
//! The proxy calls [`Registry::handle`] with a parsed [`Route`] once auth and authz have passed; the handler reads
//! the request body through [`RequestBody`] and returns a [`Reply`] that the proxy writes out (adding the common
//! headers in one place). Nothing here knows about pingora, so handlers are tested without a server.

pub mod base;
pub mod blobs;
pub mod catalog;
mod common;
pub mod manifests;
mod ranges;
pub mod referrers;
pub mod tags;
pub mod uploads;

use crate::errcode::{ApiError, Code};
use crate::route::{Route, Target};
use crate::storage::{StatsSnapshot, StorageConfig, StorageError, Store};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

pub use common::{mount_source, query_without_mount};

/// What a handler sees of a request.
pub struct Request<'a> {
    /// The parsed route.
    pub route: &'a Route,
    /// The HTTP method.
    pub method: &'a Method,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, without the `?` (empty when there is none).
    pub query: &'a str,
}

/// A streaming request body.
#[async_trait::async_trait]
pub trait RequestBody: Send {
    /// The next chunk of the body, or `None` at its end.
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>>;
}

/// The body of a reply.
pub enum ReplyBody {
    /// No body.
    Empty,
    /// A small body held in memory (JSON, manifests).
    Bytes(Bytes),
    /// A byte range of a file, streamed by the proxy.
    File {
        /// The open file.
        file: tokio::fs::File,
        /// Where the range starts.
        offset: u64,
        /// How many bytes to send.
        len: u64,
    },
}

/// A handler's answer; the proxy adds the common headers and writes it.
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// Headers specific to this reply (Content-Type, Content-Length, Docker-Content-Digest, Location ...).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body.
    pub body: ReplyBody,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        let body = e.body();
        Reply {
            status: e.status,
            headers: vec![
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json; charset=utf-8"),
                ),
                (http::header::CONTENT_LENGTH, HeaderValue::from(body.len())),
            ],
            body: ReplyBody::Bytes(body),
        }
    }
}

/// The embedded registry: the OCI distribution spec's handlers over a [`Store`].
pub struct Registry {
    store: Store,
}

impl Registry {
    /// Opens the registry on distribution's layout under `config.root`, creating directories and cleaning the
    /// staged temp files a killed process may have left (upload sessions are kept: they are resumable).
    pub async fn open(config: StorageConfig) -> Result<Registry, StorageError> {
        Ok(Registry {
            store: Store::open(config).await?,
        })
    }

    /// A registry over an already opened store (another driver, tests).
    pub fn with_store(store: Store) -> Registry {
        Registry { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Upload and manifest counters, for metrics.
    pub fn stats(&self) -> StatsSnapshot {
        self.store.stats()
    }

    /// Answers one request whose route, auth and authz have been settled; a HEAD gets the GET's headers, no body.
    pub async fn handle(&self, req: &Request<'_>, body: &mut dyn RequestBody) -> Reply {
        let head = req.method == Method::HEAD;
        let result = self.dispatch(req, body).await;
        let mut reply = result.unwrap_or_else(Reply::from);
        if head {
            reply.body = ReplyBody::Empty;
        }
        reply
    }

    /// Answers `GET /v2/_catalog` listing only the repositories `visible` accepts (per-caller filtering).
    pub async fn catalog_visible(
        &self,
        req: &Request<'_>,
        visible: &(dyn Fn(&crate::names::Name) -> bool + Sync),
    ) -> Reply {
        catalog::get_visible(&self.store, req, visible)
            .await
            .unwrap_or_else(Reply::from)
    }

    async fn dispatch(
        &self,
        req: &Request<'_>,
        body: &mut dyn RequestBody,
    ) -> Result<Reply, ApiError> {
        let s = &self.store;
        let m = req.method;
        let read = m == Method::GET || m == Method::HEAD;
        match &req.route.target {
            Target::Base if read => Ok(base::get()),
            Target::Catalog if read => catalog::get(s, req).await,
            Target::TagsList { name } if read => tags::list(s, name, req).await,
            Target::Manifest { name, reference } => match *m {
                Method::GET | Method::HEAD => manifests::get(s, name, reference).await,
                Method::PUT => manifests::put(s, name, reference, req, body).await,
                Method::DELETE => manifests::delete(s, name, reference).await,
                _ => Err(unsupported(m)),
            },
            Target::Blob { name, digest } => match *m {
                Method::GET | Method::HEAD => blobs::get(s, name, digest, req).await,
                Method::DELETE => blobs::delete(s, name, digest).await,
                _ => Err(unsupported(m)),
            },
            Target::UploadStart { name } if m == Method::POST => {
                uploads::start(s, name, req, body).await
            }
            Target::UploadChunk { name, uuid }
            | Target::UploadStatus { name, uuid }
            | Target::UploadFinish { name, uuid }
            | Target::UploadCancel { name, uuid } => match *m {
                Method::PATCH => uploads::patch(s, name, uuid, req, body).await,
                Method::GET => uploads::status(s, name, uuid).await,
                Method::PUT => uploads::finish(s, name, uuid, req, body).await,
                Method::DELETE => uploads::cancel(s, name, uuid).await,
                _ => Err(unsupported(m)),
            },
            Target::Referrers { name, digest } if read => {
                referrers::get(s, name, digest, req).await
            }
            _ => Err(unsupported(m)),
        }
    }
}

fn unsupported(m: &Method) -> ApiError {
    ApiError::new(Code::Unsupported).message(format!("method {m} is not allowed here"))
}

#[cfg(test)]
mod tests;
