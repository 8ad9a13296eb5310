use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::SigningKeyRow;
use super::schema::signing_keys;
use super::{DbConnection, StorageError, StorageResult, parse_id};
use crate::domain::SecretId;

#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: String,
    pub public_jwk: serde_json::Value,
    pub secret_id: SecretId,
    pub created_at: NaiveDateTime,
    /// Published in JWKS from creation, used for signing only from here on.
    pub signs_from: NaiveDateTime,
    pub retires_at: Option<NaiveDateTime>,
}

pub trait SigningKeyRepository {
    fn insert_signing_key(&mut self, key: &StoredSigningKey) -> StorageResult<()>;
    fn signing_keys(&mut self) -> StorageResult<Vec<StoredSigningKey>>;
    /// Sets a key's retirement if it has none yet, or moves an existing one earlier; false if
    /// neither (another rotation got there first).
    fn retire_signing_key(&mut self, kid: &str, retires_at: NaiveDateTime) -> StorageResult<bool>;
    /// Removes keys retired before `cutoff`; returns their sealed secrets for the caller to delete.
    fn purge_signing_keys(&mut self, cutoff: NaiveDateTime) -> StorageResult<Vec<SecretId>>;
}

impl SigningKeyRepository for DbConnection {
    fn insert_signing_key(&mut self, key: &StoredSigningKey) -> StorageResult<()> {
        let row = SigningKeyRow {
            id: key.kid.clone(),
            algorithm: key.algorithm.clone(),
            public_jwk: key.public_jwk.to_string(),
            secret_id: key.secret_id.to_string(),
            created_at: key.created_at,
            signs_from: key.signs_from,
            retires_at: key.retires_at,
        };
        diesel::insert_into(signing_keys::table).values(&row).execute(self)?;
        Ok(())
    }

    fn retire_signing_key(&mut self, kid: &str, retires_at: NaiveDateTime) -> StorageResult<bool> {
        let n = diesel::update(signing_keys::table.find(kid))
            .filter(signing_keys::retires_at.is_null().or(signing_keys::retires_at.gt(retires_at)))
            .set(signing_keys::retires_at.eq(Some(retires_at)))
            .execute(self)?;
        Ok(n == 1)
    }

    fn purge_signing_keys(&mut self, cutoff: NaiveDateTime) -> StorageResult<Vec<SecretId>> {
        let old = signing_keys::table.filter(signing_keys::retires_at.lt(cutoff));
        let gone: Vec<String> = old.select(signing_keys::secret_id).load(self)?;
        diesel::delete(old).execute(self)?;
        gone.iter().map(|s| parse_id(s)).collect()
    }

    fn signing_keys(&mut self) -> StorageResult<Vec<StoredSigningKey>> {
        signing_keys::table
            .order(signing_keys::created_at)
            .select(SigningKeyRow::as_select())
            .load(self)?
            .into_iter()
            .map(|r| {
                Ok(StoredSigningKey {
                    public_jwk: serde_json::from_str(&r.public_jwk)
                        .map_err(|e| StorageError::Corrupt(e.to_string()))?,
                    secret_id: parse_id(&r.secret_id)?,
                    kid: r.id,
                    algorithm: r.algorithm,
                    created_at: r.created_at,
                    signs_from: r.signs_from,
                    retires_at: r.retires_at,
                })
            })
            .collect()
    }
}
