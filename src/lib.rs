//! gatehouse: the front door of a private container registry.
//!
//! Every request takes one path through the house, each step in its own module:
//!
//! ```text
//! accept (pingora listener)
//!   -> route    parse the URL once into a typed Route (+ the Action it needs)       route.rs, names.rs
//!   -> cors     an allowed-origin preflight is answered here, 204, never forwarded   cors.rs
//!   -> auth     Basic credentials -> Principal, else a 401 challenge                 auth/
//!   -> authz    (Route, Principal) -> Permit, or 403 DENIED                          authz.rs
//!   -> backend  embedded registry in-process, or pingora forwards upstream           registry/, upstream.rs
//!   -> headers  API version, CORS and configured headers on every response           headers.rs
//!   -> log      one access-log line per request                                      proxy.rs
//! ```
//!
//! Client-visible errors have one source, [`errcode`].

pub mod admin;
pub mod auth;
pub mod authz;
pub mod config;
pub mod cors;
pub mod errcode;
pub mod headers;
pub mod metrics;
pub mod names;
pub mod net;
pub mod passwd;
pub mod proxy;
pub mod registry;
pub mod route;
pub mod server;
pub mod settings;
pub mod storage;
pub mod upstream;
