use chrono::NaiveDateTime;
use serde::Serialize;

use super::{SessionId, UserId};

/// A server-side login session. The browser holds only a random token whose hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    /// The absolute end of the session, whatever its activity.
    pub expires_at: NaiveDateTime,
    /// Authentication methods references (RFC 8176), e.g. `fed`, `pwd`, `otp`, `hwk`.
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// Pseudonymised source address.
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

impl Session {
    /// Whether the session is still usable at `now` with the given idle timeout.
    pub fn is_live(&self, now: NaiveDateTime, idle: chrono::Duration) -> bool {
        now < self.expires_at && now < self.last_seen_at + idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration};

    fn at(secs: i64) -> NaiveDateTime {
        DateTime::from_timestamp(secs, 0).unwrap().naive_utc()
    }

    #[test]
    fn idle_and_absolute_timeouts() {
        let s = Session {
            id: SessionId::new(),
            user_id: UserId::new(),
            created_at: at(0),
            last_seen_at: at(1000),
            expires_at: at(5000),
            amr: vec!["fed".into()],
            acr: None,
            source: None,
            user_agent: None,
        };
        let idle = Duration::seconds(1800);
        assert!(s.is_live(at(1000), idle));
        assert!(s.is_live(at(2799), idle));
        assert!(!s.is_live(at(2800), idle), "idle timeout");
        let busy = Session { last_seen_at: at(4999), ..s };
        assert!(!busy.is_live(at(5000), idle), "absolute timeout");
    }
}
