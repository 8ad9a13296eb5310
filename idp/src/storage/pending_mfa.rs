//! Logins waiting for their second factor (see `auth::mfa_login`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::pending_mfa_logins;
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = pending_mfa_logins)]
pub struct PendingMfaLoginRow {
    pub id: String,
    /// SHA-256 of the browser's cookie value.
    pub token_hash: String,
    pub user_id: String,
    /// JSON array of the first factor's `amr` values.
    pub amr: String,
    pub acr: Option<String>,
    pub method: String,
    pub return_to: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub trait PendingMfaRepository {
    fn insert_pending_mfa_login(&mut self, row: &PendingMfaLoginRow) -> StorageResult<()>;
    fn find_pending_mfa_login(&mut self, token_hash: &str) -> StorageResult<Option<PendingMfaLoginRow>>;
    /// Deletes the row; `false` when it was gone already (used by a concurrent request).
    fn delete_pending_mfa_login(&mut self, id: &str) -> StorageResult<bool>;
    fn purge_pending_mfa_logins(&mut self, now: NaiveDateTime) -> StorageResult<usize>;
}

impl PendingMfaRepository for DbConnection {
    fn insert_pending_mfa_login(&mut self, row: &PendingMfaLoginRow) -> StorageResult<()> {
        diesel::insert_into(pending_mfa_logins::table).values(row).execute(self)?;
        Ok(())
    }

    fn find_pending_mfa_login(&mut self, token_hash: &str) -> StorageResult<Option<PendingMfaLoginRow>> {
        Ok(pending_mfa_logins::table
            .filter(pending_mfa_logins::token_hash.eq(token_hash))
            .select(PendingMfaLoginRow::as_select())
            .first(self)
            .optional()?)
    }

    fn delete_pending_mfa_login(&mut self, id: &str) -> StorageResult<bool> {
        Ok(diesel::delete(pending_mfa_logins::table.find(id)).execute(self)? == 1)
    }

    fn purge_pending_mfa_logins(&mut self, now: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::delete(pending_mfa_logins::table.filter(pending_mfa_logins::expires_at.le(now))).execute(self)?)
    }
}
