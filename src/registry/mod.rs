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

use crate::authz::Permit;
use crate::errcode::ApiError;
use crate::route::Op;
use crate::storage::{StatsSnapshot, StorageConfig, StorageError, Store};
use http::Method;

pub use crate::reply::{Reply, ReplyBody, Request, RequestBody};

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
    ///
    /// The Permit is what authz allowed: a mount happens only when it names one, and the catalog shows only
    /// what it lets the caller see.
    pub async fn handle(
        &self,
        permit: &Permit,
        req: &Request<'_>,
        body: &mut dyn RequestBody,
    ) -> Reply {
        let head = req.method == Method::HEAD;
        let result = self.dispatch(permit, req, body).await;
        let mut reply = result.unwrap_or_else(Reply::from);
        if head {
            reply.body = ReplyBody::Empty;
        }
        reply
    }

    /// One exhaustive match on the operation: the route already settled the method.
    async fn dispatch(
        &self,
        permit: &Permit,
        req: &Request<'_>,
        body: &mut dyn RequestBody,
    ) -> Result<Reply, ApiError> {
        let s = &self.store;
        match &req.route.op {
            Op::Base => Ok(base::get()),
            Op::Catalog { page } => catalog::get(s, page, &|n| permit.shows(n.as_str())).await,
            Op::Tags { name, page } => tags::list(s, name, page).await,
            Op::GetManifest { name, reference } => manifests::get(s, name, reference).await,
            Op::PutManifest { name, reference } => {
                manifests::put(s, name, reference, req, body).await
            }
            Op::DeleteManifest { name, reference } => manifests::delete(s, name, reference).await,
            Op::GetBlob { name, digest } => blobs::get(s, name, digest, req).await,
            Op::DeleteBlob { name, digest } => blobs::delete(s, name, digest).await,
            Op::StartUpload { name, digest, .. } => {
                uploads::start(s, name, permit.mount(), digest.as_ref(), body).await
            }
            Op::PatchUpload { name, id } => uploads::patch(s, name, id.as_str(), req, body).await,
            Op::UploadStatus { name, id } => uploads::status(s, name, id.as_str()).await,
            Op::FinishUpload {
                name, id, digest, ..
            } => uploads::finish(s, name, id.as_str(), digest.as_ref(), req, body).await,
            Op::CancelUpload { name, id } => uploads::cancel(s, name, id.as_str()).await,
            Op::Referrers {
                name,
                digest,
                artifact_type,
            } => referrers::get(s, name, digest, artifact_type.as_deref()).await,
        }
    }
}

#[cfg(test)]
mod tests;
