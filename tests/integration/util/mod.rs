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

/// The realm the seed's compose file sets.
pub const SEED_REALM: &str = "Registry Realm";

/// Starts gatehouse on `port` in front of `upstream_url`, configured only by the seed's compose env vars
/// (with its misnamed `Access-Control-Origin` / `Access-Control-Credentials`), allowing `origin`.
pub fn seeded_door(
    port: u16,
    upstream_url: &str,
    origin: &str,
    htpasswd: &std::path::Path,
) -> Gatehouse {
    seeded_door_on(
        port,
        ("GATEHOUSE_UPSTREAM_URL", upstream_url),
        origin,
        htpasswd,
    )
}

/// Like [`seeded_door`], on the embedded registry with its data in `root` (the seed's volume).
pub fn seeded_embedded_door(
    port: u16,
    root: &std::path::Path,
    origin: &str,
    htpasswd: &std::path::Path,
) -> Gatehouse {
    let root = root.display().to_string();
    let backend = ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root.as_str());
    seeded_door_on(port, backend, origin, htpasswd)
}

fn seeded_door_on(
    port: u16,
    backend: (&str, &str),
    origin: &str,
    htpasswd: &std::path::Path,
) -> Gatehouse {
    let addr = format!("127.0.0.1:{port}");
    let origins = format!("[{origin}]");
    let htpasswd = htpasswd.display().to_string();
    let env = [
        ("REGISTRY_HTTP_ADDR", addr.as_str()),
        backend,
        (
            "REGISTRY_HTTP_HEADERS_Access-Control-Origin",
            origins.as_str(),
        ),
        (
            "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Methods",
            "[HEAD,GET,OPTIONS,DELETE]",
        ),
        ("REGISTRY_HTTP_HEADERS_Access-Control-Credentials", "[true]"),
        (
            "REGISTRY_HTTP_HEADERS_Access-Control-Allow-Headers",
            "[Authorization,Accept,Cache-Control]",
        ),
        (
            "REGISTRY_HTTP_HEADERS_Access-Control-Expose-Headers",
            "[Docker-Content-Digest]",
        ),
        ("REGISTRY_AUTH", "htpasswd"),
        ("REGISTRY_AUTH_HTPASSWD_REALM", SEED_REALM),
        ("REGISTRY_AUTH_HTPASSWD_PATH", htpasswd.as_str()),
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
    ];
    Gatehouse::start_with(port, "# Everything comes from the seed's env vars.\n", &env)
}
pub mod moto;
pub mod nginx;
pub mod raw;
