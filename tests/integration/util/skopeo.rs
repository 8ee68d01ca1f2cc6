//! A wrapper around the real `skopeo` (Debian's): every call goes over plain HTTP (`--*tls-verify=false`),
//! gives up after a timeout, ignores the machine's auth files, and returns or panics with skopeo's stderr.
//!
//! skopeo's blob-info cache (`/var/lib/containers/cache/blob-info-cache-v1.boltdb`) is shared by all tests:
//! it may turn a push into a cross-repository mount attempt. The assertions built on this wrapper hold either way.

use std::process::{Command, Output};

use super::process::require_tool;

/// Credentials as `user:pass`, or none.
pub type Creds<'a> = Option<(&'a str, &'a str)>;

/// Runs `skopeo ARGS` and returns its output whatever its exit status.
pub fn run(args: &[&str]) -> Output {
    let bin = require_tool("skopeo", "skopeo");
    let mut cmd = Command::new(bin);
    cmd.env(
        "REGISTRY_AUTH_FILE",
        "/nonexistent/gatehouse-tests/auth.json",
    );
    cmd.args(["--command-timeout", "300s"]).args(args);
    cmd.output()
        .unwrap_or_else(|e| panic!("running skopeo {args:?}: {e}"))
}

/// Runs `skopeo ARGS`, panics with its stderr unless it succeeds, and returns its stdout.
pub fn ok(args: &[&str]) -> Vec<u8> {
    let out = run(args);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `skopeo ARGS`, panics unless it fails, and returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "skopeo {args:?} succeeded but should have failed"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn creds_arg(flag: &str, creds: Creds) -> Vec<String> {
    creds
        .map(|(u, p)| vec![format!("{flag}={u}:{p}")])
        .unwrap_or_default()
}

/// The arguments of `skopeo copy [--all] SRC DST` over plain HTTP with optional source and destination creds.
pub fn copy_args(
    src: &str,
    dst: &str,
    src_creds: Creds,
    dest_creds: Creds,
    all: bool,
) -> Vec<String> {
    let mut args = vec![
        "copy".to_string(),
        "--src-tls-verify=false".into(),
        "--dest-tls-verify=false".into(),
    ];
    if all {
        args.push("--all".into());
    }
    args.extend(creds_arg("--src-creds", src_creds));
    args.extend(creds_arg("--dest-creds", dest_creds));
    args.push(src.into());
    args.push(dst.into());
    args
}

/// `skopeo copy [--all] SRC DST`; panics unless it succeeds.
pub fn copy(src: &str, dst: &str, src_creds: Creds, dest_creds: Creds, all: bool) {
    let args = copy_args(src, dst, src_creds, dest_creds, all);
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Runs a `docker://` reading subcommand (`inspect`, `list-tags`, `delete`) with `--tls-verify=false`.
fn remote(sub: &[&str], image: &str, creds: Creds) -> Vec<u8> {
    let mut args: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
    args.push("--tls-verify=false".into());
    args.extend(creds_arg("--creds", creds));
    args.push(image.into());
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `skopeo inspect --raw docker://...`: the manifest bytes as the registry serves them.
pub fn inspect_raw(image: &str, creds: Creds) -> Vec<u8> {
    remote(&["inspect", "--raw"], image, creds)
}

/// `skopeo inspect docker://...` parsed as JSON.
pub fn inspect(image: &str, creds: Creds) -> serde_json::Value {
    let out = remote(&["inspect"], image, creds);
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("skopeo inspect output is not JSON ({e})"))
}

/// `skopeo list-tags docker://REPO`: the tag names.
pub fn list_tags(repo: &str, creds: Creds) -> Vec<String> {
    let out = remote(&["list-tags"], repo, creds);
    let json: serde_json::Value =
        serde_json::from_slice(&out).expect("skopeo list-tags prints JSON");
    json["Tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no Tags in list-tags output {json}"))
        .iter()
        .map(|t| t.as_str().expect("a tag string").to_string())
        .collect()
}

/// `skopeo delete docker://...`; panics unless it succeeds.
pub fn delete(image: &str, creds: Creds) {
    remote(&["delete"], image, creds);
}
