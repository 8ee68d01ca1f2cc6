//! `gatehouse gc`: one offline run with the same config and environment as `serve` (the server should be
//! stopped: offline runs have no grace unless `GATEHOUSE_GC_GRACE` sets one).

use super::{collect, Options, Report};
use crate::config::{Backend, Config};
use anyhow::Context;
use std::path::PathBuf;
use std::time::SystemTime;

/// The arguments of `gatehouse gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// The TOML config file; environment variables override it.
    #[arg(long, short, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print what would be deleted and how many bytes; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete manifests no tag reaches (a tagged index keeps its children, a kept manifest its referrers).
    #[arg(long)]
    pub delete_untagged: bool,
}

/// Loads the config a subcommand names, printing its warnings; refuses a config that fronts an upstream.
pub fn embedded_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    let config = crate::config::load(path)?;
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if let Backend::Upstream(u) = &config.backend {
        anyhow::bail!(
            "this config fronts an upstream registry ({}): there is no embedded storage to work on",
            u.url
        );
    }
    Ok(config)
}

/// The storage of an existing root, opened without touching anything (a server may be running on it).
fn existing(
    root: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<dyn crate::storage::driver::Driver>> {
    let v2 = root.join(crate::storage::paths::V2_ROOT);
    anyhow::ensure!(
        v2.is_dir(),
        "{}: no registry storage here ({} is not a directory)",
        root.display(),
        v2.display()
    );
    Ok(std::sync::Arc::new(
        crate::storage::driver::FsDriver::open_existing(root),
    ))
}

/// A small runtime for a subcommand's storage work.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

/// Runs `gatehouse gc`.
pub fn gc(args: GcArgs) -> anyhow::Result<()> {
    let config = embedded_config(args.config.as_deref())?;
    let opts = Options {
        dry_run: args.dry_run,
        delete_untagged: args.delete_untagged || config.gc.delete_untagged,
        grace: config.gc.offline_grace(),
        now: SystemTime::now(),
        retention: config.gc.retention.clone(),
    };
    let root = config.storage.root.display().to_string();
    let report = runtime()?.block_on(async {
        let driver = crate::storage::driver::open(&config.storage).await?;
        anyhow::Ok(collect(&driver, &opts).await?)
    });
    let report = report.with_context(|| format!("gc of {root}"))?;
    print!("{}", render(&report, opts.dry_run));
    Ok(())
}

/// The report as printed: one line per manifest and blob deleted, then a summary.
pub fn render(r: &Report, dry_run: bool) -> String {
    use std::fmt::Write;
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut out = String::new();
    for (repo, d) in &r.manifests_missing {
        let _ = writeln!(out, "skipped manifest {repo}@{d}: its blob is missing");
    }
    for (repo, t) in &r.tags_deleted {
        let _ = writeln!(out, "{verb} tag {repo}:{t} (retention)");
    }
    for (repo, d) in &r.manifests_deleted {
        let _ = writeln!(out, "{verb} manifest {repo}@{d}");
    }
    for (d, size) in &r.blobs_deleted {
        let _ = writeln!(out, "{verb} blob {d} ({size} bytes)");
    }
    let _ = writeln!(
        out,
        "gc: {} repositories, {} manifests, {} blobs marked, {} blobs seen ({} too young); {verb} {} tags, {} \
         manifests, {} blobs, {} bytes, {} layer links",
        r.repositories,
        r.manifests,
        r.marked,
        r.blobs_seen,
        r.blobs_young,
        r.tags_deleted.len(),
        r.manifests_deleted.len(),
        r.blobs_deleted.len(),
        r.bytes_deleted,
        r.layer_links_deleted
    );
    out
}

/// The arguments of `gatehouse fsck`.
#[derive(Debug, clap::Args)]
pub struct FsckArgs {
    /// The TOML config file; environment variables override it.
    #[arg(long, short, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Remove what is corrupt or dangling (stop the server first). Without it nothing is changed.
    #[arg(long)]
    pub repair: bool,
}

/// Runs `gatehouse fsck` (without `--repair` it only reads: safe beside a running server): prints each finding; fails when something was found and not repaired.
pub fn fsck(args: FsckArgs) -> anyhow::Result<()> {
    let config = embedded_config(args.config.as_deref())?;
    let root = config.storage.root.display().to_string();
    let report = runtime()?
        .block_on(async {
            let driver = existing(&config.storage.root)?;
            anyhow::Ok(super::fsck::fsck(&driver, args.repair).await?)
        })
        .with_context(|| format!("fsck of {root}"))?;
    for f in &report.findings {
        println!("{f}");
    }
    let left = report.findings.len() as u64 - report.repaired;
    println!(
        "fsck: {} blobs ({} bytes) hashed, {} manifests; {} problems, {} repaired",
        report.blobs,
        report.bytes,
        report.manifests,
        report.findings.len(),
        report.repaired
    );
    if left > 0 {
        anyhow::bail!(
            "{root}: {left} problems {}",
            if args.repair {
                "left (objects fsck does not understand are never removed)"
            } else {
                "found: run `gatehouse fsck --repair` with the server stopped to remove them"
            }
        );
    }
    Ok(())
}

/// The arguments of `gatehouse du`.
#[derive(Debug, clap::Args)]
pub struct DuArgs {
    /// The TOML config file; environment variables override it.
    #[arg(long, short, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print JSON (what `GET /usage` on the admin listener answers).
    #[arg(long)]
    pub json: bool,
}

/// Runs `gatehouse du` (read only: safe beside a running server).
pub fn du(args: DuArgs) -> anyhow::Result<()> {
    let config = embedded_config(args.config.as_deref())?;
    let root = config.storage.root.display().to_string();
    let usage = runtime()?
        .block_on(async {
            let driver = existing(&config.storage.root)?;
            anyhow::Ok(super::du::usage(driver.as_ref()).await?)
        })
        .with_context(|| format!("du of {root}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&usage)?);
    } else {
        print!("{}", super::du::render(&usage));
    }
    Ok(())
}
