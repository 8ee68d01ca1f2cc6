//! gatehouse: the front door of a private container registry.
//!
//! Every request takes one path through the house, each step in its own module:
//!
//! ```text
//! accept (pingora listener; each HTTP/1 connection bounded by idle and head deadlines)  timeouts.rs, server.rs
//!   -> admit    proxy/admit.rs: one decision, Ok(Admitted) or Err(Reply)
//!        cors     an allowed-origin preflight is answered here, 204, never forwarded   cors.rs
//!        branch   on the path's first segment: /v2/ goes on; the web UI answers its prefix  ui/
//!        route    parse the URL and query once into a typed Route + Action             route.rs, names.rs, query.rs
//!        auth     Basic credentials or a UI session cookie (+ CSRF) -> Principal, else 401  auth/, ui/
//!        authz    (Route, Principal) -> Permit (action, allowed mount, catalog filter)  authz.rs
//!   -> backend  one value, one call: serve(&Permit, Request, body) -> Reply | Forward   backend.rs
//!               embedded: registry handlers over storage                               registry/, storage/
//!               upstream: pingora forwards, the query rebuilt from Route + Permit      upstream.rs
//!   -> write    the one writer of gatehouse's own replies (Reply, reply bodies)        proxy/write.rs, reply.rs
//!   -> headers  API version, CORS and configured headers on every response             headers.rs
//!   -> log      one access-log line and the request metrics per request                proxy/mod.rs, metrics.rs
//! ```
//!
//! Client-visible errors have one source, [`errcode`].
//!
//! Around the pipeline: [`config`] parses the file and the environment and validates each section by calling
//! the settings type its module owns (`auth/settings.rs`, `cors/settings.rs`, `upstream/settings.rs`,
//! [`storage::StorageConfig`], [`timeouts::Timeouts`]; the shared error shape is [`settings`]). [`server`]
//! assembles pingora's services: the proxy, the [`admin`] listener (metrics, health, readiness), and the
//! background work in [`services`] (htpasswd watch, blob count), which starts and stops with the server.

pub mod acme;
pub mod admin;
pub mod auth;
pub mod authz;
pub mod backend;
pub mod config;
pub mod conn_limit;
pub mod cors;
pub mod drain;
pub mod errcode;
pub mod gc;
pub mod headers;
pub mod live;
pub mod metrics;
pub mod names;
pub mod net;
pub mod passwd;
pub mod proxy;
pub mod query;
pub mod registry;
pub mod reply;
pub mod route;
pub mod server;
pub mod services;
pub mod settings;
pub mod storage;
pub mod timeouts;
pub mod tls;
pub mod ui;
pub mod upstream;
