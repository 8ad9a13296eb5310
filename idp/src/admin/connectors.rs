//! Connectors that organisations' administrators create: validated like the file's
//! `[[connectors]]`, stored with the client secret sealed, and loaded by every instance.

use chrono::NaiveDateTime;

use super::organisations::{AdminError, find_organisation};
use crate::audit::{Action, Actor, Auditor, Event};
use crate::config::{ConnectorConfig, ConnectorSpec};
use crate::connector_config::validate_connectors;
use crate::crypto::secretbox::MasterKeys;
use crate::storage::audit::AuditRepository;
use crate::storage::connectors::{ConnectorRepository, OrganisationConnectorRow};
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
    let spec = validate_one(config)?;
    if taken(spec.id.as_str()) {
        return Err(AdminError::Conflict(format!("connector id {} is used by the configuration file", spec.id)));
    }
    let org = find_organisation(conn, organisation)?.ok_or(AdminError::NotFound("organisation"))?;
    let secret_id =
        conn.seal_secret(keys, SecretPurpose::UpstreamClientSecret, spec.client_secret.expose().as_bytes(), now)?;
    let mut settings =
        ConnectorConfig { client_secret: None, client_secret_env: None, client_secret_file: None, ..config.clone() };
    // A SAML connection's certificate or metadata is stored itself, not as a path on this host.
    if let Some(path) = settings.idp_certificate_file.take() {
        settings.idp_certificate =
            Some(std::fs::read_to_string(&path).map_err(|e| AdminError::Invalid(format!("{}: {e}", path.display())))?);
    }
    if let Some(path) = settings.idp_metadata_file.take() {
        settings.idp_metadata =
            Some(std::fs::read_to_string(&path).map_err(|e| AdminError::Invalid(format!("{}: {e}", path.display())))?);
    }
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
            .detail("connector", spec.id.as_str())
            .detail("type", spec.kind.as_str()),
    )?;
    Ok(spec)
}

pub fn delete(
    conn: &mut (impl ConnectorRepository + SecretRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    id: &str,
) -> Result<(), AdminError> {
    let row = conn.delete_organisation_connector(id)?.ok_or(AdminError::NotFound("connector"))?;
    conn.delete_secret(parse_id(&row.secret_id)?)?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::ConnectorDeleted).target(&row.organisation_id).detail("connector", id),
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
