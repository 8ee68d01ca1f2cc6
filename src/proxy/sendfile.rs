//! Blob bodies the kernel sends. On a plain TCP HTTP/1.1 connection, a reply whose body is a range of a local file
//! is written straight to the socket: its head with `send`, its body with `sendfile(2)`, so the bytes are never
//! copied through gatehouse's memory (nginx's `sendfile on`). A stalled client then holds no buffer at all.
//!
//! A part of the range that is all in the page cache (asked with `cachestat(2)`) is sent from the async thread;
//! a part that may wait for the disk, or any part when the kernel cannot say, is sent by one job on the blocking
//! pool. Neither ever waits for the client: the socket does not block, and waiting for it to take more is an
//! await bounded by the send timeout, as on the copying path.
//!
//! pingora never sees such a response. The writer tells the connection's [`Guarded`] wrapper (the connection is
//! idle again afterwards) and the request's context (the access log and metrics), and pingora goes on to keep
//! the connection alive as if it had written the response itself.

use crate::timeouts::Guarded;
use pingora::proxy::Session;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Bodies shorter than this are copied: for them, setting up the direct path costs more than the copy.
pub(super) const MIN_LEN: u64 = 64 * 1024;

/// The most one `sendfile` call sends; the task gives other tasks a turn between calls.
const STEP: u64 = 1 << 20;

/// The connection of `session` when a reply may be written straight to its socket: HTTP/1.1 over plain TCP
/// through gatehouse's own [`Guarded`] wrapper. TLS, HTTP/2 and anything else give `None`.
pub(super) fn direct_socket(session: &Session) -> Option<(&Guarded, RawFd)> {
    if session.req_header().version != http::Version::HTTP_11 {
        return None;
    }
    let guarded = session.stream()?.as_any().downcast_ref::<Guarded>()?;
    let fd = guarded.plain_tcp_fd()?;
    Some((guarded, fd))
}

/// Why a direct send stopped short.
pub(super) enum SendError {
    /// The client: it hung up, or took nothing for the send timeout (`timed_out`).
    Client { error: io::Error, timed_out: bool },
    /// The file: it ended before the range did, or could not be read.
    File(io::Error),
}

/// Our own descriptor of a connection's socket, registered for writability beside pingora's registration of
/// it: pingora keeps the socket open for the whole reply, and a blocking-pool job holds its own reference.
pub(super) struct Socket {
    sock: Arc<OwnedFd>,
    ready: AsyncFd<Arc<OwnedFd>>,
}

impl Socket {
    /// Duplicates and registers `fd`; an error (no descriptor left, say) leaves the reply to the copying path,
    /// since nothing was written yet.
    pub(super) fn open(fd: RawFd) -> io::Result<Socket> {
        // SAFETY: F_DUPFD_CLOEXEC on an open descriptor creates a new one, which only `OwnedFd` then owns.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor nothing else owns.
        let sock = Arc::new(unsafe { OwnedFd::from_raw_fd(dup) });
        // SAFETY: the `Arc<OwnedFd>` keeps the duplicate open, always the same descriptor, for as long as
        // `ready` lives (it holds one of the references).
        let ready = unsafe { AsyncFd::register_with_interest(sock.clone(), Interest::WRITABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Socket { sock, ready })
    }
}

/// Writes `head`, then `len` bytes of `file` from `offset`, to `socket`, waiting at most `stall` each time the
/// client takes nothing. Returns the body bytes sent; on an error, how many went before it as well (the
/// connection is then unusable and must be closed).
pub(super) async fn send(
    socket: Socket,
    head: &[u8],
    file: Arc<File>,
    offset: u64,
    len: u64,
    stall: Duration,
) -> Result<u64, (SendError, u64)> {
    let client = |error: io::Error| SendError::Client {
        timed_out: error.kind() == io::ErrorKind::TimedOut,
        error,
    };
    let Socket { sock, ready } = socket;
    let mut at = 0;
    while at < head.len() {
        match send_some(sock.as_raw_fd(), &head[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                writable(&ready, stall).await.map_err(|e| (client(e), 0))?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((client(e), 0)),
        }
    }

    let mut sent = 0;
    while sent < len {
        let (from, want) = (offset + sent, (len - sent).min(STEP));
        let r = if page_cached(&file, from, want) {
            sendfile_some(sock.as_raw_fd(), &file, from, want)
        } else {
            let (sock, file) = (sock.clone(), file.clone());
            tokio::task::spawn_blocking(move || sendfile_some(sock.as_raw_fd(), &file, from, want))
                .await
                .unwrap_or_else(|join| Err(io::Error::other(join.to_string())))
        };
        match r {
            Ok(0) => {
                let short = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ended {} bytes before its length", len - sent),
                );
                return Err((SendError::File(short), sent));
            }
            Ok(n) => {
                sent += n as u64;
                tokio::task::yield_now().await;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => writable(&ready, stall)
                .await
                .map_err(|e| (client(e), sent))?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // EPIPE, ECONNRESET: the client went away. A read error of the file is EIO and the like.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {
                return Err((client(e), sent))
            }
            Err(e) => return Err((SendError::File(e), sent)),
        }
    }
    Ok(sent)
}

/// Waits until the socket takes more. A client that took nothing for `stall` is cut off; one whose unsent
/// queue shrank meanwhile is reading, however slowly (the kernel wakes a writer only once a third of a full
/// send buffer has drained, which a slow reader may take longer than `stall` to do; found in review).
async fn writable(ready: &AsyncFd<Arc<OwnedFd>>, stall: Duration) -> io::Result<()> {
    let mut queued = unsent(ready.get_ref().as_raw_fd());
    loop {
        match tokio::time::timeout(stall, ready.writable()).await {
            Err(_) => {
                let now = unsent(ready.get_ref().as_raw_fd());
                match (queued, now) {
                    (Some(before), Some(now)) if now < before => queued = Some(now),
                    _ => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the client took nothing of the response for {stall:?}"),
                        ))
                    }
                }
            }
            Ok(guard) => {
                // Cleared before the retry: an edge that comes after this is seen by the next wait.
                guard?.clear_ready();
                return Ok(());
            }
        }
    }
}

/// The bytes in the socket's send queue that the client has not taken yet (`SIOCOUTQ`), if the kernel says.
fn unsent(fd: RawFd) -> Option<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer, which is valid for the call.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    (r == 0).then(|| u64::try_from(n).unwrap_or(0))
}

/// One non-blocking `send` of `buf`, never raising SIGPIPE.
fn send_some(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the whole call.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_MORE,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// One `sendfile` of at most `want` bytes of `file` from `at`; on the non-blocking socket it sends what fits.
fn sendfile_some(fd: RawFd, file: &File, at: u64, want: u64) -> io::Result<usize> {
    let mut off =
        libc::off_t::try_from(at).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both descriptors are open for the call; the kernel reads the file and writes the socket only.
    let n = unsafe { libc::sendfile(fd, file.as_raw_fd(), &mut off, want as usize) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Set once `cachestat` is found missing (kernels before 6.5) or forbidden (a seccomp profile).
static NO_CACHESTAT: AtomicBool = AtomicBool::new(false);

/// `cachestat(2)`'s number, the same on every architecture (it was added after the tables were unified).
const SYS_CACHESTAT: libc::c_long = 451;

/// Whether every page of `len` bytes of `file` from `at` is in the page cache, so sending them never waits for
/// the disk. `false` when the kernel cannot say.
fn page_cached(file: &File, at: u64, len: u64) -> bool {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    if len == 0 || NO_CACHESTAT.load(Ordering::Relaxed) {
        return false;
    }
    let range = Range { off: at, len };
    let mut stat = Stat::default();
    // SAFETY: `range` and `stat` are the kernel's `cachestat_range` and `cachestat`, valid for the call.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if r != 0 {
        let errno = io::Error::last_os_error().raw_os_error();
        if matches!(errno, Some(libc::ENOSYS | libc::EPERM)) {
            NO_CACHESTAT.store(true, Ordering::Relaxed);
        }
        return false;
    }
    let page = page_size();
    let pages = (at + len - 1) / page - at / page + 1;
    stat.nr_cache >= pages
}

/// The page size (the unit `cachestat` counts in).
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// A file of `len` pattern bytes in `dir`, open for reading, and its bytes.
    fn pattern_file(dir: &tempfile::TempDir, len: usize) -> (Vec<u8>, Arc<File>) {
        let path = dir.path().join("f");
        let data = pattern(len);
        std::fs::write(&path, &data).unwrap();
        (data, Arc::new(File::open(&path).unwrap()))
    }

    /// A file just written is in the page cache; a range past its end is not "all cached".
    #[test]
    fn page_cached_says_yes_for_a_fresh_file_when_the_kernel_can_tell() {
        let dir = tempfile::tempdir().unwrap();
        let (_, f) = pattern_file(&dir, 3 << 20);
        let cached = page_cached(&f, 4097, 2 << 20);
        if NO_CACHESTAT.load(Ordering::Relaxed) {
            assert!(!cached, "no cachestat means 'cannot say'");
        } else {
            assert!(cached, "a file just written is all in the page cache");
            assert!(
                !page_cached(&f, 3 << 20, 1 << 20),
                "past the end is not cached"
            );
        }
        assert!(!page_cached(&f, 0, 0));
    }

    /// The head and a range of the file arrive in order and whole, through a socket the reader drains slowly
    /// (so the sender meets a full socket buffer and waits for it), and the count is the body's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_writes_the_head_then_exactly_the_range_through_a_full_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (data, file) = pattern_file(&dir, 9 << 20);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0; 64 * 1024];
            loop {
                std::thread::sleep(Duration::from_millis(1));
                match c.read(&mut buf).unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            got
        });
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let (off, len) = (12_345u64, (8 << 20) + 3);
        let sent = send(
            Socket::open(server.as_raw_fd()).unwrap(),
            b"HEAD\r\n\r\n",
            file,
            off,
            len,
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|_| panic!("send failed"));
        assert_eq!(sent, len);
        drop(server);
        let got = reader.join().unwrap();
        assert_eq!(&got[..8], b"HEAD\r\n\r\n");
        assert!(got[8..] == data[off as usize..(off + len) as usize]);
    }

    /// A client that takes nothing is cut off after the stall time, with a time-out (not a hang).
    #[tokio::test]
    async fn a_client_that_takes_nothing_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let (_, file) = pattern_file(&dir, 64 << 20);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(b"x").unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let r = send(
            Socket::open(server.as_raw_fd()).unwrap(),
            b"",
            file,
            0,
            64 << 20,
            Duration::from_millis(300),
        )
        .await;
        match r {
            Err((SendError::Client { timed_out, .. }, sent)) => {
                assert!(timed_out);
                assert!(sent > 0 && sent < 64 << 20, "sent {sent}");
            }
            _ => panic!("a client that reads nothing must time out"),
        }
    }

    /// A file shorter than the range is a file error after what it had, never a short success.
    #[tokio::test]
    async fn a_file_shorter_than_the_range_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_, file) = pattern_file(&dir, 1000);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            got.len()
        });
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let r = send(
            Socket::open(server.as_raw_fd()).unwrap(),
            b"",
            file,
            0,
            5000,
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(r, Err((SendError::File(_), 1000))));
        drop(server);
        assert_eq!(reader.join().unwrap(), 1000);
    }
}
