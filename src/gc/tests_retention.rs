//! Retention rules applied by the collector on a real store: tags by push time, untagged manifests by age,
//! dry runs, and online runs.

use super::*;

fn rules(text: &str) -> Vec<retention::Rule> {
    #[derive(serde::Deserialize)]
    struct F {
        retention: Vec<toml::Table>,
    }
    retention::parse(&toml::from_str::<F>(text).unwrap().retention).unwrap()
}

/// Sets a tag's push time (its current link's modification time) to `minutes` after the epoch.
fn pushed_at(f: &Fixture, repo: &str, tag: &str, minutes: u64) {
    let key = crate::storage::paths::tag_current_link(
        &Name::parse(repo).unwrap(),
        &Tag::parse(tag).unwrap(),
    );
    let file = std::fs::File::options()
        .write(true)
        .open(f._dir.path().join(key))
        .unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(minutes * 60))
        .unwrap();
}

/// Four tagged images in `app` pushed in the order t1..t4 (t4 newest), one in `other`.
async fn four(f: &Fixture) -> Vec<(Digest, Vec<Digest>)> {
    let mut out = Vec::new();
    for (i, t) in ["t1", "t2", "t3", "t4"].into_iter().enumerate() {
        out.push(f.image("app", Some(t), t, None).await);
        pushed_at(f, "app", t, 10 + i as u64);
    }
    f.image("other", Some("t1"), "other", None).await;
    pushed_at(f, "other", "t1", 1);
    out
}

async fn tags_of(f: &Fixture, repo: &str) -> Vec<String> {
    f.store
        .list_tags(&Name::parse(repo).unwrap())
        .await
        .unwrap()
}

const KEEP_TWO: &str = r#"[[retention]]
repositories = ["app"]
keep_last = 2
untagged_older_than = "0s""#;

#[tokio::test]
async fn retention_deletes_the_oldest_tags_and_their_manifests_and_a_dry_run_changes_nothing() {
    let f = fixture().await;
    let images = four(&f).await;
    let before = f.tree().await;
    let mut o = opts(false, true, Duration::ZERO);
    o.retention = rules(KEEP_TWO);
    let dry = collect(&f.driver, &o).await.unwrap();
    assert_eq!(f.tree().await, before, "a dry run changes nothing");
    let doomed = |r: &Report| {
        r.tags_deleted
            .iter()
            .map(|(n, t)| format!("{n}:{t}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(doomed(&dry), ["app:t1", "app:t2"]);
    assert_eq!(dry.manifests_deleted.len(), 2, "{dry:?}");
    o.dry_run = false;
    let r = collect(&f.driver, &o).await.unwrap();
    assert_eq!(doomed(&r), doomed(&dry));
    assert_eq!(r.retention_manifests, 2);
    assert_eq!(
        r.blobs_deleted.len(),
        dry.blobs_deleted.len(),
        "the dry run said what goes"
    );
    assert_eq!(tags_of(&f, "app").await, ["t3", "t4"]);
    assert_eq!(tags_of(&f, "other").await, ["t1"], "no rule matches other");
    let left = f.blobs().await;
    for (i, (m, blobs)) in images.iter().enumerate() {
        let kept = i >= 2;
        assert_eq!(left.contains(m), kept, "manifest of t{}", i + 1);
        assert!(blobs.iter().all(|b| left.contains(b) == kept), "t{}", i + 1);
    }
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
}

#[tokio::test]
async fn retention_without_an_untagged_age_deletes_tags_but_keeps_their_manifests() {
    let f = fixture().await;
    let images = four(&f).await;
    let mut o = opts(false, false, Duration::ZERO);
    o.retention = rules(
        r#"[[retention]]
repositories = ["**"]
keep_tags = ["t2"]
keep_last = 1"#,
    );
    let r = collect(&f.driver, &o).await.unwrap();
    assert_eq!(tags_of(&f, "app").await, ["t2", "t4"]);
    assert_eq!(tags_of(&f, "other").await, ["t1"]);
    assert!(
        r.manifests_deleted.is_empty() && r.blobs_deleted.is_empty(),
        "{r:?}"
    );
    let left = f.blobs().await;
    assert!(images.iter().all(|(m, _)| left.contains(m)));
}

#[tokio::test]
async fn an_untagged_manifest_younger_than_the_rules_age_stays() {
    let f = fixture().await;
    let (young, young_blobs) = f.image("app", None, "young", None).await;
    let mut o = opts(false, false, Duration::ZERO);
    o.retention = rules(
        r#"[[retention]]
repositories = ["app"]
untagged_older_than = "1h""#,
    );
    let r = collect(&f.driver, &o).await.unwrap();
    assert!(r.manifests_deleted.is_empty(), "{r:?}");
    o.now = SystemTime::now() + Duration::from_secs(7200);
    let r = collect(&f.driver, &o).await.unwrap();
    assert_eq!(r.manifests_deleted.len(), 1);
    let left = f.blobs().await;
    assert!(!left.contains(&young) && young_blobs.iter().all(|b| !left.contains(b)));
}

#[tokio::test]
async fn online_retention_deletes_tags_but_never_one_pushed_within_the_grace() {
    let f = fixture().await;
    four(&f).await;
    let mut o = opts(false, false, Duration::from_secs(3600));
    o.retention = rules(KEEP_TWO);
    let r = online::collect_online(&f.driver, &o, &mut Default::default())
        .await
        .unwrap();
    assert_eq!(r.tags_deleted.len(), 2);
    assert_eq!(tags_of(&f, "app").await, ["t3", "t4"]);
    // A fresh push is within the grace: keep_last counts it, but it never goes.
    f.image("app", Some("t5"), "t5", None).await;
    o.now = SystemTime::now();
    let r = online::collect_online(&f.driver, &o, &mut Default::default())
        .await
        .unwrap();
    assert_eq!(tags_of(&f, "app").await, ["t4", "t5"], "{r:?}");
    assert_eq!(fsck::fsck(&f.driver, false).await.unwrap().findings, []);
}
