//! The brute-force guard: failed logins per client address drain a token bucket; an empty bucket means 429
//! with `Retry-After`, without running bcrypt. Memory stays bounded under address spray: at most
//! `max_tracked` addresses are held, refilled buckets are dropped first, and a full table is cut in half.

use super::settings::GuardConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Failed-login limits per client address.
pub struct Guard {
    burst: f64,
    per_second: f64,
    max_tracked: usize,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Guard {
    /// A guard with the configured burst, refill rate and table size.
    pub fn new(config: &GuardConfig) -> Guard {
        Guard {
            burst: config.burst as f64,
            per_second: config.per_minute as f64 / 60.0,
            max_tracked: config.max_tracked,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let earned = now.duration_since(b.updated).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + earned).min(self.burst);
        b.updated = now;
    }

    /// When the address may try again, if it is throttled now.
    pub fn retry_after(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("guard lock");
        let b = buckets.get_mut(&ip)?;
        self.refill(b, now);
        (b.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
    }

    /// Counts one failed login from the address.
    pub fn record_failure(&self, ip: IpAddr) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("guard lock");
        if !buckets.contains_key(&ip) && buckets.len() >= self.max_tracked {
            let full = self.burst;
            let per_second = self.per_second;
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < full
            });
            if buckets.len() >= self.max_tracked {
                let mut n = 0;
                let keep = self.max_tracked / 2;
                buckets.retain(|_, _| {
                    n += 1;
                    n <= keep
                });
            }
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        self.refill(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        crate::metrics::metrics()
            .guard_tracked
            .set(buckets.len() as i64);
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().expect("guard lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: usize) -> Guard {
        Guard::new(&GuardConfig {
            burst: 5,
            per_minute: 6,
            max_tracked: max,
        })
    }

    #[test]
    fn burst_then_throttle_per_address() {
        let g = guard(100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..5 {
            assert!(g.retry_after(a).is_none());
            g.record_failure(a);
        }
        let wait = g.retry_after(a).expect("throttled after the burst");
        assert!(
            wait <= Duration::from_secs(10) && wait > Duration::from_secs(5),
            "{wait:?}"
        );
        assert!(
            g.retry_after(b).is_none(),
            "another address is not affected"
        );
    }

    #[test]
    fn bounded_under_address_spray() {
        let g = guard(1000);
        for i in 0..100_000u32 {
            g.record_failure(IpAddr::from(i.to_be_bytes()));
        }
        assert!(g.tracked() <= 1000, "{}", g.tracked());
    }
}
