//! Finding 23: a manifest reference that is neither a valid tag nor a valid digest never matches
//! distribution's router, so a GET or HEAD of it is 404 MANIFEST_UNKNOWN, as clients and conformance suites
//! expect; a PUT to it stays 400 TAG_INVALID (DIGEST_INVALID when it is digest-shaped, as today). Embedded
//! backend, with the repository present.

use super::{embedded, pass_of, write_users};
use crate::util::embedded::Reg;
use crate::util::raw::{self, basic};
use crate::util::temp_dir;

/// References that are neither a tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) nor a digest.
fn bad_references() -> Vec<String> {
    vec![
        "sha256:zz".to_string(),
        "-bad".to_string(),
        "a".repeat(200),
        ".dot-first".to_string(),
        "sha256:".to_string(),
        "sha256:abc".to_string(),
    ]
}

#[test]
fn manifest_get_and_head_of_a_reference_neither_tag_nor_digest_is_404_manifest_unknown() {
    let dir = temp_dir("adv-refs");
    let htpasswd = write_users(dir.path());
    let gh = embedded(&dir.path().join("root"), &htpasswd, "", "");
    let reg = Reg::new(&gh.url(), Some(("alice", pass_of("alice"))));
    let (manifest, _) = reg.push_image("a", "v1", "references");
    let auth = basic("alice", pass_of("alice"));
    let mut wrong = Vec::new();
    for reference in bad_references() {
        let path = format!("/v2/a/manifests/{reference}");
        for method in ["GET", "HEAD"] {
            let reply = raw::request(gh.port, method, &path, &[("Authorization", &auth)], b"");
            let code = reply.error_code();
            let ok = reply.status == 404
                && (method == "HEAD" || code.as_deref() == Some("MANIFEST_UNKNOWN"));
            eprintln!("{method} {path}: {} {code:?}", reply.status);
            if !ok {
                wrong.push(format!(
                    "{method} {path}: want 404 MANIFEST_UNKNOWN\n{reply:?}"
                ));
            }
        }
        let reply = raw::request(
            gh.port,
            "PUT",
            &path,
            &[
                ("Authorization", &auth),
                ("Content-Type", crate::util::oci::MANIFEST),
            ],
            &manifest,
        );
        eprintln!("PUT {path}: {} {:?}", reply.status, reply.error_code());
        // A digest-shaped reference keeps today's DIGEST_INVALID; anything else is TAG_INVALID.
        let codes: &[&str] = if reference.starts_with("sha256:") {
            &["TAG_INVALID", "DIGEST_INVALID"]
        } else {
            &["TAG_INVALID"]
        };
        let code = reply.error_code().unwrap_or_default();
        if reply.status != 400 || !codes.contains(&code.as_str()) {
            wrong.push(format!("PUT {path}: want 400 {codes:?}\n{reply:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
