//! Failed and refused monolithic uploads leave nothing behind (issue 9, finding 13: a monolithic upload that failed
//! on a full disk left `_uploads/<id>/data`). Client-side failures run on the real filesystem; a full disk is a
//! driver that answers ENOSPC, as the filesystem does, once its byte budget is spent.

use super::*;
use crate::storage::driver::ReadHandle;
use crate::storage::driver::{AppendFile, DirEntry, Driver, DriverError, FsDriver, Metadata};
use crate::storage::Store;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

fn no_space(path: &str) -> DriverError {
    DriverError::Io {
        op: "write",
        path: path.to_string(),
        source: std::io::Error::from_raw_os_error(28), // ENOSPC
    }
}

/// The filesystem driver on a disk that fills up: appends get `budget` bytes in all, then ENOSPC (after writing
/// what still fits, as write(2) does); with `full_meta`, small atomic writes (`startedat`, links) fail too.
struct FullDisk {
    fs: FsDriver,
    budget: Arc<AtomicU64>,
    full_meta: Arc<AtomicBool>,
}

struct FullFile {
    inner: Box<dyn AppendFile>,
    budget: Arc<AtomicU64>,
    path: String,
}

#[async_trait::async_trait]
impl AppendFile for FullFile {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    async fn write_all(&mut self, data: &[u8]) -> Result<(), DriverError> {
        let left = self.budget.load(Ordering::SeqCst);
        let fits = (data.len() as u64).min(left) as usize;
        self.budget.fetch_sub(fits as u64, Ordering::SeqCst);
        self.inner.write_all(&data[..fits]).await?;
        if fits < data.len() {
            return Err(no_space(&self.path));
        }
        Ok(())
    }
    async fn truncate(&mut self, len: u64) -> Result<(), DriverError> {
        self.inner.truncate(len).await
    }
    async fn sync(&mut self) -> Result<(), DriverError> {
        self.inner.sync().await
    }
}

#[async_trait::async_trait]
impl Driver for FullDisk {
    async fn stat(&self, path: &str) -> Result<Option<Metadata>, DriverError> {
        self.fs.stat(path).await
    }
    async fn read(&self, path: &str, max: u64) -> Result<Bytes, DriverError> {
        self.fs.read(path, max).await
    }
    async fn open(&self, path: &str) -> Result<ReadHandle, DriverError> {
        self.fs.open(path).await
    }
    async fn write_atomic(&self, path: &str, data: &[u8]) -> Result<(), DriverError> {
        if self.full_meta.load(Ordering::SeqCst) {
            return Err(no_space(path));
        }
        self.fs.write_atomic(path, data).await
    }
    async fn append(&self, path: &str) -> Result<Box<dyn AppendFile>, DriverError> {
        Ok(Box::new(FullFile {
            inner: self.fs.append(path).await?,
            budget: self.budget.clone(),
            path: path.to_string(),
        }))
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), DriverError> {
        self.fs.rename(from, to).await
    }
    async fn list(&self, dir: &str) -> Result<Vec<DirEntry>, DriverError> {
        self.fs.list(dir).await
    }
    async fn delete(&self, path: &str) -> Result<(), DriverError> {
        self.fs.delete(path).await
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
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(AtomicU64::new(u64::MAX));
    let full_meta = Arc::new(AtomicBool::new(false));
    let driver = FullDisk {
        fs: FsDriver::new(dir.path()).await.unwrap(),
        budget: budget.clone(),
        full_meta: full_meta.clone(),
    };
    let h = Harness {
        reg: Arc::new(Registry::with_store(Store::with_driver(
            Arc::new(driver),
            false,
        ))),
        dir,
    };
    let data = vec![7u8; 64 << 10];
    let d = digest_bytes(Algorithm::Sha256, &data);
    let post = format!("/v2/a/blobs/uploads/?digest={d}");

    // The data does not fit: POST with the body, and POST then PUT with the body.
    budget.store(1000, Ordering::SeqCst);
    let r = h
        .call("POST", &post, &[], &[&data[..4096], &data[4096..]])
        .await;
    assert_eq!((r.status, r.code().as_str()), (500, "UNKNOWN"));
    assert_eq!(
        sessions(h.root(), "a"),
        Vec::<String>::new(),
        "POST on a full disk"
    );
    budget.store(u64::MAX, Ordering::SeqCst);
    let r = h.call("POST", "/v2/a/blobs/uploads/", &[], &[]).await;
    let loc = r.h("location").to_string();
    budget.store(1000, Ordering::SeqCst);
    let r = h
        .call("PUT", &format!("{loc}?digest={d}"), &[], &[&data])
        .await;
    assert_eq!((r.status, r.code().as_str()), (500, "UNKNOWN"));
    assert_eq!(
        sessions(h.root(), "a"),
        Vec::<String>::new(),
        "PUT on a full disk"
    );

    // Not even the session's `startedat` fits.
    budget.store(u64::MAX, Ordering::SeqCst);
    full_meta.store(true, Ordering::SeqCst);
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
    full_meta.store(false, Ordering::SeqCst);
    let r = h.call("POST", &post, &[], &[&data]).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(sessions(h.root(), "a"), Vec::<String>::new());
}
