//! Retry-After from the ACME server. instant-acme turns a refusal into a `Problem` and drops the response's
//! headers, so gatehouse gives it its own HTTP client ([`http_client`]: the same hyper + rustls stack
//! instant-acme builds by default) that notes the `Retry-After` of every refused response (status 429 or
//! 503, where RFC 8555 §6.6 and RFC 9110 put it) in [`Hints`]. After a failed attempt the renewal service
//! waits what the server asked for ([`next_wait`]), between [`MIN_SERVER_WAIT`] and [`MAX_SERVER_WAIT`],
//! instead of its own backoff.

use super::{protocol, AcmeError};
use bytes::Bytes;
use http::Request;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The shortest wait a server's Retry-After can ask for (a `0` or a date in the past must not spin).
pub const MIN_SERVER_WAIT: Duration = Duration::from_secs(1);
/// The longest: a server asking for more (Let's Encrypt's weekly limits can) is retried after a day.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(24 * 3600);

/// A `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) as the time it names; `None`
/// when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // A number too large for u64 seconds is as good as "a long time": the cap applies.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(
            now.checked_add(Duration::from_secs(secs))
                .unwrap_or(now + MAX_SERVER_WAIT * 2),
        );
    }
    httpdate::parse_http_date(value).ok()
}

/// What the server asked for on its last refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    /// The refusal's status (429 or 503).
    pub status: u16,
    /// When the server said to come back.
    pub until: SystemTime,
}

/// The last Retry-After seen, shared between the HTTP client and the renewal service.
#[derive(Debug, Default)]
pub struct Hints(Mutex<Option<Hint>>);

impl Hints {
    /// Notes a refusal's hint (the latest wins).
    pub fn note(&self, hint: Hint) {
        *self.0.lock().expect("hints lock") = Some(hint);
    }

    /// Takes the hint noted since the last take, if any.
    pub fn take(&self) -> Option<Hint> {
        self.0.lock().expect("hints lock").take()
    }
}

/// Where the wait after a failed attempt comes from, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitSource {
    /// The server's Retry-After, within bounds.
    RetryAfter,
    /// The server's Retry-After, cut to [`MAX_SERVER_WAIT`] or raised to [`MIN_SERVER_WAIT`].
    RetryAfterBounded,
    /// gatehouse's own backoff (the server gave no Retry-After).
    Backoff,
}

/// The wait after a failed attempt: the server's hint when it gave one (bounded), else `backoff`.
pub fn next_wait(hint: Option<Hint>, backoff: Duration, now: SystemTime) -> (Duration, WaitSource) {
    let Some(hint) = hint else {
        return (backoff, WaitSource::Backoff);
    };
    let asked = hint.until.duration_since(now).unwrap_or(Duration::ZERO);
    let bounded = asked.clamp(MIN_SERVER_WAIT, MAX_SERVER_WAIT);
    let source = if bounded == asked {
        WaitSource::RetryAfter
    } else {
        WaitSource::RetryAfterBounded
    };
    (bounded, source)
}

/// An instant-acme HTTP client that notes the Retry-After of refused responses in `hints`.
pub struct Recording {
    inner: Box<dyn HttpClient>,
    hints: Arc<Hints>,
}

impl Recording {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn HttpClient>, hints: Arc<Hints>) -> Recording {
        Recording { inner, hints }
    }
}

impl HttpClient for Recording {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = self.inner.request(req);
        let hints = self.hints.clone();
        Box::pin(async move {
            let rsp = fut.await?;
            let status = rsp.parts.status.as_u16();
            if status == 429 || status == 503 {
                let until = rsp
                    .parts
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                if let Some(until) = until {
                    hints.note(Hint { status, until });
                }
            }
            Ok(rsp)
        })
    }
}

/// The HTTP client for the ACME directory: hyper over rustls, verifying against `directory_ca` when set
/// (a test CA) or the platform's roots, wrapped in [`Recording`].
pub fn http_client(
    directory_ca: Option<&Path>,
    hints: Arc<Hints>,
) -> Result<Box<dyn HttpClient>, AcmeError> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match directory_ca {
        Some(ca) => {
            let roots = crate::tls::pem::load_roots(&[ca.to_path_buf()])
                .map_err(|e| protocol("account", e))?;
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| protocol("account", e))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(config)
        }
        None => builder
            .try_with_platform_verifier()
            .map_err(|e| protocol("account", e))?,
    };
    let connector = builder.https_only().enable_http1().enable_http2().build();
    let client: HyperClient<_, BodyWrapper<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(Recording::new(Box::new(client), hints)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_values_parse_as_seconds_or_http_dates_and_garbage_is_none() {
        let now = at(NOW);
        let date = httpdate::fmt_http_date(at(NOW + 90));
        let cases: &[(&str, Option<SystemTime>)] = &[
            ("120", Some(at(NOW + 120))),
            (" 7 ", Some(at(NOW + 7))),
            ("0", Some(now)),
            (&date, Some(at(NOW + 90))),
            ("Thu, 01 Jan 1970 00:00:00 GMT", Some(at(0))),
            ("", None),
            ("-5", None),
            ("1.5", None),
            ("12s", None),
            ("soon", None),
            ("0x10", None),
            ("Mon, 99 Foo 2026 25:61:61 GMT", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), *want, "{value:?}");
        }
        let huge = parse_retry_after("99999999999999999999999999", now).unwrap();
        assert!(
            huge.duration_since(now).unwrap() > MAX_SERVER_WAIT,
            "huge is long"
        );
    }

    #[test]
    fn the_wait_after_a_refusal_is_the_servers_bounded_else_the_backoff() {
        let now = at(NOW);
        let backoff = Duration::from_secs(40);
        let hint = |secs: u64| {
            Some(Hint {
                status: 429,
                until: at(secs),
            })
        };
        let cases: &[(Option<Hint>, Duration, WaitSource)] = &[
            (None, backoff, WaitSource::Backoff),
            (
                hint(NOW + 300),
                Duration::from_secs(300),
                WaitSource::RetryAfter,
            ),
            (hint(NOW), MIN_SERVER_WAIT, WaitSource::RetryAfterBounded),
            (
                hint(NOW - 60),
                MIN_SERVER_WAIT,
                WaitSource::RetryAfterBounded,
            ),
            (
                hint(NOW + 7 * 86400),
                MAX_SERVER_WAIT,
                WaitSource::RetryAfterBounded,
            ),
        ];
        for (h, want, source) in cases {
            assert_eq!(next_wait(*h, backoff, now), (*want, *source), "{h:?}");
        }
    }

    /// An ACME server that knows a directory and nonces and refuses new accounts with a rate limit.
    struct RateLimitingCa;

    impl HttpClient for RateLimitingCa {
        fn request(
            &self,
            req: Request<BodyWrapper<Bytes>>,
        ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>
        {
            let (status, retry_after, body): (u16, Option<&str>, &str) = match req.uri().path() {
                "/dir" => (
                    200,
                    None,
                    r#"{"newNonce":"https://ca.test/nonce","newAccount":"https://ca.test/acct","newOrder":"https://ca.test/order"}"#,
                ),
                "/nonce" => (200, None, ""),
                _ => (
                    429,
                    Some("120"),
                    r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many new accounts","status":429}"#,
                ),
            };
            let mut rsp = http::Response::builder()
                .status(status)
                .header("replay-nonce", "bm9uY2U");
            if let Some(v) = retry_after {
                rsp = rsp.header(http::header::RETRY_AFTER, v);
            }
            let (parts, ()) = rsp.body(()).unwrap().into_parts();
            let body: Box<dyn instant_acme::BytesBody> = Box::new(Bytes::from(body));
            Box::pin(async move { Ok(BytesResponse { parts, body }) })
        }
    }

    #[tokio::test]
    async fn a_rate_limited_refusal_reaches_the_service_with_its_retry_after() {
        let hints = Arc::new(Hints::default());
        let http = Box::new(Recording::new(Box::new(RateLimitingCa), hints.clone()));
        let new = instant_acme::NewAccount {
            contact: &[],
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let before = SystemTime::now();
        let err = instant_acme::Account::builder_with_http(http)
            .create(&new, "https://ca.test/dir".to_string(), None)
            .await
            .err()
            .expect("the CA refuses");
        match &err {
            instant_acme::Error::Api(p) => assert_eq!(
                p.r#type.as_deref(),
                Some("urn:ietf:params:acme:error:rateLimited")
            ),
            other => panic!("not an API problem: {other:?}"),
        }
        let after = SystemTime::now();
        let hint = hints.take().expect("the Retry-After was noted");
        assert_eq!(hint.status, 429);
        let two_minutes = Duration::from_secs(120);
        assert!(
            before + two_minutes <= hint.until && hint.until <= after + two_minutes,
            "{hint:?}"
        );
        let (wait, source) = next_wait(
            Some(hint),
            Duration::from_secs(10),
            hint.until - two_minutes,
        );
        assert_eq!((wait, source), (two_minutes, WaitSource::RetryAfter));
        assert_eq!(hints.take(), None, "a hint is used once");
    }
}
