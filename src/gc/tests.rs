//! Runs of the collector on a store built through the registry logic, one case per shape of content.

use super::*;
use crate::names::{Algorithm, Reference, Tag};
use crate::storage::digester::digest_bytes;
use crate::storage::driver::FsDriver;
use crate::storage::Store;
use serde_json::json;
use std::collections::BTreeSet;

struct Fixture {
    _dir: tempfile::TempDir,
    driver: Arc<dyn Driver>,
    store: Store,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let driver: Arc<dyn Driver> = Arc::new(FsDriver::new(dir.path()).await.unwrap());
    let store = Store::with_driver(driver.clone(), true);
    Fixture {
        _dir: dir,
        driver,
        store,
    }
}

const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl Fixture {
    async fn blob(&self, repo: &str, data: &[u8]) -> Digest {
        let d = digest_bytes(Algorithm::Sha256, data);
        self.store.put_blob_bytes(&d, data).await.unwrap();
        self.store
            .link_layer(&Name::parse(repo).unwrap(), &d)
            .await
            .unwrap();
        d
    }

    async fn put(&self, repo: &str, reference: Option<&str>, body: serde_json::Value) -> Digest {
        let body = serde_json::to_vec(&body).unwrap();
        let d = digest_bytes(Algorithm::Sha256, &body);
        let r = match reference {
            Some(t) => Reference::Tag(Tag::parse(t).unwrap()),
            None => Reference::Digest(d.clone()),
        };
        let mt = if serde_json::from_slice::<serde_json::Value>(&body).unwrap()["manifests"]
            .is_array()
        {
            INDEX
        } else {
            IMAGE
        };
        self.store
            .put_manifest(&Name::parse(repo).unwrap(), &r, body.into(), Some(mt))
            .await
            .unwrap();
        d
    }

    /// An image of one config and one layer (unique by `label`); returns (manifest, [config, layer]).
    async fn image(
        &self,
        repo: &str,
        tag: Option<&str>,
        label: &str,
        subject: Option<&Digest>,
    ) -> (Digest, Vec<Digest>) {
        let config = self
            .blob(repo, format!("{{\"label\":\"{label}\"}}").as_bytes())
            .await;
        let layer = self.blob(repo, format!("layer {label}").as_bytes()).await;
        let mut m = json!({
            "schemaVersion": 2, "mediaType": IMAGE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 1}],
        });
        if let Some(s) = subject {
            m["subject"] = json!({"mediaType": IMAGE, "digest": s.to_string(), "size": 1});
        }
        (self.put(repo, tag, m).await, vec![config, layer])
    }

    async fn blobs(&self) -> BTreeSet<Digest> {
        let mut walk = self
            .driver
            .walk(&crate::storage::paths::blobs_root())
            .await
            .unwrap();
        let mut out = BTreeSet::new();
        while let Some(e) = walk.next().await.unwrap() {
            out.extend(sweep::blob_of(&e.key));
        }
        out
    }

    async fn tree(&self) -> Vec<(String, u64)> {
        let mut walk = self.driver.walk("docker").await.unwrap();
        let mut out = Vec::new();
        while let Some(e) = walk.next().await.unwrap() {
            out.push((e.key, e.size));
        }
        out.sort();
        out
    }
}

fn opts(delete_untagged: bool, dry_run: bool, grace: Duration) -> Options {
    Options {
        dry_run,
        delete_untagged,
        grace,
        now: SystemTime::now(),
    }
}

/// The content of the parity test in miniature: what each kind of run keeps.
#[tokio::test]
async fn each_run_keeps_what_its_mode_says() {
    for (delete_untagged, dry_run) in [(false, false), (true, false), (true, true), (false, true)] {
        let f = fixture().await;
        let (tagged, tagged_blobs) = f.image("app", Some("v1"), "tagged", None).await;
        let (untagged, untagged_blobs) = f.image("app", Some("old"), "untagged", None).await;
        f.store
            .delete_manifest(
                &Name::parse("app").unwrap(),
                &Reference::Tag(Tag::parse("old").unwrap()),
            )
            .await
            .unwrap();
        let (by_digest, by_digest_blobs) = f.image("app", None, "by-digest", None).await;
        let (amd, amd_blobs) = f.image("multi", None, "amd64", None).await;
        let (arm, arm_blobs) = f.image("multi", None, "arm64", None).await;
        let index = f
            .put(
                "multi",
                Some("latest"),
                json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
                {"mediaType": IMAGE, "digest": amd.to_string(), "size": 1},
                {"mediaType": IMAGE, "digest": arm.to_string(), "size": 1}]}),
            )
            .await;
        let (sig, sig_blobs) = f.image("multi", None, "signature", Some(&index)).await;
        let (sig_of_untagged, sig_of_untagged_blobs) =
            f.image("app", None, "sig-untagged", Some(&untagged)).await;
        let orphan = f.blob("app", b"never referenced").await;
        let before = f.tree().await;
        let all = f.blobs().await;

        let r = collect(&f.driver, &opts(delete_untagged, dry_run, Duration::ZERO))
            .await
            .unwrap();
        let mut gone: BTreeSet<Digest> = [orphan].into();
        if delete_untagged {
            gone.extend([untagged.clone(), by_digest.clone(), sig_of_untagged.clone()]);
            gone.extend(
                untagged_blobs
                    .iter()
                    .chain(&by_digest_blobs)
                    .chain(&sig_of_untagged_blobs)
                    .cloned(),
            );
        }
        let reported: BTreeSet<Digest> = r.blobs_deleted.iter().map(|(d, _)| d.clone()).collect();
        assert_eq!(reported, gone, "untagged={delete_untagged} dry={dry_run}");
        if dry_run {
            assert_eq!(f.tree().await, before, "a dry run changes nothing");
            continue;
        }
        let kept: BTreeSet<Digest> = all.difference(&gone).cloned().collect();
        assert_eq!(f.blobs().await, kept);
        for d in [&tagged, &index, &amd, &arm, &sig] {
            assert!(kept.contains(d));
        }
        for d in tagged_blobs
            .iter()
            .chain(&amd_blobs)
            .chain(&arm_blobs)
            .chain(&sig_blobs)
        {
            assert!(kept.contains(d));
        }
        // Every kept manifest is still served, and the layer links of deleted blobs went with them.
        let multi = Name::parse("multi").unwrap();
        for d in [&index, &amd, &arm, &sig] {
            f.store
                .get_manifest(&multi, &Reference::Digest(d.clone()))
                .await
                .unwrap();
        }
        let app = Name::parse("app").unwrap();
        assert!(!f.store.has_layer(&app, &orphan_digest()).await.unwrap());
        let deleted_manifests: BTreeSet<Digest> =
            r.manifests_deleted.iter().map(|(_, d)| d.clone()).collect();
        let want: BTreeSet<Digest> = if delete_untagged {
            [untagged, by_digest, sig_of_untagged].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(deleted_manifests, want);
        // A second run finds nothing more.
        let again = collect(&f.driver, &opts(delete_untagged, false, Duration::ZERO))
            .await
            .unwrap();
        assert!(again.blobs_deleted.is_empty() && again.manifests_deleted.is_empty());
    }
}

fn orphan_digest() -> Digest {
    digest_bytes(Algorithm::Sha256, b"never referenced")
}

#[tokio::test]
async fn blobs_and_manifests_within_the_grace_stay() {
    let f = fixture().await;
    f.image("app", None, "by-digest", None).await;
    f.blob("app", b"never referenced").await;
    let before = f.blobs().await;
    let r = collect(&f.driver, &opts(true, false, Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(
        r.blobs_deleted.is_empty() && r.manifests_deleted.is_empty(),
        "{r:?}"
    );
    assert_eq!(r.blobs_young, 1);
    assert_eq!(f.blobs().await, before);
    // A run an hour later collects them.
    let mut later = opts(true, false, Duration::from_secs(3600));
    later.now += Duration::from_secs(3601);
    let r = collect(&f.driver, &later).await.unwrap();
    assert_eq!((r.blobs_deleted.len(), r.manifests_deleted.len()), (4, 1));
}

#[tokio::test]
async fn an_unreadable_manifest_stops_the_run_before_anything_is_deleted() {
    let f = fixture().await;
    f.blob("app", b"never referenced").await;
    let (m, _) = f.image("app", Some("v1"), "x", None).await;
    f.driver
        .write_atomic(&crate::storage::paths::blob_data(&m), b"not json")
        .await
        .unwrap();
    let before = f.tree().await;
    let e = collect(&f.driver, &opts(false, false, Duration::ZERO))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&m.hex()[..16]), "{e}");
    assert_eq!(f.tree().await, before);
}

/// Does the damage `case` names to the fixture of [`fsck_finds_each_kind_of_damage_and_repair_removes_it`].
async fn damage(f: &Fixture, case: &str, m: &Digest, blobs: &[Digest], child: &Digest) {
    use crate::storage::paths;
    let app = Name::parse("app").unwrap();
    let d = &f.driver;
    match case {
        "a layer's bytes flipped" => d.write_atomic(&paths::blob_data(&blobs[1]), b"flip").await,
        "a layer deleted" => d.delete(&paths::blob_dir(&blobs[1])).await,
        "a manifest blob deleted" => d.delete(&paths::blob_dir(m)).await,
        "a tag to nothing" => {
            let ghost = format!("sha256:{}", "e".repeat(64));
            let key = paths::tag_current_link(&app, &Tag::parse("ghost").unwrap());
            d.write_atomic(&key, ghost.as_bytes()).await
        }
        "a link holding another digest" => {
            let other = blobs[1].to_string();
            d.write_atomic(&paths::layer_link(&app, &blobs[0]), other.as_bytes())
                .await
        }
        "upload directories that are no sessions" => {
            let uploads = paths::uploads_dir(&app);
            d.write_atomic(
                &format!("{uploads}/0f4c3a52-3f6e-4d1c-9a53-0a4b8c1f2e3d/data"),
                b"x",
            )
            .await
            .unwrap();
            d.write_atomic(&format!("{uploads}/not-an-id/data"), b"x")
                .await
        }
        "an index whose child's revision is gone" => {
            let link = paths::revision_link(&Name::parse("multi").unwrap(), child);
            d.delete(link.strip_suffix("/link").unwrap()).await
        }
        other => panic!("no such damage: {other}"),
    }
    .unwrap();
}

/// One kind of damage per case: what fsck calls it, that it changes nothing, and that `repair` leaves a store
/// a second check finds clean (with the intact image still served).
#[tokio::test]
async fn fsck_finds_each_kind_of_damage_and_repair_removes_it() {
    let cases: [(&str, &[&str]); 7] = [
        (
            "a layer's bytes flipped",
            &[
                "corrupt blob",
                "dangling link",
                "manifest with missing blobs",
                "dangling tag",
            ],
        ),
        (
            "a layer deleted",
            &[
                "dangling link",
                "manifest with missing blobs",
                "dangling tag",
            ],
        ),
        (
            "a manifest blob deleted",
            &["dangling link", "dangling tag", "dangling link"],
        ),
        ("a tag to nothing", &["dangling tag"]),
        ("a link holding another digest", &["corrupt link"]),
        (
            "upload directories that are no sessions",
            &["orphaned upload", "orphaned upload"],
        ),
        (
            "an index whose child's revision is gone",
            &["index with missing children", "dangling tag"],
        ),
    ];
    for (case, want) in cases {
        let f = fixture().await;
        let (m, blobs) = f.image("app", Some("v1"), "broken", None).await;
        let (keep, _) = f.image("app", Some("v2"), "intact", None).await;
        let (child, _) = f.image("multi", None, "child", None).await;
        f.put(
            "multi",
            Some("latest"),
            json!({"schemaVersion": 2, "mediaType": INDEX,
            "manifests": [{"mediaType": IMAGE, "digest": child.to_string(), "size": 1}]}),
        )
        .await;
        let clean = fsck::fsck(&f.driver, false).await.unwrap();
        assert_eq!(clean.findings, [], "{case}: before the damage");
        damage(&f, case, &m, &blobs, &child).await;
        let before = f.tree().await;
        let found = fsck::fsck(&f.driver, false).await.unwrap();
        let mut kinds: Vec<&str> = found.findings.iter().map(|x| x.what).collect();
        kinds.sort();
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(kinds, want, "{case}: {:#?}", found.findings);
        assert_eq!(
            f.tree().await,
            before,
            "{case}: fsck without repair changed the store"
        );
        let repaired = fsck::fsck(&f.driver, true).await.unwrap();
        assert_eq!(repaired.repaired, repaired.findings.len() as u64, "{case}");
        let after = fsck::fsck(&f.driver, false).await.unwrap();
        assert_eq!(after.findings, [], "{case}: after repair");
        f.store
            .get_manifest(&Name::parse("app").unwrap(), &Reference::Digest(keep))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn fsck_reports_unknown_objects_and_never_removes_them() {
    let f = fixture().await;
    f.image("app", Some("v1"), "x", None).await;
    for key in [
        "docker/registry/v2/blobs/sha256/zz/notes.txt",
        "docker/registry/v2/repositories/app/README",
        "docker/registry/v2/repositories/app/_manifests/other/thing",
    ] {
        f.driver.write_atomic(key, b"mine").await.unwrap();
    }
    let r = fsck::fsck(&f.driver, true).await.unwrap();
    assert_eq!(r.findings.len(), 3, "{:#?}", r.findings);
    assert!(r
        .findings
        .iter()
        .all(|x| !x.removable && x.what.contains("left alone")));
    assert_eq!(r.repaired, 0);
    assert_eq!(
        &f.driver
            .read("docker/registry/v2/repositories/app/README", 8)
            .await
            .unwrap()[..],
        b"mine"
    );
}
