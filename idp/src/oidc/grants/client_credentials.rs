//! `grant_type=client_credentials`: a confidential client acting for itself. No user, no ID
//! token, no refresh token; `sub` is the client id.

use chrono::NaiveDateTime;

use crate::client_config::ClientSpec;
use crate::crypto::signing::SigningAlgorithm;
use crate::oidc::errors::{ErrorCode, OAuthError, err};
use crate::oidc::token::{TokenParams, TokenResponse, access_claims};
use crate::oidc::{ACCESS_TOKEN_TTL_SECS, Provider, parse_scopes};
use crate::storage::StorageError;
use crate::storage::oauth::GrantRow;

/// The grant id in the `jti` of client_credentials access tokens, which have no grant row.
pub const CLIENT_CREDENTIALS_GRANT: &str = "cc";

/// Scopes that only make sense with a user.
const USER_SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];

pub fn grant(
    provider: &Provider,
    now: NaiveDateTime,
    client: &ClientSpec,
    p: &TokenParams,
) -> Result<Result<TokenResponse, OAuthError>, StorageError> {
    if client.is_public() {
        return Ok(Err(err(ErrorCode::UnauthorizedClient, "A public client cannot use client_credentials.")));
    }
    let scopes = parse_scopes(p.scope.as_deref().unwrap_or_default());
    if scopes.iter().any(|s| USER_SCOPES.contains(&s.as_str()) || !client.scopes.contains(s)) {
        return Ok(Err(err(ErrorCode::InvalidScope, "A requested scope is not allowed for client_credentials.")));
    }
    // Nothing is written: the token stands alone, and its revocation (RFC 7009) is recorded
    // by its jti instead. This grant is the hot path of service-to-service calls.
    let grant = GrantRow {
        id: CLIENT_CREDENTIALS_GRANT.to_owned(),
        client_id: client.client_id.clone(),
        user_id: None,
        session_id: None,
        scopes: String::new(),
        auth_time: None,
        amr: "[]".into(),
        acr: None,
        created_at: now,
        revoked_at: None,
    };
    let scope = scopes.join(" ");
    let claims = access_claims(provider, now, &grant, &scope);
    let access_token = provider.signer.sign(SigningAlgorithm::Es256, "at+jwt", &claims, now)?;
    Ok(Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ACCESS_TOKEN_TTL_SECS,
        scope,
        id_token: None,
        refresh_token: None,
        issued_token_type: None,
    }))
}
