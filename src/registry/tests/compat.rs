//! A tree laid out by hand exactly as distribution 2.8.2 writes it (checked against `docker-registry` on this
//! machine) is served as it is, including an upload session distribution started.

use super::*;

const V2: &str = "docker/registry/v2";

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(V2).join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

#[tokio::test]
async fn serves_a_tree_written_by_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let layer = b"layer bytes";
    let l = digest_bytes(Algorithm::Sha256, layer);
    let config = b"{}";
    let c = digest_bytes(Algorithm::Sha256, config);
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": c.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": l.to_string(), "size": 11}]}))
    .unwrap();
    let m = digest_bytes(Algorithm::Sha256, &manifest);
    for (d, data) in [(&l, &layer[..]), (&c, &config[..]), (&m, &manifest[..])] {
        put(
            root,
            &format!("blobs/sha256/{}/{}/data", &d.hex()[..2], d.hex()),
            data,
        );
    }
    let repo = "repositories/library/nginx";
    for d in [&l, &c] {
        put(
            root,
            &format!("{repo}/_layers/sha256/{}/link", d.hex()),
            d.to_string().as_bytes(),
        );
    }
    put(
        root,
        &format!("{repo}/_manifests/revisions/sha256/{}/link", m.hex()),
        m.to_string().as_bytes(),
    );
    put(
        root,
        &format!("{repo}/_manifests/tags/stable/current/link"),
        m.to_string().as_bytes(),
    );
    put(
        root,
        &format!(
            "{repo}/_manifests/tags/stable/index/sha256/{}/link",
            m.hex()
        ),
        m.to_string().as_bytes(),
    );
    // An upload distribution started and received 5 bytes of, with its hash state files.
    let id = "6f1c3c52-9a34-4a55-8f0e-2d4c1b0a9e77";
    put(root, &format!("{repo}/_uploads/{id}/data"), b"01234");
    put(
        root,
        &format!("{repo}/_uploads/{id}/startedat"),
        b"2024-05-01T10:00:00Z",
    );
    put(
        root,
        &format!("{repo}/_uploads/{id}/hashstates/sha256/0"),
        b"go-encoded state",
    );
    put(
        root,
        &format!("{repo}/_uploads/{id}/hashstates/sha256/5"),
        b"go-encoded state",
    );

    let reg = Registry::open(StorageConfig {
        root: root.to_path_buf(),
        delete_enabled: false,
        s3: None,
    })
    .await
    .unwrap();
    let r = call(&reg, "GET", "/v2/_catalog", &[], &[]).await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["library/nginx"])
    );
    let r = call(&reg, "GET", "/v2/library/nginx/tags/list", &[], &[]).await;
    assert_eq!(r.json()["tags"], serde_json::json!(["stable"]));
    let r = call(&reg, "GET", "/v2/library/nginx/manifests/stable", &[], &[]).await;
    assert_eq!(
        (r.status, r.h("content-type")),
        (200, "application/vnd.docker.distribution.manifest.v2+json")
    );
    assert_eq!(
        (r.body.as_slice(), r.h("docker-content-digest")),
        (manifest.as_slice(), m.to_string().as_str())
    );
    let r = call(
        &reg,
        "GET",
        &format!("/v2/library/nginx/blobs/{l}"),
        &[],
        &[],
    )
    .await;
    assert_eq!(r.body, layer);
    // The session is resumable where distribution left it.
    let loc = format!("/v2/library/nginx/blobs/uploads/{id}");
    assert_eq!(call(&reg, "GET", &loc, &[], &[]).await.h("range"), "0-4");
    let d = digest_bytes(Algorithm::Sha256, b"0123456789");
    let r = call(
        &reg,
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("content-range", "5-9")],
        &[b"56789"],
    )
    .await;
    assert_eq!(r.status, 201);
    assert!(!root.join(V2).join(format!("{repo}/_uploads/{id}")).exists());
    // Pushing a manifest that references distribution's blobs works, and is written as distribution would.
    let r = call(
        &reg,
        "PUT",
        "/v2/library/nginx/manifests/again",
        &[],
        &[&manifest],
    )
    .await;
    assert_eq!(r.h("docker-content-digest"), m.to_string());
    let link = std::fs::read(
        root.join(V2)
            .join(format!("{repo}/_manifests/tags/again/current/link")),
    )
    .unwrap();
    assert_eq!(link, m.to_string().as_bytes());
}
