//! TLS on the main listener: the certificate store that rustls asks for a certificate at each handshake
//! ([`store::CertStore`], a `ResolvesServerCert` over an `ArcSwap`), PEM loading ([`pem`]), the watcher that
//! swaps in renewed files ([`watch`]), and the pingora listener settings ([`listener_settings`]): HTTP/2 and
//! HTTP/1.1 by ALPN, client certificates when client CAs are configured.
//!
//! A renewal swaps the store's pair, never the listener: connections in flight keep their session, new
//! handshakes get the new certificate. A pair that does not load or match keeps the last good one in force
//! and says so (log, `gatehouse_tls_stale`, `/readyz`).

pub mod pem;
pub mod settings;
pub mod store;
#[cfg(test)]
pub mod testcerts;
pub mod watch;

pub use settings::TlsConfig;
pub use store::CertStore;

use pingora::listeners::tls::TlsSettings;
use std::path::PathBuf;
use std::sync::Arc;

/// A problem with the TLS files, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("tls: {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the kind expected.
    #[error("tls: {path}: {problem}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The key is not the certificate's.
    #[error("tls: the key {key} does not belong to the certificate {cert}: {problem}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's words.
        problem: String,
    },
    /// The client CAs cannot verify anything.
    #[error("tls: client CAs: {0}")]
    ClientCas(String),
}

/// The pingora TLS settings of the main listener: certificates from `store`, h2 and HTTP/1.1 by ALPN,
/// and client certificates required when `config` names client CAs.
pub fn listener_settings(
    store: Arc<CertStore>,
    config: &TlsConfig,
) -> Result<TlsSettings, TlsError> {
    // The paths stay empty: with a resolver set, pingora's rustls build ignores them.
    let mut settings = TlsSettings::intermediate("", "").expect("TLS settings without files");
    settings.set_cert_resolver(store);
    settings.enable_h2();
    if !config.client_cas.is_empty() {
        let roots = pem::load_roots(&config.client_cas)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCas(e.to_string()))?;
        settings.set_client_cert_verifier(verifier);
    }
    Ok(settings)
}
