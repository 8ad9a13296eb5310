//! Downstream OIDC clients that organisations' administrators register for their projects:
//! validated exactly like the file's `[[clients]]`, the secret generated here, shown once and
//! kept only as its SHA-256. Managing a project's clients needs `clients_manage` there.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::caller::{Caller, holds, resolve};
use super::organisations::AdminError;
use crate::audit::{Action, Auditor, Event};
use crate::client_config::{ClientConfig, ClientSpec, SecretHash, TokenEndpointAuthMethod, validate_clients};
use crate::crypto::tokens::random_token;
use crate::domain::role::Permission;
use crate::storage::audit::AuditRepository;
use crate::storage::clients::{ClientRepository, OAuthClientRow};
use crate::storage::oauth::OAuthRepository;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::{StorageError, StorageResult};

/// What an administrator registers.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub name: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes the client may ask for; the OIDC defaults when absent.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// A public client (a SPA or native app) has no secret and always uses PKCE.
    #[serde(default)]
    pub public: bool,
    /// First-party clients skip the consent page. Registered clients ask by default.
    #[serde(default)]
    pub first_party: bool,
    #[serde(default)]
    pub require_pkce: Option<bool>,
    /// `client_secret_basic` (the default) or `client_secret_post`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
}

/// A registered client as the API shows it (never with its secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ClientInfo {
    pub client_id: String,
    pub name: String,
    pub organisation_id: String,
    pub project_id: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub public: bool,
    pub first_party: bool,
    pub require_pkce: bool,
    pub token_endpoint_auth_method: &'static str,
    pub id_token_signed_response_alg: &'static str,
    pub created_at: NaiveDateTime,
}

/// A client just registered or given a new secret: the secret is here once, nowhere after.
#[derive(Clone)]
pub struct IssuedClient {
    pub client: ClientInfo,
    pub secret: Option<String>,
}

impl std::fmt::Debug for IssuedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedClient").field("client", &self.client).field("secret", &"***").finish()
    }
}

/// Validates a stored or new registration; a secret hash stands in for the secret.
fn validate(config: &ClientConfig, secret_hash: Option<&str>) -> Result<ClientSpec, AdminError> {
    // The file's validator wants the secret itself; a placeholder of the right length stands in.
    let placeholder = secret_hash.map(|_| "x".repeat(43));
    let config = ClientConfig { client_secret: placeholder.or_else(|| config.client_secret.clone()), ..config.clone() };
    let mut problems = Vec::new();
    let specs = validate_clients(std::slice::from_ref(&config), &|_| None, &mut problems);
    let mut spec = match (problems.is_empty(), specs.into_iter().next()) {
        (true, Some(spec)) => spec,
        _ => {
            let words: Vec<String> = problems.iter().map(|p| p.to_string().replacen("clients[0].", "", 1)).collect();
            return Err(AdminError::Invalid(words.join("; ")));
        }
    };
    if let Some(hash) = secret_hash {
        spec.secret = Some(
            SecretHash::from_hex(hash)
                .ok_or_else(|| StorageError::Corrupt(format!("client {} secret", spec.client_id)))?,
        );
    }
    Ok(spec)
}

fn info(row: &OAuthClientRow, spec: &ClientSpec) -> ClientInfo {
    ClientInfo {
        client_id: spec.client_id.clone(),
        name: spec.name.clone(),
        organisation_id: row.organisation_id.clone(),
        project_id: row.project_id.clone(),
        redirect_uris: spec.redirect_uris.clone(),
        post_logout_redirect_uris: spec.post_logout_redirect_uris.clone(),
        scopes: spec.scopes.clone(),
        public: spec.is_public(),
        first_party: spec.first_party,
        require_pkce: spec.require_pkce,
        token_endpoint_auth_method: spec.auth_method.as_str(),
        id_token_signed_response_alg: spec.id_token_alg.as_str(),
        created_at: row.created_at,
    }
}

fn spec_of(row: &OAuthClientRow) -> Result<ClientSpec, AdminError> {
    let config: ClientConfig = serde_json::from_str(&row.settings)
        .map_err(|e| StorageError::Corrupt(format!("client {} settings: {e}", row.id)))?;
    validate(&config, row.secret_hash.as_deref())
}

fn require_manage(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    organisation: &str,
    project: &str,
) -> Result<(crate::domain::OrganisationId, crate::domain::ProjectId), AdminError> {
    let (org, project) = resolve(conn, caller, organisation, Some(project))?;
    let project = project.ok_or(AdminError::NotFound("project"))?;
    if !holds(conn, caller, org, Some(project), Permission::ClientsManage)? {
        return Err(AdminError::Forbidden("managing clients needs clients_manage"));
    }
    Ok((org, project))
}

/// The client `id`, if the caller may manage it; anything else is `NotFound`, so ids don't leak.
fn find_managed(
    conn: &mut (impl ClientRepository + OrganisationRepository),
    caller: Caller,
    id: &str,
) -> Result<OAuthClientRow, AdminError> {
    let row = conn.find_client(id)?.ok_or(AdminError::NotFound("client"))?;
    require_manage(conn, caller, &row.organisation_id, &row.project_id).map_err(|e| match e {
        AdminError::NotFound(_) => AdminError::NotFound("client"),
        other => other,
    })?;
    Ok(row)
}

pub fn register(
    conn: &mut (impl ClientRepository + OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    project: &str,
    reg: &Registration,
) -> Result<IssuedClient, AdminError> {
    let (org, project) = require_manage(conn, caller, organisation, project)?;
    if reg.public && reg.token_endpoint_auth_method.is_some_and(|m| m != TokenEndpointAuthMethod::None) {
        return Err(AdminError::Invalid("a public client has no secret to authenticate with".into()));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let secret = (!reg.public).then(|| random_token(32));
    let config = ClientConfig {
        client_id: id.clone(),
        name: Some(reg.name.trim().to_owned()).filter(|n| !n.is_empty()),
        client_secret: None,
        client_secret_env: None,
        client_secret_file: None,
        redirect_uris: reg.redirect_uris.clone(),
        post_logout_redirect_uris: reg.post_logout_redirect_uris.clone(),
        scopes: reg.scopes.clone(),
        project: Some(project.to_string()),
        first_party: reg.first_party,
        require_pkce: reg.require_pkce.unwrap_or(true),
        token_endpoint_auth_method: reg.token_endpoint_auth_method,
        id_token_signed_response_alg: reg.id_token_signed_response_alg.clone(),
    };
    if config.name.as_ref().is_none_or(|n| n.chars().count() > 100 || n.chars().any(char::is_control)) {
        return Err(AdminError::Invalid("a client name is 1 to 100 printable characters".into()));
    }
    let hash = secret.as_deref().map(|s| SecretHash::of(s).to_hex());
    let spec = validate(&config, hash.as_deref())?;
    let row = OAuthClientRow {
        id: id.clone(),
        organisation_id: org.to_string(),
        project_id: project.to_string(),
        settings: serde_json::to_string(&config).map_err(|e| AdminError::Invalid(e.to_string()))?,
        secret_hash: hash,
        created_at: now,
        created_by: caller.actor().as_string(),
    };
    conn.insert_client(&row)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::ClientCreated)
            .target(project)
            .organisation(org)
            .detail("client", id.as_str())
            .detail("public", spec.is_public().to_string()),
    )?;
    Ok(IssuedClient { client: info(&row, &spec), secret })
}

pub fn list(
    conn: &mut (impl ClientRepository + OrganisationRepository),
    caller: Caller,
    organisation: &str,
    project: &str,
) -> Result<Vec<ClientInfo>, AdminError> {
    let (_, project) = require_manage(conn, caller, organisation, project)?;
    conn.clients_of_project(&project.to_string())?.iter().map(|row| Ok(info(row, &spec_of(row)?))).collect()
}

pub fn get(
    conn: &mut (impl ClientRepository + OrganisationRepository),
    caller: Caller,
    id: &str,
) -> Result<ClientInfo, AdminError> {
    let row = find_managed(conn, caller, id)?;
    Ok(info(&row, &spec_of(&row)?))
}

/// A new secret, valid at once; the old one stops working at once.
pub fn rotate_secret(
    conn: &mut (impl ClientRepository + OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    id: &str,
) -> Result<IssuedClient, AdminError> {
    let mut row = find_managed(conn, caller, id)?;
    if row.secret_hash.is_none() {
        return Err(AdminError::Invalid("a public client has no secret".into()));
    }
    let secret = random_token(32);
    let hash = SecretHash::of(&secret).to_hex();
    conn.set_client_secret_hash(id, &hash)?;
    row.secret_hash = Some(hash);
    let spec = spec_of(&row)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::ClientSecretRotated)
            .target(&row.project_id)
            .organisation(&row.organisation_id)
            .detail("client", id),
    )?;
    Ok(IssuedClient { client: info(&row, &spec), secret: Some(secret) })
}

/// Deletes the client and revokes everything issued to it.
pub fn delete(
    conn: &mut (impl ClientRepository + OrganisationRepository + OAuthRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    id: &str,
) -> Result<(), AdminError> {
    let row = find_managed(conn, caller, id)?;
    conn.delete_client(id)?;
    let grants = conn.revoke_client_grants(id, now)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::ClientDeleted)
            .target(&row.project_id)
            .organisation(&row.organisation_id)
            .detail("client", id)
            .detail("grants_revoked", grants.to_string()),
    )?;
    Ok(())
}

/// Every registered client, for the provider. One that no longer validates is left out and
/// logged, never fatal.
pub fn load(conn: &mut impl ClientRepository) -> StorageResult<Vec<ClientSpec>> {
    let mut out = Vec::new();
    for row in conn.clients()? {
        match spec_of(&row) {
            Ok(spec) => out.push(spec),
            Err(e) => tracing::error!(client = %row.id, error = %e, "a registered client no longer validates; skipped"),
        }
    }
    Ok(out)
}
