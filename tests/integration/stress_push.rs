//! Concurrent pushes against the embedded backend (issue 9, finding 4: about 1 in 300 concurrent pushes failed
//! with "provided digest did not match uploaded content", because a PATCH was answered before its bytes were in
//! the file). 8 threads push 300 blobs each, of mixed sizes (empty to 2 MiB), in four ways: one monolithic
//! `POST ?digest=`, `POST` then `PUT ?digest=` with the body, chunked with several `Content-Range` PATCHes then an
//! empty `PUT`, and streamed PATCHes without `Content-Range` with the last chunk in the `PUT`. Some blobs are
//! pushed by every thread into one shared repository at once. Every request must succeed, every blob must read
//! back with its digest, the blob store must hash to its paths and no upload session may be left.

use std::path::Path;
use std::thread;

use crate::util::embedded::{
    check_blob_store, location, sha256_of, start_upload, walk_files, with_query, Embedded, Reg,
    Setup,
};
use crate::util::frontdoor::{fresh_seed, noise};
use crate::util::temp_dir;

const THREADS: usize = 8;
const PER_THREAD: usize = 300;

/// The ways a blob is pushed.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// `POST ?digest=` with the whole body.
    Monolithic,
    /// `POST`, then `PUT ?digest=` with the whole body.
    PostThenPut,
    /// `POST`, PATCHes with `Content-Range`, then an empty `PUT ?digest=`.
    Chunked,
    /// `POST`, PATCHes without `Content-Range` (streamed), then `PUT ?digest=` with the last chunk.
    Streamed,
}

/// A blob that was acknowledged with 201.
struct Pushed {
    repo: String,
    digest: String,
    len: usize,
}

/// The size of upload `i`: mostly small, with a few of hundreds of KiB and 2 MiB (the finding's layer size).
fn size_of(i: usize, t: usize) -> usize {
    const SMALL: [usize; 10] = [0, 1, 17, 511, 4096, 10_007, 65_535, 65_536, 65_537, 131_072];
    match i % 30 {
        0 => (2 << 20) + t,
        7 | 19 => 300_001 + 13 * t,
        k => SMALL[(k + t) % SMALL.len()],
    }
}

/// Cuts `data` into `n` pieces of uneven sizes (never an empty piece).
fn pieces(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    for k in (1..=n).rev() {
        if rest.is_empty() {
            break;
        }
        let take = if k == 1 {
            rest.len()
        } else {
            (rest.len() / k + k * 7).clamp(1, rest.len())
        };
        let (piece, tail) = rest.split_at(take);
        out.push(piece);
        rest = tail;
    }
    out
}

/// Pushes `data` to `repo` the `way` says; `Err` describes the first request that did not get what it should.
fn push(reg: &Reg, repo: &str, data: &[u8], way: Way, chunks: usize) -> Result<String, String> {
    let digest = sha256_of(data);
    let check = |reply: crate::util::Reply, status: u16| -> Result<crate::util::Reply, String> {
        if reply.status == status {
            Ok(reply)
        } else {
            Err(format!(
                "{way:?} of {} bytes: wanted {status}:\n{reply:?}",
                data.len()
            ))
        }
    };
    let finish = |loc: &str, body: &[u8]| {
        reg.req("PUT", &with_query(loc, &format!("digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .body(body.to_vec())
            .send()
    };
    let reply = match way {
        Way::Monolithic => reg
            .req(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            )
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec())
            .send(),
        Way::PostThenPut => finish(&start_upload(reg, repo), data),
        Way::Chunked => {
            let mut loc = start_upload(reg, repo);
            let mut at = 0;
            for piece in pieces(data, chunks) {
                let reply = reg
                    .req("PATCH", &loc)
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", &format!("{at}-{}", at + piece.len() - 1))
                    .body(piece.to_vec())
                    .send();
                let reply = check(reply, 202)?;
                at += piece.len();
                let range = reply.header("Range").unwrap_or_default();
                if range != format!("0-{}", at - 1) {
                    return Err(format!(
                        "PATCH to {at} answered Range {range:?}:\n{reply:?}"
                    ));
                }
                loc = location(&reply);
            }
            finish(&loc, b"")
        }
        Way::Streamed => {
            let mut loc = start_upload(reg, repo);
            let mut parts = pieces(data, chunks);
            let last = parts.pop().unwrap_or(b"");
            for piece in parts {
                let reply = reg
                    .req("PATCH", &loc)
                    .header("Content-Type", "application/octet-stream")
                    .body(piece.to_vec())
                    .send();
                loc = location(&check(reply, 202)?);
            }
            finish(&loc, last)
        }
    };
    let reply = check(reply, 201)?;
    match reply.header("Docker-Content-Digest") {
        Some(d) if d == digest => Ok(digest),
        other => Err(format!(
            "201 with Docker-Content-Digest {other:?}, not {digest}"
        )),
    }
}

/// The upload sessions left under `root` (files inside any `_uploads` directory).
fn leftover_sessions(root: &Path) -> Vec<String> {
    walk_files(root)
        .into_iter()
        .map(|p| p.display().to_string())
        .filter(|p| p.contains("/_uploads/"))
        .collect()
}

#[test]
fn concurrent_chunked_and_monolithic_pushes_all_commit_and_read_back() {
    let root = temp_dir("stress-push");
    let emb = Embedded::launch(
        root.path(),
        Setup {
            auth: true,
            delete: false,
            by_env: false,
        },
    );
    let (url, creds) = (emb.url(), emb.creds());
    let seed = fresh_seed();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            thread::spawn(move || {
                let reg = Reg::new(&url, creds);
                let (mut pushed, mut failures) = (Vec::new(), Vec::new());
                for i in 0..PER_THREAD {
                    let way = [
                        Way::Monolithic,
                        Way::PostThenPut,
                        Way::Chunked,
                        Way::Streamed,
                    ][(i + t) % 4];
                    // Every 25th blob is the same in every thread, pushed to one repository at once.
                    let (repo, data) = if i % 25 == 3 {
                        (
                            "stress/shared".to_string(),
                            noise(size_of(i, 0), seed ^ i as u64),
                        )
                    } else {
                        let unique = seed ^ ((t as u64) << 40) ^ ((i as u64 + 1) << 8);
                        (format!("stress/t{t}"), noise(size_of(i, t), unique))
                    };
                    match push(&reg, &repo, &data, way, 2 + i % 4) {
                        Ok(digest) => pushed.push(Pushed {
                            repo,
                            digest,
                            len: data.len(),
                        }),
                        Err(e) => failures.push(format!("thread {t} upload {i}: {e}")),
                    }
                }
                (pushed, failures)
            })
        })
        .collect();
    let (mut pushed, mut failures) = (Vec::new(), Vec::new());
    for w in workers {
        let (p, f) = w.join().expect("a push thread panicked");
        pushed.extend(p);
        failures.extend(f);
    }
    assert!(
        failures.is_empty(),
        "{} of {} uploads failed; the first ones:\n{}\n{}",
        failures.len(),
        THREADS * PER_THREAD,
        failures[..failures.len().min(5)].join("\n"),
        emb.gh.log_tail()
    );
    assert_eq!(pushed.len(), THREADS * PER_THREAD);

    let reg = emb.reg();
    for p in &pushed {
        let reply = reg
            .req("GET", &format!("/v2/{}/blobs/{}", p.repo, p.digest))
            .send();
        reply.expect(200);
        assert_eq!(
            (reply.body.len(), sha256_of(&reply.body)),
            (p.len, p.digest.clone()),
            "blob {} of {} reads back whole",
            p.digest,
            p.repo
        );
    }
    let stored = check_blob_store(root.path());
    for p in &pushed {
        assert!(
            stored.contains(&p.digest),
            "{} is in the blob store",
            p.digest
        );
    }
    assert_eq!(
        leftover_sessions(root.path()),
        Vec::<String>::new(),
        "every session is gone after its commit"
    );
}
