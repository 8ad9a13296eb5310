//! Connectors that organisations' administrators create: validated like the file's
//! `[[connectors]]`, stored with the client secret sealed, and loaded by every instance.

use chrono::NaiveDateTime;

use super::caller::{Caller, require, resolve};
use super::organisations::{AdminError, find_organisation};
use crate::audit::{Action, Actor, Auditor, Event};
use crate::config::{ConnectorConfig, ConnectorSpec};
use crate::connector_config::validate_connectors;
use crate::crypto::secretbox::MasterKeys;
use crate::domain::role::Permission;
use crate::storage::audit::AuditRepository;
use crate::storage::connectors::{ConnectorRepository, OrganisationConnectorRow};
use crate::storage::domains::DomainRepository;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::{StorageError, StorageResult, parse_id};

fn validate_one(config: &ConnectorConfig) -> Result<ConnectorSpec, AdminError> {
    let mut problems = Vec::new();
    let specs = validate_connectors(std::slice::from_ref(config), &|_| None, &mut problems);
    match (problems.is_empty(), specs.into_iter().next()) {
        (true, Some(spec)) => Ok(spec),
        _ => Err(AdminError::Invalid(problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))),
    }
}

/// Creates a connector for an organisation. `config.client_secret` holds the secret itself;
/// `taken` says whether an id is already used (by the configuration file).
#[allow(clippy::too_many_arguments)]
pub fn create(
    conn: &mut (impl ConnectorRepository + OrganisationRepository + SecretRepository + AuditRepository),
    keys: &MasterKeys,
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    organisation: &str,
    config: &ConnectorConfig,
    taken: &dyn Fn(&str) -> bool,
) -> Result<ConnectorSpec, AdminError> {
    if config.client_secret_env.is_some() || config.client_secret_file.is_some() {
        return Err(AdminError::Invalid("give the client secret itself; it is stored sealed".into()));
    }
    // Never a path on this host: an organisation's administrator must not make the server read files.
    if config.idp_certificate_file.is_some() || config.idp_metadata_file.is_some() {
        return Err(AdminError::Invalid(
            "give the IdP certificate or metadata itself (idp_certificate, idp_metadata)".into(),
        ));
    }
    let spec = validate_one(config)?;
    // An organisation's connector gives roles in that organisation only (its mappings also
    // decide which SCIM accounts its logins may claim); the file's are the operator's.
    let owner = find_organisation(conn, organisation)?.ok_or(AdminError::NotFound("organisation"))?;
    if let Some(m) = spec.role_mappings.iter().find(|m| m.organisation != owner.slug) {
        return Err(AdminError::Invalid(format!(
            "role mapping for group {} names organisation {}: a connector of {} maps into {} only",
            m.group,
            m.organisation.as_str(),
            owner.slug.as_str(),
            owner.slug.as_str()
        )));
    }
    if taken(spec.id.as_str()) {
        return Err(AdminError::Conflict(format!("connector id {} is used by the configuration file", spec.id)));
    }
    let org = find_organisation(conn, organisation)?.ok_or(AdminError::NotFound("organisation"))?;
    let secret_id =
        conn.seal_secret(keys, SecretPurpose::UpstreamClientSecret, spec.client_secret.expose().as_bytes(), now)?;
    let settings =
        ConnectorConfig { client_secret: None, client_secret_env: None, client_secret_file: None, ..config.clone() };
    let settings = serde_json::to_string(&settings).map_err(|e| AdminError::Invalid(e.to_string()))?;
    conn.insert_organisation_connector(&OrganisationConnectorRow {
        id: spec.id.to_string(),
        organisation_id: org.id.to_string(),
        settings,
        secret_id: secret_id.to_string(),
        created_at: now,
    })?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::ConnectorCreated)
            .target(org.id)
            .organisation(org.id)
            .detail("connector", spec.id.as_str())
            .detail("type", spec.kind.as_str()),
    )?;
    Ok(spec)
}

pub fn delete(
    conn: &mut (impl ConnectorRepository + SecretRepository + AuditRepository + DomainRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    id: &str,
) -> Result<(), AdminError> {
    let row = conn.delete_organisation_connector(id)?.ok_or(AdminError::NotFound("connector"))?;
    conn.delete_secret(parse_id(&row.secret_id)?)?;
    // Domains routed to it route nowhere now.
    conn.clear_domain_connector(id)?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::ConnectorDeleted)
            .target(&row.organisation_id)
            .organisation(&row.organisation_id)
            .detail("connector", id),
    )?;
    Ok(())
}

/// Every stored connector, secrets opened, ready for the registry. One that no longer
/// validates (or whose secret does not open) is left out and logged, never fatal.
pub fn load(
    conn: &mut (impl ConnectorRepository + SecretRepository),
    keys: &MasterKeys,
) -> StorageResult<Vec<ConnectorSpec>> {
    let mut out = Vec::new();
    for row in conn.organisation_connectors()? {
        let secret = match conn.open_secret(keys, parse_id(&row.secret_id)?, SecretPurpose::UpstreamClientSecret) {
            Ok(s) => String::from_utf8_lossy(&s).into_owned(),
            Err(StorageError::Sealed(e)) => {
                tracing::error!(connector = %row.id, error = %e, "a stored connector's secret does not open");
                continue;
            }
            Err(e) => return Err(e),
        };
        let config: Result<ConnectorConfig, _> = serde_json::from_str(&row.settings);
        // A SAML connection has no client secret (an empty one is sealed in its place).
        let with_secret = |c: ConnectorConfig| match c.kind {
            crate::config::ConnectorKind::Saml => c,
            _ => ConnectorConfig { client_secret: Some(secret.clone()), ..c },
        };
        match config.map(|c| validate_one(&with_secret(c))) {
            Ok(Ok(spec)) => out.push(spec),
            _ => tracing::error!(connector = %row.id, "a stored connector no longer validates; skipped"),
        }
    }
    Ok(out)
}

/// A stored connector as its organisation's administrators see it: the settings, never the
/// secret.
#[derive(Debug, Clone, serde::Serialize, PartialEq, utoipa::ToSchema)]
pub struct ConnectorInfo {
    pub id: String,
    pub organisation_id: String,
    /// The connector's `[[connectors]]` settings.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339")]
    pub created_at: NaiveDateTime,
}

fn connector_info(row: OrganisationConnectorRow) -> ConnectorInfo {
    ConnectorInfo {
        settings: serde_json::from_str(&row.settings).unwrap_or(serde_json::Value::Null),
        id: row.id,
        organisation_id: row.organisation_id,
        created_at: row.created_at,
    }
}

/// The organisation's own connectors.
pub fn list_of(
    conn: &mut (impl ConnectorRepository + OrganisationRepository),
    caller: Caller,
    organisation: &str,
) -> Result<Vec<ConnectorInfo>, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::ConnectorsManage, "managing connectors needs connectors_manage")?;
    let key = org.to_string();
    Ok(conn.organisation_connectors()?.into_iter().filter(|r| r.organisation_id == key).map(connector_info).collect())
}

/// [`create`], by a caller holding `connectors_manage` in the organisation.
#[allow(clippy::too_many_arguments)]
pub fn create_as(
    conn: &mut (impl ConnectorRepository + OrganisationRepository + SecretRepository + AuditRepository),
    keys: &MasterKeys,
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    config: &ConnectorConfig,
    taken: &dyn Fn(&str) -> bool,
) -> Result<ConnectorInfo, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::ConnectorsManage, "managing connectors needs connectors_manage")?;
    let spec = create(conn, keys, auditor, now, caller.actor(), &org.to_string(), config, taken)?;
    let key = org.to_string();
    conn.organisation_connectors()?
        .into_iter()
        .find(|r| r.id == spec.id.as_str() && r.organisation_id == key)
        .map(connector_info)
        .ok_or(AdminError::NotFound("connector"))
}

/// [`delete`], for one of the organisation's own connectors.
pub fn delete_as(
    conn: &mut (impl ConnectorRepository + OrganisationRepository + SecretRepository + AuditRepository + DomainRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    id: &str,
) -> Result<(), AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::ConnectorsManage, "managing connectors needs connectors_manage")?;
    let key = org.to_string();
    if !conn.organisation_connectors()?.iter().any(|r| r.id == id && r.organisation_id == key) {
        return Err(AdminError::NotFound("connector"));
    }
    delete(conn, auditor, now, caller.actor(), id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::pseudonym::Pseudonymiser;
    use crate::crypto::secretbox::{KeySource, Keyring};
    use crate::storage::{DatabaseUrl, Db};

    /// An organisation's administrator (the API) cannot make the server read a file: a SAML
    /// connection names its certificate or metadata inline, never by path.
    #[test]
    fn a_saml_connection_by_file_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("t.sqlite")), 2).unwrap();
        db.migrate().unwrap();
        let keys = MasterKeys::new(KeySource::Env(zeroize::Zeroizing::new(String::new())), Keyring::generate());
        let auditor = Auditor::new(Pseudonymiser::new(zeroize::Zeroizing::new(vec![7; 32])));
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap().naive_utc();
        for (cert, metadata) in [(Some("/etc/passwd"), None), (None, Some("/etc/passwd"))] {
            let config = ConnectorConfig {
                id: "acme-okta".into(),
                kind: crate::config::ConnectorKind::Saml,
                name: "Acme".into(),
                preset: Some(crate::saml_config::SamlPreset::Okta),
                idp_entity_id: Some("urn:idp".into()),
                sso_url: Some("https://idp.example/sso".into()),
                idp_certificate_file: cert.map(Into::into),
                idp_metadata_file: metadata.map(Into::into),
                ..serde_json::from_str(r#"{"id":"x","type":"saml","name":"x"}"#).unwrap()
            };
            let r = db.write(|c| create(c, &keys, &auditor, now, Actor::Cli, "acme", &config, &|_| false));
            assert!(matches!(r, Err(AdminError::Invalid(ref m)) if m.contains("itself")), "{r:?}");
        }
    }
}
