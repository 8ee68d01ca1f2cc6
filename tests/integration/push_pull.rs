//! skopeo pushes and pulls through gatehouse in front of a fresh distribution 2.8.2: a small image and a
//! two-platform OCI index go in with credentials and come back out with the same digests; inspect,
//! list-tags and delete-by-tag work; what was pushed is really in distribution's storage; a push without
//! or with wrong credentials is refused and stores nothing.
//!
//! The round trips are written against any registry host so the harness can also run them straight
//! against distribution (see `harness.rs`).

use crate::util::http::Http;
use crate::util::oci::{self, sha256_digest, Layout};
use crate::util::skopeo::{self, Creds};
use crate::util::{door, temp_dir, Distribution, PASS, USER};

/// An HTTP request on `host`, with `creds` when given.
fn http_get(host: &str, path: &str, accept: &str, creds: Creds) -> crate::util::Reply {
    let mut req = Http::new(&format!("http://{host}"))
        .req("GET", path)
        .header("Accept", accept);
    if let Some((user, pass)) = creds {
        req = req.creds(user, pass);
    }
    req.send()
}

/// Pushes a small image as `team/small:v1` and `:v2` to `host`, checks it, pulls it back and deletes it.
pub fn small_image_round_trip(host: &str, creds: Creds, dist: &Distribution) {
    let work = temp_dir("small");
    let (layout, image) =
        oci::small_image(&work.path().join("src"), "v1", &format!("small via {host}"));
    let digest = &image.manifest.digest;
    let src = format!("oci:{}:v1", layout.dir().display());
    let dst = format!("docker://{host}/team/small:v1");
    skopeo::copy(&src, &dst, None, creds, false);
    skopeo::copy(
        &src,
        &format!("docker://{host}/team/small:v2"),
        None,
        creds,
        false,
    );

    let raw = skopeo::inspect_raw(&dst, creds);
    assert_eq!(
        &sha256_digest(&raw),
        digest,
        "inspect --raw must serve the pushed manifest bytes"
    );
    let info = skopeo::inspect(&dst, creds);
    assert_eq!(
        info["Digest"].as_str(),
        Some(digest.as_str()),
        "skopeo inspect Digest: {info}"
    );
    let mut tags = skopeo::list_tags(&format!("docker://{host}/team/small"), creds);
    tags.sort();
    assert_eq!(tags, ["v1", "v2"], "list-tags of team/small");
    assert!(
        dist.has_manifest_revision("team/small", digest),
        "the manifest is not in distribution's storage"
    );

    let out = work.path().join("out");
    skopeo::copy(
        &dst,
        &format!("oci:{}:v1", out.display()),
        creds,
        None,
        false,
    );
    let back = Layout::open(&out);
    assert_eq!(
        &back.lookup("v1").digest,
        digest,
        "the pulled manifest digest differs from the pushed one"
    );
    assert_eq!(
        back.read_blob(&image.layer.digest),
        layout.read_blob(&image.layer.digest),
        "layer bytes differ"
    );
    assert_eq!(
        back.read_blob(&image.config.digest),
        layout.read_blob(&image.config.digest),
        "config bytes differ"
    );

    skopeo::delete(&dst, creds);
    http_get(host, "/v2/team/small/manifests/v1", oci::MANIFEST, creds)
        .expect_error(404, "MANIFEST_UNKNOWN");
    http_get(
        host,
        &format!("/v2/team/small/manifests/{digest}"),
        oci::MANIFEST,
        creds,
    )
    .expect_error(404, "MANIFEST_UNKNOWN");
    assert!(
        !dist.has_manifest_revision("team/small", digest),
        "the deleted manifest is still in storage"
    );
}

/// Pushes a two-platform index with `--all` as `team/multi:latest` to `host`, checks it, pulls it back
/// with `--all` and deletes it by tag.
pub fn multiarch_round_trip(host: &str, creds: Creds, dist: &Distribution) {
    let work = temp_dir("multi");
    let (layout, index, images) = oci::multiarch_image(
        &work.path().join("src"),
        "latest",
        &format!("multi via {host}"),
    );
    let src = format!("oci:{}:latest", layout.dir().display());
    let dst = format!("docker://{host}/team/multi:latest");
    skopeo::copy(&src, &dst, None, creds, true);

    let raw = skopeo::inspect_raw(&dst, creds);
    assert_eq!(
        sha256_digest(&raw),
        index.digest,
        "inspect --raw must serve the pushed index bytes"
    );
    let json: serde_json::Value = serde_json::from_slice(&raw).expect("the index is JSON");
    assert_eq!(json["mediaType"], oci::INDEX, "index media type: {json}");
    assert_eq!(
        json["manifests"].as_array().map(Vec::len),
        Some(2),
        "the index lists two platforms: {json}"
    );
    assert!(
        dist.has_manifest_revision("team/multi", &index.digest),
        "the index is not in distribution's storage"
    );
    for image in &images {
        let digest = &image.manifest.digest;
        let reply = http_get(
            host,
            &format!("/v2/team/multi/manifests/{digest}"),
            oci::MANIFEST,
            creds,
        );
        reply.expect(200);
        assert_eq!(
            &sha256_digest(&reply.body),
            digest,
            "platform manifest bytes:\n{reply:?}"
        );
        assert_eq!(
            reply.header("Docker-Content-Digest").as_deref(),
            Some(digest.as_str()),
            "{reply:?}"
        );
        assert!(
            dist.has_manifest_revision("team/multi", digest),
            "platform manifest {digest} not stored"
        );
    }

    let out = work.path().join("out");
    skopeo::copy(
        &dst,
        &format!("oci:{}:latest", out.display()),
        creds,
        None,
        true,
    );
    let back = Layout::open(&out);
    assert_eq!(
        back.lookup("latest").digest,
        index.digest,
        "the pulled index digest differs from the pushed one"
    );
    for image in &images {
        let digest = &image.manifest.digest;
        assert_eq!(
            back.read_blob(digest),
            layout.read_blob(digest),
            "platform manifest {digest} differs after pull"
        );
        assert_eq!(
            back.read_blob(&image.layer.digest),
            layout.read_blob(&image.layer.digest),
            "layer differs"
        );
    }

    skopeo::delete(&dst, creds);
    http_get(host, "/v2/team/multi/manifests/latest", oci::INDEX, creds)
        .expect_error(404, "MANIFEST_UNKNOWN");
    assert!(
        !dist.has_manifest_revision("team/multi", &index.digest),
        "the deleted index is still in storage"
    );
}

#[test]
fn skopeo_small_image_round_trip_through_gatehouse() {
    let dist = Distribution::start();
    let gatehouse = door(&dist.url());
    small_image_round_trip(&gatehouse.host(), Some((USER, PASS)), &dist);
}

#[test]
fn skopeo_multiarch_index_round_trip_through_gatehouse() {
    let dist = Distribution::start();
    let gatehouse = door(&dist.url());
    multiarch_round_trip(&gatehouse.host(), Some((USER, PASS)), &dist);
}

#[test]
fn skopeo_push_without_or_with_wrong_credentials_is_refused() {
    let dist = Distribution::start();
    let gatehouse = door(&dist.url());
    let work = temp_dir("refused");
    let (layout, _) = oci::small_image(&work.path().join("src"), "v1", "refused push");
    let src = format!("oci:{}:v1", layout.dir().display());
    let dst = format!("docker://{}/team/refused:v1", gatehouse.host());
    for creds in [
        None,
        Some((USER, "not-the-password")),
        Some(("mallory", PASS)),
    ] {
        let args = skopeo::copy_args(&src, &dst, None, creds, false);
        let stderr = skopeo::fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let lower = stderr.to_ascii_lowercase();
        assert!(
            lower.contains("401")
                || lower.contains("unauthorized")
                || lower.contains("authentication required"),
            "skopeo with creds {creds:?} should fail on authentication, got:\n{stderr}"
        );
    }
    let repo = dist
        .root()
        .join("docker/registry/v2/repositories/team/refused");
    assert!(
        !repo.exists(),
        "a refused push left {} behind",
        repo.display()
    );
    skopeo::fails(&["inspect", "--tls-verify=false", &dst]);
}

/// The upload `Location` a client gets must lead back through gatehouse: relative, or absolute on
/// gatehouse's own address, never the upstream's (which a client could not reach, or would reach without auth).
#[test]
fn chunked_blob_upload_location_points_at_gatehouse() {
    let dist = Distribution::start();
    let gatehouse = door(&dist.url());
    let http = Http::new(&gatehouse.url());
    let location = |reply: &crate::util::Reply| -> String {
        let location = reply
            .header("Location")
            .unwrap_or_else(|| panic!("no Location:\n{reply:?}"));
        let gate = gatehouse.url();
        assert!(
            location.starts_with('/') || location.starts_with(&format!("{gate}/")),
            "Location does not lead back through gatehouse ({gate}):\n{reply:?}"
        );
        location
    };
    let chunks: [&[u8]; 2] = [b"first chunk of a blob, ", b"and the second one"];
    let whole: Vec<u8> = chunks.concat();
    let digest = sha256_digest(&whole);

    let start = http
        .req("POST", "/v2/team/chunked/blobs/uploads/")
        .creds(USER, PASS)
        .send();
    start.expect(202).expect_api_version();
    let mut next = location(&start);
    let mut offset = 0;
    for chunk in chunks {
        let range = format!("{}-{}", offset, offset + chunk.len() - 1);
        let patch = http
            .req("PATCH", &next)
            .creds(USER, PASS)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", &range)
            .body(chunk.to_vec())
            .send();
        patch.expect(202).expect_api_version();
        offset += chunk.len();
        assert_eq!(
            patch.header("Range"),
            Some(format!("0-{}", offset - 1)),
            "{patch:?}"
        );
        next = location(&patch);
    }
    let sep = if next.contains('?') { '&' } else { '?' };
    let put = http
        .req("PUT", &format!("{next}{sep}digest={digest}"))
        .creds(USER, PASS)
        .send();
    put.expect(201).expect_api_version();
    assert_eq!(
        put.header("Docker-Content-Digest"),
        Some(digest.clone()),
        "{put:?}"
    );
    location(&put);

    let get = http
        .req("GET", &format!("/v2/team/chunked/blobs/{digest}"))
        .creds(USER, PASS)
        .send();
    get.expect(200);
    assert_eq!(get.body, whole, "the blob came back different");
}
