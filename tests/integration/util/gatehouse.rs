//! The real gatehouse binary (`CARGO_BIN_EXE_gatehouse`), started as `gatehouse serve --config FILE` with a
//! given environment on a free loopback port, and a builder for the TOML config the tests give it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use super::net;
use super::process::{scrub_env, vm_hwm_kib, Service};

/// The path of the gatehouse binary that cargo built for this test run.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_gatehouse")
}

/// A TOML string literal for `s`.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a JSON string is a TOML basic string")
}

/// What a test wants from gatehouse, written out as its TOML config file by [`GatehouseConfig::to_toml`].
#[derive(Clone, Debug)]
pub struct GatehouseConfig {
    /// The loopback port to listen on.
    pub port: u16,
    /// The upstream registry's URL (`[upstream] url`).
    pub upstream: Option<String>,
    /// htpasswd auth: the realm and the htpasswd file; `None` means `mode = "none"`.
    pub htpasswd: Option<(String, PathBuf)>,
    /// Allowed CORS origins; no `[cors]` table when empty.
    pub origins: Vec<String>,
    /// Extra response headers (`[headers]`).
    pub headers: Vec<(String, Vec<String>)>,
    /// htpasswd lines that [`Gatehouse::start`] writes to a file in gatehouse's temp dir.
    pub user_lines: Vec<String>,
}

impl GatehouseConfig {
    /// A config for a gatehouse on a free port that fronts `upstream_url`, without auth or CORS.
    pub fn fronting(upstream_url: &str) -> GatehouseConfig {
        GatehouseConfig {
            port: net::free_port(),
            upstream: Some(upstream_url.to_string()),
            htpasswd: None,
            origins: Vec::new(),
            headers: Vec::new(),
            user_lines: Vec::new(),
        }
    }

    /// Turns on htpasswd auth with `realm` and the file at `path`.
    pub fn htpasswd(mut self, realm: &str, path: &Path) -> GatehouseConfig {
        self.htpasswd = Some((realm.to_string(), path.to_path_buf()));
        self
    }

    /// Turns on htpasswd auth with `realm` and a file of `lines` that gatehouse's start writes.
    pub fn users(mut self, realm: &str, lines: &[String]) -> GatehouseConfig {
        self.htpasswd = Some((realm.to_string(), PathBuf::new()));
        self.user_lines = lines.to_vec();
        self
    }

    /// Allows CORS requests from `origin` (with the seed's methods, headers and exposed headers).
    pub fn origin(mut self, origin: &str) -> GatehouseConfig {
        self.origins.push(origin.to_string());
        self
    }

    /// Adds an extra response header.
    pub fn header(mut self, name: &str, values: &[&str]) -> GatehouseConfig {
        self.headers.push((
            name.to_string(),
            values.iter().map(|v| v.to_string()).collect(),
        ));
        self
    }

    /// The config file's text; storage (unused while fronting an upstream) goes under `data_dir`.
    pub fn to_toml(&self, data_dir: &Path) -> String {
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|s| toml_str(s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = String::new();
        t += &format!(
            "[server]\nlisten = {}\nthreads = 2\n\n",
            toml_str(&format!("127.0.0.1:{}", self.port))
        );
        match &self.htpasswd {
            Some((realm, path)) => {
                t += &format!(
                    "[auth]\nmode = \"htpasswd\"\nrealm = {}\nhtpasswd = {}\n\n",
                    toml_str(realm),
                    toml_str(&path.display().to_string())
                );
            }
            None => t += "[auth]\nmode = \"none\"\n\n",
        }
        if !self.origins.is_empty() {
            let origins: Vec<&str> = self.origins.iter().map(String::as_str).collect();
            t += &format!(
                "[cors]\nallow_origins = [{}]\nallow_methods = [{}]\nallow_headers = [{}]\n\
                 expose_headers = [{}]\nallow_credentials = true\nmax_age_seconds = 600\n\n",
                list(&origins),
                list(&["HEAD", "GET", "OPTIONS", "DELETE"]),
                list(&["Authorization", "Accept", "Cache-Control"]),
                list(&["Docker-Content-Digest"]),
            );
        }
        if !self.headers.is_empty() {
            t += "[headers]\n";
            for (name, values) in &self.headers {
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                t += &format!("{} = [{}]\n", toml_str(name), list(&values));
            }
            t += "\n";
        }
        t += &format!(
            "[storage]\nroot = {}\ndelete_enabled = true\n\n",
            toml_str(&data_dir.display().to_string())
        );
        if let Some(url) = &self.upstream {
            t += &format!("[upstream]\nurl = {}\n", toml_str(url));
        }
        t
    }
}

/// A running gatehouse owned by one test; killed on drop.
pub struct Gatehouse {
    /// The loopback port it listens on.
    pub port: u16,
    /// The loopback port of its metrics and health listener.
    pub metrics_port: u16,
    // Fields drop in order: the service (which prints its log tail on a failed test) before its temp dir.
    service: Service,
    dir: TempDir,
}

impl Gatehouse {
    /// Starts gatehouse with the config file written from `config` and no extra environment.
    pub fn start(config: &GatehouseConfig) -> Gatehouse {
        let dir = tempfile::Builder::new()
            .prefix("gh-gatehouse-")
            .tempdir()
            .expect("temp dir");
        let mut config = config.clone();
        if !config.user_lines.is_empty() {
            let path = dir.path().join("htpasswd");
            super::htpasswd::write(&path, &config.user_lines);
            if let Some((_, file)) = config.htpasswd.as_mut() {
                *file = path;
            }
        }
        let text = config.to_toml(&dir.path().join("data"));
        Gatehouse::launch(dir, config.port, &text, &[])
    }

    /// Starts gatehouse with `config_text` as its config file and `env` on top of the scrubbed environment;
    /// `port` is where the config or env makes it listen.
    pub fn start_with(port: u16, config_text: &str, env: &[(&str, &str)]) -> Gatehouse {
        let dir = tempfile::Builder::new()
            .prefix("gh-gatehouse-")
            .tempdir()
            .expect("temp dir");
        Gatehouse::launch(dir, port, config_text, env)
    }

    fn launch(dir: TempDir, port: u16, config_text: &str, env: &[(&str, &str)]) -> Gatehouse {
        let config = dir.path().join("gatehouse.toml");
        fs::write(&config, config_text).expect("writing gatehouse.toml");
        let mut cmd = Command::new(bin());
        scrub_env(&mut cmd);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path());
        // gatehouse's metrics listener has a fixed default port: give each instance its own.
        let metrics_port = net::free_port();
        cmd.env(
            "GATEHOUSE_METRICS_ADDR",
            format!("127.0.0.1:{metrics_port}"),
        );
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut service = Service::spawn("gatehouse", cmd, &dir.path().join("gatehouse.log"));
        service.wait_ready(port, Duration::from_secs(30));
        Gatehouse {
            port,
            metrics_port,
            dir,
            service,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.service.pid()
    }

    /// Peak resident set size so far, in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        vm_hwm_kib(self.pid())
    }

    /// Tells whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.service.is_running()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        self.service.log_tail()
    }

    /// Its temp dir (config file, log, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its config file (rewrite it, then [`Gatehouse::signal`] SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gatehouse.toml")
    }

    /// Sends the process `signal`.
    pub fn signal(&self, signal: i32) {
        self.service.signal(signal)
    }

    /// Waits up to `timeout` for the process to exit; `None` when it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.service.wait_exit(timeout)
    }

    /// Its whole log so far.
    pub fn log_text(&self) -> String {
        self.service.log_text()
    }
}
