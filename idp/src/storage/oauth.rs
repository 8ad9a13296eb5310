//! What idp as an OpenID Provider stores: grants, authorization codes and refresh tokens.
//! Codes and refresh tokens are kept only as SHA-256; using one marks it consumed rather than
//! deleting it, so a second use is recognised (and the caller revokes the grant).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::{oauth_codes, oauth_grants, oauth_refresh_tokens};
use super::{DbConnection, StorageResult};

/// The scopes a user allowed a third-party client.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = super::schema::oauth_consents)]
pub struct ConsentRow {
    pub user_id: String,
    pub client_id: String,
    pub scopes: String,
    pub granted_at: NaiveDateTime,
}

/// An access token revoked before its expiry, named by its `jti`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = super::schema::revoked_access_tokens)]
pub struct RevokedAccessTokenRow {
    pub jti: String,
    pub client_id: String,
    pub revoked_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = oauth_grants)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// Space-separated, as in OAuth.
    pub scopes: String,
    pub auth_time: Option<NaiveDateTime>,
    /// JSON array of strings.
    pub amr: String,
    pub acr: Option<String>,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = oauth_codes)]
pub struct CodeRow {
    pub code_hash: String,
    pub grant_id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub consumed_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = oauth_refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub grant_id: String,
    pub parent_hash: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub consumed_at: Option<NaiveDateTime>,
}

/// The result of using a single-use value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use<T> {
    Unknown,
    /// First use: the row as it was.
    First(T),
    /// Used before: the row, so the caller can revoke its grant.
    Again(T),
}

pub trait OAuthRepository {
    fn insert_grant(&mut self, row: &GrantRow) -> StorageResult<()>;
    fn find_grant(&mut self, id: &str) -> StorageResult<Option<GrantRow>>;
    /// Revokes a grant (idempotent): every code, refresh and access token of it stops working.
    fn revoke_grant(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<()>;
    /// Revokes every grant of a user (deprovisioning); returns how many were live.
    fn revoke_user_grants(&mut self, user: crate::domain::UserId, now: NaiveDateTime) -> StorageResult<usize>;
    /// Revokes the grants that came from one session (its logout or end).
    fn revoke_session_grants(&mut self, session: crate::domain::SessionId, now: NaiveDateTime) -> StorageResult<usize>;
    /// Revokes every live grant of a client (it was deleted).
    fn revoke_client_grants(&mut self, client_id: &str, now: NaiveDateTime) -> StorageResult<usize>;
    fn insert_code(&mut self, row: &CodeRow) -> StorageResult<()>;
    fn use_code(&mut self, code_hash: &str, now: NaiveDateTime) -> StorageResult<Use<CodeRow>>;
    fn insert_refresh_token(&mut self, row: &RefreshTokenRow) -> StorageResult<()>;
    fn find_refresh_token(&mut self, token_hash: &str) -> StorageResult<Option<RefreshTokenRow>>;
    fn use_refresh_token(&mut self, token_hash: &str, now: NaiveDateTime) -> StorageResult<Use<RefreshTokenRow>>;
    /// Removes codes and refresh tokens that expired before `cutoff`, then grants made before
    /// `cutoff` that nothing hangs off any more. Returns the rows removed.
    fn purge_oauth(&mut self, cutoff: NaiveDateTime) -> StorageResult<usize>;
    fn revoke_access_token(&mut self, row: &RevokedAccessTokenRow) -> StorageResult<()>;
    fn consent(&mut self, user_id: &str, client_id: &str) -> StorageResult<Option<ConsentRow>>;
    /// Records a consent, replacing the previous one for that client.
    fn set_consent(&mut self, row: &ConsentRow) -> StorageResult<()>;
    fn access_token_revoked(&mut self, jti: &str) -> StorageResult<bool>;
}

impl OAuthRepository for DbConnection {
    fn insert_grant(&mut self, row: &GrantRow) -> StorageResult<()> {
        diesel::insert_into(oauth_grants::table).values(row).execute(self)?;
        Ok(())
    }

    fn find_grant(&mut self, id: &str) -> StorageResult<Option<GrantRow>> {
        Ok(oauth_grants::table.find(id).select(GrantRow::as_select()).first(self).optional()?)
    }

    fn revoke_grant(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<()> {
        diesel::update(oauth_grants::table.find(id).filter(oauth_grants::revoked_at.is_null()))
            .set(oauth_grants::revoked_at.eq(now))
            .execute(self)?;
        Ok(())
    }

    fn revoke_user_grants(&mut self, user: crate::domain::UserId, now: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::update(
            oauth_grants::table
                .filter(oauth_grants::user_id.eq(user.to_string()))
                .filter(oauth_grants::revoked_at.is_null()),
        )
        .set(oauth_grants::revoked_at.eq(now))
        .execute(self)?)
    }

    fn revoke_client_grants(&mut self, client_id: &str, now: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::update(
            oauth_grants::table
                .filter(oauth_grants::client_id.eq(client_id))
                .filter(oauth_grants::revoked_at.is_null()),
        )
        .set(oauth_grants::revoked_at.eq(now))
        .execute(self)?)
    }

    fn revoke_session_grants(&mut self, session: crate::domain::SessionId, now: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::update(
            oauth_grants::table
                .filter(oauth_grants::session_id.eq(session.to_string()))
                .filter(oauth_grants::revoked_at.is_null()),
        )
        .set(oauth_grants::revoked_at.eq(now))
        .execute(self)?)
    }

    fn insert_code(&mut self, row: &CodeRow) -> StorageResult<()> {
        diesel::insert_into(oauth_codes::table).values(row).execute(self)?;
        Ok(())
    }

    fn use_code(&mut self, code_hash: &str, now: NaiveDateTime) -> StorageResult<Use<CodeRow>> {
        let Some(row) = oauth_codes::table.find(code_hash).select(CodeRow::as_select()).first(self).optional()? else {
            return Ok(Use::Unknown);
        };
        let n = diesel::update(oauth_codes::table.find(code_hash).filter(oauth_codes::consumed_at.is_null()))
            .set(oauth_codes::consumed_at.eq(now))
            .execute(self)?;
        Ok(if n == 1 { Use::First(row) } else { Use::Again(row) })
    }

    fn insert_refresh_token(&mut self, row: &RefreshTokenRow) -> StorageResult<()> {
        diesel::insert_into(oauth_refresh_tokens::table).values(row).execute(self)?;
        Ok(())
    }

    fn find_refresh_token(&mut self, token_hash: &str) -> StorageResult<Option<RefreshTokenRow>> {
        Ok(oauth_refresh_tokens::table.find(token_hash).select(RefreshTokenRow::as_select()).first(self).optional()?)
    }

    fn use_refresh_token(&mut self, token_hash: &str, now: NaiveDateTime) -> StorageResult<Use<RefreshTokenRow>> {
        let Some(row) = self.find_refresh_token(token_hash)? else { return Ok(Use::Unknown) };
        let n = diesel::update(
            oauth_refresh_tokens::table.find(token_hash).filter(oauth_refresh_tokens::consumed_at.is_null()),
        )
        .set(oauth_refresh_tokens::consumed_at.eq(now))
        .execute(self)?;
        Ok(if n == 1 { Use::First(row) } else { Use::Again(row) })
    }

    fn consent(&mut self, user_id: &str, client_id: &str) -> StorageResult<Option<ConsentRow>> {
        use super::schema::oauth_consents as c;
        Ok(c::table.find((user_id, client_id)).select(ConsentRow::as_select()).first(self).optional()?)
    }

    fn set_consent(&mut self, row: &ConsentRow) -> StorageResult<()> {
        use super::schema::oauth_consents as c;
        diesel::delete(c::table.find((&row.user_id, &row.client_id))).execute(self)?;
        diesel::insert_into(c::table).values(row).execute(self)?;
        Ok(())
    }

    fn revoke_access_token(&mut self, row: &RevokedAccessTokenRow) -> StorageResult<()> {
        use super::schema::revoked_access_tokens as r;
        let known = r::table.find(&row.jti).count().get_result::<i64>(self)? > 0;
        if !known {
            diesel::insert_into(r::table).values(row).execute(self)?;
        }
        Ok(())
    }

    fn access_token_revoked(&mut self, jti: &str) -> StorageResult<bool> {
        use super::schema::revoked_access_tokens as r;
        Ok(r::table.find(jti).count().get_result::<i64>(self)? > 0)
    }

    fn purge_oauth(&mut self, cutoff: NaiveDateTime) -> StorageResult<usize> {
        use diesel::dsl::{exists, not};
        let codes = diesel::delete(oauth_codes::table.filter(oauth_codes::expires_at.le(cutoff))).execute(self)?;
        let tokens = diesel::delete(oauth_refresh_tokens::table.filter(oauth_refresh_tokens::expires_at.le(cutoff)))
            .execute(self)?;
        let grants = diesel::delete(
            oauth_grants::table
                .filter(oauth_grants::created_at.le(cutoff))
                .filter(not(exists(oauth_codes::table.filter(oauth_codes::grant_id.eq(oauth_grants::id)))))
                .filter(not(exists(
                    oauth_refresh_tokens::table.filter(oauth_refresh_tokens::grant_id.eq(oauth_grants::id)),
                ))),
        )
        .execute(self)?;
        let revoked = diesel::delete(
            super::schema::revoked_access_tokens::table
                .filter(super::schema::revoked_access_tokens::expires_at.le(cutoff)),
        )
        .execute(self)?;
        Ok(codes + tokens + grants + revoked)
    }
}
