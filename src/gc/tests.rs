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
        retention: Vec::new(),
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

#[tokio::test]
async fn an_online_run_collects_what_no_manifest_references_and_leaves_fsck_clean() {
    let f = fixture().await;
    let (tagged, blobs) = f.image("app", Some("v1"), "tagged", None).await;
    let orphan = f.blob("app", b"never referenced").await;
    let young = online::collect_online(
        &f.driver,
        &opts(false, false, Duration::from_secs(3600)),
        &mut Default::default(),
    )
    .await
    .unwrap();
    assert!(
        young.blobs_deleted.is_empty(),
        "the grace keeps a fresh blob: {young:?}"
    );
    let r = online::collect_online(
        &f.driver,
        &opts(false, false, Duration::ZERO),
        &mut Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(r.blobs_deleted, [(orphan.clone(), 16)]);
    assert_eq!(r.layer_links_deleted, 1);
    let left = f.blobs().await;
    assert!(!left.contains(&orphan));
    assert!(left.contains(&tagged) && blobs.iter().all(|b| left.contains(b)));
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
    let mut walk = f.driver.walk(&barrier::quarantine_root()).await.unwrap();
    assert_eq!(
        walk.next().await.unwrap(),
        None,
        "the quarantine is empty after a run"
    );
}

/// The write path's half of the barrier: a manifest put, a mount and a blob commit that find their blob in
/// quarantine (a collector's run in progress) take it back and succeed.
#[tokio::test]
async fn writers_take_back_a_quarantined_blob_they_rely_on() {
    use crate::storage::paths;
    let f = fixture().await;
    let app = Name::parse("app").unwrap();
    let config = f.blob("app", b"{\"c\":1}").await;
    let layer = f.blob("app", b"layer bytes").await;
    let quarantine = |d: &Digest| {
        let (d, drv) = (d.clone(), f.driver.clone());
        async move {
            drv.rename(&paths::blob_data(&d), &barrier::quarantine_key(&d))
                .await
                .unwrap()
        }
    };
    // The pre-check saw the blob; the collector moves it before the revision link's second look.
    quarantine(&layer).await;
    assert_eq!(
        barrier::settle(&*f.driver, &[config.clone(), layer.clone()])
            .await
            .unwrap(),
        None
    );
    assert!(f
        .driver
        .stat(&paths::blob_data(&layer))
        .await
        .unwrap()
        .is_some());
    // Mount into another repository while the blob is in quarantine: the mount's look takes it back; so does
    // a HEAD's (a blob answers as before the move, found in review: blobs of a 201 manifest answered 404).
    let other = Name::parse("other").unwrap();
    quarantine(&config).await;
    assert_eq!(
        f.store.mount_blob(&other, &app, &config).await.unwrap(),
        Some(7)
    );
    quarantine(&config).await;
    assert_eq!(
        f.store
            .stat_blob(&app, &config, crate::storage::blobs::LinkKind::Layer)
            .await
            .unwrap(),
        7
    );
    assert!(f
        .driver
        .stat(&barrier::quarantine_key(&config))
        .await
        .unwrap()
        .is_none());
    // Deleted for good: the writer is told, nothing is put back.
    quarantine(&layer).await;
    f.driver
        .delete(&barrier::quarantine_key(&layer))
        .await
        .unwrap();
    assert_eq!(
        barrier::settle(&*f.driver, &[config.clone(), layer.clone()])
            .await
            .unwrap(),
        Some(layer)
    );
    let _ = app;
}

/// The layer-link race of online runs (left open in session 6: the collector looked at a link, then deleted
/// it, and a push that rewrote it in between lost it for good, so its manifest put failed): a push of the blob
/// being deleted writes its data and its link just before the collector's delete of that link. The link is
/// written back, the push's manifest is accepted, and fsck finds nothing.
#[tokio::test]
async fn a_layer_link_a_push_rewrites_while_the_collector_deletes_it_is_written_back() {
    use crate::storage::driver::hooked::Hooked;
    use crate::storage::paths;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDriver::new(dir.path()).await.unwrap();
    let app = Name::parse("app").unwrap();
    let data = b"garbage, then pushed again".to_vec();
    let blob = digest_bytes(Algorithm::Sha256, &data);
    let raced = Arc::new(AtomicBool::new(false));
    let mut hooked = Hooked::new(disk.clone());
    let (link, ran) = (paths::layer_link(&app, &blob), raced.clone());
    let (racer, racing, bytes) = (disk.clone(), blob.clone(), data.clone());
    hooked.before_delete = Some(Box::new(move |key| {
        let (disk, blob, data, link, ran) = (
            racer.clone(),
            racing.clone(),
            bytes.clone(),
            link.clone(),
            ran.clone(),
        );
        Box::pin(async move {
            if sweep::link_dir(&link) == key && !ran.swap(true, Ordering::SeqCst) {
                // An upload's commit: the data, then the link.
                disk.write_atomic(&paths::blob_data(&blob), &data)
                    .await
                    .unwrap();
                disk.write_atomic(&link, blob.to_string().as_bytes())
                    .await
                    .unwrap();
            }
        })
    }));
    let driver: Arc<dyn Driver> = Arc::new(hooked);
    let store = Store::with_driver(driver.clone(), true);
    store.put_blob_bytes(&blob, &data).await.unwrap();
    store.link_layer(&app, &blob).await.unwrap();
    let r = online::collect_online(
        &driver,
        &opts(false, false, Duration::ZERO),
        &mut Default::default(),
    )
    .await
    .unwrap();
    assert!(
        raced.load(Ordering::SeqCst),
        "the push ran in the collector's window"
    );
    assert_eq!(r.layer_links_deleted, 0, "{r:?}");
    assert!(
        store.has_layer(&app, &blob).await.unwrap(),
        "the pushed blob is linked in its repository"
    );
    let m = json!({
        "schemaVersion": 2, "mediaType": IMAGE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob.to_string(), "size": data.len()},
        "layers": [],
    });
    store
        .put_manifest(
            &app,
            &Reference::Tag(Tag::parse("v1").unwrap()),
            serde_json::to_vec(&m).unwrap().into(),
            Some(IMAGE),
        )
        .await
        .expect("the push's manifest put is accepted");
    assert_eq!(fsck::fsck(&driver, false).await.unwrap().findings, []);
}

#[tokio::test]
async fn a_run_that_died_with_blobs_in_quarantine_leaves_fsck_clean_and_the_next_run_finishes() {
    use crate::storage::paths;
    let f = fixture().await;
    let (_, blobs) = f.image("app", Some("v1"), "tagged", None).await;
    let orphan = f.blob("app", b"never referenced").await;
    // The dead run had moved a referenced blob (it would have been put back) and the orphan.
    for d in [&blobs[1], &orphan] {
        f.driver
            .rename(&paths::blob_data(d), &barrier::quarantine_key(d))
            .await
            .unwrap();
    }
    // Its lease is still there, expired.
    let dead = lease::acquire(
        &*f.driver,
        "dead",
        Duration::from_millis(1),
        SystemTime::now() - Duration::from_secs(1),
    )
    .await
    .unwrap()
    .unwrap();
    let _ = dead;
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
    let r = online::collect_online(
        &f.driver,
        &opts(false, false, Duration::ZERO),
        &mut Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(r.blobs_deleted, [(orphan, 16)]);
    assert!(f.blobs().await.contains(&blobs[1]));
    f.store
        .get_manifest(
            &Name::parse("app").unwrap(),
            &Reference::Tag(Tag::parse("v1").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
}

#[tokio::test]
async fn usage_counts_shared_blobs_once_per_repository_and_exclusive_bytes_once() {
    let f = fixture().await;
    f.image("a", Some("v1"), "only a", None).await;
    let shared = f.blob("a", b"shared layer").await;
    f.store
        .link_layer(&Name::parse("b").unwrap(), &shared)
        .await
        .unwrap();
    let u = du::usage(&*f.driver).await.unwrap();
    let (a, b) = (&u.repositories[0], &u.repositories[1]);
    assert_eq!(
        (a.name.as_str(), a.tags, a.manifests, a.blobs),
        ("a", 1, 1, 4)
    );
    assert_eq!(
        (b.name.as_str(), b.tags, b.manifests, b.blobs, b.bytes),
        ("b", 0, 0, 1, 12)
    );
    assert_eq!(b.exclusive_bytes, 0);
    assert_eq!(a.exclusive_bytes, a.bytes - 12);
    assert_eq!((u.blobs, u.bytes), (4, a.bytes));
    assert!(du::render(&u).lines().count() == 4);
}

#[tokio::test]
async fn an_offline_run_puts_back_what_an_interrupted_online_run_quarantined() {
    use crate::storage::paths;
    let f = fixture().await;
    let (_, blobs) = f.image("app", Some("v1"), "tagged", None).await;
    let orphan = f.blob("app", b"never referenced").await;
    for d in [&blobs[0], &orphan] {
        f.driver
            .rename(&paths::blob_data(d), &barrier::quarantine_key(d))
            .await
            .unwrap();
    }
    let r = collect(&f.driver, &opts(false, false, Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(r.blobs_deleted, [(orphan, 16)]);
    assert!(f.blobs().await.contains(&blobs[0]));
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
}

#[path = "tests_fsck.rs"]
mod fsck_cases;

#[path = "tests_retention.rs"]
mod retention_cases;

#[path = "tests_untagged.rs"]
mod untagged_cases;
