//! HTTP/2 over TLS is held to the same connection limits as HTTP/1 (found in a security review: every HTTP/2
//! connection was exempt; 20,000 idle ones exhausted the process's file descriptors). A Python `ssl` client
//! negotiates h2 by ALPN and then (1) sends nothing, (2) sends half the preface, (3) sends the preface and a
//! SETTINGS frame and goes quiet, (4) does that and one complete GET, then goes quiet; each must be closed by
//! gatehouse within its header or idle timeout. Real gatehouse binary, TLS from a CA made here.

use std::process::Command;

use crate::tls::{start_on, Key, Pki};
use crate::util::process::require_tool;
use crate::util::{net, temp_dir};

/// Opens one h2 connection per case, then reports per case the ALPN it got and after how many seconds the
/// server closed it (null: still open at the end).
const CLIENT: &str = r#"
import json, socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["h2"])
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
# HEADERS, END_STREAM|END_HEADERS, stream 1: :method GET, :scheme https, :path /v2/, :authority localhost
# (indexed 2, 7, literal path, literal authority) in HPACK without Huffman.
block = b"\x82\x87" + b"\x04\x04/v2/" + b"\x01\x09localhost"
HEADERS = len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block
cases = {"nothing": b"", "half preface": PREFACE[:10], "settings then quiet": PREFACE + SETTINGS + ACK,
         "one request then quiet": PREFACE + SETTINGS + ACK + HEADERS}
conns, out = {}, {}
for name, data in cases.items():
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.sendall(data)
    s.setblocking(False)
    conns[name] = (s, time.monotonic())
    out[name] = {"alpn": s.selected_alpn_protocol(), "closed_after": None}
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline and any(v["closed_after"] is None for v in out.values()):
    for name, (s, t0) in conns.items():
        if out[name]["closed_after"] is not None:
            continue
        try:
            if s.recv(65536) == b"":
                out[name]["closed_after"] = time.monotonic() - t0
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except OSError:
            out[name]["closed_after"] = time.monotonic() - t0
    time.sleep(0.05)
print(json.dumps(out))
"#;

#[test]
fn h2_connections_that_go_quiet_are_closed_within_the_header_or_idle_timeout() {
    let pki = Pki::new();
    let (cert, key) = pki.issue("server", 21, Key::Ec, false);
    let work = temp_dir("h2-limits");
    let port = net::free_port();
    let timeouts = "idle_timeout_seconds = 2\nheader_timeout_seconds = 2\n";
    let _gh = start_on(
        port,
        timeouts,
        &work.path().join("data"),
        &cert,
        &key,
        "",
        false,
    );
    let out = Command::new(require_tool("python3", "python3"))
        .args([
            "-c",
            CLIENT,
            &port.to_string(),
            &pki.ca().display().to_string(),
            "20",
        ])
        .output()
        .expect("running the h2 client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the client's JSON");
    eprintln!("h2 connections closed: {seen}");
    for (name, case) in seen.as_object().expect("cases") {
        assert_eq!(case["alpn"], "h2", "{name}: {seen}");
        let closed = case["closed_after"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: still open after 20 s (timeouts 2 s): {seen}"));
        assert!(
            closed >= 1.0,
            "{name}: closed after {closed} s, before its timeout: {seen}"
        );
    }
}
