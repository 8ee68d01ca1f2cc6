//! The shared harness of the integration tests: free loopback ports, child processes that die with the test,
//! a real distribution 2.8.2 and the real gatehouse binary, OCI images built without a container engine,
//! a skopeo wrapper, htpasswd files and an HTTP client whose replies are easy to assert on.
//!
//! Every helper panics with a message that says what was missing or what went wrong: a missing tool fails
//! the test, it never skips it.
#![allow(dead_code)]

pub mod distribution;
pub mod gatehouse;
pub mod htpasswd;
pub mod http;
pub mod net;
pub mod oci;
pub mod process;
pub mod skopeo;

pub use distribution::Distribution;
pub use gatehouse::{Gatehouse, GatehouseConfig};
pub use http::Reply;

/// The user every "authenticated" test logs in as (an `htpasswd -nbB -C 5` line).
pub const USER: &str = "alice";
/// [`USER`]'s password.
pub const PASS: &str = "wonderland-5";
/// The realm of the tests' gatehouses configured by file.
pub const REALM: &str = "Integration Realm";
/// The web UI origin the tests' gatehouses allow.
pub const ORIGIN: &str = "http://ui.example";

/// Starts a gatehouse in front of `upstream_url` with htpasswd auth for [`USER`] and CORS for [`ORIGIN`].
pub fn door(upstream_url: &str) -> Gatehouse {
    let line = htpasswd::apache_line(USER, PASS, 5);
    Gatehouse::start(
        &GatehouseConfig::fronting(upstream_url)
            .users(REALM, &[line])
            .origin(ORIGIN),
    )
}

/// A fresh temp dir named after `what`.
pub fn temp_dir(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("gh-{what}-"))
        .tempdir()
        .expect("temp dir")
}
pub mod embedded;
pub mod frontdoor;
