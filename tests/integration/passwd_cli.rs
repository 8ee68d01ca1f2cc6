//! `gatehouse passwd` (issue 4), the real binary against real files: its lines verify with Debian's
//! `htpasswd -vb` and `htpasswd -bB` lines verify with `gatehouse passwd verify` (compatible both ways); a new
//! file is mode 0600 and an edit keeps the mode; no temp file is left behind; a symlinked file stays a
//! symlink; a running gatehouse accepts a user added with `--password-stdin` within 1 s and refuses it within
//! 1 s of `passwd remove`, whether the file is replaced or rewritten `--in-place` (same inode); removing the
//! last user locks a running gatehouse out. A password over bcrypt's 72 bytes is refused with the reason;
//! without a terminal, `passwd add` says to use `--password-stdin`; `--in-place` exists only on `add` and
//! `remove`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::frontdoor::{
    expect_success, gatehouse_cli, get_base, plain_client, within, Front, FrontConfig,
};
use crate::util::gatehouse::bin;
use crate::util::process::{require_tool, scrub_env};
use crate::util::{temp_dir, Distribution};

/// `gatehouse passwd ARGS --file FILE`, with `stdin`.
fn passwd(file: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let file = file.display().to_string();
    let mut all = vec!["passwd"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--file", &file]);
    gatehouse_cli(&all, stdin)
}

/// Runs Debian's `htpasswd ARGS`.
fn htpasswd(args: &[&str]) -> std::process::Output {
    let bin = require_tool("htpasswd", "apache2-utils");
    Command::new(bin)
        .args(args)
        .output()
        .expect("running htpasswd")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// The names in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn passwd_cli_lines_are_compatible_with_htpasswd_both_ways() {
    let dir = temp_dir("passwd");
    let file = dir.path().join("htpasswd");

    // gatehouse writes, Debian's htpasswd verifies.
    let out = passwd(
        &file,
        &["add", "alice", "--password-stdin", "--cost", "5"],
        Some("alice pw: s3cret!\n"),
    );
    expect_success("gatehouse passwd add alice", &out);
    assert_eq!(mode(&file), 0o600, "a new htpasswd file must be private");
    let text = fs::read_to_string(&file).expect("reading htpasswd");
    assert!(text.starts_with("alice:$2"), "not a bcrypt line: {text}");
    assert!(text.ends_with('\n'), "no final newline: {text:?}");
    let path = file.display().to_string();
    let ok = htpasswd(&["-vb", &path, "alice", "alice pw: s3cret!"]);
    expect_success("htpasswd -vb on gatehouse's line", &ok);
    let bad = htpasswd(&["-vb", &path, "alice", "wrong"]);
    assert!(
        !bad.status.success(),
        "htpasswd -vb accepted a wrong password"
    );

    // The default cost is 12.
    let out = passwd(
        &file,
        &["add", "default-cost", "--password-stdin"],
        Some("pw12\n"),
    );
    expect_success("gatehouse passwd add (default cost)", &out);
    let text = fs::read_to_string(&file).expect("reading htpasswd");
    let line = text
        .lines()
        .find(|l| l.starts_with("default-cost:"))
        .unwrap_or_else(|| panic!("no default-cost line in {text}"));
    assert_eq!(
        &line["default-cost:".len() + 4..][..3],
        "12$",
        "line {line}"
    );
    expect_success(
        "htpasswd -vb on a cost-12 line",
        &htpasswd(&["-vb", &path, "default-cost", "pw12"]),
    );

    // Debian's htpasswd writes, gatehouse verifies.
    expect_success(
        "htpasswd -bB",
        &htpasswd(&["-bB", "-C", "5", &path, "bob", "bob's pw"]),
    );
    assert_eq!(mode(&file), 0o600, "mode after htpasswd's edit");
    let out = passwd(
        &file,
        &["verify", "bob", "--password-stdin"],
        Some("bob's pw\n"),
    );
    expect_success("gatehouse passwd verify bob", &out);
    let out = passwd(
        &file,
        &["verify", "bob", "--password-stdin"],
        Some("nope\n"),
    );
    assert!(!out.status.success(), "verify accepted a wrong password");
    let out = passwd(
        &file,
        &["verify", "alice", "--password-stdin"],
        Some("alice pw: s3cret!\n"),
    );
    expect_success("gatehouse passwd verify alice", &out);

    // Changing a password replaces the line; list shows each user once; remove takes it out.
    let out = passwd(
        &file,
        &["add", "alice", "--password-stdin", "--cost", "4"],
        Some("new alice\n"),
    );
    expect_success("gatehouse passwd add alice (change)", &out);
    expect_success(
        "htpasswd -vb after a change",
        &htpasswd(&["-vb", &path, "alice", "new alice"]),
    );
    let out = passwd(&file, &["list"], None);
    expect_success("gatehouse passwd list", &out);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort();
    assert_eq!(names, ["alice", "bob", "default-cost"], "passwd list");
    expect_success(
        "passwd remove bob",
        &passwd(&file, &["remove", "bob"], None),
    );
    let out = passwd(&file, &["remove", "bob"], None);
    assert!(!out.status.success(), "removing a missing user succeeded");
    let bad = htpasswd(&["-vb", &path, "bob", "bob's pw"]);
    assert!(!bad.status.success(), "bob is still in the file");
    assert_eq!(mode(&file), 0o600, "mode after edits");
    assert_eq!(
        entries(dir.path()),
        ["htpasswd"],
        "files left in the directory"
    );

    // The file named by the config is the default.
    let config = dir.path().join("gatehouse.toml");
    fs::write(
        &config,
        format!("[auth]\nhtpasswd = {:?}\n", file.display().to_string()),
    )
    .expect("writing the config");
    let out = gatehouse_cli(
        &["passwd", "list", "--config", &config.display().to_string()],
        None,
    );
    expect_success("passwd list --config", &out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
}

#[test]
fn passwd_cli_edits_follow_a_symlink_and_keep_the_mode() {
    let dir = temp_dir("passwd-link");
    let real = dir.path().join("real-htpasswd");
    fs::write(&real, "").expect("creating the file");
    fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).expect("chmod");
    let link = dir.path().join("htpasswd");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let out = passwd(
        &link,
        &["add", "alice", "--password-stdin", "--cost", "4"],
        Some("pw\n"),
    );
    expect_success("passwd add through a symlink", &out);
    assert!(
        fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink(),
        "the symlink was replaced by a file"
    );
    assert!(fs::read_to_string(&real)
        .expect("reading")
        .starts_with("alice:$2"));
    assert_eq!(mode(&real), 0o640, "an edit keeps the file's mode");
    assert_eq!(entries(dir.path()), ["htpasswd", "real-htpasswd"]);
}

#[test]
fn passwd_cli_changes_reach_a_running_gatehouse_within_1s() {
    let dist = Distribution::start();
    let dir = temp_dir("passwd-live");
    let file = dir.path().join("htpasswd");
    let out = passwd(
        &file,
        &["add", "admin", "--password-stdin", "--cost", "4"],
        Some("admin-pw\n"),
    );
    expect_success("passwd add admin", &out);
    let front = Front::start(&FrontConfig::new(&dist.url(), &file).no_guard());
    let client = plain_client(None);
    let base = front.url();
    let status = |u: &str, p: &str| get_base(&client, &base, Some((u, p))).status().as_u16();
    assert_eq!(status("admin", "admin-pw"), 200);
    let limit = Duration::from_secs(1);
    let every = Duration::from_millis(50);

    for in_place in [false, true] {
        let extra: &[&str] = if in_place { &["--in-place"] } else { &[] };
        let ino = fs::metadata(&file).expect("metadata").ino();
        let mut args = vec!["add", "carol", "--password-stdin", "--cost", "4"];
        args.extend_from_slice(extra);
        expect_success(
            "passwd add carol",
            &passwd(&file, &args, Some("carol-pw\n")),
        );
        // A replacing edit writes a new file while the old one still exists: the inode must differ.
        // (Compared per edit only: a freed inode number may come back on the next one.)
        let ino_added = fs::metadata(&file).expect("metadata").ino();
        if in_place {
            assert_eq!(ino, ino_added, "--in-place must keep the inode");
        } else {
            assert_ne!(ino, ino_added, "a replacing edit makes a new file");
        }
        let written = Instant::now();
        let took = within(written, limit, every, "the added user is accepted", || {
            status("carol", "carol-pw") == 200
        });
        eprintln!("in_place={in_place}: added user in after {took:?}");
        assert_eq!(status("carol", "carol-pw"), 200);
        let mut args = vec!["remove", "carol"];
        args.extend_from_slice(extra);
        expect_success("passwd remove carol", &passwd(&file, &args, None));
        let written = Instant::now();
        let took = within(written, limit, every, "the removed user is refused", || {
            status("carol", "carol-pw") == 401
        });
        eprintln!("in_place={in_place}: removed user out after {took:?}");
        assert_eq!(status("admin", "admin-pw"), 200, "the other user stays in");
        let ino_removed = fs::metadata(&file).expect("metadata").ino();
        if in_place {
            assert_eq!(ino_added, ino_removed, "--in-place must keep the inode");
        } else {
            assert_ne!(ino_added, ino_removed, "a replacing edit makes a new file");
        }
        assert_eq!(mode(&file), 0o600);
        assert_eq!(
            entries(dir.path()),
            ["htpasswd"],
            "files left in the directory"
        );
    }
}

/// Issue 9 finding 15: bcrypt ignores every byte after the 72nd, so a longer password was accepted and
/// silently truncated. `passwd add` refuses it, says why, and leaves the file alone; 72 bytes are fine.
#[test]
fn passwd_cli_refuses_a_password_longer_than_72_bytes_and_says_why() {
    let dir = temp_dir("passwd-long");
    let file = dir.path().join("htpasswd");
    let exact = "p".repeat(72);
    let out = passwd(
        &file,
        &["add", "alice", "--password-stdin", "--cost", "4"],
        Some(&format!("{exact}\n")),
    );
    expect_success("passwd add with a 72-byte password", &out);
    let before = fs::read_to_string(&file).expect("reading htpasswd");
    for long in ["p".repeat(73), "\u{e9}".repeat(40)] {
        let out = passwd(
            &file,
            &["add", "bob", "--password-stdin", "--cost", "4"],
            Some(&format!("{long}\n")),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a {}-byte password was accepted",
            long.len()
        );
        assert!(
            stderr.contains("bcrypt only uses the first 72 bytes")
                && stderr.contains(&format!("{} bytes", long.len())),
            "the refusal does not say why: {stderr}"
        );
        assert_eq!(
            fs::read_to_string(&file).expect("reading htpasswd"),
            before,
            "a refused password changed the file"
        );
    }
    let out = passwd(
        &file,
        &["verify", "alice", "--password-stdin"],
        Some(&format!("{exact}\n")),
    );
    expect_success("passwd verify with the 72-byte password", &out);
}

/// Issue 9 finding 19: without a terminal, `passwd add` failed with "No such device or address". It now
/// says to use `--password-stdin`, and writes nothing. (`setsid` detaches it from any terminal the test
/// runner has.)
#[test]
fn passwd_cli_add_without_a_terminal_says_to_use_password_stdin() {
    let dir = temp_dir("passwd-notty");
    let file = dir.path().join("htpasswd");
    let setsid = require_tool("setsid", "util-linux");
    let mut cmd = Command::new(setsid);
    scrub_env(&mut cmd);
    let out = cmd
        .args(["--wait", bin(), "passwd", "add", "alice", "--file"])
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running gatehouse passwd add under setsid");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "passwd add without a terminal succeeded"
    );
    assert!(
        stderr.contains("--password-stdin") && stderr.contains("no terminal"),
        "the error does not point to --password-stdin: {stderr}"
    );
    assert!(!file.exists(), "a failed add created the file");
}

/// Issue 9 finding 19: `--in-place` was offered on `passwd list` and `verify`, which never write. It is
/// now an option of `add` and `remove` only.
#[test]
fn passwd_cli_in_place_is_offered_only_on_the_commands_that_write() {
    let dir = temp_dir("passwd-inplace");
    let file = dir.path().join("htpasswd");
    expect_success(
        "passwd add --in-place",
        &passwd(
            &file,
            &[
                "add",
                "alice",
                "--password-stdin",
                "--cost",
                "4",
                "--in-place",
            ],
            Some("pw\n"),
        ),
    );
    for args in [
        &["list", "--in-place"][..],
        &["verify", "alice", "--password-stdin", "--in-place"][..],
    ] {
        let out = passwd(&file, args, Some("pw\n"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "passwd {args:?}: {stderr}");
        assert!(stderr.contains("--in-place"), "passwd {args:?}: {stderr}");
    }
    for (command, offered) in [
        ("add", true),
        ("remove", true),
        ("list", false),
        ("verify", false),
    ] {
        let out = gatehouse_cli(&["passwd", command, "--help"], None);
        expect_success(&format!("passwd {command} --help"), &out);
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            help.contains("--in-place"),
            offered,
            "passwd {command} --help:\n{help}"
        );
    }
    expect_success(
        "passwd remove --in-place",
        &passwd(&file, &["remove", "alice", "--in-place"], None),
    );
}

/// Issue 9 finding 7: `passwd remove` of every user left a file that names nobody, and the old users kept
/// logging in. Now that file is in force: the last user is out within 1 s, cached login and all.
#[test]
fn passwd_cli_removing_the_last_user_locks_a_running_gatehouse_out() {
    let dist = Distribution::start();
    let dir = temp_dir("passwd-last");
    let file = dir.path().join("htpasswd");
    expect_success(
        "passwd add admin",
        &passwd(
            &file,
            &["add", "admin", "--password-stdin", "--cost", "4"],
            Some("admin-pw\n"),
        ),
    );
    let front = Front::start(&FrontConfig::new(&dist.url(), &file).no_guard());
    let client = plain_client(None);
    let base = front.url();
    let status = |u: &str, p: &str| get_base(&client, &base, Some((u, p))).status().as_u16();
    assert_eq!(status("admin", "admin-pw"), 200);
    assert_eq!(status("admin", "admin-pw"), 200, "cached");
    expect_success(
        "passwd remove admin",
        &passwd(&file, &["remove", "admin"], None),
    );
    assert_eq!(fs::read_to_string(&file).expect("reading htpasswd"), "");
    let removed = Instant::now();
    let took = within(
        removed,
        Duration::from_secs(1),
        Duration::from_millis(50),
        "the last user is refused",
        || status("admin", "admin-pw") == 401,
    );
    eprintln!("last user out after {took:?}");
}
