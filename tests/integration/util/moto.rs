//! A real S3 on loopback for the S3 tests: `moto_server` (PyPI `moto[server]`, installed by `.ci/run`; a
//! missing one fails the test) on a free port, buckets made over its HTTP API, the `REGISTRY_STORAGE_S3_*`
//! environment that points gatehouse at a bucket, and a distribution 2.8.2 whose `storage.s3` points at the
//! same bucket.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tempfile::TempDir;

use super::http::Http;
use super::net;
use super::process::{require_tool, scrub_env, Service};

/// The root directory both registries use in the bucket (its leading `/` is trimmed in the keys).
pub const ROOT: &str = "/registry";

/// A moto server owned by one test; killed on drop (its buckets live in its memory only).
pub struct Moto {
    /// The loopback port.
    pub port: u16,
    service: Option<Service>,
    dir: TempDir,
}

impl Moto {
    /// Starts moto on a free port and waits until it accepts.
    pub fn start() -> Moto {
        let dir = tempfile::Builder::new()
            .prefix("gh-moto-")
            .tempdir()
            .expect("temp dir");
        let mut m = Moto {
            port: net::free_port(),
            service: None,
            dir,
        };
        m.launch();
        m
    }

    fn launch(&mut self) {
        let bin = require_tool("moto_server", "moto[server] from PyPI (see .ci/run)");
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &self.port.to_string()]);
        let log = self.dir.path().join("moto.log");
        let mut service = Service::spawn("moto_server", cmd, &log);
        service.wait_ready(self.port, Duration::from_secs(60));
        self.service = Some(service);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket and returns its name.
    pub fn bucket(&self, name: &str) -> String {
        Http::new(&self.endpoint())
            .req("PUT", &format!("/{name}"))
            .send()
            .expect(200);
        name.to_string()
    }

    /// The keys in `bucket` under `prefix` (one unpaged ListObjectsV2, at most 1000 keys).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let reply = Http::new(&self.endpoint())
            .req("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"))
            .send();
        reply.expect(200);
        String::from_utf8_lossy(&reply.body)
            .split("<Key>")
            .skip(1)
            .filter_map(|k| k.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The keys of the unfinished multipart uploads in `bucket` (one unpaged ListMultipartUploads).
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<String> {
        let reply = Http::new(&self.endpoint())
            .req("GET", &format!("/{bucket}?uploads"))
            .send();
        reply.expect(200);
        String::from_utf8_lossy(&reply.body)
            .split("<Upload>")
            .skip(1)
            .filter_map(|u| u.split("<Key>").nth(1)?.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }

    /// The environment that makes gatehouse store into `bucket` under [`ROOT`], as registry:2 is told.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        self.env_via(bucket, &self.endpoint())
    }

    /// [`Moto::env`] with requests sent to `endpoint` (a [`Gate`] in front of moto).
    pub fn env_via(&self, bucket: &str, endpoint: &str) -> Vec<(String, String)> {
        [
            ("REGISTRY_STORAGE", "s3".to_string()),
            ("REGISTRY_STORAGE_S3_REGION", "us-east-1".into()),
            ("REGISTRY_STORAGE_S3_BUCKET", bucket.into()),
            ("REGISTRY_STORAGE_S3_REGIONENDPOINT", endpoint.to_string()),
            ("REGISTRY_STORAGE_S3_ACCESSKEY", "test".into()),
            ("REGISTRY_STORAGE_S3_SECRETKEY", "test".into()),
            ("REGISTRY_STORAGE_S3_ROOTDIRECTORY", ROOT.into()),
            ("REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true".into()),
            ("REGISTRY_STORAGE_S3_SECURE", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// distribution 2.8.2 (`docker-registry serve`) storing into a moto bucket under [`ROOT`]; killed on drop.
pub struct DistributionS3 {
    /// The loopback port.
    pub port: u16,
    _service: Service,
    _dir: TempDir,
}

impl DistributionS3 {
    /// Starts distribution on a free port with `storage.s3` pointed at `bucket` on `moto`, deletes enabled.
    pub fn start(moto: &Moto, bucket: &str) -> DistributionS3 {
        let bin = require_tool("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("gh-distribution-s3-")
            .tempdir()
            .expect("temp dir");
        let port = net::free_port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: true\n\
                 storage:\n  s3:\n    region: us-east-1\n    bucket: {bucket}\n    regionendpoint: {endpoint}\n    \
                 accesskey: test\n    secretkey: test\n    forcepathstyle: true\n    secure: false\n    \
                 v4auth: true\n    rootdirectory: {ROOT}\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: gatehouse-integration-tests\n",
                endpoint = moto.endpoint()
            ),
        )
        .expect("writing the distribution config");
        let mut cmd = Command::new(bin);
        scrub_env(&mut cmd);
        // distribution's AWS SDK cannot load a custom CA bundle into its transport (and needs none on http).
        cmd.env_remove("AWS_CA_BUNDLE");
        cmd.arg("serve").arg(&config);
        let mut service =
            Service::spawn("distribution-s3", cmd, &dir.path().join("distribution.log"));
        service.wait_ready(port, Duration::from_secs(30));
        DistributionS3 {
            port,
            _service: service,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A TCP forwarder in front of moto that can be shut (every connection cut, new ones closed at once) and
/// opened again: the store going away and coming back, with its data kept.
pub struct Gate {
    /// The loopback port gatehouse is sent to.
    pub port: u16,
    up: Arc<AtomicBool>,
    open_conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Gate {
    /// Forwards a free loopback port to `target_port`, open.
    pub fn start(target_port: u16) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the gate");
        let port = listener.local_addr().expect("its address").port();
        let up = Arc::new(AtomicBool::new(true));
        let open_conns = Arc::new(Mutex::new(Vec::new()));
        let (up2, conns2) = (up.clone(), open_conns.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let mut conns = conns2.lock().expect("gate lock");
                conns.push(client.try_clone().expect("clone"));
                conns.push(server.try_clone().expect("clone"));
                drop(conns);
                pipe(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(server, client);
            }
        });
        Gate {
            port,
            up,
            open_conns,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection and refuses new ones until [`Gate::open`].
    pub fn shut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.open_conns.lock().expect("gate lock").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` on a thread until either side ends.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
