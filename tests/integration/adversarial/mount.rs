//! Finding 1: a cross-repository mount from a source the caller may not pull must never happen, whatever the
//! encoding of the query (percent-escaped keys, duplicate keys, `;` separators, `+` and `%20`, upper- and
//! lower-case escapes) and wherever the parameters hide (a form-encoded POST body, which distribution reads
//! with Go's `FormValue`, is refused with 400). bob may pull and push `bob/*` only; the blob exists only in
//! `secret/thing`. Upstream mode (distribution decodes what gatehouse passes on) and the embedded backend.

use std::path::Path;

use super::{embedded, pass_of, push_blob, write_users};
use crate::util::embedded::blob_path;
use crate::util::frontdoor::{noise, Front, FrontConfig};
use crate::util::http::Http;
use crate::util::raw::{self, basic, RawReply};
use crate::util::{temp_dir, Distribution};

/// bob pulls and pushes `bob/*`; lead owns `secret/**`.
const ACCESS: &str = r#"
[[access.rules]]
repositories = ["bob/*"]
principals = ["bob"]
actions = ["pull", "push"]

[[access.rules]]
repositories = ["secret/**"]
principals = ["lead"]
actions = ["pull", "push"]
"#;

/// The mount queries tried, `{D}` standing for the secret digest and `{H}` for its hex.
const QUERIES: [(&str, &str); 24] = [
    ("escaped from key", "mount={D}&fr%6Fm=secret/thing"),
    (
        "lower-case escaped from key",
        "mount={D}&fr%6fm=secret/thing",
    ),
    ("escaped mount key", "m%6Funt={D}&from=secret/thing"),
    ("both keys escaped", "%6Dount={D}&%66rom=secret/thing"),
    (
        "every byte of the keys escaped",
        "%6D%6F%75%6E%74={D}&%66%72%6F%6D=secret%2Fthing",
    ),
    (
        "allowed from first",
        "from=bob/x&mount={D}&from=secret/thing",
    ),
    (
        "denied from first",
        "from=secret/thing&mount={D}&from=bob/x",
    ),
    (
        "escaped duplicate from",
        "from=bob/x&mount={D}&fr%6Fm=secret/thing",
    ),
    ("duplicate mount", "mount={D}&mount={D}&from=secret/thing"),
    ("semicolon separator", "mount={D};from=secret/thing"),
    (
        "semicolon after an allowed from",
        "mount={D}&from=bob/x;from=secret/thing",
    ),
    (
        "semicolon before the denied from",
        "from=bob/x;x=1&mount={D}&from=secret/thing",
    ),
    ("plus in the key", "mount={D}&from+=secret/thing"),
    ("escaped space in the key", "mount={D}&from%20=secret/thing"),
    ("plus in the value", "mount={D}&from=secret/thing+"),
    (
        "escaped space in the value",
        "mount={D}&from=secret/thing%20",
    ),
    ("escaped slash", "mount={D}&from=secret%2Fthing"),
    ("lower-case escaped slash", "mount={D}&from=secret%2fthing"),
    ("escaped value letters", "mount={D}&from=%73ecret/%74hing"),
    (
        "escaped colon in the digest",
        "mount=sha256%3A{H}&from=secret/thing",
    ),
    (
        "lower-case escaped colon",
        "mount=sha256%3a{H}&from=secret/thing",
    ),
    ("empty pairs around", "&&mount={D}&&from=secret/thing&&"),
    (
        "key without value first",
        "from&mount={D}&from=secret/thing",
    ),
    (
        "escaped ampersand",
        "mount={D}%26from=secret/thing&from=bob/x",
    ),
];

/// The form-body uploads tried: query, body; each must be refused with 400.
const FORMS: [(&str, &str, &str); 3] = [
    ("form body with both", "", "mount={D}&from=secret/thing"),
    (
        "mount in the query, from in the body",
        "mount={D}",
        "from=secret/thing",
    ),
    (
        "escaped keys in the body",
        "",
        "m%6Funt={D}&fr%6Fm=secret%2Fthing",
    ),
];

fn fill(template: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    template.replace("{D}", digest).replace("{H}", hex)
}

/// One upload POST as bob into `repo` with `query` and, when `form` is set, a form-encoded body.
fn post_as_bob(port: u16, repo: &str, query: &str, form: Option<&str>) -> RawReply {
    let auth = basic("bob", pass_of("bob"));
    let target = if query.is_empty() {
        format!("/v2/{repo}/blobs/uploads/")
    } else {
        format!("/v2/{repo}/blobs/uploads/?{query}")
    };
    match form {
        Some(body) => raw::request(
            port,
            "POST",
            &target,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        ),
        None => raw::request(port, "POST", &target, &[("Authorization", &auth)], b""),
    }
}

/// What went wrong with one attempt, if anything: a 201 for the secret digest, or the blob now readable or
/// linked in the target repository.
fn mounted(
    reply: &RawReply,
    digest: &str,
    bob_get: u16,
    linked: bool,
    want_status: Option<u16>,
) -> Option<String> {
    let mut wrong = Vec::new();
    if reply.status == 201 {
        wrong.push(format!(
            "201 Created (Docker-Content-Digest {:?})",
            reply.header("Docker-Content-Digest")
        ));
    }
    if reply.header("Docker-Content-Digest") == Some(digest) {
        wrong.push("the reply names the secret digest".to_string());
    }
    if let Some(want) = want_status {
        if reply.status != want {
            wrong.push(format!("status {} instead of {want}", reply.status));
        }
    }
    if bob_get != 404 {
        wrong.push(format!("bob's GET of the blob answered {bob_get}"));
    }
    if linked {
        wrong.push("the blob is linked in the target repository".to_string());
    }
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

/// Runs every query and form attempt, each into its own `bob/k<i>`; `linked(repo)` tells whether the
/// backend linked the secret blob there. Panics listing every attempt that mounted or was not refused.
fn attack(port: u16, digest: &str, linked: &dyn Fn(&str) -> bool) {
    let bob = Http::new(&format!("http://127.0.0.1:{port}"));
    let mut failures = Vec::new();
    let mut attempts: Vec<(&str, String, Option<String>, Option<u16>)> = QUERIES
        .iter()
        .map(|(what, q)| (*what, fill(q, digest), None, None))
        .collect();
    for (what, q, body) in FORMS {
        attempts.push((what, fill(q, digest), Some(fill(body, digest)), Some(400)));
    }
    for (i, (what, query, form, want)) in attempts.iter().enumerate() {
        let repo = format!("bob/k{i}");
        let reply = post_as_bob(port, &repo, query, form.as_deref());
        let get = bob
            .req("GET", &format!("/v2/{repo}/blobs/{digest}"))
            .creds("bob", pass_of("bob"))
            .send()
            .status;
        let outcome = mounted(&reply, digest, get, linked(&repo), *want);
        eprintln!(
            "{what:40} ?{query} body {form:?}: {} -> {}",
            reply.status,
            outcome.as_deref().unwrap_or("held")
        );
        if let Some(wrong) = outcome {
            failures.push(format!(
                "{what} (?{query}, body {form:?}): {wrong}\n{reply:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} attempts got bob a blob he may not pull, or were not refused:\n{}",
        failures.len(),
        attempts.len(),
        failures.join("\n\n")
    );
}

/// The control: a mount bob may make (from `bob/src`, which he may pull) does mount, so the attempts above
/// would have seen one.
fn allowed_mount_works(port: u16, own_digest: &str) {
    let reply = post_as_bob(
        port,
        "bob/ok",
        &format!("mount={own_digest}&from=bob/src"),
        None,
    );
    assert_eq!(
        (reply.status, reply.header("Docker-Content-Digest")),
        (201, Some(own_digest)),
        "bob's allowed mount from bob/src did not mount:\n{reply:?}"
    );
}

fn linked_in(root: &Path, repo: &str, digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    root.join("docker/registry/v2/repositories")
        .join(repo)
        .join("_layers/sha256")
        .join(hex)
        .join("link")
        .exists()
}

#[test]
fn mount_in_any_encoding_never_gives_bob_a_blob_of_secret_upstream() {
    let dist = Distribution::start();
    let dir = temp_dir("adv-mount");
    let htpasswd = write_users(dir.path());
    let secret = push_blob(&dist.url(), "secret/thing", &noise(4096, 11), None);
    let own = push_blob(&dist.url(), "bob/src", &noise(4096, 12), None);
    let front = Front::start(
        &FrontConfig::new(&dist.url(), &htpasswd)
            .tables(ACCESS)
            .no_guard(),
    );
    let upstream = Http::new(&dist.url());
    assert_eq!(
        upstream
            .req("HEAD", &format!("/v2/bob/k0/blobs/{secret}"))
            .send()
            .status,
        404,
        "precondition: the secret blob is not in bob/k0"
    );
    let port = front.gh.port;
    allowed_mount_works(port, &own);
    attack(port, &secret, &|repo| {
        upstream
            .req("HEAD", &format!("/v2/{repo}/blobs/{secret}"))
            .send()
            .status
            != 404
    });
}

#[test]
fn mount_in_any_encoding_never_gives_bob_a_blob_of_secret_embedded() {
    let dir = temp_dir("adv-mount-emb");
    let htpasswd = write_users(dir.path());
    let root = dir.path().join("root");
    let gh = embedded(&root, &htpasswd, "", ACCESS);
    let secret = push_blob(
        &gh.url(),
        "secret/thing",
        &noise(4096, 21),
        Some(("lead", pass_of("lead"))),
    );
    let own = push_blob(
        &gh.url(),
        "bob/src",
        &noise(4096, 22),
        Some(("bob", pass_of("bob"))),
    );
    assert!(blob_path(&root, &secret).is_file(), "precondition");
    allowed_mount_works(gh.port, &own);
    attack(gh.port, &secret, &|repo| linked_in(&root, repo, &secret));
}
