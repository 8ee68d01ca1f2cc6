//! A real distribution 2.8.2 (Debian's `docker-registry`) on a free loopback port, with a generated YAML
//! config: filesystem storage in a temp dir, deletes enabled, no auth. It can be stopped and started again
//! on the same port and data, to play an upstream that goes away and comes back.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::net;
use super::process::{require_tool, scrub_env, Service};

/// A distribution 2.8.2 owned by one test; killed on drop.
pub struct Distribution {
    /// The loopback port it listens on.
    pub port: u16,
    // Fields drop in order: the service (which prints its log tail on a failed test) before its temp dir.
    service: Option<Service>,
    dir: TempDir,
    starts: u32,
}

impl Distribution {
    /// Starts a fresh distribution (empty storage) on a free port and waits until it accepts.
    pub fn start() -> Distribution {
        let dir = tempfile::Builder::new()
            .prefix("gh-distribution-")
            .tempdir()
            .expect("temp dir");
        fs::create_dir_all(dir.path().join("root")).expect("creating the storage root");
        let mut d = Distribution {
            port: net::free_port(),
            dir,
            service: None,
            starts: 0,
        };
        d.launch();
        d
    }

    /// The storage root directory (distribution's on-disk layout lives under `docker/registry/v2`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Kills it and waits until its port is closed; the data stays.
    pub fn stop(&mut self) {
        if let Some(mut service) = self.service.take() {
            service.kill();
        }
        net::wait_port_closed(self.port, Duration::from_secs(10));
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        assert!(
            self.service.is_none(),
            "restart() of a distribution that is still running"
        );
        self.launch();
    }

    /// Tells whether the manifest `digest` of `repo` is linked in the on-disk layout.
    pub fn has_manifest_revision(&self, repo: &str, digest: &str) -> bool {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.root()
            .join("docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/revisions/sha256")
            .join(hex)
            .join("link")
            .is_file()
    }

    fn launch(&mut self) {
        let bin = require_tool("docker-registry", "docker-registry");
        self.starts += 1;
        let config = self.dir.path().join("config.yml");
        fs::write(&config, config_yaml(&self.root(), self.port))
            .expect("writing the distribution config");
        let log = self
            .dir
            .path()
            .join(format!("distribution-{}.log", self.starts));
        let mut cmd = Command::new(bin);
        scrub_env(&mut cmd);
        cmd.arg("serve").arg(&config);
        let mut service = Service::spawn("distribution", cmd, &log);
        service.wait_ready(self.port, Duration::from_secs(30));
        self.service = Some(service);
    }
}

/// distribution's YAML config for storage under `root` and a listener on 127.0.0.1:`port`.
fn config_yaml(root: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: gatehouse-integration-tests\n",
        root = root.display()
    )
}

impl Distribution {
    /// Starts a fresh distribution like [`Distribution::start`], with its storage in a temp dir under
    /// `parent` (such as `/dev/shm`, for tests that create thousands of repositories).
    pub fn start_in(parent: &Path) -> Distribution {
        let dir = tempfile::Builder::new()
            .prefix("gh-distribution-")
            .tempdir_in(parent)
            .expect("temp dir");
        fs::create_dir_all(dir.path().join("root")).expect("creating the storage root");
        let mut d = Distribution {
            port: net::free_port(),
            dir,
            service: None,
            starts: 0,
        };
        d.launch();
        d
    }
}
