//! The verified-credential cache: a client that sends the same Basic header on every request pays bcrypt once.
//!
//! Entries are keyed by a keyed SHA-256 of (user, password, stored hash) under a per-process random key: no
//! password is kept, and a changed hash (password rotation) misses the cache at once.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bounded, expiring set of verified credentials.
pub struct CredentialCache {
    key: [u8; 32],
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl CredentialCache {
    /// A cache keeping at most `capacity` entries for `ttl` each (a zero ttl disables it).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        CredentialCache {
            key: rand::random(),
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn fingerprint(&self, user: &str, password: &[u8], hash: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        for part in [user.as_bytes(), password, hash.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    /// Whether this exact credential was verified against this exact hash recently.
    pub fn contains(&self, user: &str, password: &[u8], hash: &str) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let fp = self.fingerprint(user, password, hash);
        let entries = self.entries.lock().expect("credential cache lock");
        entries.get(&fp).is_some_and(|&exp| exp > Instant::now())
    }

    /// Records a successful verification.
    pub fn insert(&self, user: &str, password: &[u8], hash: &str) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let fp = self.fingerprint(user, password, hash);
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("credential cache lock");
        if entries.len() >= self.capacity {
            entries.retain(|_, exp| *exp > now);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than grow (they re-verify once).
                entries.clear();
            }
        }
        entries.insert(fp, now + self.ttl);
    }

    /// Forgets every entry (used when the credential set is replaced).
    pub fn clear(&self) {
        self.entries.lock().expect("credential cache lock").clear();
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.entries.lock().expect("credential cache lock").len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_hash_misses() {
        let c = CredentialCache::new(Duration::from_secs(60), 10);
        c.insert("u", b"p", "hash1");
        assert!(c.contains("u", b"p", "hash1"));
        assert!(!c.contains("u", b"p", "hash2"));
        assert!(!c.contains("u", b"q", "hash1"));
        assert!(!c.contains("v", b"p", "hash1"));
    }

    #[test]
    fn bounded() {
        let c = CredentialCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            c.insert(&format!("u{i}"), b"p", "h");
        }
        assert!(c.len() <= 3);
    }

    #[test]
    fn zero_ttl_disables() {
        let c = CredentialCache::new(Duration::ZERO, 10);
        c.insert("u", b"p", "h");
        assert!(!c.contains("u", b"p", "h"));
    }
}
