//! Incremental hashing for the digest algorithms the registry accepts (sha256, sha512).

use super::driver::{Driver, DriverError};
use super::midstate::{Sha256State, Sha512State};
use crate::names::{Algorithm, Digest};

/// An in-progress hash of one algorithm.
#[derive(Clone)]
pub enum Digester {
    /// SHA-256 (its midstate can be saved: [`Digester::saved_state`]).
    Sha256(Sha256State),
    /// SHA-512.
    Sha512(Sha512State),
}

impl Digester {
    /// A fresh hasher for `alg`.
    pub fn new(alg: Algorithm) -> Digester {
        match alg {
            Algorithm::Sha256 => Digester::Sha256(Sha256State::default()),
            Algorithm::Sha512 => Digester::Sha512(Sha512State::default()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Digester::Sha256(_) => Algorithm::Sha256,
            Digester::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far (the hasher itself is left as it was).
    pub fn digest(&self) -> Digest {
        match self {
            Digester::Sha256(h) => Digest::from_hash(Algorithm::Sha256, &h.finish()),
            Digester::Sha512(h) => Digest::from_hash(Algorithm::Sha512, &h.finish()),
        }
    }
}

impl Digester {
    /// The hash state to store beside an upload (Go's layout, as distribution stores it).
    pub fn saved_state(&self) -> Option<Vec<u8>> {
        match self {
            Digester::Sha256(h) => Some(h.to_bytes()),
            Digester::Sha512(h) => Some(h.to_bytes()),
        }
    }

    /// A digester resumed from a stored state of `alg` with the number of bytes it has hashed; `None` when the
    /// bytes are not such a state.
    pub fn resume(alg: Algorithm, state: &[u8]) -> Option<(Digester, u64)> {
        match alg {
            Algorithm::Sha256 => {
                Sha256State::from_bytes(state).map(|s| (s.len(), Digester::Sha256(s)))
            }
            Algorithm::Sha512 => {
                Sha512State::from_bytes(state).map(|s| (s.len(), Digester::Sha512(s)))
            }
        }
        .map(|(n, d)| (d, n))
    }
}

/// The digest of `data` with `alg`.
pub fn digest_bytes(alg: Algorithm, data: &[u8]) -> Digest {
    let mut d = Digester::new(alg);
    d.update(data);
    d.digest()
}

/// Hashes the first `len` bytes of a stored object with `alg`, through the driver's ranged stream.
pub async fn hash_file(
    driver: &dyn Driver,
    path: &str,
    alg: Algorithm,
    len: u64,
) -> Result<Digester, DriverError> {
    let mut stream = driver.read_range(path, 0, len).await?;
    let mut d = Digester::new(alg);
    let mut hashed = 0u64;
    while let Some(chunk) = stream
        .next_chunk()
        .await
        .map_err(|source| DriverError::Io {
            op: "read",
            path: path.to_string(),
            source,
        })?
    {
        hashed += chunk.len() as u64;
        d.update(&chunk);
    }
    if hashed != len {
        return Err(DriverError::Io {
            op: "read",
            path: path.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{hashed} bytes, expected {len}"),
            ),
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            digest_bytes(Algorithm::Sha256, b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let d = digest_bytes(Algorithm::Sha512, b"abc");
        assert!(d.hex().starts_with("ddaf35a193617aba"));
        let mut inc = Digester::new(Algorithm::Sha256);
        inc.update(b"ab");
        let mid = inc.digest();
        inc.update(b"c");
        assert_eq!(mid, digest_bytes(Algorithm::Sha256, b"ab"));
        assert_eq!(inc.digest(), digest_bytes(Algorithm::Sha256, b"abc"));
    }

    /// Both algorithms' states are saved and resumed, and a state is only resumed as its own algorithm.
    #[test]
    fn saved_states_resume_for_both_algorithms() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut d = Digester::new(alg);
            d.update(&[5u8; 1000]);
            let saved = d.saved_state().expect("a state");
            let (mut back, n) = Digester::resume(alg, &saved).expect("resumed");
            assert_eq!(n, 1000);
            back.update(b"more");
            let mut whole = vec![5u8; 1000];
            whole.extend_from_slice(b"more");
            assert_eq!(back.digest(), digest_bytes(alg, &whole));
            let other = match alg {
                Algorithm::Sha256 => Algorithm::Sha512,
                Algorithm::Sha512 => Algorithm::Sha256,
            };
            assert!(Digester::resume(other, &saved).is_none());
        }
    }
}
