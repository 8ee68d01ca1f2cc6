//! Child processes owned by a test: spawned with their output in a log file, waited on until their port
//! accepts, killed (SIGKILL) and reaped on drop, with the log's tail printed when the test is failing.
//! Also: finding required tools on PATH (a missing tool fails the test) and reading a process's VmHWM.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::net;

/// Returns the path of `tool` found on PATH (or in /usr/bin, /usr/sbin); panics, naming the Debian package,
/// when it is not installed.
pub fn require_tool(tool: &str, debian_package: &str) -> PathBuf {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path_var).collect();
    dirs.push(PathBuf::from("/usr/bin"));
    dirs.push(PathBuf::from("/usr/sbin"));
    for dir in dirs {
        let candidate = dir.join(tool);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required tool `{tool}` is not installed (Debian package `{debian_package}`: apt-get install {debian_package})"
    );
}

/// Removes the registry-related variables of the test's own environment from `cmd`, so that neither
/// distribution nor gatehouse picks up settings the test did not give it.
pub fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("REGISTRY_") || key.starts_with("GATEHOUSE_") {
            cmd.env_remove(key);
        }
    }
}

/// A running child process that is killed when dropped.
pub struct Service {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Service {
        let out =
            File::create(log).unwrap_or_else(|e| panic!("creating log {}: {e}", log.display()));
        let err = out.try_clone().expect("cloning the log file handle");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({cmd:?}): {e}"));
        Service {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until 127.0.0.1:`port` accepts; panics with the log's tail if the child exits or time runs out.
    pub fn wait_ready(&mut self, port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on a child") {
                panic!(
                    "{} exited ({status}) before listening on port {port}; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if net::port_accepts(port) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not listen on port {port} within {timeout:?}; log:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Tells whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of the child's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        lines[start..].join("\n")
    }

    /// Sends the child `signal` (such as `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.child.id());
    }

    /// Waits up to `timeout` for the child to exit; `None` when it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait on a child") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// The whole log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the child (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- last lines of {} ({}) ----\n{}\n----",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
    }
}

/// Reads `VmHWM` (peak resident set size) of process `pid` from /proc, in KiB.
pub fn vm_hwm_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or_else(|| panic!("no VmHWM line in /proc/{pid}/status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unparsable VmHWM line {line:?}"))
}
