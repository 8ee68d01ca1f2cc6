//! Walks of big trees, split into subtrees walked a few at a time. On a disk every directory read is one
//! blocking job: one walk at a time spends most of its time handing jobs to the blocking pool and back, while
//! [`PARALLEL`] walks keep the disk busy. On object storage it is that many listings in flight.

use crate::storage::driver::{Assume, Assumed, Driver, DriverError, WalkEntry};
use futures::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::pin::Pin;

/// A boxed driver job (boxed so that the futures' lifetimes stay simple for the `Send` checks).
type Job<'a, T> = Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 'a>>;

/// Runs `jobs`, [`PARALLEL`] at a time; the results in completion order, or the first error.
async fn run_all<'a, T: Send + 'a>(jobs: Vec<Job<'a, T>>) -> Result<Vec<T>, DriverError> {
    let mut jobs = jobs.into_iter();
    let mut running = FuturesUnordered::new();
    let mut out = Vec::new();
    loop {
        while running.len() < PARALLEL {
            let Some(j) = jobs.next() else { break };
            running.push(j);
        }
        match running.next().await {
            Some(r) => out.push(r?),
            None => return Ok(out),
        }
    }
}

/// How many subtrees are walked, and how many objects are deleted, at once.
pub const PARALLEL: usize = 16;

/// Subtrees are split off until there are this many (or the tree is [`MAX_SPLIT_DEPTH`] deep).
const ENOUGH_SUBTREES: usize = PARALLEL * 8;

/// How deep the split looks.
const MAX_SPLIT_DEPTH: usize = 3;

/// The entries of `dir` (`true`: a directory); a listing that fails (a file, say) makes `dir` a subtree of
/// its own: its walk reports what is wrong.
async fn list(driver: &dyn Driver, dir: &str) -> Result<Vec<(String, bool)>, DriverError> {
    match driver.list(dir).await {
        Ok(entries) => Ok(entries
            .into_iter()
            .map(|e| (format!("{dir}/{}", e.name), e.is_dir))
            .collect()),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(_) => Ok(vec![(dir.to_string(), false)]),
    }
}

/// What a walk reports of each object.
#[derive(Clone, Copy)]
enum How {
    /// Keys, sizes and times ([`Driver::walk`]).
    Full,
    /// Keys, leaf directories unread ([`Driver::walk_keys_assuming`]).
    Assuming(Assume),
}

async fn walk_one(
    driver: &dyn Driver,
    prefix: String,
    how: How,
) -> Result<Vec<WalkEntry>, DriverError> {
    let mut walk = match how {
        How::Full => driver.walk(&prefix).await?,
        How::Assuming(assume) => driver.walk_keys_assuming(&prefix, assume).await?,
    };
    let mut out = Vec::new();
    while let Some(e) = walk.next().await? {
        out.push(e);
    }
    Ok(out)
}

/// Every object under `root`, sorted by key (what one [`Driver::walk`] of it finds).
pub async fn walk_all(driver: &dyn Driver, root: &str) -> Result<Vec<WalkEntry>, DriverError> {
    walk_split(driver, root, How::Full).await
}

/// Every key under `root`, sorted, as [`walk_all`] but through [`Driver::walk_keys_assuming`]: sizes and
/// times may be missing (0 and the epoch), and the directories `assume` names an object for are taken to
/// hold it, unread.
pub async fn walk_all_assuming(
    driver: &dyn Driver,
    root: &str,
    assume: Assume,
) -> Result<Vec<WalkEntry>, DriverError> {
    walk_split(driver, root, How::Assuming(assume)).await
}

async fn walk_split(
    driver: &dyn Driver,
    root: &str,
    how: How,
) -> Result<Vec<WalkEntry>, DriverError> {
    let mut subtrees = vec![root.to_string()];
    let mut files: Vec<String> = Vec::new();
    let mut out: Vec<WalkEntry> = Vec::new();
    for _ in 0..MAX_SPLIT_DEPTH {
        if subtrees.len() >= ENOUGH_SUBTREES {
            break;
        }
        let jobs: Vec<Job<'_, Vec<(String, bool)>>> = subtrees
            .iter()
            .map(|d| Box::pin(list(driver, d)) as Job<'_, _>)
            .collect();
        let listed = run_all(jobs).await?;
        let mut next = Vec::new();
        for (key, is_dir) in listed.into_iter().flatten() {
            let assumed = match how {
                How::Assuming(assume) if is_dir => assume(&key),
                _ => None,
            };
            match (assumed, is_dir) {
                (Some(Assumed::Holds(object)), _) => out.push(WalkEntry {
                    key: format!("{key}/{object}"),
                    size: 0,
                    modified: std::time::SystemTime::UNIX_EPOCH,
                }),
                (Some(Assumed::Skipped), _) => {}
                (None, true) => next.push(key),
                (None, false) => files.push(key),
            }
        }
        subtrees = next;
    }
    // Files met while splitting are walked as prefixes of their own (a walk of a file finds the file).
    let jobs: Vec<Job<'_, Vec<WalkEntry>>> = subtrees
        .into_iter()
        .chain(files)
        .map(|p| Box::pin(walk_one(driver, p, how)) as Job<'_, _>)
        .collect();
    out.extend(run_all(jobs).await?.into_iter().flatten());
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    Ok(out)
}

/// The sizes of `keys` (a key that is gone has none), [`PARALLEL`] stats at a time.
pub async fn sizes(driver: &dyn Driver, keys: &[&str]) -> Result<Vec<Option<u64>>, DriverError> {
    let jobs: Vec<Job<'_, (usize, Option<u64>)>> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Box::pin(async move { Ok((i, driver.stat(k).await?.map(|m| m.size))) }) as Job<'_, _>
        })
        .collect();
    let mut out = vec![None; keys.len()];
    for (i, size) in run_all(jobs).await? {
        out[i] = size;
    }
    Ok(out)
}

/// Deletes every key: in [`PARALLEL`] runs of [`Driver::delete_many`] at once, so object storage has that many
/// deletes in flight and a disk that many blocking jobs, not one per key.
pub async fn delete_all(driver: &dyn Driver, keys: &[&str]) -> Result<(), DriverError> {
    let per_run = keys.len().div_ceil(PARALLEL).max(1);
    let jobs: Vec<Job<'_, ()>> = keys
        .chunks(per_run)
        .map(|c| driver.delete_many(c))
        .collect();
    run_all(jobs).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::driver::FsDriver;

    /// The keys [`walk_all_assuming`] finds under `t`.
    async fn walked(d: &FsDriver, assume: Assume) -> Vec<String> {
        let found = walk_all_assuming(d, "t", assume).await.unwrap();
        found.into_iter().map(|e| e.key).collect()
    }

    /// The split walk finds exactly what one walk finds, on trees of every shape.
    #[tokio::test]
    async fn a_split_walk_finds_what_one_walk_finds() {
        let dir = tempfile::tempdir().unwrap();
        let d = FsDriver::new(dir.path()).await.unwrap();
        let mut keys = vec!["t/top".to_string(), "t/a/b/c/d/e/deep".to_string()];
        for i in 0..300 {
            keys.push(format!("t/wide/{:02x}/{i}/data", i % 256));
        }
        for k in &keys {
            d.write_atomic(k, k.as_bytes()).await.unwrap();
        }
        let one = walk_one(&d, "t".into(), How::Full).await.unwrap();
        let mut want: Vec<String> = one.into_iter().map(|e| e.key).collect();
        want.sort();
        let got: Vec<String> = walk_all(&d, "t")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), keys.len());
        let by_keys: Vec<String> = walked(&d, |_| None).await;
        assert_eq!(by_keys, want, "a walk of keys finds the same keys");
        // Directories taken to hold one object, met while splitting or while walking, are not read.
        let leaf = |k: &str| {
            (k.starts_with("t/wide/") && k.matches('/').count() == 3)
                .then_some(Assumed::Holds("data"))
        };
        let assumed: Vec<String> = walked(&d, leaf).await;
        assert_eq!(
            assumed, want,
            "every wide/<xx>/<i> directory holds exactly its data"
        );
        let skipped = |k: &str| (k == "t/a" || k == "t/wide/07").then_some(Assumed::Skipped);
        let found: Vec<String> = walked(&d, skipped).await;
        let unskipped: Vec<String> = want
            .iter()
            .filter(|k| !k.starts_with("t/a/") && !k.starts_with("t/wide/07/"))
            .cloned()
            .collect();
        assert_eq!(
            found, unskipped,
            "skipped directories, met while splitting or walking"
        );
        let shallow = |k: &str| (k == "t/a").then_some(Assumed::Holds("only"));
        let found: Vec<String> = walked(&d, shallow).await;
        assert!(
            found.contains(&"t/a/only".to_string()) && !found.iter().any(|k| k.contains("/e/deep")),
            "t/a is not read: {:?}",
            &found[..3]
        );
        let wide: Vec<&str> = want.iter().map(String::as_str).take(3).collect();
        let mut asked = wide.clone();
        asked.push("t/absent");
        let want_sizes: Vec<Option<u64>> = wide
            .iter()
            .map(|k| Some(k.len() as u64))
            .chain([None])
            .collect();
        assert_eq!(sizes(&d, &asked).await.unwrap(), want_sizes);
        assert!(walk_all(&d, "absent").await.unwrap().is_empty());
        assert_eq!(
            walk_all(&d, "t/top").await.unwrap().len(),
            1,
            "a file as the root"
        );
        let doomed: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .filter(|k| k.contains("wide"))
            .collect();
        delete_all(&d, &doomed).await.unwrap();
        assert_eq!(walk_all(&d, "t").await.unwrap().len(), 2);
    }
}
