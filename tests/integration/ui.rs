//! The built-in web UI, end to end: the real gatehouse binary with its embedded registry, images pushed by
//! skopeo and the registry API, and headless Chromium driven over the DevTools protocol ([`crate::ui_cdp`]),
//! with no request interception. Screenshots of each step land in `target/ui-screenshots/<test>/`.
//!
//! Covered: a wrong then a right password; the repository list and its filter; a multi-arch image with its
//! digest, size and both platforms; a referrer (a signature) marked; a delete confirmed with the other tag
//! that goes with it, checked through the API; logout, after which the API refuses the old cookie; a
//! pull-only user who is offered no delete and whose forced delete gets 403; a page on another (CORS-allowed)
//! origin that can neither read the CSRF token nor delete; the UI turned off or moved under a prefix; the
//! storage page (usage per repository and the last garbage collection); and the time to first paint of a
//! 10,000-repository list (printed, not asserted).

use crate::ui_cdp::Browser;
use crate::util::embedded::Reg;
use crate::util::frontdoor::{bcrypt_line, toml_str};
use crate::util::http::Http;
use crate::util::{net, oci, skopeo, temp_dir, Gatehouse};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

const ALICE: (&str, &str) = ("alice", "alice-pass-1");
const BOB: (&str, &str) = ("bob", "bob-pass-2");
const SIG_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// A gatehouse with the UI on, alice allowed everything and bob only pulls, deletes enabled.
struct Site {
    gh: Gatehouse,
    _files: tempfile::TempDir,
}

impl Site {
    fn start(root: &Path, extra: &str, env: &[(&str, &str)]) -> Site {
        let files = temp_dir("ui-site");
        let htpasswd = files.path().join("htpasswd");
        std::fs::write(
            &htpasswd,
            format!(
                "{}\n{}\n",
                bcrypt_line(ALICE.0, ALICE.1, 4),
                bcrypt_line(BOB.0, BOB.1, 4)
            ),
        )
        .unwrap();
        let port = net::free_port();
        let text = format!(
            "[server]\nlisten = {}\nthreads = 2\n\n\
             [auth]\nmode = \"htpasswd\"\nrealm = \"UI Realm\"\nhtpasswd = {}\n\n\
             [storage]\nroot = {}\ndelete_enabled = true\n\n[guard]\nenabled = false\n\n\
             [[access.rules]]\nrepositories = [\"**\"]\nprincipals = [\"alice\"]\nactions = [\"pull\", \"push\", \"delete\"]\n\n\
             [[access.rules]]\nrepositories = [\"**\"]\nprincipals = [\"bob\"]\nactions = [\"pull\"]\n\n{extra}",
            toml_str(&format!("127.0.0.1:{port}")),
            toml_str(&htpasswd.display().to_string()),
            toml_str(&root.display().to_string()),
        );
        Site {
            gh: Gatehouse::start_with(port, &text, env),
            _files: files,
        }
    }

    fn url(&self) -> String {
        self.gh.url()
    }

    fn alice(&self) -> Reg {
        Reg::new(&self.url(), Some(ALICE))
    }
}

/// What the browser tests look at: `multi/app` (a two-platform index tagged `v1` and `stable`, with a
/// signature as referrer) and `small/one:latest`.
struct Pushed {
    index: String,
    small: String,
}

fn push_images(site: &Site, work: &Path) -> Pushed {
    let (layout, index, _) = oci::multiarch_image(&work.join("multi"), "v1", "ui");
    let src = format!("oci:{}:v1", layout.dir().display());
    let host = site.gh.host();
    for tag in ["v1", "stable"] {
        skopeo::copy(
            &src,
            &format!("docker://{host}/multi/app:{tag}"),
            None,
            Some(ALICE),
            true,
        );
    }
    let reg = site.alice();
    let empty = reg.push_blob("multi/app", b"{}");
    let sig = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": oci::MANIFEST,
        "artifactType": SIG_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": index.media_type, "digest": index.digest, "size": index.size},
    }))
    .unwrap();
    let sig_digest = oci::sha256_digest(&sig);
    reg.put_manifest("multi/app", &sig_digest, oci::MANIFEST, &sig)
        .expect(201);
    let (_, small) = reg.push_image("small/one", "latest", "small");
    Pushed {
        index: index.digest,
        small,
    }
}

fn log_in(b: &mut Browser, url: &str, who: (&str, &str)) {
    b.goto(&format!("{url}/"));
    b.wait("document.querySelector('#login-user')", "the login form");
    b.fill("#login-user", who.0);
    b.fill("#login-pass", who.1);
    b.click("#login-submit");
    b.wait(
        "document.querySelector('#repo-rows tr[data-repo]')",
        "the repository list",
    );
}

fn text(b: &mut Browser, selector: &str) -> String {
    let js = format!(
        "(document.querySelector({}) || {{}}).textContent || ''",
        serde_json::to_string(selector).unwrap()
    );
    b.eval(&js).as_str().unwrap_or("").to_string()
}

#[test]
fn ui_login_browse_multiarch_referrer_delete_logout_in_chromium() {
    let work = temp_dir("ui-main");
    let site = Site::start(&work.path().join("root"), "", &[]);
    let pushed = push_images(&site, work.path());
    // One garbage collection before the first look, so the storage page has a last run to show.
    let admin = Http::new(&format!("http://127.0.0.1:{}", site.gh.metrics_port));
    admin.req("POST", "/gc").send().expect(200);
    let url = site.url();
    let mut b = Browser::start("main");

    // A wrong password, then the right one.
    b.goto(&format!("{url}/"));
    b.wait("document.querySelector('#login-user')", "the login form");
    b.screenshot("01-login");
    b.fill("#login-user", ALICE.0);
    b.fill("#login-pass", "not-the-password");
    b.click("#login-submit");
    b.wait(
        "document.querySelector('#login-error').textContent.includes('Wrong')",
        "the wrong-password message",
    );
    b.screenshot("02-wrong-password");
    assert!(b.cookie(&url, "gatehouse_session").is_none());
    b.fill("#login-pass", ALICE.1);
    b.click("#login-submit");
    b.wait(
        "document.querySelectorAll('#repo-rows tr[data-repo]').length === 2",
        "both repositories",
    );
    let cookie = b
        .cookie(&url, "gatehouse_session")
        .expect("a session cookie");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    b.wait(
        "document.querySelector('#repo-rows tr[data-repo=\"multi/app\"] .tag-count').textContent === '2'",
        "the tag count of multi/app",
    );
    b.screenshot("03-repositories");

    // Filter as you type.
    b.fill("#filter", "mult");
    b.wait(
        "document.querySelectorAll('#repo-rows tr[data-repo]').length === 1",
        "the filtered list",
    );
    assert_eq!(text(&mut b, "#repo-rows tr[data-repo] a"), "multi/app");
    b.screenshot("04-filtered");

    // The tags of the multi-arch repository: digest, both platforms, a size, the signature marked.
    b.goto(&format!("{url}/#/r/multi%2Fapp"));
    b.wait(
        "document.body.dataset.tagsLoaded === 'multi/app'",
        "the tags of multi/app",
    );
    let row = "#tag-rows tr[data-tag=\"v1\"]";
    let digest = b.eval(&format!("document.querySelector('{row} code').title"));
    assert_eq!(digest, json!(pushed.index));
    let platforms = text(&mut b, &format!("{row} .platforms"));
    assert!(
        platforms.contains("linux/amd64") && platforms.contains("linux/arm64"),
        "{platforms}"
    );
    assert!(text(&mut b, &format!("{row} .referrers")).contains("signature"));
    assert!(text(&mut b, row).contains("OCI index"));
    let size = text(&mut b, &format!("{row} .size"));
    assert!(
        size.ends_with("KiB") || (size.ends_with(" B") && size != "0 B"),
        "{size}"
    );
    b.screenshot("05-tags");
    // Sortable: the name column turns to descending on a click.
    assert_eq!(
        b.eval("document.querySelector('#tag-rows tr').dataset.tag"),
        json!("stable")
    );
    b.click("button[data-sort='name']");
    assert_eq!(
        b.eval("document.querySelector('#tag-rows tr').dataset.tag"),
        json!("v1")
    );
    assert_eq!(
        b.eval("document.querySelector('th[data-col=name]').getAttribute('aria-sort')"),
        json!("descending")
    );
    // Dark, following the system.
    let scheme = |b: &mut Browser, value: &str| {
        b.cmd(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        );
    };
    scheme(&mut b, "dark");
    assert_eq!(
        b.eval("getComputedStyle(document.body).backgroundColor"),
        json!("rgb(15, 19, 23)")
    );
    b.screenshot("05b-tags-dark");
    scheme(&mut b, "light");

    // The image detail.
    b.goto(&format!("{url}/#/r/multi%2Fapp/m/v1"));
    b.wait(
        "document.body.dataset.imageLoaded === 'multi/app:v1'",
        "the image detail",
    );
    assert_eq!(text(&mut b, "#image-digest"), pushed.index);
    let plats = text(&mut b, "#platforms");
    assert!(
        plats.contains("linux/amd64") && plats.contains("linux/arm64"),
        "{plats}"
    );
    let size = text(&mut b, "#image-size");
    assert!(!["–", "0 B"].contains(&size.as_str()), "{size}");
    assert!(text(&mut b, "#referrers").contains("signature"));
    assert!(text(&mut b, "#manifest-json").contains("\"manifests\""));
    let pull = text(&mut b, "#pull-command");
    assert_eq!(pull, format!("docker pull {}/multi/app:v1", site.gh.host()));
    b.screenshot("06-image");

    // One platform's detail: layers, history, labels, config.
    b.click("#platforms a");
    b.wait("document.querySelector('#layers')", "a platform's layers");
    assert!(text(&mut b, "#config-json").contains("\"architecture\""));
    b.screenshot("07-platform");

    // Storage: both repositories with their bytes, and the run above.
    b.goto(&format!("{url}/#/storage"));
    b.wait(
        "document.body.dataset.storageLoaded === '1'",
        "the storage page",
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#usage-rows tr[data-repo]').length"),
        json!(2)
    );
    let stored = text(
        &mut b,
        "#usage-rows tr[data-repo=\"multi/app\"] .usage-bytes",
    );
    assert!(!["–", "0 B", ""].contains(&stored.as_str()), "{stored}");
    let gc = text(&mut b, "#last-gc");
    assert!(gc.starts_with("Last garbage collection"), "{gc}");
    b.screenshot("07b-storage");
    b.goto(&format!("{url}/#/r/multi%2Fapp"));
    b.wait(
        "document.querySelector('#repo-usage').textContent.includes('stored')",
        "the repository's usage line",
    );

    // Delete v1: the dialog says that stable goes with it; then the API has neither.
    b.goto(&format!("{url}/#/r/multi%2Fapp"));
    b.wait("document.body.dataset.tagsLoaded === 'multi/app' && document.querySelector('[data-delete=\"v1\"]')", "the delete button");
    b.click("[data-delete=\"v1\"]");
    b.wait(
        "document.querySelector('#confirm').open",
        "the confirmation",
    );
    assert!(text(&mut b, "#confirm-others").contains("stable"));
    b.screenshot("08-confirm-delete");
    b.click("#confirm-delete");
    b.wait("document.querySelector('#deleted')", "the deleted notice");
    b.screenshot("09-deleted");
    let api = site.alice();
    for tag in ["v1", "stable"] {
        assert_eq!(api.get_manifest("multi/app", tag).status, 404, "{tag}");
    }
    let _ = pushed.small;

    // The cookie is credentials for the API until logout; after it, the old cookie is refused.
    let old = format!("gatehouse_session={}", cookie["value"].as_str().unwrap());
    let http = Http::new(&url);
    http.req("GET", "/v2/_catalog")
        .header("Cookie", &old)
        .send()
        .expect(200);
    b.click("#logout");
    b.wait(
        "document.querySelector('#login-user')",
        "the login form after logout",
    );
    b.screenshot("10-logged-out");
    let refused = http
        .req("GET", "/v2/_catalog")
        .header("Cookie", &old)
        .send();
    refused.expect(401);
    // No Basic challenge for a browser holding a stale session cookie (no popup over the UI's login);
    // a client without the cookie still gets it.
    assert!(refused.header("www-authenticate").is_none());
    let challenged = http.req("GET", "/v2/_catalog").send();
    challenged.expect(401);
    assert!(challenged.header("www-authenticate").is_some());
    http.req("GET", "/api/whoami")
        .header("Cookie", &old)
        .send()
        .expect(401);
}

#[test]
fn ui_pull_only_user_sees_no_delete_and_a_forced_delete_gets_403() {
    let work = temp_dir("ui-pull-only");
    let site = Site::start(&work.path().join("root"), "", &[]);
    let reg = site.alice();
    let (_, digest) = reg.push_image("small/one", "latest", "small");
    let url = site.url();
    let mut b = Browser::start("pull-only");
    log_in(&mut b, &url, BOB);
    b.goto(&format!("{url}/#/r/small%2Fone"));
    b.wait("document.body.dataset.tagsLoaded === 'small/one' && document.querySelector('#tag-rows tr[data-tag=\"latest\"] code')", "the tags");
    assert_eq!(
        b.eval("document.querySelectorAll('[data-delete]').length"),
        json!(0)
    );
    b.screenshot("01-tags-without-delete");
    b.goto(&format!("{url}/#/r/small%2Fone/m/latest"));
    b.wait(
        "document.body.dataset.imageLoaded === 'small/one:latest'",
        "the image",
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#delete-image').length"),
        json!(0)
    );
    b.screenshot("02-image-without-delete");
    let labels = text(&mut b, "#labels");
    assert!(
        labels.contains("small"),
        "labels: {labels:?}; page: {}",
        b.eval("document.body.innerText")
    );
    // Forced through the page, with the session's own CSRF token: the rules still say no.
    let status = b.eval(&format!(
        "fetch('/v2/small/one/manifests/{digest}', {{method: 'DELETE', headers: {{'X-CSRF-Token': state.me.csrf}}}}).then(r => r.status)"
    ));
    assert_eq!(status, json!(403));
    reg.get_manifest("small/one", "latest").expect(200);
}

/// Serves `page` at every path of a loopback port, for as long as the test runs.
fn serve_page(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                page.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(page.as_bytes());
        }
    });
    port
}

#[test]
fn ui_csrf_from_another_origin_fails_even_when_cors_allows_it() {
    let work = temp_dir("ui-csrf");
    // The foreign page reads where to aim from its query: `?target=<gatehouse>&digest=<manifest>`.
    let page = r#"<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {
  const q = new URLSearchParams(location.search);
  const target = q.get("target"), digest = q.get("digest");
  const out = {};
  const attempt = async (name, f) => { try { out[name] = await f(); } catch (e) { out[name] = "error " + e; } };
  await attempt("whoami", async () => {
    const r = await fetch(target + "/api/whoami", { credentials: "include" });
    return { status: r.status, body: await r.text() };
  });
  await attempt("read", async () => {
    const r = await fetch(target + "/v2/small/one/tags/list", { credentials: "include" });
    return { status: r.status, body: await r.text() };
  });
  await attempt("delete", async () => {
    const r = await fetch(target + "/v2/small/one/manifests/" + digest, { method: "DELETE", credentials: "include" });
    return { status: r.status, body: await r.text() };
  });
  await attempt("logout", async () => {
    const r = await fetch(target + "/api/logout", { method: "POST", credentials: "include" });
    return { status: r.status };
  });
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script></body></html>"#;
    let page_port = serve_page(page.to_string());
    // The foreign origin is allowed by CORS with credentials, as the seed allows joxit's; it is the same
    // site as gatehouse (127.0.0.1, another port), so the SameSite=Strict cookie does go along.
    let evil = format!("http://127.0.0.1:{page_port}");
    let cors = format!(
        "[cors]\nallow_origins = [{}]\nallow_credentials = true\n\
         allow_methods = [\"GET\", \"POST\", \"DELETE\", \"OPTIONS\"]\n",
        toml_str(&evil)
    );
    let site = Site::start(&work.path().join("root"), &cors, &[]);
    let reg = site.alice();
    let (_, digest) = reg.push_image("small/one", "latest", "small");
    let url = site.url();
    let mut b = Browser::start("csrf");
    log_in(&mut b, &url, ALICE);
    b.goto(&format!("{evil}/?target={url}&digest={digest}"));
    // Done when its result parses (the page writes it whole, once; a CI run once read it as not JSON).
    b.wait(
        "typeof JSON.parse(document.querySelector('#out').textContent) === 'object'",
        "the foreign page's calls",
    );
    b.screenshot("01-foreign-page");
    let raw = text(&mut b, "#out");
    let out: serde_json::Value = serde_json::from_str(&raw)
        .unwrap_or_else(|e| panic!("the foreign page's result is not JSON ({e}): {raw:?}"));
    assert_eq!(
        out["whoami"]["status"], 403,
        "the token is not readable: {out}"
    );
    assert!(
        !out["whoami"]["body"]
            .as_str()
            .unwrap_or("")
            .contains("csrf"),
        "{out}"
    );
    // The browser sends the SameSite=Strict cookie along (same site: another port of 127.0.0.1), but it is
    // credentials only from the UI's own origin: the sibling page can neither read nor delete with it.
    assert_eq!(out["read"]["status"], 401, "{out}");
    assert!(
        !out["read"]["body"]
            .as_str()
            .unwrap_or("")
            .contains("latest"),
        "{out}"
    );
    assert_eq!(out["delete"]["status"], 401, "{out}");
    assert_eq!(out["logout"]["status"], 403, "{out}");
    reg.get_manifest("small/one", "latest").expect(200);
    // The session survived the foreign page's logout attempt.
    b.goto(&format!("{url}/"));
    b.wait(
        "document.querySelector('#repo-rows tr[data-repo]')",
        "the list, still logged in",
    );
}

#[test]
fn ui_off_or_under_a_prefix_leaves_v2_alone() {
    let work = temp_dir("ui-off");
    let off = Site::start(&work.path().join("root"), "", &[("GATEHOUSE_UI", "false")]);
    let http = Http::new(&off.url());
    http.req("GET", "/").send().expect(404);
    http.req("GET", "/api/whoami").send().expect(404);
    http.req("GET", "/v2/").send().expect(401);
    drop(off);
    let sub = Site::start(
        &work.path().join("root"),
        "",
        &[("GATEHOUSE_UI_PREFIX", "/ui/")],
    );
    let http = Http::new(&sub.url());
    http.req("GET", "/").send().expect(404);
    let page = http.req("GET", "/ui/").send();
    page.expect(200);
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    let etag = page.header("etag").expect("an ETag");
    http.req("GET", "/ui/")
        .header("If-None-Match", &etag)
        .send()
        .expect(304);
    http.req("GET", "/ui").send().expect(308);
    assert_eq!(
        http.req("GET", "/ui/assets/app.js")
            .send()
            .header("content-type")
            .as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    http.req("GET", "/v2/").send().expect(401);
    http.req("GET", "/v2/")
        .creds(ALICE.0, ALICE.1)
        .send()
        .expect(200);
}

/// Slow to set up (10,000 repositories on disk take half a minute on a loaded CI box): run by
/// `benches/ui.sh`, which prints the figure; `cargo test --test integration ui_lists -- --ignored` runs it.
#[test]
#[ignore = "a figure for benches/ui.sh; writes 10,000 repositories"]
fn ui_lists_10000_repositories_and_reports_time_to_first_paint() {
    let work = temp_dir("ui-10k");
    let root = work.path().join("root");
    let site = Site::start(&root, "", &[]);
    let (_, digest) = site.alice().push_image("small/one", "latest", "small");
    let url = site.url();
    let mut b = Browser::start("10k");
    log_in(&mut b, &url, ALICE);
    // The same measure on a one-repository list first, in the same run, for a ratio.
    let first_paint = |b: &mut Browser| {
        b.goto("about:blank");
        b.goto(&format!("{url}/"));
        b.wait(
            "document.body.dataset.reposPainted",
            "the first paint of the list",
        );
        b.eval("Number(document.body.dataset.reposPainted)")
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let one = first_paint(&mut b);
    // 10,000 more repositories, written in distribution's layout, each with one tag (its list is all the
    // repository page reads of them).
    let repos = root.join("docker/registry/v2/repositories/many");
    for i in 0..10_000 {
        let tag = repos.join(format!("r{i:05}/_manifests/tags/latest/current"));
        std::fs::create_dir_all(&tag).unwrap();
        std::fs::write(tag.join("link"), &digest).unwrap();
    }
    // A fresh load with the session: whoami, the first catalog page, the first 50 rows painted.
    let paint = first_paint(&mut b);
    b.wait(
        "document.querySelector('#repo-count').textContent === '10001 repositories'",
        "the whole catalog",
    );
    let all = b.eval("performance.now()");
    assert_eq!(
        b.eval("document.querySelectorAll('#repo-rows tr[data-repo]').length"),
        json!(50)
    );
    assert_eq!(text(&mut b, "#page-info"), "Page 1 of 201");
    b.wait(
        "document.querySelector('#repo-rows tr[data-repo=\"many/r00000\"] .tag-count').textContent === '1'",
        "a tag count on the first page",
    );
    b.screenshot("01-first-page");
    b.click("#next");
    assert_eq!(text(&mut b, "#page-info"), "Page 2 of 201");
    assert_eq!(text(&mut b, "#repo-rows tr[data-repo] a"), "many/r00050");
    b.fill("#filter", "r09999");
    b.wait(
        "document.querySelectorAll('#repo-rows tr[data-repo]').length === 1",
        "the filtered list",
    );
    assert_eq!(text(&mut b, "#repo-rows tr[data-repo] a"), "many/r09999");
    b.screenshot("02-filtered");
    // A figure for the closing note, not an assertion.
    eprintln!(
        "ui: first paint of the repository list after navigation start: 1 repository {one:.0} ms, \
         10,001 repositories {paint:.0} ms (ratio {:.1}); whole 10,001-name catalog loaded at {:.0} ms",
        paint / one,
        all.as_f64().unwrap_or(f64::NAN)
    );
}

#[test]
fn ui_session_cookie_is_secure_over_tls() {
    let work = temp_dir("ui-tls");
    let (cert, key) = (work.path().join("cert.pem"), work.path().join("key.pem"));
    let openssl = crate::util::process::require_tool("openssl", "openssl");
    let made = std::process::Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tls = format!(
        "[tls]\ncertificate = {}\nkey = {}\n",
        toml_str(&cert.display().to_string()),
        toml_str(&key.display().to_string())
    );
    let site = Site::start(&work.path().join("root"), &tls, &[]);
    let curl = |args: &[&str]| {
        let out = std::process::Command::new(crate::util::process::require_tool("curl", "curl"))
            .args(["-sS", "-i", "--max-time", "30", "--cacert"])
            .arg(&cert)
            .args(args)
            .output()
            .expect("running curl");
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let port = site.gh.host().rsplit(':').next().unwrap().to_string();
    let base = format!("https://localhost:{port}");
    let login = curl(&[
        "-X",
        "POST",
        "-u",
        &format!("{}:{}", ALICE.0, ALICE.1),
        &format!("{base}/api/login"),
    ]);
    let cookie = login
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no session cookie: {login}"));
    for part in ["httponly", "samesite=strict", "secure"] {
        assert!(cookie.contains(part), "{cookie}");
    }
}

#[test]
fn ui_session_works_in_front_of_distribution_with_the_seeds_env_vars() {
    use crate::util::{htpasswd, seeded_door, Distribution, PASS, USER};
    let dist = Distribution::start();
    let work = temp_dir("ui-upstream");
    let (layout, image) = oci::small_image(&work.path().join("src"), "latest", "ui-upstream");
    skopeo::copy(
        &format!("oci:{}:latest", layout.dir().display()),
        &format!("docker://{}/seed/app:latest", dist.host()),
        None,
        None,
        false,
    );
    let htpasswd_path = work.path().join("htpasswd");
    htpasswd::write(&htpasswd_path, &[htpasswd::apache_line(USER, PASS, 5)]);
    let port = net::free_port();
    let _gh = seeded_door(port, &dist.url(), "http://ui.example", &htpasswd_path);
    let http = Http::new(&format!("http://127.0.0.1:{port}"));
    let login = http.req("POST", "/api/login").creds(USER, PASS).send();
    login.expect(200);
    let csrf = login.json()["csrf"].as_str().unwrap().to_string();
    let cookie = login.header("set-cookie").unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let who = http
        .req("GET", "/api/whoami")
        .header("Cookie", cookie)
        .send();
    who.expect(200);
    assert_eq!(
        who.json()["delete_enabled"],
        true,
        "an upstream decides deletes itself"
    );
    // An upstream's storage is not ours to measure: the UI offers no storage page and the endpoint says why.
    assert_eq!(who.json()["usage"], false);
    http.req("GET", "/api/usage")
        .header("Cookie", cookie)
        .send()
        .expect_error(404, "NOT_FOUND");
    let catalog = http
        .req("GET", "/v2/_catalog")
        .header("Cookie", cookie)
        .send();
    catalog.expect(200);
    assert!(catalog.json()["repositories"]
        .to_string()
        .contains("seed/app"));
    let path = format!("/v2/seed/app/manifests/{}", image.manifest.digest);
    http.req("DELETE", &path)
        .header("Cookie", cookie)
        .send()
        .expect_error(403, "DENIED");
    http.req("DELETE", &path)
        .header("Cookie", cookie)
        .header("X-CSRF-Token", &csrf)
        .send()
        .expect(202);
    assert!(!dist.has_manifest_revision("seed/app", &image.manifest.digest));
}
