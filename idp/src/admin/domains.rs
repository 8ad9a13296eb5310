//! An organisation's e-mail domains: claimed by an administrator, proved by a DNS TXT record
//! (`_idp-challenge.<domain>` holding `idp-verify=<token>`), and, once verified, routed to one of
//! the organisation's connectors so the login page's home-realm discovery sends that domain's
//! e-mails there. An unverified domain never routes; a domain is verified by one organisation
//! at most.
//!
//! Verifying is three steps so no database connection is held across the DNS lookup:
//! [`challenge`] (what to look up), [`dns::TxtResolver::txt`](super::dns::TxtResolver::txt), then
//! [`complete_verification`] with what the lookup found.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::caller::{Caller, require, resolve};
use super::dns::DnsError;
use super::organisations::AdminError;
use crate::audit::{Action, Auditor, Event};
use crate::domain::OrganisationId;
use crate::domain::role::Permission;
use crate::storage::StorageResult;
use crate::storage::audit::AuditRepository;
use crate::storage::connectors::ConnectorRepository;
use crate::storage::domains::{DomainRepository, OrganisationDomainRow};
use crate::storage::organisations::OrganisationRepository;

/// The label under the domain that holds the TXT record.
pub const CHALLENGE_LABEL: &str = "_idp-challenge";
/// What the TXT record's value starts with; the token follows.
pub const TXT_PREFIX: &str = "idp-verify=";
/// The most domains one organisation may hold.
pub const MAX_DOMAINS: usize = 100;

/// A domain as its organisation's administrators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DomainInfo {
    pub id: String,
    pub organisation_id: String,
    pub domain: String,
    pub verified: bool,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339_opt")]
    pub verified_at: Option<NaiveDateTime>,
    /// The connector the domain's e-mails are sent to at the login page, once verified.
    pub connector: Option<String>,
    /// Where to publish the TXT record.
    pub txt_name: String,
    /// The TXT record's value.
    pub txt_value: String,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339")]
    pub created_at: NaiveDateTime,
}

fn info(r: OrganisationDomainRow) -> DomainInfo {
    DomainInfo {
        txt_name: format!("{CHALLENGE_LABEL}.{}", r.domain),
        txt_value: format!("{TXT_PREFIX}{}", r.token),
        verified: r.verified_at.is_some(),
        id: r.id,
        organisation_id: r.organisation_id,
        domain: r.domain,
        verified_at: r.verified_at,
        connector: r.connector_id,
        created_at: r.created_at,
    }
}

/// A domain name as stored: lower case, no trailing dot, ASCII (IDNs in their `xn--` form),
/// at least two labels of letters, digits and inner hyphens, at most 253 characters, and not
/// an IP address.
pub fn normalise_domain(raw: &str) -> Result<String, AdminError> {
    let bad = |why: &str| AdminError::Invalid(format!("not a domain name: {why}"));
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err(bad("empty"));
    }
    if d.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    if !d.is_ascii() {
        return Err(bad("give an internationalised name in its xn-- form"));
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("a domain has at least two labels, such as example.com"));
    }
    for l in &labels {
        if l.is_empty() || l.len() > 63 {
            return Err(bad("each label is 1 to 63 characters"));
        }
        if !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || l.starts_with('-') || l.ends_with('-') {
            return Err(bad("labels are letters, digits and inner hyphens"));
        }
    }
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("an IP address is not a domain"));
    }
    Ok(d)
}

fn parse_id(id: &str) -> Result<String, AdminError> {
    id.parse::<uuid::Uuid>().map(|u| u.to_string()).map_err(|_| AdminError::NotFound("domain"))
}

fn own_domain(
    conn: &mut impl DomainRepository,
    org: OrganisationId,
    id: &str,
) -> Result<OrganisationDomainRow, AdminError> {
    let id = parse_id(id)?;
    conn.find_domain(&id)?.filter(|d| d.organisation_id == org.to_string()).ok_or(AdminError::NotFound("domain"))
}

fn check(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    organisation: &str,
) -> Result<OrganisationId, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::OrganisationManage, "managing domains needs organisation_manage")?;
    Ok(org)
}

pub fn list(
    conn: &mut (impl OrganisationRepository + DomainRepository),
    caller: Caller,
    organisation: &str,
) -> Result<Vec<DomainInfo>, AdminError> {
    let org = check(conn, caller, organisation)?;
    Ok(conn.domains_of_organisation(&org.to_string())?.into_iter().map(info).collect())
}

pub fn get(
    conn: &mut (impl OrganisationRepository + DomainRepository),
    caller: Caller,
    organisation: &str,
    id: &str,
) -> Result<DomainInfo, AdminError> {
    let org = check(conn, caller, organisation)?;
    own_domain(conn, org, id).map(info)
}

/// Claims a domain for the organisation, unverified, with a fresh 128-bit token to publish.
pub fn claim(
    conn: &mut (impl OrganisationRepository + DomainRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    domain: &str,
) -> Result<DomainInfo, AdminError> {
    let org = check(conn, caller, organisation)?;
    let domain = normalise_domain(domain)?;
    let key = org.to_string();
    if conn.verified_domain(&domain)?.is_some_and(|d| d.organisation_id != key) {
        return Err(AdminError::Conflict(format!("{domain} is verified by another organisation")));
    }
    let mine = conn.domains_of_organisation(&key)?;
    if mine.iter().any(|d| d.domain == domain) {
        return Err(AdminError::Conflict(format!("{domain} is claimed by this organisation already")));
    }
    if mine.len() >= MAX_DOMAINS {
        return Err(AdminError::Invalid(format!("an organisation holds at most {MAX_DOMAINS} domains")));
    }
    let mut token = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut token);
    let row = OrganisationDomainRow {
        id: uuid::Uuid::new_v4().to_string(),
        organisation_id: key,
        domain,
        token: hex::encode(token),
        verified_at: None,
        connector_id: None,
        created_at: now,
    };
    conn.insert_domain(&row)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::DomainClaimed)
            .target(&row.id)
            .organisation(org)
            .detail("domain", row.domain.as_str()),
    )?;
    Ok(info(row))
}

/// What a verification looks up: the TXT name, and the value it must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: String,
    pub domain: String,
    pub txt_name: String,
    pub txt_value: String,
    pub verified: bool,
}

/// The first step of a verification, read-only: what to look up.
pub fn challenge(
    conn: &mut (impl OrganisationRepository + DomainRepository),
    caller: Caller,
    organisation: &str,
    id: &str,
) -> Result<Challenge, AdminError> {
    let org = check(conn, caller, organisation)?;
    let d = info(own_domain(conn, org, id)?);
    Ok(Challenge { id: d.id, domain: d.domain, txt_name: d.txt_name, txt_value: d.txt_value, verified: d.verified })
}

/// The last step: marks the domain verified if `found` (the TXT records at the challenge name)
/// holds the expected value, unless another organisation verified it first. Audited; a
/// failure changes nothing.
#[allow(clippy::too_many_arguments)]
pub fn complete_verification(
    conn: &mut (impl OrganisationRepository + DomainRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    id: &str,
    found: Result<Vec<String>, DnsError>,
) -> Result<DomainInfo, AdminError> {
    let org = check(conn, caller, organisation)?;
    let row = own_domain(conn, org, id)?;
    if row.verified_at.is_some() {
        return Ok(info(row));
    }
    let name = format!("{CHALLENGE_LABEL}.{}", row.domain);
    let expected = format!("{TXT_PREFIX}{}", row.token);
    let records = match found {
        Ok(r) => r,
        Err(DnsError::NoRecord) => {
            return Err(AdminError::Invalid(format!(
                "no TXT record at {name}: publish {expected:?} there, then check again"
            )));
        }
        Err(DnsError::Unavailable(why)) => {
            return Err(AdminError::Invalid(format!("{name} could not be looked up ({why}); try again later")));
        }
    };
    if !records.iter().any(|r| crate::crypto::tokens::ct_eq(r.trim().as_bytes(), expected.as_bytes())) {
        return Err(AdminError::Invalid(format!(
            "the TXT records at {name} ({} found) do not hold {expected:?}",
            records.len()
        )));
    }
    if conn.verified_domain(&row.domain)?.is_some_and(|d| d.organisation_id != row.organisation_id) {
        return Err(AdminError::Conflict(format!("{} is verified by another organisation", row.domain)));
    }
    conn.set_domain_verified(&row.id, now)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::DomainVerified)
            .target(&row.id)
            .organisation(org)
            .detail("domain", row.domain.as_str()),
    )?;
    own_domain(conn, org, &row.id).map(info)
}

/// Routes a verified domain to one of the organisation's own connectors (`None` un-routes it).
/// Needs `connectors_manage` besides `organisation_manage`.
#[allow(clippy::too_many_arguments)]
pub fn route(
    conn: &mut (impl OrganisationRepository + DomainRepository + ConnectorRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    id: &str,
    connector: Option<&str>,
) -> Result<DomainInfo, AdminError> {
    let org = check(conn, caller, organisation)?;
    require(conn, caller, org, None, Permission::ConnectorsManage, "routing a domain needs connectors_manage")?;
    let row = own_domain(conn, org, id)?;
    let key = org.to_string();
    if let Some(c) = connector {
        if row.verified_at.is_none() {
            return Err(AdminError::Invalid(format!("{} is not verified: verify it before routing it", row.domain)));
        }
        if !conn.organisation_connectors()?.iter().any(|r| r.id == c && r.organisation_id == key) {
            return Err(AdminError::Invalid(format!("{c:?} is not one of the organisation's connectors")));
        }
    }
    conn.set_domain_connector(&row.id, connector)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::DomainRouted)
            .target(&row.id)
            .organisation(org)
            .detail("domain", row.domain.as_str())
            .detail("connector", connector.unwrap_or("")),
    )?;
    own_domain(conn, org, &row.id).map(info)
}

pub fn delete(
    conn: &mut (impl OrganisationRepository + DomainRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    id: &str,
) -> Result<(), AdminError> {
    let org = check(conn, caller, organisation)?;
    let row = own_domain(conn, org, id)?;
    conn.delete_domain(&row.id)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::DomainDeleted)
            .target(&row.id)
            .organisation(org)
            .detail("domain", row.domain.as_str()),
    )?;
    Ok(())
}

/// Home-realm discovery from verified domains: the connector an e-mail's domain is routed to,
/// only for a verified domain routed to a connector of the organisation that verified it.
pub fn connector_for_email(
    conn: &mut (impl DomainRepository + ConnectorRepository),
    email: &str,
) -> StorageResult<Option<String>> {
    let Some((_, domain)) = email.trim().rsplit_once('@') else { return Ok(None) };
    let Ok(domain) = normalise_domain(domain) else { return Ok(None) };
    let Some(row) = conn.verified_domain(&domain)? else { return Ok(None) };
    let Some(connector) = row.connector_id else { return Ok(None) };
    let owned =
        conn.organisation_connectors()?.iter().any(|c| c.id == connector && c.organisation_id == row.organisation_id);
    Ok(owned.then_some(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_and_bad_ones_refused() {
        assert_eq!(normalise_domain(" Acme.TEST. ").ok().as_deref(), Some("acme.test"));
        assert_eq!(normalise_domain("xn--bcher-kva.example").ok().as_deref(), Some("xn--bcher-kva.example"));
        let long = format!("{}.test", "a".repeat(64));
        let too_long = format!("{}.test", ["abc"; 70].join("."));
        for bad in [
            "",
            "localhost",
            "a..b",
            "-a.test",
            "a-.test",
            "a_b.test",
            "bücher.example",
            "10.0.0.1",
            "a b.test",
            &long,
            &too_long,
            "@acme.test",
        ] {
            assert!(matches!(normalise_domain(bad), Err(AdminError::Invalid(_))), "{bad}");
        }
    }
}
