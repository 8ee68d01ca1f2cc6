//! SHA-256 and SHA-512 whose midstates can be saved and resumed, so an upload's hash survives a change of
//! instance.
//!
//! The compression functions are `sha2`'s own ([`sha2::compress256`], [`sha2::compress512`], with their
//! CPU-specific backends); only the buffering and padding are here. `to_bytes` writes a state in the layout of
//! Go's `crypto/sha256` and `crypto/sha512` `MarshalBinary` (a magic, the eight big-endian state words, the block
//! buffer, the length in bytes; 108 and 204 bytes), which is what distribution stores at
//! `_uploads/<id>/hashstates/<alg>/<offset>`.

use sha2::digest::generic_array::GenericArray;

/// The length of a marshalled SHA-256 state.
pub const STATE_BYTES: usize = 4 + 32 + 64 + 8;
/// The length of a marshalled SHA-512 state.
pub const STATE_BYTES_512: usize = 4 + 64 + 128 + 8;

/// Defines one resumable hash: its state type over `$word`s and `$block`-byte blocks, with Go's `$magic`, the
/// initial words, the compression function and the width of the padding's length field.
macro_rules! midstate {
    ($(#[$doc:meta])* $name:ident, $word:ty, $block:expr, $magic:expr, $init:expr, $compress:path,
     $len_field:expr, $state_bytes:expr, $out:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            h: [$word; 8],
            /// Bytes fed so far.
            len: u64,
            /// The partial block (`len % block` bytes are meaningful).
            buf: [u8; $block],
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    h: $init,
                    len: 0,
                    buf: [0; $block],
                }
            }
        }

        impl $name {
            /// How many bytes were fed.
            pub fn len(&self) -> u64 {
                self.len
            }

            /// Whether nothing was fed.
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }

            fn buffered(&self) -> usize {
                (self.len % $block as u64) as usize
            }

            /// Feeds bytes.
            pub fn update(&mut self, mut data: &[u8]) {
                let have = self.buffered();
                self.len += data.len() as u64;
                if have > 0 {
                    let take = ($block - have).min(data.len());
                    self.buf[have..have + take].copy_from_slice(&data[..take]);
                    data = &data[take..];
                    if have + take < $block {
                        return;
                    }
                    let block = *GenericArray::from_slice(&self.buf);
                    $compress(&mut self.h, &[block]);
                }
                let whole = data.len() / $block * $block;
                if whole > 0 {
                    let blocks: Vec<GenericArray<u8, _>> = data[..whole]
                        .chunks_exact($block)
                        .map(|c| *GenericArray::from_slice(c))
                        .collect();
                    $compress(&mut self.h, &blocks);
                }
                let rest = &data[whole..];
                self.buf[..rest.len()].copy_from_slice(rest);
            }

            /// The hash of what was fed (the state itself is left as it was).
            pub fn finish(&self) -> [u8; $out] {
                let mut h = self.h;
                let n = self.buffered();
                let mut tail = [0u8; 2 * $block];
                tail[..n].copy_from_slice(&self.buf[..n]);
                tail[n] = 0x80;
                let blocks = if n + 1 + $len_field <= $block { 1 } else { 2 };
                let end = blocks * $block;
                // The length in bits, big-endian, in the last `$len_field` bytes (its high bytes are zero here).
                tail[end - 8..end].copy_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
                if $len_field > 8 {
                    tail[end - 9] = (self.len >> 61) as u8;
                }
                let arr: Vec<GenericArray<u8, _>> = tail[..end]
                    .chunks_exact($block)
                    .map(|c| *GenericArray::from_slice(c))
                    .collect();
                $compress(&mut h, &arr);
                let mut out = [0u8; $out];
                let w = std::mem::size_of::<$word>();
                for (o, word) in out.chunks_exact_mut(w).zip(h) {
                    o.copy_from_slice(&word.to_be_bytes());
                }
                out
            }

            /// The state in Go's `MarshalBinary` layout.
            pub fn to_bytes(&self) -> Vec<u8> {
                let mut b = Vec::with_capacity($state_bytes);
                b.extend_from_slice($magic);
                for w in self.h {
                    b.extend_from_slice(&w.to_be_bytes());
                }
                let n = self.buffered();
                b.extend_from_slice(&self.buf[..n]);
                b.resize($state_bytes - 8, 0);
                b.extend_from_slice(&self.len.to_be_bytes());
                b
            }

            /// A state from `to_bytes` (or Go's `MarshalBinary`); `None` when it is not one.
            pub fn from_bytes(b: &[u8]) -> Option<$name> {
                if b.len() != $state_bytes || &b[..4] != $magic {
                    return None;
                }
                let w = std::mem::size_of::<$word>();
                let mut h: [$word; 8] = [0; 8];
                for (word, c) in h.iter_mut().zip(b[4..4 + 8 * w].chunks_exact(w)) {
                    *word = <$word>::from_be_bytes(c.try_into().ok()?);
                }
                let at = 4 + 8 * w;
                let mut buf = [0u8; $block];
                buf.copy_from_slice(&b[at..at + $block]);
                let len = u64::from_be_bytes(b[at + $block..].try_into().ok()?);
                let mut s = $name { h, len, buf };
                // Only the meaningful part of the buffer is kept, as Go does.
                let n = s.buffered();
                s.buf[n..].fill(0);
                Some(s)
            }
        }
    };
}

midstate!(
    /// An in-progress SHA-256 (FIPS 180-4; Go's magic `sha\x03`).
    Sha256State,
    u32,
    64,
    b"sha\x03",
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19],
    sha2::compress256,
    8,
    STATE_BYTES,
    32
);

midstate!(
    /// An in-progress SHA-512 (FIPS 180-4; Go's magic `sha\x07`).
    Sha512State,
    u64,
    128,
    b"sha\x07",
    [
        0x6a09e667f3bcc908,
        0xbb67ae8584caa73b,
        0x3c6ef372fe94f82b,
        0xa54ff53a5f1d36f1,
        0x510e527fade682d1,
        0x9b05688c2b3e6c1f,
        0x1f83d9abfb41bd6b,
        0x5be0cd19137e2179
    ],
    sha2::compress512,
    16,
    STATE_BYTES_512,
    64
);

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
    fn every_split_of_the_input_hashes_as_sha2_does_for_sha512() {
        use sha2::Sha512;
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 111, 112, 113, 127, 128, 129, 239, 240, 256, 999, 1000] {
            for cut in [0, 1, 127, 128, 129, len / 2, len] {
                let cut = cut.min(len);
                let mut s = Sha512State::default();
                s.update(&data[..cut]);
                let resumed = Sha512State::from_bytes(&s.to_bytes()).expect("round trip");
                assert_eq!(resumed, s, "len {len} cut {cut}");
                let mut s = resumed;
                for piece in data[cut..len].chunks(37) {
                    s.update(piece);
                }
                let want: [u8; 64] = Sha512::digest(&data[..len]).into();
                assert_eq!(s.finish(), want, "len {len} cut {cut}");
            }
        }
    }

    /// Go's `crypto/sha512` layout: `sha\x07`, eight big-endian words, the 128-byte buffer, the length.
    #[test]
    fn the_saved_sha512_state_has_gos_layout() {
        let mut s = Sha512State::default();
        s.update(b"abc");
        let b = s.to_bytes();
        assert_eq!(b.len(), STATE_BYTES_512);
        assert_eq!(&b[..4], b"sha\x07");
        assert_eq!(&b[4..12], &0x6a09e667f3bcc908u64.to_be_bytes());
        assert_eq!(&b[68..71], b"abc");
        assert!(b[71..196].iter().all(|&x| x == 0));
        assert_eq!(&b[196..], &3u64.to_be_bytes());
        assert_eq!(
            Sha512State::from_bytes(&Sha256State::default().to_bytes()),
            None
        );
        assert_eq!(Sha256State::from_bytes(&b), None);
        let mut other = b.clone();
        other[3] = 0x04; // SHA-384
        assert_eq!(Sha512State::from_bytes(&other), None);
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
