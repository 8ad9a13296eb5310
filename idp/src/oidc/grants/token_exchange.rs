//! Token exchange (RFC 8693): a confidential client trades an API token for a short-lived JWT
//! access token that apps verify offline against JWKS. The JWT never outlives the API token (or
//! the current secret's rotation grace), and lives at most `ACCESS_TOKEN_TTL_SECS`: a revocation
//! reaches offline verifiers within that time, and introspection of the JWT at once.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use serde_json::{Value, json};

use crate::client_config::ClientSpec;
use crate::crypto::signing::SigningAlgorithm;
use crate::crypto::tokens::random_token;
use crate::oidc::errors::{ErrorCode, Outcome, err};
use crate::oidc::token::{TokenParams, TokenResponse};
use crate::oidc::{ACCESS_TOKEN_TTL_SECS, Provider, parse_scopes, unix};
use crate::storage::api_tokens::ApiTokenRepository;
use crate::storage::{DbConnection, StorageError};
use crate::tokens::{self, ApiPrincipal, TokenError, parse_permission};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The claim that names the API token an access token was exchanged from.
pub const API_TOKEN_CLAIM: &str = "api_token_id";

pub fn exchange(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    client: &ClientSpec,
    p: &TokenParams,
) -> Outcome<TokenResponse> {
    if client.is_public() {
        return Ok(Err(err(ErrorCode::UnauthorizedClient, "A public client cannot exchange tokens.")));
    }
    let Some(subject) = p.subject_token.as_deref().filter(|s| !s.is_empty()) else {
        return Ok(Err(err(ErrorCode::InvalidRequest, "subject_token is missing.")));
    };
    if p.subject_token_type.as_deref() != Some(ACCESS_TOKEN_TYPE) {
        return Ok(Err(err(ErrorCode::InvalidRequest, "subject_token_type must be the access_token type.")));
    }
    if p.requested_token_type.as_deref().is_some_and(|t| t != ACCESS_TOKEN_TYPE && t != JWT_TYPE) {
        return Ok(Err(err(ErrorCode::InvalidRequest, "Only access tokens are issued.")));
    }
    let invalid = || Ok(Err(err(ErrorCode::InvalidGrant, "The subject token is not valid.")));
    let principal = match tokens::authenticate(conn, subject, now) {
        Ok(pr) => pr,
        Err(TokenError::Storage(e)) => return Err(e),
        Err(_) => return invalid(),
    };
    let client_project = match &client.project {
        Some(r) => Some(tokens::resolve_project(conn, r)?),
        None => None,
    };
    if !tokens::visible_to(client_project, &principal) {
        return invalid();
    }
    let scopes = match narrowed(&principal, p.scope.as_deref()) {
        Some(s) => s,
        None => return Ok(Err(err(ErrorCode::InvalidScope, "A requested scope is beyond the subject token's."))),
    };
    let audience = match p.audience.as_deref() {
        None => client.client_id.clone(),
        Some(a) if provider.client(a).is_some() || a == provider.issuer => a.to_owned(),
        Some(_) => return Ok(Err(err(ErrorCode::InvalidTarget, "The audience is not a registered client."))),
    };
    let iat = unix(now);
    let exp = (iat + ACCESS_TOKEN_TTL_SECS).min(unix(principal.expires_at));
    let scope = scopes.iter().map(|s| tokens::permission_name(*s)).collect::<Vec<_>>().join(" ");
    let claims = json!({
        "iss": provider.issuer, "sub": principal.subject(), "aud": audience, "client_id": client.client_id,
        "iat": iat, "exp": exp, "jti": format!("x.{}", random_token(12)),
        "scope": scope,
        API_TOKEN_CLAIM: principal.token_id.to_string(), "token_kind": principal.kind,
        "organisation_id": principal.organisation_id.to_string(),
        "project_id": principal.project_id.map(|x| x.to_string()), "roles": principal.roles,
    });
    let access_token = provider.signer.sign(SigningAlgorithm::Es256, "at+jwt", &claims, now)?;
    Ok(Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: exp - iat,
        scope,
        id_token: None,
        refresh_token: None,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
    }))
}

/// The requested scopes if all are the token's; all of the token's when none are asked for.
fn narrowed(principal: &ApiPrincipal, requested: Option<&str>) -> Option<BTreeSet<crate::domain::role::Permission>> {
    let Some(raw) = requested.filter(|r| !r.trim().is_empty()) else { return Some(principal.scopes.clone()) };
    parse_scopes(raw).iter().map(|s| parse_permission(s).filter(|p| principal.allows(*p))).collect()
}

/// The claims of an exchanged access token whose API token is still alive, for introspection.
pub fn live_exchanged(conn: &mut DbConnection, claims: &Value, now: NaiveDateTime) -> Result<bool, StorageError> {
    let Some(id) = claims.get(API_TOKEN_CLAIM).and_then(Value::as_str) else { return Ok(false) };
    Ok(conn.find_api_token(id)?.is_some_and(|t| t.revoked_at.is_none() && t.expires_at > now))
}

/// The claims of an exchanged access token idp signed, unexpired and from this issuer.
pub fn verify_exchanged(provider: &Provider, now: NaiveDateTime, token: &str) -> Option<Value> {
    let claims = provider.signer.verify(token, "at+jwt")?;
    claims.get(API_TOKEN_CLAIM)?;
    let fresh = claims.get("exp").and_then(Value::as_i64).is_some_and(|e| e > unix(now));
    (fresh && claims.get("iss").and_then(Value::as_str) == Some(provider.issuer.as_str())).then_some(claims)
}
