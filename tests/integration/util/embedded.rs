//! Helpers for the embedded-backend tests (`embedded_*`): a gatehouse that serves its embedded registry
//! from a root directory the test owns (configured by file, or by registry:2's `REGISTRY_*` env vars as a
//! drop-in), a raw registry client (blob and manifest pushes, tags, catalog), checks of the on-disk layout
//! (every blob hashes to its path, every tag resolves), isolated homes for podman, buildah and oras so
//! that clients never share login state between tests, and the spec tests' small tools: upload sessions
//! and chunks, `Location`/`Link` paths, paging, and requests sent byte for byte (no URL normalization).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::json;
use sha2::{Digest as _, Sha256, Sha512};
use tempfile::TempDir;

use super::frontdoor::{bcrypt_line, toml_str};
use super::gatehouse::Gatehouse;
use super::http::{Http, Req};
use super::net;
use super::process::require_tool;
use super::skopeo::Creds;
use super::{temp_dir, Reply, PASS, USER};

/// Every manifest media type the embedded registry stores, for `Accept`.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// How a test's embedded gatehouse is set up.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// htpasswd auth for [`USER`] (else no auth at all).
    pub auth: bool,
    /// Deletes allowed.
    pub delete: bool,
    /// Configured through registry:2's env vars (`REGISTRY_HTTP_ADDR`, `REGISTRY_AUTH*`,
    /// `REGISTRY_STORAGE_*`) instead of the config file.
    pub by_env: bool,
}

impl Setup {
    /// Auth on, deletes on, configured by file.
    pub const DEFAULT: Setup = Setup {
        auth: true,
        delete: true,
        by_env: false,
    };
}

/// A gatehouse serving the embedded registry from `root`; killed (SIGKILL) on drop, the root stays.
pub struct Embedded {
    /// The gatehouse process.
    pub gh: Gatehouse,
    /// The storage root.
    pub root: PathBuf,
    /// How it was set up.
    pub setup: Setup,
    _files: TempDir,
}

impl Embedded {
    /// Starts an embedded gatehouse on `root` with auth and deletes on, configured by file.
    pub fn start(root: &Path) -> Embedded {
        Embedded::launch(root, Setup::DEFAULT)
    }

    /// Starts an embedded gatehouse on `root` as `setup` says, on a free port.
    pub fn launch(root: &Path, setup: Setup) -> Embedded {
        fs::create_dir_all(root).expect("creating the storage root");
        let files = temp_dir("embedded-auth");
        let htpasswd = files.path().join("htpasswd");
        fs::write(&htpasswd, format!("{}\n", bcrypt_line(USER, PASS, 4))).expect("htpasswd");
        let port = net::free_port();
        let listen = format!("127.0.0.1:{port}");
        let root_s = root.display().to_string();
        let htpasswd_s = htpasswd.display().to_string();
        let delete_s = setup.delete.to_string();
        let gh = if setup.by_env {
            let mut env = vec![
                ("REGISTRY_HTTP_ADDR", listen.as_str()),
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", root_s.as_str()),
                ("REGISTRY_STORAGE_DELETE_ENABLED", delete_s.as_str()),
            ];
            if setup.auth {
                env.push(("REGISTRY_AUTH", "htpasswd"));
                env.push(("REGISTRY_AUTH_HTPASSWD_REALM", "Embedded Realm"));
                env.push(("REGISTRY_AUTH_HTPASSWD_PATH", htpasswd_s.as_str()));
            } else {
                env.push(("REGISTRY_AUTH", "none"));
            }
            Gatehouse::start_with(port, "[guard]\nenabled = false\n", &env)
        } else {
            let auth = if setup.auth {
                format!(
                    "mode = \"htpasswd\"\nrealm = \"Embedded Realm\"\nhtpasswd = {}\n",
                    toml_str(&htpasswd_s)
                )
            } else {
                "mode = \"none\"\n".to_string()
            };
            let text = format!(
                "[server]\nlisten = {}\nthreads = 2\n\n[auth]\n{auth}\n\
                 [storage]\nroot = {}\ndelete_enabled = {delete_s}\n\n[guard]\nenabled = false\n",
                toml_str(&listen),
                toml_str(&root_s),
            );
            Gatehouse::start_with(port, &text, &[])
        };
        Embedded {
            gh,
            root: root.to_path_buf(),
            setup,
            _files: files,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.gh.host()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.gh.url()
    }

    /// The credentials clients need ([`USER`] when auth is on).
    pub fn creds(&self) -> Creds<'static> {
        self.setup.auth.then_some((USER, PASS))
    }

    /// A raw registry client for it, with its credentials.
    pub fn reg(&self) -> Reg {
        Reg::new(&self.url(), self.creds())
    }
}

/// A raw registry client: requests with optional Basic credentials, plus push and listing shortcuts.
pub struct Reg {
    http: Http,
    creds: Option<(String, String)>,
}

impl Reg {
    /// A client for the registry at `base`.
    pub fn new(base: &str, creds: Creds) -> Reg {
        Reg {
            http: Http::new(base),
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
        }
    }

    /// Starts a request (with the credentials); `path` may be absolute or a `/v2/...` path.
    pub fn req(&self, method: &str, path: &str) -> Req {
        let req = self.http.req(method, path);
        match &self.creds {
            Some((u, p)) => req.creds(u, p),
            None => req,
        }
    }

    /// Pushes `data` as a blob of `repo` in one `POST ?digest=` (sha256); returns its digest.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256_of(data);
        self.req(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .expect(201);
        digest
    }

    /// PUTs `body` as a manifest of `media_type` at `/v2/{repo}/manifests/{reference}`.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Reply {
        self.req("PUT", &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(body.to_vec())
            .send()
    }

    /// GETs a manifest with every manifest type accepted.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Reply {
        self.req("GET", &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", ACCEPT_ALL)
            .send()
    }

    /// Pushes a one-layer OCI image (config + layer + manifest, unique by `label`) as `repo:tag`;
    /// returns the manifest's bytes and digest.
    pub fn push_image(&self, repo: &str, tag: &str, label: &str) -> (Vec<u8>, String) {
        let layer = super::oci::gzip(&super::oci::tar(&[("label.txt", label.as_bytes())]));
        let layer_digest = self.push_blob(repo, &layer);
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {"Labels": {"label": label}},
        }))
        .expect("config JSON");
        let config_digest = self.push_blob(repo, &config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": super::oci::MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": layer.len()}],
        }))
        .expect("manifest JSON");
        self.put_manifest(repo, tag, super::oci::MANIFEST, &manifest)
            .expect(201);
        let digest = sha256_of(&manifest);
        (manifest, digest)
    }

    /// The tags of `repo` (one unpaged `tags/list`).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let reply = self.req("GET", &format!("/v2/{repo}/tags/list")).send();
        reply.expect(200);
        strings(&reply.json()["tags"])
    }

    /// The repositories (one unpaged `_catalog`).
    pub fn catalog(&self) -> Vec<String> {
        let reply = self.req("GET", "/v2/_catalog").send();
        reply.expect(200);
        strings(&reply.json()["repositories"])
    }
}

/// The strings of a JSON array (`null` is empty).
pub fn strings(value: &serde_json::Value) -> Vec<String> {
    if value.is_null() {
        return Vec::new();
    }
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// `sha256:<hex>` of `data`.
pub fn sha256_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `sha512:<hex>` of `data`.
pub fn sha512_of(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(data)))
}

/// Every regular file under `dir`, recursively (symlinks are not followed).
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// `<root>/docker/registry/v2`.
pub fn v2_dir(root: &Path) -> PathBuf {
    root.join("docker/registry/v2")
}

/// The data file of blob `digest` (`alg:hex`) under `root`.
pub fn blob_path(root: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("alg:hex digest");
    v2_dir(root).join(format!("blobs/{alg}/{}/{hex}/data", &hex[..2]))
}

/// Walks the blob store: every `blobs/<alg>/<xx>/<hex>/data` must hash to `<alg>:<hex>`, and nothing else
/// than such data files may sit in it; returns the digests found.
pub fn check_blob_store(root: &Path) -> Vec<String> {
    let blobs = v2_dir(root).join("blobs");
    let mut digests = Vec::new();
    for path in walk_files(&blobs) {
        let rel = path.strip_prefix(&blobs).expect("under blobs");
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        assert!(
            parts.len() == 4 && parts[3] == "data" && parts[2].starts_with(&parts[1]),
            "unexpected file in the blob store: {}",
            path.display()
        );
        let data = fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let actual = match parts[0].as_str() {
            "sha256" => sha256_of(&data),
            "sha512" => sha512_of(&data),
            other => panic!("unknown algorithm directory {other} in {}", path.display()),
        };
        let expected = format!("{}:{}", parts[0], parts[2]);
        assert_eq!(
            actual,
            expected,
            "blob at {} ({} bytes) does not hash to its path",
            path.display(),
            data.len()
        );
        digests.push(expected);
    }
    digests
}

/// Every tag of the layout as `(repository, tag, digest)`: each `current/link` must name a blob that exists
/// in the store and a revision linked in its repository.
pub fn check_tags(root: &Path) -> Vec<(String, String, String)> {
    let repos = v2_dir(root).join("repositories");
    let mut out = Vec::new();
    for path in walk_files(&repos) {
        let rel = path.strip_prefix(&repos).expect("under repositories");
        let text = rel.to_string_lossy().into_owned();
        let Some((repo, rest)) = text.split_once("/_manifests/tags/") else {
            continue;
        };
        let Some(tag) = rest.strip_suffix("/current/link") else {
            continue;
        };
        let link = fs::read_to_string(&path).expect("reading a tag link");
        let digest = link.trim().to_string();
        assert!(
            blob_path(root, &digest).is_file(),
            "tag {repo}:{tag} names {digest}, which is not in the blob store"
        );
        let (alg, hex) = digest.split_once(':').expect("alg:hex digest");
        let revision = repos.join(format!("{repo}/_manifests/revisions/{alg}/{hex}/link"));
        assert!(
            revision.is_file(),
            "tag {repo}:{tag} names {digest}, which is not a revision of {repo}"
        );
        out.push((repo.to_string(), tag.to_string(), digest));
    }
    out
}

/// A home of its own for a container client: HOME, XDG dirs and an auth file (`REGISTRY_AUTH_FILE`) under
/// `dir`, plus `--root`/`--runroot` storage dirs for podman and buildah.
pub struct ClientHome {
    /// The directory everything lives in.
    pub dir: PathBuf,
}

impl ClientHome {
    /// Creates the dirs and an empty auth file under `dir`.
    pub fn new(dir: &Path) -> ClientHome {
        for sub in [
            "home", "run", "config", "data", "cache", "storage", "runroot",
        ] {
            fs::create_dir_all(dir.join(sub)).expect("creating a client dir");
        }
        fs::write(dir.join("auth.json"), "{}\n").expect("writing auth.json");
        ClientHome {
            dir: dir.to_path_buf(),
        }
    }

    /// The environment that keeps a client inside this home.
    pub fn env(&self) -> Vec<(String, String)> {
        let p = |sub: &str| self.dir.join(sub).display().to_string();
        vec![
            ("HOME".into(), p("home")),
            ("XDG_RUNTIME_DIR".into(), p("run")),
            ("XDG_CONFIG_HOME".into(), p("config")),
            ("XDG_DATA_HOME".into(), p("data")),
            ("XDG_CACHE_HOME".into(), p("cache")),
            ("REGISTRY_AUTH_FILE".into(), p("auth.json")),
            ("DOCKER_CONFIG".into(), p("home/.docker")),
        ]
    }

    /// The global storage flags of podman and buildah (vfs, private root and runroot).
    pub fn storage_args(&self) -> Vec<String> {
        vec![
            "--storage-driver".into(),
            "vfs".into(),
            "--root".into(),
            self.dir.join("storage").display().to_string(),
            "--runroot".into(),
            self.dir.join("runroot").display().to_string(),
        ]
    }

    /// Runs `tool` (from Debian package `package`) with `args` in this home; returns its output.
    pub fn run(&self, tool: &str, package: &str, args: &[&str]) -> Output {
        let bin = require_tool(tool, package);
        let mut cmd = Command::new(bin);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd.current_dir(&self.dir).args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("running {tool} {args:?}: {e}"))
    }

    /// Runs `tool ARGS` in this home, panics with its stderr unless it succeeds; returns stdout.
    pub fn ok(&self, tool: &str, package: &str, args: &[&str]) -> String {
        let out = self.run(tool, package, args);
        assert!(
            out.status.success(),
            "{tool} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs podman or buildah (`tool`) with the storage flags first, then `args`; panics unless it succeeds.
    pub fn engine(&self, tool: &str, args: &[&str]) -> String {
        let mut all = self.storage_args();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        self.ok(tool, tool, &all)
    }
}

/// The path and query of `url` (an absolute `http://` URL is cut to them; a path is kept).
pub fn url_path(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
        None => url.to_string(),
    }
}

/// The path of a reply's `Location` header (see [`url_path`]); panics when there is none.
pub fn location(reply: &Reply) -> String {
    let loc = reply
        .header("Location")
        .unwrap_or_else(|| panic!("no Location:\n{reply:?}"));
    url_path(&loc)
}

/// `url` with `key=value` added to its query.
pub fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// Starts an upload session in `repo`: 202 with Location and Docker-Upload-UUID; returns the Location.
pub fn start_upload(reg: &Reg, repo: &str) -> String {
    let reply = reg
        .req("POST", &format!("/v2/{repo}/blobs/uploads/"))
        .send();
    reply.expect(202);
    assert!(
        reply.header("Docker-Upload-UUID").is_some(),
        "no Docker-Upload-UUID:\n{reply:?}"
    );
    location(&reply)
}

/// PATCHes `chunk` at `start` (with Content-Range) to the session at `loc`.
pub fn patch_chunk(reg: &Reg, loc: &str, start: usize, chunk: &[u8]) -> Reply {
    reg.req("PATCH", loc)
        .header("Content-Type", "application/octet-stream")
        .header(
            "Content-Range",
            &format!("{start}-{}", start + chunk.len() - 1),
        )
        .body(chunk.to_vec())
        .send()
}

/// An OCI image manifest over `config` and `layers` (digest, size), with `extra` top-level fields.
pub fn oci_manifest(
    config: (&str, usize),
    layers: &[(&str, usize)],
    extra: serde_json::Value,
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": super::oci::MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s,
        })).collect::<Vec<_>>(),
    });
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            m[k] = v.clone();
        }
    }
    serde_json::to_vec(&m).expect("manifest JSON")
}

/// Reads `Link: <url>; rel="next"` and returns the url's path and query.
pub fn next_link(reply: &Reply) -> Option<String> {
    let link = reply.header("Link")?;
    assert!(
        link.contains("rel=\"next\""),
        "Link without rel=\"next\": {link}"
    );
    let url = &link[link.find('<')? + 1..link.find('>')?];
    Some(url_path(url))
}

/// Follows pages of `n` from `first`, returning each page's `key` list.
pub fn pages(reg: &Reg, first: &str, key: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(url) = next {
        let reply = reg.req("GET", &url).send();
        reply.expect(200);
        out.push(strings(&reply.json()[key]));
        next = next_link(&reply);
        assert!(out.len() < 20, "endless paging");
    }
    out
}

/// Sends `METHOD PATH` as written (no URL normalization) and returns the status code.
pub fn raw_status(port: u16, method: &str, path: &str, body: &[u8]) -> u16 {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        super::oci::MANIFEST,
        body.len()
    );
    conn.write_all(head.as_bytes())
        .expect("writing the request");
    conn.write_all(body).expect("writing the body");
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status line in {text:?}"))
}

/// Every path (files and directories, empty ones included) under `dir`, recursively.
pub fn all_paths(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            out.push(entry.path().display().to_string());
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}
