//! Incremental hashing for the digest algorithms the registry accepts (sha256, sha512).

use super::driver::{Driver, DriverError, ReadHandle};
use crate::names::{Algorithm, Digest};
use sha2::{Digest as _, Sha256, Sha512};
use tokio::io::AsyncReadExt;

/// An in-progress hash of one algorithm.
#[derive(Clone)]
pub enum Digester {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl Digester {
    /// A fresh hasher for `alg`.
    pub fn new(alg: Algorithm) -> Digester {
        match alg {
            Algorithm::Sha256 => Digester::Sha256(Sha256::new()),
            Algorithm::Sha512 => Digester::Sha512(Sha512::new()),
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
            Digester::Sha256(h) => Digest::from_hash(Algorithm::Sha256, &h.clone().finalize()),
            Digester::Sha512(h) => Digest::from_hash(Algorithm::Sha512, &h.clone().finalize()),
        }
    }
}

/// The digest of `data` with `alg`.
pub fn digest_bytes(alg: Algorithm, data: &[u8]) -> Digest {
    let mut d = Digester::new(alg);
    d.update(data);
    d.digest()
}

/// Hashes the first `len` bytes of a stored file with `alg`, streaming it in 1 MiB reads.
pub async fn hash_file(
    driver: &dyn Driver,
    path: &str,
    alg: Algorithm,
    len: u64,
) -> Result<Digester, DriverError> {
    let ReadHandle::File { file, .. } = driver.open(path).await?;
    let mut reader = file.take(len);
    let mut d = Digester::new(alg);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|source| DriverError::Io {
                op: "read",
                path: path.to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        d.update(&buf[..n]);
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
}
