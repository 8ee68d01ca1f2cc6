//! TLS on the main listener: the certificate store that rustls asks for a certificate at each handshake
//! ([`store::CertStore`], a `ResolvesServerCert` over an `ArcSwap`), PEM loading ([`pem`]), the watcher that
//! swaps in renewed files ([`watch`]), and gatehouse's own TLS accept ([`accept`]): HTTP/2 and HTTP/1.1
//! by ALPN, client certificates when client CAs are configured, session resumption.
//!
//! A renewal swaps the store's pair, never the listener: connections in flight keep their session, new
//! handshakes get the new certificate. A pair that does not load or match keeps the last good one in force
//! and says so (log, `gatehouse_tls_stale`, `/readyz`).

pub mod accept;
pub mod pem;
pub mod plain;
pub mod settings;
pub mod store;
#[cfg(test)]
pub mod testcerts;
pub mod watch;

pub use settings::TlsConfig;
pub use store::CertStore;

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
    /// rustls refuses the listener's settings.
    #[error("tls: the listener's settings: {0}")]
    Config(String),
    /// The client CAs cannot verify anything.
    #[error("tls: client CAs: {0}")]
    ClientCas(String),
}

/// The certificate store of the main listener: from the files, or from the ACME state directory (with its
/// cached certificate, when there is one); `None` when TLS is off.
pub fn open_store(
    files: Option<&TlsConfig>,
    acme: Option<&crate::acme::AcmeConfig>,
) -> Result<(Option<Arc<CertStore>>, Option<crate::acme::state::StateDir>), crate::server::StartError>
{
    if let Some(tls) = files {
        return Ok((Some(Arc::new(CertStore::open(tls)?)), None));
    }
    let Some(a) = acme else {
        return Ok((None, None));
    };
    let state = crate::acme::state::StateDir::open(&a.cache)?;
    let store = CertStore::for_acme(state.path(), state.certificate());
    Ok((Some(Arc::new(store)), Some(state)))
}

/// The client CAs of the main listener: from `[tls]` with certificate files, or carried by the ACME
/// settings; empty when no client certificates are asked for.
pub fn client_cas(config: &crate::config::Config) -> &[PathBuf] {
    match (&config.tls, &config.acme) {
        (Some(t), _) => &t.client_cas,
        (None, Some(a)) => &a.client_cas,
        (None, None) => &[],
    }
}
