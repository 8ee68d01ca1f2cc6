//! Test certificates made with the `openssl` command line (tests only): self-signed leaves in each key
//! format gatehouse reads.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A key algorithm and PEM format.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    /// RSA in PKCS#8 (`PRIVATE KEY`).
    RsaPkcs8,
    /// RSA in PKCS#1 (`RSA PRIVATE KEY`).
    RsaPkcs1,
    /// P-256 in PKCS#8.
    EcPkcs8,
    /// P-256 in SEC1 (`EC PRIVATE KEY`).
    EcSec1,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: &'static [KeyKind] = &[
        KeyKind::RsaPkcs8,
        KeyKind::RsaPkcs1,
        KeyKind::EcPkcs8,
        KeyKind::EcSec1,
    ];
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line is needed by these tests (apt install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `<name>.crt` and `<name>.key` in `dir`: a self-signed certificate for `<name>.test`.
pub fn self_signed(dir: &Path, name: &str, kind: KeyKind) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let newkey = match kind {
        KeyKind::RsaPkcs8 | KeyKind::RsaPkcs1 => vec!["-newkey", "rsa:2048"],
        KeyKind::EcPkcs8 | KeyKind::EcSec1 => {
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        }
    };
    let subj = format!("/CN={name}.test");
    let san = format!("subjectAltName=DNS:{name}.test");
    let mut args = vec![
        "req", "-x509", "-nodes", "-days", "2", "-subj", &subj, "-addext", &san,
    ];
    args.extend(newkey);
    let (c, k) = (cert.display().to_string(), key.display().to_string());
    args.extend(["-keyout", &k, "-out", &c]);
    openssl(&args);
    if matches!(kind, KeyKind::RsaPkcs1 | KeyKind::EcSec1) {
        let pkcs8 = format!("{k}.pkcs8");
        std::fs::rename(&key, &pkcs8).unwrap();
        openssl(&["pkey", "-in", &pkcs8, "-traditional", "-out", &k]);
        let text = std::fs::read_to_string(&key).unwrap();
        assert!(!text.contains("BEGIN PRIVATE KEY"), "{kind:?}: {text}");
    }
    (cert, key)
}
