//! A SHA-256 whose midstate can be saved and resumed, so an upload's hash survives a change of instance.
//!
//! The compression function is `sha2`'s own ([`sha2::compress256`], with its CPU-specific backends); only the
//! buffering and padding are here. [`Sha256State::to_bytes`] writes the state in the layout of Go's
//! `crypto/sha256` `MarshalBinary` (`"sha\x03"`, the eight state words, the 64-byte block buffer, the length in
//! bytes; big-endian, 108 bytes), which is what distribution stores at `_uploads/<id>/hashstates/sha256/<offset>`.

use sha2::digest::generic_array::GenericArray;

/// The bytes of one SHA-256 block.
const BLOCK: usize = 64;
/// Go's magic for a marshalled SHA-256.
const MAGIC: &[u8; 4] = b"sha\x03";
/// The length of a marshalled state.
pub const STATE_BYTES: usize = 4 + 32 + BLOCK + 8;
/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const INIT: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// An in-progress SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sha256State {
    h: [u32; 8],
    /// Bytes fed so far.
    len: u64,
    /// The partial block (`len % 64` bytes are meaningful).
    buf: [u8; BLOCK],
}

impl Default for Sha256State {
    fn default() -> Self {
        Sha256State {
            h: INIT,
            len: 0,
            buf: [0; BLOCK],
        }
    }
}

impl Sha256State {
    /// How many bytes were fed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn buffered(&self) -> usize {
        (self.len % BLOCK as u64) as usize
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        let have = self.buffered();
        self.len += data.len() as u64;
        if have > 0 {
            let take = (BLOCK - have).min(data.len());
            self.buf[have..have + take].copy_from_slice(&data[..take]);
            data = &data[take..];
            if have + take < BLOCK {
                return;
            }
            let block = *GenericArray::from_slice(&self.buf);
            sha2::compress256(&mut self.h, &[block]);
        }
        let whole = data.len() / BLOCK * BLOCK;
        if whole > 0 {
            let blocks: Vec<GenericArray<u8, _>> = data[..whole]
                .chunks_exact(BLOCK)
                .map(|c| *GenericArray::from_slice(c))
                .collect();
            sha2::compress256(&mut self.h, &blocks);
        }
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
    }

    /// The hash of what was fed (the state itself is left as it was).
    pub fn finish(&self) -> [u8; 32] {
        let mut h = self.h;
        let n = self.buffered();
        let mut tail = [0u8; 2 * BLOCK];
        tail[..n].copy_from_slice(&self.buf[..n]);
        tail[n] = 0x80;
        let blocks = if n + 1 + 8 <= BLOCK { 1 } else { 2 };
        let end = blocks * BLOCK;
        tail[end - 8..end].copy_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
        let arr: Vec<GenericArray<u8, _>> = tail[..end]
            .chunks_exact(BLOCK)
            .map(|c| *GenericArray::from_slice(c))
            .collect();
        sha2::compress256(&mut h, &arr);
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// The state in Go's `MarshalBinary` layout ([`STATE_BYTES`] bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(STATE_BYTES);
        b.extend_from_slice(MAGIC);
        for w in self.h {
            b.extend_from_slice(&w.to_be_bytes());
        }
        let n = self.buffered();
        b.extend_from_slice(&self.buf[..n]);
        b.resize(4 + 32 + BLOCK, 0);
        b.extend_from_slice(&self.len.to_be_bytes());
        b
    }

    /// A state from [`Sha256State::to_bytes`] (or Go's `MarshalBinary`); `None` when it is not one.
    pub fn from_bytes(b: &[u8]) -> Option<Sha256State> {
        if b.len() != STATE_BYTES || &b[..4] != MAGIC {
            return None;
        }
        let mut h = [0u32; 8];
        for (w, c) in h.iter_mut().zip(b[4..36].chunks_exact(4)) {
            *w = u32::from_be_bytes(c.try_into().ok()?);
        }
        let mut buf = [0u8; BLOCK];
        buf.copy_from_slice(&b[36..36 + BLOCK]);
        let len = u64::from_be_bytes(b[36 + BLOCK..].try_into().ok()?);
        let mut s = Sha256State { h, len, buf };
        // Only the meaningful part of the buffer is kept, as Go does.
        let n = s.buffered();
        s.buf[n..].fill(0);
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn reference(data: &[u8]) -> [u8; 32] {
        Sha256::digest(data).into()
    }

    #[test]
    fn every_split_of_the_input_hashes_as_sha2_does() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 999, 1000] {
            for cut in [0, 1, 7, 63, 64, 65, len / 2, len] {
                let cut = cut.min(len);
                let mut s = Sha256State::default();
                s.update(&data[..cut]);
                let resumed = Sha256State::from_bytes(&s.to_bytes()).expect("round trip");
                assert_eq!(resumed, s, "len {len} cut {cut}");
                let mut s = resumed;
                for piece in data[cut..len].chunks(37) {
                    s.update(piece);
                }
                assert_eq!(s.finish(), reference(&data[..len]), "len {len} cut {cut}");
                assert_eq!(s.len(), len as u64);
            }
        }
    }

    /// The layout is Go's: magic, big-endian state words, the block buffer zero-padded, the length last.
    #[test]
    fn the_saved_state_has_gos_layout() {
        let mut s = Sha256State::default();
        s.update(b"abc");
        let b = s.to_bytes();
        assert_eq!(b.len(), 108);
        assert_eq!(&b[..4], b"sha\x03");
        assert_eq!(
            &b[4..8],
            &0x6a09e667u32.to_be_bytes(),
            "no block compressed yet"
        );
        assert_eq!(&b[36..39], b"abc");
        assert!(b[39..100].iter().all(|&x| x == 0));
        assert_eq!(&b[100..], &3u64.to_be_bytes());
    }

    #[test]
    fn foreign_or_broken_states_are_refused() {
        let good = Sha256State::default().to_bytes();
        let mut wrong_magic = good.clone();
        wrong_magic[3] = 0x02; // SHA-224
        for bad in [&good[..107], &wrong_magic[..], b"", &[0u8; 108][..]] {
            assert_eq!(Sha256State::from_bytes(bad), None);
        }
    }
}
