//! Reading PEM files into what rustls serves: a certificate chain and its private key checked to belong
//! together ([`load_pair`]), and the client CAs of mutual TLS ([`load_roots`]). Keys may be PKCS#8, PKCS#1
//! (RSA) or SEC1 (EC); certificates RSA or ECDSA. Every error names the file.

use super::TlsError;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// A certificate chain and key that belong together, with what the logs and metrics say about the leaf.
#[derive(Clone, Debug)]
pub struct Pair {
    /// What rustls serves.
    pub key: Arc<CertifiedKey>,
    /// The leaf's `notAfter`, Unix seconds.
    pub not_after: i64,
    /// The leaf's `notBefore`, Unix seconds.
    pub not_before: i64,
    /// The leaf's serial number, lower-case hex.
    pub serial: String,
    /// The leaf's subject, as text.
    pub subject: String,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn bad(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Every certificate in a PEM file, in order; an error when there is none or one does not decode.
pub fn certificates(path: &Path, text: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("a certificate does not decode: {e}")))?;
    if certs.is_empty() {
        return Err(bad(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn private_key(path: &Path, text: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(text).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => bad(
            path,
            "no private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY; encrypted keys are not supported)",
        ),
        e => bad(path, format!("the key does not decode: {e}")),
    })
}

/// Builds a [`Pair`] from PEM text; `cert_path` and `key_path` only name the files in errors.
pub fn pair_from_pem(
    cert_path: &Path,
    cert_text: &[u8],
    key_path: &Path,
    key_text: &[u8],
) -> Result<Pair, TlsError> {
    let chain = certificates(cert_path, cert_text)?;
    let key = private_key(key_path, key_text)?;
    let signer = any_supported_type(&key).map_err(|e| {
        bad(
            key_path,
            format!("not a usable RSA, ECDSA or Ed25519 key: {e}"),
        )
    })?;
    let (not_before, not_after, serial, subject) = describe(cert_path, &chain[0])?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        problem: e.to_string(),
    })?;
    Ok(Pair {
        key: Arc::new(certified),
        not_after,
        not_before,
        serial,
        subject,
    })
}

/// Reads and checks the pair of files.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<Pair, TlsError> {
    let cert_text = read(cert_path)?;
    let key_text = read(key_path)?;
    pair_from_pem(cert_path, &cert_text, key_path, &key_text)
}

/// The leaf's validity, serial and subject.
fn describe(
    path: &Path,
    leaf: &CertificateDer<'_>,
) -> Result<(i64, i64, String, String), TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| bad(path, format!("the first certificate does not parse: {e}")))?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
        hex::encode(cert.raw_serial()),
        cert.subject().to_string(),
    ))
}

/// The CA certificates of every file, for verifying client certificates.
pub fn load_roots(paths: &[std::path::PathBuf]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for path in paths {
        for cert in certificates(path, &read(path)?)? {
            roots
                .add(cert)
                .map_err(|e| bad(path, format!("not a usable CA certificate: {e}")))?;
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::testcerts::{self, KeyKind};

    #[test]
    fn every_key_format_loads_with_its_certificate() {
        for kind in KeyKind::ALL {
            let dir = tempfile::tempdir().unwrap();
            let (cert, key) = testcerts::self_signed(dir.path(), "a", *kind);
            let pair = load_pair(&cert, &key).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert!(pair.not_after > pair.not_before, "{kind:?}");
            assert!(!pair.serial.is_empty());
            assert!(
                pair.subject.contains("a.test"),
                "{kind:?}: {}",
                pair.subject
            );
        }
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, _) = testcerts::self_signed(dir.path(), "a", KeyKind::EcSec1);
        let (_, key_b) = testcerts::self_signed(dir.path(), "b", KeyKind::EcSec1);
        match load_pair(&cert_a, &key_b) {
            Err(TlsError::Mismatch { .. }) => {}
            other => panic!("want a mismatch, got {other:?}"),
        }
    }

    #[test]
    fn hostile_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = testcerts::self_signed(dir.path(), "a", KeyKind::RsaPkcs8);
        let cert_text = std::fs::read(&cert).unwrap();
        let key_text = std::fs::read(&key).unwrap();
        let half = &cert_text[..cert_text.len() / 2];
        let garbage_b64 =
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec();
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_vec();
        let not_der = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
        let cases: &[(&str, &[u8], &[u8], &str)] = &[
            ("empty cert", b"", &key_text, "cert.pem"),
            ("half a cert", half, &key_text, "cert.pem"),
            ("bad base64", &garbage_b64, &key_text, "cert.pem"),
            ("not DER", &not_der, &key_text, "cert.pem"),
            ("key in the cert file", &key_text, &key_text, "cert.pem"),
            ("empty key", &cert_text, b"", "key.pem"),
            ("cert in the key file", &cert_text, &cert_text, "key.pem"),
            ("encrypted key", &cert_text, &encrypted, "key.pem"),
        ];
        for (what, c, k, names) in cases {
            let err = pair_from_pem(Path::new("/x/cert.pem"), c, Path::new("/x/key.pem"), k)
                .expect_err(what);
            assert!(err.to_string().contains(names), "{what}: {err}");
        }
    }

    #[test]
    fn roots_load_and_an_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = testcerts::self_signed(dir.path(), "ca", KeyKind::EcPkcs8);
        assert_eq!(load_roots(std::slice::from_ref(&cert)).unwrap().len(), 1);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert!(load_roots(&[empty])
            .unwrap_err()
            .to_string()
            .contains("empty.pem"));
    }
}
