//! Server-side login sessions for the web UI.
//!
//! The browser holds only a random session id in an HttpOnly, SameSite=Strict cookie (Secure over TLS); the
//! server keeps, per id, who logged in, a fingerprint of their htpasswd hash, the session's CSRF token and its
//! expiry. Ids are kept only as SHA-256 digests, so the table cannot be replayed from memory dumps or logs. A
//! session resolves only while the user's htpasswd line is the one they logged in with: removing the user or
//! changing their password ends it at the next request. The table is bounded, and so is each user's share of
//! it ([`MAX_PER_USER`]); a full table refuses new logins instead of ending other users' sessions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie's name.
pub const COOKIE: &str = "gatehouse_session";

/// The most live sessions one user holds; a further login ends that user's oldest.
pub const MAX_PER_USER: usize = 8;

/// The request header that carries the CSRF token on state-changing calls made with the cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A freshly created session: the id for the cookie and the CSRF token for the page.
#[derive(Debug, Clone)]
pub struct Created {
    /// The session id (goes only into the cookie).
    pub id: String,
    /// The CSRF token (the page sends it back in [`CSRF_HEADER`]).
    pub csrf: String,
}

/// A live session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// The user who logged in.
    pub user: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Active {
    /// Whether `presented` (the request's [`CSRF_HEADER`]) is this session's token, compared in constant time.
    pub fn csrf_matches(&self, presented: Option<&HeaderValue>) -> bool {
        presented.is_some_and(|v| constant_time_eq(v.as_bytes(), self.csrf.as_bytes()))
    }
}

struct Entry {
    user: String,
    fingerprint: [u8; 32],
    csrf: String,
    expires: Instant,
}

/// The session table.
pub struct Sessions {
    ttl: Duration,
    max: usize,
    table: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Sessions {
    /// An empty table whose sessions last `ttl`, holding at most `max`.
    pub fn new(ttl: Duration, max: usize) -> Sessions {
        Sessions {
            ttl,
            max: max.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts (the cookie's Max-Age).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How many sessions are held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.table.lock().expect("session lock").len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a session for `user`, whose htpasswd hash is `stored_hash` (empty when auth is off); `None`
    /// when the table is full of other users' live sessions.
    pub fn create(&self, user: &str, stored_hash: &str) -> Option<Created> {
        self.create_at(user, stored_hash, Instant::now())
    }

    /// Room is made only at the expense of expired sessions and of `user`'s own: a user past
    /// [`MAX_PER_USER`] loses their own oldest session, and a full table refuses the login rather than
    /// end someone else's (one account logging in in a loop must not log everybody out).
    fn create_at(&self, user: &str, stored_hash: &str, now: Instant) -> Option<Created> {
        let mut table = self.table.lock().expect("session lock");
        let own_oldest = |table: &HashMap<[u8; 32], Entry>| {
            let own = table.iter().filter(|(_, e)| e.user == user);
            (own.clone().count() >= MAX_PER_USER)
                .then(|| own.min_by_key(|(_, e)| e.expires).map(|(k, _)| *k))
                .flatten()
        };
        if let Some(k) = own_oldest(&table) {
            table.remove(&k);
        }
        if table.len() >= self.max {
            table.retain(|_, e| e.expires > now);
        }
        if table.len() >= self.max {
            return None;
        }
        let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let csrf = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        table.insert(
            key(&id),
            Entry {
                user: user.to_string(),
                fingerprint: fingerprint(stored_hash),
                csrf: csrf.clone(),
                expires: now + self.ttl,
            },
        );
        Some(Created { id, csrf })
    }

    /// The live session for `id`; `current_hash` says what htpasswd holds for a user now (None: not there).
    /// An expired session, or one whose user is gone or has another hash now, is ended and not returned.
    pub fn resolve(
        &self,
        id: &str,
        current_hash: impl Fn(&str) -> Option<String>,
    ) -> Option<Active> {
        self.resolve_at(id, current_hash, Instant::now())
    }

    fn resolve_at(
        &self,
        id: &str,
        current_hash: impl Fn(&str) -> Option<String>,
        now: Instant,
    ) -> Option<Active> {
        let k = key(id);
        let mut table = self.table.lock().expect("session lock");
        let e = table.get(&k)?;
        let still = e.expires > now
            && current_hash(&e.user)
                .is_some_and(|h| constant_time_eq(&fingerprint(&h), &e.fingerprint));
        if !still {
            table.remove(&k);
            return None;
        }
        Some(Active {
            user: e.user.clone(),
            csrf: e.csrf.clone(),
        })
    }

    /// Ends the session `id` (logout); whether there was one.
    pub fn end(&self, id: &str) -> bool {
        self.table
            .lock()
            .expect("session lock")
            .remove(&key(id))
            .is_some()
    }

    /// Drops expired sessions; how many went.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut table = self.table.lock().expect("session lock");
        let before = table.len();
        table.retain(|_, e| e.expires > now);
        before - table.len()
    }
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn fingerprint(stored_hash: &str) -> [u8; 32] {
    Sha256::digest(stored_hash.as_bytes()).into()
}

/// Byte equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session id in the request's `Cookie` headers, if exactly one is there and well-formed. Two of them
/// (a sibling origin can plant a second cookie of the same name, with another Path or Domain) name none:
/// which one counts must not be the planter's choice.
pub fn cookie_id(headers: &HeaderMap) -> Option<&str> {
    let mut found = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim_matches('"'));
    let first = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(first).filter(|v| v.len() == 43 && v.bytes().all(is_b64url))
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The `Set-Cookie` value that starts a session (`Secure` when the client came over TLS).
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!(
        "{COOKIE}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        ttl.as_secs()
    );
    HeaderValue::from_str(&v).expect("a base64url id is a header value")
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a static header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(user: &str) -> Option<String> {
        (user == "alice").then(|| "$2y$05$alice".to_string())
    }

    #[test]
    fn a_session_resolves_to_its_user_and_token() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let c = s.create("alice", "$2y$05$alice").unwrap();
        let live = s.resolve(&c.id, hashes).expect("live");
        assert_eq!(live.user, "alice");
        assert_eq!(live.csrf, c.csrf);
        assert_ne!(c.id, c.csrf);
        assert_eq!(c.id.len(), 43);
    }

    #[test]
    fn session_ends_when_the_user_is_removed_or_rehashed() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let c = s.create("alice", "$2y$05$alice").unwrap();
        assert!(s.resolve(&c.id, |_| None).is_none(), "user removed");
        assert!(
            s.resolve(&c.id, hashes).is_none(),
            "a removed session stays ended"
        );
        let c = s.create("alice", "$2y$05$alice").unwrap();
        assert!(
            s.resolve(&c.id, |_| Some("$2y$05$other".into())).is_none(),
            "password changed"
        );
        assert!(s.is_empty());
    }

    #[test]
    fn session_expires() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let c = s.create_at("alice", "$2y$05$alice", t0).unwrap();
        assert!(s
            .resolve_at(&c.id, hashes, t0 + Duration::from_secs(59))
            .is_some());
        assert!(s
            .resolve_at(&c.id, hashes, t0 + Duration::from_secs(60))
            .is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn logout_ends_only_that_session() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let a = s.create("alice", "$2y$05$alice").unwrap();
        let b = s.create("alice", "$2y$05$alice").unwrap();
        assert!(s.end(&a.id));
        assert!(!s.end(&a.id));
        assert!(s.resolve(&a.id, hashes).is_none());
        assert!(s.resolve(&b.id, hashes).is_some());
    }

    #[test]
    fn unknown_and_hostile_ids_resolve_to_nothing() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let c = s.create("alice", "$2y$05$alice").unwrap();
        for id in ["", "x", &c.csrf, &c.id[..42], &format!("{}A", c.id), "\0"] {
            assert!(s.resolve(id, hashes).is_none(), "{id:?}");
        }
    }

    #[test]
    fn a_full_table_refuses_a_login_instead_of_ending_another_users_session() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let alice = s.create_at("alice", "$2y$05$alice", t0).unwrap();
        s.create_at("bob", "$2y$05$bob", t0).unwrap();
        assert!(s.create_at("mallory", "$2y$05$m", t0).is_none());
        let at = t0 + Duration::from_secs(1);
        assert!(s.resolve_at(&alice.id, hashes, at).is_some());
        assert_eq!(s.len(), 2);
        // Expired sessions do make room.
        let later = t0 + Duration::from_secs(61);
        assert!(s.create_at("mallory", "$2y$05$m", later).is_some());
    }

    /// The attack this pins: one low-privilege account logging in 10,001 times (cached credentials, so
    /// quickly) evicted every other user's session from the full table.
    #[test]
    fn a_user_logging_in_in_a_loop_ends_only_their_own_sessions() {
        let s = Sessions::new(Duration::from_secs(60), 20);
        let t0 = Instant::now();
        let alice = s.create_at("alice", "$2y$05$alice", t0).unwrap();
        let mut mallory = Vec::new();
        for i in 0..10_001u64 {
            let c = s.create_at("mallory", "$2y$05$m", t0 + Duration::from_millis(i));
            mallory.push(c.expect("mallory's own oldest makes room"));
        }
        let at = t0 + Duration::from_secs(11);
        assert!(s.resolve_at(&alice.id, hashes, at).is_some());
        assert_eq!(s.len(), 1 + MAX_PER_USER);
        let m = |_: &str| Some("$2y$05$m".to_string());
        let live = mallory
            .iter()
            .filter(|c| s.resolve_at(&c.id, m, at).is_some())
            .count();
        assert_eq!(live, MAX_PER_USER);
        assert!(
            s.resolve_at(&mallory.last().unwrap().id, m, at).is_some(),
            "the newest stays"
        );
    }

    #[test]
    fn csrf_token_must_match_exactly() {
        let s = Sessions::new(Duration::from_secs(60), 10);
        let c = s.create("alice", "$2y$05$alice").unwrap();
        let live = s.resolve(&c.id, hashes).unwrap();
        let other = s.create("alice", "$2y$05$alice").unwrap();
        let hv = |v: &str| HeaderValue::from_str(v).unwrap();
        assert!(live.csrf_matches(Some(&hv(&c.csrf))));
        for bad in [
            "",
            &c.csrf[1..],
            &format!("{} ", c.csrf),
            &other.csrf,
            &c.id,
        ] {
            assert!(!live.csrf_matches(Some(&hv(bad))), "{bad:?}");
        }
        assert!(!live.csrf_matches(None));
    }

    #[test]
    fn cookie_ids() {
        let id = "A".repeat(43);
        let plain = format!("gatehouse_session={id}");
        let among = format!("a=b; gatehouse_session={id}; c=d");
        let quoted = format!("gatehouse_session=\"{id}\"");
        let longer = format!("xgatehouse_session={id}");
        let bad = format!("gatehouse_session={}!", &id[..42]);
        let tossed = format!("gatehouse_session={}; {plain}", "B".repeat(43));
        let table: Vec<(Vec<&str>, Option<&str>)> = vec![
            (vec![], None),
            (vec!["gatehouse_session=AAAA"], None),
            (vec![&plain], Some(&id)),
            (vec![&among], Some(&id)),
            (vec!["a=b", &quoted], Some(&id)),
            (vec![&longer], None),
            (vec![&bad], None),
            (vec!["gatehouse_session"], None),
            // Cookie tossing: a planted second cookie of the same name makes neither count.
            (vec![&tossed], None),
            (vec![&plain, &plain], None),
        ];
        for (cookies, want) in table {
            let mut h = HeaderMap::new();
            for c in &cookies {
                h.append(http::header::COOKIE, HeaderValue::from_str(c).unwrap());
            }
            assert_eq!(cookie_id(&h), want, "{cookies:?}");
        }
    }

    #[test]
    fn cookies_are_httponly_strict_and_secure_over_tls() {
        let v = set_cookie("abc", Duration::from_secs(5), true);
        let v = v.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=5",
            "Path=/",
        ] {
            assert!(v.contains(part), "{v}");
        }
        assert!(!set_cookie("abc", Duration::from_secs(5), false)
            .to_str()
            .unwrap()
            .contains("Secure"));
        assert!(clear_cookie(false).to_str().unwrap().contains("Max-Age=0"));
    }
}
