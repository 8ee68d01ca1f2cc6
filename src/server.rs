//! Assembles the pingora server: the proxy service on the main listener and the background work
//! (htpasswd watcher), from validated config.

use crate::admin::{AdminApp, Readiness};
use crate::auth::{self, AuthMode, Authenticator};
use crate::config::{Backend, Config};
use crate::proxy::{BackendHandle, Gatehouse};
use crate::registry::Registry;
use crate::storage::StorageConfig;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::sync::Arc;

/// A problem starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The htpasswd file could not be loaded.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The embedded storage could not be opened.
    #[error("storage {root}: {message}")]
    Storage {
        /// The storage root.
        root: String,
        /// Why.
        message: String,
    },
}

/// Builds everything and serves until the process is told to stop (SIGTERM, SIGINT, SIGQUIT).
pub fn run(config: Config) -> Result<(), StartError> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let config = Arc::new(config);
    let authenticator = match config.auth.mode {
        AuthMode::None => {
            tracing::warn!("auth.mode is none: anyone who can reach the port may push and delete");
            None
        }
        AuthMode::Htpasswd => {
            let a = Arc::new(Authenticator::open(&config.auth, config.guard.as_ref())?);
            auth::watch::spawn(a.clone());
            Some(a)
        }
    };
    let backend = match &config.backend {
        Backend::Upstream(u) => {
            tracing::info!(upstream = %u.url, "fronting an upstream registry");
            BackendHandle::Upstream(u.clone())
        }
        Backend::Embedded => BackendHandle::Embedded(Arc::new(open_registry(&config)?)),
    };
    let registry_for_metrics = match &backend {
        BackendHandle::Embedded(r) => Some(r.clone()),
        BackendHandle::Upstream(_) => None,
    };

    let mut conf = ServerConf {
        threads: config.threads,
        // pingora sleeps `grace_period_seconds` after closing its listeners even when idle (it is meant for
        // handing sockets to a new process); requests in flight get the configured time instead.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(config.grace_period_seconds),
        ..ServerConf::default()
    };
    conf.upstream_keepalive_pool_size = 128;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let authenticator_for_ready = authenticator.clone();
    let door = Gatehouse::new(config.clone(), authenticator, backend);
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, door);
    service.add_tcp(&config.listen.to_string());
    server.add_service(service);
    if let Some(m) = &config.metrics {
        let readiness = Readiness {
            auth: authenticator_for_ready,
            storage_root: match &config.backend {
                Backend::Embedded => Some(config.storage.root.clone()),
                Backend::Upstream(_) => None,
            },
            upstream: match &config.backend {
                Backend::Upstream(u) => Some(u.address.clone()),
                Backend::Embedded => None,
            },
        };
        let app = AdminApp::new(readiness, registry_for_metrics, m.basic_auth.clone());
        let mut admin = pingora::services::listening::Service::new("gatehouse metrics".into(), app);
        admin.add_tcp(&m.listen.to_string());
        server.add_service(admin);
        tracing::info!(listen = %m.listen, "metrics and health listener");
    }
    tracing::info!(listen = %config.listen, "gatehouse serving");
    server.run(pingora::server::RunArgs::default());
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// Opens the embedded store (creating its directories, cleaning a killed process's temp files).
fn open_registry(config: &Config) -> Result<Registry, StartError> {
    let storage = StorageConfig {
        root: config.storage.root.clone(),
        delete_enabled: config.storage.delete_enabled,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Storage {
            root: config.storage.root.display().to_string(),
            message: e.to_string(),
        })?;
    let registry = runtime
        .block_on(Registry::open(storage))
        .map_err(|e| StartError::Storage {
            root: config.storage.root.display().to_string(),
            message: e.to_string(),
        })?;
    tracing::info!(root = %config.storage.root.display(), "embedded registry open");
    Ok(registry)
}
