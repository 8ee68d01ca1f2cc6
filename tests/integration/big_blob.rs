//! A 1 GiB blob up and down through gatehouse: a monolithic upload (POST, then PUT of the whole body
//! streamed from a file) and a GET streamed into `sha256sum`, so neither side holds the blob in memory.
//! The bytes must come back identical, distribution must hold all of them, the upload `Location` must
//! point at gatehouse rather than the upstream, and gatehouse's peak RSS (VmHWM) must stay under 64 MiB.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Body;

use crate::util::http::{client, Http};
use crate::util::process::require_tool;
use crate::util::{door, temp_dir, Distribution, PASS, USER};

const SIZE: u64 = 1 << 30;
const HWM_LIMIT_KIB: u64 = 64 * 1024;

/// Feeds `reader` to `sha256sum` and returns (`sha256:<hex>`, bytes read).
fn sha256_of(mut reader: impl Read) -> (String, u64) {
    let bin = require_tool("sha256sum", "coreutils");
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting sha256sum");
    let mut stdin = child.stdin.take().expect("sha256sum stdin");
    let bytes = io::copy(&mut reader, &mut stdin).expect("streaming into sha256sum");
    stdin.flush().expect("flushing sha256sum's stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("waiting for sha256sum");
    assert!(out.status.success(), "sha256sum failed");
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string();
    (format!("sha256:{hex}"), bytes)
}

/// Writes `size` random bytes to `path`.
fn random_file(path: &Path, size: u64) {
    let mut random = File::open("/dev/urandom")
        .expect("opening /dev/urandom")
        .take(size);
    let mut file = File::create(path).expect("creating the blob file");
    let written = io::copy(&mut random, &mut file).expect("writing the blob file");
    assert_eq!(written, size, "short blob file");
}

/// `location` (absolute or a path) made absolute against `base`, with `digest` added to its query.
fn put_url(base: &str, location: &str, digest: &str) -> String {
    let url = if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={digest}")
}

#[test]
fn one_gib_blob_up_and_down_through_gatehouse_in_bounded_memory() {
    let dist = Distribution::start();
    let gatehouse = door(&dist.url());
    let http = Http::new(&gatehouse.url());
    let work = temp_dir("big");
    let path = work.path().join("blob.bin");
    random_file(&path, SIZE);
    let (digest, _) = sha256_of(File::open(&path).expect("opening the blob file"));

    let start = http
        .req("POST", "/v2/big/blob/blobs/uploads/")
        .creds(USER, PASS)
        .send();
    start.expect(202).expect_api_version();
    let location = start
        .header("Location")
        .unwrap_or_else(|| panic!("no Location:\n{start:?}"));
    assert!(
        !location.contains(&format!(":{}/", dist.port)),
        "the upload Location points at the upstream, not at gatehouse:\n{start:?}"
    );
    let url = put_url(&gatehouse.url(), &location, &digest);

    let big = client(None);
    let began = Instant::now();
    let body = Body::sized(File::open(&path).expect("opening the blob file"), SIZE);
    let put = big
        .put(&url)
        .basic_auth(USER, Some(PASS))
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .send()
        .unwrap_or_else(|e| panic!("PUT {url}: no reply: {e:?}"));
    let status = put.status().as_u16();
    let put_digest = put
        .headers()
        .get("Docker-Content-Digest")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let put_body = put.text().unwrap_or_default();
    assert_eq!(status, 201, "PUT of 1 GiB: {put_body}");
    assert_eq!(
        put_digest.as_deref(),
        Some(digest.as_str()),
        "Docker-Content-Digest of the PUT"
    );
    eprintln!("1 GiB PUT through gatehouse took {:?}", began.elapsed());

    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let stored = dist
        .root()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let stored_len = std::fs::metadata(&stored).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        stored_len,
        SIZE,
        "distribution stored {stored_len} bytes at {}",
        stored.display()
    );

    let blob = format!("/v2/big/blob/blobs/{digest}");
    let head = http.req("HEAD", &blob).creds(USER, PASS).send();
    head.expect(200).expect_api_version();
    assert_eq!(
        head.header("Content-Length"),
        Some(SIZE.to_string()),
        "{head:?}"
    );

    let began = Instant::now();
    let get = big
        .get(format!("{}{blob}", gatehouse.url()))
        .basic_auth(USER, Some(PASS))
        .timeout(Duration::from_secs(1800))
        .send()
        .unwrap_or_else(|e| panic!("GET {blob}: no reply: {e:?}"));
    assert_eq!(get.status().as_u16(), 200, "GET of the 1 GiB blob");
    let (got_digest, got_len) = sha256_of(get);
    eprintln!("1 GiB GET through gatehouse took {:?}", began.elapsed());
    assert_eq!(got_len, SIZE, "GET returned {got_len} bytes");
    assert_eq!(got_digest, digest, "GET returned different bytes");

    let hwm = gatehouse.vm_hwm_kib();
    eprintln!("gatehouse VmHWM after 1 GiB up and down: {} KiB", hwm);
    assert!(
        hwm < HWM_LIMIT_KIB,
        "gatehouse's peak RSS is {hwm} KiB, over the {HWM_LIMIT_KIB} KiB limit"
    );
}
