//! The certificate store: the pair in force behind an `ArcSwap`, read by rustls at every handshake
//! ([`ResolvesServerCert`]) and swapped by [`CertStore::reload`] (files) or [`CertStore::install`] (ACME).
//! A reload that fails keeps the last good pair and marks the store stale until a good pair loads. An ACME
//! store may start empty: handshakes fail (no certificate) until the first one is issued. An ACME store also
//! answers TLS-ALPN-01 validations (an `acme-tls/1` ClientHello) from its [`AlpnChallenges`].

use super::accept::ACME_TLS_ALPN;
use super::pem::{load_pair, Pair};
use super::{TlsConfig, TlsError};
use crate::acme::alpn::AlpnChallenges;
use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The result of one reload, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The new pair is in force.
    Swapped {
        /// The new leaf's serial (hex).
        serial: String,
    },
    /// The last good pair stays in force.
    Kept {
        /// Why the new files were refused.
        reason: String,
    },
}

/// The certificate and key files of the main listener, and the pair loaded from them.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwapOption<Pair>,
    stale: Mutex<Option<String>>,
    /// TLS-ALPN-01 challenge certificates (ACME stores only).
    challenges: Option<AlpnChallenges>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field(
                "serial",
                &self.current.load().as_ref().map(|p| p.serial.clone()),
            )
            .finish()
    }
}

impl CertStore {
    /// Loads the pair the config names; an error (naming the file) when it does not load or match.
    pub fn open(config: &TlsConfig) -> Result<CertStore, TlsError> {
        let pair = load_pair(&config.certificate, &config.key)?;
        let store = CertStore {
            cert_path: config.certificate.clone(),
            key_path: config.key.clone(),
            current: ArcSwapOption::from_pointee(pair),
            stale: Mutex::new(None),
            challenges: None,
        };
        store.announce("loaded");
        crate::metrics::metrics().tls_stale.set(0);
        Ok(store)
    }

    /// A store for ACME certificates kept in `dir`, with the cached pair when there is one.
    pub fn for_acme(dir: &Path, cached: Option<Pair>) -> CertStore {
        let store = CertStore {
            cert_path: dir.join("certificate.pem"),
            key_path: dir.join("certificate.key"),
            current: ArcSwapOption::new(cached.map(Arc::new)),
            stale: Mutex::new(None),
            challenges: Some(AlpnChallenges::default()),
        };
        if store.current.load().is_some() {
            store.announce("loaded from the ACME cache");
        }
        store
    }

    /// Puts a newly issued pair in force.
    pub fn install(&self, pair: Pair) {
        self.current.store(Some(Arc::new(pair)));
        *self.stale.lock().expect("stale lock") = None;
        crate::metrics::metrics().tls_stale.set(0);
        self.announce("issued");
    }

    /// The TLS-ALPN-01 challenge certificates, for an ACME store; `None` for files.
    pub fn challenges(&self) -> Option<&AlpnChallenges> {
        self.challenges.as_ref()
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// The pair in force, when there is one (an ACME store before its first issuance has none).
    pub fn current(&self) -> Option<Arc<Pair>> {
        self.current.load_full()
    }

    /// Reads the files again: a good pair is swapped in; otherwise the last good pair stays and the store
    /// is stale until a good pair loads. Logs and counts the result.
    pub fn reload(&self) -> Reload {
        let m = crate::metrics::metrics();
        match load_pair(&self.cert_path, &self.key_path) {
            Ok(pair) => {
                let serial = pair.serial.clone();
                self.current.store(Some(Arc::new(pair)));
                *self.stale.lock().expect("stale lock") = None;
                m.tls_stale.set(0);
                m.tls_reloads.with_label_values(&["ok"]).inc();
                self.announce("reloaded");
                Reload::Swapped { serial }
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(
                    error = %reason,
                    serial = %self.serial(),
                    "tls: the certificate files do not load; the last good certificate stays in force"
                );
                *self.stale.lock().expect("stale lock") = Some(reason.clone());
                m.tls_stale.set(1);
                m.tls_reloads.with_label_values(&["failed"]).inc();
                Reload::Kept { reason }
            }
        }
    }

    /// `Err` says why the files on disk are not what is served (for `/readyz`).
    pub fn health(&self) -> Result<(), String> {
        if self.current.load().is_none() {
            return Err(
                "tls: no certificate yet (the first ACME order has not succeeded)".to_string(),
            );
        }
        match &*self.stale.lock().expect("stale lock") {
            None => Ok(()),
            Some(reason) => Err(format!(
                "{reason} (serving the last good certificate, serial {})",
                self.serial()
            )),
        }
    }

    /// The serial of the pair in force, or `none`.
    fn serial(&self) -> String {
        self.current
            .load()
            .as_ref()
            .map_or_else(|| "none".to_string(), |p| p.serial.clone())
    }

    fn announce(&self, what: &str) {
        let Some(pair) = self.current.load_full() else {
            return;
        };
        crate::metrics::metrics()
            .tls_cert_expiry
            .set(pair.not_after);
        tracing::info!(
            cert = %self.cert_path.display(),
            subject = %pair.subject,
            serial = %pair.serial,
            not_after = pair.not_after,
            "tls: certificate {what}"
        );
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A TLS-ALPN-01 validation offers `acme-tls/1` alone (RFC 8737 §3): the challenge certificate of
        // the name, or none at all. A client that also offers h2 or HTTP/1.1 gets the certificate in force.
        let acme_alpn = hello.alpn().is_some_and(|offered| {
            let offered: Vec<&[u8]> = offered.collect();
            offered == [ACME_TLS_ALPN]
        });
        if acme_alpn {
            let challenges = self.challenges.as_ref()?;
            return challenges.get(hello.server_name()?);
        }
        self.current.load().as_ref().map(|p| p.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testcerts::{self, KeyKind};

    fn config(cert: &Path, key: &Path) -> TlsConfig {
        TlsConfig {
            certificate: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_cas: Vec::new(),
        }
    }

    #[test]
    fn a_mismatched_pair_keeps_the_last_good_one_until_a_good_pair_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = testcerts::self_signed(dir.path(), "a", KeyKind::EcPkcs8);
        let store = CertStore::open(&config(&cert, &key)).unwrap();
        let first = store.current().unwrap().serial.clone();
        assert_eq!(store.health(), Ok(()));

        // The certificate is renewed first, the key later: the pair does not match in between.
        let other = tempfile::tempdir().unwrap();
        let (cert_b, key_b) = testcerts::self_signed(other.path(), "a", KeyKind::EcPkcs8);
        std::fs::copy(&cert_b, &cert).unwrap();
        match store.reload() {
            Reload::Kept { reason } => assert!(reason.contains("does not belong"), "{reason}"),
            other => panic!("want the old pair kept, got {other:?}"),
        }
        assert_eq!(store.current().unwrap().serial, first);
        let why = store.health().unwrap_err();
        assert!(why.contains(&first), "{why}");

        std::fs::copy(&key_b, &key).unwrap();
        let swapped = store.reload();
        let serial = store.current().unwrap().serial.clone();
        assert_ne!(serial, first);
        assert_eq!(swapped, Reload::Swapped { serial });
        assert_eq!(store.health(), Ok(()));
    }

    #[test]
    fn missing_files_keep_the_pair_and_fail_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = testcerts::self_signed(dir.path(), "a", KeyKind::RsaPkcs1);
        let store = CertStore::open(&config(&cert, &key)).unwrap();
        std::fs::remove_file(&key).unwrap();
        assert!(matches!(store.reload(), Reload::Kept { .. }));
        assert!(store.health().unwrap_err().contains("a.key"));
        let err = CertStore::open(&config(&cert, &key)).unwrap_err();
        assert!(err.to_string().contains("a.key"), "{err}");
    }
}

#[cfg(test)]
mod acme_tests {
    use super::*;
    use crate::tls::pem::load_pair;
    use crate::tls::testcerts::{self, KeyKind};

    #[test]
    fn an_empty_acme_store_is_not_ready_until_a_pair_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CertStore::for_acme(dir.path(), None);
        assert!(store.current().is_none());
        assert!(store.health().unwrap_err().contains("no certificate yet"));
        let (cert, key) = testcerts::self_signed(dir.path(), "a", KeyKind::EcSec1);
        store.install(load_pair(&cert, &key).unwrap());
        assert_eq!(store.health(), Ok(()));
        assert!(store.current().is_some());
    }
}
