//! gatehouse's own TLS accept on the main listener. pingora's `TlsSettings::build` makes a rustls
//! `ServerConfig` whose session cache, ticketer and ALPN list cannot be set, so the main listener is a plain
//! pingora TCP listener (keeping its socket options and the upgrade handover) and [`TlsApp`] runs the
//! handshake on each new connection with the [`ServerConfig`] that [`server_config`] builds, then hands the
//! decrypted stream (pingora's own `TlsStream`, so ALPN, the SSL digest and client certificates look the
//! same to the HTTP app) to the app it wraps.
//!
//! Session resumption, both kinds on:
//! - **Session IDs (TLS 1.2) and stateful fallback**: an in-memory cache of [`SESSION_CACHE_ENTRIES`]
//!   sessions (a few hundred bytes each).
//! - **Tickets (TLS 1.2 and 1.3)**: rustls's ring ticketer. The trade-off: whoever reads the process's
//!   memory gets the ticket keys and, with them, the secrets of every session whose ticket is still valid.
//!   For TLS 1.2 that is the traffic of the original and the resumed connections (no fresh key exchange on
//!   resumption); TLS 1.3 resumption always adds a fresh ECDHE (rustls offers only `psk_dhe_ke`), so
//!   recorded TLS 1.3 traffic stays secret. The keys are random per process, never written to disk or
//!   shared (a restart or an upgrade means full handshakes once), and rotate every 6 hours; a ticket is
//!   accepted under the previous key too, so it lives at most 12 hours. 0-RTT stays off.

use super::{pem, CertStore, TlsError};
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, Stream, ALPN};
use pingora::server::ShutdownWatch;
use rustls::server::{ResolvesServerCert, ServerConfig, ServerSessionMemoryCache};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Sessions the TLS 1.2 session-ID cache holds (rustls's default is 256, too few for a busy registry).
pub const SESSION_CACHE_ENTRIES: usize = 8192;

/// How long a client may take to finish its handshake (pingora's own listener allows the same).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The rustls settings of the main listener: TLS 1.2 and 1.3, certificates from `resolver`, h2 and
/// HTTP/1.1 by ALPN (plus `acme-tls/1` when `acme_alpn`), client certificates required when `client_cas`
/// names CA files, and session resumption by ID cache and tickets (see the module docs for the trade-off).
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    client_cas: &[PathBuf],
    acme_alpn: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let roots = pem::load_roots(client_cas)?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCas(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme_alpn {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The rustls settings of the main listener over `store` (see [`server_config`]); `acme-tls/1` is offered
/// when the store is an ACME one.
pub fn listener_config(
    store: Arc<CertStore>,
    client_cas: &[PathBuf],
) -> Result<Arc<ServerConfig>, TlsError> {
    let acme_alpn = store.challenges().is_some();
    server_config(store, client_cas, acme_alpn)
}

/// A pingora app that runs the TLS handshake on each new plain connection and passes the decrypted stream
/// to `inner`; without a config it passes every stream through untouched (TLS off).
pub struct TlsApp<A> {
    inner: Arc<A>,
    acceptor: Option<Acceptor>,
}

impl<A> TlsApp<A> {
    /// Wraps `inner`; `config` `None` means the listener speaks plain HTTP.
    pub fn new(inner: A, config: Option<Arc<ServerConfig>>) -> TlsApp<A> {
        TlsApp {
            inner: Arc::new(inner),
            acceptor: config.map(Acceptor::from_server_config),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for TlsApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(acceptor) = &self.acceptor else {
            return self.inner.process_new(stream, shutdown).await;
        };
        // A kept-alive connection comes back already decrypted (and maybe wrapped by the inner app).
        if !stream.as_any().is::<L4Stream>() {
            return self.inner.process_new(stream, shutdown).await;
        }
        let l4 = *stream.into_any().downcast::<L4Stream>().ok()?;
        let peer = l4
            .get_socket_digest()
            .and_then(|d| d.peer_addr().map(|a| a.to_string()));
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.tls_handshake(l4)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(peer = ?peer, error = %e, "tls: handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(peer = ?peer, "tls: handshake timed out");
                return None;
            }
        };
        let stream: Stream = Box::new(tls);
        if let Some(ALPN::Custom(p)) = stream.selected_alpn_proto() {
            // TLS-ALPN-01: the validation server only checks the certificate, then closes (RFC 8737 §3).
            tracing::debug!(protocol = ?String::from_utf8_lossy(p.protocol()), "tls: non-HTTP ALPN, closing");
            return None;
        }
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ClientHello;
    use rustls::sign::CertifiedKey;

    #[derive(Debug)]
    struct NoCert;

    impl ResolvesServerCert for NoCert {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            None
        }
    }

    #[test]
    fn the_listener_config_resumes_by_ticket_and_by_session_id() {
        let config = server_config(Arc::new(NoCert), &[], false).unwrap();
        assert!(config.ticketer.enabled(), "tickets are issued");
        assert!(config.session_storage.can_cache(), "session IDs are cached");
        assert_eq!(config.max_early_data_size, 0, "no 0-RTT");
    }

    #[test]
    fn acme_tls_alpn_is_offered_only_when_asked() {
        let cases: &[(bool, &[&[u8]])] = &[
            (false, &[b"h2", b"http/1.1"]),
            (true, &[b"h2", b"http/1.1", b"acme-tls/1"]),
        ];
        for (acme, want) in cases {
            let config = server_config(Arc::new(NoCert), &[], *acme).unwrap();
            assert_eq!(config.alpn_protocols, *want, "acme_alpn {acme}");
        }
    }

    #[test]
    fn client_cas_that_do_not_load_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        for path in [dir.path().join("missing.pem"), garbage] {
            let err =
                server_config(Arc::new(NoCert), std::slice::from_ref(&path), false).unwrap_err();
            assert!(
                err.to_string().contains(&path.display().to_string()),
                "{path:?}: {err}"
            );
        }
    }
}
