//! Per-repository access rules (issue 4) through real requests to gatehouse in front of a real distribution
//! seeded with images in several repositories: a table of (user, method, path) → 200/201/202, 403 DENIED or
//! a 401 challenge; `/v2/` challenges anonymous callers although some repositories are public; the catalog
//! lists only what the caller may pull; an anonymous `skopeo copy` of a public image works while anonymous
//! and unauthorized pushes are refused (and leave nothing upstream); a cross-repository mount from a source
//! the caller may not pull becomes a plain upload (202, nothing linked), while an allowed one mounts (201).

use std::collections::BTreeMap;

use crate::util::frontdoor::{bcrypt_line, file_text, Front, FrontConfig};
use crate::util::http::Http;
use crate::util::oci::{self, Image, Layout};
use crate::util::{skopeo, temp_dir, Distribution};

/// The access section under test.
const ACCESS: &str = r#"
[access]
public_pull = ["public/*"]

[access.groups]
devs = ["dev1", "dev2"]

[[access.rules]]
repositories = ["team/**"]
principals = ["group:devs"]
actions = ["pull", "push"]

[[access.rules]]
repositories = ["team/**"]
principals = ["lead"]
actions = ["pull", "push", "delete"]

[[access.rules]]
repositories = ["secret/**"]
principals = ["lead"]
actions = ["pull", "push"]

[[access.rules]]
repositories = ["public/*"]
principals = ["lead"]
actions = ["push", "delete"]

[[access.rules]]
repositories = ["*"]
principals = ["*"]
actions = ["pull"]
"#;

/// The repositories seeded upstream.
const REPOS: [&str; 6] = [
    "team/app",
    "team/tools/cli",
    "secret/vault",
    "public/x",
    "public/deep/y",
    "solo",
];

/// Users and passwords.
const USERS: [(&str, &str); 4] = [
    ("lead", "lead-pw"),
    ("dev1", "dev1-pw"),
    ("dev2", "dev2-pw"),
    ("outsider", "outsider-pw"),
];

fn pass_of(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no user {user}"))
}

/// distribution seeded with one small image (tag `v1`) per repository, and gatehouse in front of it.
struct Setup {
    dist: Distribution,
    front: Front,
    images: BTreeMap<&'static str, (Layout, Image)>,
    _dirs: Vec<tempfile::TempDir>,
}

fn setup() -> Setup {
    let dist = Distribution::start();
    let mut dirs = Vec::new();
    let mut images = BTreeMap::new();
    let seed = crate::util::frontdoor::fresh_seed();
    for repo in REPOS {
        let dir = temp_dir("access-img");
        let (layout, image) =
            oci::small_image(&dir.path().join("oci"), "v1", &format!("{repo} {seed}"));
        skopeo::copy(
            &format!("oci:{}:v1", layout.dir().display()),
            &format!("docker://{}/{repo}:v1", dist.host()),
            None,
            None,
            false,
        );
        images.insert(repo, (layout, image));
        dirs.push(dir);
    }
    let auth_dir = temp_dir("access-auth");
    let path = auth_dir.path().join("htpasswd");
    let lines: Vec<String> = USERS.iter().map(|(u, p)| bcrypt_line(u, p, 4)).collect();
    std::fs::write(&path, file_text(&lines)).expect("writing htpasswd");
    dirs.push(auth_dir);
    let front = Front::start(&FrontConfig::new(&dist.url(), &path).tables(ACCESS));
    Setup {
        dist,
        front,
        images,
        _dirs: dirs,
    }
}

impl Setup {
    fn image(&self, repo: &str) -> &Image {
        &self.images[repo].1
    }

    fn manifest_bytes(&self, repo: &str) -> Vec<u8> {
        let (layout, image) = &self.images[repo];
        layout.read_blob(&image.manifest.digest)
    }
}

/// One row: who, method, path, body (for PUT), expected status.
struct Row {
    user: &'static str,
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    want: u16,
}

fn row(user: &'static str, method: &'static str, path: String, want: u16) -> Row {
    Row {
        user,
        method,
        path,
        body: None,
        want,
    }
}

fn check(http: &Http, realm: &str, r: &Row) {
    let mut req = http.req(r.method, &r.path).header("Accept", oci::MANIFEST);
    if !r.user.is_empty() {
        req = req.creds(r.user, pass_of(r.user));
    }
    if let Some(body) = &r.body {
        req = req.header("Content-Type", oci::MANIFEST).body(body.clone());
    }
    let reply = req.send();
    assert_eq!(
        reply.status, r.want,
        "[{}] {} {}: wrong status\n{reply:?}",
        r.user, r.method, r.path
    );
    if r.method == "HEAD" {
        return;
    }
    match r.want {
        401 => {
            reply.expect_unauthorized(realm);
        }
        403 => {
            reply.expect_error(403, "DENIED");
        }
        _ => {}
    }
}

#[test]
fn access_rules_table_through_real_requests() {
    let s = setup();
    let http = Http::new(&s.front.url());
    let app = s.image("team/app");
    let vault = s.image("secret/vault");
    let public = s.image("public/x");
    let app_manifest = s.manifest_bytes("team/app");
    let cli_manifest = s.manifest_bytes("team/tools/cli");
    let solo_manifest = s.manifest_bytes("solo");
    let public_manifest = s.manifest_bytes("public/x");
    let mut rows = vec![
        // The base check: anonymous callers are challenged, whatever is public.
        row("", "GET", "/v2/".into(), 401),
        row("", "HEAD", "/v2/".into(), 401),
        row("outsider", "GET", "/v2/".into(), 200),
        // team/**: devs pull and push, lead also deletes; others are denied, anonymous challenged.
        row("dev1", "GET", "/v2/team/app/manifests/v1".into(), 200),
        row(
            "dev2",
            "HEAD",
            format!("/v2/team/app/blobs/{}", app.layer.digest),
            200,
        ),
        row("dev1", "GET", "/v2/team/app/tags/list".into(), 200),
        row("dev1", "GET", "/v2/team/tools/cli/manifests/v1".into(), 200),
        row("dev1", "POST", "/v2/team/app/blobs/uploads/".into(), 202),
        row(
            "dev1",
            "DELETE",
            format!("/v2/team/app/manifests/{}", app.manifest.digest),
            403,
        ),
        row("lead", "GET", "/v2/team/app/manifests/v1".into(), 200),
        row("outsider", "GET", "/v2/team/app/manifests/v1".into(), 403),
        row(
            "outsider",
            "HEAD",
            format!("/v2/team/app/blobs/{}", app.layer.digest),
            403,
        ),
        row(
            "outsider",
            "POST",
            "/v2/team/app/blobs/uploads/".into(),
            403,
        ),
        row("", "GET", "/v2/team/app/manifests/v1".into(), 401),
        row("", "GET", "/v2/team/app/tags/list".into(), 401),
        // secret/**: only lead, and lead may not delete there.
        row("dev1", "GET", "/v2/secret/vault/manifests/v1".into(), 403),
        row(
            "dev1",
            "HEAD",
            format!("/v2/secret/vault/blobs/{}", vault.layer.digest),
            403,
        ),
        row(
            "dev1",
            "POST",
            "/v2/secret/vault/blobs/uploads/".into(),
            403,
        ),
        row("lead", "GET", "/v2/secret/vault/manifests/v1".into(), 200),
        row(
            "lead",
            "GET",
            format!("/v2/secret/vault/blobs/{}", vault.config.digest),
            200,
        ),
        row(
            "lead",
            "POST",
            "/v2/secret/vault/blobs/uploads/".into(),
            202,
        ),
        row(
            "lead",
            "DELETE",
            format!("/v2/secret/vault/manifests/{}", vault.manifest.digest),
            403,
        ),
        // `*` (one component) lets any authenticated user pull top-level repositories, nothing more.
        row("outsider", "GET", "/v2/solo/manifests/v1".into(), 200),
        row("outsider", "GET", "/v2/solo/tags/list".into(), 200),
        row("outsider", "POST", "/v2/solo/blobs/uploads/".into(), 403),
        row("", "GET", "/v2/solo/manifests/v1".into(), 401),
        // public/*: anyone pulls without credentials; pushing still needs a rule.
        row("", "GET", "/v2/public/x/manifests/v1".into(), 200),
        row("", "HEAD", "/v2/public/x/manifests/v1".into(), 200),
        row(
            "",
            "GET",
            format!("/v2/public/x/blobs/{}", public.layer.digest),
            200,
        ),
        row("", "GET", "/v2/public/x/tags/list".into(), 200),
        row("", "POST", "/v2/public/x/blobs/uploads/".into(), 401),
        row(
            "",
            "DELETE",
            format!("/v2/public/x/manifests/{}", public.manifest.digest),
            401,
        ),
        row("outsider", "GET", "/v2/public/x/manifests/v1".into(), 200),
        row(
            "outsider",
            "POST",
            "/v2/public/x/blobs/uploads/".into(),
            403,
        ),
        row("dev1", "POST", "/v2/public/x/blobs/uploads/".into(), 403),
        row("lead", "POST", "/v2/public/x/blobs/uploads/".into(), 202),
        // `public/*` does not reach public/deep/y, and neither does `*`.
        row("", "GET", "/v2/public/deep/y/manifests/v1".into(), 401),
        row(
            "outsider",
            "GET",
            "/v2/public/deep/y/manifests/v1".into(),
            403,
        ),
        row("lead", "GET", "/v2/public/deep/y/manifests/v1".into(), 403),
    ];
    let put = |user: &'static str, path: &str, body: &[u8], want: u16| Row {
        user,
        method: "PUT",
        path: path.to_string(),
        body: Some(body.to_vec()),
        want,
    };
    rows.push(put(
        "",
        "/v2/public/x/manifests/anon",
        &public_manifest,
        401,
    ));
    rows.push(put(
        "outsider",
        "/v2/public/x/manifests/out",
        &public_manifest,
        403,
    ));
    rows.push(put(
        "lead",
        "/v2/public/x/manifests/lead",
        &public_manifest,
        201,
    ));
    rows.push(put(
        "outsider",
        "/v2/solo/manifests/v2",
        &solo_manifest,
        403,
    ));
    rows.push(put(
        "dev2",
        "/v2/team/tools/cli/manifests/v2",
        &cli_manifest,
        201,
    ));
    rows.push(put("lead", "/v2/team/app/manifests/v2", &app_manifest, 201));
    rows.push(put(
        "dev1",
        "/v2/secret/vault/manifests/v2",
        &app_manifest,
        403,
    ));
    // Deleting last: lead may delete in team/**.
    rows.push(row(
        "lead",
        "DELETE",
        format!("/v2/team/app/manifests/{}", app.manifest.digest),
        202,
    ));
    for r in &rows {
        check(&http, &s.front.realm, r);
    }
    // Refused writes left nothing upstream; allowed ones did.
    let upstream = Http::new(&s.dist.url());
    for (repo, tag, want) in [
        ("public/x", "anon", 404),
        ("public/x", "out", 404),
        ("solo", "v2", 404),
        ("secret/vault", "v2", 404),
        ("public/x", "lead", 200),
        ("team/tools/cli", "v2", 200),
    ] {
        upstream
            .req("GET", &format!("/v2/{repo}/manifests/{tag}"))
            .header("Accept", oci::MANIFEST)
            .send()
            .expect(want);
    }
    upstream
        .req("GET", "/v2/secret/vault/manifests/v1")
        .header("Accept", oci::MANIFEST)
        .send()
        .expect(200);
    let denials = s.front.samples().sum("gatehouse_authz_denials_total", &[]);
    let denied = rows.iter().filter(|r| r.want == 403).count() as f64;
    let refused = rows
        .iter()
        .filter(|r| r.want == 403 || (r.want == 401 && r.user.is_empty()))
        .count() as f64;
    assert!(
        denied <= denials && denials <= refused,
        "gatehouse_authz_denials_total is {denials}: {denied} requests got 403 and {refused} were refused"
    );
}

/// The repositories in `GET /v2/_catalog` as `user`, sorted.
fn catalog(http: &Http, user: &str) -> Vec<String> {
    let reply = http
        .req("GET", "/v2/_catalog")
        .creds(user, pass_of(user))
        .send();
    reply.expect(200);
    let mut repos: Vec<String> = reply.json()["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("no repositories in the catalog:\n{reply:?}"))
        .iter()
        .map(|r| r.as_str().expect("a repository name").to_string())
        .collect();
    repos.sort();
    repos
}

#[test]
fn access_catalog_lists_only_what_the_caller_may_pull() {
    let s = setup();
    let http = Http::new(&s.front.url());
    let upstream = Http::new(&s.dist.url());
    let all = upstream.req("GET", "/v2/_catalog").send();
    all.expect(200);
    assert_eq!(
        all.json()["repositories"].as_array().map(Vec::len),
        Some(REPOS.len()),
        "upstream catalog:\n{all:?}"
    );
    http.req("GET", "/v2/_catalog")
        .send()
        .expect_unauthorized(&s.front.realm);
    let want: [(&str, &[&str]); 4] = [
        (
            "lead",
            &[
                "public/x",
                "secret/vault",
                "solo",
                "team/app",
                "team/tools/cli",
            ],
        ),
        ("dev1", &["public/x", "solo", "team/app", "team/tools/cli"]),
        ("dev2", &["public/x", "solo", "team/app", "team/tools/cli"]),
        ("outsider", &["public/x", "solo"]),
    ];
    for (user, repos) in want {
        assert_eq!(catalog(&http, user), repos, "catalog as {user}");
    }
}

#[test]
fn access_anonymous_skopeo_pull_of_public_works_and_pushes_are_refused() {
    let s = setup();
    let host = s.front.gh.host();
    let out = temp_dir("access-pull");

    // Anonymous push to the public repository, and a push by a user without push there: refused.
    let src = format!("oci:{}:v1", s.images["public/x"].0.dir().display());
    let err = skopeo::fails(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        &src,
        &format!("docker://{host}/public/x:anon-push"),
    ]);
    eprintln!("anonymous push refused: {err}");
    let err = skopeo::fails(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds=outsider:outsider-pw",
        &src,
        &format!("docker://{host}/public/x:outsider-push"),
    ]);
    eprintln!("outsider push refused: {err}");
    // The user the rules let push does push.
    skopeo::ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds=lead:lead-pw",
        &src,
        &format!("docker://{host}/public/x:lead-push"),
    ]);
    let upstream = Http::new(&s.dist.url());
    for (tag, want) in [
        ("anon-push", 404),
        ("outsider-push", 404),
        ("lead-push", 200),
    ] {
        upstream
            .req("GET", &format!("/v2/public/x/manifests/{tag}"))
            .header("Accept", oci::MANIFEST)
            .send()
            .expect(want);
    }

    // Anonymous pull of a private repository fails.
    let denied = skopeo::fails(&[
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{host}/team/app:v1"),
        &format!("oci:{}:private", out.path().join("private").display()),
    ]);
    eprintln!("anonymous private pull refused: {denied}");

    // Anonymous pull of the public repository works.
    let dest = out.path().join("oci");
    skopeo::ok(&[
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{host}/public/x:v1"),
        &format!("oci:{}:v1", dest.display()),
    ]);
    let pulled = Layout::open(&dest).lookup("v1");
    assert_eq!(pulled.digest, s.image("public/x").manifest.digest);
}

/// skopeo `--src-no-creds` answers the `/v2/` Basic challenge with `Authorization: Basic Og==` (an empty user
/// and password, seen on the wire with skopeo 1.9.3): that is an anonymous caller, not a failed login.
#[test]
fn access_empty_basic_credentials_are_anonymous_as_skopeo_no_creds_sends_them() {
    let s = setup();
    let http = Http::new(&s.front.url());
    let public = s.image("public/x");
    for path in [
        "/v2/public/x/manifests/v1".to_string(),
        format!("/v2/public/x/blobs/{}", public.layer.digest),
    ] {
        http.req("GET", &path)
            .header("Accept", oci::MANIFEST)
            .header("Authorization", "Basic Og==")
            .send()
            .expect(200);
    }
    http.req("GET", "/v2/team/app/manifests/v1")
        .header("Accept", oci::MANIFEST)
        .header("Authorization", "Basic Og==")
        .send()
        .expect_unauthorized(&s.front.realm);
}

#[test]
fn access_cross_repo_mount_needs_pull_on_the_source() {
    let s = setup();
    let http = Http::new(&s.front.url());
    let upstream = Http::new(&s.dist.url());
    let secret_layer = s.image("secret/vault").layer.digest.clone();
    let app_layer = s.image("team/app").layer.digest.clone();
    let head = |repo: &str, digest: &str| {
        upstream
            .req("HEAD", &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .status
    };
    assert_eq!(head("team/app", &secret_layer), 404, "precondition");

    // dev1 may push to team/app but may not pull secret/vault: no mount, a plain upload starts.
    for from in ["secret/vault", "secret%2Fvault"] {
        let reply = http
            .req(
                "POST",
                &format!("/v2/team/app/blobs/uploads/?mount={secret_layer}&from={from}"),
            )
            .creds("dev1", "dev1-pw")
            .send();
        reply.expect(202);
        assert!(
            reply.header("Location").is_some(),
            "a plain upload has a Location:\n{reply:?}"
        );
        assert_eq!(
            head("team/app", &secret_layer),
            404,
            "the secret layer was mounted into team/app (from={from})"
        );
    }
    http.req("HEAD", &format!("/v2/team/app/blobs/{secret_layer}"))
        .creds("dev1", "dev1-pw")
        .send()
        .expect(404);

    // dev1 may pull team/app: mounting from it into team/tools/cli works.
    let reply = http
        .req(
            "POST",
            &format!("/v2/team/tools/cli/blobs/uploads/?mount={app_layer}&from=team/app"),
        )
        .creds("dev1", "dev1-pw")
        .send();
    reply.expect(201);
    assert_eq!(head("team/tools/cli", &app_layer), 200);

    // lead may pull secret/vault: the same mount that was refused to dev1 works for lead.
    let reply = http
        .req(
            "POST",
            &format!("/v2/team/app/blobs/uploads/?mount={secret_layer}&from=secret/vault"),
        )
        .creds("lead", "lead-pw")
        .send();
    reply.expect(201);
    assert_eq!(
        reply.header("Docker-Content-Digest").as_deref(),
        Some(secret_layer.as_str())
    );
    assert_eq!(head("team/app", &secret_layer), 200);
}
