//! Blob pulls and pushes: monolithic, chunked, streamed, mount, ranges, digest verification, crash leftovers,
//! concurrency and the exact on-disk layout.

use super::*;

const V2: &str = "docker/registry/v2";

fn read(root: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[tokio::test]
async fn base_answers_ok() {
    let h = Harness::new(false).await;
    let r = h.call("GET", "/v2/", &[], &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
    let r = h.call("HEAD", "/v2/", &[], &[]).await;
    assert_eq!(
        (r.status, r.h("content-length"), r.body.len()),
        (200, "2", 0)
    );
}

#[tokio::test]
async fn monolithic_push_then_pull_and_layout() {
    let h = Harness::new(false).await;
    let data = b"hello layer";
    let d = digest_bytes(Algorithm::Sha256, data);
    let r = h
        .call(
            "POST",
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            &[],
            &[b"hello ", b"layer"],
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.h("location"), format!("/v2/team/app/blobs/{d}"));
    assert_eq!(r.h("docker-content-digest"), d.to_string());

    let r = h
        .call("HEAD", &format!("/v2/team/app/blobs/{d}"), &[], &[])
        .await;
    assert_eq!(
        (r.status, r.h("content-length"), r.body.len()),
        (200, "11", 0)
    );
    assert_eq!(r.h("docker-content-digest"), d.to_string());
    let r = h
        .call("GET", &format!("/v2/team/app/blobs/{d}"), &[], &[])
        .await;
    assert_eq!(
        (r.status, r.body.as_slice(), r.h("accept-ranges")),
        (200, &data[..], "bytes")
    );

    // distribution's layout, byte for byte.
    let hex = d.hex();
    assert_eq!(
        read(
            h.root(),
            &format!("{V2}/blobs/sha256/{}/{hex}/data", &hex[..2])
        ),
        data
    );
    let link = read(
        h.root(),
        &format!("{V2}/repositories/team/app/_layers/sha256/{hex}/link"),
    );
    assert_eq!(
        link,
        d.to_string().as_bytes(),
        "link is the digest with no newline"
    );
    let uploads = h
        .root()
        .join(format!("{V2}/repositories/team/app/_uploads"));
    assert_eq!(
        std::fs::read_dir(uploads).unwrap().count(),
        0,
        "the session is gone after commit"
    );
}

#[tokio::test]
async fn chunked_and_streamed_upload_with_status() {
    let h = Harness::new(false).await;
    let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
    assert_eq!((r.status, r.h("range")), (202, "0-0"));
    let loc = r.h("location").to_string();
    let id = r.h("docker-upload-uuid").to_string();
    assert_eq!(loc, format!("/v2/a/blobs/uploads/{id}"));
    let dir = h.root().join(format!("{V2}/repositories/a/_uploads/{id}"));
    let started = String::from_utf8(read(&dir, "startedat")).unwrap();
    assert!(started.ends_with('Z') && started.len() == 20, "{started}");

    let r = h
        .call(
            "PATCH",
            &loc,
            &[("content-range", "0-4"), ("content-length", "5")],
            &[b"01234"],
        )
        .await;
    assert_eq!(
        (r.status, r.h("range"), r.h("location")),
        (202, "0-4", loc.as_str())
    );
    // Out of order: must start at 5.
    let r = h
        .call("PATCH", &loc, &[("content-range", "3-7")], &[b"34567"])
        .await;
    assert_eq!((r.status, r.code().as_str()), (416, "BLOB_UPLOAD_INVALID"));
    let r = h
        .call("PATCH", &loc, &[("content-range", "9-3")], &[b"x"])
        .await;
    assert_eq!(r.status, 416);
    // Declared length differs from what came: rejected and cut back.
    let r = h
        .call("PATCH", &loc, &[("content-range", "5-9")], &[b"56"])
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "BLOB_UPLOAD_INVALID"));
    let r = h.call("GET", &loc, &[], &[]).await;
    assert_eq!(
        (r.status, r.h("range"), r.h("docker-upload-uuid")),
        (204, "0-4", id.as_str())
    );
    // Streamed (no Content-Range), several body chunks.
    let r = h.call("PATCH", &loc, &[], &[b"567", b"89"]).await;
    assert_eq!((r.status, r.h("range")), (202, "0-9"));
    // Finish with a last chunk.
    let all = b"0123456789abc";
    let d = digest_bytes(Algorithm::Sha256, all);
    let r = h
        .call(
            "PUT",
            &format!("{loc}?digest={d}"),
            &[("content-range", "10-12")],
            &[b"abc"],
        )
        .await;
    assert_eq!(
        (r.status, r.h("location")),
        (201, format!("/v2/a/blobs/{d}").as_str())
    );
    let r = h.call("GET", &format!("/v2/a/blobs/{d}"), &[], &[]).await;
    assert_eq!(r.body, all);
    // The session is over.
    assert_eq!(
        h.call("GET", &loc, &[], &[]).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    assert_eq!(h.call("PATCH", &loc, &[], &[b"x"]).await.status, 404);
}

#[tokio::test]
async fn put_requires_a_valid_digest() {
    let h = Harness::new(false).await;
    let loc = h
        .call("POST", "/v2/a/blobs/uploads/", &[], &[])
        .await
        .h("location")
        .to_string();
    assert_eq!(
        h.call("PUT", &loc, &[], &[b"x"]).await.code(),
        "DIGEST_INVALID"
    );
    assert_eq!(
        h.call("PUT", &format!("{loc}?digest=sha256:zz"), &[], &[])
            .await
            .code(),
        "DIGEST_INVALID"
    );
    assert_eq!(
        h.call("POST", "/v2/a/blobs/uploads/?digest=md5:00", &[], &[b"x"])
            .await
            .code(),
        "DIGEST_INVALID"
    );
}

#[tokio::test]
async fn digest_mismatch_stores_nothing() {
    let h = Harness::new(false).await;
    let wrong = digest_bytes(Algorithm::Sha256, b"something else");
    let r = h
        .call(
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={wrong}"),
            &[],
            &[b"data"],
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let loc = h
        .call("POST", "/v2/a/blobs/uploads/", &[], &[])
        .await
        .h("location")
        .to_string();
    h.call("PATCH", &loc, &[], &[b"data"]).await;
    let r = h
        .call("PUT", &format!("{loc}?digest={wrong}"), &[], &[])
        .await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        h.call("GET", &loc, &[], &[]).await.status,
        404,
        "the failed session is removed"
    );
    let right = digest_bytes(Algorithm::Sha256, b"data");
    for d in [&wrong, &right] {
        assert_eq!(
            h.call("HEAD", &format!("/v2/a/blobs/{d}"), &[], &[])
                .await
                .status,
            404
        );
    }
    let blobs = h.root().join(format!("{V2}/blobs/sha256"));
    assert_eq!(std::fs::read_dir(blobs).map(|d| d.count()).unwrap_or(0), 0);
    let uploads = h.root().join(format!("{V2}/repositories/a/_uploads"));
    assert_eq!(std::fs::read_dir(uploads).unwrap().count(), 0);
    assert!(!h
        .root()
        .join(format!("{V2}/repositories/a/_layers"))
        .exists());
}

#[tokio::test]
async fn sha512_uploads_are_verified() {
    let h = Harness::new(false).await;
    let d = digest_bytes(Algorithm::Sha512, b"abc");
    let r = h
        .call(
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={d}"),
            &[],
            &[b"abc"],
        )
        .await;
    assert_eq!(r.status, 201);
    // Chunked with the algorithm known only at the end.
    let loc = h
        .call("POST", "/v2/b/blobs/uploads/", &[], &[])
        .await
        .h("location")
        .to_string();
    h.call("PATCH", &loc, &[], &[b"ab"]).await;
    assert_eq!(
        h.call("PUT", &format!("{loc}?digest={d}"), &[], &[b"c"])
            .await
            .status,
        201
    );
    let r = h.call("GET", &format!("/v2/b/blobs/{d}"), &[], &[]).await;
    assert_eq!(r.body, b"abc");
    assert!(h
        .root()
        .join(format!(
            "{V2}/blobs/sha512/{}/{}/data",
            &d.hex()[..2],
            d.hex()
        ))
        .exists());
}

#[tokio::test]
async fn blobs_are_served_only_through_linked_repositories() {
    let h = Harness::new(false).await;
    let d = h.push_blob("a", b"private").await;
    let r = h.call("GET", &format!("/v2/b/blobs/{d}"), &[], &[]).await;
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    assert_eq!(
        h.call("HEAD", &format!("/v2/b/blobs/{d}"), &[], &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn ranged_reads() {
    let h = Harness::new(false).await;
    let d = h.push_blob("a", b"0123456789").await;
    let url = format!("/v2/a/blobs/{d}");
    let r = h.call("GET", &url, &[("range", "bytes=2-5")], &[]).await;
    assert_eq!(
        (r.status, r.body.as_slice(), r.h("content-range")),
        (206, &b"2345"[..], "bytes 2-5/10")
    );
    let r = h.call("GET", &url, &[("range", "bytes=-3")], &[]).await;
    assert_eq!((r.status, r.body.as_slice()), (206, &b"789"[..]));
    let r = h.call("GET", &url, &[("range", "bytes=10-")], &[]).await;
    assert_eq!((r.status, r.h("content-range")), (416, "bytes */10"));
}

#[tokio::test]
async fn cross_repository_mount() {
    let h = Harness::new(false).await;
    let d = h.push_blob("base", b"shared layer").await;
    let r = h
        .call(
            "POST",
            &format!("/v2/app/blobs/uploads/?mount={d}&from=base"),
            &[],
            &[],
        )
        .await;
    assert_eq!(
        (r.status, r.h("location")),
        (201, format!("/v2/app/blobs/{d}").as_str())
    );
    assert_eq!(
        h.call("GET", &format!("/v2/app/blobs/{d}"), &[], &[])
            .await
            .body,
        b"shared layer"
    );
    // Not in `from`, bad digest, or no `from`: a plain session.
    let other = digest_bytes(Algorithm::Sha256, b"nope");
    for q in [
        format!("mount={other}&from=base"),
        "mount=sha256:x&from=base".into(),
        format!("mount={d}"),
    ] {
        let r = h
            .call("POST", &format!("/v2/app2/blobs/uploads/?{q}"), &[], &[])
            .await;
        assert_eq!(r.status, 202, "{q}");
        assert!(!r.h("docker-upload-uuid").is_empty());
    }
    assert_eq!(
        h.call("HEAD", &format!("/v2/app2/blobs/{d}"), &[], &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn cancel_removes_the_session() {
    let h = Harness::new(false).await;
    let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
    let (loc, id) = (
        r.h("location").to_string(),
        r.h("docker-upload-uuid").to_string(),
    );
    h.call("PATCH", &loc, &[], &[b"partial"]).await;
    assert_eq!(h.call("DELETE", &loc, &[], &[]).await.status, 204);
    assert!(!h
        .root()
        .join(format!("{V2}/repositories/a/_uploads/{id}"))
        .exists());
    assert_eq!(
        h.call("DELETE", &loc, &[], &[]).await.code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    // Ids that are not ours are unknown, never paths.
    let r = h
        .call("GET", "/v2/a/blobs/uploads/not-a-uuid", &[], &[])
        .await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_survives_a_restart_and_distribution_hashstates() {
    let h = Harness::new(false).await;
    let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
    let (loc, id) = (
        r.h("location").to_string(),
        r.h("docker-upload-uuid").to_string(),
    );
    h.call("PATCH", &loc, &[], &[b"first half,"]).await;
    // What distribution would leave beside it, and a staged temp file of a killed process.
    let dir = h.root().join(format!("{V2}/repositories/a/_uploads/{id}"));
    std::fs::create_dir_all(dir.join("hashstates/sha256")).unwrap();
    std::fs::write(dir.join("hashstates/sha256/11"), b"opaque go state").unwrap();
    let staging = h.root().join("docker/registry/.gatehouse-tmp");
    std::fs::write(staging.join("tmp-killed"), b"partial link").unwrap();
    // A new process on the same directory: the in-memory hash state is gone.
    let reg = Registry::open(StorageConfig {
        root: h.root().to_path_buf(),
        delete_enabled: false,
        s3: None,
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "staged leftovers are removed"
    );
    assert_eq!(call(&reg, "GET", &loc, &[], &[]).await.h("range"), "0-10");
    let r = call(
        &reg,
        "PATCH",
        &loc,
        &[("content-range", "11-21")],
        &[b"second half"],
    )
    .await;
    assert_eq!(r.status, 202);
    let d = digest_bytes(Algorithm::Sha256, b"first half,second half");
    assert_eq!(
        call(&reg, "PUT", &format!("{loc}?digest={d}"), &[], &[])
            .await
            .status,
        201
    );
    assert_eq!(
        call(&reg, "GET", &format!("/v2/a/blobs/{d}"), &[], &[])
            .await
            .body,
        b"first half,second half"
    );
}

#[tokio::test]
async fn concurrent_identical_pushes_all_succeed() {
    let h = Harness::new(false).await;
    let data = vec![7u8; 300_000];
    let d = digest_bytes(Algorithm::Sha256, &data);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let reg = h.reg.clone();
        let data = data.clone();
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let parts: Vec<&[u8]> = data.chunks(65_536).collect();
            if i % 2 == 0 {
                call(
                    &reg,
                    "POST",
                    &format!("/v2/a/blobs/uploads/?digest={d}"),
                    &[],
                    &parts,
                )
                .await
                .status
            } else {
                let loc = call(&reg, "POST", "/v2/a/blobs/uploads/", &[], &[])
                    .await
                    .h("location")
                    .to_string();
                call(&reg, "PATCH", &loc, &[], &parts).await;
                call(&reg, "PUT", &format!("{loc}?digest={d}"), &[], &[])
                    .await
                    .status
            }
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    assert_eq!(
        h.call("GET", &format!("/v2/a/blobs/{d}"), &[], &[])
            .await
            .body,
        data
    );
    // Same tag from many clients at once: one consistent winner.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let reg = h.reg.clone();
        tasks.push(tokio::spawn(async move {
            let h2 = Harness {
                reg,
                dir: tempfile::tempdir().unwrap(),
            };
            h2.push_image(
                "a",
                "latest",
                &format!("seed{}", i % 2),
                serde_json::json!({}),
            )
            .await
            .0
        }));
    }
    let mut digests = Vec::new();
    for t in tasks {
        digests.push(t.await.unwrap());
    }
    let r = h.call("GET", "/v2/a/manifests/latest", &[], &[]).await;
    assert_eq!(r.status, 200);
    assert!(digests
        .iter()
        .any(|d| d.to_string() == r.h("docker-content-digest")));
    let uploads = h.root().join(format!("{V2}/repositories/a/_uploads"));
    assert_eq!(std::fs::read_dir(uploads).unwrap().count(), 0);
}
