//! Assembles the pingora server from validated config: the backend, the proxy service on the main listener
//! (each connection bounded by [`crate::timeouts`]), the metrics and health listener, and the background work.

use crate::admin::{AdminApp, Readiness};
use crate::auth::{self, AuthMode, Authenticator};
use crate::backend::{self, Backend};
use crate::config::Config;
use crate::proxy::Gatehouse;
use crate::storage::StorageConfig;
use crate::timeouts::Bounded;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use std::sync::Arc;

/// A problem starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The htpasswd file could not be loaded.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The embedded storage could not be opened.
    #[error(transparent)]
    Storage(#[from] backend::OpenError),
    /// A listener address cannot be bound (taken, not local, no permission).
    #[error("cannot listen on {addr} ({what})")]
    Listen {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Fails with the address when a listener cannot be bound, before pingora starts (it would retry and keep a
/// process without a listener running).
fn check_bindable(what: &'static str, addr: &str) -> Result<(), StartError> {
    std::net::TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| StartError::Listen {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// Builds everything and serves until the process is told to stop (SIGTERM, SIGINT, SIGQUIT).
pub fn run(config: Config) -> Result<(), StartError> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    let listen = config.listen.to_string();
    check_bindable("main listener", &listen)?;
    if let Some(m) = &config.metrics {
        check_bindable("metrics listener", &m.listen.to_string())?;
    }
    let config = Arc::new(config);
    let authenticator = match config.auth.mode {
        AuthMode::None => {
            tracing::warn!("auth.mode is none: anyone who can reach the port may push and delete");
            None
        }
        AuthMode::Htpasswd => {
            let a = Arc::new(Authenticator::open(&config.auth, config.guard.as_ref())?);
            Some(a)
        }
    };
    let backend = Arc::new(match &config.backend {
        crate::config::Backend::Upstream(u) => {
            tracing::info!(upstream = %u.url, "fronting an upstream registry");
            Backend::upstream(u.clone())
        }
        crate::config::Backend::Embedded => Backend::open_embedded(StorageConfig {
            root: config.storage.root.clone(),
            delete_enabled: config.storage.delete_enabled,
        })?,
    });

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
    let door = Gatehouse::new(config.clone(), authenticator.clone(), backend.clone());
    let proxy = pingora::proxy::http_proxy(&server.configuration, door);
    let mut service = pingora::services::listening::Service::new(
        "gatehouse".into(),
        Bounded::new(proxy, config.timeouts),
    );
    service.add_tcp(&listen);
    server.add_service(service);
    if let Some(a) = &authenticator {
        let watch = crate::services::HtpasswdWatch(a.clone());
        server.add_service(background_service("htpasswd watch", watch));
    }
    if let Backend::Embedded(registry) = &*backend {
        let count = crate::services::BlobCount(registry.clone());
        server.add_service(background_service("blob count", count));
        let gc =
            crate::gc::service::Collector::register(registry.store().shared_driver(), &config.gc);
        server.add_service(background_service("gc", crate::gc::service::Scheduled(gc)));
        if let Some(settings) = config.gc.purging.clone() {
            let driver = registry.store().shared_driver();
            let purging = crate::gc::service::Purging { driver, settings };
            server.add_service(background_service("upload purging", purging));
        }
    }
    if let Some(m) = &config.metrics {
        let readiness = Readiness {
            auth: authenticator,
            backend,
        };
        let app = AdminApp::new(readiness, m.basic_auth.clone());
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
