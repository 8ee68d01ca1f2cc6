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

/// The plain-HTTP listener (`server.http_listen`): ACME HTTP-01 answers and redirects to https.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainHttpConfig {
    /// Its address.
    pub listen: std::net::SocketAddr,
    /// Where its redirects point.
    pub target: super::plain::Target,
    /// Where an outside ACME client (certbot `--webroot`) writes its HTTP-01 files, when set.
    pub webroot: Option<PathBuf>,
}

/// The `host[:port]` of a public https URL (`server.public_url`) for redirects, port omitted when 443;
/// an error for another scheme, user info, a path, a query or a fragment.
pub fn public_authority(url: &str) -> Result<String, Invalid> {
    let bad = |p: &str| Invalid::new("public_url", format!("`{url}`: {p}"));
    let u = url::Url::parse(url.trim()).map_err(|e| bad(&e.to_string()))?;
    if u.scheme() != "https" {
        return Err(bad("must be an https:// URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad("must not carry user info"));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(bad("must be a scheme, host and optional port only"));
    }
    let host = u.host_str().ok_or_else(|| bad("has no host"))?;
    Ok(match u.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_authority_table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("https://reg.example", Ok("reg.example")),
            ("https://reg.example/", Ok("reg.example")),
            ("https://reg.example:443", Ok("reg.example")),
            ("https://reg.example:8443", Ok("reg.example:8443")),
            ("https://[::1]:8443", Ok("[::1]:8443")),
            ("http://reg.example", Err("https")),
            ("https://u:p@reg.example", Err("user info")),
            ("https://reg.example/v2", Err("host and optional port")),
            ("https://reg.example/?a=1", Err("host and optional port")),
            ("reg.example", Err("relative URL")),
            ("", Err("relative URL")),
        ];
        for (url, want) in cases {
            match (public_authority(url), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{url}"),
                (Err(e), Err(w)) => assert!(e.problem.contains(w), "{url}: {e}"),
                (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
    }

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
