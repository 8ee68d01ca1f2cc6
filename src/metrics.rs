//! Prometheus metrics: one `gatehouse_` prefix, base units, `_total` only on counters, and a fixed set of
//! label values (route kind, method, status class...), never a repository or user name.
//!
//! The metrics live in one process-wide [`Metrics`] ([`metrics()`]) so every module can count without
//! plumbing; [`render`] writes the text exposition format for the metrics listener.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

/// Buckets from a 1 ms manifest read to a 20-minute layer upload.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1200.0,
];

/// Every metric gatehouse exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by route kind, method and status code.
    pub requests: IntCounterVec,
    /// Request duration by route kind.
    pub request_duration: HistogramVec,
    /// Request body bytes received, by route kind.
    pub received_bytes: IntCounterVec,
    /// Response body bytes sent, by route kind.
    pub sent_bytes: IntCounterVec,
    /// The part of the body bytes sent that the kernel sent straight from a file (`sendfile`).
    pub sendfile_bytes: IntCounter,
    /// Requests being served now.
    pub in_flight: IntGauge,
    /// Authentication attempts by result (ok, cached, bad_password, unknown_user, unsupported_hash,
    /// malformed, throttled).
    pub auth_attempts: IntCounterVec,
    /// htpasswd reloads by result (ok, failed).
    pub htpasswd_reloads: IntCounterVec,
    /// Users in the credential set in force.
    pub htpasswd_users: IntGauge,
    /// Unix time of the last good htpasswd load.
    pub htpasswd_last_reload: Gauge,
    /// 1 while the htpasswd file is missing, unreadable or garbage and the last good set is kept.
    pub htpasswd_stale: IntGauge,
    /// Config reloads (SIGHUP) by result (ok, error).
    pub config_reloads: IntCounterVec,
    /// Authorization denials by action.
    pub authz_denials: IntCounterVec,
    /// Upstream failures by kind (connect, proxy).
    pub upstream_errors: IntCounterVec,
    /// Time from sending a request upstream to its response header.
    pub upstream_duration: HistogramVec,
    /// 1 when the last upstream exchange worked, 0 when it failed.
    pub upstream_up: IntGauge,
    /// Blobs in the embedded store.
    pub storage_blobs: IntGauge,
    /// Bytes of blobs in the embedded store.
    pub storage_bytes: IntGauge,
    /// Uploads in progress in the embedded store.
    pub storage_uploads: IntGauge,
    /// Failed upload commits in the embedded store.
    pub storage_commit_failures: IntCounter,
    /// Failed logins throttled by the brute-force guard.
    pub guard_throttled: IntCounter,
    /// Connections closed at once because their client held `server.max_connections_per_client`.
    pub connections_refused: IntCounter,
    /// Client addresses the brute-force guard is tracking.
    pub guard_tracked: IntGauge,
    /// Build information (always 1).
    pub build_info: IntGaugeVec,
    /// The served TLS certificate's `notAfter`, Unix seconds.
    pub tls_cert_expiry: IntGauge,
    /// TLS certificate reloads by result (`ok`, `failed`).
    pub tls_reloads: IntCounterVec,
    /// 1 while the TLS files on disk do not load and the last good certificate is served.
    pub tls_stale: IntGauge,
    /// ACME orders (first issuance and renewals) by result (`ok`, `failed`).
    pub acme_orders: IntCounterVec,
    /// Garbage collection (`gatehouse_gc_*`).
    pub gc: crate::gc::metrics::GcMetrics,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn plain_counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let htpasswd_last_reload = Gauge::new(
            "gatehouse_htpasswd_last_reload_timestamp_seconds",
            "Unix time of the last good htpasswd load.",
        )
        .expect("valid metric");
        r.register(Box::new(htpasswd_last_reload.clone()))
            .expect("unique metric");
        let commit_failures = plain_counter(
            &r,
            "gatehouse_storage_commit_failures_total",
            "Upload commits that failed in the embedded store.",
        );
        let throttled = plain_counter(
            &r,
            "gatehouse_guard_throttled_total",
            "Requests refused with 429 by the brute-force guard.",
        );
        let refused = plain_counter(
            &r,
            "gatehouse_connections_refused_total",
            "Connections closed at once because their client address held server.max_connections_per_client.",
        );
        let build_info = IntGaugeVec::new(
            Opts::new("gatehouse_build_info", "Build information; always 1."),
            &["version", "commit"],
        )
        .expect("valid metric");
        r.register(Box::new(build_info.clone()))
            .expect("unique metric");
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("GATEHOUSE_COMMIT").unwrap_or("unknown"),
            ])
            .set(1);
        Metrics {
            requests: counter(
                &r,
                "gatehouse_http_requests_total",
                "Requests answered, by route kind, method and status.",
                &["route", "method", "status"],
            ),
            request_duration: histogram(
                &r,
                "gatehouse_http_request_duration_seconds",
                "Time from request to the end of the response, by route kind.",
                &["route"],
            ),
            received_bytes: counter(
                &r,
                "gatehouse_http_received_bytes_total",
                "Request body bytes received, by route kind.",
                &["route"],
            ),
            sent_bytes: counter(
                &r,
                "gatehouse_http_sent_bytes_total",
                "Response body bytes sent, by route kind.",
                &["route"],
            ),
            sendfile_bytes: plain_counter(
                &r,
                "gatehouse_http_sendfile_bytes_total",
                "Response body bytes the kernel sent straight from a file (sendfile, plain-TCP HTTP/1.1 \
                 downloads of the embedded disk backend); a part of gatehouse_http_sent_bytes_total.",
            ),
            in_flight: gauge(
                &r,
                "gatehouse_http_requests_in_flight",
                "Requests being served now.",
            ),
            auth_attempts: counter(
                &r,
                "gatehouse_auth_attempts_total",
                "Authentication attempts by result.",
                &["result"],
            ),
            htpasswd_reloads: counter(
                &r,
                "gatehouse_htpasswd_reloads_total",
                "htpasswd reloads by result.",
                &["result"],
            ),
            htpasswd_users: gauge(
                &r,
                "gatehouse_htpasswd_users",
                "Users in the credential set in force.",
            ),
            htpasswd_last_reload,
            htpasswd_stale: gauge(
                &r,
                "gatehouse_htpasswd_stale",
                "1 while the htpasswd file is missing, unreadable or garbage and the last good set is kept.",
            ),
            config_reloads: counter(
                &r,
                "gatehouse_config_reloads_total",
                "Config reloads on SIGHUP, by result (ok; error: the running config stays).",
                &["result"],
            ),
            authz_denials: counter(
                &r,
                "gatehouse_authz_denials_total",
                "Requests refused by the access rules, by action.",
                &["action"],
            ),
            upstream_errors: counter(
                &r,
                "gatehouse_upstream_errors_total",
                "Failed exchanges with the upstream registry, by kind.",
                &["kind"],
            ),
            upstream_duration: histogram(
                &r,
                "gatehouse_upstream_response_duration_seconds",
                "Time from sending a request upstream to its response header, by route kind.",
                &["route"],
            ),
            upstream_up: gauge(
                &r,
                "gatehouse_upstream_up",
                "1 when the last exchange with the upstream worked, else 0.",
            ),
            storage_blobs: gauge(
                &r,
                "gatehouse_storage_blobs",
                "Blobs in the embedded store.",
            ),
            storage_bytes: gauge(
                &r,
                "gatehouse_storage_blob_bytes",
                "Bytes of blobs in the embedded store.",
            ),
            storage_uploads: gauge(
                &r,
                "gatehouse_storage_uploads_in_progress",
                "Uploads in progress in the embedded store.",
            ),
            storage_commit_failures: commit_failures,
            guard_throttled: throttled,
            connections_refused: refused,
            guard_tracked: gauge(
                &r,
                "gatehouse_guard_tracked_addresses",
                "Client addresses the brute-force guard is tracking.",
            ),
            build_info,
            tls_cert_expiry: gauge(
                &r,
                "gatehouse_tls_certificate_expiry_timestamp_seconds",
                "notAfter of the TLS certificate being served, Unix seconds.",
            ),
            tls_reloads: counter(
                &r,
                "gatehouse_tls_reloads_total",
                "TLS certificate file reloads by result.",
                &["result"],
            ),
            tls_stale: gauge(
                &r,
                "gatehouse_tls_stale",
                "1 while the TLS files do not load or match and the last good certificate is served.",
            ),
            acme_orders: counter(
                &r,
                "gatehouse_acme_orders_total",
                "ACME certificate orders (first issuance and renewals) by result.",
                &["result"],
            ),
            gc: crate::gc::metrics::GcMetrics::register(&r),
            registry: r,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The text exposition of every metric.
pub fn render() -> Vec<u8> {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&metrics().registry.gather(), &mut out)
        .expect("metrics encode");
    out
}

/// The status label: the code itself (a fixed, small set in practice).
pub fn status_label(status: u16) -> &'static str {
    match status {
        0 => "0",
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        206 => "206",
        301 => "301",
        302 => "302",
        304 => "304",
        307 => "307",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        416 => "416",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 400 => "3xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_with_prefix_and_build_info() {
        metrics()
            .requests
            .with_label_values(&["base", "GET", "200"])
            .inc();
        let text = String::from_utf8(render()).unwrap();
        assert!(text.contains("gatehouse_build_info{"));
        assert!(text.contains(
            "gatehouse_http_requests_total{method=\"GET\",route=\"base\",status=\"200\"}"
        ));
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("gatehouse_"), "{line}");
        }
    }
}
