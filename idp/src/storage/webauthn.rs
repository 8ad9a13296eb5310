//! WebAuthn credentials (passkeys and security keys) and the ceremonies in progress (see
//! `mfa::webauthn`). An accepted use is a conditional update on the stored counter, and a
//! ceremony is taken (deleted) before it is finished: whoever takes it first has it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{webauthn_ceremonies, webauthn_credentials};
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = webauthn_credentials)]
pub struct WebauthnCredentialRow {
    pub id: String,
    pub user_id: String,
    /// `passkey` or `security_key`.
    pub kind: String,
    pub name: String,
    /// The authenticator's credential id, base64url without padding.
    pub credential_id: String,
    /// webauthn-rs's serialised credential (public key, counter, flags).
    pub credential: String,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backed_up: bool,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = webauthn_ceremonies)]
pub struct WebauthnCeremonyRow {
    pub id: String,
    pub purpose: String,
    pub user_id: Option<String>,
    /// SHA-256 of what the ceremony is bound to (session, pending login, pre-session cookie).
    pub binding_hash: String,
    /// For a registration: the name the user gave the credential.
    pub name: Option<String>,
    /// webauthn-rs's serialised registration or authentication state.
    pub state: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

/// What an accepted assertion changes on its credential.
#[derive(Debug, Clone)]
pub struct WebauthnUse<'a> {
    pub id: &'a str,
    /// The counter read before the check: the update only happens if it is still stored.
    pub expected_count: i64,
    pub sign_count: i64,
    pub credential: &'a str,
    pub backed_up: bool,
    pub now: NaiveDateTime,
}

pub trait WebauthnRepository {
    /// Stores a new credential; `Conflict` when its credential id is registered already.
    fn insert_webauthn_credential(&mut self, row: &WebauthnCredentialRow) -> StorageResult<()>;
    fn find_webauthn_credential(&mut self, id: &str) -> StorageResult<Option<WebauthnCredentialRow>>;
    fn find_webauthn_credential_by_credential_id(
        &mut self,
        credential_id: &str,
    ) -> StorageResult<Option<WebauthnCredentialRow>>;
    /// All of a user's credentials, oldest first.
    fn webauthn_credentials_of(&mut self, user_id: &str) -> StorageResult<Vec<WebauthnCredentialRow>>;
    /// Records an accepted use, only if the stored counter is still `expected_count`. False
    /// when it is not (a concurrent use won).
    fn record_webauthn_use(&mut self, u: &WebauthnUse<'_>) -> StorageResult<bool>;
    fn delete_webauthn_credential(&mut self, id: &str) -> StorageResult<bool>;
    fn delete_webauthn_credentials_of(&mut self, user_id: &str) -> StorageResult<usize>;
    fn insert_webauthn_ceremony(&mut self, row: &WebauthnCeremonyRow) -> StorageResult<()>;
    /// Removes and returns the ceremony: it can be finished once, on any instance.
    fn take_webauthn_ceremony(&mut self, id: &str) -> StorageResult<Option<WebauthnCeremonyRow>>;
    fn delete_webauthn_ceremonies_of(&mut self, user_id: &str) -> StorageResult<usize>;
    /// Deletes the ceremonies bound to `binding_hash` (a new one replaces them).
    fn delete_webauthn_ceremonies_bound(&mut self, binding_hash: &str) -> StorageResult<usize>;
    fn purge_webauthn_ceremonies(&mut self, now: NaiveDateTime) -> StorageResult<usize>;
}

impl WebauthnRepository for DbConnection {
    fn insert_webauthn_credential(&mut self, row: &WebauthnCredentialRow) -> StorageResult<()> {
        diesel::insert_into(webauthn_credentials::table).values(row).execute(self)?;
        Ok(())
    }

    fn find_webauthn_credential(&mut self, id: &str) -> StorageResult<Option<WebauthnCredentialRow>> {
        Ok(webauthn_credentials::table.find(id).select(WebauthnCredentialRow::as_select()).first(self).optional()?)
    }

    fn find_webauthn_credential_by_credential_id(
        &mut self,
        credential_id: &str,
    ) -> StorageResult<Option<WebauthnCredentialRow>> {
        Ok(webauthn_credentials::table
            .filter(webauthn_credentials::credential_id.eq(credential_id))
            .select(WebauthnCredentialRow::as_select())
            .first(self)
            .optional()?)
    }

    fn webauthn_credentials_of(&mut self, user_id: &str) -> StorageResult<Vec<WebauthnCredentialRow>> {
        Ok(webauthn_credentials::table
            .filter(webauthn_credentials::user_id.eq(user_id))
            .order((webauthn_credentials::created_at, webauthn_credentials::id))
            .select(WebauthnCredentialRow::as_select())
            .load(self)?)
    }

    fn record_webauthn_use(&mut self, u: &WebauthnUse<'_>) -> StorageResult<bool> {
        let target =
            webauthn_credentials::table.find(u.id).filter(webauthn_credentials::sign_count.eq(u.expected_count));
        let n = diesel::update(target)
            .set((
                webauthn_credentials::sign_count.eq(u.sign_count),
                webauthn_credentials::credential.eq(u.credential),
                webauthn_credentials::backed_up.eq(u.backed_up),
                webauthn_credentials::last_used_at.eq(Some(u.now)),
            ))
            .execute(self)?;
        Ok(n == 1)
    }

    fn delete_webauthn_credential(&mut self, id: &str) -> StorageResult<bool> {
        Ok(diesel::delete(webauthn_credentials::table.find(id)).execute(self)? == 1)
    }

    fn delete_webauthn_credentials_of(&mut self, user_id: &str) -> StorageResult<usize> {
        Ok(diesel::delete(webauthn_credentials::table.filter(webauthn_credentials::user_id.eq(user_id)))
            .execute(self)?)
    }

    fn insert_webauthn_ceremony(&mut self, row: &WebauthnCeremonyRow) -> StorageResult<()> {
        diesel::insert_into(webauthn_ceremonies::table).values(row).execute(self)?;
        Ok(())
    }

    fn take_webauthn_ceremony(&mut self, id: &str) -> StorageResult<Option<WebauthnCeremonyRow>> {
        let Some(row) =
            webauthn_ceremonies::table.find(id).select(WebauthnCeremonyRow::as_select()).first(self).optional()?
        else {
            return Ok(None);
        };
        let taken = diesel::delete(webauthn_ceremonies::table.find(id)).execute(self)?;
        Ok((taken == 1).then_some(row))
    }

    fn delete_webauthn_ceremonies_of(&mut self, user_id: &str) -> StorageResult<usize> {
        Ok(diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::user_id.eq(user_id))).execute(self)?)
    }

    fn delete_webauthn_ceremonies_bound(&mut self, binding_hash: &str) -> StorageResult<usize> {
        Ok(diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::binding_hash.eq(binding_hash)))
            .execute(self)?)
    }

    fn purge_webauthn_ceremonies(&mut self, now: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.le(now))).execute(self)?)
    }
}
