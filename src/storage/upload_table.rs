//! The in-memory side of upload sessions: each session's hash state, in a bounded table keyed by repository and
//! session id. Losing a state (eviction, restart) costs a re-hash of the data, never correctness.

use super::digester::Digester;
use super::paths::UploadId;
use crate::names::Name;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Mutex as AsyncMutex;

/// How many upload sessions keep their hash state in memory by default.
pub const DEFAULT_TRACKED_UPLOADS: usize = 4096;

/// The hash of an upload's data file, as far as it has been hashed.
#[derive(Default)]
pub(crate) struct HashState {
    /// The hash of the first `hashed` bytes, `None` when lost.
    pub(crate) digester: Option<Digester>,
    /// How many bytes the digester has seen.
    pub(crate) hashed: u64,
}

struct Entry {
    state: Arc<AsyncMutex<HashState>>,
    used: u64,
}

#[derive(Default)]
struct Table {
    map: HashMap<(Name, UploadId), Entry>,
    tick: u64,
}

/// Per-session hash states, bounded: the least recently used idle state is dropped when the table is full.
pub(crate) struct UploadTable {
    inner: Mutex<Table>,
    cap: usize,
}

impl UploadTable {
    /// An empty table holding at most `cap` idle states.
    pub(crate) fn new(cap: usize) -> UploadTable {
        UploadTable {
            inner: Mutex::new(Table::default()),
            cap: cap.max(1),
        }
    }

    /// The state of one session (created empty when absent), marked as just used.
    pub(crate) fn get(&self, repo: &Name, id: &UploadId) -> Arc<AsyncMutex<HashState>> {
        let mut t = self.inner.lock().expect("upload table lock");
        t.tick += 1;
        let tick = t.tick;
        let key = (repo.clone(), id.clone());
        if let Some(e) = t.map.get_mut(&key) {
            e.used = tick;
            return e.state.clone();
        }
        if t.map.len() >= self.cap {
            let victim = t
                .map
                .iter()
                .filter(|(_, e)| Arc::strong_count(&e.state) == 1)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                t.map.remove(&k);
            }
        }
        let state = Arc::new(AsyncMutex::new(HashState::default()));
        t.map.insert(
            key,
            Entry {
                state: state.clone(),
                used: tick,
            },
        );
        state
    }

    /// Forgets one session's state.
    pub(crate) fn remove(&self, repo: &Name, id: &UploadId) {
        self.inner
            .lock()
            .expect("upload table lock")
            .map
            .remove(&(repo.clone(), id.clone()));
    }

    /// How many states are held.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().expect("upload table lock").map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_evicts_idle_least_recently_used() {
        let t = UploadTable::new(2);
        let r = Name::parse("a").unwrap();
        let ids: Vec<_> = (0..3).map(|_| UploadId::new_random()).collect();
        let held = t.get(&r, &ids[0]);
        t.get(&r, &ids[1]);
        t.get(&r, &ids[2]); // evicts ids[1]: ids[0] is in use
        assert_eq!(t.len(), 2);
        assert!(Arc::ptr_eq(&held, &t.get(&r, &ids[0])));
    }
}
