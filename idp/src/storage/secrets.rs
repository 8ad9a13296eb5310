//! Every secret idp stores lives in one table, sealed by the master key: TOTP seeds, upstream
//! client secrets, SAML and signing private keys. Feature tables hold a `secret_id`. One table
//! makes master-key rotation a single sweep that no later feature can forget.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use zeroize::Zeroizing;

use super::models::SecretRow;
use super::schema::secrets;
use super::{DbConnection, StorageError, StorageResult, parse_id};
use crate::crypto::secretbox::{MasterKeys, OpenError};
use crate::domain::SecretId;

/// What a secret is for; bound into its ciphertext, so it cannot be opened as something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretPurpose {
    SigningKey,
    AuditPseudonymKey,
    CsrfKey,
    UpstreamClientSecret,
    TotpSeed,
    SamlPrivateKey,
}

impl SecretPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretPurpose::SigningKey => "signing_key",
            SecretPurpose::AuditPseudonymKey => "audit_pseudonym_key",
            SecretPurpose::CsrfKey => "csrf_key",
            SecretPurpose::UpstreamClientSecret => "upstream_client_secret",
            SecretPurpose::TotpSeed => "totp_seed",
            SecretPurpose::SamlPrivateKey => "saml_private_key",
        }
    }
}

fn context(id: &str, purpose: &str) -> Vec<u8> {
    format!("idp-secret:{id}:{purpose}").into_bytes()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResealReport {
    pub resealed: usize,
    pub remaining_under_old_keys: i64,
}

pub trait SecretRepository {
    fn seal_secret(
        &mut self,
        keys: &MasterKeys,
        purpose: SecretPurpose,
        plaintext: &[u8],
        now: NaiveDateTime,
    ) -> StorageResult<SecretId>;
    fn open_secret(
        &mut self,
        keys: &MasterKeys,
        id: SecretId,
        purpose: SecretPurpose,
    ) -> StorageResult<Zeroizing<Vec<u8>>>;
    fn delete_secret(&mut self, id: SecretId) -> StorageResult<()>;
    fn count_secrets(&mut self) -> StorageResult<i64>;
    /// How many secrets each master key seals, by key id.
    fn secrets_per_key(&mut self) -> StorageResult<Vec<(String, i64)>>;
    /// Re-seals up to `batch` secrets not sealed by the active key. Each row is replaced only if
    /// it is unchanged since it was read, so a concurrent writer's value is never overwritten.
    fn reseal_batch(&mut self, keys: &MasterKeys, batch: i64, now: NaiveDateTime) -> StorageResult<usize>;
    /// Opens one secret of each key id in use; the first failure says which key is missing.
    fn check_secrets_open(&mut self, keys: &MasterKeys) -> StorageResult<()>;
    /// Opens up to `limit` secrets (in id order, so a different sample than one per key);
    /// returns how many opened. The first failure is the error.
    fn check_secrets_sample(&mut self, keys: &MasterKeys, limit: i64) -> StorageResult<usize>;
}

impl SecretRepository for DbConnection {
    fn seal_secret(
        &mut self,
        keys: &MasterKeys,
        purpose: SecretPurpose,
        plaintext: &[u8],
        now: NaiveDateTime,
    ) -> StorageResult<SecretId> {
        let id = SecretId::new();
        let (key_id, sealed) = keys
            .seal(&context(&id.to_string(), purpose.as_str()), plaintext)
            .map_err(|e| StorageError::Unavailable(e.to_string()))?;
        let row = SecretRow {
            id: id.to_string(),
            purpose: purpose.as_str().to_owned(),
            sealed,
            key_id: key_id.to_hex(),
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(secrets::table).values(&row).execute(self)?;
        Ok(id)
    }

    fn open_secret(
        &mut self,
        keys: &MasterKeys,
        id: SecretId,
        purpose: SecretPurpose,
    ) -> StorageResult<Zeroizing<Vec<u8>>> {
        let row: SecretRow = secrets::table.find(id.to_string()).select(SecretRow::as_select()).first(self)?;
        if row.purpose != purpose.as_str() {
            return Err(StorageError::Corrupt(format!("secret {id} is a {}, not a {}", row.purpose, purpose.as_str())));
        }
        keys.open(&context(&row.id, &row.purpose), &row.sealed).map_err(StorageError::Sealed)
    }

    fn delete_secret(&mut self, id: SecretId) -> StorageResult<()> {
        diesel::delete(secrets::table.find(id.to_string())).execute(self)?;
        Ok(())
    }

    fn count_secrets(&mut self) -> StorageResult<i64> {
        Ok(secrets::table.count().get_result(self)?)
    }

    fn secrets_per_key(&mut self) -> StorageResult<Vec<(String, i64)>> {
        Ok(secrets::table
            .group_by(secrets::key_id)
            .select((secrets::key_id, diesel::dsl::count_star()))
            .order(secrets::key_id)
            .load(self)?)
    }

    fn reseal_batch(&mut self, keys: &MasterKeys, batch: i64, now: NaiveDateTime) -> StorageResult<usize> {
        let keyring = keys.keyring();
        let active = keyring.active_id().to_hex();
        let rows: Vec<SecretRow> = secrets::table
            .filter(secrets::key_id.ne(&active))
            .order(secrets::id)
            .limit(batch)
            .select(SecretRow::as_select())
            .load(self)?;
        let mut done = 0;
        for row in rows {
            let ctx = context(&row.id, &row.purpose);
            let plain = keyring.open(&ctx, &row.sealed).map_err(StorageError::Sealed)?;
            let sealed = keyring.seal(&ctx, &plain);
            done += diesel::update(secrets::table.find(&row.id).filter(secrets::sealed.eq(&row.sealed)))
                .set((secrets::sealed.eq(sealed), secrets::key_id.eq(&active), secrets::updated_at.eq(now)))
                .execute(self)?;
        }
        Ok(done)
    }

    fn check_secrets_open(&mut self, keys: &MasterKeys) -> StorageResult<()> {
        for (key_id, _) in self.secrets_per_key()? {
            let row: SecretRow =
                secrets::table.filter(secrets::key_id.eq(&key_id)).select(SecretRow::as_select()).first(self)?;
            keys.open(&context(&row.id, &row.purpose), &row.sealed).map_err(StorageError::Sealed)?;
            parse_id::<SecretId>(&row.id)?;
        }
        Ok(())
    }

    fn check_secrets_sample(&mut self, keys: &MasterKeys, limit: i64) -> StorageResult<usize> {
        let rows: Vec<SecretRow> =
            secrets::table.order(secrets::id).limit(limit).select(SecretRow::as_select()).load(self)?;
        for row in &rows {
            keys.open(&context(&row.id, &row.purpose), &row.sealed).map_err(StorageError::Sealed)?;
        }
        Ok(rows.len())
    }
}

impl From<OpenError> for StorageError {
    fn from(e: OpenError) -> Self {
        StorageError::Sealed(e)
    }
}
