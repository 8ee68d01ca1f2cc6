//! Assembles the pingora server from validated config: the backend, the proxy service on the main listener
//! (each connection bounded by [`crate::timeouts`]), the metrics and health listener, and the background work.
//!
//! Lifecycle (pingora's signals, plus SIGHUP): SIGTERM stops accepting, lets requests in flight finish for up to
//! `server.grace_period_seconds` and exits at once when idle; SIGINT exits at once; SIGHUP reloads the config
//! file ([`crate::live`]); SIGQUIT hands the listening sockets to a new process started with
//! `serve --upgrade` (over `server.upgrade_socket`), then drains like SIGTERM: an upgrade refuses no
//! connection and cuts no transfer.

use crate::admin::{AdminApp, Readiness};
use crate::auth::{self, AuthMode, Authenticator};
use crate::backend::{self, Backend};
use crate::config::Config;
use crate::live::{Live, LiveConfig, LogFilter};
use crate::proxy::Gatehouse;
use crate::storage::StorageConfig;
use crate::timeouts::Bounded;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use std::path::PathBuf;
use std::sync::Arc;

/// How `serve` was started, besides the config.
#[derive(Default)]
pub struct RunOptions {
    /// The config file a SIGHUP reads again.
    pub config_path: Option<PathBuf>,
    /// Sets the running log filter on reload.
    pub log_filter: Option<LogFilter>,
    /// Take the listeners over from a running gatehouse (which is then sent SIGQUIT) instead of binding them.
    pub upgrade: bool,
    /// Runs just before a drained server exits the process (flushes the log).
    pub on_exit: Option<Box<dyn FnOnce() + Send>>,
}

/// A problem starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The htpasswd file could not be loaded.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The embedded storage could not be opened.
    #[error(transparent)]
    Storage(#[from] backend::OpenError),
    /// The TLS files or client CAs could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The ACME state directory cannot be used.
    #[error(transparent)]
    Acme(#[from] crate::acme::AcmeError),
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
pub fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Until the reload service listens, a SIGHUP must not end the process (its default action).
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory-safety preconditions.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let listen = config.listen.to_string();
    // When upgrading, the running process holds the addresses and hands them over.
    if !options.upgrade {
        check_bindable("main listener", &listen)?;
        if let Some(m) = &config.metrics {
            check_bindable("metrics listener", &m.listen.to_string())?;
        }
        if let Some(p) = &config.plain_http {
            check_bindable("plain-HTTP listener", &p.listen.to_string())?;
        }
    }
    let config = Arc::new(config);
    let tokens = Arc::new(crate::tls::plain::Http01Tokens::default());
    let (certs, acme) = crate::tls::open_store(config.tls.as_ref(), config.acme.as_ref())?;
    // From files or by ACME (the start-up line said `tls=false` under ACME).
    let serves_tls = certs.is_some();
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
            s3: config.storage.s3.clone(),
        })?,
    });

    let mut conf = ServerConf {
        threads: config.threads,
        // pingora's sleep after closing the listeners is all the time requests in flight get (its runtime
        // shutdown then cancels them); `drain` ends the process as soon as none is left.
        grace_period_seconds: Some(config.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(5),
        upgrade_sock: config.upgrade_socket.display().to_string(),
        ..ServerConf::default()
    };
    conf.upstream_keepalive_pool_size = 128;
    let opt = pingora::server::configuration::Opt {
        upgrade: options.upgrade,
        ..Default::default()
    };
    if options.upgrade {
        tracing::info!(socket = %config.upgrade_socket.display(), "waiting for the running gatehouse's listeners (send it SIGQUIT)");
    }
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    server.bootstrap();
    let on_exit = options.on_exit.unwrap_or_else(|| Box::new(|| ()));
    if let Err(e) = crate::drain::watch(server.watch_execution_phase(), on_exit) {
        tracing::warn!(error = %e, "no drain watcher: shutdown waits out the whole grace period");
    }
    let live = Arc::new(LiveConfig::new(
        Live::new(config.clone(), authenticator),
        options.config_path,
        options.log_filter,
    ));
    let door = Gatehouse::new(live.clone(), backend.clone());
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, door);
    limit_http2(&mut proxy, &config.timeouts);
    let tls = match &certs {
        Some(store) => {
            let client_cas = crate::tls::client_cas(&config);
            if config.tls.is_some() {
                let watch = crate::tls::watch::FileWatch(store.clone());
                server.add_service(background_service("tls file watch", watch));
            }
            Some(crate::tls::accept::listener_config(
                store.clone(),
                client_cas,
            )?)
        }
        None => None,
    };
    let handshake = config.timeouts.header;
    let app = crate::tls::accept::TlsApp::new(Bounded::new(proxy, config.timeouts), tls, handshake);
    let app = crate::conn_limit::PerClient::new(
        app,
        config.max_connections_per_client,
        config.trusted_proxies.clone(),
    );
    let mut service = pingora::services::listening::Service::new("gatehouse".into(), app);
    service.add_tcp(&listen);
    if let (Some(a), Some(state), Some(store)) = (&config.acme, acme, &certs) {
        let renewal = crate::acme::service::Renewal {
            config: a.clone(),
            state,
            store: store.clone(),
            tokens: tokens.clone(),
        };
        server.add_service(background_service("acme renewal", renewal));
    }
    server.add_service(service);
    let watch = crate::services::HtpasswdWatch(live.clone());
    server.add_service(background_service("htpasswd watch", watch));
    let file_certs = certs.clone().filter(|_| config.tls.is_some());
    let reload = crate::services::ConfigReload(live.clone(), file_certs);
    server.add_service(background_service("config reload", reload));
    if let Some(p) = &config.plain_http {
        let app = crate::tls::plain::PlainHttpApp::new(
            p.target.clone(),
            tokens.clone(),
            p.webroot.clone(),
        );
        // The same connection timeouts and per-client cap as the main listener: it faces the internet too.
        let app = crate::conn_limit::PerClient::new(
            Bounded::new(app, config.timeouts),
            config.max_connections_per_client,
            config.trusted_proxies.clone(),
        );
        let mut plain = pingora::services::listening::Service::new("gatehouse http".into(), app);
        plain.add_tcp(&p.listen.to_string());
        server.add_service(plain);
        tracing::info!(listen = %p.listen, "plain-HTTP listener: ACME HTTP-01 and redirects to https");
    }
    if let Backend::Embedded(registry) = &*backend {
        let count = crate::services::BlobCount(registry.clone());
        server.add_service(background_service("blob count", count));
        let local = config.storage.s3.is_none();
        let gc = crate::gc::service::Collector::register(
            registry.store().shared_driver(),
            &config.gc,
            local,
        );
        server.add_service(background_service("gc", crate::gc::service::Scheduled(gc)));
        if let Some(settings) = config.gc.purging.clone() {
            let driver = registry.store().shared_driver();
            let purging = crate::gc::service::Purging { driver, settings };
            server.add_service(background_service("upload purging", purging));
        }
    }
    if let Some(m) = &config.metrics {
        let readiness = Readiness {
            live,
            backend,
            tls: certs,
        };
        let app = AdminApp::new(readiness, m.basic_auth.clone());
        let mut admin = pingora::services::listening::Service::new("gatehouse metrics".into(), app);
        admin.add_tcp(&m.listen.to_string());
        server.add_service(admin);
        tracing::info!(listen = %m.listen, "metrics and health listener");
    }
    tracing::info!(listen = %config.listen, tls = serves_tls, "gatehouse serving");
    server.run(pingora::server::RunArgs::default());
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// The most streams one HTTP/2 connection may have open at once: each blob download holds an open file and a
/// read-ahead buffer, so one connection must not cost as much as a hundred HTTP/1 clients.
pub const H2_MAX_STREAMS: u32 = 32;

/// HTTP/2 limits pingora leaves open: an HTTP/2 connection with no stream open is closed after the idle
/// timeout (pingora's default keeps it forever), and [`H2_MAX_STREAMS`] streams at once.
fn limit_http2<SV, C: pingora::connectors::http::custom::Connector>(
    proxy: &mut pingora::proxy::HttpProxy<SV, C>,
    timeouts: &crate::timeouts::Timeouts,
) {
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2_idle_timeout = Some(timeouts.idle);
    proxy.server_options = Some(options);
    let mut h2 = pingora::protocols::http::v2::server::default_h2_options();
    h2.max_concurrent_streams(H2_MAX_STREAMS);
    proxy.h2_options = Some(h2);
}
