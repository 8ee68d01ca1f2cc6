//! Hostile client input through the handlers (issue 9): manifests with duplicate keys, references that are
//! neither a tag nor a digest.

use super::*;

/// A manifest that is an image by its first `mediaType` and an index by its last, naming blobs that do not exist.
fn image_then_index(missing: &Digest) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{missing}","size":7}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{missing}","size":7}}],
            "manifests":[],"mediaType":"{OCI_INDEX}"}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn manifest_with_duplicate_media_type_is_refused_not_served_as_index() {
    let h = Harness::new(false).await;
    let missing = digest_bytes(Algorithm::Sha256, b"never pushed");
    let body = image_then_index(&missing);
    for ct in [OCI_MANIFEST, OCI_INDEX] {
        let r = h
            .call(
                "PUT",
                "/v2/a/manifests/t",
                &[("content-type", ct)],
                &[&body],
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{ct}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let by_digest = digest_bytes(Algorithm::Sha256, &body);
        let r = h
            .call(
                "PUT",
                &format!("/v2/a/manifests/{by_digest}"),
                &[("content-type", ct)],
                &[&body],
            )
            .await;
        assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    }
    let r = h.call("GET", "/v2/a/manifests/t", &[], &[]).await;
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    assert_eq!(
        h.call("GET", "/v2/a/tags/list", &[], &[]).await.status,
        404,
        "nothing of the refused manifest was stored"
    );
}

#[tokio::test]
async fn manifest_with_duplicate_keys_in_descriptors_is_refused() {
    let h = Harness::new(false).await;
    let c = h.push_blob("a", b"{}").await;
    let l = h.push_blob("a", b"layer").await;
    let (subject, _) = h.push_image("a", "base", "s", serde_json::json!({})).await;
    let cfg = format!(
        r#""mediaType":"application/vnd.oci.image.config.v1+json","digest":"{c}","size":2"#
    );
    let lay = format!(
        r#""mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{l}","size":5"#
    );
    let sub = format!(r#""mediaType":"{OCI_MANIFEST}","digest":"{subject}""#);
    let size = h
        .call("GET", "/v2/a/manifests/base", &[], &[])
        .await
        .body
        .len();
    let top = |config: &str, layer: &str, subj: &str| {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{{config}}},"layers":[{{{layer}}}],"subject":{{{subj},"size":{size}}}}}"#
        )
    };
    let ok = top(&cfg, &lay, &sub);
    let cases = [
        top(&format!(r#"{cfg},"digest":"{c}""#), &lay, &sub),
        top(&cfg, &format!(r#"{lay},"size":5"#), &sub),
        top(&cfg, &lay, &format!(r#"{sub},"digest":"{subject}""#)),
        ok.replacen(
            r#""schemaVersion":2"#,
            r#""schemaVersion":2,"schemaVersion":2"#,
            1,
        ),
    ];
    for body in &cases {
        let r = h
            .call(
                "PUT",
                "/v2/a/manifests/dup",
                &[("content-type", OCI_MANIFEST)],
                &[body.as_bytes()],
            )
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{body}"
        );
        assert!(
            String::from_utf8_lossy(&r.body).contains("duplicate key"),
            "the reason is given: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // The same manifest without the repeated key is accepted.
    let r = h
        .call(
            "PUT",
            "/v2/a/manifests/dup",
            &[("content-type", OCI_MANIFEST)],
            &[ok.as_bytes()],
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.h("oci-subject"), subject.to_string());
}

#[tokio::test]
async fn content_range_ending_at_u64_max_is_416_not_wrapped_to_zero_bytes() {
    let h = Harness::new(false).await;
    let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
    let loc = r.h("location").to_string();
    let hostile = [
        ("0-18446744073709551615", 416),
        ("bytes 0-18446744073709551615/*", 416),
        ("0-99999999999999999999", 416),
        ("18446744073709551615-0", 416),
        ("0-0/0", 416),
        ("1-18446744073709551615", 416), // starts past the upload's end
        ("0-18446744073709551614", 400), // u64::MAX bytes declared, 3 sent
        ("0--1", 400),
        ("0-1,2-3", 400),
    ];
    for (value, status) in hostile {
        let r = h
            .call("PATCH", &loc, &[("content-range", value)], &[b"abc"])
            .await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, "BLOB_UPLOAD_INVALID"),
            "{value}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("declared 0 bytes"),
            "{value}"
        );
        let s = h.call("GET", &loc, &[], &[]).await;
        assert_eq!(
            (s.status, s.h("range")),
            (204, "0-0"),
            "{value}: nothing was kept"
        );
    }
    // The session still works.
    let r = h
        .call("PATCH", &loc, &[("content-range", "0-2")], &[b"abc"])
        .await;
    assert_eq!((r.status, r.h("range")), (202, "0-2"));
}

#[tokio::test]
async fn blob_range_with_hostile_numbers_stays_inside_the_blob() {
    let h = Harness::new(false).await;
    let d = h.push_blob("a", b"0123456789").await;
    let url = format!("/v2/a/blobs/{d}");
    let table: &[(&str, u16, &str)] = &[
        ("bytes=0-18446744073709551615", 206, "0123456789"),
        ("bytes=0-99999999999999999999", 206, "0123456789"),
        ("bytes=-18446744073709551615", 206, "0123456789"),
        ("bytes=-99999999999999999999", 206, "0123456789"),
        ("bytes=8-18446744073709551615", 206, "89"),
        ("bytes=18446744073709551615-", 416, ""),
        ("bytes=99999999999999999999-", 416, ""),
        ("bytes=18446744073709551615-18446744073709551615", 416, ""),
        ("bytes=5-1", 200, "0123456789"),
        ("bytes=0-1,2-3", 200, "0123456789"),
        ("bytes=-", 200, "0123456789"),
    ];
    for (range, status, body) in table {
        let r = h.call("GET", &url, &[("range", range)], &[]).await;
        assert_eq!(r.status, *status, "{range}");
        if *status != 416 {
            assert_eq!(String::from_utf8_lossy(&r.body), *body, "{range}");
        } else {
            assert_eq!(r.h("content-range"), "bytes */10", "{range}");
        }
    }
}

#[tokio::test]
async fn manifest_read_of_an_invalid_reference_is_404_manifest_unknown() {
    let h = Harness::new(true).await;
    h.push_image("a", "latest", "seed", serde_json::json!({}))
        .await;
    let references = [
        "-leading-dash",
        ".dot",
        "has%20space",
        "a..b:c",
        "sha256:short",
        "sha256:ZZ",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha256:",
        ":",
        &"t".repeat(129),
        "%00",
    ];
    for reference in references {
        let url = format!("/v2/a/manifests/{reference}");
        for method in ["GET", "HEAD"] {
            let r = h.call(method, &url, &[], &[]).await;
            assert_eq!(r.status, 404, "{method} {reference}");
            if method == "GET" {
                assert_eq!(r.code(), "MANIFEST_UNKNOWN", "{reference}");
            }
        }
        // A PUT keeps its 400: the client must learn that the tag or digest is not valid.
        let r = h
            .call("PUT", &url, &[("content-type", OCI_MANIFEST)], &[b"{}"])
            .await;
        assert_eq!(r.status, 400, "PUT {reference}");
        assert!(
            matches!(r.code().as_str(), "TAG_INVALID" | "DIGEST_INVALID"),
            "PUT {reference}: {}",
            r.code()
        );
    }
    // Valid references still answer as before.
    let r = h.call("GET", "/v2/a/manifests/latest", &[], &[]).await;
    assert_eq!(r.status, 200);
    let r = h.call("GET", "/v2/a/manifests/other", &[], &[]).await;
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
}
