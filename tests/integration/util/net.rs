//! Loopback ports: a free port per server (never handed out twice in this test process, so parallel tests do
//! not collide) and waiting for a port to accept or to close.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Ports already handed out by [`free_port`] in this process.
static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// Returns a loopback port that was free a moment ago and that no other test of this process got.
pub fn free_port() -> u16 {
    loop {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 for a free port");
        let port = listener
            .local_addr()
            .expect("local_addr of a bound listener")
            .port();
        let mut used = HANDED_OUT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

/// Tells whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

/// Waits until nothing accepts on 127.0.0.1:`port` any more; panics after `timeout`.
pub fn wait_port_closed(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while port_accepts(port) {
        assert!(
            Instant::now() < deadline,
            "port {port} still accepts connections after {timeout:?}"
        );
        sleep(Duration::from_millis(50));
    }
}
