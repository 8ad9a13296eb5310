//! Time is a parameter: production reads the system clock, tests hold a fixed one.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, NaiveDateTime, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// `now()` as stored in the database: UTC without offset, whole microseconds.
    fn now_naive(&self) -> NaiveDateTime {
        let n = self.now().naive_utc();
        DateTime::from_timestamp_micros(n.and_utc().timestamp_micros()).map(|d| d.naive_utc()).unwrap_or(n)
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    pub fn at_unix(secs: i64) -> Self {
        Self(Arc::new(AtomicI64::new(secs)))
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0.load(Ordering::SeqCst), 0).unwrap_or_default()
    }
}

pub type SharedClock = Arc<dyn Clock>;
