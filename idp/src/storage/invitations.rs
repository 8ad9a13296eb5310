//! Invitations to join an organisation (`invitations`): the token kept only as SHA-256, single
//! use, expiring, revocable.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::invitations;
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = invitations)]
pub struct InvitationRow {
    pub id: String,
    pub organisation_id: String,
    /// As the administrator typed it, trimmed; compared case-insensitively.
    pub email: String,
    pub builtin_role: Option<String>,
    pub custom_role_id: Option<String>,
    /// SHA-256 (hex) of the token in the accept URL.
    pub token_hash: String,
    /// The actor, as the audit log names it.
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub accepted_at: Option<NaiveDateTime>,
    pub accepted_by: Option<String>,
}

pub trait InvitationRepository {
    fn insert_invitation(&mut self, row: &InvitationRow) -> StorageResult<()>;
    fn invitations_of_organisation(&mut self, organisation_id: &str) -> StorageResult<Vec<InvitationRow>>;
    fn find_invitation(&mut self, id: &str) -> StorageResult<Option<InvitationRow>>;
    fn find_invitation_by_hash(&mut self, token_hash: &str) -> StorageResult<Option<InvitationRow>>;
    /// Marks it revoked unless it was revoked or used already; whether it was.
    fn revoke_invitation(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<bool>;
    /// Marks it used by `user`, only if still open (not revoked, not used, not expired): whether
    /// this call was the one that used it.
    fn accept_invitation(&mut self, id: &str, user: &str, now: NaiveDateTime) -> StorageResult<bool>;
    /// Whether an invitation for `email` (case-insensitively) is open: not used, revoked or expired.
    fn open_invitation_for(&mut self, email: &str, now: NaiveDateTime) -> StorageResult<bool>;
}

impl InvitationRepository for DbConnection {
    fn insert_invitation(&mut self, row: &InvitationRow) -> StorageResult<()> {
        diesel::insert_into(invitations::table).values(row).execute(self)?;
        Ok(())
    }

    fn invitations_of_organisation(&mut self, organisation_id: &str) -> StorageResult<Vec<InvitationRow>> {
        Ok(invitations::table
            .filter(invitations::organisation_id.eq(organisation_id))
            .order((invitations::created_at.desc(), invitations::id))
            .select(InvitationRow::as_select())
            .load(self)?)
    }

    fn find_invitation(&mut self, id: &str) -> StorageResult<Option<InvitationRow>> {
        Ok(invitations::table.find(id).select(InvitationRow::as_select()).first(self).optional()?)
    }

    fn find_invitation_by_hash(&mut self, token_hash: &str) -> StorageResult<Option<InvitationRow>> {
        Ok(invitations::table
            .filter(invitations::token_hash.eq(token_hash))
            .select(InvitationRow::as_select())
            .first(self)
            .optional()?)
    }

    fn revoke_invitation(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<bool> {
        let n = diesel::update(
            invitations::table
                .find(id)
                .filter(invitations::revoked_at.is_null())
                .filter(invitations::accepted_at.is_null()),
        )
        .set(invitations::revoked_at.eq(Some(now)))
        .execute(self)?;
        Ok(n > 0)
    }

    fn accept_invitation(&mut self, id: &str, user: &str, now: NaiveDateTime) -> StorageResult<bool> {
        let n = diesel::update(
            invitations::table
                .find(id)
                .filter(invitations::revoked_at.is_null())
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::expires_at.gt(now)),
        )
        .set((invitations::accepted_at.eq(Some(now)), invitations::accepted_by.eq(Some(user))))
        .execute(self)?;
        Ok(n > 0)
    }

    fn open_invitation_for(&mut self, email: &str, now: NaiveDateTime) -> StorageResult<bool> {
        let open: Vec<String> = invitations::table
            .filter(invitations::revoked_at.is_null())
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::expires_at.gt(now))
            .select(invitations::email)
            .load(self)?;
        Ok(open.iter().any(|e| e.eq_ignore_ascii_case(email.trim())))
    }
}
