use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::organisation_connectors;
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = organisation_connectors)]
pub struct OrganisationConnectorRow {
    pub id: String,
    pub organisation_id: String,
    /// The `[[connectors]]` table as JSON, without any secret.
    pub settings: String,
    pub secret_id: String,
    pub created_at: NaiveDateTime,
}

pub trait ConnectorRepository {
    fn insert_organisation_connector(&mut self, row: &OrganisationConnectorRow) -> StorageResult<()>;
    fn organisation_connectors(&mut self) -> StorageResult<Vec<OrganisationConnectorRow>>;
    fn delete_organisation_connector(&mut self, id: &str) -> StorageResult<Option<OrganisationConnectorRow>>;
}

impl ConnectorRepository for DbConnection {
    fn insert_organisation_connector(&mut self, row: &OrganisationConnectorRow) -> StorageResult<()> {
        diesel::insert_into(organisation_connectors::table).values(row).execute(self)?;
        Ok(())
    }

    fn organisation_connectors(&mut self) -> StorageResult<Vec<OrganisationConnectorRow>> {
        Ok(organisation_connectors::table
            .order(organisation_connectors::created_at)
            .select(OrganisationConnectorRow::as_select())
            .load(self)?)
    }

    fn delete_organisation_connector(&mut self, id: &str) -> StorageResult<Option<OrganisationConnectorRow>> {
        let row = organisation_connectors::table
            .find(id)
            .select(OrganisationConnectorRow::as_select())
            .first(self)
            .optional()?;
        if row.is_some() {
            diesel::delete(organisation_connectors::table.find(id)).execute(self)?;
        }
        Ok(row)
    }
}
