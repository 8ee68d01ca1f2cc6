//! Upload sessions: hash states resumed across stores, interrupted and refused chunks, durability at each
//! chunk's end, and uploads over two stores on one S3 bucket (moto).

use super::*;

#[test]
fn rfc3339_formats_utc() {
    assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_251_199); // 2024-02-29T23:59:59Z
    assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(crate::storage::StorageConfig {
        root: dir.path().to_path_buf(),
        delete_enabled: false,
        s3: None,
    })
    .await
    .unwrap();
    (dir, store)
}

/// Every chunk stores the hash state (Go's layout, where distribution keeps it), and a store that never saw
/// the session (another instance, a restart) resumes it instead of re-reading the data: with the data
/// altered behind its back, the commit still verifies the bytes that were hashed as they came.
#[tokio::test]
async fn another_instance_resumes_the_stored_hash_state_instead_of_rehashing() {
    let (dir, store) = store().await;
    let repo = Name::parse("a/b").unwrap();
    let id = store.start_upload(&repo).await.unwrap();
    let first = vec![7u8; 100_000];
    let mut w = store
        .begin_write(&repo, id.as_str(), Some(0), None)
        .await
        .unwrap();
    w.write(&first).await.unwrap();
    assert_eq!(w.end_chunk(None).await.unwrap(), 100_000);
    drop(w);
    let uid = UploadId::parse(id.as_str()).unwrap();
    let saved = paths::upload_hash_state(&repo, &uid, Algorithm::Sha256, 100_000);
    let state = store.driver().read(&saved, 1024).await.unwrap();
    assert_eq!(state.len(), crate::storage::midstate::STATE_BYTES);
    assert_eq!(&state[..4], b"sha\x03");
    // The data changes under the session (same length); a fresh store must not re-read it.
    let data = paths::upload_data(&repo, &uid);
    store
        .driver()
        .write_atomic(&data, &[9u8; 100_000])
        .await
        .unwrap();
    let other = Store::open(crate::storage::StorageConfig {
        root: dir.path().to_path_buf(),
        delete_enabled: false,
        s3: None,
    })
    .await
    .unwrap();
    let mut w = other
        .begin_write(&repo, id.as_str(), Some(100_000), None)
        .await
        .unwrap();
    w.write(b"tail").await.unwrap();
    let mut whole = first.clone();
    whole.extend_from_slice(b"tail");
    let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, &whole);
    assert_eq!(w.commit(&d).await.unwrap(), 100_004);
    // A state for another offset or a broken one is not used: the data is re-read (and here mismatches).
    let id = other.start_upload(&repo).await.unwrap();
    let uid = UploadId::parse(id.as_str()).unwrap();
    let mut w = other
        .begin_write(&repo, id.as_str(), None, None)
        .await
        .unwrap();
    w.write(b"abc").await.unwrap();
    w.end_chunk(None).await.unwrap();
    drop(w);
    let saved = paths::upload_hash_state(&repo, &uid, Algorithm::Sha256, 3);
    other
        .driver()
        .write_atomic(&saved, b"garbage")
        .await
        .unwrap();
    let third = Store::open(crate::storage::StorageConfig {
        root: dir.path().to_path_buf(),
        delete_enabled: false,
        s3: None,
    })
    .await
    .unwrap();
    let w = third
        .begin_write(&repo, id.as_str(), None, None)
        .await
        .unwrap();
    let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, b"abc");
    assert_eq!(w.commit(&d).await.unwrap(), 3, "re-hashed from the data");
}

/// A chunk whose request failed half way (the writer dropped before its end) is cut off again, and the
/// session continues from where it was, with a digest that still matches.
#[tokio::test]
async fn an_interrupted_chunk_is_never_part_of_the_upload() {
    let (_dir, store) = store().await;
    let repo = Name::parse("a/b").unwrap();
    let id = store.start_upload(&repo).await.unwrap();
    let mut w = store
        .begin_write(&repo, id.as_str(), Some(0), None)
        .await
        .unwrap();
    w.write(b"kept ").await.unwrap();
    assert_eq!(w.end_chunk(Some(5)).await.unwrap(), 5);
    drop(w);
    let mut w = store
        .begin_write(&repo, id.as_str(), Some(5), None)
        .await
        .unwrap();
    w.write(&[b'!'; 100_000]).await.unwrap();
    drop(w); // The body failed: no end_chunk.
             // The next writer waits for the cut: the session is at 5 again.
    let mut w = store
        .begin_write(&repo, id.as_str(), None, None)
        .await
        .unwrap();
    assert_eq!(w.offset(), 5);
    w.write(b"and this").await.unwrap();
    let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, b"kept and this");
    assert_eq!(w.commit(&d).await.unwrap(), 13);
}

/// A chunk whose write failed (ENOSPC from /dev/full) cannot be committed: ending it cancels it and says so.
#[tokio::test]
async fn a_chunk_with_a_failed_write_is_cancelled_not_committed() {
    let (dir, store) = store().await;
    let repo = Name::parse("a").unwrap();
    let id = store.start_upload(&repo).await.unwrap();
    let data = dir.path().join(paths::upload_data(&repo, &id));
    std::fs::remove_file(&data).unwrap();
    std::os::unix::fs::symlink("/dev/full", &data).unwrap();
    let mut w = store
        .begin_write(&repo, id.as_str(), None, None)
        .await
        .unwrap();
    let mut failed = false;
    for _ in 0..64 {
        if w.write(&[1u8; 65_536]).await.is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "a write to /dev/full fails");
    assert!(
        w.write(b"more").await.is_err(),
        "a spoilt chunk takes no more"
    );
    assert!(matches!(
        w.end_chunk(None).await,
        Err(StorageError::Driver(_))
    ));
    assert_eq!(w.offset(), 0);
}

/// A chunk whose length differs from its Content-Range is cancelled: the upload's length and hash are as
/// before it.
#[tokio::test]
async fn a_chunk_of_the_wrong_length_is_cancelled() {
    let (_dir, store) = store().await;
    let repo = Name::parse("a").unwrap();
    let id = store.start_upload(&repo).await.unwrap();
    let mut w = store
        .begin_write(&repo, id.as_str(), Some(0), None)
        .await
        .unwrap();
    w.write(b"abc").await.unwrap();
    assert!(matches!(
        w.end_chunk(Some(4)).await,
        Err(StorageError::ChunkLength {
            declared: 4,
            received: 3,
            ..
        })
    ));
    drop(w);
    assert_eq!(store.upload_offset(&repo, id.as_str()).await.unwrap(), 0);
    let mut w = store
        .begin_write(&repo, id.as_str(), Some(0), None)
        .await
        .unwrap();
    w.write(b"xyz").await.unwrap();
    let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, b"xyz");
    assert_eq!(w.commit(&d).await.unwrap(), 3);
}

/// Issue 9 finding 4: once a chunk's end returns (the PATCH's 202), its bytes are in storage: a fresh store on
/// the same root (no shared hash state, no shared file handle) hashes them all.
#[tokio::test]
async fn a_chunk_is_in_storage_when_its_end_returns() {
    let (dir, store) = store().await;
    let repo = Name::parse("a").unwrap();
    let id = store.start_upload(&repo).await.unwrap();
    let mut data = Vec::new();
    for round in 0..8u8 {
        let mut w = store
            .begin_write(&repo, id.as_str(), None, None)
            .await
            .unwrap();
        for _ in 0..16 {
            let piece = vec![round; 65_536 + round as usize];
            w.write(&piece).await.unwrap();
            data.extend_from_slice(&piece);
        }
        assert_eq!(w.end_chunk(None).await.unwrap(), data.len() as u64);
        drop(w);
        let fresh = Store::open(crate::storage::StorageConfig {
            root: dir.path().to_path_buf(),
            delete_enabled: false,
            s3: None,
        })
        .await
        .unwrap();
        assert_eq!(
            fresh.upload_offset(&repo, id.as_str()).await.unwrap(),
            data.len() as u64
        );
        let hashed = hash_file(
            fresh.driver(),
            &paths::upload_data(&repo, &id),
            Algorithm::Sha256,
            data.len() as u64,
        )
        .await
        .unwrap();
        assert_eq!(
            hashed.digest(),
            crate::storage::digester::digest_bytes(Algorithm::Sha256, &data),
            "round {round}"
        );
    }
}

/// Issue 12 on S3: an upload of 1 MiB chunks alternating two stores on one bucket (two instances, nothing
/// shared in memory), with a chunk whose request died half way (after it sent a part) and one of the wrong
/// length in between, keeps its offset right and commits with its digest verified; what the offset status
/// reports is the parked length; the session leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_chunks_alternating_two_stores_keep_offset_and_digest() {
    let bucket = crate::storage::driver::s3::testing::bucket().await;
    let mut section = bucket.section();
    section.chunksize = crate::storage::driver::s3::settings::MIN_CHUNK;
    let s3 = section.validate().unwrap();
    let open = || {
        Store::open(crate::storage::StorageConfig {
            root: std::path::PathBuf::from("/nonexistent"),
            delete_enabled: false,
            s3: Some(s3.clone()),
        })
    };
    let (a, b) = (open().await.unwrap(), open().await.unwrap());
    let repo = Name::parse("team/app").unwrap();
    let id = a.start_upload(&repo).await.unwrap();
    let mut data = Vec::new();
    for i in 0..9u8 {
        let st = if i % 2 == 0 { &b } else { &a };
        let piece: Vec<u8> = (0..1usize << 20).map(|j| (j % 241) as u8 ^ i).collect();
        if i == 3 {
            // Dies after 6 MiB: a part went out, the chunk never ended.
            let mut w = st
                .begin_write(&repo, id.as_str(), Some(data.len() as u64), None)
                .await
                .unwrap();
            w.write(&vec![0xee; 6 << 20]).await.unwrap();
            drop(w);
        }
        if i == 5 {
            let mut w = st
                .begin_write(&repo, id.as_str(), Some(data.len() as u64), None)
                .await
                .unwrap();
            w.write(&piece[..10]).await.unwrap();
            assert!(w.end_chunk(Some(11)).await.is_err());
        }
        let mut w = st
            .begin_write(&repo, id.as_str(), Some(data.len() as u64), None)
            .await
            .unwrap();
        w.write(&piece).await.unwrap();
        data.extend_from_slice(&piece);
        assert_eq!(
            w.end_chunk(Some(piece.len() as u64)).await.unwrap(),
            data.len() as u64
        );
        drop(w);
        assert_eq!(
            a.upload_offset(&repo, id.as_str()).await.unwrap(),
            data.len() as u64
        );
    }
    let d = crate::storage::digester::digest_bytes(Algorithm::Sha256, &data);
    let w = a
        .begin_write(&repo, id.as_str(), None, Some(Algorithm::Sha256))
        .await
        .unwrap();
    assert_eq!(w.commit(&d).await.unwrap(), data.len() as u64);
    assert!(
        b.driver()
            .read(&paths::blob_data(&d), 16 << 20)
            .await
            .unwrap()[..]
            == data[..]
    );
    let uid = UploadId::parse(id.as_str()).unwrap();
    assert!(b
        .driver()
        .stat(&paths::upload_dir(&repo, &uid))
        .await
        .unwrap()
        .is_none());
    let left = b
        .driver()
        .abort_multipart_before(
            paths::V2_ROOT,
            SystemTime::now() + std::time::Duration::from_secs(3600),
            true,
        )
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// A SHA-512 upload on S3 whose chunks were hashed as SHA-256 (the digest's algorithm is known only at the PUT)
/// and whose PUT goes to the other instance: the parked chunks are sealed, re-read and verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_sha512_upload_finished_on_another_store_is_rehashed_and_verified() {
    let bucket = crate::storage::driver::s3::testing::bucket().await;
    let s3 = bucket.settings();
    let open = || {
        Store::open(crate::storage::StorageConfig {
            root: std::path::PathBuf::from("/nonexistent"),
            delete_enabled: false,
            s3: Some(s3.clone()),
        })
    };
    let (a, b) = (open().await.unwrap(), open().await.unwrap());
    let repo = Name::parse("team/sha512").unwrap();
    let id = a.start_upload(&repo).await.unwrap();
    let first: Vec<u8> = (0..3usize << 20).map(|j| (j % 239) as u8).collect();
    let mut w = a
        .begin_write(&repo, id.as_str(), Some(0), None)
        .await
        .unwrap();
    w.write(&first).await.unwrap();
    w.end_chunk(None).await.unwrap();
    drop(w);
    let mut whole = first.clone();
    whole.extend_from_slice(b"last bytes");
    let d = crate::storage::digester::digest_bytes(Algorithm::Sha512, &whole);
    let mut w = b
        .begin_write(
            &repo,
            id.as_str(),
            Some(first.len() as u64),
            Some(Algorithm::Sha512),
        )
        .await
        .unwrap();
    w.write(b"last bytes").await.unwrap();
    w.end_chunk(Some(10)).await.unwrap();
    assert_eq!(w.commit(&d).await.unwrap(), whole.len() as u64);
    assert!(
        a.driver()
            .read(&paths::blob_data(&d), 8 << 20)
            .await
            .unwrap()[..]
            == whole[..]
    );
}
