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
}

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
        let fresh = e.generation == generation && e.fetched.elapsed() < self.ttl && e.principal.expires_at > now;
        if !fresh {
            return None;
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
            w.insert(secret_hash, Entry { principal, answer, fetched: now, generation, touched: now });
        }
    }
}
