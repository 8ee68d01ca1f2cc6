//! htpasswd files as the user's tools write them: `htpasswd -nbB` (apache2-utils, `$2y$`) and passlib's
//! default (`$2b$`, cost 12, made here with the `bcrypt` crate so no network or Python module is needed).

use std::path::Path;
use std::process::Command;

use super::process::require_tool;

/// One `user:hash` line from `htpasswd -nbB -C cost user pass`.
pub fn apache_line(user: &str, pass: &str, cost: u32) -> String {
    let bin = require_tool("htpasswd", "apache2-utils");
    let out = Command::new(bin)
        .args(["-nbB", "-C", &cost.to_string(), user, pass])
        .output()
        .expect("running htpasswd");
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout)
        .expect("htpasswd prints UTF-8")
        .trim()
        .to_string();
    assert!(
        line.starts_with(&format!("{user}:$2y$")),
        "unexpected htpasswd output {line:?}"
    );
    line
}

/// One `user:$2b$12$...` line, as passlib (Ansible's htpasswd module) writes it by default.
pub fn passlib_line(user: &str, pass: &str) -> String {
    let parts = bcrypt::hash_with_result(pass, 12).expect("bcrypt hash");
    format!("{user}:{}", parts.format_for_version(bcrypt::Version::TwoB))
}

/// Writes `lines` as an htpasswd file at `path`.
pub fn write(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
