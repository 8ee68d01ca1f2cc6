//! One address cannot hold more than `server.max_connections_per_client` connections: every connection was
//! bounded in time, but one client could open as many as the process had file descriptors. The connection over
//! the cap is closed as soon as it is accepted, the ones it holds are still served, other addresses are not
//! affected, a slot comes back when a connection closes, and only the first refusal is logged.

use std::io::Write;
use std::net::TcpStream;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{embedded, pass_of, write_users};
use crate::util::raw::{self, basic, peek, Peek};
use crate::util::temp_dir;

/// A connection to 127.0.0.1:`port` from the source address `src` (any of 127/8 on Linux).
pub fn connect_from(src: &str, port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime to connect with");
    let stream = rt
        .block_on(async {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind(format!("{src}:0").parse().expect("a source address"))?;
            s.connect(([127, 0, 0, 1], port).into()).await
        })
        .unwrap_or_else(|e| panic!("connecting from {src} to port {port}: {e}"));
    let std = stream.into_std().expect("a std stream");
    std.set_nonblocking(false).expect("blocking mode");
    std
}

/// Sends `GET /v2/` with bob's credentials and returns the status line of the reply.
fn get_v2(conn: &mut TcpStream) -> String {
    let auth = basic("bob", pass_of("bob"));
    conn.write_all(
        format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .expect("writing a request");
    let reply = raw::read_one_reply(conn, Duration::from_secs(10));
    String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Like [`get_v2`], but `None` when the connection is closed without a reply (it was refused).
fn try_get_v2(conn: &mut TcpStream) -> Option<String> {
    use std::io::Read;
    let auth = basic("bob", pass_of("bob"));
    conn.write_all(
        format!("GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).ok().filter(|n| *n > 0)?;
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    text.lines().next().map(str::to_string)
}

/// Waits up to `within` for gatehouse to close `conn`; how long it took, `None` if it stayed open.
fn closed_within(conn: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if peek(conn) == Peek::Closed {
            return Some(t0.elapsed());
        }
        sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn one_address_over_max_connections_per_client_is_closed_at_accept_while_its_others_and_other_addresses_are_served(
) {
    let dir = temp_dir("adv-conn-cap");
    let htpasswd = write_users(dir.path());
    let gh = embedded(
        &dir.path().join("root"),
        &htpasswd,
        "max_connections_per_client = 4\nidle_timeout_seconds = 60\n",
        "",
    );
    let port = gh.port;
    let mut held: Vec<TcpStream> = (0..4)
        .map(|i| {
            let mut c = connect_from("127.0.0.1", port);
            assert_eq!(get_v2(&mut c), "HTTP/1.1 200 OK", "held connection {i}");
            c
        })
        .collect();

    // The fifth and sixth are closed at accept, before reading anything.
    for n in [5, 6] {
        let mut over = connect_from("127.0.0.1", port);
        let closed = closed_within(&mut over, Duration::from_secs(10));
        assert!(
            closed.is_some(),
            "connection {n} from an address holding 4 was not closed (the 4 have a 60 s idle timeout)"
        );
    }
    // The four it holds are still served, and so is another address.
    for (i, c) in held.iter_mut().enumerate() {
        assert_eq!(
            get_v2(c),
            "HTTP/1.1 200 OK",
            "held connection {i} after the refusals"
        );
    }
    let mut other = connect_from("127.0.0.2", port);
    assert_eq!(get_v2(&mut other), "HTTP/1.1 200 OK", "another address");

    // A slot comes back when one of the four closes.
    drop(held.pop());
    let t0 = Instant::now();
    loop {
        let mut again = connect_from("127.0.0.1", port);
        if try_get_v2(&mut again).as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no slot came back 15 s after a connection closed"
        );
        sleep(Duration::from_millis(100));
    }

    let log = gh.log_text();
    let warned = log
        .lines()
        .filter(|l| l.contains("max_connections_per_client") && l.contains("127.0.0.1"))
        .count();
    assert_eq!(
        warned, 1,
        "one log line for the first refusal, not one per refusal:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("max_connections_per_client") && l.contains("127.0.0.2")),
        "the other address was never refused"
    );
}
