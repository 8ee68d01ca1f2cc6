//! The validated ACME settings (`[tls.acme]`; distribution's `REGISTRY_HTTP_TLS_LETSENCRYPT_*`): which hosts
//! get certificates, the state directory, the contact, the directory URL, and a CA for a test ACME server's
//! own HTTPS certificate.

use crate::settings::Invalid;
use std::path::PathBuf;

/// Let's Encrypt's production directory, distribution's default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Automatic certificates for the main listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// The host names (or IP addresses) that get a certificate: one order covers them all. No other name
    /// ever triggers an order.
    pub hosts: Vec<String>,
    /// The state directory: the account and the certificate with its key.
    pub cache: PathBuf,
    /// The contact address, when given (`mailto:` is added).
    pub email: Option<String>,
    /// The ACME directory URL.
    pub directory_url: String,
    /// A PEM CA for the ACME server's own HTTPS certificate (a test CA such as pebble's), when given.
    pub directory_ca: Option<PathBuf>,
    /// The challenge answered: HTTP-01 when the plain-HTTP listener runs, TLS-ALPN-01 on the main
    /// listener otherwise ([`AcmeConfig::challenge_for`]).
    pub challenge: Challenge,
    /// PEM files of CAs whose client certificates the main listener requires (`tls.client_cas`,
    /// `REGISTRY_HTTP_TLS_CLIENTCAS`), as with certificate files; empty means none are asked for.
    pub client_cas: Vec<PathBuf>,
}

/// How the CA's validation is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP-01 on the plain-HTTP listener (`server.http_listen`, port 80).
    Http01,
    /// TLS-ALPN-01 on the main listener (port 443), as distribution's autocert does.
    TlsAlpn01,
}

impl AcmeConfig {
    /// The challenge to answer: HTTP-01 when a plain-HTTP listener runs, TLS-ALPN-01 otherwise, and the
    /// client CAs of the main listener. Errors naming `hosts`: TLS-ALPN-01 has no form for IP addresses here
    /// (RFC 8738's reverse names are not done), and it cannot pass with client CAs (the CA's validation
    /// handshake has no client certificate), so either needs the plain-HTTP listener.
    pub fn challenge_for(
        mut self,
        plain_http: bool,
        client_cas: &[String],
    ) -> Result<AcmeConfig, Invalid> {
        self.challenge = if plain_http {
            Challenge::Http01
        } else {
            Challenge::TlsAlpn01
        };
        for ca in client_cas {
            let ca = ca.trim();
            if ca.is_empty() {
                return Err(Invalid::new(
                    "hosts",
                    "tls.client_cas (REGISTRY_HTTP_TLS_CLIENTCAS): an entry is empty",
                ));
            }
            self.client_cas.push(PathBuf::from(ca));
        }
        if !self.client_cas.is_empty() && self.challenge == Challenge::TlsAlpn01 {
            return Err(Invalid::new(
                "hosts",
                "client CAs (tls.client_cas, REGISTRY_HTTP_TLS_CLIENTCAS) with ACME \
                 (tls.acme, REGISTRY_HTTP_TLS_LETSENCRYPT_*) need HTTP-01: the CA's TLS-ALPN-01 validation \
                 has no client certificate; set server.http_listen (GATEHOUSE_HTTP_ADDR=:80)",
            ));
        }
        if let Some(ip) = self
            .hosts
            .iter()
            .find(|h| h.parse::<std::net::IpAddr>().is_ok())
        {
            if self.challenge == Challenge::TlsAlpn01 {
                return Err(Invalid::new(
                    "hosts",
                    format!(
                        "`{ip}`: an IP address is validated by HTTP-01 only: set server.http_listen \
                         (GATEHOUSE_HTTP_ADDR=:80)"
                    ),
                ));
            }
        }
        Ok(self)
    }
}

/// Whether `host` is a name (or IP literal) an HTTP-01 order can be placed for.
fn host_problem(host: &str) -> Option<String> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    if host.starts_with("*.") {
        return Some(format!(
            "`{host}`: wildcards need DNS-01, which gatehouse does not do"
        ));
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    (!ok).then(|| format!("`{host}` is not a host name"))
}

impl AcmeConfig {
    /// Builds the settings; `None` when nothing ACME is set. Settings without hosts, hosts without a
    /// state directory, a bad host or a non-https directory URL are errors naming the field.
    pub fn from_parts(
        hosts: &[String],
        cache: &str,
        email: &str,
        directory_url: &str,
        directory_ca: &str,
    ) -> Result<Option<AcmeConfig>, Invalid> {
        let (cache, email, directory_url, directory_ca) = (
            cache.trim(),
            email.trim(),
            directory_url.trim(),
            directory_ca.trim(),
        );
        if hosts.is_empty() {
            if [cache, email, directory_url, directory_ca]
                .iter()
                .any(|v| !v.is_empty())
            {
                return Err(Invalid::new(
                    "hosts",
                    "ACME settings are given but no hosts: name the hosts that get certificates",
                ));
            }
            return Ok(None);
        }
        let mut names = Vec::new();
        for h in hosts {
            let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
            if let Some(p) = host_problem(&h) {
                return Err(Invalid::new("hosts", p));
            }
            if !names.contains(&h) {
                names.push(h);
            }
        }
        if cache.is_empty() {
            return Err(Invalid::new(
                "cache",
                "is empty: name a directory for the ACME account and certificates (a restart must not order anew)",
            ));
        }
        let directory_url = if directory_url.is_empty() {
            LETS_ENCRYPT
        } else {
            directory_url
        };
        match url::Url::parse(directory_url) {
            Ok(u) if u.scheme() == "https" => {}
            _ => {
                return Err(Invalid::new(
                    "directory_url",
                    format!("`{directory_url}` is not an https:// URL"),
                ))
            }
        }
        if email.contains(char::is_whitespace) || (!email.is_empty() && !email.contains('@')) {
            return Err(Invalid::new(
                "email",
                format!("`{email}` is not an e-mail address"),
            ));
        }
        Ok(Some(AcmeConfig {
            hosts: names,
            cache: PathBuf::from(cache),
            email: (!email.is_empty()).then(|| email.to_string()),
            directory_url: directory_url.to_string(),
            directory_ca: (!directory_ca.is_empty()).then(|| PathBuf::from(directory_ca)),
            challenge: Challenge::Http01,
            client_cas: Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_table() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (hosts, cache, email, directory, Ok(on) or Err(field))
        type Case = (
            Vec<String>,
            &'static str,
            &'static str,
            &'static str,
            Result<bool, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (h(&[]), "", "", "", Ok(false)),
            (h(&["reg.example"]), "/var/lib/acme", "", "", Ok(true)),
            (
                h(&["Reg.Example.", "reg.example"]),
                "/c",
                "a@b.example",
                "https://acme.test/dir",
                Ok(true),
            ),
            (h(&["127.0.0.1"]), "/c", "", "", Ok(true)),
            (h(&[]), "/c", "", "", Err("hosts")),
            (h(&[]), "", "a@b", "", Err("hosts")),
            (h(&["reg.example"]), "", "", "", Err("cache")),
            (h(&["*.reg.example"]), "/c", "", "", Err("hosts")),
            (h(&["reg..example"]), "/c", "", "", Err("hosts")),
            (h(&["reg.example/x"]), "/c", "", "", Err("hosts")),
            (h(&["-reg.example"]), "/c", "", "", Err("hosts")),
            (h(&[""]), "/c", "", "", Err("hosts")),
            (
                h(&["reg.example"]),
                "/c",
                "",
                "http://acme.test/dir",
                Err("directory_url"),
            ),
            (h(&["reg.example"]), "/c", "not mail", "", Err("email")),
        ];
        for (hosts, cache, email, dir, want) in cases {
            match (AcmeConfig::from_parts(&hosts, cache, email, dir, ""), want) {
                (Ok(c), Ok(on)) => assert_eq!(c.is_some(), on, "{hosts:?}"),
                (Err(e), Err(field)) => assert_eq!(e.field, field, "{hosts:?}: {e}"),
                (got, want) => panic!("{hosts:?} {cache:?}: got {got:?}, want {want:?}"),
            }
        }
        let c = AcmeConfig::from_parts(&h(&["Reg.Example.", "reg.example"]), "/c", "", "", "")
            .unwrap()
            .unwrap();
        assert_eq!(c.hosts, ["reg.example"]);
        assert_eq!(c.directory_url, LETS_ENCRYPT);
    }

    #[test]
    fn the_challenge_is_http01_with_a_plain_listener_and_tls_alpn01_without() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let config = |hosts: &[&str]| {
            AcmeConfig::from_parts(&h(hosts), "/c", "", "", "")
                .unwrap()
                .unwrap()
        };
        // (hosts, plain-HTTP listener, Ok(challenge) or Err(field))
        let cases: &[(&[&str], bool, Result<Challenge, &str>)] = &[
            (&["reg.example"], true, Ok(Challenge::Http01)),
            (&["reg.example"], false, Ok(Challenge::TlsAlpn01)),
            (&["127.0.0.1"], true, Ok(Challenge::Http01)),
            (&["reg.example", "::1"], false, Err("hosts")),
        ];
        for (hosts, plain, want) in cases {
            match (config(hosts).challenge_for(*plain, &[]), want) {
                (Ok(c), Ok(w)) => assert_eq!(c.challenge, *w, "{hosts:?}"),
                (Err(e), Err(field)) => assert_eq!(e.field, *field, "{hosts:?}: {e}"),
                (got, want) => panic!("{hosts:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn client_cas_with_acme_need_the_plain_http_listener_and_no_empty_entry() {
        let hosts = vec!["reg.example".to_string()];
        let config = || {
            AcmeConfig::from_parts(&hosts, "/c", "", "", "")
                .unwrap()
                .unwrap()
        };
        let ca = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = config().challenge_for(true, &ca(&["/ca.pem"])).unwrap();
        assert_eq!(ok.client_cas, [PathBuf::from("/ca.pem")]);
        // (plain-HTTP listener, client CAs): each is refused with a message naming both settings.
        let cases: &[(bool, &[&str])] = &[(false, &["/ca.pem"]), (true, &["/ca.pem", " "])];
        for (plain, cas) in cases {
            let err = config().challenge_for(*plain, &ca(cas)).unwrap_err();
            assert_eq!(err.field, "hosts");
            assert!(err.problem.contains("REGISTRY_HTTP_TLS_CLIENTCAS"), "{err}");
        }
        let err = config()
            .challenge_for(false, &ca(&["/ca.pem"]))
            .unwrap_err();
        assert!(
            err.problem.contains("REGISTRY_HTTP_TLS_LETSENCRYPT")
                && err.problem.contains("http_listen"),
            "{err}"
        );
    }
}
