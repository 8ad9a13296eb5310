use diesel::prelude::*;

use super::schema::rate_limits;
use super::{DbConnection, StorageResult, insert_unless_exists};

pub trait RateLimitRepository {
    /// Counts one hit on `bucket` in the fixed window of `window_secs` that contains `now`, and
    /// returns the hits in that window so far (this one included). Call inside a write
    /// transaction: the row lock makes concurrent instances count correctly.
    fn hit_rate_limit(&mut self, bucket: &str, now: i64, window_secs: i64) -> StorageResult<(i32, i64)>;
    fn purge_rate_limits(&mut self, older_than: i64) -> StorageResult<usize>;
}

impl RateLimitRepository for DbConnection {
    fn hit_rate_limit(&mut self, bucket: &str, now: i64, window_secs: i64) -> StorageResult<(i32, i64)> {
        let window_start = now - now.rem_euclid(window_secs.max(1));
        diesel::update(rate_limits::table.find(bucket).filter(rate_limits::window_start.ne(window_start)))
            .set((rate_limits::window_start.eq(window_start), rate_limits::hits.eq(0)))
            .execute(self)?;
        let increment = |c: &mut DbConnection| {
            diesel::update(rate_limits::table.find(bucket)).set(rate_limits::hits.eq(rate_limits::hits + 1)).execute(c)
        };
        if increment(self)? == 0 {
            let inserted = insert_unless_exists(self, |c| {
                diesel::insert_into(rate_limits::table)
                    .values((
                        rate_limits::bucket.eq(bucket),
                        rate_limits::window_start.eq(window_start),
                        rate_limits::hits.eq(1),
                    ))
                    .execute(c)
            })?;
            if !inserted {
                // Another instance created the row first; count on it.
                increment(self)?;
            }
        }
        let hits = rate_limits::table.find(bucket).select(rate_limits::hits).first(self)?;
        Ok((hits, window_start))
    }

    fn purge_rate_limits(&mut self, older_than: i64) -> StorageResult<usize> {
        Ok(diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(older_than))).execute(self)?)
    }
}
