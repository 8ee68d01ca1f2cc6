//! The adversarial suite (issue 9): the door tried as an attacker would, over raw sockets where encoding
//! matters, against the real gatehouse binary in front of a real distribution 2.8.2 or on its embedded
//! backend. Each test pins one finding: mounts that no encoding smuggles past the access rules, a catalog
//! whose paging never names a hidden repository, idle, half-sent and never-reading clients that are closed in
//! time and cannot starve the others, one address that cannot hold more connections than its cap, access-log lines that say who was refused where, a taken port that
//! ends the process, and manifest references that are neither tag nor digest.

mod catalog;
mod conn_cap;
mod logs;
mod mount;
mod references;
mod slow;
mod startup;

use std::path::{Path, PathBuf};

use crate::util::embedded::{location, sha256_of, with_query};
use crate::util::frontdoor::{bcrypt_line, file_text, toml_str};
use crate::util::gatehouse::Gatehouse;
use crate::util::http::{Http, Req};
use crate::util::net;

/// Users of the adversarial tests and their passwords.
pub const USERS: [(&str, &str); 4] = [
    ("bob", "bob-pw"),
    ("lead", "lead-pw"),
    ("alice", "alice-pw"),
    ("carol", "carol-pw"),
];

/// The password of `user`.
pub fn pass_of(user: &str) -> &'static str {
    USERS
        .iter()
        .find(|(u, _)| *u == user)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no user {user}"))
}

/// Writes an htpasswd file of [`USERS`] (bcrypt cost 4) at `dir/htpasswd` and returns its path.
pub fn write_users(dir: &Path) -> PathBuf {
    let path = dir.join("htpasswd");
    let lines: Vec<String> = USERS.iter().map(|(u, p)| bcrypt_line(u, p, 4)).collect();
    std::fs::write(&path, file_text(&lines)).expect("writing htpasswd");
    path
}

/// Starts an embedded gatehouse on `root` with [`USERS`] from `htpasswd`, JSON logs, the guard off,
/// `server_extra` lines inside `[server]` and `tables` appended.
pub fn embedded(root: &Path, htpasswd: &Path, server_extra: &str, tables: &str) -> Gatehouse {
    embedded_logging(root, htpasswd, server_extra, tables, "json")
}

/// [`embedded`] with the log in `format` (`json` or `text`).
pub fn embedded_logging(
    root: &Path,
    htpasswd: &Path,
    server_extra: &str,
    tables: &str,
    format: &str,
) -> Gatehouse {
    std::fs::create_dir_all(root).expect("creating the storage root");
    let port = net::free_port();
    let text = format!(
        "[server]\nlisten = {listen}\nthreads = 2\n{server_extra}\n\
         [auth]\nmode = \"htpasswd\"\nrealm = \"Adversarial Realm\"\nhtpasswd = {file}\n\n\
         [storage]\nroot = {root}\ndelete_enabled = true\n\n\
         [log]\nformat = {format}\naccess_log = true\n\n\
         [guard]\nenabled = false\n\n{tables}\n",
        listen = toml_str(&format!("127.0.0.1:{port}")),
        file = toml_str(&htpasswd.display().to_string()),
        root = toml_str(&root.display().to_string()),
        format = toml_str(format),
    );
    Gatehouse::start_with(port, &text, &[])
}

/// The whole log (stdout + stderr) of `gh` so far.
pub fn log_text(gh: &Gatehouse) -> String {
    std::fs::read_to_string(gh.dir().join("gatehouse.log")).unwrap_or_default()
}

/// Pushes `data` as a blob of `repo` to the registry at `base` (as `creds`), in a POST and a PUT as
/// distribution 2.8.2 wants it; returns its digest.
pub fn push_blob(base: &str, repo: &str, data: &[u8], creds: Option<(&str, &str)>) -> String {
    let digest = sha256_of(data);
    let http = Http::new(base);
    let with_creds = |req: Req| match creds {
        Some((u, p)) => req.creds(u, p),
        None => req,
    };
    let start = with_creds(http.req("POST", &format!("/v2/{repo}/blobs/uploads/"))).send();
    start.expect(202);
    let put = with_query(&location(&start), &format!("digest={digest}"));
    with_creds(http.req("PUT", &put))
        .header("Content-Type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .expect(201);
    digest
}
