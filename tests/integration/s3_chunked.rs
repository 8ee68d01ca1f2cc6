//! Chunked uploads on S3 (issue 12): an upload session's chunks go to ONE multipart upload kept open in the
//! bucket (its parts and a tail shorter than a part in a state object beside the session), completed only by
//! the PUT that finishes the upload. Mixed chunk sizes alternating two gatehouse instances, a chunk whose
//! client died half way, a cancelled session, and distribution 2.8.2 on the same bucket pulling the result.

use std::io::Write;
use std::net::TcpStream;

use crate::s3::gatehouse_on;
use crate::util::embedded::{location, patch_chunk, sha256_of, start_upload, with_query, Reg};
use crate::util::frontdoor::{fresh_seed, noise};
use crate::util::moto::{DistributionS3, Moto, ROOT};

/// The keys under the bucket's `_uploads` directories (the sessions' objects).
fn session_keys(moto: &Moto, bucket: &str) -> Vec<String> {
    let prefix = format!(
        "{}/docker/registry/v2/repositories/",
        ROOT.trim_start_matches('/')
    );
    moto.keys(bucket, &prefix)
        .into_iter()
        .filter(|k| k.contains("/_uploads/"))
        .collect()
}

/// A 64 MiB layer pushed in chunks of mixed sizes (1 MiB and 64 KiB ones smaller than S3's 5 MiB part, 7 and
/// 20 MiB ones larger), alternating two instances: one multipart upload for the whole session, the offset right
/// after every chunk on both, the digest verified at the PUT, nothing left of the session, and distribution 2.8.2
/// on the same bucket serves the same bytes.
#[test]
fn s3_a_64_mib_push_in_mixed_chunks_over_two_instances_is_one_multipart_upload() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-chunked");
    let redirect_off = [("REGISTRY_STORAGE_REDIRECT_DISABLE", "true")];
    let a = gatehouse_on(&moto, &bucket, &redirect_off);
    let b = gatehouse_on(&moto, &bucket, &redirect_off);
    let (ra, rb) = (Reg::new(&a.url(), None), Reg::new(&b.url(), None));
    let data = noise(64 << 20, fresh_seed());
    let digest = sha256_of(&data);
    let sizes = [1 << 20, 7 << 20, 65_536 + 3, 20 << 20, 1 << 20, 3 << 20];
    let mut loc = start_upload(&ra, "mixed/layer");
    let (mut at, mut i) = (0usize, 0usize);
    while at < data.len() {
        let end = data.len().min(at + sizes[i % sizes.len()]);
        let reg = if i % 2 == 0 { &rb } else { &ra };
        let reply = patch_chunk(reg, &loc, at, &data[at..end]);
        reply.expect(202);
        assert_eq!(
            reply.header("Range"),
            Some(format!("0-{}", end - 1)),
            "chunk {i}"
        );
        loc = location(&reply);
        let other = if i % 2 == 0 { &ra } else { &rb };
        let status = other.req("GET", &loc).send();
        status.expect(204);
        assert_eq!(
            status.header("Range"),
            Some(format!("0-{}", end - 1)),
            "chunk {i}"
        );
        if end >= 5 << 20 {
            assert_eq!(
                moto.multipart_uploads(&bucket).len(),
                1,
                "chunk {i}: one open upload"
            );
        }
        (at, i) = (end, i + 1);
    }
    ra.req("PUT", &with_query(&loc, &format!("digest={digest}")))
        .send()
        .expect(201);
    assert!(moto.multipart_uploads(&bucket).is_empty(), "completed");
    assert!(
        session_keys(&moto, &bucket).is_empty(),
        "{:?}",
        session_keys(&moto, &bucket)
    );
    let blob = format!("/v2/mixed/layer/blobs/{digest}");
    assert!(rb.req("GET", &blob).send().expect(200).body == data);
    let dist = DistributionS3::start(&moto, &bucket);
    let theirs = Reg::new(&format!("http://{}", dist.host()), None);
    assert!(
        theirs.req("GET", &blob).send().expect(200).body == data,
        "distribution reads it"
    );
}

/// A chunk whose client went away half way (after more than a part was sent) leaves the session at its previous
/// offset, on this instance and the other; the session then resumes and commits with its digest verified.
#[test]
fn s3_a_chunk_cut_off_half_way_leaves_the_session_where_it_was() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-cut");
    let a = gatehouse_on(
        &moto,
        &bucket,
        &[("REGISTRY_STORAGE_REDIRECT_DISABLE", "true")],
    );
    let b = gatehouse_on(&moto, &bucket, &[]);
    let (ra, rb) = (Reg::new(&a.url(), None), Reg::new(&b.url(), None));
    let data = noise(12 << 20, fresh_seed());
    let digest = sha256_of(&data);
    let loc = start_upload(&ra, "cut/layer");
    let reply = patch_chunk(&ra, &loc, 0, &data[..3 << 20]);
    reply.expect(202);
    let loc = location(&reply);

    // 9 MiB announced, 7 MiB sent, then the connection closes.
    let mut conn = TcpStream::connect(a.host()).expect("connecting");
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n\
         Content-Range: {}-{}\r\nContent-Length: {}\r\n\r\n",
        a.host(),
        3 << 20,
        (12 << 20) - 1,
        9 << 20
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&data[3 << 20..10 << 20]).unwrap();
    conn.flush().unwrap();
    drop(conn);

    // The next chunk waits for the cut chunk to be dropped, then continues at 3 MiB.
    let reply = patch_chunk(&ra, &loc, 3 << 20, &data[3 << 20..8 << 20]);
    reply.expect(202);
    let loc = location(&reply);
    let status = rb.req("GET", &loc).send();
    status.expect(204);
    assert_eq!(status.header("Range").as_deref(), Some("0-8388607"));
    let reply = patch_chunk(&rb, &loc, 8 << 20, &data[8 << 20..]);
    reply.expect(202);
    rb.req(
        "PUT",
        &with_query(&location(&reply), &format!("digest={digest}")),
    )
    .send()
    .expect(201);
    assert!(
        ra.req("GET", &format!("/v2/cut/layer/blobs/{digest}"))
            .send()
            .expect(200)
            .body
            == data
    );
    assert!(moto.multipart_uploads(&bucket).is_empty());
}

/// A cancelled session (DELETE) aborts its open multipart upload: ListMultipartUploads is empty and nothing of
/// the session is left in the bucket.
#[test]
fn s3_a_cancelled_upload_aborts_its_multipart_upload() {
    let moto = Moto::start();
    let bucket = moto.bucket("gh-cancel");
    let gh = gatehouse_on(&moto, &bucket, &[]);
    let reg = Reg::new(&gh.url(), None);
    let data = noise(13 << 20, fresh_seed());
    let mut loc = start_upload(&reg, "cancel/layer");
    for (i, chunk) in data.chunks(6 << 20).enumerate() {
        let reply = patch_chunk(&reg, &loc, i * (6 << 20), chunk);
        reply.expect(202);
        loc = location(&reply);
    }
    assert_eq!(moto.multipart_uploads(&bucket).len(), 1);
    assert!(!session_keys(&moto, &bucket).is_empty());
    reg.req("DELETE", &loc).send().expect(204);
    assert!(
        moto.multipart_uploads(&bucket).is_empty(),
        "{:?}",
        moto.multipart_uploads(&bucket)
    );
    assert!(
        session_keys(&moto, &bucket).is_empty(),
        "{:?}",
        session_keys(&moto, &bucket)
    );
    reg.req("GET", &loc).send().expect(404);
}
