//! ACME against Debian's real `pebble` on loopback, with real HTTP-01 and TLS-ALPN-01 validation
//! (PEBBLE_VA_ALWAYS_VALID is never set; pebble's httpPort is gatehouse's plain-HTTP listener, its tlsPort
//! gatehouse's main listener, `localhost` resolves to 127.0.0.1), and
//! pebble's default 5% badNonce rejections: the first certificate is issued and served with h2, an unknown
//! SNI name orders nothing, a restart serves the cached certificate and orders nothing, the certificate
//! keeps serving with pebble stopped, and a short-lived certificate is renewed and the new one served.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::tls::{curl, served_serial, Key, Pki};
use crate::util::frontdoor::toml_str;
use crate::util::gatehouse::bin;
use crate::util::process::{require_tool, scrub_env, Service};
use crate::util::{net, temp_dir, Gatehouse};

/// A pebble on free loopback ports whose validation connects to `http_port`/`tls_port`.
struct Pebble {
    port: u16,
    mgmt_port: u16,
    service: Service,
}

impl Pebble {
    fn start(
        pki: &Pki,
        dir: &Path,
        http_port: u16,
        tls_port: u16,
        validity_seconds: u64,
    ) -> Pebble {
        let bin = require_tool("pebble", "pebble");
        let (cert, key) = pki.issue("pebble", 900, Key::Ec, false);
        let (port, mgmt_port) = (net::free_port(), net::free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt_port}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_seconds,
        }});
        let path = dir.join("pebble.json");
        fs::write(&path, config.to_string()).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-config").arg(&path).env("PEBBLE_VA_NOSLEEP", "1");
        cmd.env_remove("PEBBLE_VA_ALWAYS_VALID");
        let mut service = Service::spawn("pebble", cmd, &dir.join("pebble.log"));
        service.wait_ready(port, Duration::from_secs(20));
        Pebble {
            port,
            mgmt_port,
            service,
        }
    }

    fn directory(&self) -> String {
        format!("https://localhost:{}/dir", self.port)
    }

    /// Pebble's issuing root (its management interface's `/roots/0`), written to `path`.
    fn root(&self, pki: &Pki, path: &Path) {
        let ca = pki.ca().display().to_string();
        let out = curl(&[
            "--cacert",
            &ca,
            &format!("https://localhost:{}/roots/0", self.mgmt_port),
        ]);
        assert!(out.status.success(), "{out:?}");
        fs::write(path, &out.stdout).unwrap();
    }

    /// How many certificates pebble says it issued.
    fn issued(&self) -> usize {
        self.service
            .log_tail()
            .matches("Issued certificate serial")
            .count()
    }
}

/// Starts gatehouse with ACME for `localhost` from `pebble`, state in `cache`, on the given ports.
fn gatehouse(
    pki: &Pki,
    pebble: &Pebble,
    cache: &Path,
    port: u16,
    http_port: u16,
    data: &Path,
) -> Gatehouse {
    let http_listen = format!("http_listen = \"127.0.0.1:{http_port}\"\n");
    gatehouse_with(pki, pebble, cache, port, &http_listen, data, &[])
}

/// The config text of [`gatehouse_with`].
fn config_text(
    pki: &Pki,
    pebble: &Pebble,
    cache: &Path,
    port: u16,
    server_extra: &str,
    data: &Path,
) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n{server_extra}threads = 2\n\n\
         [auth]\nmode = \"none\"\n\n[storage]\nroot = {}\n\n[tls.acme]\nhosts = [\"localhost\"]\n\
         cache = {}\ndirectory_url = {}\ndirectory_ca = {}\n",
        toml_str(&data.display().to_string()),
        toml_str(&cache.display().to_string()),
        toml_str(&pebble.directory()),
        toml_str(&pki.ca().display().to_string()),
    )
}

/// [`gatehouse`] with `server_extra` TOML in `[server]` instead of the plain-HTTP listener, and `env`.
fn gatehouse_with(
    pki: &Pki,
    pebble: &Pebble,
    cache: &Path,
    port: u16,
    server_extra: &str,
    data: &Path,
    env: &[(&str, &str)],
) -> Gatehouse {
    let text = config_text(pki, pebble, cache, port, server_extra, data);
    Gatehouse::start_with(port, &text, env)
}

/// Waits (up to 60 s) until `port` serves a certificate other than `not`; returns its serial.
fn wait_for_certificate(gh: &Gatehouse, not: Option<u128>) -> u128 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = served_serial(gh.port).filter(|s| Some(*s) != not) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "no new certificate; log:\n{}",
            gh.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn orders(gh: &Gatehouse, result: &str) -> u64 {
    let text = reqwest::blocking::get(format!("http://127.0.0.1:{}/metrics", gh.metrics_port))
        .unwrap()
        .text()
        .unwrap();
    let prefix = format!("gatehouse_acme_orders_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn acme_issues_with_http01_serves_it_orders_nothing_for_unknown_sni_or_on_restart_and_survives_the_ca_stopping(
) {
    let pki = Pki::new();
    let work = temp_dir("acme");
    let (port, http_port) = (net::free_port(), net::free_port());
    let mut pebble = Pebble::start(&pki, work.path(), http_port, port, 3600);
    let cache = work.path().join("acme-state");
    let data = work.path().join("data");
    let gh = gatehouse(&pki, &pebble, &cache, port, http_port, &data);
    let serial = wait_for_certificate(&gh, None);
    assert_eq!(orders(&gh, "ok"), 1);
    assert_eq!(pebble.issued(), 1);

    // A client that trusts pebble's root verifies the certificate, over h2.
    let root = work.path().join("pebble-root.pem");
    pebble.root(&pki, &root);
    let url = format!("https://localhost:{port}/v2/");
    let root_s = root.display().to_string();
    let verify = || {
        let out = curl(&[
            "--cacert",
            &root_s,
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            &url,
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(verify(), "2 200");

    // An unknown SNI name orders nothing.
    let unknown = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "unknown.example",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    drop(unknown);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(orders(&gh, "ok") + orders(&gh, "failed"), 1);
    assert_eq!(pebble.issued(), 1);

    // A restart serves the cached certificate at once and orders nothing.
    drop(gh);
    let gh = gatehouse(&pki, &pebble, &cache, port, http_port, &data);
    assert_eq!(served_serial(gh.port), Some(serial));
    assert!(
        gh.log_tail().contains("loaded from the ACME cache"),
        "{}",
        gh.log_tail()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(orders(&gh, "ok") + orders(&gh, "failed"), 0);
    assert_eq!(pebble.issued(), 1);

    // The CA goes away: the current certificate keeps serving.
    pebble.service.kill();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(served_serial(gh.port), Some(serial));
    assert_eq!(verify(), "2 200");
}

#[test]
fn acme_renews_a_short_lived_certificate_and_serves_the_new_one() {
    let pki = Pki::new();
    let work = temp_dir("acme-renew");
    let (port, http_port) = (net::free_port(), net::free_port());
    // 15 s certificates: due for renewal 10 s after issuance.
    let pebble = Pebble::start(&pki, work.path(), http_port, port, 15);
    let gh = gatehouse(
        &pki,
        &pebble,
        &work.path().join("acme-state"),
        port,
        http_port,
        &work.path().join("data"),
    );
    let first = wait_for_certificate(&gh, None);
    let second = wait_for_certificate(&gh, Some(first));
    assert_ne!(first, second);
    assert!(orders(&gh, "ok") >= 2);
    assert!(
        gh.log_tail().contains("a third of the lifetime is left"),
        "{}",
        gh.log_tail()
    );
}

/// Whether a handshake offering the ALPN protocols `alpn` for `name` on `port` gets a certificate.
fn alpn_handshake(port: u16, name: &str, alpn: &str) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name, "-alpn", alpn])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE")
}

#[test]
fn acme_issues_with_tls_alpn01_when_there_is_no_plain_http_listener() {
    let pki = Pki::new();
    let work = temp_dir("acme-alpn");
    // Nothing listens on pebble's httpPort: only TLS-ALPN-01 on the main listener can pass.
    let (port, no_http) = (net::free_port(), net::free_port());
    let pebble = Pebble::start(&pki, work.path(), no_http, port, 3600);
    let gh = gatehouse_with(
        &pki,
        &pebble,
        &work.path().join("acme-state"),
        port,
        "",
        &work.path().join("data"),
        &[],
    );
    wait_for_certificate(&gh, None);
    assert_eq!(orders(&gh, "ok"), 1, "{}", gh.log_tail());
    assert_eq!(pebble.issued(), 1);
    assert!(
        gh.log_tail().contains("tls-alpn-01"),
        "the log names the challenge: {}",
        gh.log_tail()
    );

    // The issued certificate verifies against pebble's root, over h2.
    let root = work.path().join("pebble-root.pem");
    pebble.root(&pki, &root);
    let out = curl(&[
        "--cacert",
        &root.display().to_string(),
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &format!("https://localhost:{port}/v2/"),
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");

    // With the order done, the challenge certificate is gone: an acme-tls/1 handshake gets nothing, for the
    // configured name or any other; a client that offers h2 too gets the certificate in force.
    assert!(!alpn_handshake(port, "localhost", "acme-tls/1"));
    assert!(!alpn_handshake(port, "unknown.example", "acme-tls/1"));
    assert!(alpn_handshake(port, "localhost", "h2,acme-tls/1"));
}

#[test]
fn acme_with_client_cas_requires_client_certificates_and_without_port_80_refuses_to_start() {
    let pki = Pki::new();
    let work = temp_dir("acme-mtls");
    let (port, http_port) = (net::free_port(), net::free_port());
    let pebble = Pebble::start(&pki, work.path(), http_port, port, 3600);
    let ca = pki.ca().display().to_string();
    let cas = format!("[{ca}]");
    let env = [("REGISTRY_HTTP_TLS_CLIENTCAS", cas.as_str())];
    let (cache, data) = (work.path().join("acme-state"), work.path().join("data"));

    // Without port 80 the challenge would be TLS-ALPN-01, which cannot pass with client CAs: serve refuses
    // to start, naming both settings.
    let config = work.path().join("no-port-80.toml");
    fs::write(&config, config_text(&pki, &pebble, &cache, port, "", &data)).unwrap();
    let mut cmd = Command::new(bin());
    scrub_env(&mut cmd);
    cmd.arg("serve").arg("--config").arg(&config).envs(env);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve started with client CAs, ACME and no plain-HTTP listener");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("REGISTRY_HTTP_TLS_CLIENTCAS")
            && stderr.contains("REGISTRY_HTTP_TLS_LETSENCRYPT"),
        "{stderr}"
    );

    // With port 80 (HTTP-01), the ACME certificate is served and a client certificate is required.
    let http_listen = format!("http_listen = \"127.0.0.1:{http_port}\"\n");
    let gh = gatehouse_with(&pki, &pebble, &cache, port, &http_listen, &data, &env);
    wait_for_certificate(&gh, None);
    let (client_cert, client_key) = pki.issue("client", 77, Key::Ec, true);
    let root = work.path().join("pebble-root.pem");
    pebble.root(&pki, &root);
    let root_s = root.display().to_string();
    let url = format!("https://localhost:{port}/v2/");
    let mut args = vec!["--cacert", &root_s, "-o", "/dev/null", "-w", "%{http_code}"];
    let without = curl(&[&args[..], &[url.as_str()]].concat());
    assert!(
        !without.status.success() && String::from_utf8_lossy(&without.stdout) != "200",
        "a client without a certificate is refused: {without:?}"
    );
    let (c, k) = (
        client_cert.display().to_string(),
        client_key.display().to_string(),
    );
    args.extend(["--cert", &c, "--key", &k, &url]);
    let with = curl(&args);
    assert_eq!(String::from_utf8_lossy(&with.stdout), "200", "{with:?}");
}
