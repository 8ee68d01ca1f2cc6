//! Listen addresses as registry:2 takes them: `IP:port`, `[IPv6]:port`, `host:port` (a name, resolved when
//! the config is validated, at startup), or `:port` alone for all interfaces. Parsing is split from
//! resolving, so the syntax can be checked (and property-tested) without asking a resolver.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// A listen address as written: a host (an IP, a name, or none for all interfaces) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSpec {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    Ip(IpAddr),
    Name(String),
}

const FORMS: &str = "an address like 0.0.0.0:5000, :5000, localhost:5000 or [::1]:5000";

impl ListenSpec {
    /// Parses the syntax only (no name is looked up).
    pub fn parse(s: &str) -> Result<ListenSpec, String> {
        let bad = || format!("`{s}` is not {FORMS}");
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(ListenSpec {
                host: Host::Ip(addr.ip()),
                port: addr.port(),
            });
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port
            .parse()
            .ok()
            .filter(|_| port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)?;
        let host = if host.is_empty() {
            Host::Any
        } else if host.contains(':') || host.starts_with('[') {
            return Err(format!(
                "`{s}`: put an IPv6 address in brackets, as [::1]:5000"
            ));
        } else if is_host_name(host) {
            Host::Name(host.to_ascii_lowercase())
        } else {
            return Err(bad());
        };
        Ok(ListenSpec { host, port })
    }

    /// The address to bind: a name resolves to its first IPv4 address (else its first address), as
    /// registry:2 (Go's `net.Listen`) does; no host means all IPv4 interfaces.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        match &self.host {
            Host::Any => Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), self.port)),
            Host::Ip(ip) => Ok(SocketAddr::new(*ip, self.port)),
            Host::Name(name) => {
                let addrs: Vec<SocketAddr> = (name.as_str(), self.port)
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve `{name}`: {e}"))?
                    .collect();
                addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .copied()
                    .ok_or_else(|| format!("`{name}` resolves to no address"))
            }
        }
    }
}

/// Parses and resolves a listen address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    ListenSpec::parse(s)?.resolve()
}

/// A DNS name: dot-separated labels of letters, digits and `-` (not at either end), 1 to 63 bytes each.
fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn distribution_style_listen() {
        assert_eq!(parse_listen(":5000").unwrap().to_string(), "0.0.0.0:5000");
        assert!(parse_listen("5000").is_err());
    }

    #[test]
    fn host_names_are_accepted_and_resolved() {
        let a = parse_listen("localhost:5000").unwrap();
        assert!(a.ip().is_loopback(), "{a}");
        assert_eq!(a.port(), 5000);
        assert!(a.is_ipv4(), "registry:2 prefers IPv4: {a}");
        assert_eq!(
            ListenSpec::parse("LocalHost:1").unwrap(),
            ListenSpec::parse("localhost:1").unwrap()
        );
    }

    #[test]
    fn listen_forms() {
        for (s, ok) in [
            ("0.0.0.0:5000", true),
            ("127.0.0.1:0", true),
            ("[::1]:5000", true),
            ("[::]:80", true),
            ("registry.example.com:443", true),
            ("svc-1:5000", true),
            (":5000", true),
            ("::1:5000", false),
            ("[::1]", false),
            ("localhost", false),
            ("localhost:", false),
            ("localhost:65536", false),
            ("localhost:+80", false),
            ("-bad:5000", false),
            ("a..b:5000", false),
            ("under_score:5000", false),
            ("sp ace:5000", false),
            ("", false),
            (":", false),
        ] {
            assert_eq!(ListenSpec::parse(s).is_ok(), ok, "{s:?}");
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_not_a_panic() {
        let e = parse_listen("no-such-host.invalid:5000").unwrap_err();
        assert!(e.contains("no-such-host.invalid"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn listen_parser_never_panics(s in "\\PC{0,40}") {
            let _ = ListenSpec::parse(&s);
        }

        #[test]
        fn socket_addresses_round_trip(ip: IpAddr, port: u16) {
            let addr = SocketAddr::new(ip, port);
            let spec = ListenSpec::parse(&addr.to_string()).unwrap();
            prop_assert_eq!(spec.resolve(), Ok(addr));
        }

        #[test]
        fn any_port_alone_means_all_interfaces(port: u16) {
            let addr = parse_listen(&format!(":{port}")).unwrap();
            prop_assert!(addr.ip().is_unspecified());
            prop_assert_eq!(addr.port(), port);
        }
    }
}
