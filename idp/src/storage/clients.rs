//! Downstream OIDC clients registered through the API (`oauth_clients`). The registration is
//! kept as written (`oidc::clients` validates it again when loading); the secret only as a hash.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::oauth_clients;
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = oauth_clients)]
pub struct OAuthClientRow {
    /// The client_id.
    pub id: String,
    pub organisation_id: String,
    pub project_id: String,
    /// The registration (`ClientConfig`) as JSON, without a secret.
    pub settings: String,
    /// Hex SHA-256 of the generated secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub created_at: NaiveDateTime,
    /// The actor, as the audit log names it.
    pub created_by: String,
}

pub trait ClientRepository {
    fn insert_client(&mut self, row: &OAuthClientRow) -> StorageResult<()>;
    fn find_client(&mut self, id: &str) -> StorageResult<Option<OAuthClientRow>>;
    fn clients(&mut self) -> StorageResult<Vec<OAuthClientRow>>;
    fn clients_of_project(&mut self, project_id: &str) -> StorageResult<Vec<OAuthClientRow>>;
    /// Replaces the secret hash; false if there is no such client.
    fn set_client_secret_hash(&mut self, id: &str, secret_hash: &str) -> StorageResult<bool>;
    fn delete_client(&mut self, id: &str) -> StorageResult<Option<OAuthClientRow>>;
}

impl ClientRepository for DbConnection {
    fn insert_client(&mut self, row: &OAuthClientRow) -> StorageResult<()> {
        diesel::insert_into(oauth_clients::table).values(row).execute(self)?;
        Ok(())
    }

    fn find_client(&mut self, id: &str) -> StorageResult<Option<OAuthClientRow>> {
        Ok(oauth_clients::table.find(id).select(OAuthClientRow::as_select()).first(self).optional()?)
    }

    fn clients(&mut self) -> StorageResult<Vec<OAuthClientRow>> {
        Ok(oauth_clients::table.order(oauth_clients::id).select(OAuthClientRow::as_select()).load(self)?)
    }

    fn clients_of_project(&mut self, project_id: &str) -> StorageResult<Vec<OAuthClientRow>> {
        Ok(oauth_clients::table
            .filter(oauth_clients::project_id.eq(project_id))
            .order(oauth_clients::created_at)
            .select(OAuthClientRow::as_select())
            .load(self)?)
    }

    fn set_client_secret_hash(&mut self, id: &str, secret_hash: &str) -> StorageResult<bool> {
        Ok(diesel::update(oauth_clients::table.find(id))
            .set(oauth_clients::secret_hash.eq(Some(secret_hash)))
            .execute(self)?
            > 0)
    }

    fn delete_client(&mut self, id: &str) -> StorageResult<Option<OAuthClientRow>> {
        let Some(row) = self.find_client(id)? else { return Ok(None) };
        diesel::delete(oauth_clients::table.find(id)).execute(self)?;
        Ok(Some(row))
    }
}
