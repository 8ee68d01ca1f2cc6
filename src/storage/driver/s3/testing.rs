//! A real S3 for the driver's tests: one `moto_server` per test process on a free loopback port (killed when
//! the process ends), and a fresh bucket per test. A missing `moto_server` fails the test loudly.

use super::settings::{S3Section, S3Settings};
use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The endpoint of this process's moto server, started on first use.
pub(crate) fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (tx, rx) = std::sync::mpsc::channel();
        // The child is spawned by a thread that lives as long as the process: it dies with the process
        // (PR_SET_PDEATHSIG follows the spawning thread).
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            let mut cmd = std::process::Command::new("moto_server");
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd.spawn();
            let ok = child.is_ok();
            tx.send(child.map(|_| ()).map_err(|e| e.to_string())).ok();
            if ok {
                loop {
                    std::thread::park();
                }
            }
        });
        rx.recv()
            .expect("the moto thread answers")
            .unwrap_or_else(|e| {
                panic!("moto_server (PyPI moto[server], see .ci/run) cannot start: {e}")
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// A bucket of its own on the process's moto server.
pub(crate) struct Bucket {
    /// The bucket's name.
    pub(crate) name: String,
}

impl Bucket {
    /// The section of settings that reach this bucket, with a root directory like a user's.
    pub(crate) fn section(&self) -> S3Section {
        S3Section {
            region: "us-east-1".into(),
            bucket: self.name.clone(),
            regionendpoint: endpoint().to_string(),
            accesskey: "test".into(),
            secretkey: "test".into(),
            rootdirectory: "/gatehouse".into(),
            forcepathstyle: true,
            secure: false,
            ..S3Section::default()
        }
    }

    /// Validated settings for this bucket.
    pub(crate) fn settings(&self) -> S3Settings {
        self.section().validate().expect("test settings")
    }
}

/// Sends one plain HTTP request to moto and returns the status.
pub(crate) async fn raw(method: &str, path: &str) -> u16 {
    raw_text(method, path).await.0
}

/// Sends one plain HTTP request to moto and returns the status and the whole answer.
pub(crate) async fn raw_text(method: &str, path: &str) -> (u16, String) {
    let addr = endpoint().trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("moto answers");
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("moto's answer: {text}"));
    (status, text)
}

/// Creates a fresh bucket.
pub(crate) async fn bucket() -> Bucket {
    let name = format!("t-{:016x}", rand::random::<u64>());
    let status = raw("PUT", &format!("/{name}")).await;
    assert_eq!(status, 200, "creating bucket {name} on moto");
    Bucket { name }
}
