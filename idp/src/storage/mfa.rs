//! Second factors: TOTP credentials (seed sealed in `secrets`) and recovery codes (SHA-256 only).
//!
//! The writes that accept a code are conditional updates whose affected-row count decides: two
//! instances racing on the same TOTP step or the same recovery code cannot both win.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{recovery_codes, secrets, totp_credentials};
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = totp_credentials)]
pub struct TotpCredentialRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The sealed seed, purpose `totp_seed`.
    pub secret_id: String,
    /// `None` while the enrolment is pending: it is then no factor at all.
    pub confirmed_at: Option<NaiveDateTime>,
    /// The last accepted time step (unix time / 30); codes for it or earlier steps are refused.
    pub last_used_step: Option<i64>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = recovery_codes)]
pub struct RecoveryCodeRow {
    pub code_hash: String,
    pub user_id: String,
    pub set_id: String,
    pub created_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

/// Counts over a user's current set of recovery codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryCodeCounts {
    pub total: i64,
    pub remaining: i64,
    /// Used after the `since` the counts were asked for.
    pub used_since: i64,
}

pub trait MfaRepository {
    fn insert_totp_credential(&mut self, row: &TotpCredentialRow) -> StorageResult<()>;
    fn find_totp_credential(&mut self, id: &str) -> StorageResult<Option<TotpCredentialRow>>;
    /// All of a user's TOTP credentials, pending ones included, oldest first.
    fn totp_credentials_of(&mut self, user_id: &str) -> StorageResult<Vec<TotpCredentialRow>>;
    fn confirmed_totp_credential(&mut self, user_id: &str) -> StorageResult<Option<TotpCredentialRow>>;
    /// Confirms a pending credential and records `step` as used. False if it was not pending.
    fn confirm_totp_credential(&mut self, id: &str, step: i64, now: NaiveDateTime) -> StorageResult<bool>;
    /// Records `step` as the last accepted one of a confirmed credential, only if it is later
    /// than the one stored. False when it is not (a replay, or a concurrent acceptance).
    fn accept_totp_step(&mut self, id: &str, step: i64, now: NaiveDateTime) -> StorageResult<bool>;
    /// Deletes a credential and its sealed seed; returns the row if there was one.
    fn delete_totp_credential(&mut self, id: &str) -> StorageResult<Option<TotpCredentialRow>>;
    /// Deletes pending credentials of `user_id` (with their seeds); returns how many.
    fn delete_pending_totp_of(&mut self, user_id: &str) -> StorageResult<usize>;
    /// Deletes pending credentials created before `cutoff` (with their seeds); returns how many.
    fn purge_pending_totp(&mut self, cutoff: NaiveDateTime) -> StorageResult<usize>;
    /// Replaces the user's recovery codes with `rows` (all of one set).
    fn replace_recovery_codes(&mut self, user_id: &str, rows: &[RecoveryCodeRow]) -> StorageResult<()>;
    /// Marks the user's unused code with this hash used; returns its row, or `None` when there
    /// is no such unused code (unknown, another user's, used already or concurrently).
    fn use_recovery_code(
        &mut self,
        user_id: &str,
        code_hash: &str,
        now: NaiveDateTime,
    ) -> StorageResult<Option<RecoveryCodeRow>>;
    fn recovery_code_counts(&mut self, user_id: &str, since: NaiveDateTime) -> StorageResult<RecoveryCodeCounts>;
    fn delete_recovery_codes_of(&mut self, user_id: &str) -> StorageResult<usize>;
}

fn delete_with_seeds(conn: &mut DbConnection, rows: Vec<TotpCredentialRow>) -> StorageResult<usize> {
    let mut n = 0;
    for row in rows {
        n += diesel::delete(totp_credentials::table.find(&row.id)).execute(conn)?;
        diesel::delete(secrets::table.find(&row.secret_id)).execute(conn)?;
    }
    Ok(n)
}

impl MfaRepository for DbConnection {
    fn insert_totp_credential(&mut self, row: &TotpCredentialRow) -> StorageResult<()> {
        diesel::insert_into(totp_credentials::table).values(row).execute(self)?;
        Ok(())
    }

    fn find_totp_credential(&mut self, id: &str) -> StorageResult<Option<TotpCredentialRow>> {
        Ok(totp_credentials::table.find(id).select(TotpCredentialRow::as_select()).first(self).optional()?)
    }

    fn totp_credentials_of(&mut self, user_id: &str) -> StorageResult<Vec<TotpCredentialRow>> {
        Ok(totp_credentials::table
            .filter(totp_credentials::user_id.eq(user_id))
            .order((totp_credentials::created_at, totp_credentials::id))
            .select(TotpCredentialRow::as_select())
            .load(self)?)
    }

    fn confirmed_totp_credential(&mut self, user_id: &str) -> StorageResult<Option<TotpCredentialRow>> {
        Ok(totp_credentials::table
            .filter(totp_credentials::user_id.eq(user_id))
            .filter(totp_credentials::confirmed_at.is_not_null())
            .order((totp_credentials::created_at, totp_credentials::id))
            .select(TotpCredentialRow::as_select())
            .first(self)
            .optional()?)
    }

    fn confirm_totp_credential(&mut self, id: &str, step: i64, now: NaiveDateTime) -> StorageResult<bool> {
        let n = diesel::update(totp_credentials::table.find(id).filter(totp_credentials::confirmed_at.is_null()))
            .set((
                totp_credentials::confirmed_at.eq(Some(now)),
                totp_credentials::last_used_step.eq(Some(step)),
                totp_credentials::last_used_at.eq(Some(now)),
            ))
            .execute(self)?;
        Ok(n == 1)
    }

    fn accept_totp_step(&mut self, id: &str, step: i64, now: NaiveDateTime) -> StorageResult<bool> {
        let target = totp_credentials::table
            .find(id)
            .filter(totp_credentials::confirmed_at.is_not_null())
            .filter(totp_credentials::last_used_step.is_null().or(totp_credentials::last_used_step.lt(step)));
        let n = diesel::update(target)
            .set((totp_credentials::last_used_step.eq(Some(step)), totp_credentials::last_used_at.eq(Some(now))))
            .execute(self)?;
        Ok(n == 1)
    }

    fn delete_totp_credential(&mut self, id: &str) -> StorageResult<Option<TotpCredentialRow>> {
        let Some(row) = self.find_totp_credential(id)? else { return Ok(None) };
        delete_with_seeds(self, vec![row.clone()])?;
        Ok(Some(row))
    }

    fn delete_pending_totp_of(&mut self, user_id: &str) -> StorageResult<usize> {
        let rows = totp_credentials::table
            .filter(totp_credentials::user_id.eq(user_id))
            .filter(totp_credentials::confirmed_at.is_null())
            .select(TotpCredentialRow::as_select())
            .load(self)?;
        delete_with_seeds(self, rows)
    }

    fn purge_pending_totp(&mut self, cutoff: NaiveDateTime) -> StorageResult<usize> {
        let rows = totp_credentials::table
            .filter(totp_credentials::confirmed_at.is_null())
            .filter(totp_credentials::created_at.lt(cutoff))
            .select(TotpCredentialRow::as_select())
            .load(self)?;
        delete_with_seeds(self, rows)
    }

    fn replace_recovery_codes(&mut self, user_id: &str, rows: &[RecoveryCodeRow]) -> StorageResult<()> {
        self.delete_recovery_codes_of(user_id)?;
        // One statement a row: batch inserts do not compile over the MultiConnection (see
        // `dump::load_table`), and a set is ten rows.
        for row in rows {
            diesel::insert_into(recovery_codes::table).values(row).execute(self)?;
        }
        Ok(())
    }

    fn use_recovery_code(
        &mut self,
        user_id: &str,
        code_hash: &str,
        now: NaiveDateTime,
    ) -> StorageResult<Option<RecoveryCodeRow>> {
        let target = recovery_codes::table
            .find(code_hash)
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null());
        if diesel::update(target).set(recovery_codes::used_at.eq(Some(now))).execute(self)? != 1 {
            return Ok(None);
        }
        Ok(recovery_codes::table.find(code_hash).select(RecoveryCodeRow::as_select()).first(self).optional()?)
    }

    fn recovery_code_counts(&mut self, user_id: &str, since: NaiveDateTime) -> StorageResult<RecoveryCodeCounts> {
        let of_user = || recovery_codes::table.filter(recovery_codes::user_id.eq(user_id));
        let total: i64 = of_user().count().get_result(self)?;
        let remaining: i64 = of_user().filter(recovery_codes::used_at.is_null()).count().get_result(self)?;
        let used_since: i64 = of_user().filter(recovery_codes::used_at.gt(since)).count().get_result(self)?;
        Ok(RecoveryCodeCounts { total, remaining, used_since })
    }

    fn delete_recovery_codes_of(&mut self, user_id: &str) -> StorageResult<usize> {
        Ok(diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(self)?)
    }
}
