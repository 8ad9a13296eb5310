//! The token endpoint: client authentication, the grant types (one file each in `grants/`),
//! and the tokens they issue: RS256 ID tokens and RFC 9068 `at+jwt` access tokens.

use crate::crypto::signing::SigningAlgorithm;
use chrono::{Duration, NaiveDateTime};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::{ErrorCode, OAuthError, Outcome, err};
use super::{ACCESS_TOKEN_TTL_SECS, ID_TOKEN_TTL_SECS, Provider, REFRESH_TOKEN_TTL_SECS, unix};
use crate::client_config::{ClientSpec, TokenEndpointAuthMethod};
use crate::crypto::tokens::{hash_token, random_token};
use crate::storage::oauth::{GrantRow, OAuthRepository, RefreshTokenRow};
use crate::storage::users::UserRepository;
use crate::storage::{DbConnection, StorageError, parse_id};

#[derive(Debug, Default, Clone, Deserialize)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Token exchange (RFC 8693).
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    pub audience: Option<String>,
}

/// How the caller presented itself: HTTP Basic, and/or form fields.
#[derive(Debug, Default, Clone)]
pub struct ClientCredentials {
    pub basic: Option<(String, String)>,
    pub form_id: Option<String>,
    pub form_secret: Option<String>,
}

impl ClientCredentials {
    pub fn is_empty(&self) -> bool {
        self.basic.is_none() && self.form_id.is_none() && self.form_secret.is_none()
    }
}

/// Authenticates the client with its registered method. `allow_public` lets a public client
/// name itself (the token and revocation endpoints); introspection requires a secret.
pub fn authenticate(
    provider: &Provider,
    creds: &ClientCredentials,
    allow_public: bool,
) -> Result<std::sync::Arc<ClientSpec>, OAuthError> {
    let bad = || err(ErrorCode::InvalidClient, "Client authentication failed.");
    let (id, secret, method) = match (&creds.basic, &creds.form_secret) {
        (Some(_), Some(_)) => return Err(err(ErrorCode::InvalidRequest, "Use one client authentication method.")),
        (Some((id, secret)), None) => {
            if creds.form_id.as_deref().is_some_and(|f| f != id) {
                return Err(bad());
            }
            (id.as_str(), Some(secret.as_str()), TokenEndpointAuthMethod::ClientSecretBasic)
        }
        (None, Some(secret)) => (
            creds.form_id.as_deref().ok_or_else(bad)?,
            Some(secret.as_str()),
            TokenEndpointAuthMethod::ClientSecretPost,
        ),
        (None, None) => (creds.form_id.as_deref().ok_or_else(bad)?, None, TokenEndpointAuthMethod::None),
    };
    let client = provider.client(id).ok_or_else(bad)?;
    if client.auth_method != method {
        return Err(bad());
    }
    match (&client.secret, secret) {
        (Some(hash), Some(s)) if hash.matches(s) => Ok(client),
        (None, None) if allow_public => Ok(client),
        _ => Err(bad()),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Token exchange (RFC 8693) names what it issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// What to issue from a grant.
pub struct Issue<'a> {
    pub grant: &'a GrantRow,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub id_token: bool,
    pub refresh_parent: Option<Option<String>>,
}

/// The `jti` of an access token names its grant, so revoking the grant revokes the token.
pub fn grant_of_jti(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(g, _)| g)
}

/// The RFC 9068 claims every access token of `g` carries.
pub fn access_claims(provider: &Provider, now: NaiveDateTime, g: &GrantRow, scope: &str) -> Value {
    let iat = unix(now);
    let sub = g.user_id.as_deref().unwrap_or(&g.client_id);
    json!({
        "iss": provider.issuer, "sub": sub, "aud": provider.default_resource(), "client_id": g.client_id,
        "iat": iat, "exp": iat + ACCESS_TOKEN_TTL_SECS, "jti": format!("{}.{}", g.id, random_token(12)),
        "scope": scope,
    })
}

pub fn issue(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    what: Issue<'_>,
) -> Outcome<TokenResponse> {
    let g = what.grant;
    let iat = unix(now);
    let amr: Value = serde_json::from_str(&g.amr).unwrap_or_else(|_| json!([]));
    let scope = what.scopes.join(" ");
    let mut at = access_claims(provider, now, g, &scope);
    let project_claims = match (&g.user_id, provider.client(&g.client_id).and_then(|c| c.project.clone())) {
        (Some(user), Some(reference)) => project_roles(conn, parse_id(user)?, &reference)?,
        _ => None,
    };
    if let (Some(p), Some(map)) = (&project_claims, at.as_object_mut()) {
        p.insert_into(map);
    }
    if g.user_id.is_some() {
        if let Some(map) = at.as_object_mut() {
            map.insert("auth_time".into(), g.auth_time.map(unix).into());
            map.insert("amr".into(), amr.clone());
            if let Some(acr) = &g.acr {
                map.insert("acr".into(), acr.clone().into());
            }
        }
    }
    let access_token = provider.signer.sign(SigningAlgorithm::Es256, "at+jwt", &at, now)?;
    let id_token = match (&g.user_id, what.id_token) {
        (Some(user_id), true) => {
            let user = conn.find_user(parse_id(user_id)?)?;
            let Some(user) = user.filter(|u| !u.disabled) else {
                return Ok(Err(err(ErrorCode::InvalidGrant, "The user is no longer active.")));
            };
            let mut c = json!({
                "iss": provider.issuer, "sub": user_id, "aud": g.client_id, "azp": g.client_id,
                "iat": iat, "exp": iat + ID_TOKEN_TTL_SECS, "auth_time": g.auth_time.map(unix), "amr": amr,
            });
            if let Some(map) = c.as_object_mut() {
                if let Some(n) = what.nonce {
                    map.insert("nonce".into(), n.into());
                }
                if let Some(acr) = &g.acr {
                    map.insert("acr".into(), acr.clone().into());
                }
                if let Some(sid) = &g.session_id {
                    map.insert("sid".into(), sid.clone().into());
                }
                if what.scopes.iter().any(|s| s == "email") {
                    map.insert("email".into(), user.email.clone().into());
                    map.insert("email_verified".into(), user.email_verified.into());
                }
                if what.scopes.iter().any(|s| s == "profile") {
                    map.insert("name".into(), user.display_name.clone().into());
                }
                if let Some(p) = &project_claims {
                    p.insert_into(map);
                }
            }
            let alg = provider.client(&g.client_id).map_or(SigningAlgorithm::Rs256, |c| c.id_token_alg);
            Some(provider.signer.sign(alg, "JWT", &c, now)?)
        }
        _ => None,
    };
    let refresh_token = match what.refresh_parent {
        Some(parent_hash) if what.scopes.iter().any(|s| s == "offline_access") && g.user_id.is_some() => {
            let token = random_token(32);
            conn.insert_refresh_token(&RefreshTokenRow {
                token_hash: hash_token(&token),
                grant_id: g.id.clone(),
                parent_hash,
                created_at: now,
                expires_at: now + Duration::seconds(REFRESH_TOKEN_TTL_SECS),
                consumed_at: None,
            })?;
            Some(token)
        }
        _ => None,
    };
    Ok(Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope,
        id_token,
        refresh_token,
        issued_token_type: None,
    }))
}

/// Dispatches a token request to its grant.
pub fn exchange(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    creds: &ClientCredentials,
    params: &TokenParams,
) -> Outcome<TokenResponse> {
    let client = match authenticate(provider, creds, true) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    match params.grant_type.as_deref() {
        Some("authorization_code") => super::grants::authorization_code::redeem(conn, provider, now, &client, params),
        Some("refresh_token") => super::grants::refresh_token::refresh(conn, provider, now, &client, params),
        Some("client_credentials") => Ok(super::grants::client_credentials::grant(provider, now, &client, params)?),
        Some(super::grants::token_exchange::GRANT_TYPE) => {
            super::grants::token_exchange::exchange(conn, provider, now, &client, params)
        }
        Some(_) => Ok(Err(err(ErrorCode::UnsupportedGrantType, "This grant type is not supported."))),
        None => Ok(Err(err(ErrorCode::InvalidRequest, "grant_type is missing."))),
    }
}

/// `client_credentials` needs no storage at all: the web layer serves it without a
/// database connection.
pub fn client_credentials(
    provider: &Provider,
    now: NaiveDateTime,
    creds: &ClientCredentials,
    params: &TokenParams,
) -> Result<Result<TokenResponse, OAuthError>, StorageError> {
    match authenticate(provider, creds, true) {
        Ok(client) => super::grants::client_credentials::grant(provider, now, &client, params),
        Err(e) => Ok(Err(e)),
    }
}

/// A grant that is known and not revoked.
pub(crate) fn live_grant(conn: &mut DbConnection, id: &str) -> Result<Option<GrantRow>, StorageError> {
    Ok(conn.find_grant(id)?.filter(|g| g.revoked_at.is_none()))
}

/// An access token idp issued that is still good: signature, issuer, expiry, grant.
pub fn verify_access_token(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    token: &str,
) -> Result<Option<(Value, GrantRow)>, StorageError> {
    let Some(claims) = provider.signer.verify(token, "at+jwt") else { return Ok(None) };
    let fresh = claims.get("exp").and_then(Value::as_i64).is_some_and(|e| e > unix(now));
    if !fresh || claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Ok(None);
    }
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else { return Ok(None) };
    let Some(grant_id) = grant_of_jti(jti) else { return Ok(None) };
    if grant_id == super::grants::client_credentials::CLIENT_CREDENTIALS_GRANT {
        if conn.access_token_revoked(jti)? {
            return Ok(None);
        }
        let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let grant = GrantRow {
            id: grant_id.to_owned(),
            client_id: text("client_id"),
            user_id: None,
            session_id: None,
            scopes: text("scope"),
            auth_time: None,
            amr: "[]".into(),
            acr: None,
            created_at: claims
                .get("iat")
                .and_then(Value::as_i64)
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|d| d.naive_utc())
                .unwrap_or(now),
            revoked_at: None,
        };
        return Ok(Some((claims, grant)));
    }
    Ok(live_grant(conn, grant_id)?.map(|g| (claims, g)))
}

/// What a token of a project's client says about its user there.
struct ProjectClaims {
    project: String,
    roles: Vec<String>,
    groups: Vec<String>,
}

impl ProjectClaims {
    fn insert_into(&self, map: &mut serde_json::Map<String, Value>) {
        map.insert("project_id".into(), self.project.clone().into());
        map.insert("roles".into(), self.roles.clone().into());
        map.insert("groups".into(), self.groups.clone().into());
    }
}

/// The client's project, the user's role in it (empty for a non-member) and the groups the
/// organisation's identity provider put the user in over SCIM, for the `roles` and `groups`
/// claims. `None` when the client's project does not exist.
fn project_roles(
    conn: &mut DbConnection,
    user: crate::domain::UserId,
    reference: &str,
) -> Result<Option<ProjectClaims>, StorageError> {
    use crate::storage::scim::ScimRepository;
    let Some((org, project)) = crate::tokens::resolve_project(conn, reference)? else { return Ok(None) };
    let roles = match crate::admin::access::role_in(conn, user, org, Some(project))? {
        Some(role) => vec![crate::tokens::role_name(conn, role)?],
        None => Vec::new(),
    };
    let groups = conn.scim_group_names_of_user(&org.to_string(), &user.to_string())?;
    Ok(Some(ProjectClaims { project: project.to_string(), roles, groups }))
}
