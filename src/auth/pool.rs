//! The bcrypt pool: every bcrypt gatehouse runs for a request (verifying a password, the dummy verification
//! of an unknown user or an unsupported hash, and computing that dummy hash) runs here, on tokio's blocking
//! pool, behind one semaphore. So at most `bcrypt_concurrency` bcrypt computations (and blocking threads for
//! them) exist at once, whatever the clients send; the async workers never run bcrypt.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;

/// Counts the bcrypt computations running now and the most seen at once.
#[derive(Debug, Default)]
struct Gauge {
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    /// Runs `f`, counted as one running bcrypt.
    fn count<T>(&self, f: impl FnOnce() -> T) -> T {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let out = f();
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

/// One lazily computed dummy hash per bcrypt cost.
type Dummies = Mutex<HashMap<u32, Arc<OnceLock<String>>>>;

/// Bounded bcrypt work off the async workers.
pub struct BcryptPool {
    slots: Semaphore,
    gauge: Arc<Gauge>,
    dummies: Arc<Dummies>,
}

impl BcryptPool {
    /// A pool running at most `concurrency` bcrypt computations at once (at least one).
    pub fn new(concurrency: usize) -> BcryptPool {
        BcryptPool {
            slots: Semaphore::new(concurrency.max(1)),
            gauge: Arc::default(),
            dummies: Arc::default(),
        }
    }

    /// Runs `f` on the blocking pool once a slot is free; `None` if the pool is closed or `f` panicked.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Gauge) -> T + Send + 'static,
    ) -> Option<T> {
        let _slot = self.slots.acquire().await.ok()?;
        let gauge = self.gauge.clone();
        tokio::task::spawn_blocking(move || f(&gauge)).await.ok()
    }

    /// Whether `password` matches the bcrypt `hash`.
    pub async fn verify(&self, password: Vec<u8>, hash: String) -> bool {
        self.run(move |g| g.count(|| bcrypt::verify(&password, &hash).unwrap_or(false)))
            .await
            .unwrap_or(false)
    }

    /// Spends what verifying `password` against a real hash of `cost` would, and fails: for unknown users
    /// and unsupported hashes, so they cannot be told apart from a wrong password by timing. The dummy hash
    /// of each cost is computed once, on first use, inside the same limit.
    pub async fn verify_dummy(&self, password: Vec<u8>, cost: u32) {
        let cost = cost.clamp(4, 31);
        let cell = self
            .dummies
            .lock()
            .expect("dummy hash lock")
            .entry(cost)
            .or_default()
            .clone();
        self.run(move |g| {
            let hash = cell.get_or_init(|| {
                g.count(|| bcrypt::hash(rand::random::<[u8; 16]>(), cost).unwrap_or_default())
            });
            g.count(|| bcrypt::verify(&password, hash).unwrap_or(false))
        })
        .await;
    }

    /// The most bcrypt computations that ran at once since the pool was made.
    pub fn peak(&self) -> usize {
        self.gauge.peak.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn dummy_bcrypt_of_unknown_users_stays_inside_the_limit() {
        // 64 concurrent unknown users on a fresh pool: the dummy hash is computed lazily while they all
        // wait, and neither that nor their verifications may run more than the limit at once.
        let pool = Arc::new(BcryptPool::new(2));
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(
                    async move { pool.verify_dummy(format!("pw{i}").into_bytes(), 4).await },
                )
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(pool.peak() >= 1, "nothing ran");
        assert!(
            pool.peak() <= 2,
            "{} bcrypt computations at once, limit 2",
            pool.peak()
        );
        assert_eq!(
            pool.dummies.lock().unwrap().len(),
            1,
            "one dummy hash per cost"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn verifications_stay_inside_the_limit_and_answer_right() {
        let pool = Arc::new(BcryptPool::new(3));
        let hash = bcrypt::hash("right", 4).unwrap();
        let tasks: Vec<_> = (0..48)
            .map(|i| {
                let (pool, hash) = (pool.clone(), hash.clone());
                let pw = if i % 2 == 0 { "right" } else { "wrong" };
                tokio::spawn(async move { (i, pool.verify(pw.into(), hash).await) })
            })
            .collect();
        for t in tasks {
            let (i, ok) = t.await.unwrap();
            assert_eq!(ok, i % 2 == 0, "attempt {i}");
        }
        assert!(pool.peak() <= 3, "{} at once, limit 3", pool.peak());
    }
}
