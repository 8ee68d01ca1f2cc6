//! Raw HTTP/1.1 over a TCP socket, as an attacker writes it: the request target and headers go out byte for
//! byte (no URL normalisation, no re-encoding), the reply is read whole (`Content-Length`, chunked or until
//! close) and parsed just enough to assert on. Also: sockets opened and left in a state (idle, half-sent,
//! never reading) and polled without blocking to see when the server closes them, and a process's thread
//! count, resident memory and open sockets from /proc.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Basic credentials as an `Authorization` header value.
pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {token}")
}

/// A reply read off a raw socket.
#[derive(Clone)]
pub struct RawReply {
    /// The request line that was sent.
    pub what: String,
    /// The status code (0 when the server closed without a status line).
    pub status: u16,
    /// The header lines, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was chunked.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RawReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} -> {}", self.what, self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "  {name}: {value}")?;
        }
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(1500)]);
        write!(f, "  body: {body}")
    }
}

impl RawReply {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `errors[0].code` of a distribution-style error body, if there is one.
    pub fn error_code(&self) -> Option<String> {
        self.json()?["errors"][0]["code"]
            .as_str()
            .map(str::to_string)
    }

    /// Everything a client could read in this reply (status line, headers, body) as one lossy string.
    pub fn all_text(&self) -> String {
        let mut text = format!("{}\n", self.status);
        for (name, value) in &self.headers {
            text += &format!("{name}: {value}\n");
        }
        text + &String::from_utf8_lossy(&self.body)
    }
}

/// Sends `METHOD TARGET HTTP/1.1` with `Host`, `headers` and `body` (with its `Content-Length` unless a
/// header already says how the body is framed) and `Connection: close`, then reads the whole reply.
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawReply {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        head += &format!("Content-Length: {}\r\n", body.len());
    }
    head += "Connection: close\r\n\r\n";
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connecting to 127.0.0.1:{port}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let what = format!("{method} {target}");
    // The server may answer (and close) before it read the body: a failed write is not an error here.
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => panic!("{what}: reading the reply: {e} (read so far: {raw:?})"),
        }
    }
    parse(what, &raw, method == "HEAD")
}

/// Parses one HTTP/1.1 reply from `raw`.
fn parse(what: String, raw: &[u8], head_only: bool) -> RawReply {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return RawReply {
            what,
            status: 0,
            headers: Vec::new(),
            body: raw.to_vec(),
        };
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawReply {
        what,
        status,
        headers,
        body,
    }
}

/// The payload of a chunked body (stops at the last chunk or where the data ends).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// What a non-blocking look at a socket saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peek {
    /// Nothing to read and not closed.
    Open,
    /// Bytes were read (and dropped).
    Data(usize),
    /// The peer closed (EOF) or reset the connection.
    Closed,
}

/// Reads whatever `conn` has without blocking and tells what it saw.
pub fn peek(conn: &mut TcpStream) -> Peek {
    conn.set_nonblocking(true).expect("set_nonblocking");
    let mut buf = [0u8; 65536];
    let seen = match conn.read(&mut buf) {
        Ok(0) => Peek::Closed,
        Ok(n) => Peek::Data(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Peek::Open,
        Err(e) if e.kind() == ErrorKind::Interrupted => Peek::Open,
        Err(_) => Peek::Closed,
    };
    conn.set_nonblocking(false).expect("set_nonblocking");
    seen
}

/// Reads one whole reply to a request already sent on `conn` (headers, then `Content-Length` bytes of body)
/// and leaves the connection open; panics if none comes within `timeout`.
pub fn read_one_reply(conn: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    conn.set_read_timeout(Some(timeout)).expect("read timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + len {
                return raw;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no whole reply within {timeout:?}: {:?}",
            String::from_utf8_lossy(&raw)
        );
        match conn.read(&mut buf) {
            Ok(0) => panic!(
                "the server closed before a whole reply: {:?}",
                String::from_utf8_lossy(&raw)
            ),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading a reply: {e}"),
        }
    }
}

/// One `Name: value` line of `/proc/PID/status`, as a number (the first field).
fn status_number(pid: u32, name: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} line in /proc/{pid}/status"));
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unparsable {name} line {line:?}"))
}

/// The number of threads of process `pid`.
pub fn threads(pid: u32) -> u64 {
    status_number(pid, "Threads")
}

/// The resident set size of process `pid` now, in KiB.
pub fn vm_rss_kib(pid: u32) -> u64 {
    status_number(pid, "VmRSS")
}

/// How many sockets process `pid` holds open.
pub fn open_sockets(pid: u32) -> usize {
    let dir = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/fd: {e}"));
    dir.flatten()
        .filter(|e| {
            fs::read_link(e.path())
                .map(|t| t.to_string_lossy().starts_with("socket:"))
                .unwrap_or(false)
        })
        .count()
}
