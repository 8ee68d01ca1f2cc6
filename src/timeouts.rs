//! Connection timeouts the framework does not give: a keep-alive idle limit and a deadline for a complete request
//! head, enforced by wrapping each accepted HTTP/1 connection before pingora reads from it.
//!
//! pingora keeps an HTTP/1.1 keep-alive connection open forever after its first request, and times a request head
//! only per read, so a client that trickles one header line now and then, or opens connections and never sends,
//! holds them indefinitely. [`Bounded`] wraps the proxy's `ServerApp`: its [`Guarded`] stream knows, from the bytes
//! going by, whether the connection is idle (waiting for a request), inside a request head (up to the blank line),
//! or past it; an idle connection ends quietly after `idle`, a head that is not complete within `header` fails.
//! An HTTP/2 connection (TLS with ALPN h2) is watched only until its preface has arrived, which must be within
//! `header` (pingora's HTTP/2 handshake waits forever); after that pingora's HTTP/2 idle timeout, which the
//! server sets to `idle`, closes it when no stream is open. Body stalls are bounded per read (pingora's read
//! timeout on HTTP/1, the proxy's own on both), clients that do not read by pingora's per-write timeout, all
//! from the same [`Timeouts`].

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The connection and transfer timeouts of the main listener (`[server]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A connection with no request in progress is closed after this long (`idle_timeout_seconds`).
    pub idle: Duration,
    /// A request head must be complete this long after its first byte (`header_timeout_seconds`).
    pub header: Duration,
    /// A request body that sends nothing for this long fails (`body_timeout_seconds`).
    pub body: Duration,
    /// A client that takes nothing of a response for this long is cut off (`send_timeout_seconds`).
    pub send: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(60),
            header: Duration::from_secs(30),
            body: Duration::from_secs(60),
            send: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// Builds the timeouts from whole seconds, refusing zero (a timeout that is off must not look configured);
    /// the error names the config key.
    pub fn from_seconds(
        idle: u64,
        header: u64,
        body: u64,
        send: u64,
    ) -> Result<Timeouts, (&'static str, String)> {
        let pick = |key: &'static str, secs: u64| {
            if secs == 0 {
                Err((key, "must be at least 1 second".to_string()))
            } else {
                Ok(Duration::from_secs(secs))
            }
        };
        Ok(Timeouts {
            idle: pick("server.idle_timeout_seconds", idle)?,
            header: pick("server.header_timeout_seconds", header)?,
            body: pick("server.body_timeout_seconds", body)?,
            send: pick("server.send_timeout_seconds", send)?,
        })
    }
}

/// How often a stream of writes moves the idle deadline.
const REARM_EVERY: Duration = Duration::from_millis(250);

/// Wraps a `ServerApp` (the proxy) so each connection it gets is a [`Guarded`] stream.
pub struct Bounded<A> {
    inner: Arc<A>,
    timeouts: Timeouts,
}

impl<A> Bounded<A> {
    /// Wraps `inner` with `timeouts`.
    pub fn new(inner: A, timeouts: Timeouts) -> Bounded<A> {
        Bounded {
            inner: Arc::new(inner),
            timeouts,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Bounded<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let wrapped = stream.as_any().is::<Guarded>();
        let stream: Stream = if wrapped {
            stream
        } else if h2 {
            Box::new(Guarded::new_h2(stream, self.timeouts))
        } else {
            Box::new(Guarded::new(stream, self.timeouts))
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// Where a connection is in the HTTP/1 exchange, as far as the bytes going by tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request (a fresh connection, or a response was written since).
    Idle,
    /// Inside a request head; `tail` holds the last bytes seen, to find the blank line.
    Head { tail: u32 },
    /// Past the head: body bytes, or waiting for our response.
    Past,
    /// An HTTP/2 connection before the client's preface and first SETTINGS frame header have arrived
    /// (`left` bytes to go); past them, HTTP/2's own idle timeout and the per-request timeouts apply.
    H2Start { left: u32 },
}

/// The client's HTTP/2 connection preface (24 bytes) and the header of the SETTINGS frame that must follow.
const H2_START: u32 = 24 + 9;

/// An accepted connection that ends when idle too long or when a request head takes too long.
pub struct Guarded {
    inner: Stream,
    timeouts: Timeouts,
    /// An HTTP/2 connection: only its start is watched here (what it writes is frames, not status lines).
    h2: bool,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// When the deadline was last moved (writes move it at most every [`REARM_EVERY`], not per write).
    armed_at: Instant,
    /// A response went out past this wrapper, straight to the socket ([`Guarded::answered_past_me`]).
    answered_elsewhere: AtomicBool,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl Guarded {
    /// Wraps a freshly accepted connection (idle until its first byte).
    pub fn new(inner: Stream, timeouts: Timeouts) -> Guarded {
        Guarded {
            inner,
            timeouts,
            h2: false,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(timeouts.idle)),
            armed_at: Instant::now(),
            answered_elsewhere: AtomicBool::new(false),
        }
    }

    /// Wraps a connection that speaks HTTP/2 (by ALPN): its preface must arrive within the header timeout
    /// (pingora's HTTP/2 handshake waits for it forever).
    pub fn new_h2(inner: Stream, timeouts: Timeouts) -> Guarded {
        Guarded {
            inner,
            timeouts,
            h2: true,
            phase: Phase::H2Start { left: H2_START },
            deadline: Box::pin(tokio::time::sleep(timeouts.header)),
            armed_at: Instant::now(),
            answered_elsewhere: AtomicBool::new(false),
        }
    }

    /// The socket of a plain TCP connection (no TLS, not HTTP/2), for a reply written straight to it.
    pub fn plain_tcp_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        if self.h2 {
            return None;
        }
        let tcp = self
            .inner
            .as_any()
            .downcast_ref::<pingora::protocols::l4::stream::Stream>()?;
        Some(tcp.as_raw_fd())
    }

    /// Says that a whole response was written straight to the socket, past this wrapper: the connection is
    /// idle again from the next time it is read, as if the status line had gone by here.
    pub fn answered_past_me(&self) {
        self.answered_elsewhere.store(true, Ordering::Release);
    }

    fn rearm(&mut self, after: Duration) {
        let now = Instant::now();
        self.armed_at = now;
        self.deadline.as_mut().reset(now + after);
    }

    /// Follows the bytes a client sent: a first byte starts a head, a blank line (CRLF CRLF or LF LF) ends it.
    fn saw_request_bytes(&mut self, bytes: &[u8]) {
        if let Phase::H2Start { left } = self.phase {
            let left = left.saturating_sub(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            self.phase = if left == 0 {
                Phase::Past
            } else {
                Phase::H2Start { left }
            };
            return;
        }
        for &b in bytes {
            match self.phase {
                Phase::Past | Phase::H2Start { .. } => return,
                Phase::Idle => {
                    self.phase = Phase::Head { tail: 0 };
                    let header = self.timeouts.header;
                    self.rearm(header);
                    self.push(b);
                }
                Phase::Head { .. } => self.push(b),
            }
        }
    }

    fn push(&mut self, b: u8) {
        if let Phase::Head { tail } = self.phase {
            let tail = (tail << 8) | u32::from(b);
            self.phase = if tail == 0x0d0a_0d0a || tail & 0xffff == 0x0a0a {
                Phase::Past
            } else {
                Phase::Head { tail }
            };
        }
    }

    /// Follows what we send: a final response status line returns the connection to idle; every write restarts
    /// the idle clock, so a long download is not idle time.
    fn saw_response_bytes(&mut self, bytes: &[u8]) {
        if self.h2 {
            return;
        }
        let informational = bytes.starts_with(b"HTTP/1.1 1") || bytes.starts_with(b"HTTP/1.0 1");
        let answer = bytes.starts_with(b"HTTP/1.") && !informational;
        if answer {
            self.phase = Phase::Idle;
        }
        // A download writes thousands of times a second: moving the timer on each write costs more than the
        // slack of moving it at most every REARM_EVERY.
        if self.phase == Phase::Idle && (answer || self.armed_at.elapsed() >= REARM_EVERY) {
            let idle = self.timeouts.idle;
            self.rearm(idle);
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answered_elsewhere.swap(false, Ordering::AcqRel) {
            this.phase = Phase::Idle;
            let idle = this.timeouts.idle;
            this.rearm(idle);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // Body bytes (past the head) are not looked at: the upload path pays nothing here.
                if this.phase != Phase::Past {
                    this.saw_request_bytes(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.phase == Phase::Past || this.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                match this.phase {
                    // An idle connection just ends: the client sees a close between requests.
                    Phase::Idle => Poll::Ready(Ok(())),
                    Phase::H2Start { .. } => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "HTTP/2 preface not complete in time",
                    ))),
                    _ => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not complete in time",
                    ))),
                }
            }
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r {
            this.saw_response_bytes(&data[..*n]);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let (Poll::Ready(Ok(n)), Some(first)) = (&r, bufs.first()) {
            if *n > 0 {
                let take = (*n).min(first.len());
                this.saw_response_bytes(&first[..take]);
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Guarded {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Guarded {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Guarded {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Guarded {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Guarded {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Guarded {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Guarded {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn short() -> Timeouts {
        Timeouts {
            idle: Duration::from_millis(200),
            header: Duration::from_millis(300),
            body: Duration::from_secs(5),
            send: Duration::from_secs(5),
        }
    }

    async fn pair() -> (Guarded, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = l.accept().await.unwrap();
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
        (Guarded::new(stream, short()), client)
    }

    async fn pair_h2() -> (Guarded, tokio::net::TcpStream) {
        let (g, client) = pair().await;
        (Guarded::new_h2(g.inner, short()), client)
    }

    /// The hole this pins: an HTTP/2 connection (TLS with ALPN h2) that never sent its preface was held
    /// forever, since pingora's HTTP/2 handshake has no deadline and HTTP/2 streams went unwrapped.
    #[tokio::test]
    async fn an_h2_connection_without_its_preface_fails_at_the_header_deadline() {
        for sent in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
            let (mut g, mut client) = pair_h2().await;
            client.write_all(sent).await.unwrap();
            let started = Instant::now();
            let mut buf = [0u8; 64];
            loop {
                match g.read(&mut buf).await {
                    Ok(0) => panic!("ended quietly, expected a timeout"),
                    Ok(_) => continue,
                    Err(e) => {
                        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                        break;
                    }
                }
            }
            assert!(started.elapsed() >= Duration::from_millis(250), "{sent:?}");
        }
    }

    #[tokio::test]
    async fn an_h2_connection_past_its_preface_is_left_to_http2s_own_timeouts() {
        let (mut g, mut client) = pair_h2().await;
        let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        start.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        client.write_all(&start).await.unwrap();
        let mut buf = vec![0u8; start.len()];
        g.read_exact(&mut buf).await.unwrap();
        // Frames we write are not status lines, and silence past the header deadline is not an error here.
        g.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(700), g.read(&mut buf)).await;
        assert!(
            waited.is_err(),
            "the read should still be pending: {waited:?}"
        );
    }

    #[tokio::test]
    async fn idle_connection_ends_quietly_after_the_idle_timeout() {
        let (mut g, _client) = pair().await;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(3), g.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0, "idle end looks like a close");
    }

    #[tokio::test]
    async fn trickled_request_head_fails_at_the_header_deadline() {
        let (mut g, mut client) = pair().await;
        let start = std::time::Instant::now();
        let mut buf = [0u8; 64];
        client.write_all(b"GET /v2/ HTTP/1.1\r\n").await.unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if client.write_all(b"X-A: b\r\n").await.is_err() {
                    break;
                }
            }
            client
        });
        let err = loop {
            match g.read(&mut buf).await {
                Ok(n) if n > 0 => continue,
                Ok(_) => panic!("closed instead of failing"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "{:?}",
            start.elapsed()
        );
        drop(trickle);
    }

    #[tokio::test]
    async fn complete_head_then_a_response_makes_the_connection_idle_again() {
        let (mut g, mut client) = pair().await;
        client
            .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = g.read(&mut buf).await.unwrap();
        assert!(n > 0);
        assert_eq!(g.phase, Phase::Past);
        // Past the head, no deadline applies while we work on the answer.
        tokio::time::sleep(Duration::from_millis(400)).await;
        g.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        assert_eq!(
            g.phase,
            Phase::Past,
            "an informational response is not the answer"
        );
        g.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(g.phase, Phase::Idle);
        let n = tokio::time::timeout(Duration::from_secs(3), g.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn zero_timeouts_are_refused_by_name() {
        let (key, _) = Timeouts::from_seconds(60, 0, 60, 60).unwrap_err();
        assert_eq!(key, "server.header_timeout_seconds");
        assert_eq!(
            Timeouts::from_seconds(60, 30, 60, 60).unwrap(),
            Timeouts::default()
        );
    }
}
