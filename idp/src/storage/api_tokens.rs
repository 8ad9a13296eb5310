//! API tokens: metadata in `api_tokens`, secrets (SHA-256 only) in `api_token_secrets`.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_token_policies, api_token_secrets, api_tokens};
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = api_tokens)]
pub struct ApiTokenRow {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub organisation_id: String,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub created_by: Option<String>,
    /// JSON array of permission names.
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub last_used_source: Option<String>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = api_token_secrets)]
pub struct ApiTokenSecretRow {
    pub secret_hash: String,
    pub token_id: String,
    pub created_at: NaiveDateTime,
    /// Set when the secret was rotated away: it works until then.
    pub expires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = api_token_policies)]
pub struct ApiTokenPolicyRow {
    pub organisation_id: String,
    pub max_lifetime_days: i32,
    pub updated_at: NaiveDateTime,
}

/// Bumped by every write that can end a token's life, so an in-process cache of lookups
/// (`tokens::TokenCache`) drops what it holds. Other instances rely on the cache's short TTL.
static REVOCATIONS: AtomicU64 = AtomicU64::new(0);

pub fn revocation_generation() -> u64 {
    REVOCATIONS.load(Ordering::Acquire)
}

fn revoked_something() {
    REVOCATIONS.fetch_add(1, Ordering::AcqRel);
}

pub trait ApiTokenRepository {
    fn insert_api_token(&mut self, token: &ApiTokenRow, secret: &ApiTokenSecretRow) -> StorageResult<()>;
    fn find_api_token(&mut self, id: &str) -> StorageResult<Option<ApiTokenRow>>;
    /// The token a secret hash belongs to, with that secret's row.
    fn find_api_token_by_secret(
        &mut self,
        secret_hash: &str,
    ) -> StorageResult<Option<(ApiTokenRow, ApiTokenSecretRow)>>;
    fn api_tokens_of_organisation(&mut self, organisation_id: &str) -> StorageResult<Vec<ApiTokenRow>>;
    fn api_tokens_of_user(&mut self, user_id: &str) -> StorageResult<Vec<ApiTokenRow>>;
    /// Adds a secret and ends every other live secret of the token at `old_until`.
    fn rotate_api_token(&mut self, id: &str, secret: &ApiTokenSecretRow, old_until: NaiveDateTime)
    -> StorageResult<()>;
    fn revoke_api_token(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<bool>;
    /// Revokes a user's personal tokens, in one project or everywhere; returns how many.
    fn revoke_user_tokens(
        &mut self,
        user_id: crate::domain::UserId,
        project: Option<crate::domain::ProjectId>,
        now: NaiveDateTime,
    ) -> StorageResult<usize>;
    fn touch_api_token(&mut self, id: &str, now: NaiveDateTime, source: Option<&str>) -> StorageResult<()>;
    fn api_token_policy(&mut self, organisation_id: &str) -> StorageResult<Option<ApiTokenPolicyRow>>;
    fn set_api_token_policy(&mut self, row: &ApiTokenPolicyRow) -> StorageResult<()>;
    /// Removes tokens dead since before `cutoff` and secrets that ended before it.
    fn purge_api_tokens(&mut self, cutoff: NaiveDateTime) -> StorageResult<usize>;
    /// Deletes every token of an organisation, with their secrets and the lifetime policy.
    fn delete_api_tokens_of_organisation(&mut self, organisation_id: &str) -> StorageResult<usize>;
    /// Deletes the tokens confined to one project, with their secrets.
    fn delete_api_tokens_of_project(&mut self, project_id: &str) -> StorageResult<usize>;
}

impl ApiTokenRepository for DbConnection {
    fn insert_api_token(&mut self, token: &ApiTokenRow, secret: &ApiTokenSecretRow) -> StorageResult<()> {
        diesel::insert_into(api_tokens::table).values(token).execute(self)?;
        diesel::insert_into(api_token_secrets::table).values(secret).execute(self)?;
        Ok(())
    }

    fn find_api_token(&mut self, id: &str) -> StorageResult<Option<ApiTokenRow>> {
        Ok(api_tokens::table.find(id).select(ApiTokenRow::as_select()).first(self).optional()?)
    }

    fn find_api_token_by_secret(
        &mut self,
        secret_hash: &str,
    ) -> StorageResult<Option<(ApiTokenRow, ApiTokenSecretRow)>> {
        Ok(api_token_secrets::table
            .inner_join(api_tokens::table)
            .filter(api_token_secrets::secret_hash.eq(secret_hash))
            .select((ApiTokenRow::as_select(), ApiTokenSecretRow::as_select()))
            .first(self)
            .optional()?)
    }

    fn api_tokens_of_organisation(&mut self, organisation_id: &str) -> StorageResult<Vec<ApiTokenRow>> {
        Ok(api_tokens::table
            .filter(api_tokens::organisation_id.eq(organisation_id))
            .order((api_tokens::created_at, api_tokens::id))
            .select(ApiTokenRow::as_select())
            .load(self)?)
    }

    fn api_tokens_of_user(&mut self, user_id: &str) -> StorageResult<Vec<ApiTokenRow>> {
        Ok(api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .order((api_tokens::created_at, api_tokens::id))
            .select(ApiTokenRow::as_select())
            .load(self)?)
    }

    fn rotate_api_token(
        &mut self,
        id: &str,
        secret: &ApiTokenSecretRow,
        old_until: NaiveDateTime,
    ) -> StorageResult<()> {
        let live = api_token_secrets::table
            .filter(api_token_secrets::token_id.eq(id))
            .filter(api_token_secrets::expires_at.is_null().or(api_token_secrets::expires_at.gt(old_until)));
        diesel::update(live).set(api_token_secrets::expires_at.eq(Some(old_until))).execute(self)?;
        diesel::insert_into(api_token_secrets::table).values(secret).execute(self)?;
        revoked_something();
        Ok(())
    }

    fn revoke_api_token(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<bool> {
        let n = diesel::update(api_tokens::table.find(id).filter(api_tokens::revoked_at.is_null()))
            .set(api_tokens::revoked_at.eq(Some(now)))
            .execute(self)?;
        revoked_something();
        Ok(n > 0)
    }

    fn revoke_user_tokens(
        &mut self,
        user_id: crate::domain::UserId,
        project: Option<crate::domain::ProjectId>,
        now: NaiveDateTime,
    ) -> StorageResult<usize> {
        let mut q = diesel::update(api_tokens::table)
            .filter(api_tokens::user_id.eq(user_id.to_string()))
            .filter(api_tokens::revoked_at.is_null())
            .into_boxed();
        if let Some(p) = project {
            q = q.filter(api_tokens::project_id.eq(p.to_string()));
        }
        let n = q.set(api_tokens::revoked_at.eq(Some(now))).execute(self)?;
        revoked_something();
        Ok(n)
    }

    fn touch_api_token(&mut self, id: &str, now: NaiveDateTime, source: Option<&str>) -> StorageResult<()> {
        diesel::update(api_tokens::table.find(id))
            .set((api_tokens::last_used_at.eq(Some(now)), api_tokens::last_used_source.eq(source)))
            .execute(self)?;
        Ok(())
    }

    fn api_token_policy(&mut self, organisation_id: &str) -> StorageResult<Option<ApiTokenPolicyRow>> {
        Ok(api_token_policies::table
            .find(organisation_id)
            .select(ApiTokenPolicyRow::as_select())
            .first(self)
            .optional()?)
    }

    fn set_api_token_policy(&mut self, row: &ApiTokenPolicyRow) -> StorageResult<()> {
        diesel::delete(api_token_policies::table.find(&row.organisation_id)).execute(self)?;
        diesel::insert_into(api_token_policies::table).values(row).execute(self)?;
        Ok(())
    }

    fn purge_api_tokens(&mut self, cutoff: NaiveDateTime) -> StorageResult<usize> {
        let secrets =
            diesel::delete(api_token_secrets::table.filter(api_token_secrets::expires_at.lt(cutoff))).execute(self)?;
        let tokens = diesel::delete(
            api_tokens::table.filter(api_tokens::expires_at.lt(cutoff).or(api_tokens::revoked_at.lt(cutoff))),
        )
        .execute(self)?;
        Ok(secrets + tokens)
    }

    fn delete_api_tokens_of_organisation(&mut self, organisation_id: &str) -> StorageResult<usize> {
        let ids = api_tokens::table.filter(api_tokens::organisation_id.eq(organisation_id)).select(api_tokens::id);
        diesel::delete(api_token_secrets::table.filter(api_token_secrets::token_id.eq_any(ids))).execute(self)?;
        diesel::delete(api_token_policies::table.find(organisation_id)).execute(self)?;
        revoked_something();
        Ok(diesel::delete(api_tokens::table.filter(api_tokens::organisation_id.eq(organisation_id))).execute(self)?)
    }

    fn delete_api_tokens_of_project(&mut self, project_id: &str) -> StorageResult<usize> {
        let ids = api_tokens::table.filter(api_tokens::project_id.eq(project_id)).select(api_tokens::id);
        diesel::delete(api_token_secrets::table.filter(api_token_secrets::token_id.eq_any(ids))).execute(self)?;
        revoked_something();
        Ok(diesel::delete(api_tokens::table.filter(api_tokens::project_id.eq(project_id))).execute(self)?)
    }
}
