//! Failed and refused monolithic uploads leave nothing behind (issue 9, finding 13: a monolithic upload that failed
//! on a full disk left `_uploads/<id>/data`). Storage failures come from the kernel, not from a fake driver: a
//! session's data file that is `/dev/full` (every write is ENOSPC), and a staging directory that is a plain file
//! (every atomic write, `startedat` included, fails).

use super::*;

const V2: &str = "docker/registry/v2";

/// A body that sends `first`, then fails as a client that hangs up does.
struct HangsUp(Option<Bytes>);

#[async_trait::async_trait]
impl RequestBody for HangsUp {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        match self.0.take() {
            Some(b) => Ok(Some(b)),
            None => Err(std::io::ErrorKind::ConnectionReset.into()),
        }
    }
}

/// What is left under `repo`'s `_uploads` (nothing, or no directory at all, is clean).
fn sessions(root: &Path, repo: &str) -> Vec<String> {
    let dir = root.join(format!("{V2}/repositories/{repo}/_uploads"));
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn failed_or_refused_monolithic_uploads_leave_no_session() {
    let h = Harness::new(false).await;
    let data = b"0123456789";
    let d = digest_bytes(Algorithm::Sha256, data);
    let wrong = digest_bytes(Algorithm::Sha256, b"something else");
    let post = |digest: &Digest| format!("/v2/a/blobs/uploads/?digest={digest}");
    let session = || async {
        let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
        assert_eq!(r.status, 202);
        r.h("location").to_string()
    };
    let cl = [("content-length", "10")];

    // POST with body and digest.
    let r = h.call("POST", &post(&wrong), &cl, &[data]).await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        sessions(h.root(), "a"),
        Vec::<String>::new(),
        "POST, wrong digest"
    );
    let mut body = HangsUp(Some(Bytes::from_static(b"01234")));
    let r = call_with_body(&h.reg, "POST", &post(&d), &cl, &mut body).await;
    assert_eq!((r.status, r.code().as_str()), (400, "BLOB_UPLOAD_INVALID"));
    assert_eq!(
        sessions(h.root(), "a"),
        Vec::<String>::new(),
        "POST, body cut off"
    );

    // POST, then PUT with the body.
    let length = ("content-length", "10");
    let cases = [
        ("wrong digest", length, 400, "DIGEST_INVALID"),
        (
            "declared 20 bytes",
            ("content-range", "0-19"),
            400,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            "starts at 5",
            ("content-range", "5-14"),
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            "reversed range",
            ("content-range", "9-0"),
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        (
            "overflowing range",
            ("content-range", "0-18446744073709551615"),
            416,
            "BLOB_UPLOAD_INVALID",
        ),
        ("no digest", length, 400, "DIGEST_INVALID"),
    ];
    for (what, header, status, code) in cases {
        let loc = session().await;
        let url = match what {
            "wrong digest" => format!("{loc}?digest={wrong}"),
            "no digest" => loc.clone(),
            _ => format!("{loc}?digest={d}"),
        };
        let r = h.call("PUT", &url, &[header], &[data]).await;
        assert_eq!((r.status, r.code().as_str()), (status, code), "{what}");
        assert_eq!(sessions(h.root(), "a"), Vec::<String>::new(), "PUT, {what}");
        assert_eq!(h.call("GET", &loc, &[], &[]).await.status, 404, "{what}");
    }
    let loc = session().await;
    let mut body = HangsUp(Some(Bytes::from_static(b"01234")));
    let r = call_with_body(&h.reg, "PUT", &format!("{loc}?digest={d}"), &cl, &mut body).await;
    assert_eq!((r.status, r.code().as_str()), (400, "BLOB_UPLOAD_INVALID"));
    assert_eq!(
        sessions(h.root(), "a"),
        Vec::<String>::new(),
        "PUT, body cut off"
    );

    // Nothing reached the blob store, and a good push still works.
    let blobs = h.root().join(format!("{V2}/blobs"));
    assert_eq!(std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0), 0);
    h.push_blob("a", data).await;
    assert_eq!(sessions(h.root(), "a"), Vec::<String>::new());
}

#[tokio::test]
async fn failed_put_without_body_keeps_the_chunked_session() {
    let h = Harness::new(false).await;
    let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
    let loc = r.h("location").to_string();
    let r = h
        .call("PATCH", &loc, &[("content-range", "0-4")], &[b"01234"])
        .await;
    assert_eq!(r.status, 202);
    // A finishing PUT without a body and without a digest is refused; the chunks sent stay resumable.
    let r = h.call("PUT", &loc, &[("content-length", "0")], &[]).await;
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let s = h.call("GET", &loc, &[], &[]).await;
    assert_eq!((s.status, s.h("range")), (204, "0-4"));
    let d = digest_bytes(Algorithm::Sha256, b"01234");
    let r = h.call("PUT", &format!("{loc}?digest={d}"), &[], &[]).await;
    assert_eq!(r.status, 201);
    assert_eq!(sessions(h.root(), "a"), Vec::<String>::new());
}

#[tokio::test]
async fn monolithic_upload_on_a_full_disk_leaves_no_session() {
    let h = Harness::new(false).await;
    let data = vec![7u8; 64 << 10];
    let d = digest_bytes(Algorithm::Sha256, &data);

    // POST, then PUT with the body into a data file on which every write fails with ENOSPC.
    let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
    let loc = r.h("location").to_string();
    let id = r.h("docker-upload-uuid").to_string();
    let file = h
        .root()
        .join(format!("{V2}/repositories/a/_uploads/{id}/data"));
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/full", &file).unwrap();
    let r = h
        .call(
            "PUT",
            &format!("{loc}?digest={d}"),
            &[],
            &[&data[..4096], &data[4096..]],
        )
        .await;
    assert_eq!((r.status, r.code().as_str()), (500, "UNKNOWN"));
    assert_eq!(
        sessions(h.root(), "a"),
        Vec::<String>::new(),
        "PUT on a full disk"
    );
    assert!(
        std::path::Path::new("/dev/full").exists(),
        "only the link was removed"
    );

    // Not even a session's `startedat` can be written.
    let staging = h.root().join("docker/registry/.gatehouse-tmp");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::write(&staging, b"not a directory").unwrap();
    let post = format!("/v2/a/blobs/uploads/?digest={d}");
    for url in [post.as_str(), "/v2/a/blobs/uploads/"] {
        let r = h.call("POST", url, &[], &[&data]).await;
        assert_eq!((r.status, r.code().as_str()), (500, "UNKNOWN"), "{url}");
        assert_eq!(
            sessions(h.root(), "a"),
            Vec::<String>::new(),
            "{url}: startedat"
        );
    }

    // Space again: the same push goes through.
    std::fs::remove_file(&staging).unwrap();
    let r = h.call("POST", &post, &[], &[&data]).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(sessions(h.root(), "a"), Vec::<String>::new());
}
