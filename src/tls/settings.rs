//! The validated TLS settings of the main listener (`[tls]` in the config): the certificate and key files,
//! and the optional client CAs that turn on mutual TLS.

use crate::settings::Invalid;
use std::path::PathBuf;

/// TLS from files on the main listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The PEM certificate chain, leaf first (`tls.certificate`, `REGISTRY_HTTP_TLS_CERTIFICATE`).
    pub certificate: PathBuf,
    /// The PEM private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`tls.key`, `REGISTRY_HTTP_TLS_KEY`).
    pub key: PathBuf,
    /// PEM files of CAs whose client certificates are required and accepted (`tls.client_cas`,
    /// `REGISTRY_HTTP_TLS_CLIENTCAS`); empty means no client certificates are asked for.
    pub client_cas: Vec<PathBuf>,
}

impl TlsConfig {
    /// Builds the settings from the file's strings; `None` when neither file is named (TLS off). A certificate
    /// without a key (or the other way round), or client CAs without TLS, is an error naming the field.
    pub fn from_parts(
        certificate: &str,
        key: &str,
        client_cas: &[String],
    ) -> Result<Option<TlsConfig>, Invalid> {
        let (certificate, key) = (certificate.trim(), key.trim());
        match (certificate.is_empty(), key.is_empty()) {
            (true, true) if client_cas.is_empty() => return Ok(None),
            (true, true) => {
                return Err(Invalid::new(
                    "client_cas",
                    "client CAs need TLS: set certificate and key too",
                ))
            }
            (false, true) => return Err(Invalid::new("key", "certificate is set but key is not")),
            (true, false) => {
                return Err(Invalid::new(
                    "certificate",
                    "key is set but certificate is not",
                ))
            }
            (false, false) => {}
        }
        let mut cas = Vec::new();
        for ca in client_cas {
            let ca = ca.trim();
            if ca.is_empty() {
                return Err(Invalid::new("client_cas", "an entry is empty"));
            }
            cas.push(PathBuf::from(ca));
        }
        Ok(Some(TlsConfig {
            certificate: PathBuf::from(certificate),
            key: PathBuf::from(key),
            client_cas: cas,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // (certificate, key, client CAs, Ok(TLS on) or Err(the field named))
        type Case = (
            &'static str,
            &'static str,
            Vec<String>,
            Result<bool, &'static str>,
        );
        let cases: &[Case] = &[
            ("", "", vec![], Ok(false)),
            ("  ", " ", vec![], Ok(false)),
            ("/c.pem", "/k.pem", vec![], Ok(true)),
            ("/c.pem", "/k.pem", s(&["/ca.pem"]), Ok(true)),
            ("/c.pem", "", vec![], Err("key")),
            ("", "/k.pem", vec![], Err("certificate")),
            ("", "", s(&["/ca.pem"]), Err("client_cas")),
            ("/c.pem", "/k.pem", s(&["/ca.pem", " "]), Err("client_cas")),
        ];
        for (cert, key, cas, want) in cases {
            let got = TlsConfig::from_parts(cert, key, cas);
            match (got, want) {
                (Ok(c), Ok(on)) => assert_eq!(c.is_some(), *on, "{cert:?} {key:?}"),
                (Err(e), Err(field)) => assert_eq!(e.field, *field, "{cert:?} {key:?}"),
                (got, want) => panic!("{cert:?} {key:?} {cas:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
