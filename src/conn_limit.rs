//! A cap on the connections one client address holds open at once (`server.max_connections_per_client`).
//!
//! [`PerClient`] is the outermost layer of the main listener: a connection over the cap is closed as soon as it is
//! accepted, before a TLS handshake or a request byte is read, so one address cannot take the process's file
//! descriptors however it paces its connections (each is also bounded in time, see `timeouts`). IPv6 clients are
//! counted per /64, the block one host usually gets; IPv4 per address. Connections from a trusted proxy
//! (`server.trusted_proxies`) are not counted: every client behind it shares its address.
//!
//! pingora calls an app once per request on a kept-alive connection. [`PerClient`] takes a connection's slot when
//! pingora hands it a new one and runs that connection's requests itself until it ends, so the slot is held for
//! the connection's whole life and given back when it closes.

use crate::net::Cidr;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The default of `server.max_connections_per_client`.
pub const DEFAULT_MAX_PER_CLIENT: u32 = 512;

/// Whom a connection is counted against: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6Net(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(u32::from(v4)),
                None => ClientKey::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// One client's open connections, and whether its refusals were logged since it last had none.
#[derive(Debug, Default)]
struct Held {
    open: u32,
    warned: bool,
}

/// The open-connection counts by client, shared by every connection of the listener.
#[derive(Debug, Default)]
struct Table(Mutex<HashMap<ClientKey, Held>>);

impl Table {
    /// Takes a slot for `key` unless it already holds `limit`; `Err(first)` when refused, `first` being whether
    /// this is its first refusal since it last held no connection.
    fn take(&self, key: ClientKey, limit: u32) -> Result<(), bool> {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let held = t.entry(key).or_default();
        if held.open >= limit {
            let first = !held.warned;
            held.warned = true;
            return Err(first);
        }
        held.open += 1;
        Ok(())
    }

    /// Gives a slot of `key` back; a client with none left is forgotten.
    fn give_back(&self, key: ClientKey) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(held) = t.get_mut(&key) {
            held.open = held.open.saturating_sub(1);
            if held.open == 0 {
                t.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn open(&self, key: ClientKey) -> u32 {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.get(&key).map_or(0, |h| h.open)
    }
}

/// A connection's slot, given back when dropped (the connection ended, however).
struct Slot<'a> {
    table: &'a Table,
    key: ClientKey,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.table.give_back(self.key);
    }
}

/// Wraps the listener's app so no client address holds more than `limit` connections at once (0: no cap).
pub struct PerClient<A> {
    inner: Arc<A>,
    limit: u32,
    trusted: Vec<Cidr>,
    table: Table,
}

impl<A> PerClient<A> {
    /// Wraps `inner`; connections from `trusted` proxies are not counted.
    pub fn new(inner: A, limit: u32, trusted: Vec<Cidr>) -> PerClient<A> {
        PerClient {
            inner: Arc::new(inner),
            limit,
            trusted,
            table: Table::default(),
        }
    }

    /// The client a new connection counts against, `None` when it is not counted.
    fn key_of(&self, stream: &Stream) -> Option<(ClientKey, IpAddr)> {
        if self.limit == 0 {
            return None;
        }
        let peer = stream.get_socket_digest()?.peer_addr()?.as_inet()?.ip();
        if self.trusted.iter().any(|c| c.contains(peer)) {
            return None;
        }
        Some((ClientKey::of(peer), peer))
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for PerClient<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _slot = match self.key_of(&stream) {
            None => None,
            Some((key, ip)) => match self.table.take(key, self.limit) {
                Ok(()) => Some(Slot {
                    table: &self.table,
                    key,
                }),
                Err(first) => {
                    crate::metrics::metrics().connections_refused.inc();
                    if first {
                        tracing::warn!(
                            client = %ip,
                            limit = self.limit,
                            "connection refused: the client already holds server.max_connections_per_client \
                             connections (GATEHOUSE_MAX_CONNECTIONS_PER_CLIENT); further refusals of it are \
                             counted in gatehouse_connections_refused_total (a reverse proxy in front belongs \
                             in server.trusted_proxies, whose connections are not counted)"
                        );
                    }
                    return None;
                }
            },
        };
        let mut next = self.inner.process_new(stream, shutdown).await;
        while let Some(kept_alive) = next {
            next = self.inner.process_new(kept_alive, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn a_client_at_its_limit_is_refused_until_a_slot_comes_back_and_others_are_not() {
        let t = Table::default();
        let (a, b) = (key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(t.take(a, 2), Ok(()));
        assert_eq!(t.take(a, 2), Ok(()));
        assert_eq!(t.take(a, 2), Err(true), "the first refusal is logged");
        assert_eq!(t.take(a, 2), Err(false), "later ones are only counted");
        assert_eq!(t.take(b, 2), Ok(()), "another address is not affected");
        t.give_back(a);
        assert_eq!(t.take(a, 2), Ok(()));
        t.give_back(a);
        t.give_back(a);
        assert_eq!(t.open(a), 0);
        assert!(
            !t.0.lock().unwrap().contains_key(&a),
            "a client with no connection left is forgotten (the table does not grow with every address seen)"
        );
        assert_eq!(t.take(a, 1), Ok(()));
        assert_eq!(t.take(a, 1), Err(true), "logged again after it held none");
    }
}
