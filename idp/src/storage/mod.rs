//! Storage: repository traits and their one diesel implementation, which serves SQLite and
//! PostgreSQL alike through [`DbConnection`]. Storage never knows HTTP.
//!
//! Repository functions take the connection explicitly and never open transactions of their
//! own: the caller decides the unit of work with [`Db::write`], so an audit event lands in the
//! same transaction as the change it records.

pub mod api_tokens;
pub mod audit;
pub mod clients;
pub mod connectors;
mod db;
pub mod domains;
pub mod dump;
pub mod invitations;
pub mod login_flows;
pub mod mfa;
pub mod mfa_policies;
pub mod models;
pub mod oauth;
pub mod organisations;
pub mod passwords;
pub mod pending_mfa;
pub mod rate_limits;
pub mod saml_assertions;
pub mod schema;
pub mod scim;
pub mod secrets;
pub mod sessions;
pub mod settings;
pub mod signing_keys;
pub mod users;
pub mod webauthn;

pub(crate) use db::on_concrete;
pub use db::{
    Backend, Conn, DatabaseUrl, Db, DbConnection, ExclusiveGuard, current_schema_version, database_columns,
    foreign_key_violations, migrate_conn, schema_version, transaction,
};

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Storage failures. The `Display` text is for logs and operators, never for HTTP clients.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("sealed value: {0}")]
    Sealed(crate::crypto::secretbox::OpenError),
    #[error("database error: {0}")]
    Query(DieselError),
}

impl From<DieselError> for StorageError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StorageError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                StorageError::Conflict(info.constraint_name().unwrap_or(info.message()).to_owned())
            }
            other => StorageError::Query(other),
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Parses an id read from the database; a malformed one is corruption, not a client error.
pub(crate) fn parse_id<T: std::str::FromStr>(s: &str) -> StorageResult<T> {
    s.parse().map_err(|_| StorageError::Corrupt(format!("invalid id {s:?}")))
}

/// Runs an insert inside a savepoint and reports a unique violation as `Ok(false)` instead of
/// an error, leaving the surrounding transaction usable (PostgreSQL aborts a transaction on a
/// failed statement otherwise). The portable form of `INSERT ... ON CONFLICT DO NOTHING`.
pub(crate) fn insert_unless_exists(
    conn: &mut DbConnection,
    insert: impl FnOnce(&mut DbConnection) -> Result<usize, DieselError>,
) -> StorageResult<bool> {
    use diesel::Connection;
    match conn.transaction(insert) {
        Ok(_) => Ok(true),
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
