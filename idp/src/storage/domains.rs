//! Organisations' e-mail domains (`organisation_domains`): claimed, verified by a DNS TXT record,
//! and routed to a connector. At most one organisation holds a domain verified (a partial unique
//! index backs the check the domain layer makes first).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::organisation_domains;
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = organisation_domains)]
pub struct OrganisationDomainRow {
    pub id: String,
    pub organisation_id: String,
    /// Lower case, no trailing dot.
    pub domain: String,
    /// The value the TXT record carries after `idp-verify=`: public, not a secret.
    pub token: String,
    pub verified_at: Option<NaiveDateTime>,
    /// One of the organisation's own connectors, for home-realm discovery.
    pub connector_id: Option<String>,
    pub created_at: NaiveDateTime,
}

pub trait DomainRepository {
    fn insert_domain(&mut self, row: &OrganisationDomainRow) -> StorageResult<()>;
    fn domains_of_organisation(&mut self, organisation_id: &str) -> StorageResult<Vec<OrganisationDomainRow>>;
    fn find_domain(&mut self, id: &str) -> StorageResult<Option<OrganisationDomainRow>>;
    /// The row of the organisation that verified `domain`, if one did.
    fn verified_domain(&mut self, domain: &str) -> StorageResult<Option<OrganisationDomainRow>>;
    fn set_domain_verified(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<()>;
    fn set_domain_connector(&mut self, id: &str, connector_id: Option<&str>) -> StorageResult<()>;
    /// Un-routes every domain routed to `connector_id`; how many were.
    fn clear_domain_connector(&mut self, connector_id: &str) -> StorageResult<usize>;
    fn delete_domain(&mut self, id: &str) -> StorageResult<bool>;
    /// Whether any verified domain is routed to a connector (the login page then offers discovery).
    fn any_routed_domain(&mut self) -> StorageResult<bool>;
}

impl DomainRepository for DbConnection {
    fn insert_domain(&mut self, row: &OrganisationDomainRow) -> StorageResult<()> {
        diesel::insert_into(organisation_domains::table).values(row).execute(self)?;
        Ok(())
    }

    fn domains_of_organisation(&mut self, organisation_id: &str) -> StorageResult<Vec<OrganisationDomainRow>> {
        Ok(organisation_domains::table
            .filter(organisation_domains::organisation_id.eq(organisation_id))
            .order((organisation_domains::domain, organisation_domains::id))
            .select(OrganisationDomainRow::as_select())
            .load(self)?)
    }

    fn find_domain(&mut self, id: &str) -> StorageResult<Option<OrganisationDomainRow>> {
        Ok(organisation_domains::table.find(id).select(OrganisationDomainRow::as_select()).first(self).optional()?)
    }

    fn verified_domain(&mut self, domain: &str) -> StorageResult<Option<OrganisationDomainRow>> {
        Ok(organisation_domains::table
            .filter(organisation_domains::domain.eq(domain))
            .filter(organisation_domains::verified_at.is_not_null())
            .select(OrganisationDomainRow::as_select())
            .first(self)
            .optional()?)
    }

    fn set_domain_verified(&mut self, id: &str, now: NaiveDateTime) -> StorageResult<()> {
        diesel::update(organisation_domains::table.find(id))
            .set(organisation_domains::verified_at.eq(Some(now)))
            .execute(self)?;
        Ok(())
    }

    fn set_domain_connector(&mut self, id: &str, connector_id: Option<&str>) -> StorageResult<()> {
        diesel::update(organisation_domains::table.find(id))
            .set(organisation_domains::connector_id.eq(connector_id))
            .execute(self)?;
        Ok(())
    }

    fn clear_domain_connector(&mut self, connector_id: &str) -> StorageResult<usize> {
        Ok(diesel::update(organisation_domains::table.filter(organisation_domains::connector_id.eq(connector_id)))
            .set(organisation_domains::connector_id.eq(None::<String>))
            .execute(self)?)
    }

    fn delete_domain(&mut self, id: &str) -> StorageResult<bool> {
        Ok(diesel::delete(organisation_domains::table.find(id)).execute(self)? > 0)
    }

    fn any_routed_domain(&mut self) -> StorageResult<bool> {
        let n: i64 = organisation_domains::table
            .filter(organisation_domains::verified_at.is_not_null())
            .filter(organisation_domains::connector_id.is_not_null())
            .count()
            .get_result(self)?;
        Ok(n > 0)
    }
}
