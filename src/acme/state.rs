//! The ACME state directory: `account.json` (the account's credentials, as instant-acme serializes them),
//! `certificate.pem` (the chain) and `certificate.key` (its key). Files are written to a temp file and renamed,
//! private ones with mode 0600, so a crash never leaves half a file; a restart serves the cached certificate
//! at once and orders nothing while it covers the hosts and is not due.

use super::AcmeError;
use crate::tls::pem::{pair_from_pem, Pair};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// Opens (creating) the directory; an existing file there is an error.
    pub fn open(path: &Path) -> Result<StateDir, AcmeError> {
        if path.is_file() {
            return Err(AcmeError::Corrupt {
                path: path.to_path_buf(),
                problem: "is a file; gatehouse keeps its ACME state in a directory (distribution's cache file is not read)".into(),
            });
        }
        std::fs::create_dir_all(path).map_err(|source| AcmeError::State {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(StateDir(path.to_path_buf()))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `name` atomically (temp file, fsync, rename) with `mode`.
    fn write(&self, name: &str, data: &[u8], mode: u32) -> Result<(), AcmeError> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let err = |source| AcmeError::State {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(data).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    /// The stored account credentials (JSON), when there are any.
    pub fn account(&self) -> Result<Option<instant_acme::AccountCredentials>, AcmeError> {
        let path = self.file("account.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| AcmeError::Corrupt {
                    path,
                    problem: format!("not an ACME account: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AcmeError::State { path, source }),
        }
    }

    /// Stores the account credentials (mode 0600: they hold the account key).
    pub fn save_account(&self, creds: &instant_acme::AccountCredentials) -> Result<(), AcmeError> {
        let json = serde_json::to_vec_pretty(creds).map_err(|e| AcmeError::Corrupt {
            path: self.file("account.json"),
            problem: e.to_string(),
        })?;
        self.write("account.json", &json, 0o600)
    }

    /// The stored certificate and key, when both are there and load as a matching pair; a pair that does
    /// not load is logged and treated as absent (a new order replaces it).
    pub fn certificate(&self) -> Option<Pair> {
        let (cert, key) = (self.file("certificate.pem"), self.file("certificate.key"));
        let (c, k) = (std::fs::read(&cert).ok()?, std::fs::read(&key).ok()?);
        match pair_from_pem(&cert, &c, &key, &k) {
            Ok(pair) => Some(pair),
            Err(e) => {
                tracing::warn!(error = %e, "acme: the cached certificate does not load; ordering a new one");
                None
            }
        }
    }

    /// Stores a newly issued chain and key (the key first, both renamed into place) and returns the pair.
    pub fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<Pair, AcmeError> {
        let (cert, key) = (self.file("certificate.pem"), self.file("certificate.key"));
        let pair =
            pair_from_pem(&cert, chain_pem.as_bytes(), &key, key_pem.as_bytes()).map_err(|e| {
                AcmeError::Corrupt {
                    path: cert.clone(),
                    problem: format!("the CA's certificate does not load: {e}"),
                }
            })?;
        self.write("certificate.key", key_pem.as_bytes(), 0o600)?;
        self.write("certificate.pem", chain_pem.as_bytes(), 0o644)?;
        Ok(pair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testcerts::{self, KeyKind};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_certificate_is_read_back_and_its_key_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("acme")).unwrap();
        assert!(state.certificate().is_none());
        assert!(state.account().unwrap().is_none());
        let (cert, key) = testcerts::self_signed(dir.path(), "a", KeyKind::EcPkcs8);
        let (c, k) = (
            std::fs::read_to_string(cert).unwrap(),
            std::fs::read_to_string(key).unwrap(),
        );
        let saved = state.save_certificate(&c, &k).unwrap();
        assert_eq!(state.certificate().unwrap().serial, saved.serial);
        let mode = std::fs::metadata(state.path().join("certificate.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn hostile_state_is_refused_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cachefile");
        std::fs::write(&file, "distribution's format").unwrap();
        assert!(StateDir::open(&file)
            .unwrap_err()
            .to_string()
            .contains("is a file"));
        let state = StateDir::open(&dir.path().join("acme")).unwrap();
        std::fs::write(state.path().join("account.json"), "{not json").unwrap();
        match state.account() {
            Err(e) => assert!(e.to_string().contains("account.json"), "{e}"),
            Ok(_) => panic!("garbage account.json was accepted"),
        }
        std::fs::write(state.path().join("certificate.pem"), "garbage").unwrap();
        std::fs::write(state.path().join("certificate.key"), "garbage").unwrap();
        assert!(state.certificate().is_none());
        assert!(state.save_certificate("garbage", "garbage").is_err());
    }
}
