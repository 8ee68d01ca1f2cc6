//! TLS session resumption on the main listener, seen by `openssl s_client`: a first connection saves its
//! session (`-sess_out`), a second one offers it (`-sess_in`) and must report "Reused", for TLS 1.2 with a
//! ticket, TLS 1.2 with a session ID only (`-no_ticket`), and TLS 1.3. A TLS 1.2 client that takes tickets
//! gets one (rustls's default config has no ticketer).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::tls::{start_on, Key, Pki};
use crate::util::process::require_tool;
use crate::util::{net, temp_dir};

/// One `s_client` connection to `port` with `flags` that sends a request and reads the reply to the end (so
/// TLS 1.3's tickets, sent after the handshake, arrive); returns its output.
fn s_client(port: u16, ca: &Path, flags: &[&str]) -> String {
    let mut child = Command::new(require_tool("openssl", "openssl"))
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(ca)
        .args(["-ign_eof", "-verify_return_error"])
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl s_client");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().expect("openssl s_client");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_second_handshake_resumes_the_session_for_tls12_and_tls13() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 51, Key::Ec, false);
    let work = temp_dir("tls-resume");
    let mut gh = start_on(
        net::free_port(),
        "",
        &work.path().join("data"),
        &cert,
        &key,
        "",
        false,
    );
    // (what, s_client flags, version, whether the first connection gets a ticket)
    let cases: &[(&str, &[&str], &str, bool)] = &[
        ("TLS 1.2 ticket", &["-tls1_2"], "TLSv1.2", true),
        (
            "TLS 1.2 session ID",
            &["-tls1_2", "-no_ticket"],
            "TLSv1.2",
            false,
        ),
        ("TLS 1.3 ticket", &["-tls1_3"], "TLSv1.3", true),
    ];
    for (i, (what, flags, version, ticket)) in cases.iter().enumerate() {
        let sess = work.path().join(format!("session{i}.pem"));
        let sess = sess.display().to_string();
        let mut first_flags = flags.to_vec();
        first_flags.extend(["-sess_out", &sess]);
        let first = s_client(gh.port, &pki.ca(), &first_flags);
        assert!(
            first.contains(&format!("New, {version}")) && first.contains("HTTP/1.1 200"),
            "{what}: the first connection is a full handshake that gets an answer: {first}"
        );
        assert!(
            Path::new(&sess).exists(),
            "{what}: no session saved: {first}"
        );
        assert_eq!(
            first.contains("TLS session ticket lifetime hint"),
            *ticket,
            "{what}: a ticket is issued when the client takes tickets (rustls issues none without a ticketer): {first}"
        );
        let mut second_flags = flags.to_vec();
        second_flags.extend(["-sess_in", &sess]);
        let second = s_client(gh.port, &pki.ca(), &second_flags);
        assert!(
            second.contains(&format!("Reused, {version}")) && second.contains("HTTP/1.1 200"),
            "{what}: the second connection resumes the session: {second}"
        );
    }
    assert!(gh.is_running());
}
