//! The brute-force guard: login attempts per client address drain a token bucket; an empty bucket means 429
//! with `Retry-After`, without running bcrypt.
//!
//! A token is *reserved* before the credentials are checked (before the request queues for a bcrypt slot),
//! so however many attempts one address sends at once, at most the burst of them is in flight or queued and
//! the rest are refused at once. A successful login gives its token back; a failed one keeps it spent.
//! Memory stays bounded under address spray: at most `max_tracked` addresses are held, refilled buckets are
//! dropped first, and a full table is cut in half.

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

/// One login attempt's token, taken from its address's bucket. Dropping it keeps the token spent (a failed
/// or abandoned attempt); [`Reservation::give_back`] returns it (a successful login).
#[must_use = "dropping a reservation counts the attempt as failed"]
pub struct Reservation<'a> {
    guard: &'a Guard,
    ip: IpAddr,
}

impl Reservation<'_> {
    /// Returns the token: the attempt succeeded and costs the address nothing.
    pub fn give_back(self) {
        let now = Instant::now();
        let mut buckets = self.guard.buckets.lock().expect("guard lock");
        if let Some(b) = buckets.get_mut(&self.ip) {
            self.guard.refill(b, now);
            b.tokens = (b.tokens + 1.0).min(self.guard.burst);
            if b.tokens >= self.guard.burst {
                // Full again: nothing to remember about this address.
                buckets.remove(&self.ip);
            }
        }
        crate::metrics::metrics()
            .guard_tracked
            .set(buckets.len() as i64);
    }
}

impl Guard {
    /// A guard with the configured burst, refill rate and table size.
    pub fn new(config: &GuardConfig) -> Guard {
        Guard {
            burst: f64::from(config.burst.max(1)),
            per_second: f64::from(config.per_minute.max(1)) / 60.0,
            max_tracked: config.max_tracked.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let earned = now.duration_since(b.updated).as_secs_f64() * self.per_second;
        b.tokens = (b.tokens + earned).min(self.burst);
        b.updated = now;
    }

    /// Takes one token from the address's bucket for a login attempt, or says how long until one is free.
    pub fn reserve(&self, ip: IpAddr) -> Result<Reservation<'_>, Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("guard lock");
        if !buckets.contains_key(&ip) && buckets.len() >= self.max_tracked {
            self.make_room(&mut buckets, now);
        }
        let b = buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        self.refill(b, now);
        let result = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(Reservation { guard: self, ip })
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_second))
        };
        crate::metrics::metrics()
            .guard_tracked
            .set(buckets.len() as i64);
        result
    }

    /// Drops refilled buckets; if the table is still full, keeps half of it.
    fn make_room(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let (full, per_second) = (self.burst, self.per_second);
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
            drop(g.reserve(a).expect("within the burst"));
        }
        let wait = g.reserve(a).err().expect("throttled after the burst");
        assert!(
            wait <= Duration::from_secs(10) && wait > Duration::from_secs(5),
            "{wait:?}"
        );
        assert!(g.reserve(b).is_ok(), "another address is not affected");
    }

    #[test]
    fn reservations_held_at_once_are_capped_at_the_burst() {
        // Attempts in flight (not yet finished) hold their tokens: the sixth is refused at once.
        let g = guard(100);
        let a: IpAddr = "192.0.2.3".parse().unwrap();
        let held: Vec<_> = (0..5)
            .map(|_| g.reserve(a).expect("within the burst"))
            .collect();
        assert!(g.reserve(a).is_err(), "more in flight than the burst");
        drop(held);
        assert!(
            g.reserve(a).is_err(),
            "failed attempts keep their tokens spent"
        );
    }

    #[test]
    fn a_successful_login_gives_its_token_back() {
        let g = guard(100);
        let a: IpAddr = "192.0.2.4".parse().unwrap();
        for _ in 0..50 {
            g.reserve(a)
                .expect("successes never drain the bucket")
                .give_back();
        }
        assert_eq!(g.tracked(), 0, "a full bucket is forgotten");
        let held: Vec<_> = (0..4).map(|_| g.reserve(a).unwrap()).collect();
        let last = g.reserve(a).unwrap();
        assert!(g.reserve(a).is_err());
        last.give_back();
        assert!(g.reserve(a).is_ok(), "the returned token is free again");
        drop(held);
    }

    #[test]
    fn bounded_under_address_spray() {
        let g = guard(1000);
        for i in 0..100_000u32 {
            drop(g.reserve(IpAddr::from(i.to_be_bytes())));
        }
        assert!(g.tracked() <= 1000, "{}", g.tracked());
    }
}
