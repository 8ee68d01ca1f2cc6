//! The joxit docker-registry-ui 2.5.0 sequence (shared/FACTS.md), replayed with an HTTP client against a
//! gatehouse configured only by the seed's compose env vars (`REGISTRY_AUTH*`, `REGISTRY_HTTP_HEADERS_*`
//! with the seed's misnamed `Access-Control-Origin` / `Access-Control-Credentials`), in front of a real
//! distribution holding one pushed image. As a browser does: every call first without credentials (401
//! with CORS headers so the page can see it), then with them; preflights 204 without credentials;
//! the manifest's digest readable from the exposed `Docker-Content-Digest`; delete by digest 202.
//!
//! And joxit's other deployment, same origin: its image's nginx serves the page and proxies `/v2` to the
//! registry (`NGINX_PROXY_PASS_URL`), here in front of gatehouse's embedded registry on the seed's env vars.
//! The browser sends no `Origin` on its GETs and its own one on the DELETE; the 401 must reach it through
//! nginx with the Basic challenge, or the browser never asks for credentials.

use crate::util::http::{Http, Reply};
use crate::util::nginx::JoxitProxy;
use crate::util::oci::{self, sha256_digest};
use crate::util::{
    htpasswd, net, seeded_door, seeded_embedded_door, skopeo, temp_dir, Distribution, PASS,
    SEED_REALM, USER,
};

const UI: &str = "http://ui.example";
const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// A browser's preflight for `method` on `path`, with the headers the UI sends; must be 204 at the door.
fn preflight(http: &Http, path: &str, method: &str, request_headers: &str) -> Reply {
    let reply = http
        .req("OPTIONS", path)
        .origin(UI)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", request_headers)
        .send();
    reply
        .expect(204)
        .expect_api_version()
        .expect_cors(UI)
        .expect_token("Access-Control-Allow-Methods", method);
    for header in request_headers.split(',') {
        reply.expect_token("Access-Control-Allow-Headers", header.trim());
    }
    reply
}

/// The UI's call: first without credentials (401 the page can read), then with them; returns the second reply.
fn browser_get(http: &Http, path: &str, accept: &str) -> Reply {
    http.req("GET", path)
        .origin(UI)
        .header("Accept", accept)
        .send()
        .expect_unauthorized(SEED_REALM)
        .expect_cors(UI)
        .expect_token("Access-Control-Allow-Credentials", "true");
    let reply = http
        .req("GET", path)
        .origin(UI)
        .header("Accept", accept)
        .creds(USER, PASS)
        .send();
    reply
        .expect(200)
        .expect_api_version()
        .expect_cors(UI)
        .expect_token("Access-Control-Allow-Credentials", "true");
    reply
}

#[test]
fn joxit_ui_sequence_works_with_the_seeds_env_vars() {
    let dist = Distribution::start();
    let work = temp_dir("joxit");
    let (layout, image) = oci::small_image(&work.path().join("src"), "latest", "joxit ui");
    let src = format!("oci:{}:latest", layout.dir().display());
    skopeo::copy(
        &src,
        &format!("docker://{}/joxit/app:latest", dist.host()),
        None,
        None,
        false,
    );

    let htpasswd_path = work.path().join("htpasswd");
    htpasswd::write(&htpasswd_path, &[htpasswd::apache_line(USER, PASS, 5)]);
    let gatehouse = seeded_door(net::free_port(), &dist.url(), UI, &htpasswd_path);
    let http = Http::new(&gatehouse.url());

    // The catalog and the tag list.
    let catalog = browser_get(&http, "/v2/_catalog?n=1000", "*/*").json();
    let repos = catalog["repositories"]
        .as_array()
        .expect("repositories in the catalog");
    assert!(
        repos.iter().any(|r| r == "joxit/app"),
        "joxit/app missing from the catalog: {catalog}"
    );
    let tags = browser_get(&http, "/v2/joxit/app/tags/list", "*/*").json();
    assert_eq!(
        tags["tags"],
        serde_json::json!(["latest"]),
        "tags list: {tags}"
    );

    // The manifest: preflight (the long Accept is not a simple header), then the GET whose digest the UI reads.
    preflight(&http, "/v2/joxit/app/manifests/latest", "GET", "accept");
    let manifest = browser_get(&http, "/v2/joxit/app/manifests/latest", MANIFEST_ACCEPT);
    manifest.expect_token("Access-Control-Expose-Headers", "Docker-Content-Digest");
    let digest = image.manifest.digest.clone();
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(digest.clone()),
        "{manifest:?}"
    );
    assert_eq!(
        sha256_digest(&manifest.body),
        digest,
        "manifest bytes changed on the way"
    );

    // The config blob, for architecture and dates.
    let config_blob = browser_get(
        &http,
        &format!("/v2/joxit/app/blobs/{}", image.config.digest),
        "*/*",
    );
    assert_eq!(
        sha256_digest(&config_blob.body),
        image.config.digest,
        "config blob bytes changed on the way"
    );
    assert_eq!(config_blob.json()["architecture"], "amd64");

    // Delete by digest: preflight, then the DELETE (also first without credentials, as the browser does).
    let by_digest = format!("/v2/joxit/app/manifests/{digest}");
    preflight(&http, &by_digest, "DELETE", "authorization");
    http.req("DELETE", &by_digest)
        .origin(UI)
        .send()
        .expect_unauthorized(SEED_REALM)
        .expect_cors(UI);
    http.req("DELETE", &by_digest)
        .origin(UI)
        .creds(USER, PASS)
        .send()
        .expect(202)
        .expect_api_version()
        .expect_cors(UI);
    assert!(
        !dist.has_manifest_revision("joxit/app", &digest),
        "the manifest is still in distribution's storage"
    );
    http.req("GET", "/v2/joxit/app/manifests/latest")
        .origin(UI)
        .header("Accept", MANIFEST_ACCEPT)
        .creds(USER, PASS)
        .send()
        .expect_error(404, "MANIFEST_UNKNOWN")
        .expect_cors(UI);
}

/// A same-origin call as the browser makes it through joxit's nginx: first without credentials (401 with the
/// Basic challenge, which makes the browser ask), then with them. `origin` is sent on non-GET methods, as
/// browsers do on same-origin requests too.
fn same_origin_call(
    http: &Http,
    method: &str,
    path: &str,
    accept: &str,
    origin: Option<&str>,
) -> Reply {
    let req = |creds: bool| {
        let mut r = http
            .req(method, path)
            .header("Accept", accept)
            .header("Sec-Fetch-Site", "same-origin");
        if let Some(o) = origin {
            r = r.origin(o);
        }
        if creds {
            r = r.creds(USER, PASS);
        }
        r.send()
    };
    req(false).expect_unauthorized(SEED_REALM);
    req(true)
}

#[test]
fn joxit_ui_same_origin_behind_its_nginx_proxy_pass_works_on_the_embedded_registry() {
    let work = temp_dir("joxit-same-origin");
    let htpasswd_path = work.path().join("htpasswd");
    htpasswd::write(&htpasswd_path, &[htpasswd::apache_line(USER, PASS, 5)]);
    let port = net::free_port();
    let root = work.path().join("data");
    // joxit's page lives on nginx's origin; gatehouse's CORS list names an origin the page does not use.
    let gatehouse = seeded_embedded_door(port, &root, UI, &htpasswd_path);
    let (layout, image) = oci::small_image(&work.path().join("src"), "latest", "joxit same origin");
    skopeo::copy(
        &format!("oci:{}:latest", layout.dir().display()),
        &format!("docker://{}/joxit/app:latest", gatehouse.host()),
        None,
        Some((USER, PASS)),
        false,
    );
    let nginx = JoxitProxy::start(&gatehouse.url(), "<!doctype html><title>joxit</title>");
    let page_origin = nginx.url();
    let http = Http::new(&page_origin);
    http.req("GET", "/").send().expect(200);

    let catalog = same_origin_call(&http, "GET", "/v2/_catalog?n=1000", "*/*", None);
    catalog.expect(200).expect_api_version();
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!(["joxit/app"])
    );
    let tags = same_origin_call(&http, "GET", "/v2/joxit/app/tags/list", "*/*", None);
    assert_eq!(
        tags.expect(200).json()["tags"],
        serde_json::json!(["latest"])
    );
    let path = "/v2/joxit/app/manifests/latest";
    let manifest = same_origin_call(&http, "GET", path, MANIFEST_ACCEPT, None);
    manifest.expect(200);
    let digest = image.manifest.digest.clone();
    assert_eq!(
        manifest.header("Docker-Content-Digest"),
        Some(digest.clone())
    );
    assert_eq!(sha256_digest(&manifest.body), digest);
    let config = format!("/v2/joxit/app/blobs/{}", image.config.digest);
    let config = same_origin_call(&http, "GET", &config, "*/*", None);
    assert_eq!(sha256_digest(&config.expect(200).body), image.config.digest);

    // The DELETE carries the page's own origin, which is not in gatehouse's CORS list: same origin needs no
    // CORS, and the origin must not be held against it.
    let by_digest = format!("/v2/joxit/app/manifests/{digest}");
    same_origin_call(&http, "DELETE", &by_digest, "*/*", Some(&page_origin))
        .expect(202)
        .expect_api_version();
    http.req("GET", path)
        .header("Accept", MANIFEST_ACCEPT)
        .creds(USER, PASS)
        .send()
        .expect_error(404, "MANIFEST_UNKNOWN");
}
