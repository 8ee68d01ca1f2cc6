//! The backend: the one runtime value that says where admitted requests are answered, the embedded registry
//! or an upstream v2 registry (a pull-through cache would be a third arm). The proxy and the server match on it
//! here and nowhere else: one method says whether a request is forwarded, one answers it in-process, one says
//! whether the backend is ready, one gives its counters.

use crate::authz::Permit;
use crate::errcode::{ApiError, Code};
use crate::registry::Registry;
use crate::reply::{Reply, Request, RequestBody};
use crate::route::{Op, Route};
use crate::storage::{StatsSnapshot, StorageConfig};
use crate::upstream::UpstreamConfig;
use std::sync::Arc;
use std::time::Duration;

/// Where admitted requests go.
pub enum Backend {
    /// The in-process registry over distribution's layout.
    Embedded(Arc<Registry>),
    /// Another v2 registry, reached through pingora.
    Upstream(Arc<UpstreamConfig>),
}

/// How to forward one request upstream.
#[derive(Debug, Clone)]
pub struct Forward {
    /// The upstream.
    pub upstream: Arc<UpstreamConfig>,
    /// The query to send instead of the client's, rebuilt from the Route and the Permit for the routes whose
    /// parameters gatehouse interprets (`None`: the client's query passes unchanged).
    pub query: Option<String>,
}

/// A backend that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("storage {root}: {message}")]
pub struct OpenError {
    /// The storage root.
    pub root: String,
    /// Why.
    pub message: String,
}

impl Backend {
    /// Opens the embedded registry on `storage` (creating its directories, cleaning a killed process's staged
    /// files) on a runtime of its own, before pingora's runtimes exist.
    pub fn open_embedded(storage: StorageConfig) -> Result<Backend, OpenError> {
        let root = storage.root.display().to_string();
        let fail = |message: String| OpenError {
            root: root.clone(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let registry = runtime
            .block_on(Registry::open(storage))
            .map_err(|e| fail(e.to_string()))?;
        tracing::info!(root = %root, "embedded registry open");
        Ok(Backend::Embedded(Arc::new(registry)))
    }

    /// The upstream backend.
    pub fn upstream(config: UpstreamConfig) -> Backend {
        Backend::Upstream(Arc::new(config))
    }

    /// How to forward an admitted request upstream; `None` when gatehouse answers it itself with
    /// [`Backend::serve`]: everything on the embedded registry, and upstream a catalog the caller may see only part
    /// of, which is read from the upstream and filtered and paged here, so no hidden name reaches the caller in a
    /// body or a `Link`.
    pub fn forward(&self, route: &Route, permit: &Permit) -> Option<Forward> {
        match (self, &route.op, permit.catalog_filter()) {
            (Backend::Embedded(_), ..) | (Backend::Upstream(_), Op::Catalog { .. }, Some(_)) => {
                None
            }
            (Backend::Upstream(upstream), ..) => Some(Forward {
                upstream: upstream.clone(),
                query: route.upstream_query(permit.mount()),
            }),
        }
    }

    /// Answers an admitted request that [`Backend::forward`] did not send upstream.
    pub async fn serve(
        &self,
        permit: &Permit,
        req: &Request<'_>,
        body: &mut dyn RequestBody,
    ) -> Reply {
        match (self, &req.route.op) {
            (Backend::Embedded(registry), _) => registry.handle(permit, req, body).await,
            (Backend::Upstream(upstream), Op::Catalog { page }) => {
                upstream_catalog(upstream, page, permit).await
            }
            (Backend::Upstream(_), _) => Reply::from(
                ApiError::new(Code::Unknown)
                    .message("this request is forwarded, not answered here"),
            ),
        }
    }

    /// Whether the backend can take requests; `Err` says why not.
    pub async fn ready(&self) -> Result<(), String> {
        match self {
            Backend::Embedded(registry) => registry.store().ready().await,
            Backend::Upstream(u) => {
                let connect = tokio::net::TcpStream::connect(u.address.as_str());
                match tokio::time::timeout(Duration::from_secs(2), connect).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("upstream {} unreachable: {e}", u.address)),
                    Err(_) => Err(format!("upstream {} unreachable: timed out", u.address)),
                }
            }
        }
    }

    /// The embedded registry's counters, for the storage metrics; `None` upstream.
    pub fn stats(&self) -> Option<StatsSnapshot> {
        match self {
            Backend::Embedded(registry) => Some(registry.stats()),
            Backend::Upstream(_) => None,
        }
    }
}

/// Upstream catalogs read at once for filtering.
static CATALOG_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The upstream's catalog narrowed to what the Permit shows, then paged at the door.
async fn upstream_catalog(
    upstream: &UpstreamConfig,
    page: &crate::query::Page,
    permit: &Permit,
) -> Reply {
    // Each read may hold the whole upstream catalog in memory: a flood of catalog requests waits its turn here
    // instead of multiplying that.
    let _turn = CATALOG_READS.acquire().await;
    let all = match crate::upstream::catalog(upstream).await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!(upstream = %upstream.url, error = %e, "reading the upstream catalog");
            return Reply::from(
                ApiError::new(Code::Unavailable).message(
                    "the upstream registry's catalog could not be read; try again shortly",
                ),
            );
        }
    };
    crate::registry::catalog::page_of(all, page, &|n| permit.shows(n.as_str()))
}
