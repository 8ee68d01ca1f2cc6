//! Garbage collection (issue 11) with the real binary and real tools: `gatehouse gc` leaves exactly the blob
//! set distribution 2.8.2's `garbage-collect` leaves on a copy of the same data (a multi-arch index, single
//! images, an image whose tag was deleted, a manifest pushed by digest only, a referrer, an orphan blob);
//! `--dry-run` changes nothing; `--delete-untagged` keeps a tagged index pullable with `skopeo copy --all`
//! where distribution's breaks it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::util::embedded::{
    blob_path, check_blob_store, sha256_of, walk_files, Embedded, Reg, Setup,
};
use crate::util::gatehouse::bin;
use crate::util::oci;
use crate::util::process::{require_tool, scrub_env};
use crate::util::{skopeo, temp_dir};

const SETUP: Setup = Setup {
    auth: false,
    delete: true,
    by_env: false,
};

/// What the fixture pushed, by digest.
struct Pushed {
    /// The multi-arch index (tagged `multi:latest`) and its two children.
    index: String,
    children: Vec<String>,
    /// The manifest and blobs of `app:old`, whose tag was deleted.
    untagged: (String, Vec<String>),
    /// The manifest and blobs pushed to `app` by digest only.
    by_digest: (String, Vec<String>),
    /// `app:v1`, and the referrer whose subject it is (pushed by digest).
    tagged: String,
    referrer: (String, Vec<String>),
    /// A blob no manifest references.
    orphan: String,
}

/// Pushes one config + one layer image by digest only; returns its manifest digest and blobs.
fn push_by_digest(
    reg: &Reg,
    repo: &str,
    label: &str,
    subject: Option<&str>,
) -> (String, Vec<String>) {
    let config = if subject.is_some() {
        b"{}".to_vec()
    } else {
        serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"l": label}}}))
        .unwrap()
    };
    let layer = oci::gzip(&oci::tar(&[("label.txt", label.as_bytes())]));
    let (c, l) = (reg.push_blob(repo, &config), reg.push_blob(repo, &layer));
    let mut m = json!({"schemaVersion": 2, "mediaType": oci::MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l, "size": layer.len()}]});
    if let Some(s) = subject {
        m["artifactType"] = json!("application/vnd.example.signature");
        m["config"] =
            json!({"mediaType": "application/vnd.oci.empty.v1+json", "digest": c, "size": 2});
        m["subject"] = json!({"mediaType": oci::MANIFEST, "digest": s, "size": 1});
    }
    let body = serde_json::to_vec(&m).unwrap();
    let d = sha256_of(&body);
    reg.put_manifest(repo, &d, oci::MANIFEST, &body).expect(201);
    (d, vec![c, l])
}

/// The blobs an image manifest of `reg`'s `repo` references (config and layers).
fn blobs_of(reg: &Reg, repo: &str, reference: &str) -> Vec<String> {
    let m = reg.get_manifest(repo, reference).json();
    let mut out = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        out.push(l["digest"].as_str().unwrap().to_string());
    }
    out
}

/// Fills `root` through a real gatehouse with skopeo and raw pushes, then stops it.
fn fixture(root: &Path, work: &Path) -> Pushed {
    let gh = Embedded::launch(root, SETUP);
    let host = gh.host();
    let reg = gh.reg();
    let (multi, index, images) = oci::multiarch_image(&work.join("multi"), "latest", "gc multi");
    skopeo::copy(
        &format!("oci:{}:latest", multi.dir().display()),
        &format!("docker://{host}/multi:latest"),
        None,
        None,
        true,
    );
    let (v1, _) = oci::small_image(&work.join("v1"), "v1", "gc tagged");
    skopeo::copy(
        &format!("oci:{}:v1", v1.dir().display()),
        &format!("docker://{host}/app:v1"),
        None,
        None,
        false,
    );
    let (old, old_image) = oci::small_image(&work.join("old"), "old", "gc untagged");
    skopeo::copy(
        &format!("oci:{}:old", old.dir().display()),
        &format!("docker://{host}/app:old"),
        None,
        None,
        false,
    );
    let untagged = old_image.manifest.digest.clone();
    let untagged_blobs = blobs_of(&reg, "app", &untagged);
    reg.req("DELETE", "/v2/app/manifests/old")
        .send()
        .expect(202);
    let (team, _) = oci::small_image(&work.join("team"), "1", "gc nested");
    skopeo::copy(
        &format!("oci:{}:1", team.dir().display()),
        &format!("docker://{host}/team/tool:1"),
        None,
        None,
        false,
    );
    let by_digest = push_by_digest(&reg, "app", "gc by digest", None);
    let tagged = sha256_of(&reg.get_manifest("app", "v1").body);
    let referrer = push_by_digest(&reg, "app", "gc signature", Some(&tagged));
    let orphan = reg.push_blob("app", b"gc: a blob nobody references");
    Pushed {
        index: index.digest,
        children: images.iter().map(|i| i.manifest.digest.clone()).collect(),
        untagged: (untagged, untagged_blobs),
        by_digest,
        tagged,
        referrer,
        orphan,
    }
}

/// `cp -a from to`.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// A hash of every path (files and directories) under `root` and every file's bytes.
pub(crate) fn tree_hash(root: &Path) -> String {
    let mut h = Sha256::new();
    let mut stack = vec![root.to_path_buf()];
    let mut entries: Vec<PathBuf> = Vec::new();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            entries.push(e.path());
        }
    }
    entries.sort();
    for p in entries {
        h.update(p.strip_prefix(root).unwrap().to_string_lossy().as_bytes());
        h.update([0]);
        if p.is_file() {
            h.update(fs::read(&p).unwrap());
        }
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// Runs `gatehouse SUB ARGS` on `root` (configured by file).
fn gatehouse_on(root: &Path, sub: &str, args: &[&str]) -> std::process::Output {
    let dir = temp_dir("gc-config");
    let config = dir.path().join("gatehouse.toml");
    fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n[auth]\nmode = \"none\"\n[storage]\nroot = {:?}\n",
            root.display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    cmd.arg(sub)
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .expect("running gatehouse")
}

/// Runs `gatehouse SUB ARGS` on `root`; returns stdout; panics unless it succeeds.
fn gatehouse_ok(root: &Path, sub: &str, args: &[&str]) -> String {
    let out = gatehouse_on(root, sub, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gatehouse {sub} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `gatehouse gc ARGS` on `root`; returns stdout; panics unless it succeeds.
fn gatehouse_gc(root: &Path, args: &[&str]) -> String {
    gatehouse_ok(root, "gc", args)
}

/// Runs distribution 2.8.2's `garbage-collect ARGS` on `root`.
fn distribution_gc(root: &Path, args: &[&str]) {
    let registry = require_tool("docker-registry", "docker-registry");
    let dir = temp_dir("gc-distribution");
    let config = dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    \
             enabled: true\nhttp:\n  addr: 127.0.0.1:1\n",
            root.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(registry);
    scrub_env(&mut cmd);
    let out = cmd
        .arg("garbage-collect")
        .args(args)
        .arg(&config)
        .output()
        .expect("docker-registry");
    assert!(
        out.status.success(),
        "docker-registry garbage-collect {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn gc_leaves_the_blob_set_distribution_leaves_and_a_dry_run_changes_nothing() {
    let work = temp_dir("gc-parity");
    let root = work.path().join("gatehouse");
    let pushed = fixture(&root, work.path());
    let ours = work.path().join("distribution");
    let dry = work.path().join("dry");
    copy_tree(&root, &ours);
    copy_tree(&root, &dry);
    let before = sorted(check_blob_store(&root));

    let hash = tree_hash(&dry);
    let printed = gatehouse_gc(&dry, &["--dry-run"]);
    assert_eq!(tree_hash(&dry), hash, "--dry-run changed the tree");
    assert!(
        printed.contains(&format!("would delete blob {}", pushed.orphan))
            && printed.contains(" bytes"),
        "{printed}"
    );

    distribution_gc(&ours, &[]);
    let printed = gatehouse_gc(&root, &[]);
    let left = sorted(check_blob_store(&root));
    assert_eq!(
        left,
        sorted(check_blob_store(&ours)),
        "gatehouse gc and distribution's leave other blob sets"
    );
    assert!(!left.contains(&pushed.orphan), "{printed}");
    assert!(left.len() < before.len());
    // Without --delete-untagged, every manifest stays, with its blobs.
    for d in [
        &pushed.untagged.0,
        &pushed.by_digest.0,
        &pushed.referrer.0,
        &pushed.index,
        &pushed.tagged,
    ] {
        assert!(left.contains(d), "{d} went: {printed}");
    }
    // The orphan's layer link went with it; a second run finds nothing to do.
    let orphan_link = root.join(format!(
        "docker/registry/v2/repositories/app/_layers/sha256/{}",
        pushed.orphan.trim_start_matches("sha256:")
    ));
    assert!(!orphan_link.exists());
    assert!(gatehouse_gc(&root, &[]).contains("deleted 0 tags, 0 manifests, 0 blobs, 0 bytes"));
}

#[test]
fn gc_delete_untagged_keeps_a_tagged_index_pullable_where_distribution_breaks_it() {
    let work = temp_dir("gc-untagged");
    let root = work.path().join("gatehouse");
    let pushed = fixture(&root, work.path());
    let theirs = work.path().join("distribution");
    copy_tree(&root, &theirs);

    distribution_gc(&theirs, &["--delete-untagged"]);
    // distribution keeps the children's manifest blobs (the index references them) but deletes their revision
    // links: the tagged index answers `manifest unknown` for its children.
    let revision = |root: &Path, d: &str| {
        root.join(format!(
            "docker/registry/v2/repositories/multi/_manifests/revisions/sha256/{}/link",
            d.trim_start_matches("sha256:")
        ))
    };
    assert!(
        pushed
            .children
            .iter()
            .all(|c| !revision(&theirs, c).exists()),
        "distribution's --delete-untagged kept the index's children: the bug this pins is gone?"
    );

    let printed = gatehouse_gc(&root, &["--delete-untagged"]);
    let left = check_blob_store(&root);
    for d in pushed
        .children
        .iter()
        .chain([&pushed.index, &pushed.tagged, &pushed.referrer.0])
    {
        assert!(left.contains(d), "{d} went: {printed}");
    }
    for c in &pushed.children {
        assert!(
            revision(&root, c).is_file(),
            "child {c} unlinked: {printed}"
        );
    }
    for d in pushed.referrer.1.iter() {
        assert!(left.contains(d), "the referrer's blob {d} went: {printed}");
    }
    for (m, blobs) in [&pushed.untagged, &pushed.by_digest] {
        assert!(!left.contains(m), "{m} stayed: {printed}");
        for b in blobs {
            assert!(!left.contains(b), "{b} of untagged {m} stayed: {printed}");
        }
    }
    assert!(!left.contains(&pushed.orphan));
    let remaining = walk_files(&root.join("docker/registry/v2/repositories"));
    let hex = pushed.by_digest.0.trim_start_matches("sha256:");
    assert!(
        !remaining.iter().any(|p| p.to_string_lossy().contains(hex)),
        "a link to {hex} stayed"
    );

    let gh = Embedded::launch(&root, SETUP);
    let out = work.path().join("pulled");
    fs::create_dir_all(&out).unwrap();
    for (image, all) in [
        ("multi:latest", true),
        ("app:v1", false),
        ("team/tool:1", false),
    ] {
        skopeo::copy(
            &format!("docker://{}/{image}", gh.host()),
            &format!(
                "oci:{}:x",
                out.join(image.replace([':', '/'], "-")).display()
            ),
            None,
            None,
            all,
        );
    }
    let reg = gh.reg();
    reg.get_manifest("app", &pushed.referrer.0).expect(200);
    reg.get_manifest("app", &pushed.by_digest.0).expect(404);
    drop(gh);
    let checked = gatehouse_ok(&root, "fsck", &[]);
    assert!(checked.contains("; 0 problems"), "{checked}");
}

#[test]
fn fsck_reports_a_corrupt_blob_without_touching_it_and_repair_removes_it() {
    let work = temp_dir("gc-fsck");
    let root = work.path().join("gatehouse");
    let pushed = fixture(&root, work.path());
    let clean = gatehouse_ok(&root, "fsck", &[]);
    assert!(clean.contains("; 0 problems"), "{clean}");
    let layer = &pushed.by_digest.1[1];
    fs::write(blob_path(&root, layer), b"bit rot").unwrap();
    let hash = tree_hash(&root);
    let out = gatehouse_on(&root, "fsck", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "fsck found nothing: {stdout}");
    assert!(
        stdout.contains("corrupt blob") && stdout.contains(layer.trim_start_matches("sha256:")),
        "{stdout}"
    );
    assert!(stdout.contains("manifest with missing blobs"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repair"));
    assert_eq!(
        tree_hash(&root),
        hash,
        "fsck without --repair changed the store"
    );
    let repaired = gatehouse_ok(&root, "fsck", &["--repair"]);
    assert!(repaired.contains("repaired"), "{repaired}");
    assert!(!blob_path(&root, layer).exists());
    let again = gatehouse_ok(&root, "fsck", &[]);
    assert!(again.contains("; 0 problems"), "{again}");
    // What was intact is still served.
    let gh = Embedded::launch(&root, SETUP);
    gh.reg().get_manifest("multi", "latest").expect(200);
    gh.reg()
        .get_manifest("app", &pushed.by_digest.0)
        .expect(404);
}

#[test]
fn du_and_the_usage_endpoint_report_every_repository() {
    let work = temp_dir("gc-du");
    let root = work.path().join("gatehouse");
    fixture(&root, work.path());
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let printed: serde_json::Value =
        serde_json::from_str(&gatehouse_ok(&root, "du", &["--json"])).unwrap();
    assert_eq!(names(&printed), ["app", "multi", "team/tool"], "{printed}");
    let total = printed["bytes"].as_u64().unwrap();
    assert!(total > 0);
    let app = &printed["repositories"][0];
    assert!(app["exclusive_bytes"].as_u64().unwrap() <= app["bytes"].as_u64().unwrap());
    let gh = Embedded::launch(&root, SETUP);
    let admin = crate::util::http::Http::new(&format!("http://127.0.0.1:{}", gh.gh.metrics_port));
    let served = admin.req("GET", "/usage").send();
    served.expect(200);
    assert_eq!(served.json(), printed, "du and GET /usage differ");
    assert!(gatehouse_ok(&root, "du", &[]).contains("team/tool"));
}
