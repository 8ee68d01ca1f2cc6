use super::*;
use crate::storage::driver::hooked::Hooked;
use crate::storage::driver::s3::{testing, S3Driver};
use crate::storage::driver::{Driver, FsDriver};
use std::sync::Arc;

/// Nested names, with separators that sort before `/` (`-`, `.`) and after it (`0`, `_`, letters), repositories
/// inside repositories, and ones whose parents are not repositories.
const REPOS: &[&str] = &[
    "0",
    "0/1",
    "a",
    "a-b",
    "a-b/c",
    "a.b",
    "a/b",
    "a/b-c",
    "a/b/c",
    "a0",
    "a__b",
    "ab",
    "team",
    "team-x/app",
    "team/app",
    "team/app-x",
    "team/app.y/z",
    "z/y/x/w",
];

/// Directories that are not repositories: only uploads, hidden or `_` parents, invalid names.
const NOT_REPOS: &[&str] = &[
    "up/_uploads/u1/data",
    "a/.hidden/_manifests/x",
    "a/_b/_manifests/x",
    "Bad/_manifests/x",
    "a/B/_layers/x",
    "team/app/_uploads/u2/data",
];

/// Lasts a client may send: every name, names between them, and hostile ones.
fn lasts() -> Vec<String> {
    let mut v: Vec<String> = REPOS.iter().map(|s| s.to_string()).collect();
    for odd in [
        "",
        "/",
        "a/",
        "a-",
        "a-b/",
        "a//b",
        "a0/",
        "team/",
        "team/app/",
        "tea",
        "teamz",
        "zzzz",
        "_",
        ".",
        "../x",
        "\u{10ffff}",
        "a/b/c/d/e",
        "0/",
    ] {
        v.push(odd.to_string());
    }
    v.push("a".repeat(5000));
    v
}

/// What the catalog must answer: the names after `last`, in byte order, the first `n`.
fn oracle(last: &str, n: Option<usize>) -> Vec<String> {
    let mut all: Vec<String> = REPOS.iter().map(|s| s.to_string()).collect();
    all.sort();
    all.retain(|r| r.as_str() > last);
    all.truncate(n.unwrap_or(usize::MAX));
    all
}

async fn fill(d: &dyn Driver) {
    let root = paths::repositories_root();
    for (i, r) in REPOS.iter().enumerate() {
        let marker = if i % 2 == 0 {
            "_manifests/tags/t/current/link"
        } else {
            "_layers/sha256/ab/link"
        };
        d.write_atomic(&format!("{root}/{r}/{marker}"), b"x")
            .await
            .unwrap();
    }
    for k in NOT_REPOS {
        d.write_atomic(&format!("{root}/{k}"), b"x").await.unwrap();
    }
}

async fn fs_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let d = FsDriver::new(dir.path()).await.unwrap();
    fill(&d).await;
    (dir, Store::with_driver(Arc::new(d), false))
}

async fn s3_store() -> (testing::Bucket, Store) {
    let bucket = testing::bucket().await;
    let d = S3Driver::open(&bucket.settings()).await.unwrap();
    fill(&d).await;
    (bucket, Store::with_driver(Arc::new(d), false))
}

/// Follows pages of `n` as a client does with `Link`: each page asks for one more name to know whether more remain.
async fn pages(store: &Store, n: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let mut page = store
            .catalog_page(last.as_deref(), Some(n + 1), &|_| true)
            .await
            .unwrap();
        let more = page.len() > n;
        page.truncate(n);
        last = page.last().cloned();
        out.push(page);
        if !more {
            return out;
        }
        assert!(out.len() <= REPOS.len(), "endless paging");
    }
}

#[tokio::test]
async fn every_page_after_any_last_is_the_sorted_names_after_it() {
    let (_d, store) = fs_store().await;
    assert_eq!(store.catalog().await.unwrap(), oracle("", None));
    for last in lasts() {
        for n in [None, Some(1), Some(2), Some(3), Some(100)] {
            let got = store.catalog_page(Some(&last), n, &|_| true).await.unwrap();
            assert_eq!(got, oracle(&last, n), "last={last:.40} n={n:?}");
        }
    }
    assert!(store
        .catalog_page(None, Some(0), &|_| true)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn pages_are_filled_with_visible_names_only() {
    let (_d, store) = fs_store().await;
    let visible = |n: &Name| n.as_str().starts_with("team");
    let got = store
        .catalog_page(Some("team"), Some(2), &visible)
        .await
        .unwrap();
    assert_eq!(got, ["team-x/app", "team/app"]);
    let all = store.catalog_page(None, None, &visible).await.unwrap();
    assert_eq!(
        all,
        [
            "team",
            "team-x/app",
            "team/app",
            "team/app-x",
            "team/app.y/z"
        ]
    );
}

/// The S3 catalog and the filesystem catalog answer the same pages for the same names (n = 1..3, following
/// `last`), and the same page after any `last`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_and_fs_catalogs_page_identically() {
    let (_d, fs) = fs_store().await;
    let (_b, s3) = s3_store().await;
    assert_eq!(s3.catalog().await.unwrap(), fs.catalog().await.unwrap());
    for n in 1..=3 {
        let (a, b) = (pages(&fs, n).await, pages(&s3, n).await);
        assert_eq!(a, b, "n={n}");
        let flat: Vec<String> = a.concat();
        assert_eq!(flat, oracle("", None), "n={n}");
    }
    for last in lasts() {
        let got = s3
            .catalog_page(Some(&last), Some(2), &|_| true)
            .await
            .unwrap();
        assert_eq!(got, oracle(&last, Some(2)), "last={last:.40}");
    }
}

/// A page lists the directories on the way to it, not every repository (distribution #947).
#[tokio::test]
async fn a_page_lists_what_it_shows_not_every_repository() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(Hooked::new(FsDriver::new(dir.path()).await.unwrap()));
    let root = paths::repositories_root();
    for i in 0..300 {
        d.write_atomic(&format!("{root}/r{i:03}/_manifests/x"), b"x")
            .await
            .unwrap();
    }
    let store = Store::with_driver(d.clone(), false);
    d.take_listings();
    let page = store
        .catalog_page(Some("r150"), Some(3), &|_| true)
        .await
        .unwrap();
    assert_eq!(page, ["r151", "r152", "r153"]);
    let listed = d.take_listings();
    // The top directory, `r150` itself (it might hold `r150/x`), and the three shown.
    assert_eq!(listed, 5, "listings for a page of 3");
    assert_eq!(store.catalog().await.unwrap().len(), 300);
    assert!(
        d.take_listings() >= 300,
        "the whole catalog lists every repository"
    );
}

#[test]
fn listing_starts_and_bounds_are_lower_bounds() {
    assert_eq!(start_after("", "team/app"), "team");
    assert_eq!(start_after("team", "team/app/x"), "app");
    assert_eq!(start_after("team", "team-x"), "");
    assert_eq!(start_after("", ""), "");
    assert_eq!(start_after("", &"a".repeat(300)).len(), MAX_START);
    assert_eq!(lower_bound("a-b0"), "a");
    assert_eq!(lower_bound("ab.c"), "ab");
    assert_eq!(lower_bound("-x"), "-x");
    assert_eq!(lower_bound("abc0"), "abc0");
    assert!(
        reaches_past("a", "a-b")
            && reaches_past("team", "team")
            && reaches_past("team", "team/app")
    );
    assert!(!reaches_past("tea", "team") && !reaches_past("a", "a0"));
}
