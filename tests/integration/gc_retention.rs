//! Retention rules (issue 11) with the real binary and real tools: images pushed with skopeo, then
//! `gatehouse gc` with `[[retention]]` in its config. `--dry-run` prints each tag that would go and changes
//! nothing (the tree hash); the real run deletes exactly those tags, their manifests and blobs; the kept tags
//! still pull, the deleted ones answer 404, and fsck finds nothing.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::gc::tree_hash;
use crate::util::embedded::{check_blob_store, Embedded, Setup};
use crate::util::gatehouse::bin;
use crate::util::process::scrub_env;
use crate::util::{oci, skopeo, temp_dir};

const SETUP: Setup = Setup {
    auth: false,
    delete: true,
    by_env: false,
};

/// Keep the two most recently pushed tags of `app` and every `v*` tag; untagged manifests go at once.
const RULES: &str = r#"
[[retention]]
repositories = ["app"]
keep_last = 2
keep_tags = ["v*"]
untagged_older_than = "0s"
"#;

/// Runs `gatehouse SUB ARGS` on `root` with `extra` appended to its config; returns (success, stdout+stderr).
fn gatehouse_with(root: &Path, extra: &str, sub: &str, args: &[&str]) -> (bool, String) {
    let dir = temp_dir("gc-retention-config");
    let config = dir.path().join("gatehouse.toml");
    fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n[auth]\nmode = \"none\"\n[storage]\nroot = {:?}\n{extra}",
            root.display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    let out = cmd
        .arg(sub)
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .expect("running gatehouse");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn retention_rules_delete_the_tags_they_doom_and_a_dry_run_changes_nothing() {
    let work = temp_dir("gc-retention");
    let root = work.path().join("root");
    let gh = Embedded::launch(&root, SETUP);
    // Pushed in this order, one after the other: v1 is the oldest, d the newest.
    let order = ["v1", "a", "b", "c", "d"];
    let mut layers = Vec::new();
    for tag in order {
        let (layout, image) =
            oci::small_image(&work.path().join(tag), "t", &format!("retention {tag}"));
        skopeo::copy(
            &format!("oci:{}:t", layout.dir().display()),
            &format!("docker://{}/app:{tag}", gh.host()),
            None,
            None,
            false,
        );
        layers.push((tag, image.layer.digest));
    }
    let (layout, other) = oci::small_image(&work.path().join("other"), "t", "retention other");
    skopeo::copy(
        &format!("oci:{}:t", layout.dir().display()),
        &format!("docker://{}/other:old", gh.host()),
        None,
        None,
        false,
    );
    drop(gh);

    let before = tree_hash(&root);
    let (ok, dry) = gatehouse_with(&root, RULES, "gc", &["--dry-run"]);
    assert!(ok, "{dry}");
    assert_eq!(
        tree_hash(&root),
        before,
        "--dry-run changed the store: {dry}"
    );
    let doomed: Vec<&str> = dry
        .lines()
        .filter(|l| l.starts_with("would delete tag "))
        .collect();
    assert_eq!(
        doomed,
        [
            "would delete tag app:a (retention)",
            "would delete tag app:b (retention)"
        ],
        "{dry}"
    );

    let (ok, done) = gatehouse_with(&root, RULES, "gc", &[]);
    assert!(ok, "{done}");
    assert!(
        done.contains("deleted tag app:a (retention)") && done.contains("deleted tag app:b"),
        "{done}"
    );
    assert!(done.contains("deleted 2 tags, 2 manifests"), "{done}");
    let left = check_blob_store(&root);
    for (tag, layer) in &layers {
        let kept = !matches!(*tag, "a" | "b");
        assert_eq!(left.contains(layer), kept, "the layer of app:{tag}: {done}");
    }
    assert!(left.contains(&other.layer.digest), "no rule matches other");

    let gh = Embedded::launch(&root, SETUP);
    let pulled = work.path().join("pulled");
    fs::create_dir_all(&pulled).unwrap();
    for image in ["app:v1", "app:c", "app:d", "other:old"] {
        skopeo::copy(
            &format!("docker://{}/{image}", gh.host()),
            &format!("oci:{}:x", pulled.join(image.replace(':', "-")).display()),
            None,
            None,
            false,
        );
    }
    let reg = gh.reg();
    for gone in ["a", "b"] {
        reg.get_manifest("app", gone).expect(404);
    }
    let mut tags = reg.tags("app");
    tags.sort();
    assert_eq!(tags, ["c", "d", "v1"]);
    drop(gh);
    let (ok, checked) = gatehouse_with(&root, "", "fsck", &[]);
    assert!(ok && checked.contains("; 0 problems"), "{checked}");
    // A second run has nothing left to do.
    let (ok, again) = gatehouse_with(&root, RULES, "gc", &[]);
    assert!(
        ok && again.contains("deleted 0 tags, 0 manifests, 0 blobs"),
        "{again}"
    );
}

#[test]
fn a_bad_retention_rule_stops_gc_naming_the_rule_and_key() {
    let work = temp_dir("gc-retention-bad");
    let root = work.path().join("root");
    fs::create_dir_all(root.join("docker/registry/v2")).unwrap();
    let before = tree_hash(&root);
    let bad = format!(
        "{RULES}\n[[retention]]\nrepositories = [\"**\"]\nuntagged_older_than = \"soon\"\n"
    );
    let (ok, out) = gatehouse_with(&root, &bad, "gc", &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("retention[1].untagged_older_than"), "{out}");
    assert_eq!(tree_hash(&root), before);
}
