//! Two-factor requirements of organisations (`organisation_mfa_policies`) and projects
//! (`project_mfa_policies`), one row per scope; no row is the same as "off". The columns are
//! stored as written by `mfa::policy` (which parses them back and refuses unknown values).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{organisation_mfa_policies, project_mfa_policies, projects};
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = organisation_mfa_policies)]
pub struct OrganisationMfaPolicyRow {
    pub organisation_id: String,
    /// `off` or `required`.
    pub requirement: String,
    /// JSON array of method names (`totp`, `webauthn`); empty for any.
    pub methods: String,
    pub grace_until: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    /// The actor, as the audit log names it (`cli`, `user:<id>`).
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = project_mfa_policies)]
pub struct ProjectMfaPolicyRow {
    pub project_id: String,
    pub requirement: String,
    pub methods: String,
    pub grace_until: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
    pub updated_by: String,
}

pub trait MfaPolicyRepository {
    fn organisation_mfa_policy(&mut self, organisation_id: &str) -> StorageResult<Option<OrganisationMfaPolicyRow>>;
    /// Inserts or replaces the organisation's policy.
    fn set_organisation_mfa_policy(&mut self, row: &OrganisationMfaPolicyRow) -> StorageResult<()>;
    /// Removes the organisation's policy; false if it had none.
    fn delete_organisation_mfa_policy(&mut self, organisation_id: &str) -> StorageResult<bool>;
    fn project_mfa_policy(&mut self, project_id: &str) -> StorageResult<Option<ProjectMfaPolicyRow>>;
    /// Inserts or replaces the project's policy.
    fn set_project_mfa_policy(&mut self, row: &ProjectMfaPolicyRow) -> StorageResult<()>;
    /// Removes the project's policy; false if it had none.
    fn delete_project_mfa_policy(&mut self, project_id: &str) -> StorageResult<bool>;
    /// The policies of every project of an organisation, by project id.
    fn project_mfa_policies_of_organisation(
        &mut self,
        organisation_id: &str,
    ) -> StorageResult<Vec<ProjectMfaPolicyRow>>;
}

impl MfaPolicyRepository for DbConnection {
    fn organisation_mfa_policy(&mut self, organisation_id: &str) -> StorageResult<Option<OrganisationMfaPolicyRow>> {
        Ok(organisation_mfa_policies::table
            .find(organisation_id)
            .select(OrganisationMfaPolicyRow::as_select())
            .first(self)
            .optional()?)
    }

    fn set_organisation_mfa_policy(&mut self, row: &OrganisationMfaPolicyRow) -> StorageResult<()> {
        diesel::delete(organisation_mfa_policies::table.find(&row.organisation_id)).execute(self)?;
        diesel::insert_into(organisation_mfa_policies::table).values(row).execute(self)?;
        Ok(())
    }

    fn delete_organisation_mfa_policy(&mut self, organisation_id: &str) -> StorageResult<bool> {
        Ok(diesel::delete(organisation_mfa_policies::table.find(organisation_id)).execute(self)? > 0)
    }

    fn project_mfa_policy(&mut self, project_id: &str) -> StorageResult<Option<ProjectMfaPolicyRow>> {
        Ok(project_mfa_policies::table
            .find(project_id)
            .select(ProjectMfaPolicyRow::as_select())
            .first(self)
            .optional()?)
    }

    fn set_project_mfa_policy(&mut self, row: &ProjectMfaPolicyRow) -> StorageResult<()> {
        diesel::delete(project_mfa_policies::table.find(&row.project_id)).execute(self)?;
        diesel::insert_into(project_mfa_policies::table).values(row).execute(self)?;
        Ok(())
    }

    fn delete_project_mfa_policy(&mut self, project_id: &str) -> StorageResult<bool> {
        Ok(diesel::delete(project_mfa_policies::table.find(project_id)).execute(self)? > 0)
    }

    fn project_mfa_policies_of_organisation(
        &mut self,
        organisation_id: &str,
    ) -> StorageResult<Vec<ProjectMfaPolicyRow>> {
        let ids = projects::table.filter(projects::organisation_id.eq(organisation_id)).select(projects::id);
        Ok(project_mfa_policies::table
            .filter(project_mfa_policies::project_id.eq_any(ids))
            .order(project_mfa_policies::project_id)
            .select(ProjectMfaPolicyRow::as_select())
            .load(self)?)
    }
}
