//! A small Chrome DevTools Protocol client for the UI tests: Debian's headless Chromium started with
//! `--remote-debugging-pipe` (commands in on fd 3, answers and events out on fd 4, each message a JSON text
//! ended by a NUL byte), one page target attached in flat mode. No request interception: the page talks
//! to gatehouse exactly as a user's browser does. Screenshots go to `target/ui-screenshots/`.

use base64::Engine;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long one protocol answer may take before the test gives up (a hang guard, not a timed assertion).
const ANSWER_BOUND: Duration = Duration::from_secs(60);
/// How long a page condition may take to come true before the test fails with a screenshot.
const WAIT_BOUND: Duration = Duration::from_secs(45);

/// Headless Chromium with one page.
pub struct Browser {
    child: Child,
    commands: File,
    answers: Receiver<Value>,
    next_id: u64,
    session: String,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fresh descriptors into the array, which become owned here.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Where screenshots go: `<target>/ui-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/ui-screenshots");
    dir
}

impl Browser {
    /// Starts Chromium (it must be installed: Debian's `chromium`, which `.ci/run` installs) with a fresh
    /// profile; `shots` names this test's screenshot subdirectory.
    pub fn start(shots: &str) -> Browser {
        let chromium = crate::util::process::require_tool("chromium", "chromium");
        let profile = crate::util::temp_dir("cdp-profile");
        let (to_chrome_r, to_chrome_w) = pipe();
        let (from_chrome_r, from_chrome_w) = pipe();
        let (cr, cw) = (to_chrome_r.into_raw_fd(), from_chrome_w.into_raw_fd());
        let mut cmd = Command::new(chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-pipe",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move both ends above 4 first, so dup2 onto 3 and 4 never clobbers the other one.
                let r = libc::fcntl(cr, libc::F_DUPFD, 10);
                let w = libc::fcntl(cw, libc::F_DUPFD, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting chromium");
        // SAFETY: the parent's copies of the child's ends, closed now that the child has its own.
        unsafe {
            drop(OwnedFd::from_raw_fd(cr));
            drop(OwnedFd::from_raw_fd(cw));
        }
        let (tx, answers) = mpsc::channel();
        let reader = File::from(from_chrome_r);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut buf = Vec::new();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        buf.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let shots_dir = screenshot_dir().join(shots);
        std::fs::create_dir_all(&shots_dir).expect("screenshot dir");
        let mut b = Browser {
            child,
            commands: File::from(to_chrome_w),
            answers,
            next_id: 0,
            session: String::new(),
            shots: shots_dir,
            _profile: profile,
        };
        let target = b.send(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"]
            .as_str()
            .expect("a target id")
            .to_string();
        let attached = b.send(
            None,
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        b.cmd("Page.enable", json!({}));
        b.cmd("Network.enable", json!({}));
        b.cmd(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|e| panic!("writing {method} to chromium: {e}"));
        let deadline = Instant::now() + ANSWER_BOUND;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .answers
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("chromium did not answer {method}: {e}"));
            if v["id"] == json!(id) {
                if let Some(err) = v.get("error") {
                    panic!("{method}: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    /// A command to the page's session.
    pub fn cmd(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params)
    }

    /// Loads `url` in the page.
    pub fn goto(&mut self, url: &str) {
        let r = self.cmd("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.cmd(
            "Runtime.evaluate",
            json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("evaluating {expr}: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `condition` (a JS expression) is truthy; fails with a screenshot and the page text.
    pub fn wait(&mut self, condition: &str, what: &str) {
        let deadline = Instant::now() + WAIT_BOUND;
        let probe = format!(
            "(() => {{ try {{ return !!({condition}); }} catch (_) {{ return false; }} }})()"
        );
        while Instant::now() < deadline {
            if self.eval(&probe) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.screenshot(&format!("failed-{}", what.replace(' ', "-")));
        let text = self.eval("document.body ? document.body.innerText : ''");
        panic!("waited for {what} ({condition}); the page says: {text}");
    }

    /// Sets an input's value as typing would (an `input` event follows).
    pub fn fill(&mut self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({s}); e.focus(); e.value = {v}; \
             e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()",
            s = serde_json::to_string(selector).unwrap(),
            v = serde_json::to_string(value).unwrap()
        );
        assert_eq!(self.eval(&js), json!(true), "fill {selector}");
    }

    /// Clicks the element `selector` names.
    pub fn click(&mut self, selector: &str) {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
            serde_json::to_string(selector).unwrap()
        );
        assert_eq!(self.eval(&js), json!(true), "click {selector}: not there");
    }

    /// Saves a PNG of the viewport as `<name>.png` under this test's screenshot directory.
    pub fn screenshot(&mut self, name: &str) {
        let r = self.cmd("Page.captureScreenshot", json!({"format": "png"}));
        if let Some(data) = r["data"].as_str() {
            let png = base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("screenshot base64");
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    /// The value of the cookie `name` the browser holds for `url`.
    pub fn cookie(&mut self, url: &str, name: &str) -> Option<Value> {
        let r = self.cmd("Network.getCookies", json!({"urls": [url]}));
        r["cookies"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == json!(name))
            .cloned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
