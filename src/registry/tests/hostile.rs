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
