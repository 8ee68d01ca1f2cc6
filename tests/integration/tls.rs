//! TLS on the main listener from PEM files, against real clients: a CA made here with the openssl command
//! line, skopeo pushing and pulling with verification on, curl negotiating h2, `openssl s_client` reading the
//! served serial while the files are rotated under a download in flight, a mismatched pair that keeps the
//! old certificate, and client certificates (mTLS).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::embedded::{blob_path, sha256_of, v2_dir};
use crate::util::frontdoor::{bcrypt_line, noise, toml_str};
use crate::util::process::require_tool;
use crate::util::{net, oci, skopeo, temp_dir, Gatehouse, PASS, USER};

fn openssl(args: &[&str]) -> Output {
    let out = Command::new(require_tool("openssl", "openssl"))
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A test CA and the certificates it signs, all under one temp dir.
struct Pki {
    dir: TempDir,
}

/// Which key a leaf gets.
#[derive(Clone, Copy)]
enum Key {
    Rsa,
    Ec,
}

impl Pki {
    fn new() -> Pki {
        let dir = temp_dir("tls-pki");
        let p = |f: &str| dir.path().join(f).display().to_string();
        openssl(&[
            "req",
            "-x509",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-subj",
            "/CN=gatehouse test CA",
            "-days",
            "2",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.crt"),
        ]);
        // skopeo's --*-cert-dir reads CAs from files named *.crt in a directory of their own.
        fs::create_dir(dir.path().join("trust")).unwrap();
        fs::copy(dir.path().join("ca.crt"), dir.path().join("trust/ca.crt")).unwrap();
        Pki { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The directory skopeo's `--dest-cert-dir`/`--src-cert-dir` read.
    fn trust_dir(&self) -> PathBuf {
        self.dir.path().join("trust")
    }

    /// Issues `<name>.crt` + `<name>.key` for `localhost` and 127.0.0.1 (a server certificate, or a client
    /// one), with the given serial.
    fn issue(&self, name: &str, serial: u64, key: Key, client: bool) -> (PathBuf, PathBuf) {
        let p = |f: &str| self.dir.path().join(f).display().to_string();
        let newkey: &[&str] = match key {
            Key::Rsa => &["-newkey", "rsa:2048"],
            Key::Ec => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        };
        let (crt, key_file, csr, ext) = (
            p(&format!("{name}.crt")),
            p(&format!("{name}.key")),
            p(&format!("{name}.csr")),
            p(&format!("{name}.ext")),
        );
        let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=localhost"];
        args.extend(newkey);
        args.extend(["-keyout", &key_file, "-out", &csr]);
        openssl(&args);
        let usage = if client { "clientAuth" } else { "serverAuth" };
        fs::write(
            &ext,
            format!("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        let serial = serial.to_string();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ]);
        (PathBuf::from(crt), PathBuf::from(key_file))
    }
}

/// Replaces `dst` by `src`'s content the way certbot-like tools do: a temp file renamed over it.
fn rename_over(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("tmp");
    fs::copy(src, &tmp).unwrap();
    fs::rename(&tmp, dst).unwrap();
}

/// A gatehouse with TLS from `cert`/`key` (and `extra` TOML in `[tls]`), embedded storage at `root`, htpasswd
/// auth for USER when `auth`.
fn start(root: &Path, cert: &Path, key: &Path, extra: &str, auth: bool) -> Gatehouse {
    let port = net::free_port();
    fs::create_dir_all(root).unwrap();
    let auth_toml = if auth {
        let htpasswd = root.join("../htpasswd");
        fs::write(&htpasswd, format!("{}\n", bcrypt_line(USER, PASS, 4))).unwrap();
        format!(
            "mode = \"htpasswd\"\nhtpasswd = {}\n",
            toml_str(&htpasswd.display().to_string())
        )
    } else {
        "mode = \"none\"\n".to_string()
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nthreads = 2\n\n[auth]\n{auth_toml}\n\
         [storage]\nroot = {}\n\n[guard]\nenabled = false\n\n[tls]\ncertificate = {}\nkey = {}\n{extra}",
        toml_str(&root.display().to_string()),
        toml_str(&cert.display().to_string()),
        toml_str(&key.display().to_string()),
    );
    Gatehouse::start_with(port, &text, &[])
}

fn curl(args: &[&str]) -> Output {
    Command::new(require_tool("curl", "curl"))
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("running curl")
}

/// The serial (as a number) of the certificate `openssl s_client` is served on `port`.
fn served_serial(port: u16) -> Option<u128> {
    let hello = Command::new(require_tool("openssl", "openssl"))
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    use std::io::Write;
    x509.stdin.take()?.write_all(&hello.stdout).ok()?;
    let out = x509.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    u128::from_str_radix(text.trim().strip_prefix("serial=")?, 16).ok()
}

/// Waits (up to 15 s) until the served serial is `want`; returns whether it was.
fn wait_serial(port: u16, want: u128) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if served_serial(port) == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn readyz(gh: &Gatehouse) -> (u16, String) {
    let r = reqwest::blocking::get(format!("http://127.0.0.1:{}/readyz", gh.metrics_port))
        .expect("readyz");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// Puts `data` in the embedded store as a layer of `repo`, straight into distribution's layout.
fn plant_blob(root: &Path, repo: &str, data: &[u8]) -> String {
    let digest = sha256_of(data);
    let path = blob_path(root, &digest);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, data).unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let link = v2_dir(root).join(format!("repositories/{repo}/_layers/sha256/{hex}/link"));
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    fs::write(link, &digest).unwrap();
    digest
}

#[test]
fn skopeo_pushes_and_pulls_over_https_with_verification_on() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 11, Key::Rsa, false);
    let work = temp_dir("tls-skopeo");
    let gh = start(&work.path().join("data"), &cert, &key, "", true);
    let (layout, image) = oci::small_image(&work.path().join("src"), "v1", "tls");
    let src = format!("oci:{}:v1", layout.dir().display());
    let dst = format!("docker://localhost:{}/team/app:v1", gh.port);
    let trust = format!("--dest-cert-dir={}", pki.trust_dir().display());
    let creds = format!("--dest-creds={USER}:{PASS}");

    // Without the CA, verification is on and refuses the certificate.
    let refused = skopeo::fails(&["copy", &creds, &src, &dst]);
    assert!(
        refused.contains("certificate") || refused.contains("x509"),
        "{refused}"
    );

    skopeo::ok(&["copy", &trust, &creds, &src, &dst]);
    let pulled = work.path().join("pulled");
    let src_trust = format!("--src-cert-dir={}", pki.trust_dir().display());
    let src_creds = format!("--src-creds={USER}:{PASS}");
    let back = format!("oci:{}:v1", pulled.display());
    skopeo::ok(&["copy", &src_trust, &src_creds, &dst, &back]);
    let got = oci::Layout::open(&pulled).lookup("v1");
    assert_eq!(got.digest, image.manifest.digest);
}

#[test]
fn curl_negotiates_h2_and_http1_by_alpn() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 12, Key::Ec, false);
    let work = temp_dir("tls-h2");
    let gh = start(&work.path().join("data"), &cert, &key, "", true);
    let url = format!("https://localhost:{}/v2/", gh.port);
    let ca = pki.ca().display().to_string();
    for (flag, want) in [("--http2", "2 401"), ("--http1.1", "1.1 401")] {
        let out = curl(&[
            flag,
            "--cacert",
            &ca,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &url,
        ]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            want,
            "{flag}: {out:?}"
        );
    }
}

#[test]
fn rotated_files_are_served_to_new_handshakes_while_a_download_in_flight_completes() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 21, Key::Ec, false);
    let work = temp_dir("tls-rotate");
    let root = work.path().join("data");
    let data = noise(16 << 20, 21);
    let digest = plant_blob(&root, "big", &data);
    let gh = start(&root, &cert, &key, "", false);
    let pid = gh.pid();
    assert!(wait_serial(gh.port, 21), "the first certificate is served");

    // A slow download (about 8 s at 2 MB/s) over the first certificate's session.
    let out_file = work.path().join("download");
    let url = format!("https://localhost:{}/v2/big/blobs/{digest}", gh.port);
    let mut download = Command::new(require_tool("curl", "curl"))
        .args(["-sS", "--fail", "--limit-rate", "2M", "--cacert"])
        .arg(pki.ca())
        .arg("-o")
        .arg(&out_file)
        .arg(&url)
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(500));

    // Renewed by rename-over, the certificate first and the key after (they do not match in between).
    let (cert2, key2) = pki.issue("renewed", 22, Key::Rsa, false);
    rename_over(&cert2, &cert);
    std::thread::sleep(Duration::from_millis(700));
    rename_over(&key2, &key);
    assert!(
        wait_serial(gh.port, 22),
        "the renewed certificate is served; log:\n{}",
        gh.log_tail()
    );
    assert!(
        download.try_wait().unwrap().is_none(),
        "the download was still in flight when the new certificate was served (else this test proves nothing)"
    );

    // An in-place rewrite (truncate + write) of both files.
    let (cert3, key3) = pki.issue("rewritten", 23, Key::Ec, false);
    fs::write(&key, fs::read(&key3).unwrap()).unwrap();
    fs::write(&cert, fs::read(&cert3).unwrap()).unwrap();
    assert!(
        wait_serial(gh.port, 23),
        "the rewritten certificate is served; log:\n{}",
        gh.log_tail()
    );

    let status = download.wait().unwrap();
    assert!(
        status.success(),
        "the download in flight completes: {status}"
    );
    assert_eq!(sha256_of(&fs::read(&out_file).unwrap()), digest);
    assert_eq!(gh.pid(), pid);
    assert_eq!(readyz(&gh).0, 200);
}

#[test]
fn a_mismatched_pair_keeps_serving_the_old_certificate_and_says_so() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 31, Key::Ec, false);
    let work = temp_dir("tls-mismatch");
    let mut gh = start(&work.path().join("data"), &cert, &key, "", false);
    assert!(wait_serial(gh.port, 31));

    let (_, other_key) = pki.issue("other", 32, Key::Ec, false);
    rename_over(&other_key, &key);
    let deadline = Instant::now() + Duration::from_secs(15);
    let (status, body) = loop {
        let (status, body) = readyz(&gh);
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("does not belong"), "{body}");
    assert!(
        gh.log_tail().contains("last good certificate"),
        "{}",
        gh.log_tail()
    );
    let metrics = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", gh.metrics_port))
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("gatehouse_tls_stale 1"), "{metrics}");
    assert!(
        metrics.contains("gatehouse_tls_reloads_total{result=\"failed\"}"),
        "{metrics}"
    );

    // Still the old certificate, verified by a client that trusts the CA.
    assert_eq!(served_serial(gh.port), Some(31));
    let url = format!("https://localhost:{}/v2/", gh.port);
    let ca = pki.ca().display().to_string();
    let out = curl(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    assert!(gh.is_running());
}

#[test]
fn client_certificates_are_required_when_client_cas_are_set() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 41, Key::Ec, false);
    let (client_cert, client_key) = pki.issue("client", 42, Key::Ec, true);
    let work = temp_dir("tls-mtls");
    let extra = format!(
        "client_cas = [{}]\n",
        toml_str(&pki.ca().display().to_string())
    );
    let gh = start(&work.path().join("data"), &cert, &key, &extra, false);
    let url = format!("https://localhost:{}/v2/", gh.port);
    let ca = pki.ca().display().to_string();
    let without = curl(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert!(
        !without.status.success() && String::from_utf8_lossy(&without.stdout) != "200",
        "a client without a certificate is refused: {without:?}"
    );
    let (c, k) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    let with = curl(&[
        "--cacert",
        &ca,
        "--cert",
        &c,
        "--key",
        &k,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&with.stdout), "200", "{with:?}");
}
