//! gatehouse's integration tests: one binary that starts the real `gatehouse`, a real distribution 2.8.2
//! (Debian's `docker-registry`) and real clients (skopeo, htpasswd, an HTTP client), each test on its own
//! loopback ports and temp dirs. The shared harness lives in `util`; the tests are split by topic.

mod util;

mod access;
mod acme;
mod adversarial;
mod auth;
mod big_blob;
mod browser;
mod cli;
mod embedded_clients;
mod embedded_compat;
mod embedded_crash;
mod embedded_spec;
mod gc;
mod gc_online;
mod gc_retention;
mod guard;
mod h2_limits;
mod harness;
mod hostile;
mod joxit_ui;
mod lifecycle;
mod metrics;
mod passwd_cli;
mod push_pull;
mod reload;
mod s3;
mod s3_cache;
mod s3_chunked;
mod sendfile;
mod stress_push;
mod tls;
mod tls_plain;
mod tls_resume;
mod ui;
mod ui_cdp;
mod upstream_down;
