//! Table-by-table row dump and load for backups, backend-neutral: each row is one line of JSON
//! in its row type's serde form (see `models`), so a dump taken on SQLite loads on PostgreSQL
//! and back.
//!
//! [`TABLES`] is the one list of what a backup covers, in foreign-key order (a row only points
//! at rows of earlier tables). A new table must be added here: [`uncovered_tables`] refuses a
//! backup of a database holding a table this list lacks, and the backup tests compare every
//! column of the database with the dumped rows.

use std::io::{BufRead, Write};

use diesel::prelude::*;

use super::api_tokens::{ApiTokenPolicyRow, ApiTokenRow, ApiTokenSecretRow};
use super::clients::OAuthClientRow;
use super::connectors::OrganisationConnectorRow;
use super::domains::OrganisationDomainRow;
use super::invitations::InvitationRow;
use super::login_flows::LoginFlowRow;
use super::mfa::{RecoveryCodeRow, TotpCredentialRow};
use super::mfa_policies::{OrganisationMfaPolicyRow, ProjectMfaPolicyRow};
use super::models::*;
use super::oauth::{CodeRow, ConsentRow, GrantRow, RefreshTokenRow, RevokedAccessTokenRow};
use super::passwords::PasswordCredentialRow;
use super::pending_mfa::PendingMfaLoginRow;
use super::saml_assertions::SamlAssertionRow;
use super::schema;
use super::scim::{ScimGroupMemberRow, ScimResourceRow};
use super::webauthn::{WebauthnCeremonyRow, WebauthnCredentialRow};
use super::{DbConnection, StorageError, database_columns, on_concrete};

/// Rows read or inserted per statement.
const BATCH: i64 = 2_000;
const INSERT_BATCH: usize = 400;

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("table {table}, row {row}: {reason}")]
    BadRow { table: &'static str, row: i64, reason: String },
    #[error("table {table}: the backup ends after {got} of {want} rows")]
    ShortTable { table: &'static str, got: i64, want: i64 },
    #[error("the backup names a table this version does not know: {0}")]
    UnknownTable(String),
}

impl From<diesel::result::Error> for DumpError {
    fn from(e: diesel::result::Error) -> Self {
        DumpError::Storage(e.into())
    }
}

macro_rules! backed_up_tables {
    ($( $table:ident : $row:ty ),* $(,)?) => {
        /// Every table a backup holds, in foreign-key order.
        pub const TABLES: &[&str] = &[$( stringify!($table) ),*];

        fn known(table: &str) -> Result<&'static str, DumpError> {
            TABLES.iter().copied().find(|t| *t == table).ok_or_else(|| DumpError::UnknownTable(table.to_owned()))
        }

        /// How many rows `table` holds.
        pub fn count_rows(conn: &mut DbConnection, table: &str) -> Result<i64, DumpError> {
            match table {
                $( stringify!($table) => Ok(schema::$table::table.count().get_result(conn)?), )*
                other => Err(DumpError::UnknownTable(other.to_owned())),
            }
        }

        /// Writes every row of `table` as one JSON line each, in primary-key order; returns the count.
        pub fn dump_table(conn: &mut DbConnection, table: &str, out: &mut dyn Write) -> Result<i64, DumpError> {
            use diesel::Table;
            let mut written = 0;
            match table {
                $( stringify!($table) => loop {
                    let rows: Vec<$row> = schema::$table::table
                        .select(schema::$table::all_columns)
                        .order(schema::$table::table.primary_key())
                        .offset(written)
                        .limit(BATCH)
                        .load(conn)?;
                    let n = rows.len();
                    for row in rows {
                        serde_json::to_writer(&mut *out, &row).map_err(std::io::Error::from)?;
                        out.write_all(b"\n")?;
                        written += 1;
                    }
                    if (n as i64) < BATCH {
                        break;
                    }
                }, )*
                other => return Err(DumpError::UnknownTable(other.to_owned())),
            }
            Ok(written)
        }

        /// Reads `rows` JSON lines from `input` and inserts them into `table`.
        pub fn load_table(
            conn: &mut DbConnection,
            table: &str,
            rows: i64,
            input: &mut dyn BufRead,
        ) -> Result<(), DumpError> {
            let table = known(table)?;
            match table {
                $( stringify!($table) => {
                    let mut batch: Vec<$row> = Vec::with_capacity(INSERT_BATCH);
                    let mut line = String::new();
                    for n in 0..rows {
                        line.clear();
                        if input.read_line(&mut line)? == 0 {
                            return Err(DumpError::ShortTable { table, got: n, want: rows });
                        }
                        let row: $row = serde_json::from_str(&line)
                            .map_err(|e| DumpError::BadRow { table, row: n + 1, reason: e.to_string() })?;
                        batch.push(row);
                        if batch.len() >= INSERT_BATCH {
                            on_concrete!(&mut *conn, c => diesel::insert_into(schema::$table::table).values(&batch).execute(c))?;
                            batch.clear();
                        }
                    }
                    if !batch.is_empty() {
                        on_concrete!(&mut *conn, c => diesel::insert_into(schema::$table::table).values(&batch).execute(c))?;
                    }
                    Ok(())
                } )*
                other => Err(DumpError::UnknownTable(other.to_owned())),
            }
        }

        /// Deletes every row of every table, children first (for `restore --force`).
        pub fn delete_all(conn: &mut DbConnection) -> Result<(), DumpError> {
            let mut tables: Vec<&str> = TABLES.to_vec();
            tables.reverse();
            for table in tables {
                match table {
                    $( stringify!($table) => { diesel::delete(schema::$table::table).execute(conn)?; } )*
                    other => return Err(DumpError::UnknownTable(other.to_owned())),
                }
            }
            Ok(())
        }
    };
}

backed_up_tables! {
    secrets: SecretRow,
    settings: SettingRow,
    users: UserRow,
    login_flows: LoginFlowRow,
    pending_mfa_logins: PendingMfaLoginRow,
    external_identities: ExternalIdentityRow,
    password_credentials: PasswordCredentialRow,
    totp_credentials: TotpCredentialRow,
    recovery_codes: RecoveryCodeRow,
    webauthn_credentials: WebauthnCredentialRow,
    webauthn_ceremonies: WebauthnCeremonyRow,
    organisations: OrganisationRow,
    projects: ProjectRow,
    custom_roles: CustomRoleRow,
    organisation_members: OrganisationMemberRow,
    project_members: ProjectMemberRow,
    sessions: SessionRow,
    oauth_grants: GrantRow,
    oauth_codes: CodeRow,
    oauth_refresh_tokens: RefreshTokenRow,
    revoked_access_tokens: RevokedAccessTokenRow,
    oauth_consents: ConsentRow,
    oauth_clients: OAuthClientRow,
    signing_keys: SigningKeyRow,
    organisation_connectors: OrganisationConnectorRow,
    organisation_domains: OrganisationDomainRow,
    invitations: InvitationRow,
    api_tokens: ApiTokenRow,
    api_token_secrets: ApiTokenSecretRow,
    api_token_policies: ApiTokenPolicyRow,
    scim_resources: ScimResourceRow,
    scim_group_members: ScimGroupMemberRow,
    organisation_mfa_policies: OrganisationMfaPolicyRow,
    project_mfa_policies: ProjectMfaPolicyRow,
    audit_events: AuditEventRow,
    rate_limits: RateLimitRow,
    saml_assertions: SamlAssertionRow,
}

/// Tables the database holds that [`TABLES`] does not cover; a backup refuses to run while any exist.
pub fn uncovered_tables(conn: &mut DbConnection) -> Result<Vec<String>, DumpError> {
    let mut tables: Vec<String> = database_columns(conn)?.into_iter().map(|(t, _)| t).collect();
    tables.dedup();
    Ok(tables.into_iter().filter(|t| !TABLES.contains(&t.as_str())).collect())
}

/// The row counts of every table, in [`TABLES`] order.
pub fn count_all(conn: &mut DbConnection) -> Result<Vec<(&'static str, i64)>, DumpError> {
    TABLES.iter().map(|t| Ok((*t, count_rows(conn, t)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_list_has_every_schema_table_once() {
        let mut sorted = TABLES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), TABLES.len());
        let schema_rs = include_str!("schema.rs");
        let declared = schema_rs.matches("diesel::table! {").count();
        assert_eq!(declared, TABLES.len(), "schema.rs declares a table that storage::dump::TABLES lacks");
        for t in TABLES {
            assert!(schema_rs.contains(&format!("    {t} (")), "{t} is not in schema.rs");
        }
    }
}
