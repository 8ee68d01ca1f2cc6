//! A real browser (Debian's headless Chromium) runs the joxit UI's cross-origin calls from a page on another
//! origin against gatehouse (configured by the seed's env vars, in front of a real distribution). What only a
//! browser can show: the 401 is readable by the page (not an opaque network error), the preflight for an
//! `Authorization` + long `Accept` request passes without credentials, the exposed `Docker-Content-Digest` is
//! visible to script, and DELETE by digest goes through. Against distribution's own auth every preflight
//! gets 401 and the page sees nothing (distribution #4458).

use crate::util::oci;
use crate::util::{htpasswd, net, seeded_door, skopeo, temp_dir, Distribution, PASS, USER};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

/// The page: each step's outcome goes into `<pre id="out">` as JSON, which `--dump-dom` prints.
const PAGE: &str = r#"<!doctype html>
<html><body><pre id="out">pending</pre><script>
const REG = "__REGISTRY__";
const AUTH = "Basic " + btoa("__USER__:__PASS__");
const ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";
async function step(name, f, out) {
  try { out[name] = await f(); } catch (e) { out[name] = "error: " + e; }
}
(async () => {
  const out = {};
  await step("anonymous", async () => {
    const r = await fetch(REG + "/v2/_catalog?n=1000");
    return { status: r.status, challenge: r.headers.get("WWW-Authenticate") };
  }, out);
  await step("catalog", async () => {
    const r = await fetch(REG + "/v2/_catalog?n=1000", { headers: { Authorization: AUTH } });
    return { status: r.status, body: await r.json() };
  }, out);
  await step("manifest", async () => {
    const r = await fetch(REG + "/v2/browser/app/manifests/latest",
                          { headers: { Authorization: AUTH, Accept: ACCEPT } });
    return { status: r.status, digest: r.headers.get("Docker-Content-Digest") };
  }, out);
  if (out.manifest && out.manifest.digest) {
    await step("delete", async () => {
      const r = await fetch(REG + "/v2/browser/app/manifests/" + out.manifest.digest,
                            { method: "DELETE", headers: { Authorization: AUTH } });
      return { status: r.status };
    }, out);
  }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
</script></body></html>
"#;

/// Serves `page` at every path of a loopback port, on a thread, for as long as the test runs.
fn serve_page(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
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

/// Loads `url` in headless Chromium and returns the DOM after the page's script settled.
fn chromium_dom(url: &str, profile: &std::path::Path) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium must be installed (Debian package chromium; .ci/run installs it)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn chromium_page_on_another_origin_reads_401_digest_and_deletes() {
    let dist = Distribution::start();
    let work = temp_dir("browser");
    let (layout, image) = oci::small_image(&work.path().join("src"), "latest", "browser");
    skopeo::copy(
        &format!("oci:{}:latest", layout.dir().display()),
        &format!("docker://{}/browser/app:latest", dist.host()),
        None,
        None,
        false,
    );

    let gh_port = net::free_port();
    let registry = format!("http://127.0.0.1:{gh_port}");
    let page = PAGE
        .replace("__REGISTRY__", &registry)
        .replace("__USER__", USER)
        .replace("__PASS__", PASS);
    let page_port = serve_page(page);
    let ui_origin = format!("http://127.0.0.1:{page_port}");

    let htpasswd_path = work.path().join("htpasswd");
    htpasswd::write(&htpasswd_path, &[htpasswd::apache_line(USER, PASS, 5)]);
    let _gatehouse = seeded_door(gh_port, &dist.url(), &ui_origin, &htpasswd_path);

    let dom = chromium_dom(&format!("{ui_origin}/"), &work.path().join("profile"));
    let json = dom
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| panic!("no result in the page: {dom}"))
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let out: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("page result {json:?}: {e}"));

    assert_eq!(
        out["anonymous"]["status"], 401,
        "the page must see the 401: {out}"
    );
    // The browser itself reads `WWW-Authenticate` (and prompts); script sees only exposed headers, and the
    // seed exposes just Docker-Content-Digest.
    assert!(out["anonymous"]["challenge"].is_null(), "{out}");
    assert_eq!(out["catalog"]["status"], 200, "{out}");
    assert!(
        out["catalog"]["body"]["repositories"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "browser/app")),
        "{out}"
    );
    assert_eq!(out["manifest"]["status"], 200, "{out}");
    assert_eq!(
        out["manifest"]["digest"], image.manifest.digest,
        "Docker-Content-Digest must be readable by the page: {out}"
    );
    assert_eq!(out["delete"]["status"], 202, "{out}");
}
