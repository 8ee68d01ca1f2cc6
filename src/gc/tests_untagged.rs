//! Online `delete_untagged`: what an online run deletes and keeps, the grace counted from when a run first
//! saw a manifest untagged, and the writers' half of the barrier for unlinked manifests.

use super::*;
use crate::storage::paths;

/// An online run with `delete_untagged` at `now`, remembering in `memory`.
async fn online_at(
    f: &Fixture,
    grace: Duration,
    now: SystemTime,
    memory: &mut mark::Untagged,
) -> Report {
    let mut o = opts(true, false, grace);
    o.now = now;
    online::collect_online(&f.driver, &o, memory).await.unwrap()
}

async fn empty(f: &Fixture, root: &str) -> bool {
    let mut walk = f.driver.walk(root).await.unwrap();
    walk.next().await.unwrap().is_none()
}

#[tokio::test]
async fn online_delete_untagged_keeps_a_tagged_index_its_children_and_referrers() {
    let f = fixture().await;
    let multi = Name::parse("multi").unwrap();
    let app = Name::parse("app").unwrap();
    let (tagged, tagged_blobs) = f.image("app", Some("v1"), "tagged", None).await;
    let (old, old_blobs) = f.image("app", Some("old"), "old", None).await;
    f.store
        .delete_manifest(&app, &Reference::Tag(Tag::parse("old").unwrap()))
        .await
        .unwrap();
    let (amd, amd_blobs) = f.image("multi", None, "amd64", None).await;
    let index = f
        .put(
            "multi",
            Some("latest"),
            json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
                {"mediaType": IMAGE, "digest": amd.to_string(), "size": 1}]}),
        )
        .await;
    let (sig, sig_blobs) = f.image("multi", None, "signature", Some(&index)).await;
    let r = online_at(
        &f,
        Duration::ZERO,
        SystemTime::now(),
        &mut Default::default(),
    )
    .await;
    let deleted: Vec<_> = r.manifests_deleted.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(deleted, std::slice::from_ref(&old), "{r:?}");
    let left = f.blobs().await;
    assert!(!left.contains(&old) && old_blobs.iter().all(|b| !left.contains(b)));
    for d in [&tagged, &index, &amd, &sig]
        .into_iter()
        .chain(&tagged_blobs)
        .chain(&amd_blobs)
        .chain(&sig_blobs)
    {
        assert!(left.contains(d), "{d} went");
    }
    for d in [&index, &amd, &sig] {
        f.store
            .get_manifest(&multi, &Reference::Digest(d.clone()))
            .await
            .unwrap();
    }
    assert!(f
        .store
        .get_manifest(&app, &Reference::Digest(old))
        .await
        .is_err());
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
    assert!(empty(&f, &barrier::quarantine_root()).await);
    assert!(empty(&f, &barrier::unlinked_root()).await);
}

#[tokio::test]
async fn an_untagged_manifest_goes_only_once_the_grace_has_passed_since_a_run_first_saw_it_untagged(
) {
    let f = fixture().await;
    let app = Name::parse("app").unwrap();
    let (m, _) = f.image("app", Some("t"), "m", None).await;
    let grace = Duration::from_secs(3600);
    let minutes = |n: u64| SystemTime::now() + Duration::from_secs(2 * 3600 + n * 60);
    let untag = || async {
        f.store
            .delete_manifest(&app, &Reference::Tag(Tag::parse("t").unwrap()))
            .await
            .unwrap()
    };
    let mut memory = mark::Untagged::default();
    // Pushed two hours ago (by the runs' clock), untagged now: the push time does not count.
    untag().await;
    for at in [0, 30, 59] {
        let r = online_at(&f, grace, minutes(at), &mut memory).await;
        assert!(r.manifests_deleted.is_empty(), "at +{at} min: {r:?}");
    }
    // Tagged again before the grace ran out, then untagged: the count starts over.
    f.image("app", Some("t"), "m", None).await;
    let r = online_at(&f, grace, minutes(60), &mut memory).await;
    assert!(r.manifests_deleted.is_empty() && memory.is_empty(), "{r:?}");
    untag().await;
    let r = online_at(&f, grace, minutes(90), &mut memory).await;
    assert!(r.manifests_deleted.is_empty(), "{r:?}");
    let r = online_at(&f, grace, minutes(149), &mut memory).await;
    assert!(r.manifests_deleted.is_empty(), "{r:?}");
    let r = online_at(&f, grace, minutes(150), &mut memory).await;
    assert_eq!(r.manifests_deleted, [(app.clone(), m)]);
}

/// The writers' half: a put whose manifest a run has unlinked (its link and blobs in quarantine, the
/// collector between its moves and its second look) takes all of it back and succeeds.
#[tokio::test]
async fn a_put_of_an_unlinked_manifest_takes_it_back_with_its_blobs() {
    let f = fixture().await;
    let app = Name::parse("app").unwrap();
    let (m, blobs) = f.image("app", None, "m", None).await;
    let d = &f.driver;
    d.rename(
        &paths::revision_link(&app, &m),
        &barrier::unlinked_key(&app, &m),
    )
    .await
    .unwrap();
    for b in blobs.iter().chain([&m]) {
        d.rename(&paths::blob_data(b), &barrier::quarantine_key(b))
            .await
            .unwrap();
    }
    let (again, _) = f.image("app", Some("back"), "m", None).await;
    assert_eq!(again, m);
    // The put wrote the link and the manifest again (the quarantined copies are the collector's to drop);
    // the blobs it references came back.
    assert!(d
        .stat(&paths::revision_link(&app, &m))
        .await
        .unwrap()
        .is_some());
    let left = f.blobs().await;
    assert!(left.contains(&m) && blobs.iter().all(|b| left.contains(b)));
    f.store
        .get_manifest(&app, &Reference::Tag(Tag::parse("back").unwrap()))
        .await
        .unwrap();
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
}

#[tokio::test]
async fn a_run_that_died_with_links_unlinked_is_undone_by_the_next_run() {
    let f = fixture().await;
    let app = Name::parse("app").unwrap();
    let (m, blobs) = f.image("app", Some("v1"), "m", None).await;
    let nested = Name::parse("app/sub").unwrap();
    let (n, _) = f.image("app/sub", Some("v1"), "n", None).await;
    for (repo, d) in [(&app, &m), (&nested, &n)] {
        f.driver
            .rename(
                &paths::revision_link(repo, d),
                &barrier::unlinked_key(repo, d),
            )
            .await
            .unwrap();
    }
    let r = online_at(
        &f,
        Duration::ZERO,
        SystemTime::now(),
        &mut Default::default(),
    )
    .await;
    assert!(
        r.manifests_deleted.is_empty() && r.blobs_deleted.is_empty(),
        "{r:?}"
    );
    let left = f.blobs().await;
    assert!(left.contains(&m) && left.contains(&n) && blobs.iter().all(|b| left.contains(b)));
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
}

#[tokio::test]
async fn settle_links_takes_back_an_unlinked_child_with_everything_it_references() {
    let f = fixture().await;
    let multi = Name::parse("multi").unwrap();
    let (child, blobs) = f.image("multi", None, "child", None).await;
    let index = f
        .put(
            "multi",
            Some("latest"),
            json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
                {"mediaType": IMAGE, "digest": child.to_string(), "size": 1}]}),
        )
        .await;
    let d = &f.driver;
    for m in [&index, &child] {
        d.rename(
            &paths::revision_link(&multi, m),
            &barrier::unlinked_key(&multi, m),
        )
        .await
        .unwrap();
    }
    for b in blobs.iter().chain([&child]) {
        d.rename(&paths::blob_data(b), &barrier::quarantine_key(b))
            .await
            .unwrap();
    }
    let gone = barrier::settle_links(d.as_ref(), &multi, std::slice::from_ref(&index))
        .await
        .unwrap();
    assert_eq!(gone, None);
    assert!(empty(&f, &barrier::unlinked_root()).await);
    assert!(empty(&f, &barrier::quarantine_root()).await);
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
    // Nothing to take back: a manifest that is linked nowhere and not in quarantine is reported gone.
    let ghost = digest_bytes(Algorithm::Sha256, b"ghost");
    let gone = barrier::settle_links(d.as_ref(), &multi, std::slice::from_ref(&ghost))
        .await
        .unwrap();
    assert_eq!(gone, Some(ghost));
}

/// Found in review: a tag whose link was emptied (or held garbage) reached nothing, so `gc --delete-untagged`
/// deleted the tagged image and its blobs without a word. What such a tag means is unknown: nothing untagged
/// of that repository goes, offline or online, and the other repositories are collected as before.
#[tokio::test]
async fn a_tag_link_without_a_digest_keeps_every_manifest_of_its_repository() {
    for content in ["", "sha256:ZZZ", "not a digest at all"] {
        let f = fixture().await;
        let app = Name::parse("app").unwrap();
        let (tagged, tagged_blobs) = f.image("app", Some("v1"), "tagged", None).await;
        let (untagged, _) = f.image("app", None, "untagged", None).await;
        let (other_old, _) = f.image("other", None, "old", None).await;
        let link = paths::tag_current_link(&app, &Tag::parse("v1").unwrap());
        f.driver
            .write_atomic(&link, content.as_bytes())
            .await
            .unwrap();
        let offline = collect(&f.driver, &opts(true, false, Duration::ZERO))
            .await
            .unwrap();
        let deleted: Vec<_> = offline
            .manifests_deleted
            .iter()
            .map(|(_, d)| d.clone())
            .collect();
        assert_eq!(
            deleted,
            std::slice::from_ref(&other_old),
            "{content:?}: {offline:?}"
        );
        let left = f.blobs().await;
        for d in [&tagged, &untagged].into_iter().chain(&tagged_blobs) {
            assert!(left.contains(d), "{content:?}: {d} went");
        }
        let online = online_at(
            &f,
            Duration::ZERO,
            SystemTime::now(),
            &mut Default::default(),
        )
        .await;
        assert_eq!(online.manifests_deleted, [], "{content:?}");
    }
}

/// A put that loses the zero-grace race (left open in session 6: it failed, but its tag stayed on a manifest
/// that was gone): a collector's unlink and delete of the put's revision link land right after the put wrote
/// its tag. The put fails, a moved tag points where it did before, a new tag is gone, and fsck finds nothing.
#[tokio::test]
async fn a_put_that_loses_the_zero_grace_race_takes_back_the_tag_it_wrote() {
    use crate::storage::driver::hooked::Hooked;
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let disk = FsDriver::new(dir.path()).await.unwrap();
    // After a write of the armed tag link, the armed revision link goes (what the collector's run does).
    let armed: Arc<Mutex<Option<(String, String)>>> = Arc::new(Mutex::new(None));
    let mut hooked = Hooked::new(disk.clone());
    let (arm, racer) = (armed.clone(), disk.clone());
    hooked.after_write = Some(Box::new(move |key| {
        let doomed = arm
            .lock()
            .unwrap()
            .take_if(|(tag_link, _)| *tag_link == key)
            .map(|(_, revision)| revision);
        let disk = racer.clone();
        Box::pin(async move {
            if let Some(revision) = doomed {
                disk.delete(sweep::link_dir(&revision)).await.unwrap();
            }
        })
    }));
    let driver: Arc<dyn Driver> = Arc::new(hooked);
    let f = Fixture {
        _dir: dir,
        store: Store::with_driver(driver.clone(), true),
        driver,
    };
    let app = Name::parse("app").unwrap();
    let v1 = Tag::parse("v1").unwrap();
    let (first, _) = f.image("app", Some("v1"), "first", None).await;
    for (tag, before) in [("v1", Some(first.clone())), ("v2", None)] {
        let tag = Tag::parse(tag).unwrap();
        let config = f
            .blob("app", format!("{{\"lost\":\"{tag}\"}}").as_bytes())
            .await;
        let body = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": IMAGE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 1},
            "layers": [],
        }))
        .unwrap();
        let lost = digest_bytes(Algorithm::Sha256, &body);
        *armed.lock().unwrap() = Some((
            paths::tag_current_link(&app, &tag),
            paths::revision_link(&app, &lost),
        ));
        let put = f
            .store
            .put_manifest(&app, &Reference::Tag(tag.clone()), body.into(), Some(IMAGE))
            .await;
        assert!(
            matches!(
                put,
                Err(crate::storage::StorageError::ManifestBlobUnknown { .. })
            ),
            "{tag}: {put:?}"
        );
        assert_eq!(
            f.store.resolve_tag(&app, &tag).await.unwrap(),
            before,
            "{tag}"
        );
        assert!(
            f.driver
                .stat(&paths::tag_index_link(&app, &tag, &lost))
                .await
                .unwrap()
                .is_none(),
            "{tag}: the put's history entry is gone"
        );
    }
    assert_eq!(f.store.list_tags(&app).await.unwrap(), ["v1"]);
    assert_eq!(f.store.resolve_tag(&app, &v1).await.unwrap(), Some(first));
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
}
