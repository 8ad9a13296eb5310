//! The SAML replay store: assertion ids seen at an ACS, kept until the assertion expires.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::saml_assertions;
use super::{DbConnection, StorageResult, insert_unless_exists};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = saml_assertions)]
pub struct SamlAssertionRow {
    /// Hex SHA-256 of the connector id and the assertion's ID.
    pub id: String,
    pub connector_id: String,
    pub seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub trait SamlAssertionRepository {
    /// Records an assertion id; `false` when it was recorded before (a replay), on any instance.
    fn record_saml_assertion(&mut self, row: &SamlAssertionRow) -> StorageResult<bool>;
    fn purge_saml_assertions(&mut self, now: NaiveDateTime) -> StorageResult<usize>;
}

impl SamlAssertionRepository for DbConnection {
    fn record_saml_assertion(&mut self, row: &SamlAssertionRow) -> StorageResult<bool> {
        insert_unless_exists(self, |c| diesel::insert_into(saml_assertions::table).values(row).execute(c))
    }

    fn purge_saml_assertions(&mut self, now: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::delete(saml_assertions::table.filter(saml_assertions::expires_at.le(now))).execute(self)?)
    }
}
