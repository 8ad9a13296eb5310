//! Rate limits for authentication endpoints, per client IP and per account. Counts live in the
//! database, so several instances behind a load balancer share them.

use std::net::IpAddr;

use crate::config::RateLimitConfig;
use crate::crypto::pseudonym::{Datum, Pseudonymiser};
use crate::storage::StorageResult;
use crate::storage::rate_limits::RateLimitRepository;

/// What a limit is counted against.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Ip(IpAddr),
    /// An account name as typed (e-mail, username); normalised before counting.
    Account(&'a str),
}

/// Over the limit: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
}

/// What an address is counted as: IPv4 as is (IPv4-mapped IPv6 unmapped), IPv6 by its /64, the
/// block a single subscriber usually holds, so rotating through it buys no extra attempts.
fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    pseudonymiser: Pseudonymiser,
    /// Networks that failed client authentication on this instance lately (network -> unix
    /// time it stops being suspect). Endpoints that apps call at high rates (token,
    /// introspection) count only these in the database; a well-behaved client never waits
    /// for a write.
    suspects: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, i64>>>,
}

/// Suspects kept at most; beyond it the oldest half is dropped.
const MAX_SUSPECTS: usize = 100_000;

impl RateLimiter {
    pub fn new(config: RateLimitConfig, pseudonymiser: Pseudonymiser) -> Self {
        Self { config, pseudonymiser, suspects: Default::default() }
    }

    /// Whether `ip` failed authentication within the last window (on this instance).
    pub fn is_suspect(&self, ip: IpAddr, now: i64) -> bool {
        let Ok(map) = self.suspects.lock() else { return true };
        if map.is_empty() {
            return false;
        }
        map.get(&network_of(ip)).is_some_and(|until| *until > now)
    }

    /// Remembers a failed authentication from `ip`.
    pub fn mark_suspect(&self, ip: IpAddr, now: i64) {
        let window = i64::try_from(self.config.window.as_secs()).unwrap_or(i64::MAX).max(1);
        if let Ok(mut map) = self.suspects.lock() {
            if map.len() >= MAX_SUSPECTS {
                map.retain(|_, until| *until > now);
            }
            map.insert(network_of(ip), now.saturating_add(window));
        }
    }

    /// Counts one attempt by `subject` on the endpoint family `scope` at `now` (unix seconds).
    pub fn hit(
        &self,
        conn: &mut impl RateLimitRepository,
        scope: &str,
        subject: Subject<'_>,
        now: i64,
    ) -> StorageResult<Result<(), Limited>> {
        let (bucket, limit) = match subject {
            // Bucket names are pseudonyms: the table holds no addresses or e-mails.
            Subject::Ip(ip) => (self.pseudonymiser.pseudonymise(Datum::IpAddress, &network_of(ip)), self.config.per_ip),
            Subject::Account(a) => (self.pseudonymiser.pseudonymise(Datum::Email, a), self.config.per_account),
        };
        let window = i64::try_from(self.config.window.as_secs()).unwrap_or(i64::MAX).max(1);
        let (hits, window_start) = conn.hit_rate_limit(&format!("{scope}:{bucket}"), now, window)?;
        if u32::try_from(hits).unwrap_or(u32::MAX) > limit {
            let retry = (window_start + window - now).max(1);
            Ok(Err(Limited { retry_after_secs: u64::try_from(retry).unwrap_or(1) }))
        } else {
            Ok(Ok(()))
        }
    }

    pub fn purge(&self, conn: &mut impl RateLimitRepository, now: i64) -> StorageResult<usize> {
        let window = i64::try_from(self.config.window.as_secs()).unwrap_or(i64::MAX);
        conn.purge_rate_limits(now.saturating_sub(window.saturating_mul(2)))
    }
}

#[cfg(test)]
mod tests {
    use super::network_of;

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_unmaps() {
        let a = network_of("2001:db8:1:2:aaaa::1".parse().unwrap());
        assert_eq!(a, network_of("2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap()));
        assert_ne!(a, network_of("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(network_of("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.1");
        assert_ne!(network_of("192.0.2.1".parse().unwrap()), network_of("192.0.2.2".parse().unwrap()));
    }
}
