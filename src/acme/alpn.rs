//! TLS-ALPN-01 (RFC 8737): while an authorization is pending, a validation handshake on the main listener
//! that offers the `acme-tls/1` protocol for a configured host gets a self-signed certificate for that host
//! carrying the critical acmeIdentifier extension (the SHA-256 of the key authorization) instead of the
//! certificate in force. The listener advertises `acme-tls/1` only for ACME stores
//! ([`crate::tls::accept`]) and closes such a connection right after the handshake. A handshake offering
//! `acme-tls/1` for a name with no pending challenge gets no certificate at all.

use super::{protocol, AcmeError};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The challenge certificates in force, by host name (lower case).
#[derive(Debug, Default)]
pub struct AlpnChallenges(Mutex<HashMap<String, Arc<CertifiedKey>>>);

impl AlpnChallenges {
    /// Makes and installs the challenge certificate of `host` for the key authorization digest `digest`.
    pub fn insert(&self, host: &str, digest: &[u8]) -> Result<(), AcmeError> {
        let key = challenge_certificate(host, digest)?;
        self.0
            .lock()
            .expect("challenges lock")
            .insert(host.to_ascii_lowercase(), Arc::new(key));
        Ok(())
    }

    /// Removes `host`'s challenge certificate.
    pub fn remove(&self, host: &str) {
        self.0
            .lock()
            .expect("challenges lock")
            .remove(&host.to_ascii_lowercase());
    }

    /// The challenge certificate for the SNI name `host`, while its challenge is pending.
    pub fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.0
            .lock()
            .expect("challenges lock")
            .get(&host.to_ascii_lowercase())
            .cloned()
    }
}

/// A self-signed P-256 certificate for `host` with the acmeIdentifier extension holding `digest`.
pub fn challenge_certificate(host: &str, digest: &[u8]) -> Result<CertifiedKey, AcmeError> {
    if digest.len() != 32 {
        return Err(protocol(
            "challenge",
            format!(
                "{host}: the key authorization digest has {} bytes, not 32",
                digest.len()
            ),
        ));
    }
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])
        .map_err(|e| protocol("challenge", format!("{host}: {e}")))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| protocol("challenge", e))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| protocol("challenge", format!("{host}: {e}")))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| protocol("challenge", e))?;
    Ok(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signer,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_certificate_names_the_host_and_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let key = challenge_certificate("registry.example", &digest).unwrap();
        let der = key.cert[0].as_ref();
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", san.value.general_names),
            "[DNSName(\"registry.example\")]"
        );
        // id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31: an OCTET STRING of the digest.
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
        assert_eq!(ext.value, [&[0x04, 32][..], &digest[..]].concat());
    }

    #[test]
    fn challenges_are_found_by_name_whatever_the_case_and_gone_once_removed() {
        let c = AlpnChallenges::default();
        c.insert("Registry.Example", &[1u8; 32]).unwrap();
        assert!(c.get("registry.example").is_some());
        assert!(c.get("REGISTRY.EXAMPLE").is_some());
        assert!(c.get("other.example").is_none());
        c.remove("registry.example");
        assert!(c.get("registry.example").is_none());
    }

    #[test]
    fn a_digest_that_is_not_sha256_sized_is_refused() {
        for len in [0usize, 31, 33, 64] {
            let err = challenge_certificate("a.example", &vec![0u8; len]).unwrap_err();
            assert!(err.to_string().contains("a.example"), "{err}");
        }
    }
}
