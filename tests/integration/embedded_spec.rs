//! The OCI distribution spec v1.1 over raw HTTP against the embedded backend (issue 3), one test per area,
//! written from the spec's text: status codes, headers (`Location`, `Range`, `Docker-Content-Digest`,
//! `Docker-Upload-UUID`, `Link`, `OCI-Subject`, `OCI-Filters-Applied`) and error codes in the JSON shape;
//! after every refused write, what was refused is checked to be absent, on the wire and on disk.
//! The servers run without auth (`REGISTRY_AUTH=none`, a drop-in env var).

use serde_json::json;

use crate::util::embedded::{
    all_paths, blob_path, location, next_link, oci_manifest, pages, patch_chunk, raw_status,
    sha256_of, sha512_of, start_upload, strings, with_query, Embedded, Setup, ACCEPT_ALL,
};
use crate::util::frontdoor::noise;
use crate::util::oci::{INDEX, MANIFEST};
use crate::util::temp_dir;

const NO_AUTH: Setup = Setup {
    auth: false,
    delete: true,
    by_env: true,
};

/// A fresh embedded gatehouse without auth, its root in `work`.
fn server(work: &tempfile::TempDir) -> Embedded {
    Embedded::launch(&work.path().join("root"), NO_AUTH)
}

#[test]
fn base_endpoint_answers_200_with_api_version() {
    let work = temp_dir("spec-base");
    let gh = server(&work);
    gh.reg()
        .req("GET", "/v2/")
        .send()
        .expect(200)
        .expect_api_version();
}

#[test]
fn blob_head_and_get() {
    let work = temp_dir("spec-blob");
    let gh = server(&work);
    let reg = gh.reg();
    let data = noise(70_000, 1);
    let digest = reg.push_blob("spec/blob", &data);

    let head = reg
        .req("HEAD", &format!("/v2/spec/blob/blobs/{digest}"))
        .send();
    head.expect(200);
    assert_eq!(head.header("Content-Length").as_deref(), Some("70000"));
    assert_eq!(
        head.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str())
    );
    assert!(head.body.is_empty(), "HEAD has no body");
    let get = reg
        .req("GET", &format!("/v2/spec/blob/blobs/{digest}"))
        .send();
    get.expect(200);
    assert_eq!(
        get.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str())
    );
    assert!(get.body == data, "GET returns the blob's bytes");

    let unknown = sha256_of(b"never pushed");
    reg.req("GET", &format!("/v2/spec/blob/blobs/{unknown}"))
        .send()
        .expect_error(404, "BLOB_UNKNOWN");
    reg.req("HEAD", &format!("/v2/spec/blob/blobs/{unknown}"))
        .send()
        .expect(404);
    // A blob is served only through a repository it is linked into.
    reg.push_blob("spec/other", b"make the other repository exist");
    reg.req("GET", &format!("/v2/spec/other/blobs/{digest}"))
        .send()
        .expect_error(404, "BLOB_UNKNOWN");
    reg.req("HEAD", &format!("/v2/spec/other/blobs/{digest}"))
        .send()
        .expect(404);
}

#[test]
fn blob_range_206_and_416() {
    let work = temp_dir("spec-range");
    let gh = server(&work);
    let reg = gh.reg();
    let data = noise(1000, 2);
    let digest = reg.push_blob("spec/range", &data);
    let path = format!("/v2/spec/range/blobs/{digest}");
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
    ] {
        let reply = reg.req("GET", &path).header("Range", range).send();
        reply.expect(206);
        assert_eq!(
            reply.header("Content-Range").as_deref(),
            Some(format!("bytes {start}-{end}/1000").as_str()),
            "{reply:?}"
        );
        assert!(reply.body == data[start..=end], "bytes of {range}");
    }
    reg.req("GET", &path)
        .header("Range", "bytes=1000-")
        .send()
        .expect(416);
    reg.req("GET", &path)
        .header("Range", "bytes=5000-6000")
        .send()
        .expect(416);

    // If-Range (found in review: ignored): the blob's own ETag keeps the range, anything else (another ETag,
    // a date: no Last-Modified is sent) gets the whole blob.
    let etag = format!("\"{digest}\"");
    let ranged = reg
        .req("GET", &path)
        .header("Range", "bytes=0-9")
        .header("If-Range", &etag)
        .send();
    assert!(ranged.expect(206).body == data[..10]);
    for other in ["\"nope\"", "Wed, 21 Oct 2015 07:28:00 GMT"] {
        let whole = reg
            .req("GET", &path)
            .header("Range", "bytes=0-9")
            .header("If-Range", other)
            .send();
        assert!(whole.expect(200).body == data, "If-Range {other}");
    }
    // If-None-Match with the ETag: 304 on GET and HEAD; an unlinked repository still gets 404, not 304.
    for method in ["GET", "HEAD"] {
        reg.req(method, &path)
            .header("If-None-Match", &etag)
            .send()
            .expect(304);
        reg.req(method, &path)
            .header("If-None-Match", "\"other\"")
            .send()
            .expect(200);
        reg.req(method, &format!("/v2/spec/elsewhere/blobs/{digest}"))
            .header("If-None-Match", &etag)
            .send()
            .expect(404);
    }
}

#[test]
fn monolithic_uploads_post_with_digest_and_post_then_put() {
    let work = temp_dir("spec-mono");
    let gh = server(&work);
    let reg = gh.reg();
    let data = noise(40_000, 3);
    let digest = sha256_of(&data);
    let reply = reg
        .req(
            "POST",
            &format!("/v2/spec/mono/blobs/uploads/?digest={digest}"),
        )
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send();
    reply.expect(201);
    assert_eq!(
        reply.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str())
    );
    let blob_url = location(&reply);
    assert!(blob_url.ends_with(&format!("/blobs/{digest}")), "{reply:?}");
    assert!(reg.req("GET", &blob_url).send().expect(200).body == data);

    // POST to open a session, then one PUT with the whole body.
    let data = noise(30_000, 4);
    let digest = sha256_of(&data);
    let loc = start_upload(&reg, "spec/mono");
    reg.req("PUT", &with_query(&loc, &format!("digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(data.clone())
        .send()
        .expect(201);
    let got = reg
        .req("GET", &format!("/v2/spec/mono/blobs/{digest}"))
        .send();
    assert!(got.expect(200).body == data);
}

#[test]
fn chunked_upload_content_range_out_of_order_and_last_chunk() {
    let work = temp_dir("spec-chunked");
    let gh = server(&work);
    let reg = gh.reg();
    let data = noise(300_000, 5);
    let digest = sha256_of(&data);
    let mut loc = start_upload(&reg, "spec/chunked");

    // A streamed PATCH (no Content-Range), then chunks with Content-Range.
    let reply = reg
        .req("PATCH", &loc)
        .header("Content-Type", "application/octet-stream")
        .body(data[..100_000].to_vec())
        .send();
    reply.expect(202);
    assert_eq!(
        reply.header("Range").as_deref(),
        Some("0-99999"),
        "{reply:?}"
    );
    assert!(reply.header("Docker-Upload-UUID").is_some(), "{reply:?}");
    loc = location(&reply);

    // Out of order: a chunk that does not start at the current length.
    patch_chunk(&reg, &loc, 150_000, &data[150_000..200_000]).expect(416);
    patch_chunk(&reg, &loc, 0, &data[..10]).expect(416);

    let reply = patch_chunk(&reg, &loc, 100_000, &data[100_000..200_000]);
    reply.expect(202);
    assert_eq!(
        reply.header("Range").as_deref(),
        Some("0-199999"),
        "{reply:?}"
    );
    loc = location(&reply);

    // The last chunk comes with the PUT.
    let reply = reg
        .req("PUT", &with_query(&loc, &format!("digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .body(data[200_000..].to_vec())
        .send();
    reply.expect(201);
    assert_eq!(
        reply.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str())
    );
    let got = reg
        .req("GET", &format!("/v2/spec/chunked/blobs/{digest}"))
        .send();
    assert!(got.expect(200).body == data, "the assembled blob");
    // A finished session is gone.
    reg.req("GET", &loc)
        .send()
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn upload_status_204_with_range_and_cancel() {
    let work = temp_dir("spec-status");
    let gh = server(&work);
    let reg = gh.reg();
    let loc = start_upload(&reg, "spec/status");
    let status = reg.req("GET", &loc).send();
    status.expect(204);
    assert_eq!(
        status.header("Range").as_deref(),
        Some("0-0"),
        "empty upload: {status:?}"
    );
    let data = noise(12_345, 6);
    let loc = location(patch_chunk(&reg, &loc, 0, &data).expect(202));
    let status = reg.req("GET", &loc).send();
    status.expect(204);
    assert_eq!(
        status.header("Range").as_deref(),
        Some("0-12344"),
        "{status:?}"
    );
    assert!(status.header("Docker-Upload-UUID").is_some(), "{status:?}");
    assert!(status.header("Location").is_some(), "{status:?}");

    // A session belongs to its repository: the same id under another name is unknown.
    let foreign = loc.replacen("/v2/spec/status/", "/v2/spec/intruder/", 1);
    assert_ne!(foreign, loc, "unexpected Location shape {loc}");
    reg.req("GET", &foreign)
        .send()
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    reg.req(
        "PUT",
        &with_query(&foreign, &format!("digest={}", sha256_of(&data))),
    )
    .send()
    .expect_error(404, "BLOB_UPLOAD_UNKNOWN");

    reg.req("DELETE", &loc).send().expect(204);
    reg.req("GET", &loc)
        .send()
        .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    patch_chunk(&reg, &loc, 12_345, b"more").expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    reg.req(
        "PUT",
        &with_query(&loc, &format!("digest={}", sha256_of(&data))),
    )
    .send()
    .expect_error(404, "BLOB_UPLOAD_UNKNOWN");
    assert!(
        !blob_path(&gh.root, &sha256_of(&data)).exists(),
        "a cancelled upload stored a blob"
    );
}

#[test]
fn digest_mismatch_is_digest_invalid_and_stores_nothing() {
    let work = temp_dir("spec-mismatch");
    let gh = server(&work);
    let reg = gh.reg();
    let data = noise(50_000, 7);
    let real = sha256_of(&data);
    let claimed = sha256_of(b"something else");

    reg.req(
        "POST",
        &format!("/v2/spec/bad/blobs/uploads/?digest={claimed}"),
    )
    .header("Content-Type", "application/octet-stream")
    .body(data.clone())
    .send()
    .expect_error(400, "DIGEST_INVALID");
    let loc = start_upload(&reg, "spec/bad");
    let loc = location(patch_chunk(&reg, &loc, 0, &data).expect(202));
    reg.req("PUT", &with_query(&loc, &format!("digest={claimed}")))
        .send()
        .expect_error(400, "DIGEST_INVALID");

    for digest in [&real, &claimed] {
        reg.req("HEAD", &format!("/v2/spec/bad/blobs/{digest}"))
            .send()
            .expect(404);
        assert!(
            !blob_path(&gh.root, digest).exists(),
            "{digest} is in the blob store after a mismatch"
        );
    }
    // A malformed digest is refused too.
    reg.req("POST", "/v2/spec/bad/blobs/uploads/?digest=sha256:nothex")
        .body(data)
        .send()
        .expect_error(400, "DIGEST_INVALID");
}

#[test]
fn cross_repo_mount_201_and_fallback_202() {
    let work = temp_dir("spec-mount");
    let gh = server(&work);
    let reg = gh.reg();
    let data = noise(20_000, 8);
    let digest = reg.push_blob("spec/source", &data);

    let reply = reg
        .req(
            "POST",
            &format!("/v2/spec/target/blobs/uploads/?mount={digest}&from=spec/source"),
        )
        .send();
    reply.expect(201);
    assert_eq!(
        reply.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str())
    );
    assert!(
        location(&reply).ends_with(&format!("/v2/spec/target/blobs/{digest}")),
        "{reply:?}"
    );
    assert!(
        reg.req("GET", &format!("/v2/spec/target/blobs/{digest}"))
            .send()
            .expect(200)
            .body
            == data
    );

    // Unknown blob: a normal upload session instead, which works.
    let other = noise(1000, 9);
    let other_digest = sha256_of(&other);
    let reply = reg
        .req(
            "POST",
            &format!("/v2/spec/target/blobs/uploads/?mount={other_digest}&from=spec/source"),
        )
        .send();
    reply.expect(202);
    let loc = location(&reply);
    reg.req("PUT", &with_query(&loc, &format!("digest={other_digest}")))
        .body(other)
        .send()
        .expect(201);

    // Without `from` the registry may mount on its own (201) or open a session (202), never fail.
    let reply = reg
        .req(
            "POST",
            &format!("/v2/spec/nofrom/blobs/uploads/?mount={digest}"),
        )
        .send();
    assert!(
        reply.status == 201 || reply.status == 202,
        "mount without from:\n{reply:?}"
    );

    // A blob that exists in the store but not in `from` is not mounted (no leak across repositories).
    let secret = noise(500, 10);
    let secret_digest = reg.push_blob("spec/private", &secret);
    reg.req(
        "POST",
        &format!("/v2/spec/thief/blobs/uploads/?mount={secret_digest}&from=spec/source"),
    )
    .send()
    .expect(202);
    reg.req("GET", &format!("/v2/spec/thief/blobs/{secret_digest}"))
        .send()
        .expect(404);
}

#[test]
fn manifests_of_every_media_type_round_trip() {
    let work = temp_dir("spec-manifests");
    let gh = server(&work);
    let reg = gh.reg();
    let repo = "spec/manifests";
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = noise(3000, 11);
    let config_d = reg.push_blob(repo, &config);
    let layer_d = reg.push_blob(repo, &layer);
    let empty_d = reg.push_blob(repo, b"{}");

    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": config_d, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": layer_d, "size": layer.len()}],
    }))
    .unwrap();
    let oci = oci_manifest(
        (&config_d, config.len()),
        &[(&layer_d, layer.len())],
        json!({}),
    );
    let child = |mt: &str, body: &[u8]| {
        json!({"mediaType": mt, "digest": sha256_of(body), "size": body.len(),
        "platform": {"architecture": "amd64", "os": "linux"}})
    };
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [child("application/vnd.docker.distribution.manifest.v2+json", &docker)],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": [child(MANIFEST, &oci)],
    }))
    .unwrap();
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "artifactType": "application/vnd.gatehouse.test.sbom",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_d, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_d, "size": layer.len()}],
    }))
    .unwrap();

    let cases = [
        (
            "docker",
            "application/vnd.docker.distribution.manifest.v2+json",
            &docker,
        ),
        ("oci", MANIFEST, &oci),
        (
            "list",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            &list,
        ),
        ("index", INDEX, &index),
        ("artifact", MANIFEST, &artifact),
    ];
    for (tag, media_type, body) in cases {
        let digest = sha256_of(body);
        let put = reg.put_manifest(repo, tag, media_type, body);
        put.expect(201);
        assert_eq!(
            put.header("Docker-Content-Digest").as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
        assert!(put.header("Location").is_some(), "{put:?}");
        for reference in [tag, digest.as_str()] {
            let get = reg.get_manifest(repo, reference);
            get.expect(200);
            assert_eq!(
                get.header("Content-Type").as_deref(),
                Some(media_type),
                "{tag}"
            );
            assert_eq!(
                get.header("Docker-Content-Digest").as_deref(),
                Some(digest.as_str())
            );
            assert!(&get.body == body, "{tag}: the bytes that were put");
            let head = reg
                .req("HEAD", &format!("/v2/{repo}/manifests/{reference}"))
                .header("Accept", ACCEPT_ALL)
                .send();
            head.expect(200);
            assert_eq!(head.header("Content-Length"), Some(body.len().to_string()));
            assert_eq!(
                head.header("Docker-Content-Digest").as_deref(),
                Some(digest.as_str())
            );
        }
    }
    let unknown = reg.get_manifest(repo, "nope");
    unknown.expect(404);
    assert!(matches!(
        unknown.error_code().as_str(),
        "MANIFEST_UNKNOWN" | "NAME_UNKNOWN"
    ));
    let unknown = reg.get_manifest("spec/never", "latest");
    unknown.expect(404);
    assert!(matches!(
        unknown.error_code().as_str(),
        "MANIFEST_UNKNOWN" | "NAME_UNKNOWN"
    ));
}

#[test]
fn manifest_put_errors_store_nothing() {
    let work = temp_dir("spec-manifest-errors");
    let gh = server(&work);
    let reg = gh.reg();
    let repo = "spec/refused";
    let config = b"{}".to_vec();
    let config_d = reg.push_blob(repo, &config);
    let missing = sha256_of(b"a layer nobody pushed");
    let elsewhere = reg.push_blob("spec/elsewhere", b"a layer of another repository");

    let body = oci_manifest((&config_d, 2), &[(&missing, 21)], json!({}));
    reg.put_manifest(repo, "missing", MANIFEST, &body)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    let body2 = oci_manifest((&config_d, 2), &[(&elsewhere, 29)], json!({}));
    reg.put_manifest(repo, "elsewhere", MANIFEST, &body2)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "digest": missing, "size": 10}]}),
    )
    .unwrap();
    reg.put_manifest(repo, "index", INDEX, &index)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");
    // A layer of this repository is no child (found in review: it passed through distribution 2.1.0's
    // layer-link fallback, and fsck --repair then removed the accepted index).
    let layer = reg.push_blob(repo, b"a layer, not a manifest");
    let layer_child = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "digest": layer, "size": 23}]}),
    )
    .unwrap();
    reg.put_manifest(repo, "layer-child", INDEX, &layer_child)
        .expect_error(400, "MANIFEST_BLOB_UNKNOWN");

    reg.put_manifest(repo, "garbage", MANIFEST, b"{not json")
        .expect_error(400, "MANIFEST_INVALID");
    reg.put_manifest(
        repo,
        "wrong-shape",
        MANIFEST,
        br#"{"schemaVersion":2,"layers":"no"}"#,
    )
    .expect_error(400, "MANIFEST_INVALID");

    // PUT by a digest that is not the body's.
    let good = oci_manifest((&config_d, 2), &[], json!({}));
    let wrong = sha256_of(b"not this manifest");
    reg.put_manifest(repo, &wrong, MANIFEST, &good)
        .expect_error(400, "DIGEST_INVALID");
    assert!(
        !blob_path(&gh.root, &sha256_of(&good)).exists(),
        "a refused manifest was stored"
    );
    reg.get_manifest(repo, &sha256_of(&good)).expect(404);

    for tag in [
        "missing",
        "elsewhere",
        "index",
        "layer-child",
        "garbage",
        "wrong-shape",
    ] {
        reg.get_manifest(repo, tag).expect(404);
    }
    assert!(
        reg.tags(repo).is_empty(),
        "no tag was created by refused PUTs"
    );
    // And the right digest works.
    reg.put_manifest(repo, &sha256_of(&good), MANIFEST, &good)
        .expect(201);
}

#[test]
fn tags_list_lexical_with_n_last_and_link() {
    let work = temp_dir("spec-tags");
    let gh = server(&work);
    let reg = gh.reg();
    let (body, _) = reg.push_image("spec/tags", "zeta", "tags");
    for tag in ["b", "a", "delta", "c", "alpha"] {
        reg.put_manifest("spec/tags", tag, MANIFEST, &body)
            .expect(201);
    }
    let all = ["a", "alpha", "b", "c", "delta", "zeta"];
    assert_eq!(reg.tags("spec/tags"), all);
    let reply = reg.req("GET", "/v2/spec/tags/tags/list").send();
    assert_eq!(reply.json()["name"], "spec/tags");
    assert!(next_link(&reply).is_none(), "no Link on the only page");

    assert_eq!(
        pages(&reg, "/v2/spec/tags/tags/list?n=2", "tags"),
        [vec!["a", "alpha"], vec!["b", "c"], vec!["delta", "zeta"]]
    );
    let reply = reg.req("GET", "/v2/spec/tags/tags/list?n=2&last=b").send();
    assert_eq!(strings(&reply.expect(200).json()["tags"]), ["c", "delta"]);
    let reply = reg.req("GET", "/v2/spec/tags/tags/list?last=c").send();
    assert_eq!(
        strings(&reply.expect(200).json()["tags"]),
        ["delta", "zeta"]
    );
    reg.req("GET", "/v2/spec/none/tags/list")
        .send()
        .expect_error(404, "NAME_UNKNOWN");
}

#[test]
fn catalog_lexical_with_n_last_and_link() {
    let work = temp_dir("spec-catalog");
    let gh = server(&work);
    let reg = gh.reg();
    for repo in ["team/b", "alpha", "team/a", "zed", "team/a/sub"] {
        reg.push_image(repo, "v1", repo);
    }
    let all = ["alpha", "team/a", "team/a/sub", "team/b", "zed"];
    assert_eq!(reg.catalog(), all);
    assert_eq!(
        pages(&reg, "/v2/_catalog?n=2", "repositories"),
        [
            vec!["alpha", "team/a"],
            vec!["team/a/sub", "team/b"],
            vec!["zed"]
        ]
    );
    let reply = reg.req("GET", "/v2/_catalog?n=3&last=team/a").send();
    assert_eq!(
        strings(&reply.expect(200).json()["repositories"]),
        ["team/a/sub", "team/b", "zed"]
    );
}

#[test]
fn deletes_when_enabled() {
    let work = temp_dir("spec-delete");
    let gh = server(&work);
    let reg = gh.reg();
    let (body, digest) = reg.push_image("spec/del", "v1", "delete me");
    reg.put_manifest("spec/del", "v2", MANIFEST, &body)
        .expect(201);

    reg.req("DELETE", "/v2/spec/del/manifests/v2")
        .send()
        .expect(202);
    reg.get_manifest("spec/del", "v2").expect(404);
    reg.get_manifest("spec/del", &digest).expect(200);
    reg.req("DELETE", &format!("/v2/spec/del/manifests/{digest}"))
        .send()
        .expect(202);
    reg.get_manifest("spec/del", &digest)
        .expect_error(404, "MANIFEST_UNKNOWN");
    reg.get_manifest("spec/del", "v1").expect(404);

    let blob = reg.push_blob("spec/del", b"a blob to delete");
    reg.req("DELETE", &format!("/v2/spec/del/blobs/{blob}"))
        .send()
        .expect(202);
    reg.req("GET", &format!("/v2/spec/del/blobs/{blob}"))
        .send()
        .expect_error(404, "BLOB_UNKNOWN");
    reg.req("DELETE", &format!("/v2/spec/del/blobs/{blob}"))
        .send()
        .expect_error(404, "BLOB_UNKNOWN");
}

#[test]
fn deletes_when_disabled_are_405_unsupported() {
    let work = temp_dir("spec-nodelete");
    let gh = Embedded::launch(
        &work.path().join("root"),
        Setup {
            auth: false,
            delete: false,
            by_env: false,
        },
    );
    let reg = gh.reg();
    let (_, digest) = reg.push_image("spec/keep", "v1", "keep me");
    let blob = reg.push_blob("spec/keep", b"a blob to keep");
    for path in [
        format!("/v2/spec/keep/manifests/{digest}"),
        "/v2/spec/keep/manifests/v1".to_string(),
        format!("/v2/spec/keep/blobs/{blob}"),
    ] {
        reg.req("DELETE", &path)
            .send()
            .expect_error(405, "UNSUPPORTED");
    }
    reg.get_manifest("spec/keep", "v1").expect(200);
    reg.get_manifest("spec/keep", &digest).expect(200);
    reg.req("GET", &format!("/v2/spec/keep/blobs/{blob}"))
        .send()
        .expect(200);
}

#[test]
fn manifest_with_subject_and_referrers() {
    let work = temp_dir("spec-referrers");
    let gh = server(&work);
    let reg = gh.reg();
    let repo = "spec/refs";
    let (subject_body, subject) = reg.push_image(repo, "v1", "subject");
    let empty = reg.push_blob(repo, b"{}");
    let mut referrers = Vec::new();
    for kind in ["sbom", "signature"] {
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "artifactType": format!("application/vnd.gatehouse.{kind}"),
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
            "subject": {"mediaType": MANIFEST, "digest": subject, "size": subject_body.len()},
            "annotations": {"kind": kind},
        }))
        .unwrap();
        let digest = sha256_of(&body);
        let put = reg.put_manifest(repo, &digest, MANIFEST, &body);
        put.expect(201);
        assert_eq!(
            put.header("OCI-Subject").as_deref(),
            Some(subject.as_str()),
            "{put:?}"
        );
        referrers.push((kind, digest, body.len()));
    }
    let reply = reg
        .req("GET", &format!("/v2/{repo}/referrers/{subject}"))
        .send();
    reply.expect(200);
    assert_eq!(reply.header("Content-Type").as_deref(), Some(INDEX));
    let index = reply.json();
    assert_eq!(index["schemaVersion"], 2);
    let mut listed: Vec<(String, String, u64)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            assert_eq!(m["mediaType"], MANIFEST, "{m}");
            assert!(
                m["annotations"]["kind"].is_string(),
                "annotations are listed: {m}"
            );
            (
                m["artifactType"].as_str().unwrap_or("").to_string(),
                m["digest"].as_str().unwrap_or("").to_string(),
                m["size"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, String, u64)> = referrers
        .iter()
        .map(|(k, d, s)| {
            (
                format!("application/vnd.gatehouse.{k}"),
                d.clone(),
                *s as u64,
            )
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    let filtered = reg
        .req(
            "GET",
            &format!("/v2/{repo}/referrers/{subject}?artifactType=application/vnd.gatehouse.sbom"),
        )
        .send();
    filtered.expect(200);
    assert_eq!(
        filtered.header("OCI-Filters-Applied").as_deref(),
        Some("artifactType")
    );
    let only = filtered.json();
    assert_eq!(
        only["manifests"].as_array().map(Vec::len),
        Some(1),
        "{only}"
    );
    assert_eq!(only["manifests"][0]["digest"], referrers[0].1.as_str());

    // A subject that is not (yet) in the repository does not stop the push, and is listed.
    let absent = sha256_of(b"a subject pushed later");
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": MANIFEST, "artifactType": "application/vnd.gatehouse.early",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": MANIFEST, "digest": absent, "size": 123},
    }))
    .unwrap();
    let put = reg.put_manifest(repo, &sha256_of(&body), MANIFEST, &body);
    put.expect(201);
    assert_eq!(put.header("OCI-Subject").as_deref(), Some(absent.as_str()));
    let early = reg
        .req("GET", &format!("/v2/{repo}/referrers/{absent}"))
        .send();
    let early = early.expect(200).json();
    assert_eq!(early["manifests"][0]["digest"], sha256_of(&body), "{early}");

    // No referrers (even for a digest that is not there): 200 with an empty index, never 404.
    let none = reg
        .req(
            "GET",
            &format!("/v2/{repo}/referrers/{}", sha256_of(b"nothing")),
        )
        .send();
    none.expect(200);
    assert_eq!(none.json()["manifests"].as_array().map(Vec::len), Some(0));
}

#[test]
fn sha512_blob_round_trip() {
    let work = temp_dir("spec-sha512");
    let gh = server(&work);
    let reg = gh.reg();
    let data = noise(100_000, 12);
    let digest = sha512_of(&data);
    let reply = reg
        .req(
            "POST",
            &format!("/v2/spec/sha512/blobs/uploads/?digest={digest}"),
        )
        .body(data.clone())
        .send();
    reply.expect(201);
    assert_eq!(
        reply.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str())
    );
    let head = reg
        .req("HEAD", &format!("/v2/spec/sha512/blobs/{digest}"))
        .send();
    head.expect(200);
    assert_eq!(
        head.header("Docker-Content-Digest").as_deref(),
        Some(digest.as_str())
    );
    let get = reg
        .req("GET", &format!("/v2/spec/sha512/blobs/{digest}"))
        .send();
    assert!(get.expect(200).body == data);
    assert!(
        blob_path(&gh.root, &digest).is_file(),
        "stored under blobs/sha512"
    );

    // Chunked, finished with a sha512 digest; and a sha512 mismatch.
    let data = noise(70_000, 13);
    let digest = sha512_of(&data);
    let loc = start_upload(&reg, "spec/sha512");
    let loc = location(patch_chunk(&reg, &loc, 0, &data[..30_000]).expect(202));
    reg.req("PUT", &with_query(&loc, &format!("digest={digest}")))
        .body(data[30_000..].to_vec())
        .send()
        .expect(201);
    let get = reg
        .req("GET", &format!("/v2/spec/sha512/blobs/{digest}"))
        .send();
    assert!(get.expect(200).body == data);
    let wrong = sha512_of(b"other");
    reg.req(
        "POST",
        &format!("/v2/spec/sha512/blobs/uploads/?digest={wrong}"),
    )
    .body(data)
    .send()
    .expect_error(400, "DIGEST_INVALID");
    assert!(!blob_path(&gh.root, &wrong).exists());
}

#[test]
fn hostile_names_are_refused_and_create_nothing_outside_the_root() {
    let work = temp_dir("spec-hostile");
    let root = work.path().join("a/b/root");
    let gh = Embedded::launch(&root, NO_AUTH);
    let reg = gh.reg();
    let (body, _) = reg.push_image("ok/app", "v1", "hostile");
    let marker = format!("evil{}", std::process::id());
    let outside: Vec<std::path::PathBuf> = [
        work.path().join(&marker),
        std::env::temp_dir().join(&marker),
    ]
    .into();

    let up = "%2e%2e/".repeat(9);
    let dots = "../".repeat(9);
    let names = [
        format!("../{marker}"),
        format!("ok/{dots}{marker}"),
        format!("%2e%2e/{marker}"),
        format!("%2E%2E/%2E%2E/{marker}"),
        format!("ok/{up}{marker}"),
        format!("ok%2f..%2f..%2f{marker}"),
        format!("ok/%2e%2e%2f%2e%2e%2f{marker}"),
        format!("Upper/{marker}"),
        "OK/APP".to_string(),
        format!("ok/.{marker}"),
        format!("ok//{marker}"),
    ];
    for name in &names {
        for (method, path, payload) in [
            ("POST", format!("/v2/{name}/blobs/uploads/"), &b""[..]),
            ("PUT", format!("/v2/{name}/manifests/v1"), &body[..]),
            ("GET", format!("/v2/{name}/tags/list"), &b""[..]),
            ("GET", format!("/v2/{name}/manifests/v1"), &b""[..]),
        ] {
            let status = raw_status(gh.gh.port, method, &path, payload);
            assert!(
                status == 400 || status == 404,
                "{method} {path} answered {status}, expected 400 or 404"
            );
        }
    }
    // Hostile references, digests and upload ids in a good repository.
    for (method, path, payload) in [
        (
            "PUT",
            format!("/v2/ok/app/manifests/..%2f..%2f{marker}"),
            &body[..],
        ),
        ("PUT", "/v2/ok/app/manifests/%2e%2e".to_string(), &body[..]),
        (
            "GET",
            format!("/v2/ok/app/blobs/sha256:..%2f..%2f{marker}"),
            &b""[..],
        ),
        (
            "PATCH",
            format!("/v2/ok/app/blobs/uploads/..%2f..%2f{marker}"),
            &b"x"[..],
        ),
        (
            "PUT",
            format!("/v2/ok/app/blobs/uploads/%2e%2e?digest={}", sha256_of(b"x")),
            &b"x"[..],
        ),
    ] {
        let status = raw_status(gh.gh.port, method, &path, payload);
        assert!(
            status == 400 || status == 404,
            "{method} {path} answered {status}, expected 400 or 404"
        );
    }

    for path in &outside {
        assert!(!path.exists(), "{} was created", path.display());
    }
    let top: Vec<String> = std::fs::read_dir(work.path())
        .expect("work dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, ["a"], "only the root's parents are in the work dir");
    for path in all_paths(work.path()) {
        assert!(
            !path.contains(&marker) && !path.contains("Upper") && !path.contains("OK/APP"),
            "hostile request created {path}"
        );
    }
    assert_eq!(
        reg.catalog(),
        ["ok/app"],
        "the catalog has only the good repository"
    );
}
