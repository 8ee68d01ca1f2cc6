//! Hot reload of the htpasswd file (issue 4), against a running gatehouse in front of a real distribution.
//!
//! For each way a file really gets replaced (in-place edit, write-to-temp + rename, a symlink retargeted
//! atomically, a Kubernetes secret's `..data` swap, delete then recreate): a new user is in within 1 s of the
//! write, a removed user (cached verification and all) is out within 1 s, a changed password is out within 1 s.
//! Once the file holds still, what it says is in force, zero users included: an emptied or comments-only
//! file, or one whose users all have unsupported hashes, locks everyone out, cached logins included. A
//! missing, unreadable, garbage or binary file keeps the last good set, and says so: `/readyz` answers 503
//! with the reason, `gatehouse_htpasswd_stale` is 1, a warning names the file. A file with bad lines loads
//! its good ones, warning by line number without echoing hashes. A race: 16 clients
//! hammer the door while the file is rewritten 50 times: never a 5xx or a dropped request, the user who is
//! always there always gets in, and the user removed at the end never gets in again 1 s later.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::frontdoor::{bcrypt_line, file_text, plain_client, within, Front, FrontConfig};
use crate::util::http::Http;
use crate::util::{temp_dir, Distribution};

/// How soon a change must be in force.
const LIMIT: Duration = Duration::from_secs(1);
/// How often the tests poll.
const EVERY: Duration = Duration::from_millis(50);

/// How a test replaces the htpasswd file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// Truncate and rewrite the same inode.
    InPlace,
    /// Write a temp file in the same directory and rename it over the path (vim, `sed -i`, `htpasswd`).
    TempRename,
    /// The path is a symlink; a new symlink to a new file is renamed over it.
    SymlinkSwap,
    /// Kubernetes secret volume: `htpasswd -> ..data/htpasswd`, `..data -> ..<version>`, `..data` swapped.
    K8sSecret,
    /// Remove the file, wait a moment, create it again.
    DeleteRecreate,
}

/// An htpasswd file the test owns, in its own directory, rewritten the way `how` says.
struct File {
    dir: TempDir,
    how: How,
    generation: u32,
}

impl File {
    fn create(how: How, lines: &[String]) -> File {
        let dir = temp_dir("reload");
        let mut f = File {
            dir,
            how,
            generation: 0,
        };
        match how {
            How::SymlinkSwap => {
                let target = f.versioned(&file_text(lines));
                symlink(&target, f.path()).expect("symlink htpasswd");
            }
            How::K8sSecret => {
                let version = f.versioned(&file_text(lines));
                let version_dir = version.parent().expect("version dir").to_path_buf();
                symlink(
                    version_dir.file_name().expect("name"),
                    f.dir().join("..data"),
                )
                .expect("symlink ..data");
                symlink("..data/htpasswd", f.path()).expect("symlink htpasswd");
            }
            _ => fs::write(f.path(), file_text(lines)).expect("writing htpasswd"),
        }
        f
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path gatehouse is configured with.
    fn path(&self) -> PathBuf {
        self.dir().join("htpasswd")
    }

    /// Writes `text` as `..<generation>/htpasswd` and returns that file's path.
    fn versioned(&mut self, text: &str) -> PathBuf {
        self.generation += 1;
        let dir = self.dir().join(format!("..v{}", self.generation));
        fs::create_dir(&dir).expect("version dir");
        let file = dir.join("htpasswd");
        fs::write(&file, text).expect("writing a version");
        file
    }

    /// Replaces the content with `lines`.
    fn write(&mut self, lines: &[String]) {
        self.write_raw(file_text(lines).as_bytes());
    }

    /// Replaces the content with `bytes`, the way `self.how` says.
    fn write_raw(&mut self, bytes: &[u8]) {
        let path = self.path();
        match self.how {
            How::InPlace => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
                    .expect("opening htpasswd in place");
                f.write_all(bytes).expect("writing htpasswd in place");
            }
            How::TempRename => {
                let tmp = self.dir().join(".htpasswd.tmp");
                fs::write(&tmp, bytes).expect("writing the temp file");
                fs::rename(&tmp, &path).expect("renaming over htpasswd");
            }
            How::SymlinkSwap => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                let target = self.versioned(&text);
                fs::write(&target, bytes).expect("writing the new target");
                let link = self.dir().join("htpasswd.new-link");
                symlink(&target, &link).expect("new symlink");
                fs::rename(&link, &path).expect("renaming the symlink over htpasswd");
            }
            How::K8sSecret => {
                let old = fs::read_link(self.dir().join("..data")).expect("..data link");
                let target = self.versioned("");
                fs::write(&target, bytes).expect("writing the new version");
                let version = target.parent().expect("version dir").to_path_buf();
                let tmp = self.dir().join("..data_tmp");
                symlink(version.file_name().expect("name"), &tmp).expect("..data_tmp");
                fs::rename(&tmp, self.dir().join("..data")).expect("swapping ..data");
                fs::remove_dir_all(self.dir().join(old)).expect("removing the old version");
            }
            How::DeleteRecreate => {
                fs::remove_file(&path).expect("deleting htpasswd");
                sleep(Duration::from_millis(300));
                fs::write(&path, bytes).expect("recreating htpasswd");
            }
        }
    }
}

/// The status of `GET /v2/` as `user:pass`.
fn status(http: &Http, user: &str, pass: &str) -> u16 {
    http.req("GET", "/v2/").creds(user, pass).send().status
}

/// Asserts `GET /v2/` as `user:pass` answers `want`.
fn expect_status(http: &Http, user: &str, pass: &str, want: u16, when: &str) {
    let got = status(http, user, pass);
    assert_eq!(got, want, "{user}:{pass} {when}: got {got}, want {want}");
}

/// The whole reload scenario for one way of writing the file.
fn new_removed_and_changed_users_take_effect_within_1s(how: How) {
    let dist = Distribution::start();
    let keep = bcrypt_line("keep", "keep-pw", 4);
    let old = bcrypt_line("old", "old-pw", 4);
    let new = bcrypt_line("new", "new-pw", 4);
    let mut file = File::create(how, &[keep.clone(), old.clone()]);
    let front = Front::start(&FrontConfig::new(&dist.url(), &file.path()).no_guard());
    let http = Http::new(&front.url());
    for _ in 0..2 {
        expect_status(&http, "keep", "keep-pw", 200, "at start");
        expect_status(&http, "old", "old-pw", 200, "at start");
    }
    expect_status(&http, "new", "new-pw", 401, "before it is added");

    // A new user is in within 1 s.
    file.write(&[keep.clone(), old.clone(), new.clone()]);
    let written = Instant::now();
    let took = within(written, LIMIT, EVERY, "the added user is accepted", || {
        status(&http, "new", "new-pw") == 200
    });
    eprintln!("{how:?}: added user in after {took:?}");
    expect_status(&http, "keep", "keep-pw", 200, "after an add");
    expect_status(&http, "old", "old-pw", 200, "after an add");

    // A removed user is out within 1 s, although its verification is cached.
    file.write(&[keep.clone(), new.clone()]);
    let written = Instant::now();
    let took = within(written, LIMIT, EVERY, "the removed user is refused", || {
        status(&http, "old", "old-pw") == 401
    });
    eprintln!("{how:?}: removed user out after {took:?}");
    for _ in 0..5 {
        expect_status(&http, "old", "old-pw", 401, "once its removal is in force");
        expect_status(&http, "keep", "keep-pw", 200, "after a removal");
        expect_status(&http, "new", "new-pw", 200, "after a removal");
    }

    // A changed password: the old one is out within 1 s, the new one works.
    file.write(&[bcrypt_line("keep", "keep-pw-2", 4), new.clone()]);
    let written = Instant::now();
    let took = within(written, LIMIT, EVERY, "the old password is refused", || {
        status(&http, "keep", "keep-pw") == 401
    });
    eprintln!("{how:?}: changed password in force after {took:?}");
    expect_status(&http, "keep", "keep-pw-2", 200, "with its new password");
    expect_status(&http, "keep", "keep-pw", 401, "with its old password");
}

#[test]
fn reload_in_place_edit() {
    new_removed_and_changed_users_take_effect_within_1s(How::InPlace);
}

#[test]
fn reload_write_temp_then_rename() {
    new_removed_and_changed_users_take_effect_within_1s(How::TempRename);
}

#[test]
fn reload_symlink_swap() {
    new_removed_and_changed_users_take_effect_within_1s(How::SymlinkSwap);
}

#[test]
fn reload_kubernetes_secret_data_swap() {
    new_removed_and_changed_users_take_effect_within_1s(How::K8sSecret);
}

#[test]
fn reload_delete_then_recreate() {
    new_removed_and_changed_users_take_effect_within_1s(How::DeleteRecreate);
}

/// `GET /readyz` on the metrics listener: status and body.
fn readyz(front: &Front) -> (u16, String) {
    let resp = plain_client(None)
        .get(format!("{}/readyz", front.metrics_url()))
        .send()
        .expect("GET /readyz");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

/// Waits until `/readyz` is not ready, then checks its body names the file and `reason`, and that the
/// stale gauge is 1.
fn expect_stale(front: &Front, file: &Path, since: Instant, reason: &str) {
    within(
        since,
        LIMIT,
        EVERY,
        &format!("/readyz is 503 ({reason})"),
        || readyz(front).0 == 503,
    );
    let (_, body) = readyz(front);
    assert!(
        body.contains(&file.display().to_string()) && body.contains(reason),
        "/readyz should name {} and {reason:?}: {body:?}",
        file.display()
    );
    assert!(
        body.contains("keeping the last good set"),
        "/readyz: {body:?}"
    );
    assert_eq!(front.samples().sum("gatehouse_htpasswd_stale", &[]), 1.0);
}

/// Waits until `/readyz` is ready again and the stale gauge is 0.
fn expect_fresh(front: &Front, since: Instant, when: &str) {
    within(
        since,
        LIMIT,
        EVERY,
        &format!("/readyz is 200 {when}"),
        || readyz(front).0 == 200,
    );
    assert_eq!(
        front.samples().sum("gatehouse_htpasswd_stale", &[]),
        0.0,
        "{when}"
    );
}

#[test]
fn reload_deleted_file_keeps_the_last_good_set_until_it_comes_back() {
    let dist = Distribution::start();
    let keep = bcrypt_line("keep", "keep-pw", 4);
    let fresh = bcrypt_line("fresh", "fresh-pw", 4);
    let mut file = File::create(How::TempRename, &[keep.clone(), fresh.clone()]);
    let front = Front::start(&FrontConfig::new(&dist.url(), &file.path()).no_guard());
    let http = Http::new(&front.url());
    expect_status(&http, "keep", "keep-pw", 200, "at start");
    assert_eq!(readyz(&front).0, 200, "ready at start");
    fs::remove_file(file.path()).expect("deleting htpasswd");
    let deleted = Instant::now();
    expect_stale(&front, &file.path(), deleted, "missing");
    while deleted.elapsed() < Duration::from_millis(1500) {
        expect_status(&http, "keep", "keep-pw", 200, "while the file is missing");
        sleep(Duration::from_millis(100));
    }
    // Never verified before, so only the kept credential set (not the cache) can let it in.
    expect_status(&http, "fresh", "fresh-pw", 200, "while the file is missing");
    file.write(&[keep]);
    let back = Instant::now();
    expect_fresh(&front, back, "once the file is back");
    within(
        back,
        LIMIT,
        EVERY,
        "the user left out of the new file is refused",
        || status(&http, "fresh", "fresh-pw") == 401,
    );
}

#[test]
fn reload_garbage_binary_or_unreadable_file_keeps_the_last_good_set_and_readyz_says_why() {
    let dist = Distribution::start();
    let keep = bcrypt_line("keep", "keep-pw", 4);
    // One never-verified user per bad write: each proves the credential set, not the cache, was kept.
    let probes: Vec<(String, String)> = (0..3)
        .map(|i| (format!("probe{i}"), format!("probe-pw-{i}")))
        .collect();
    let mut lines = vec![keep.clone()];
    lines.extend(probes.iter().map(|(u, p)| bcrypt_line(u, p, 4)));
    let mut file = File::create(How::TempRename, &lines);
    let front = Front::start(&FrontConfig::new(&dist.url(), &file.path()).no_guard());
    let http = Http::new(&front.url());
    expect_status(&http, "keep", "keep-pw", 200, "at start");
    assert_eq!(readyz(&front).0, 200, "ready at start");
    let failed_before = front
        .samples()
        .sum("gatehouse_htpasswd_reloads_total", &[("result", "failed")]);

    // (what, content; None: a directory where the file was, which cannot be read)
    let bad: [(&str, Option<&[u8]>, &str); 3] = [
        (
            "garbage text",
            Some(b"this is not an htpasswd file\nnor is this\n"),
            "garbage",
        ),
        (
            "binary",
            Some(b"\x00\x01\xff\xfe\x80 garbage \xc3\x28\n"),
            "garbage",
        ),
        ("unreadable", None, "unreadable"),
    ];
    for (i, (what, bytes, reason)) in bad.iter().enumerate() {
        let failed_now = front
            .samples()
            .sum("gatehouse_htpasswd_reloads_total", &[("result", "failed")]);
        match bytes {
            Some(bytes) => file.write_raw(bytes),
            None => {
                fs::remove_file(file.path()).expect("removing htpasswd");
                fs::create_dir(file.path()).expect("a directory in its place");
            }
        }
        let written = Instant::now();
        within(
            written,
            LIMIT,
            EVERY,
            &format!("a failed reload counted after the {what} write"),
            || {
                front
                    .samples()
                    .sum("gatehouse_htpasswd_reloads_total", &[("result", "failed")])
                    > failed_now
            },
        );
        expect_stale(&front, &file.path(), written, reason);
        while written.elapsed() < Duration::from_secs(2) {
            expect_status(
                &http,
                "keep",
                "keep-pw",
                200,
                &format!("after a {what} file"),
            );
            sleep(Duration::from_millis(100));
        }
        let (user, pass) = &probes[i];
        expect_status(&http, user, pass, 200, &format!("2 s after a {what} file"));
        let users = front.samples().sum("gatehouse_htpasswd_users", &[]);
        assert_eq!(users, 4.0, "users loaded after a {what} file");
        if bytes.is_none() {
            fs::remove_dir(file.path()).expect("removing the directory");
            fs::write(file.path(), file_text(&lines)).expect("restoring htpasswd");
            expect_fresh(&front, Instant::now(), "once the file is readable again");
        }
    }
    let failed_after = front
        .samples()
        .sum("gatehouse_htpasswd_reloads_total", &[("result", "failed")]);
    assert!(
        failed_after >= failed_before + bad.len() as f64,
        "failed reloads went from {failed_before} to {failed_after}"
    );
    // The log says so, naming the file.
    let log = front.log_text();
    let path = file.path().display().to_string();
    let warned = log
        .lines()
        .filter(|l| l.contains("\"WARN\"") && l.contains(&path) && l.contains("last good set"))
        .count();
    assert!(
        warned >= bad.len(),
        "expected a warning naming {path} per bad write; log:\n{log}"
    );
    // A good file again: in force, and ready.
    file.write(&[keep]);
    let fixed = Instant::now();
    expect_fresh(&front, fixed, "after a good write");
    within(
        fixed,
        LIMIT,
        EVERY,
        "a probe left out of the good file is refused",
        || status(&http, "probe0", "probe-pw-0") == 401,
    );
}

/// Issue 9 finding 7: a file that parses and names zero users kept every old user logged in. Now an
/// emptied file, a comments-only file and a file whose users all have unsupported hashes are in force once
/// they hold still: everyone is out within 1 s, cached logins included, and the door stays ready (a
/// deliberate lock-out is not a fault).
#[test]
fn reload_emptied_comment_only_or_unsupported_only_file_locks_everyone_out_cached_logins_included()
{
    let dist = Distribution::start();
    let keep = bcrypt_line("keep", "keep-pw", 4);
    let mut file = File::create(How::InPlace, std::slice::from_ref(&keep));
    let front = Front::start(&FrontConfig::new(&dist.url(), &file.path()).no_guard());
    let http = Http::new(&front.url());
    let lockouts: [(&str, &[u8]); 3] = [
        ("empty", b""),
        (
            "comments only",
            b"# nobody may log in today\n\n# see the ticket\n",
        ),
        (
            "only unsupported hashes",
            b"md5:$apr1$abcdefgh$0123456789abcdefghijk\nsha:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n",
        ),
    ];
    for (what, bytes) in lockouts {
        file.write(std::slice::from_ref(&keep));
        let restored = Instant::now();
        within(restored, LIMIT, EVERY, "keep is in again", || {
            status(&http, "keep", "keep-pw") == 200
        });
        // Now cached: the second login needs no bcrypt.
        expect_status(&http, "keep", "keep-pw", 200, "cached, before the lock-out");
        file.write_raw(bytes);
        let written = Instant::now();
        let took = within(
            written,
            LIMIT,
            EVERY,
            &format!("the cached user is refused after the {what} write"),
            || status(&http, "keep", "keep-pw") == 401,
        );
        eprintln!("{what}: locked out after {took:?}");
        assert_eq!(
            front.samples().sum("gatehouse_htpasswd_users", &[]),
            0.0,
            "{what}"
        );
        let (ready, body) = readyz(&front);
        assert_eq!(
            ready, 200,
            "a deliberate lock-out is ready ({what}): {body}"
        );
        assert_eq!(
            front.samples().sum("gatehouse_htpasswd_stale", &[]),
            0.0,
            "{what}"
        );
        sleep(Duration::from_millis(300));
        expect_status(
            &http,
            "keep",
            "keep-pw",
            401,
            &format!("still, after the {what} write"),
        );
    }
}

#[test]
fn reload_bad_lines_are_skipped_and_good_ones_load() {
    let dist = Distribution::start();
    let keep = bcrypt_line("keep", "keep-pw", 4);
    let mut file = File::create(How::InPlace, std::slice::from_ref(&keep));
    let front = Front::start(&FrontConfig::new(&dist.url(), &file.path()).no_guard());
    let http = Http::new(&front.url());
    expect_status(&http, "keep", "keep-pw", 200, "at start");
    let apr1 = "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/";
    file.write(&[
        "not a line at all".to_string(),
        format!("md5user:{apr1}"),
        bcrypt_line("good", "good-pw", 4),
    ]);
    let written = Instant::now();
    let took = within(
        written,
        LIMIT,
        EVERY,
        "the good line's user is accepted",
        || status(&http, "good", "good-pw") == 200,
    );
    eprintln!("good line in after {took:?}");
    within(
        written,
        LIMIT,
        EVERY,
        "the user no longer in the file is refused",
        || status(&http, "keep", "keep-pw") == 401,
    );
    expect_status(
        &http,
        "md5user",
        "anything",
        401,
        "with an unsupported hash",
    );
    assert_eq!(front.samples().sum("gatehouse_htpasswd_users", &[]), 1.0);
    let log = front.log_text();
    for n in ["line 1", "line 2"] {
        assert!(
            log.lines().any(|l| l.contains("\"WARN\"") && l.contains(n)),
            "no warning naming {n}; log:\n{log}"
        );
    }
    assert!(!log.contains(apr1), "the log echoes a hash:\n{log}");
    assert!(
        !log.contains(&keep[5..]),
        "the log echoes a bcrypt hash:\n{log}"
    );
}

/// One request of the race: who, when it started (after the test's start), what came back.
struct Shot {
    user: usize,
    started: Duration,
    result: Result<u16, String>,
}

#[test]
fn reload_race_16_clients_50_rewrites_no_5xx_and_removed_user_stays_out() {
    const USERS: [(&str, &str); 4] = [
        ("stay", "stay-pw"),
        ("a", "a-pw"),
        ("b", "b-pw"),
        ("gone", "gone-pw"),
    ];
    const REWRITES: usize = 50;
    let dist = Distribution::start();
    // stay's hash changes on every rewrite (same password), so its cached verification keeps being
    // invalidated; `a` and `b` take turns; `gone` is in every version but the last.
    let version = |k: usize| -> Vec<String> {
        let mut lines = vec![bcrypt_line("stay", "stay-pw", 4)];
        lines.push(if k % 2 == 0 {
            bcrypt_line("a", "a-pw", 4)
        } else {
            bcrypt_line("b", "b-pw", 4)
        });
        if k + 1 < REWRITES {
            lines.push(bcrypt_line("gone", "gone-pw", 4));
        }
        lines
    };
    let versions: Vec<Vec<String>> = (0..REWRITES).map(version).collect();
    let mut initial = version(0);
    initial.push(bcrypt_line("b", "b-pw", 4));
    let dir = temp_dir("race");
    let path = dir.path().join("htpasswd");
    fs::write(&path, file_text(&initial)).expect("writing htpasswd");
    let front = Front::start(&FrontConfig::new(&dist.url(), &path).no_guard());
    let base = front.url();

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let shots: Arc<Mutex<Vec<Shot>>> = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..16)
        .map(|i| {
            let stop = stop.clone();
            let shots = shots.clone();
            let base = base.clone();
            std::thread::spawn(move || {
                let client = plain_client(None);
                let mut mine = Vec::new();
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    let user = n % USERS.len();
                    n += 1;
                    let (u, p) = USERS[user];
                    let started = t0.elapsed();
                    let result = client
                        .get(format!("{base}/v2/"))
                        .basic_auth(u, Some(p))
                        .send()
                        .and_then(|r| {
                            let status = r.status().as_u16();
                            r.bytes().map(|_| status)
                        })
                        .map_err(|e| format!("{e:?}"));
                    mine.push(Shot {
                        user,
                        started,
                        result,
                    });
                }
                shots.lock().expect("shots").extend(mine);
            })
        })
        .collect();

    sleep(Duration::from_millis(300));
    let mut last_write = Duration::ZERO;
    for (k, lines) in versions.iter().enumerate() {
        let text = file_text(lines);
        if k % 2 == 0 {
            let tmp = dir.path().join(".htpasswd.tmp");
            fs::write(&tmp, &text).expect("writing the temp file");
            fs::rename(&tmp, &path).expect("renaming over htpasswd");
        } else {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .expect("opening htpasswd");
            f.write_all(text.as_bytes()).expect("writing htpasswd");
        }
        last_write = t0.elapsed();
        sleep(Duration::from_millis(20));
    }
    sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client thread panicked");
    }
    let shots = shots.lock().expect("shots");

    let total = shots.len();
    let errors: Vec<String> = shots
        .iter()
        .filter_map(|s| s.result.as_ref().err().cloned())
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {total} requests got no reply, first: {}",
        errors.len(),
        errors[0]
    );
    let odd: Vec<(usize, u16)> = shots
        .iter()
        .filter_map(|s| match s.result {
            Ok(200) | Ok(401) => None,
            Ok(code) => Some((s.user, code)),
            Err(_) => None,
        })
        .collect();
    assert!(
        odd.is_empty(),
        "statuses other than 200/401 (user index, status): {odd:?}"
    );
    let stay_refused = shots
        .iter()
        .filter(|s| s.user == 0 && s.result != Ok(200))
        .count();
    assert_eq!(
        stay_refused, 0,
        "the user present in every version was refused {stay_refused} times"
    );
    let in_force = last_write + LIMIT;
    let late: Vec<&Shot> = shots.iter().filter(|s| s.started > in_force).collect();
    let late_for = |user: usize| late.iter().filter(move |s| s.user == user);
    assert!(
        late_for(3).count() >= 8,
        "too few requests for `gone` after its removal was due: {}",
        late_for(3).count()
    );
    let gone_in = late_for(3).filter(|s| s.result == Ok(200)).count();
    assert_eq!(
        gone_in, 0,
        "`gone` got in {gone_in} times more than 1 s after its removal"
    );
    // The last version has `b` (49 is odd) and not `a`.
    assert!(late_for(1).all(|s| s.result == Ok(401)), "`a` is not out");
    assert!(late_for(2).all(|s| s.result == Ok(200)), "`b` is not in");
    eprintln!(
        "race: {total} requests, {} after the removal was due",
        late.len()
    );
}

/// The flake this pins: an in-place rewrite whose writer stalls between its truncate and its write (a busy
/// machine, a slow editor) showed the watcher an empty file that held still for the settle time, and an empty
/// file is a deliberate lock-out: the always-present user was refused. An empty file now has to stay empty
/// for `EMPTY_SETTLE` (300 ms) before it is in force; this writer stalls 100 ms, five times, while a client
/// keeps logging in.
#[test]
fn reload_a_stalled_in_place_rewrite_never_locks_the_remaining_user_out() {
    let dist = Distribution::start();
    let keep = bcrypt_line("keep", "keep-pw", 4);
    let file = File::create(How::InPlace, std::slice::from_ref(&keep));
    let front = Front::start(&FrontConfig::new(&dist.url(), &file.path()).no_guard());
    let http = Http::new(&front.url());
    expect_status(&http, "keep", "keep-pw", 200, "before the rewrites");
    let done = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let client = {
        let (done, refused, url) = (done.clone(), refused.clone(), front.url());
        std::thread::spawn(move || {
            let http = Http::new(&url);
            while !done.load(Ordering::Relaxed) {
                let s = status(&http, "keep", "keep-pw");
                if s != 200 {
                    refused.lock().unwrap().push(s);
                }
                sleep(Duration::from_millis(10));
            }
        })
    };
    for _ in 0..5 {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(file.path())
            .expect("opening htpasswd in place");
        sleep(Duration::from_millis(100));
        f.write_all(file_text(std::slice::from_ref(&keep)).as_bytes())
            .expect("writing htpasswd in place");
        drop(f);
        sleep(Duration::from_millis(400));
    }
    done.store(true, Ordering::Relaxed);
    client.join().unwrap();
    assert_eq!(
        *refused.lock().unwrap(),
        Vec::<u16>::new(),
        "keep was refused during a stalled rewrite"
    );
}
