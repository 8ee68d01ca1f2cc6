//! One ACME exchange: the account (loaded from the state directory, or created and saved), then one order
//! for exactly the configured hosts, HTTP-01 answered through [`Http01Tokens`] or TLS-ALPN-01 through
//! [`AlpnChallenges`], finalization with a fresh
//! key, and the chain. instant-acme retries `badNonce` itself; pending authorizations and orders are polled
//! with backoff; anything else fails the attempt (the renewal service waits the server's Retry-After, or
//! backs off, and tries again).

use super::alpn::AlpnChallenges;
use super::retry::{self, Hints};
use super::settings::{AcmeConfig, Challenge};
use super::state::StateDir;
use super::{protocol, AcmeError};
use crate::tls::plain::Http01Tokens;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use std::sync::Arc;
use std::time::Duration;

/// How long an order may stay pending or processing before the attempt fails.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The account: from the state directory, or created (and saved) when there is none. Its HTTP client
/// notes the server's Retry-After in `hints` ([`super::retry`]).
pub async fn account(
    config: &AcmeConfig,
    state: &StateDir,
    hints: Arc<Hints>,
) -> Result<Account, AcmeError> {
    let http = retry::http_client(config.directory_ca.as_deref(), hints)?;
    let builder = Account::builder_with_http(http);
    if let Some(creds) = state.account()? {
        let account = builder
            .from_credentials(creds)
            .await
            .map_err(|e| protocol("account", e))?;
        tracing::info!(
            id = account.id(),
            "acme: account loaded from the state directory"
        );
        return Ok(account);
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, creds) = builder
        .create(&new, config.directory_url.clone(), None)
        .await
        .map_err(|e| protocol("account", e))?;
    state.save_account(&creds)?;
    tracing::info!(id = account.id(), directory = %config.directory_url, "acme: account created");
    Ok(account)
}

/// Removes the answered HTTP-01 tokens and TLS-ALPN-01 certificates however the attempt ends.
struct Answered<'a> {
    tokens: &'a Http01Tokens,
    list: Vec<String>,
    challenges: Option<&'a AlpnChallenges>,
    hosts: Vec<String>,
}

impl Drop for Answered<'_> {
    fn drop(&mut self) {
        for t in &self.list {
            self.tokens.remove(t);
        }
        if let Some(c) = self.challenges {
            for h in &self.hosts {
                c.remove(h);
            }
        }
    }
}

/// Orders a certificate for the configured hosts, answering the configured challenge (HTTP-01 through
/// `tokens`, TLS-ALPN-01 through `challenges`); returns the PEM chain and the PEM key.
pub async fn order(
    account: &Account,
    config: &AcmeConfig,
    tokens: &Arc<Http01Tokens>,
    challenges: Option<&AlpnChallenges>,
) -> Result<(String, String), AcmeError> {
    let ids: Vec<Identifier> = config
        .hosts
        .iter()
        .map(|h| match h.parse() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::Dns(h.clone()),
        })
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| protocol("order", e))?;
    tracing::info!(hosts = ?config.hosts, url = order.url(), "acme: order placed");
    let mut answered = Answered {
        tokens,
        list: Vec::new(),
        challenges,
        hosts: Vec::new(),
    };
    let (kind, kind_name) = match config.challenge {
        Challenge::Http01 => (ChallengeType::Http01, "http-01"),
        Challenge::TlsAlpn01 => (ChallengeType::TlsAlpn01, "tls-alpn-01"),
    };
    {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| protocol("authorization", e))?;
            match authz.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(protocol(
                        "authorization",
                        format!("{:?} is {other:?}", authz.identifier()),
                    ))
                }
            }
            let name = format!("{:?}", authz.identifier());
            let host = match authz.identifier().identifier {
                Identifier::Dns(d) => Some(d.clone()),
                _ => None,
            };
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                protocol(
                    "authorization",
                    format!("{name}: the CA offers no {kind_name} challenge"),
                )
            })?;
            let key_auth = challenge.key_authorization();
            match (config.challenge, challenges, host) {
                (Challenge::Http01, _, _) => {
                    tokens.insert(&challenge.token, key_auth.as_str());
                    answered.list.push(challenge.token.clone());
                }
                (Challenge::TlsAlpn01, Some(c), Some(host)) => {
                    c.insert(&host, key_auth.digest().as_ref())?;
                    answered.hosts.push(host);
                }
                (Challenge::TlsAlpn01, _, _) => {
                    return Err(protocol(
                        "challenge",
                        format!("{name}: tls-alpn-01 needs a DNS name and an ACME listener"),
                    ))
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| protocol("challenge", e))?;
            tracing::info!(identifier = %name, challenge = kind_name, "acme: challenge ready");
        }
    }
    let retry = RetryPolicy::new().timeout(ORDER_TIMEOUT);
    let status = order
        .poll_ready(&retry)
        .await
        .map_err(|e| protocol("order", e))?;
    if status != OrderStatus::Ready {
        return Err(protocol(
            "order",
            format!("the order is {status:?}, not ready"),
        ));
    }
    drop(answered);
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| protocol("finalize", e))?;
    let chain = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| protocol("certificate", e))?;
    Ok((chain, key_pem))
}
