//! The driver conformance suite: what every [`Driver`] must do, written once against `Arc<dyn Driver>` (as
//! distribution's `registry/storage/driver/testsuites`) and run against each driver.
//!
//! A driver's tests invoke [`crate::driver_conformance_tests!`] with an async block that yields a guard (kept
//! alive for the test, e.g. a temporary directory or a bucket fixture) and a fresh, empty driver; the macro
//! makes one `#[tokio::test]` per case below.

use super::{check_key, Driver, DriverError};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Makes one test per conformance case for the driver `$make` builds.
#[macro_export]
macro_rules! driver_conformance_tests {
    ($make:expr) => {
        mod conformance {
            use super::*;
            use $crate::storage::driver::conformance as suite;
            $crate::driver_conformance_tests!(@cases $make;
                atomic_writes_replace_whole_objects,
                concurrent_readers_never_see_a_partial_object,
                ranged_reads,
                writer_commit_and_cancel,
                parked_chunks_count_and_are_sealed_whole,
                stat_reports_size_and_mtime,
                list_and_walk,
                rename_moves_and_replaces,
                delete_files_and_trees,
                hostile_keys_are_refused,
                redirect_and_readiness,
                create_new_writes_only_when_absent,
                directory_pages_continue_in_prefix_order);
        }
    };
    (@cases $make:expr; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (_guard, driver) = $make.await;
                suite::$case(driver).await;
            }
        )*
    };
}

/// A deterministic byte pattern that shows where a slice came from.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
        .collect()
}

/// Everything a ranged read yields, concatenated.
async fn read_all(
    d: &dyn Driver,
    key: &str,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>, DriverError> {
    let mut s = d.read_range(key, offset, len).await?;
    let mut out = Vec::new();
    while let Some(c) = s.next_chunk().await.expect("stream chunk") {
        assert!(
            !c.is_empty() || out.is_empty(),
            "{key}: empty chunk mid-stream"
        );
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// A write replaces the whole object; small and empty objects round-trip.
pub async fn atomic_writes_replace_whole_objects(d: Arc<dyn Driver>) {
    let k = "c/atomic/link";
    d.write_atomic(k, b"sha256:one").await.unwrap();
    assert_eq!(&d.read(k, 64).await.unwrap()[..], b"sha256:one");
    d.write_atomic(k, b"two").await.unwrap();
    assert_eq!(&d.read(k, 64).await.unwrap()[..], b"two");
    d.write_atomic(k, b"").await.unwrap();
    assert_eq!(d.read(k, 64).await.unwrap(), Bytes::new());
    assert_eq!(d.stat(k).await.unwrap().unwrap().size, 0);
    assert!(matches!(
        d.read("c/atomic/absent", 64).await,
        Err(DriverError::NotFound { .. })
    ));
    d.write_atomic(k, &[1u8; 100]).await.unwrap();
    assert!(matches!(
        d.read(k, 99).await,
        Err(DriverError::TooLarge { max: 99, .. })
    ));
}

/// While writers replace an object again and again, every read sees one complete version.
pub async fn concurrent_readers_never_see_a_partial_object(d: Arc<dyn Driver>) {
    let k = "c/race/data";
    let versions: Vec<Vec<u8>> = (0..4u8).map(|v| vec![v; 300_000 + v as usize]).collect();
    d.write_atomic(k, &versions[0]).await.unwrap();
    let writer = {
        let (d, versions) = (d.clone(), versions.clone());
        tokio::spawn(async move {
            for round in 0..24 {
                d.write_atomic(k, &versions[round % versions.len()])
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 8 {
        let got = d.read(k, 1 << 20).await.unwrap();
        assert!(
            versions.iter().any(|v| v[..] == got[..]),
            "a reader saw {} bytes that are no version",
            got.len()
        );
        reads += 1;
    }
    writer.await.unwrap();
}

/// Ranged reads at the start, middle and end, clipped at the end, empty at the end, refused past it.
pub async fn ranged_reads(d: Arc<dyn Driver>) {
    let k = "c/range/data";
    // Longer than a few read chunks of any driver, and not a multiple of a power of two.
    let data = pattern(3 * 256 * 1024 + 4099);
    let n = data.len() as u64;
    d.write_atomic(k, &data).await.unwrap();
    let table: &[(u64, u64, std::ops::Range<usize>)] = &[
        (0, n, 0..data.len()),
        (0, u64::MAX, 0..data.len()),
        (0, 10, 0..10),
        (0, 0, 0..0),
        (1, 1, 1..2),
        (262_143, 3, 262_143..262_146),
        (300_000, 400_000, 300_000..700_000),
        (n - 10, 10, data.len() - 10..data.len()),
        (n - 10, 1000, data.len() - 10..data.len()),
        (n - 1, u64::MAX, data.len() - 1..data.len()),
        (n, 5, data.len()..data.len()),
    ];
    for (offset, len, want) in table {
        let got = read_all(&*d, k, *offset, *len).await.unwrap();
        assert!(
            got[..] == data[want.clone()],
            "range {offset}+{len}: {} bytes, wanted {:?}",
            got.len(),
            want
        );
    }
    for offset in [n + 1, u64::MAX] {
        assert!(matches!(
            d.read_range(k, offset, 1).await,
            Err(DriverError::InvalidOffset { size, .. }) if size == n
        ));
    }
    for missing in ["c/range/absent", "c/range"] {
        // An absent key, and a prefix (not an object).
        assert!(
            matches!(
                d.read_range(missing, 0, 1).await,
                Err(DriverError::NotFound { .. })
            ),
            "{missing}"
        );
    }
    // An empty object.
    d.write_atomic("c/range/empty", b"").await.unwrap();
    assert!(read_all(&*d, "c/range/empty", 0, 10)
        .await
        .unwrap()
        .is_empty());
    // A stream dropped half way leaves the object readable.
    let mut s = d.read_range(k, 0, n).await.unwrap();
    s.next_chunk().await.unwrap().unwrap();
    drop(s);
    assert_eq!(read_all(&*d, k, 0, n).await.unwrap(), data);
}

/// A writer's bytes count only once committed; a cancelled chunk leaves the object as it was.
pub async fn writer_commit_and_cancel(d: Arc<dyn Driver>) {
    let k = "c/upload/data";
    let mut w = d.writer(k).await.unwrap();
    assert!(w.is_empty());
    w.write(b"hello").await.unwrap();
    w.write(b", ").await.unwrap();
    assert_eq!(w.len(), 7);
    assert_eq!(w.commit().await.unwrap(), 7);
    assert_eq!(read_all(&*d, k, 0, 100).await.unwrap(), b"hello, ");

    // A chunk that fails is cancelled: nothing of it remains, and the next chunk continues the object.
    let mut w = d.writer(k).await.unwrap();
    assert_eq!(w.len(), 7);
    w.write(&[b'x'; 70_000]).await.unwrap();
    w.cancel().await.unwrap();
    assert_eq!(d.stat(k).await.unwrap().unwrap().size, 7);
    assert_eq!(read_all(&*d, k, 0, u64::MAX).await.unwrap(), b"hello, ");
    let mut w = d.writer(k).await.unwrap();
    w.write(b"world").await.unwrap();
    assert_eq!(w.commit().await.unwrap(), 12);
    assert_eq!(&d.read(k, 100).await.unwrap()[..], b"hello, world");

    // An empty commit changes nothing; a writer on a new key creates it, empty.
    assert_eq!(d.writer(k).await.unwrap().commit().await.unwrap(), 12);
    let fresh = "c/upload2/data";
    assert_eq!(d.writer(fresh).await.unwrap().commit().await.unwrap(), 0);
    assert_eq!(d.stat(fresh).await.unwrap().unwrap().size, 0);
    let mut w = d.writer(fresh).await.unwrap();
    w.write(b"never").await.unwrap();
    w.cancel().await.unwrap();
    assert_eq!(d.stat(fresh).await.unwrap().map_or(0, |m| m.size), 0);

    // Committed upload data renamed to a final key arrives whole.
    d.rename(k, "c/final/data").await.unwrap();
    assert_eq!(
        &d.read("c/final/data", 100).await.unwrap()[..],
        b"hello, world"
    );
    assert_eq!(d.stat(k).await.unwrap(), None);
}

/// Parked chunks ([`super::Writer::park`]) count for the next writer and [`Driver::append_len`] at once, a
/// cancelled chunk after them counts nothing, and after [`Driver::seal`] readers see every byte in order (the
/// default driver parks by committing; object storage keeps one multipart upload open).
pub async fn parked_chunks_count_and_are_sealed_whole(d: Arc<dyn Driver>) {
    let k = "c/parked/data";
    assert_eq!(d.append_len(k).await.unwrap(), None);
    d.seal(k).await.unwrap();
    assert_eq!(d.writer(k).await.unwrap().commit().await.unwrap(), 0);
    assert_eq!(d.append_len(k).await.unwrap(), Some(0));
    let data = pattern(300_000);
    let mut at = 0;
    for (i, size) in [1usize, 70_000, 0, 100_000, 128_999]
        .into_iter()
        .enumerate()
    {
        let mut w = d.writer(k).await.unwrap();
        assert_eq!(w.len(), at as u64, "chunk {i}");
        w.write(&data[at..at + size]).await.unwrap();
        at += size;
        assert_eq!(w.park().await.unwrap(), at as u64, "chunk {i}");
        assert_eq!(d.append_len(k).await.unwrap(), Some(at as u64));
        let mut cut = d.writer(k).await.unwrap();
        cut.write(&[b'x'; 5000]).await.unwrap();
        cut.cancel().await.unwrap();
        assert_eq!(d.append_len(k).await.unwrap(), Some(at as u64));
    }
    d.seal(k).await.unwrap();
    d.seal(k).await.unwrap();
    assert_eq!(d.stat(k).await.unwrap().unwrap().size, at as u64);
    assert!(read_all(&*d, k, 0, u64::MAX).await.unwrap() == data[..at]);
    // A commit after parked chunks seals them with its own bytes.
    let mut w = d.writer(k).await.unwrap();
    w.write(&data[at..at + 1000]).await.unwrap();
    at += 1000;
    assert_eq!(w.park().await.unwrap(), at as u64);
    let mut w = d.writer(k).await.unwrap();
    w.write(&data[at..]).await.unwrap();
    assert_eq!(w.commit().await.unwrap(), data.len() as u64);
    assert!(read_all(&*d, k, 0, u64::MAX).await.unwrap() == data);
    d.delete("c/parked").await.unwrap();
    assert_eq!(d.append_len(k).await.unwrap(), None);
}

/// `stat` gives size, kind and a modification time close to now.
pub async fn stat_reports_size_and_mtime(d: Arc<dyn Driver>) {
    let before = SystemTime::now() - Duration::from_secs(120);
    d.write_atomic("c/stat/a/file", &[0u8; 1234]).await.unwrap();
    let after = SystemTime::now() + Duration::from_secs(120);
    let m = d.stat("c/stat/a/file").await.unwrap().unwrap();
    assert_eq!((m.size, m.is_dir), (1234, false));
    assert!(
        m.modified >= before && m.modified <= after,
        "mtime {:?}",
        m.modified
    );
    let dir = d.stat("c/stat/a").await.unwrap().unwrap();
    assert!(dir.is_dir);
    assert_eq!(d.stat("c/stat/absent").await.unwrap(), None);
    // Below a file is nothing.
    assert_eq!(d.stat("c/stat/a/file/below").await.unwrap(), None);
}

/// `list` gives one level, sorted, with kinds; `walk` gives every object below a prefix with its size.
pub async fn list_and_walk(d: Arc<dyn Driver>) {
    let objects: BTreeMap<&str, usize> = [
        ("c/tree/4", 4),
        ("c/tree/b/1", 1),
        ("c/tree/b/2", 2),
        ("c/tree/c/d/3", 3),
        ("c/treeish/x", 9),
    ]
    .into_iter()
    .collect();
    for (k, n) in &objects {
        d.write_atomic(k, &vec![7u8; *n]).await.unwrap();
    }
    let listed: Vec<(String, bool)> = d
        .list("c/tree")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.is_dir))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("4".to_string(), false),
            ("b".to_string(), true),
            ("c".to_string(), true)
        ]
    );
    assert!(d.list("c/absent").await.unwrap_err().is_not_found());

    let mut walk = d.walk("c/tree").await.unwrap();
    let mut seen = BTreeMap::new();
    while let Some(e) = walk.next().await.unwrap() {
        assert!(
            seen.insert(e.key.clone(), e.size).is_none(),
            "{} twice",
            e.key
        );
    }
    let want: BTreeMap<String, u64> = objects
        .iter()
        .filter(|(k, _)| k.starts_with("c/tree/"))
        .map(|(k, n)| (k.to_string(), *n as u64))
        .collect();
    assert_eq!(seen, want);
    let mut none = d.walk("c/absent").await.unwrap();
    assert_eq!(none.next().await.unwrap(), None);
    // A walk of keys finds the same keys (sizes and times may be left out).
    for (prefix, want) in [
        ("c/tree", want.keys().cloned().collect::<Vec<_>>()),
        ("c/absent", vec![]),
    ] {
        let mut walk = d.walk_keys(prefix).await.unwrap();
        let mut keys = Vec::new();
        while let Some(e) = walk.next().await.unwrap() {
            keys.push(e.key);
        }
        keys.sort();
        assert_eq!(keys, want, "walk_keys {prefix}");
    }
}

/// `rename` moves an object, replacing what is at the target.
pub async fn rename_moves_and_replaces(d: Arc<dyn Driver>) {
    d.write_atomic("c/mv/from", b"new").await.unwrap();
    d.write_atomic("c/mv/to/data", b"old content")
        .await
        .unwrap();
    d.rename("c/mv/from", "c/mv/to/data").await.unwrap();
    assert_eq!(&d.read("c/mv/to/data", 64).await.unwrap()[..], b"new");
    assert_eq!(d.stat("c/mv/from").await.unwrap(), None);
    d.rename("c/mv/to/data", "c/mv/elsewhere/deep/data")
        .await
        .unwrap();
    assert_eq!(
        &d.read("c/mv/elsewhere/deep/data", 64).await.unwrap()[..],
        b"new"
    );
    assert!(d
        .rename("c/mv/absent", "c/mv/x")
        .await
        .unwrap_err()
        .is_not_found());
}

/// `delete` removes a file or a whole tree, only that, and succeeds when nothing is there.
pub async fn delete_files_and_trees(d: Arc<dyn Driver>) {
    for k in ["c/del/f", "c/del/t/a", "c/del/t/b/c", "c/del/tt/keep"] {
        d.write_atomic(k, b"x").await.unwrap();
    }
    d.delete("c/del/f").await.unwrap();
    assert_eq!(d.stat("c/del/f").await.unwrap(), None);
    d.delete("c/del/t").await.unwrap();
    assert_eq!(d.stat("c/del/t/a").await.unwrap(), None);
    assert_eq!(d.stat("c/del/t/b/c").await.unwrap(), None);
    assert_eq!(d.stat("c/del/t").await.unwrap(), None);
    // A sibling that shares the prefix's characters is not under it.
    assert_eq!(&d.read("c/del/tt/keep", 8).await.unwrap()[..], b"x");
    d.delete("c/del/t").await.unwrap();
    d.delete("c/del/never").await.unwrap();
}

/// Keys that could leave the root are refused by every operation, before anything is touched.
pub async fn hostile_keys_are_refused(d: Arc<dyn Driver>) {
    let long = "a/".repeat(600) + "b";
    let hostile = [
        "",
        "/",
        "/etc/passwd",
        "..",
        "../outside",
        "c/../../outside",
        "c/..",
        "./c",
        "c//d",
        "c/",
        "c\\..\\..\\x",
        "c\0d",
        "c\nd",
        long.as_str(),
    ];
    for bad in hostile {
        assert!(check_key(bad).is_err(), "{bad:?} passes check_key");
        let invalid =
            |r: Result<(), DriverError>| matches!(r, Err(DriverError::InvalidPath { .. }));
        assert!(invalid(d.stat(bad).await.map(drop)), "stat {bad:?}");
        assert!(invalid(d.read(bad, 10).await.map(drop)), "read {bad:?}");
        assert!(
            invalid(d.read_range(bad, 0, 1).await.map(drop)),
            "read_range {bad:?}"
        );
        assert!(
            invalid(d.write_atomic(bad, b"x").await),
            "write_atomic {bad:?}"
        );
        assert!(invalid(d.writer(bad).await.map(drop)), "writer {bad:?}");
        assert!(invalid(d.rename(bad, "c/ok").await), "rename from {bad:?}");
        assert!(invalid(d.rename("c/ok", bad).await), "rename to {bad:?}");
        assert!(invalid(d.list(bad).await.map(drop)), "list {bad:?}");
        assert!(invalid(d.walk(bad).await.map(drop)), "walk {bad:?}");
        assert!(invalid(d.delete(bad).await), "delete {bad:?}");
        assert!(
            invalid(d.redirect_url(bad).await.map(drop)),
            "redirect_url {bad:?}"
        );
    }
}

/// A redirect, when a driver gives one, is an absolute http(s) URL; a writable driver is ready.
pub async fn redirect_and_readiness(d: Arc<dyn Driver>) {
    d.write_atomic("c/redirect/data", b"blob").await.unwrap();
    if let Some(url) = d.redirect_url("c/redirect/data").await.unwrap() {
        assert!(
            url.starts_with("https://") || url.starts_with("http://"),
            "{url}"
        );
    }
    assert_eq!(d.ready().await, Ok(()));
    // The probe leaves no object behind.
    let mut walk = d.walk(super::READY_PREFIX).await.unwrap();
    assert_eq!(walk.next().await.unwrap(), None);
}

/// `create_new` writes only when nothing is at the key: of many racing creators exactly one wins, the object
/// holds the winner's bytes, and a deleted object can be created again. A driver without it says so
/// ([`DriverError::Unsupported`]) rather than overwrite.
pub async fn create_new_writes_only_when_absent(d: Arc<dyn Driver>) {
    match d.create_new("c/lock/one", b"first").await {
        Err(DriverError::Unsupported { .. }) => return,
        r => assert!(r.unwrap(), "the first create writes"),
    }
    assert!(!d.create_new("c/lock/one", b"second").await.unwrap());
    assert_eq!(&d.read("c/lock/one", 64).await.unwrap()[..], b"first");
    // An object written otherwise counts as present too.
    d.write_atomic("c/lock/two", b"atomic").await.unwrap();
    assert!(!d.create_new("c/lock/two", b"x").await.unwrap());
    assert_eq!(&d.read("c/lock/two", 64).await.unwrap()[..], b"atomic");
    d.delete("c/lock/one").await.unwrap();
    assert!(d.create_new("c/lock/one", b"again").await.unwrap());
    assert_eq!(&d.read("c/lock/one", 64).await.unwrap()[..], b"again");
    let racers: Vec<_> = (0..16u8)
        .map(|i| {
            let d = d.clone();
            tokio::spawn(async move { (i, d.create_new("c/lock/race", &[i]).await.unwrap()) })
        })
        .collect();
    let mut winners = Vec::new();
    for r in racers {
        let (i, won) = r.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creator wins: {winners:?}");
    assert_eq!(&d.read("c/lock/race", 8).await.unwrap()[..], &[winners[0]]);
    assert!(matches!(
        d.create_new("../escape", b"x").await,
        Err(DriverError::InvalidPath { .. })
    ));
    // Nothing staged is left behind where a walk would see it.
    let mut walk = d.walk("c/lock").await.unwrap();
    let mut keys = Vec::new();
    while let Some(e) = walk.next().await.unwrap() {
        keys.push(e.key);
    }
    keys.sort();
    assert_eq!(keys, ["c/lock/one", "c/lock/race", "c/lock/two"]);
}

/// Directory pages come in the order of `name/` (`a-b/` < `a.b/` < `a/` < `a0/`), from `after`, `limit` at a
/// time, objects beside them ignored, and the continuations cover every directory once.
pub async fn directory_pages_continue_in_prefix_order(d: Arc<dyn Driver>) {
    let names = ["a", "a-b", "a.b", "a0", "b", "c"];
    for n in names {
        d.write_atomic(&format!("c/pages/{n}/x/y"), b"x")
            .await
            .unwrap();
    }
    d.write_atomic("c/pages/a-object", b"x").await.unwrap();
    let want = ["a-b", "a.b", "a", "a0", "b", "c"];
    for limit in [1, 2, 4, 100] {
        let (mut got, mut after) = (Vec::new(), String::new());
        loop {
            let page = d.list_dirs_after("c/pages", &after, limit).await.unwrap();
            assert!(page.names.len() <= limit, "limit {limit}: {page:?}");
            got.extend(page.names);
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(got, want, "limit {limit}");
    }
    let from_a = d.list_dirs_after("c/pages", "a.c", 100).await.unwrap();
    assert_eq!(
        from_a.names,
        ["a", "a0", "b", "c"],
        "a/ sorts after a.c, a.b/ before"
    );
    let past_a = d.list_dirs_after("c/pages", "a0", 100).await.unwrap();
    assert_eq!(past_a.names, ["a0", "b", "c"]);
    let none = d.list_dirs_after("c/absent", "", 10).await.unwrap();
    assert_eq!((none.names.len(), none.next), (0, None));
}
