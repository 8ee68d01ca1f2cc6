//! Automatic certificates (ACME, RFC 8555) for the main listener, with instant-acme for the protocol: the
//! account and the certificate persist in a state directory ([`state`]), one order covers the configured
//! hosts and nothing else ([`client`]), and a background service renews when a third of the lifetime is
//! left, with backoff on failure, while the current certificate keeps serving ([`service`]).
//!
//! Challenges: HTTP-01, answered by the plain-HTTP listener from [`crate::tls::plain::Http01Tokens`], when
//! that listener runs; otherwise TLS-ALPN-01 on the main listener ([`alpn`]), which gatehouse's own TLS
//! accept ([`crate::tls::accept`]) makes possible: pingora 0.9's listener offers only `h2`/`http/1.1`.

pub mod alpn;
pub mod client;
pub mod retry;
pub mod service;
pub mod settings;
pub mod state;

pub use settings::{AcmeConfig, Challenge};

/// A problem with ACME: the state directory or the exchange with the CA.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The state directory cannot be used.
    #[error("acme: {path}: {source}")]
    State {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state directory holds something unreadable.
    #[error("acme: {path}: {problem}")]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The CA refused or failed a step.
    #[error("acme: {step}: {problem}")]
    Protocol {
        /// Which step (account, order, authorization, finalize, certificate).
        step: &'static str,
        /// What the CA or the client said.
        problem: String,
    },
}

/// An [`AcmeError::Protocol`] for `step`.
pub(crate) fn protocol(step: &'static str, e: impl std::fmt::Display) -> AcmeError {
    AcmeError::Protocol {
        step,
        problem: e.to_string(),
    }
}
