//! The parked session on a real S3 protocol (moto): two instances, cut chunks, deletes, the purge, stale states.

use super::super::settings::MIN_CHUNK;
use super::super::{multipart, testing, S3Driver};
use super::*;
use crate::storage::driver::Driver;
use std::time::{Duration, SystemTime};

const KEY: &str = "docker/registry/v2/repositories/a/_uploads/x/data";

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Two drivers on one bucket with 5 MiB parts: two instances.
async fn two() -> (testing::Bucket, S3Driver, S3Driver) {
    let bucket = testing::bucket().await;
    let mut section = bucket.section();
    section.chunksize = MIN_CHUNK;
    let s = section.validate().unwrap();
    let (a, b) = (
        S3Driver::open(&s).await.unwrap(),
        S3Driver::open(&s).await.unwrap(),
    );
    (bucket, a, b)
}

/// The unfinished multipart uploads under the layout's root.
async fn uploads(d: &S3Driver) -> usize {
    let v2 = d.loc(crate::storage::paths::V2_ROOT).unwrap();
    multipart::list(&d.inner, "v2", &v2).await.unwrap().len()
}

/// The parked state as stored.
async fn state(d: &S3Driver, key: &str) -> Option<(Header, Bytes)> {
    let at = state_loc(&d.loc(key).unwrap());
    let got = d.inner.store.get(&at).await.ok()?;
    Some(decode(&got.bytes().await.unwrap()).unwrap())
}

/// Issue 12: chunks (1 MiB ones smaller than a part, and larger ones) alternating two instances go to one
/// multipart upload, nothing that came before is copied again (the session's object stays as it was started:
/// empty), the tail kept in the bucket is shorter than a part, a chunk cut off after sending a part counts
/// nothing, and the seal makes every byte readable in order with no multipart upload left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_alternating_instances_share_one_multipart_upload_and_copy_nothing() {
    let (_b, a, b) = two().await;
    assert_eq!(a.writer(KEY).await.unwrap().commit().await.unwrap(), 0);
    let mut want = Vec::new();
    let sizes = [
        1 << 20,
        1 << 20,
        1 << 20,
        1 << 20,
        1 << 20,
        1 << 20,
        7 << 20,
        100,
        3 << 20,
        12 << 20,
    ];
    for (i, size) in sizes.into_iter().enumerate() {
        let d = if i % 2 == 0 { &a } else { &b };
        let mut w = d.writer(KEY).await.unwrap();
        assert_eq!(w.len(), want.len() as u64, "chunk {i}");
        let piece = pattern(size, i as u8);
        for c in piece.chunks(65_536) {
            w.write(c).await.unwrap();
        }
        want.extend_from_slice(&piece);
        assert_eq!(w.park().await.unwrap(), want.len() as u64, "chunk {i}");
        for other in [&a, &b] {
            assert_eq!(
                other.append_len(KEY).await.unwrap(),
                Some(want.len() as u64)
            );
        }
        assert_eq!(
            a.stat(KEY).await.unwrap().unwrap().size,
            0,
            "nothing copied"
        );
        let (h, tail) = state(&a, KEY).await.expect("a parked state");
        assert!(
            (tail.len() as u64) < MIN_CHUNK,
            "chunk {i}: tail {}",
            tail.len()
        );
        assert_eq!(h.parts_len() + tail.len() as u64, want.len() as u64);
        let expect_upload = usize::from(want.len() as u64 >= MIN_CHUNK);
        assert_eq!(uploads(&a).await, expect_upload, "chunk {i}");
    }
    // A chunk cut off after it sent a part into the session's upload.
    let mut w = b.writer(KEY).await.unwrap();
    w.write(&pattern(6 << 20, 99)).await.unwrap();
    w.cancel().await.unwrap();
    assert_eq!(a.append_len(KEY).await.unwrap(), Some(want.len() as u64));
    assert_eq!(uploads(&a).await, 1, "the session's upload stays open");
    // Dropped without an end (the request died): the same.
    let mut w = a.writer(KEY).await.unwrap();
    w.write(&pattern(6 << 20, 98)).await.unwrap();
    drop(w);
    assert_eq!(b.append_len(KEY).await.unwrap(), Some(want.len() as u64));
    b.seal(KEY).await.unwrap();
    assert!(a.read(KEY, 64 << 20).await.unwrap()[..] == want[..]);
    assert_eq!(uploads(&a).await, 0);
    assert!(
        state(&a, KEY).await.is_none(),
        "the state goes with the seal"
    );
}

/// A deleted session aborts its multipart upload; the upload purge spares the upload of a session whose
/// state was written after its cutoff (moto reports every upload as started in 2010) and aborts it after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_session_aborts_its_upload_and_the_purge_spares_a_young_one() {
    let (_b, a, _) = two().await;
    for key in [KEY, "docker/registry/v2/repositories/a/_uploads/y/data"] {
        let mut w = a.writer(key).await.unwrap();
        w.write(&pattern(6 << 20, 1)).await.unwrap();
        w.park().await.unwrap();
    }
    assert_eq!(uploads(&a).await, 2);
    let v2 = crate::storage::paths::V2_ROOT;
    let hour = Duration::from_secs(3600);
    let young = a
        .abort_multipart_before(v2, SystemTime::now() - hour, false)
        .await
        .unwrap();
    assert!(young.is_empty(), "{young:?}");
    a.delete("docker/registry/v2/repositories/a/_uploads/x")
        .await
        .unwrap();
    assert_eq!(
        uploads(&a).await,
        1,
        "the deleted session's upload is aborted"
    );
    let old = a
        .abort_multipart_before(v2, SystemTime::now() + hour, false)
        .await
        .unwrap();
    assert_eq!(old.len(), 1, "{old:?}");
    assert_eq!(uploads(&a).await, 0);
}

/// A state left by a seal that completed but could not remove it (the object changed since) is stale:
/// ignored and removed, never applied again.
#[tokio::test]
async fn a_stale_state_is_ignored_and_removed() {
    let (_b, a, _) = two().await;
    let mut w = a.writer(KEY).await.unwrap();
    w.write(b"parked").await.unwrap();
    w.park().await.unwrap();
    let (h, tail) = state(&a, KEY).await.unwrap();
    a.seal(KEY).await.unwrap();
    // Put the state back as if its removal had failed.
    let at = state_loc(&a.loc(KEY).unwrap());
    let body = encode(&h, &tail).unwrap();
    a.inner
        .store
        .put(&at, PutPayload::from(body))
        .await
        .unwrap();
    assert_eq!(a.append_len(KEY).await.unwrap(), Some(6));
    assert!(state(&a, KEY).await.is_none());
    assert_eq!(&a.read(KEY, 100).await.unwrap()[..], b"parked");
}
