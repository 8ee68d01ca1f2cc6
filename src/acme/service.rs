//! The renewal service: orders when there is no certificate, when the cached one does not cover the
//! configured hosts, or when a third of its lifetime is left; on failure it waits what the server's
//! Retry-After asks (1 s to a day, see [`super::retry`]) or else backs off (10 s doubling to an hour) while
//! the current certificate keeps serving. Every step is logged; `gatehouse_acme_orders_total`
//! counts the attempts by result.

use super::retry::{next_wait, Hints};
use super::settings::AcmeConfig;
use super::state::StateDir;
use super::{client, AcmeError};
use crate::tls::pem::Pair;
use crate::tls::plain::Http01Tokens;
use crate::tls::CertStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The first backoff after a failed attempt.
const BACKOFF_START: Duration = Duration::from_secs(10);
/// The longest wait, between failed attempts and between checks.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// When `pair` is due for renewal: a third of its lifetime before its end (Unix seconds).
pub fn renew_at(pair: &Pair) -> i64 {
    pair.not_after - (pair.not_after - pair.not_before).max(0) / 3
}

/// Whether `pair` names every configured host.
pub fn covers(pair: &Pair, hosts: &[String]) -> bool {
    hosts.iter().all(|h| pair.names.iter().any(|n| n == h))
}

/// The backoff after `failures` failed attempts in a row.
pub fn backoff(failures: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_WAIT)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The background service that keeps the store's certificate issued and renewed.
pub struct Renewal {
    /// The settings.
    pub config: AcmeConfig,
    /// The state directory.
    pub state: StateDir,
    /// Where issued certificates go.
    pub store: Arc<CertStore>,
    /// The HTTP-01 answers the plain-HTTP listener serves.
    pub tokens: Arc<Http01Tokens>,
}

impl Renewal {
    /// How long until the next order is due (zero: now).
    fn wait(&self) -> Duration {
        match self.store.current() {
            Some(p) if covers(&p, &self.config.hosts) => {
                Duration::from_secs((renew_at(&p) - now()).max(0) as u64)
            }
            _ => Duration::ZERO,
        }
    }

    async fn attempt(
        &self,
        account: &mut Option<instant_acme::Account>,
        hints: &Arc<Hints>,
    ) -> Result<Pair, AcmeError> {
        if account.is_none() {
            *account = Some(client::account(&self.config, &self.state, hints.clone()).await?);
        }
        let acct = account.as_ref().expect("account just set");
        let challenges = self.store.challenges();
        let (chain, key) = client::order(acct, &self.config, &self.tokens, challenges).await?;
        self.state.save_certificate(&chain, &key)
    }
}

#[async_trait]
impl BackgroundService for Renewal {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let m = crate::metrics::metrics();
        let mut account = None;
        let hints = Arc::new(Hints::default());
        let mut failures = 0u32;
        loop {
            let wait = self.wait();
            if !wait.is_zero() {
                tracing::debug!(seconds = wait.as_secs(), "acme: next renewal check");
                tokio::select! {
                    _ = tokio::time::sleep(wait.min(MAX_WAIT)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
            let why = match self.store.current() {
                None => "no certificate yet",
                Some(p) if !covers(&p, &self.config.hosts) => {
                    "the certificate does not name every host"
                }
                Some(_) => "a third of the lifetime is left",
            };
            tracing::info!(hosts = ?self.config.hosts, reason = why, "acme: ordering a certificate");
            hints.take();
            let result = tokio::select! {
                r = self.attempt(&mut account, &hints) => r,
                _ = shutdown.changed() => return,
            };
            match result {
                Ok(pair) => {
                    failures = 0;
                    m.acme_orders.with_label_values(&["ok"]).inc();
                    self.store.install(pair);
                }
                Err(e) => {
                    failures += 1;
                    m.acme_orders.with_label_values(&["failed"]).inc();
                    let hint = hints.take();
                    let (wait, source) = next_wait(hint, backoff(failures), SystemTime::now());
                    tracing::warn!(
                        error = %e,
                        failures,
                        retry_in_seconds = wait.as_secs(),
                        wait_from = ?source,
                        server_status = hint.map(|h| h.status),
                        "acme: the order failed; the current certificate (if any) keeps serving"
                    );
                    if matches!(
                        e,
                        AcmeError::Protocol {
                            step: "account",
                            ..
                        }
                    ) {
                        account = None;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pem::load_pair;
    use crate::tls::testcerts::{self, KeyKind};

    #[test]
    fn renewal_is_due_at_a_third_of_the_lifetime_left_and_backoff_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = testcerts::self_signed(dir.path(), "a", KeyKind::EcPkcs8);
        let mut pair = load_pair(&cert, &key).unwrap();
        pair.not_before = 0;
        pair.not_after = 90;
        assert_eq!(renew_at(&pair), 60);
        assert!(covers(&pair, &["a.test".into()]));
        assert!(!covers(&pair, &["a.test".into(), "b.test".into()]));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(2), Duration::from_secs(20));
        assert_eq!(backoff(100), MAX_WAIT);
    }
}
