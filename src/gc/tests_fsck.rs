//! fsck on a store damaged one way per case.

use super::*;

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
        "a link of 4 KiB" => {
            d.write_atomic(&paths::layer_link(&app, &blobs[0]), &[b'x'; 4096])
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
    let cases: [(&str, &[&str]); 8] = [
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
        ("a link of 4 KiB", &["corrupt link"]),
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

#[tokio::test]
async fn a_run_while_another_collector_holds_the_lock_deletes_nothing() {
    let f = fixture().await;
    f.blob("app", b"never referenced").await;
    let other = lease::acquire(&*f.driver, "other", LEASE_TTL, SystemTime::now())
        .await
        .unwrap()
        .unwrap();
    let before = f.tree().await;
    for run in [
        collect(&f.driver, &opts(false, false, Duration::ZERO))
            .await
            .map(drop),
        fsck::fsck(&f.driver, true).await.map(drop),
    ] {
        match run {
            Err(GcError::Lease(lease::LeaseError::Busy { owner, .. })) => {
                assert_eq!(owner, "other")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(f.tree().await, before);
    // A dry run takes no lock; once released, a run collects and leaves the lock free for the next.
    assert_eq!(
        collect(&f.driver, &opts(false, true, Duration::ZERO))
            .await
            .unwrap()
            .blobs_deleted
            .len(),
        1
    );
    other.release(&*f.driver).await.unwrap();
    assert_eq!(
        collect(&f.driver, &opts(false, false, Duration::ZERO))
            .await
            .unwrap()
            .blobs_deleted
            .len(),
        1
    );
    collect(&f.driver, &opts(false, false, Duration::ZERO))
        .await
        .unwrap();
}
