//! Manifests, tags, catalog, referrers and deletes.

use super::*;

const V2: &str = "docker/registry/v2";

#[tokio::test]
async fn manifest_put_get_head_and_layout() {
    let h = Harness::new(false).await;
    let (d, r) = h
        .push_image("team/app", "v1", "s", serde_json::json!({}))
        .await;
    assert_eq!(r.h("location"), format!("/v2/team/app/manifests/{d}"));
    assert_eq!(r.h("docker-content-digest"), d.to_string());
    assert_eq!(r.h("oci-subject"), "");
    for reference in ["v1".to_string(), d.to_string()] {
        let r = h
            .call(
                "GET",
                &format!("/v2/team/app/manifests/{reference}"),
                &[],
                &[],
            )
            .await;
        assert_eq!((r.status, r.h("content-type")), (200, OCI_MANIFEST));
        assert_eq!(r.h("docker-content-digest"), d.to_string());
        assert_eq!(digest_bytes(Algorithm::Sha256, &r.body), d);
        let head = h
            .call(
                "HEAD",
                &format!("/v2/team/app/manifests/{reference}"),
                &[],
                &[],
            )
            .await;
        assert_eq!((head.status, head.body.len()), (200, 0));
        assert_eq!(head.h("content-length"), r.body.len().to_string());
    }
    let repo = h
        .root()
        .join(format!("{V2}/repositories/team/app/_manifests"));
    let hex = d.hex();
    let link = d.to_string().into_bytes();
    assert_eq!(
        std::fs::read(repo.join(format!("revisions/sha256/{hex}/link"))).unwrap(),
        link
    );
    assert_eq!(
        std::fs::read(repo.join("tags/v1/current/link")).unwrap(),
        link
    );
    assert_eq!(
        std::fs::read(repo.join(format!("tags/v1/index/sha256/{hex}/link"))).unwrap(),
        link
    );
    let data = h
        .root()
        .join(format!("{V2}/blobs/sha256/{}/{hex}/data", &hex[..2]));
    assert_eq!(
        digest_bytes(Algorithm::Sha256, &std::fs::read(data).unwrap()),
        d
    );
    // Manifests are not layers (distribution links them only under revisions).
    assert!(!h
        .root()
        .join(format!("{V2}/repositories/team/app/_layers/sha256/{hex}"))
        .exists());
}

#[tokio::test]
async fn manifest_errors() {
    let h = Harness::new(false).await;
    let unknown = h.call("GET", "/v2/a/manifests/nope", &[], &[]).await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    let put = |body: Vec<u8>, reference: &str| {
        let url = format!("/v2/a/manifests/{reference}");
        let h = &h;
        async move {
            h.call("PUT", &url, &[("content-type", OCI_MANIFEST)], &[&body])
                .await
        }
    };
    let r = put(b"{not json".to_vec(), "t").await;
    assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    let missing = digest_bytes(Algorithm::Sha256, b"missing");
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": missing.to_string(), "size": 7},
        "layers": []});
    let body = serde_json::to_vec(&m).unwrap();
    let r = put(body.clone(), "t").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    h.push_blob("a", b"missing").await;
    let wrong = digest_bytes(Algorithm::Sha256, b"other");
    assert_eq!(
        put(body.clone(), &wrong.to_string()).await.code(),
        "DIGEST_INVALID"
    );
    let right = digest_bytes(Algorithm::Sha256, &body);
    assert_eq!(put(body.clone(), &right.to_string()).await.status, 201);
    assert_eq!(
        h.call("GET", "/v2/a/tags/list", &[], &[]).await.json()["tags"],
        serde_json::json!([])
    );
    let big = vec![b' '; (4 << 20) + 1];
    let r = put(big, "t").await;
    assert_eq!((r.status, r.code().as_str()), (413, "MANIFEST_INVALID"));
    // An index needs its children in the repository.
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": wrong.to_string(), "size": 7}]});
    let r = put(serde_json::to_vec(&idx).unwrap(), "multi").await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    let idx = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": right.to_string(), "size": body.len()}]});
    let r = put(serde_json::to_vec(&idx).unwrap(), "multi").await;
    assert_eq!(r.status, 201);
    let r = h.call("GET", "/v2/a/manifests/multi", &[], &[]).await;
    assert_eq!(r.h("content-type"), OCI_INDEX);
}

#[tokio::test]
async fn docker_media_types_round_trip() {
    let h = Harness::new(false).await;
    let c = h.push_blob("d", b"{}").await;
    let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": c.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 1,
            "digest": digest_bytes(Algorithm::Sha256, b"foreign").to_string(), "urls": ["https://example.invalid/x"]}]});
    let body = serde_json::to_vec(&m).unwrap();
    let r = h.call("PUT", "/v2/d/manifests/latest", &[], &[&body]).await;
    assert_eq!(r.status, 201, "foreign layers need not be present");
    let md = r.h("docker-content-digest").to_string();
    let list = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": md, "size": body.len(),
            "platform": {"architecture": "amd64", "os": "linux"}}]});
    assert_eq!(
        h.call(
            "PUT",
            "/v2/d/manifests/list",
            &[],
            &[&serde_json::to_vec(&list).unwrap()]
        )
        .await
        .status,
        201
    );
    let r = h.call("GET", "/v2/d/manifests/list", &[], &[]).await;
    assert_eq!(
        r.h("content-type"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link() {
    let h = Harness::new(false).await;
    for t in ["b", "a", "c", "v1.0"] {
        h.push_image("team/app", t, "x", serde_json::json!({}))
            .await;
    }
    h.push_image("team", "t", "y", serde_json::json!({})).await;
    h.push_blob("zeta", b"only a layer").await;
    let r = h.call("GET", "/v2/team/app/tags/list", &[], &[]).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"name": "team/app", "tags": ["a", "b", "c", "v1.0"]})
    );
    assert_eq!(r.h("link"), "");
    let r = h.call("GET", "/v2/team/app/tags/list?n=2", &[], &[]).await;
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        r.h("link"),
        "</v2/team/app/tags/list?n=2&last=b>; rel=\"next\""
    );
    let r = h
        .call("GET", "/v2/team/app/tags/list?n=2&last=b", &[], &[])
        .await;
    assert_eq!(
        (r.json()["tags"].clone(), r.h("link")),
        (serde_json::json!(["c", "v1.0"]), "")
    );
    assert_eq!(
        h.call("GET", "/v2/team/app/tags/list?n=0", &[], &[])
            .await
            .json()["tags"],
        serde_json::json!([])
    );
    assert_eq!(
        h.call("GET", "/v2/team/app/tags/list?n=x", &[], &[])
            .await
            .status,
        400
    );
    let r = h.call("GET", "/v2/nobody/tags/list", &[], &[]).await;
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));

    // A repository with only an upload in progress is not in the catalog.
    h.call("POST", "/v2/pending/blobs/uploads/", &[], &[]).await;
    let r = h.call("GET", "/v2/_catalog", &[], &[]).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"repositories": ["team", "team/app", "zeta"]})
    );
    let r = h.call("GET", "/v2/_catalog?n=1", &[], &[]).await;
    assert_eq!(r.h("link"), "</v2/_catalog?n=1&last=team>; rel=\"next\"");
    let r = h.call("GET", "/v2/_catalog?n=1&last=team", &[], &[]).await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));
    assert_eq!(
        r.h("link"),
        "</v2/_catalog?n=1&last=team%2Fapp>; rel=\"next\""
    );
    let r = h
        .call("GET", "/v2/_catalog?n=5&last=team%2Fapp", &[], &[])
        .await;
    assert_eq!(
        (r.json()["repositories"].clone(), r.h("link")),
        (serde_json::json!(["zeta"]), "")
    );
    // Per-caller filtering (the Permit's) happens before pagination.
    let route =
        crate::route::parse(&Method::GET, "/v2/_catalog", Some("n=1"), &HeaderMap::new()).unwrap();
    let headers = HeaderMap::new();
    let req = Request {
        route: &route,
        method: &Method::GET,
        headers: &headers,
    };
    let policy = crate::authz::Policy {
        rules: vec![crate::authz::Rule {
            repositories: vec!["team/*".into(), "zeta".into()],
            principals: vec!["u".into()],
            actions: vec![crate::route::Action::Pull],
        }],
        ..Default::default()
    };
    let u = crate::auth::Principal { user: "u".into() };
    let permit = policy.decide(&route, Some(&u), true).unwrap();
    let reply = h
        .reg
        .handle(&permit, &req, &mut Chunks(VecDeque::new()))
        .await;
    let ReplyBody::Bytes(b) = reply.body else {
        panic!("json body")
    };
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&b).unwrap()["repositories"],
        serde_json::json!(["team/app"])
    );
}

#[tokio::test]
async fn referrers_list_and_filter() {
    let h = Harness::new(false).await;
    let (subject, _) = h.push_image("r", "v1", "base", serde_json::json!({})).await;
    let subj =
        serde_json::json!({"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": 100});
    let (sig, r) = h
        .push_image(
            "r",
            "sig",
            "s1",
            serde_json::json!({"subject": subj, "artifactType": "application/vnd.example.sig",
            "annotations": {"org.example": "yes"}}),
        )
        .await;
    assert_eq!(r.h("oci-subject"), subject.to_string());
    // No artifactType: the config's media type stands in.
    let (sbom, _) = h
        .push_image("r", "sbom", "s2", serde_json::json!({"subject": subj}))
        .await;
    // A referrer of another subject, pushed by digest only.
    let other = digest_bytes(Algorithm::Sha256, b"unrelated");
    h.push_image("r", "x", "s3", serde_json::json!({"subject": {"mediaType": OCI_MANIFEST, "digest": other.to_string(), "size": 1}}))
        .await;

    let r = h
        .call("GET", &format!("/v2/r/referrers/{subject}"), &[], &[])
        .await;
    assert_eq!(
        (r.status, r.h("content-type"), r.h("oci-filters-applied")),
        (200, OCI_INDEX, "")
    );
    let v = r.json();
    assert_eq!(v["mediaType"], OCI_INDEX);
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let by = |d: &Digest| {
        list.iter()
            .find(|m| m["digest"] == d.to_string())
            .unwrap()
            .clone()
    };
    assert_eq!(by(&sig)["artifactType"], "application/vnd.example.sig");
    assert_eq!(by(&sig)["annotations"]["org.example"], "yes");
    assert_eq!(by(&sig)["mediaType"], OCI_MANIFEST);
    assert_eq!(
        by(&sbom)["artifactType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert!(by(&sig)["size"].as_u64().unwrap() > 0);

    let r = h
        .call(
            "GET",
            &format!("/v2/r/referrers/{subject}?artifactType=application%2Fvnd.example.sig"),
            &[],
            &[],
        )
        .await;
    assert_eq!(r.h("oci-filters-applied"), "artifactType");
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    // Unknown subject or repository: an empty index, never 404.
    let none = digest_bytes(Algorithm::Sha256, b"none");
    for url in [
        format!("/v2/r/referrers/{none}"),
        format!("/v2/nobody/referrers/{subject}"),
    ] {
        let r = h.call("GET", &url, &[], &[]).await;
        assert_eq!(
            (r.status, r.json()["manifests"].clone()),
            (200, serde_json::json!([]))
        );
    }
    assert_eq!(
        h.call("GET", "/v2/r/referrers/sha256:bad", &[], &[])
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn deletes_disabled_are_unsupported() {
    let h = Harness::new(false).await;
    let (d, _) = h.push_image("a", "v1", "x", serde_json::json!({})).await;
    let blob = h.push_blob("a", b"b").await;
    for url in [
        format!("/v2/a/manifests/{d}"),
        "/v2/a/manifests/v1".into(),
        format!("/v2/a/blobs/{blob}"),
    ] {
        let r = h.call("DELETE", &url, &[], &[]).await;
        assert_eq!((r.status, r.code().as_str()), (405, "UNSUPPORTED"), "{url}");
    }
    assert_eq!(
        h.call("GET", "/v2/a/manifests/v1", &[], &[]).await.status,
        200
    );
}

#[tokio::test]
async fn deletes_by_tag_digest_and_blob() {
    let h = Harness::new(true).await;
    let (d, _) = h.push_image("a", "v1", "x", serde_json::json!({})).await;
    h.push_image("a", "v2", "x", serde_json::json!({})).await; // same content, second tag
    let (keep, _) = h
        .push_image("a", "keep", "other", serde_json::json!({}))
        .await;
    // By tag: only the tag goes.
    assert_eq!(
        h.call("DELETE", "/v2/a/manifests/v2", &[], &[])
            .await
            .status,
        202
    );
    assert_eq!(
        h.call("GET", "/v2/a/manifests/v2", &[], &[]).await.code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        h.call("GET", &format!("/v2/a/manifests/{d}"), &[], &[])
            .await
            .status,
        200
    );
    assert!(!h
        .root()
        .join(format!("{V2}/repositories/a/_manifests/tags/v2"))
        .exists());
    // By digest: the revision and every tag pointing at it.
    h.push_image("a", "v2", "x", serde_json::json!({})).await;
    assert_eq!(
        h.call("DELETE", &format!("/v2/a/manifests/{d}"), &[], &[])
            .await
            .status,
        202
    );
    for url in [
        format!("/v2/a/manifests/{d}"),
        "/v2/a/manifests/v1".into(),
        "/v2/a/manifests/v2".into(),
    ] {
        assert_eq!(h.call("GET", &url, &[], &[]).await.status, 404, "{url}");
    }
    assert_eq!(
        h.call("GET", "/v2/a/tags/list", &[], &[]).await.json()["tags"],
        serde_json::json!(["keep"])
    );
    assert_eq!(
        h.call("GET", &format!("/v2/a/manifests/{keep}"), &[], &[])
            .await
            .status,
        200
    );
    let r = h
        .call("DELETE", &format!("/v2/a/manifests/{d}"), &[], &[])
        .await;
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    // Blob: the link goes, the shared data stays for other repositories.
    let b = h.push_blob("a", b"layer").await;
    h.push_blob("other", b"layer").await;
    assert_eq!(
        h.call("DELETE", &format!("/v2/a/blobs/{b}"), &[], &[])
            .await
            .status,
        202
    );
    assert_eq!(
        h.call("GET", &format!("/v2/a/blobs/{b}"), &[], &[])
            .await
            .code(),
        "BLOB_UNKNOWN"
    );
    assert_eq!(
        h.call("GET", &format!("/v2/other/blobs/{b}"), &[], &[])
            .await
            .body,
        b"layer"
    );
    assert_eq!(
        h.call("DELETE", &format!("/v2/a/blobs/{b}"), &[], &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn methods_outside_the_spec_are_unsupported() {
    let h = Harness::new(true).await;
    // Route parsing settles the method once: the registry's dispatch has no second method match.
    for (m, p) in [
        ("POST", "/v2/a/tags/list"),
        ("PUT", "/v2/_catalog"),
        ("PATCH", "/v2/a/manifests/x"),
    ] {
        let r = h.call(m, p, &[], &[]).await;
        assert_eq!(r.status, 405, "{m} {p}");
        assert_eq!(r.code(), "UNSUPPORTED", "{m} {p}");
    }
}
