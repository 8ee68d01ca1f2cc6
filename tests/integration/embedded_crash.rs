//! kill -9 of the embedded backend while 20 uploads stream in (issue 3, crash safety): 20 threads send
//! chunked PATCH uploads of a few MiB each, slowly, some finishing and starting over, while another thread
//! pushes images and moves tags; gatehouse is killed with SIGKILL mid-stream and restarted on the same root.
//! Then every blob in the store hashes to its path, every tag resolves, every upload that was acknowledged
//! as finished is there with its bytes, every interrupted upload is unknown (404 BLOB_UPLOAD_UNKNOWN) or
//! resumable to the right digest (never corrupt), and a fresh push works.

use std::io::Read;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::blocking::{Body, Client};
use serde_json::json;

use crate::util::embedded::{
    check_blob_store, check_tags, sha256_of, url_path, with_query, Embedded, Reg, Setup,
};
use crate::util::frontdoor::{fresh_seed, noise};
use crate::util::http::client;
use crate::util::net;
use crate::util::temp_dir;

const THREADS: usize = 20;
const CHUNK: usize = 256 * 1024;
const PIECE: usize = 16 * 1024;

const SETUP: Setup = Setup {
    auth: false,
    delete: false,
    by_env: false,
};

/// A body that hands out `PIECE` bytes at a time with a pause before each: a slow client.
struct SlowReader {
    data: Vec<u8>,
    pos: usize,
    pause: Duration,
}

impl Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.data.len() {
            return Ok(0);
        }
        thread::sleep(self.pause);
        let n = buf.len().min(PIECE).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// One upload as its client saw it.
#[derive(Clone, Debug)]
struct Upload {
    repo: String,
    location: String,
    data: Arc<Vec<u8>>,
    acked: usize,
    finished: bool,
}

/// Runs uploads one after the other into `repo` until `stop` or an error (the server died); each upload's
/// progress is kept in `log[slot]`-style entries pushed to `uploads`.
#[allow(clippy::too_many_arguments)]
fn uploader(
    base: String,
    repo: String,
    size: usize,
    pause: Duration,
    seed: u64,
    uploads: Arc<Mutex<Vec<Upload>>>,
    chunks: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let http: Client = client(Some(Duration::from_secs(60)));
    for round in 0u64.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let data = Arc::new(noise(size, seed.wrapping_add(round * 7919)));
        let Ok(resp) = http.post(format!("{base}/v2/{repo}/blobs/uploads/")).send() else {
            return;
        };
        assert_eq!(resp.status().as_u16(), 202, "starting an upload");
        let mut location = url_path(
            resp.headers()["Location"]
                .to_str()
                .expect("Location is text"),
        );
        let index = {
            let mut list = uploads.lock().unwrap();
            list.push(Upload {
                repo: repo.clone(),
                location: location.clone(),
                data: data.clone(),
                acked: 0,
                finished: false,
            });
            list.len() - 1
        };
        let mut offset = 0;
        while offset < size {
            let end = (offset + CHUNK).min(size);
            let body = SlowReader {
                data: data[offset..end].to_vec(),
                pos: 0,
                pause,
            };
            let sent = http
                .patch(format!("{base}{location}"))
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", format!("{offset}-{}", end - 1))
                .body(Body::sized(body, (end - offset) as u64))
                .send();
            let Ok(resp) = sent else {
                return;
            };
            assert_eq!(resp.status().as_u16(), 202, "PATCH {offset}-{}", end - 1);
            if let Some(loc) = resp.headers().get("Location") {
                location = url_path(loc.to_str().expect("Location is text"));
            }
            offset = end;
            chunks.fetch_add(1, Ordering::SeqCst);
            let mut list = uploads.lock().unwrap();
            list[index].acked = offset;
            list[index].location = location.clone();
        }
        let digest = sha256_of(&data);
        let Ok(resp) = http
            .put(format!(
                "{base}{}",
                with_query(&location, &format!("digest={digest}"))
            ))
            .send()
        else {
            return;
        };
        assert_eq!(resp.status().as_u16(), 201, "finishing an upload");
        uploads.lock().unwrap()[index].finished = true;
        finished.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pushes small images and moves the `latest` tag until `stop` or an error.
fn tagger(base: String, stop: Arc<AtomicBool>, seed: u64) {
    let http: Client = client(Some(Duration::from_secs(60)));
    let blob = |data: &[u8]| -> Option<String> {
        let digest = sha256_of(data);
        let resp = http
            .post(format!(
                "{base}/v2/crash/tags/blobs/uploads/?digest={digest}"
            ))
            .body(data.to_vec())
            .send()
            .ok()?;
        (resp.status().as_u16() == 201).then_some(digest)
    };
    for n in 0u64.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let layer = noise(64 * 1024, seed.wrapping_add(n));
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"n\":{n}}}");
        let (Some(layer_d), Some(config_d)) = (blob(&layer), blob(config.as_bytes())) else {
            return;
        };
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_d, "size": layer.len()}],
        }))
        .expect("manifest JSON");
        for tag in [format!("t{n}"), "latest".to_string()] {
            let sent = http
                .put(format!("{base}/v2/crash/tags/manifests/{tag}"))
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest.clone())
                .send();
            match sent {
                Ok(resp) => assert_eq!(resp.status().as_u16(), 201, "PUT manifest {tag}"),
                Err(_) => return,
            }
        }
    }
}

/// After the restart: resumes `upload` from where the server says it is, or accepts that it is unknown.
/// Returns whether it was resumable.
fn resume_or_unknown(reg: &Reg, upload: &Upload) -> bool {
    let status = reg.req("GET", &upload.location).send();
    if status.status == 404 {
        status.expect_error(404, "BLOB_UPLOAD_UNKNOWN");
        return false;
    }
    status.expect(204);
    let range = status
        .header("Range")
        .unwrap_or_else(|| panic!("upload status without Range:\n{status:?}"));
    let last: usize = range
        .strip_prefix("0-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad Range {range:?}"));
    // "0-0" is both "empty" and "one byte": try both.
    let candidates = if last == 0 {
        vec![0, 1]
    } else {
        vec![last + 1]
    };
    let size = upload.data.len();
    for offset in candidates {
        assert!(
            offset <= size,
            "the server holds {offset} bytes of a {size}-byte upload"
        );
        let mut loc = upload.location.clone();
        if offset < size {
            let reply = reg
                .req("PATCH", &loc)
                .header("Content-Type", "application/octet-stream")
                .header("Content-Range", &format!("{offset}-{}", size - 1))
                .body(upload.data[offset..].to_vec())
                .send();
            if reply.status == 416 && last == 0 {
                continue;
            }
            reply.expect(202);
            if let Some(l) = reply.header("Location") {
                loc = url_path(&l);
            }
        }
        let digest = sha256_of(&upload.data);
        let put = reg
            .req("PUT", &with_query(&loc, &format!("digest={digest}")))
            .send();
        assert_eq!(
            put.status, 201,
            "a resumable upload ({} bytes acked, server had {offset}) did not finish with its digest \
             (corrupt upload state):\n{put:?}",
            upload.acked
        );
        let got = reg
            .req("GET", &format!("/v2/{}/blobs/{digest}", upload.repo))
            .send();
        assert!(got.expect(200).body == *upload.data, "resumed blob bytes");
        return true;
    }
    panic!("upload {} could not be resumed at 0 or 1", upload.location);
}

#[test]
fn kill_9_during_twenty_uploads_then_restart_is_consistent() {
    let work = temp_dir("crash");
    let root = work.path().join("root");
    let gh = Embedded::launch(&root, SETUP);
    let base = gh.url();
    // Some content before the crash.
    let before = gh
        .reg()
        .push_image("crash/before", "v1", "before the crash");

    let uploads = Arc::new(Mutex::new(Vec::new()));
    let chunks = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let seed = fresh_seed();
    let mut handles = Vec::new();
    for i in 0..THREADS {
        // Five fast small uploaders finish and start over; the others stream 2.5 to 4.5 MiB slowly.
        let (size, pause) = if i < 5 {
            (512 * 1024 + i * 1000, Duration::from_millis(2))
        } else {
            (5 * CHUNK * 2 + i * 100_000, Duration::from_millis(12))
        };
        let args = (
            base.clone(),
            format!("crash/t{}", i % 4),
            uploads.clone(),
            chunks.clone(),
            finished.clone(),
            stop.clone(),
        );
        let s = seed.wrapping_add(i as u64 * 1_000_003);
        handles.push(thread::spawn(move || {
            uploader(
                args.0, args.1, size, pause, s, args.2, args.3, args.4, args.5,
            )
        }));
    }
    let tag_stop = stop.clone();
    let tag_base = base.clone();
    handles.push(thread::spawn(move || {
        tagger(tag_base, tag_stop, seed ^ 0xabcdef)
    }));

    // Kill once uploads are well under way: several finished, every thread past its first chunk.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && (finished.load(Ordering::SeqCst) < 5 || chunks.load(Ordering::SeqCst) < 3 * THREADS)
    {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        finished.load(Ordering::SeqCst) >= 1,
        "no upload finished before the kill: the test did not exercise commits"
    );
    let status = Command::new("kill")
        .args(["-KILL", &gh.gh.pid().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -9 failed");
    net::wait_port_closed(gh.gh.port, Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().expect("a client thread panicked");
    }
    drop(gh);
    let uploads = uploads.lock().unwrap().clone();
    let in_flight = uploads.iter().filter(|u| !u.finished).count();
    assert!(
        in_flight >= 10,
        "only {in_flight} uploads were in flight at the kill"
    );

    // Restart on the same root.
    let gh = Embedded::launch(&root, SETUP);
    let reg = gh.reg();
    let blobs = check_blob_store(&root);
    assert!(
        !blobs.is_empty(),
        "the blob store is empty after the restart"
    );
    let tags = check_tags(&root);
    assert!(
        tags.iter()
            .any(|(r, t, _)| r == "crash/tags" && t == "latest"),
        "no crash/tags:latest among {tags:?}"
    );
    for (repo, tag, digest) in &tags {
        let reply = reg.get_manifest(repo, tag);
        reply.expect(200);
        assert_eq!(
            reply.header("Docker-Content-Digest").as_deref(),
            Some(digest.as_str())
        );
    }
    reg.get_manifest("crash/before", &before.1).expect(200);

    let (mut resumed, mut unknown) = (0, 0);
    for upload in &uploads {
        let digest = sha256_of(&upload.data);
        if upload.finished {
            let got = reg
                .req("GET", &format!("/v2/{}/blobs/{digest}", upload.repo))
                .send();
            assert!(
                got.expect(200).body == *upload.data,
                "an acknowledged blob changed"
            );
        } else if resume_or_unknown(&reg, upload) {
            resumed += 1;
        } else {
            unknown += 1;
        }
    }
    eprintln!(
        "crash: {} uploads, {} finished before the kill, {resumed} resumed, {unknown} unknown, {} blobs, {} tags",
        uploads.len(),
        uploads.len() - in_flight,
        blobs.len(),
        tags.len()
    );
    check_blob_store(&root);

    // A fresh push works.
    let (_, digest) = reg.push_image("crash/after", "v1", "after the restart");
    reg.get_manifest("crash/after", "v1").expect(200);
    reg.get_manifest("crash/after", &digest).expect(200);
    check_tags(&root);
}
