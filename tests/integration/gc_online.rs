//! Online garbage collection (issue 11) with the real binary: GC every second with zero grace while skopeo
//! pushes distinct images (single and multi-arch) and deletes the previous round's, for a bounded number of
//! rounds; afterwards every remaining tag is pullable with `--all`, `gatehouse fsck` finds nothing and the
//! blob store shrank. And a kill -9 in the middle of a run (blobs in quarantine) leaves a store fsck finds
//! clean, and the next run finishes.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::util::embedded::{check_blob_store, check_tags, sha256_of, v2_dir, walk_files};
use crate::util::frontdoor::toml_str;
use crate::util::gatehouse::{bin, Gatehouse};
use crate::util::http::{Http, Reply};
use crate::util::process::scrub_env;
use crate::util::{net, oci, skopeo, temp_dir};

const ROUNDS: usize = 3;
const PUSHERS: usize = 2;

/// A gatehouse on `root` (no auth, deletes on) with GC every `interval` (None: off) and zero grace.
fn start(root: &Path, interval: Option<&str>) -> Gatehouse {
    start_env(root, interval, &[])
}

/// [`start`] with more environment.
fn start_env(root: &Path, interval: Option<&str>, extra: &[(&str, &str)]) -> Gatehouse {
    let port = net::free_port();
    let text = format!(
        "[server]\nlisten = {}\nthreads = 2\n[auth]\nmode = \"none\"\n[storage]\nroot = {}\n\
         delete_enabled = true\n[guard]\nenabled = false\n",
        toml_str(&format!("127.0.0.1:{port}")),
        toml_str(&root.display().to_string()),
    );
    let mut env = vec![("GATEHOUSE_GC_GRACE", "0")];
    if let Some(i) = interval {
        env.push(("GATEHOUSE_GC_INTERVAL", i));
    }
    env.extend_from_slice(extra);
    Gatehouse::start_with(port, &text, &env)
}

/// `POST /gc` on the admin listener until it is not busy (another run holds the lock).
fn run_gc(gh: &Gatehouse) -> Reply {
    let admin = Http::new(&format!("http://127.0.0.1:{}", gh.metrics_port));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = admin.req("POST", "/gc").send();
        if r.status != 409 || Instant::now() > deadline {
            return r;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The value of an unlabelled metric.
fn metric(gh: &Gatehouse, name: &str) -> f64 {
    let admin = Http::new(&format!("http://127.0.0.1:{}", gh.metrics_port));
    let r = admin.req("GET", "/metrics").send();
    r.expect(200);
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

fn blob_bytes(root: &Path) -> u64 {
    // Blobs a background run holds in quarantine are on the disk too (a run that puts them back must not look
    // like one that grew the store: one CI run measured a run in progress, then its put-back, that way).
    let quarantine = root.join(".gatehouse-gc/quarantine");
    let mut files = walk_files(&v2_dir(root).join("blobs"));
    if quarantine.exists() {
        files.extend(walk_files(&quarantine));
    }
    files
        .iter()
        .map(|p| fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// `gatehouse fsck` on `root`; panics unless it finds nothing.
fn fsck_clean(root: &Path) {
    let dir = temp_dir("gc-online-fsck");
    let config = dir.path().join("gatehouse.toml");
    fs::write(
        &config,
        format!(
            "[auth]\nmode = \"none\"\n[storage]\nroot = {}\n",
            toml_str(&root.display().to_string())
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    let out = cmd
        .arg("fsck")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("; 0 problems"),
        "fsck: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pulls every one of `tags` with all its platforms (`skopeo copy --all`) into a layout under `out`; a tag
/// that does not pull fails the test.
fn pull_all(out: &std::path::Path, tags: &[String]) {
    fs::create_dir_all(out).unwrap();
    for (i, tag) in tags.iter().enumerate() {
        skopeo::copy(
            &format!("docker://{tag}"),
            &format!("oci:{}:x", out.join(i.to_string()).display()),
            None,
            None,
            true,
        );
    }
}

/// Pushes round `round`'s image to `dest` (`host/repo:tag`) with skopeo: a multi-arch index on even rounds,
/// a single image on odd ones. With zero grace a blob (or an index's child) may be collected between its put
/// and the manifest's, which then fails (never a 201 that references something gone): skopeo is run up to
/// three times. Whether one run succeeded.
fn push_round(dir: &std::path::Path, round: usize, label: &str, dest: &str) -> bool {
    let at = dir.join(round.to_string());
    let (layout, all) = if round % 2 == 0 {
        (oci::multiarch_image(&at, "t", label).0, true)
    } else {
        (oci::small_image(&at, "t", label).0, false)
    };
    let args = skopeo::copy_args(
        &format!("oci:{}:t", layout.dir().display()),
        &format!("docker://{dest}"),
        None,
        None,
        all,
    );
    (0..3).any(|_| {
        skopeo::run(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .status
            .success()
    })
}

#[test]
fn gc_every_second_under_pushes_and_deletes_keeps_every_tag_pullable() {
    let work = temp_dir("gc-online");
    let root = work.path().join("root");
    let gh = start(&root, Some("1s"));
    let host = gh.host();
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let (host, dir) = (host.clone(), work.path().join(format!("src{p}")));
            thread::spawn(move || {
                let (mut pushed, mut failed) = (Vec::new(), 0usize);
                for round in 0..ROUNDS {
                    let label = format!("gc online {p} {round}");
                    let tag = format!("{host}/load{p}:r{round}");
                    if !push_round(&dir, round, &label, &tag) {
                        failed += 1;
                        continue;
                    }
                    if let Some(prev) = pushed.pop() {
                        skopeo::delete(&format!("docker://{prev}"), None);
                    }
                    pushed.push(tag);
                }
                (pushed, failed)
            })
        })
        .collect();
    let mut remaining = Vec::new();
    for p in pushers {
        let (pushed, failed) = p.join().expect("a pusher panicked");
        assert!(failed < ROUNDS, "every push of a pusher failed");
        remaining.extend(pushed);
    }
    let before = blob_bytes(&root);
    let r = run_gc(&gh);
    r.expect(200);
    assert!(
        metric(&gh, "gatehouse_gc_blobs_freed_total") > 0.0,
        "GC freed nothing during the load"
    );
    assert!(blob_bytes(&root) <= before);
    pull_all(&work.path().join("pulled"), &remaining);
    drop(gh);
    check_blob_store(&root);
    let tags = check_tags(&root);
    assert_eq!(tags.len(), remaining.len(), "{tags:?}");
    fsck_clean(&root);
}

#[test]
fn a_kill_9_in_the_middle_of_a_run_leaves_fsck_clean_and_the_next_run_finishes() {
    let work = temp_dir("gc-kill");
    let root = work.path().join("root");
    let gh = start(&root, None);
    let (layout, _, _) = oci::multiarch_image(&work.path().join("img"), "t", "gc kill");
    let tag = |gh: &Gatehouse| format!("docker://{}/kept:t", gh.host());
    skopeo::copy(
        &format!("oci:{}:t", layout.dir().display()),
        &tag(&gh),
        None,
        None,
        true,
    );
    // Many unreferenced blobs, written straight into the layout, so a run takes a while.
    for i in 0..3000 {
        let data = format!("orphan {i}");
        let digest = sha256_of(data.as_bytes());
        let hex = digest.trim_start_matches("sha256:");
        let dir = v2_dir(&root).join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("data"), data).unwrap();
    }
    let metrics_port = gh.metrics_port;
    // The reply never comes (the process is killed): the error is expected.
    let post = thread::spawn(move || {
        let _ = crate::util::http::client(None)
            .post(format!("http://127.0.0.1:{metrics_port}/gc"))
            .send();
    });
    let quarantine = root.join(".gatehouse-gc/quarantine");
    let deadline = Instant::now() + Duration::from_secs(60);
    while walk_files(&quarantine).len() < 10 {
        assert!(
            Instant::now() < deadline,
            "the run never quarantined anything"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .arg("-9")
        .arg(gh.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let _ = post.join();
    drop(gh);
    fsck_clean(&root);
    let gh = start(&root, None);
    run_gc(&gh).expect(200);
    assert!(
        walk_files(&quarantine).is_empty(),
        "the quarantine was not emptied"
    );
    let left = check_blob_store(&root);
    assert!(left.len() < 20, "{} blobs left", left.len());
    skopeo::copy(
        &tag(&gh),
        &format!("oci:{}:x", work.path().join("pulled").display()),
        None,
        None,
        true,
    );
    drop(gh);
    fsck_clean(&root);
}

#[test]
fn abandoned_uploads_are_purged_with_distributions_names() {
    let work = temp_dir("gc-purge");
    let root = work.path().join("root");
    let port = net::free_port();
    let text = format!(
        "[server]\nlisten = {}\n[auth]\nmode = \"none\"\n[storage]\nroot = {}\n[guard]\nenabled = false\n",
        toml_str(&format!("127.0.0.1:{port}")),
        toml_str(&root.display().to_string()),
    );
    let gh = Gatehouse::start_with(
        port,
        &text,
        &[
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE", "1s"),
            ("REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL", "1s"),
        ],
    );
    let http = Http::new(&gh.url());
    let started = http.req("POST", "/v2/app/blobs/uploads/").send();
    started.expect(202);
    let location = started.header("Location").expect("a Location");
    http.req("PATCH", &location)
        .header("Content-Type", "application/octet-stream")
        .body(vec![7u8; 4096])
        .send()
        .expect(202);
    let uploads = v2_dir(&root).join("repositories/app/_uploads");
    assert_eq!(fs::read_dir(&uploads).unwrap().count(), 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs::read_dir(&uploads).map_or(0, |d| d.count()) > 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned upload was never purged"
        );
        thread::sleep(Duration::from_millis(100));
    }
    http.req("GET", &location).send().expect(404);
    assert!(metric(&gh, "gatehouse_gc_uploads_purged_total") >= 1.0);
    assert!(metric(&gh, "gatehouse_gc_upload_bytes_purged_total") >= 4096.0);
}

/// Online `delete_untagged` under load: GC every second with zero grace while skopeo pushes distinct images
/// (single and multi-arch) and the previous round's tag is deleted (by tag: its manifests become untagged).
/// Afterwards every remaining tag pulls with `--all`, the untagged manifests answer 404, fsck finds nothing.
#[test]
fn online_delete_untagged_under_pushes_and_tag_deletes_keeps_every_tag_pullable() {
    let work = temp_dir("gc-online-untagged");
    let root = work.path().join("root");
    let gh = start_env(
        &root,
        Some("1s"),
        &[("GATEHOUSE_GC_DELETE_UNTAGGED", "true")],
    );
    let host = gh.host();
    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let (host, dir) = (host.clone(), work.path().join(format!("src{p}")));
            thread::spawn(move || {
                let reg = Http::new(&format!("http://{host}"));
                let (mut pushed, mut untagged, mut failed) = (Vec::new(), Vec::new(), 0usize);
                for round in 0..ROUNDS {
                    let label = format!("gc untagged {p} {round}");
                    let repo = format!("untagged{p}");
                    if !push_round(&dir, round, &label, &format!("{host}/{repo}:r{round}")) {
                        failed += 1;
                        continue;
                    }
                    if let Some(prev) = pushed.pop() {
                        let path = format!("/v2/{repo}/manifests/{prev}");
                        let head = reg
                            .req("HEAD", &path)
                            .header("Accept", &format!("{},{}", oci::MANIFEST, oci::INDEX))
                            .send();
                        if head.status == 200 {
                            let digest = head.header("Docker-Content-Digest").expect("a digest");
                            reg.req("DELETE", &path).send().expect(202);
                            untagged.push(format!("/v2/{repo}/manifests/{digest}"));
                        }
                    }
                    pushed.push(format!("r{round}"));
                }
                let tags: Vec<String> = pushed
                    .into_iter()
                    .map(|t| format!("{host}/untagged{p}:{t}"))
                    .collect();
                (tags, untagged, failed)
            })
        })
        .collect();
    let (mut remaining, mut untagged) = (Vec::new(), Vec::new());
    for p in pushers {
        let (tags, gone, failed) = p.join().expect("a pusher panicked");
        assert!(failed < ROUNDS, "every push of a pusher failed");
        remaining.extend(tags);
        untagged.extend(gone);
    }
    assert!(!untagged.is_empty(), "no tag was deleted");
    run_gc(&gh).expect(200);
    let reg = Http::new(&gh.url());
    for path in &untagged {
        reg.req("GET", path)
            .header("Accept", &format!("{},{}", oci::MANIFEST, oci::INDEX))
            .send()
            .expect(404);
    }
    assert!(metric(&gh, "gatehouse_gc_blobs_freed_total") > 0.0);
    pull_all(&work.path().join("pulled"), &remaining);
    drop(gh);
    check_blob_store(&root);
    assert_eq!(check_tags(&root).len(), remaining.len());
    fsck_clean(&root);
}
