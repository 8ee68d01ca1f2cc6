//! The S3 driver's own tests on moto (the conformance suite, appends across parts, layout keys, multipart copy,
//! conditional puts, a missing bucket, presigned URLs, the upload purge).

use super::*;

crate::driver_conformance_tests!(async {
    let bucket = testing::bucket().await;
    let driver: Arc<dyn Driver> = Arc::new(S3Driver::open(&bucket.settings()).await.unwrap());
    (bucket, driver)
});

async fn small_parts() -> (testing::Bucket, S3Driver) {
    let bucket = testing::bucket().await;
    let mut section = bucket.section();
    section.chunksize = settings::MIN_CHUNK;
    let driver = S3Driver::open(&section.validate().unwrap()).await.unwrap();
    (bucket, driver)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8 ^ seed).collect()
}

/// Appends that cross part boundaries (multipart uploads, the old content read back into the leading parts)
/// and small appends to a large object keep every byte in order; a cancelled multipart append changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_across_parts_keep_every_byte() {
    let (_b, d) = small_parts().await;
    let k = "docker/registry/v2/repositories/a/_uploads/x/data";
    let mut want = Vec::new();
    // 1 MiB client chunks (smaller than a part), then one 7 MiB chunk, then 100 bytes.
    for (round, size) in [(1u8, 1 << 20), (2, 1 << 20), (3, 7 << 20), (4, 100)] {
        let mut w = d.writer(k).await.unwrap();
        let piece = pattern(size, round);
        for c in piece.chunks(65_536) {
            w.write(c).await.unwrap();
        }
        want.extend_from_slice(&piece);
        assert_eq!(w.commit().await.unwrap(), want.len() as u64);
        assert_eq!(d.stat(k).await.unwrap().unwrap().size, want.len() as u64);
    }
    let mut w = d.writer(k).await.unwrap();
    w.write(&pattern(6 << 20, 9)).await.unwrap();
    w.cancel().await.unwrap();
    let got = d.read(k, 64 << 20).await.unwrap();
    assert!(
        got[..] == want[..],
        "{} bytes back, {} written",
        got.len(),
        want.len()
    );
}

/// Keys are distribution's: `<rootdirectory>/docker/registry/v2/...` in the bucket, the root's `/` trimmed.
#[tokio::test]
async fn keys_are_distributions_layout_under_the_root() {
    let bucket = testing::bucket().await;
    let d = S3Driver::open(&bucket.settings()).await.unwrap();
    let key = "docker/registry/v2/blobs/sha256/ab/abcd/data";
    d.write_atomic(key, b"x").await.unwrap();
    let (status, listing) =
        testing::raw_text("GET", &format!("/{}?list-type=2", bucket.name)).await;
    assert_eq!(status, 200);
    let keys: Vec<&str> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .collect();
    assert_eq!(keys, vec![format!("gatehouse/{key}")]);
}

/// An object too large for CopyObject is renamed as a multipart copy (exercised here on a small object,
/// one copied part), byte for byte. (moto does not check `x-amz-copy-source-if-match`; S3 answers 412.)
#[tokio::test]
async fn a_multipart_copy_moves_every_byte() {
    let (_b, d) = small_parts().await;
    let data = pattern(6 << 20, 3);
    d.write_atomic("big/src", &data).await.unwrap();
    let src = d.loc("big/src").unwrap();
    let dst = d.loc("big/dst").unwrap();
    let etag = d.head("big/src").await.unwrap().unwrap().e_tag;
    d.multipart_copy("big/src", &src, &dst, data.len() as u64, etag)
        .await
        .unwrap();
    assert!(d.read("big/dst", 8 << 20).await.unwrap()[..] == data[..]);
}

/// `create_new` writes only when nothing is there (a conditional put), and reports which.
#[tokio::test]
async fn create_new_is_a_conditional_put() {
    let bucket = testing::bucket().await;
    let d = S3Driver::open(&bucket.settings()).await.unwrap();
    assert!(d.create_new("gc/lock", b"one").await.unwrap());
    assert!(!d.create_new("gc/lock", b"two").await.unwrap());
    assert_eq!(&d.read("gc/lock", 8).await.unwrap()[..], b"one");
}

/// A missing bucket fails at open, naming the setting.
#[tokio::test]
async fn a_missing_bucket_fails_at_open_naming_the_setting() {
    let bucket = testing::Bucket {
        name: format!("absent-{:08x}", rand::random::<u32>()),
    };
    let e = S3Driver::open(&bucket.settings())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("REGISTRY_STORAGE_S3_BUCKET") && e.contains(&bucket.name),
        "{e}"
    );
}

/// A presigned URL fetches the object without credentials.
#[tokio::test]
async fn a_redirect_url_fetches_the_object() {
    let bucket = testing::bucket().await;
    let d = S3Driver::open(&bucket.settings()).await.unwrap();
    d.write_atomic("b/data", b"signed").await.unwrap();
    let url = d.redirect_url("b/data").await.unwrap().unwrap();
    let url = url::Url::parse(&url).unwrap();
    let path = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    assert!(path.contains("X-Amz-Signature"), "{path}");
    assert_eq!(testing::raw("GET", &path).await, 200);
    // Redirects off: no URL, the registry streams.
    let mut section = bucket.section();
    section.redirect_disable = true;
    let d = S3Driver::open(&section.validate().unwrap()).await.unwrap();
    assert_eq!(d.redirect_url("b/data").await.unwrap(), None);
}

/// The upload purge aborts multipart uploads (a writer that died mid-chunk) started before its age, under
/// the root only; a dry run finds them and leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_purge_aborts_abandoned_multipart_uploads() {
    use crate::gc::purge::purge_uploads;
    use object_store::multipart::MultipartStore;
    let bucket = testing::bucket().await;
    let d = S3Driver::open(&bucket.settings()).await.unwrap();
    let key = "docker/registry/v2/repositories/a/_uploads/x/data";
    let store = &d.inner.store;
    for at in [d.loc(key).unwrap(), Path::from("elsewhere/data")] {
        let id = store.create_multipart(&at).await.unwrap();
        store
            .put_part(&at, &id, 0, PutPayload::from(vec![1u8; 100]))
            .await
            .unwrap();
    }
    let v2 = d.loc(crate::storage::paths::V2_ROOT).unwrap();
    let pending = || async { multipart::list(&d.inner, "v2", &v2).await.unwrap().len() };
    assert_eq!(pending().await, 1);
    // Ages count from the start the store reports (moto reports a fixed time in 2010, S3 the real one).
    let started = multipart::list(&d.inner, "v2", &v2).await.unwrap()[0].initiated;
    let (age, now) = (
        Duration::from_secs(3600),
        started + Duration::from_secs(1800),
    );
    let young = purge_uploads(&d, age, now, false).await.unwrap();
    assert!(young.multipart.is_empty(), "{young:?}");
    let later = now + 2 * age;
    let dry = purge_uploads(&d, age, later, true).await.unwrap();
    assert_eq!(dry.multipart, [format!("gatehouse/{key}")]);
    assert_eq!(pending().await, 1, "a dry run aborts nothing");
    let real = purge_uploads(&d, age, later, false).await.unwrap();
    assert_eq!(real.multipart, dry.multipart);
    assert_eq!(pending().await, 0);
    let outside = multipart::list(&d.inner, "x", &Path::from("elsewhere")).await;
    assert_eq!(outside.unwrap().len(), 1, "outside the root: not ours");
}
