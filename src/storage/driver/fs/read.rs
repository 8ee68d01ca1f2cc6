//! Ranged reads of a file. A chunk already in the page cache is read at once on the async thread
//! (`preadv2` with `RWF_NOWAIT`, which never waits for the disk) and nothing is read ahead; a chunk that would
//! wait is one `pread` job on the blocking pool per [`READ_CHUNK`], the next one started as a chunk is handed
//! over. Either way a reader that stops asking holds two chunks at most and never a thread.

use super::super::ByteStream;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::io;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// How many bytes one read job of a ranged read reads (two of these per stalled reader at most).
pub const READ_CHUNK: usize = 256 * 1024;

/// A ranged read of one file: one `pread` job per chunk, the next one started as a chunk is handed over.
pub(super) struct FsRange {
    file: Arc<std::fs::File>,
    path: String,
    /// Where the range starts (for [`ByteStream::file_range`]).
    start: u64,
    /// Where the next read job starts.
    next: u64,
    /// Bytes no read job has been started for.
    left: u64,
    /// The read job started ahead of the consumer.
    ahead: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FsRange {
    /// A read of `len` bytes of `file` from `offset` (the caller has clipped `len` to the file).
    pub(super) fn new(file: Arc<std::fs::File>, path: &str, offset: u64, len: u64) -> FsRange {
        FsRange {
            file,
            path: path.to_string(),
            start: offset,
            next: offset,
            left: len,
            ahead: None,
        }
    }

    /// Starts the read job for the next chunk, `None` when the range is all read or being read.
    fn start_read(&mut self) -> Option<JoinHandle<io::Result<Bytes>>> {
        if self.left == 0 {
            return None;
        }
        let want = (READ_CHUNK as u64).min(self.left) as usize;
        let (file, at) = (self.file.clone(), self.next);
        self.next += want as u64;
        self.left -= want as u64;
        Some(tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::with_capacity(want);
            let mut done = 0;
            while done < want {
                match pread_into(&file, &mut buf, want - done, at + done as u64, 0) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(buf.freeze())
        }))
    }

    /// The next chunk when it is all in the page cache, read without waiting; `None` when it is not (or the
    /// kernel cannot say), and then the blocking pool reads it.
    fn read_cached(&mut self) -> Option<Bytes> {
        if self.left == 0 {
            return None;
        }
        let want = (READ_CHUNK as u64).min(self.left) as usize;
        let mut buf = BytesMut::with_capacity(want);
        match pread_into(&self.file, &mut buf, want, self.next, libc::RWF_NOWAIT) {
            Ok(n) if n == want => {}
            // EAGAIN (not cached), a short read, or no RWF_NOWAIT: the pool reads the whole chunk.
            _ => return None,
        }
        self.next += want as u64;
        self.left -= want as u64;
        Some(buf.freeze())
    }
}

/// Reads at most `max` bytes into the unfilled capacity of `buf` at file offset `at` (`preadv2` with `flags`),
/// growing its length by what was read. The capacity is never zeroed first (the kernel writes it): a download
/// then touches each byte twice, not three times.
fn pread_into(
    file: &std::fs::File,
    buf: &mut BytesMut,
    max: usize,
    at: u64,
    flags: libc::c_int,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    let iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len().min(max),
    };
    let at = libc::off_t::try_from(at).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `iov` covers the spare capacity of `buf`, which stays allocated and unaliased for the whole call;
    // the fd is the open file `file` keeps alive. The kernel writes at most `iov_len` bytes.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[async_trait]
impl ByteStream for FsRange {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        if self.ahead.is_none() {
            if let Some(chunk) = self.read_cached() {
                return Ok(Some(chunk));
            }
        }
        let Some(job) = self.ahead.take().or_else(|| self.start_read()) else {
            return Ok(None);
        };
        let chunk = match job.await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(e)) => {
                self.left = 0;
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: read: {e}", self.path),
                ));
            }
            Err(join) => {
                self.left = 0;
                return Err(io::Error::other(format!("{}: read: {join}", self.path)));
            }
        };
        self.ahead = self.start_read();
        Ok(Some(chunk))
    }

    fn file_range(&self) -> Option<(Arc<std::fs::File>, u64, u64)> {
        let untouched = self.next == self.start && self.ahead.is_none();
        untouched.then(|| (self.file.clone(), self.start, self.left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::driver::Driver;
    use std::path::Path;

    /// Issue 9 finding 2: a download whose client stops reading must hold no thread and at most two chunks (the
    /// one being sent and one read ahead), not a blocking-pool thread parked on a full channel.
    #[tokio::test]
    async fn stalled_reader_holds_at_most_two_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern_file(dir.path(), READ_CHUNK * 8 + 5);
        let file = std::fs::File::open(dir.path().join("blob")).unwrap();
        let mut s = FsRange {
            file: Arc::new(file),
            path: "blob".into(),
            start: 0,
            next: 0,
            left: data.len() as u64,
            ahead: None,
        };
        let first = s.next_chunk().await.unwrap().unwrap();
        assert_eq!(first[..], data[..READ_CHUNK]);
        // The consumer stalls here: at most one more chunk has been asked for (none when the first came from
        // the page cache without waiting), and a job started ahead ends on its own.
        assert!(s.next <= 2 * READ_CHUNK as u64, "read {} ahead", s.next);
        let mut rest = first.to_vec();
        if let Some(ahead) = s.ahead.take() {
            let second = ahead.await.unwrap().unwrap();
            assert_eq!(second[..], data[READ_CHUNK..2 * READ_CHUNK]);
            assert_eq!(s.next, 2 * READ_CHUNK as u64, "nothing more read meanwhile");
            rest.extend_from_slice(&second);
        }
        while let Some(c) = s.next_chunk().await.unwrap() {
            assert!(c.len() <= READ_CHUNK && !c.is_empty());
            rest.extend_from_slice(&c);
        }
        assert!(rest == data);
    }

    #[tokio::test]
    async fn a_file_cut_short_under_a_reader_is_an_error_not_a_short_body() {
        let dir = tempfile::tempdir().unwrap();
        let d = super::super::FsDriver::new(dir.path()).await.unwrap();
        pattern_file(dir.path(), READ_CHUNK * 3);
        let mut s = d
            .read_range("blob", 0, (READ_CHUNK * 3) as u64)
            .await
            .unwrap();
        s.next_chunk().await.unwrap().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("blob"))
            .unwrap()
            .set_len(10)
            .unwrap();
        let mut failed = false;
        while !failed {
            match s.next_chunk().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended short without an error"),
                Err(e) => failed = e.to_string().contains("blob"),
            }
        }
        assert_eq!(
            s.next_chunk().await.unwrap(),
            None,
            "an error ends the stream"
        );
    }

    /// The no-zeroing read must stop at what was asked, even when the buffer has room for more (a longer chunk
    /// would make the stream longer than its length).
    #[test]
    fn pread_into_reads_no_more_than_asked_into_a_larger_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let data = pattern_file(dir.path(), 10_000);
        let file = std::fs::File::open(dir.path().join("blob")).unwrap();
        let mut buf = BytesMut::with_capacity(8192);
        assert_eq!(pread_into(&file, &mut buf, 100, 7, 0).unwrap(), 100);
        assert_eq!(buf[..], data[7..107]);
        assert_eq!(
            pread_into(&file, &mut buf, 5000, 9_990, 0).unwrap(),
            10,
            "short at the end of the file"
        );
        assert_eq!(buf[100..], data[9_990..]);
        assert_eq!(
            pread_into(&file, &mut buf, 10, 10_000, 0).unwrap(),
            0,
            "nothing past the end"
        );
    }

    fn pattern_file(dir: &Path, len: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        std::fs::write(dir.join("blob"), &data).unwrap();
        data
    }
}
