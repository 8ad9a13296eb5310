//! An in-process cache of token lookups, keyed by the secret's hash. Entries are dropped when
//! this process revokes anything (`storage::api_tokens::revocation_generation`) and after a
//! short TTL, which bounds how long another instance's revocation can go unseen.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::ApiPrincipal;
use crate::storage::api_tokens::revocation_generation;

/// Lookups kept at most; a full cache is emptied rather than managed (tokens are few).
const MAX_ENTRIES: usize = 50_000;
/// How often a token's last use is written back.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    principal: Arc<ApiPrincipal>,
    /// The introspection answer, rendered once.
    answer: bytes::Bytes,
    fetched: Instant,
    generation: u64,
    touched: Instant,
    /// Set when one caller went to storage for a stale entry; others keep the old answer meanwhile.
    refreshing: std::sync::atomic::AtomicBool,
}

/// How long past its TTL an entry may still answer while one caller refreshes it: the bound on
/// a lookup's time, after which every caller goes to storage.
const REFRESH_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct TokenCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, Entry>>,
}

/// A cache hit, and whether the caller should record the token's last use now.
#[derive(Debug)]
pub struct Hit {
    pub principal: Arc<ApiPrincipal>,
    pub answer: bytes::Bytes,
    pub touch: bool,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: RwLock::new(HashMap::new()) }
    }

    pub fn get(&self, secret_hash: &str, now: NaiveDateTime) -> Option<Hit> {
        let generation = revocation_generation();
        let guard = self.entries.read().ok()?;
        let e = guard.get(secret_hash)?;
        if e.generation != generation || e.principal.expires_at <= now {
            return None;
        }
        let age = e.fetched.elapsed();
        if age >= self.ttl {
            // One caller refreshes; the others answer from the entry until it is back, so
            // a busy token does not send every concurrent request to the database at once.
            let first = !e.refreshing.swap(true, std::sync::atomic::Ordering::AcqRel);
            if first || age >= self.ttl + REFRESH_GRACE {
                return None;
            }
        }
        let touch = e.touched.elapsed() >= TOUCH_EVERY;
        let (principal, answer) = (e.principal.clone(), e.answer.clone());
        drop(guard);
        if touch {
            if let Ok(mut w) = self.entries.write() {
                if let Some(e) = w.get_mut(secret_hash) {
                    e.touched = Instant::now();
                }
            }
        }
        Some(Hit { principal, answer, touch })
    }

    /// Forgets a token whose lookup failed (revoked, expired, gone).
    pub fn forget(&self, secret_hash: &str) {
        if let Ok(mut w) = self.entries.write() {
            w.remove(secret_hash);
        }
    }

    /// Remembers a lookup made at `generation` (read before the lookup, so a revocation
    /// that raced with it leaves the entry stale).
    pub fn put(&self, secret_hash: String, principal: Arc<ApiPrincipal>, answer: bytes::Bytes, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut w) = self.entries.write() {
            if w.len() >= MAX_ENTRIES {
                w.clear();
            }
            let now = Instant::now();
            let refreshing = std::sync::atomic::AtomicBool::new(false);
            w.insert(secret_hash, Entry { principal, answer, fetched: now, generation, touched: now, refreshing });
        }
    }
}
