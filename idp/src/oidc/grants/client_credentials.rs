//! `grant_type=client_credentials`: a confidential client acting for itself. No user, no ID
//! token, no refresh token; `sub` is the client id.

use chrono::NaiveDateTime;

use crate::client_config::ClientSpec;
use crate::oidc::errors::{ErrorCode, Outcome, err};
use crate::oidc::token::{Issue, TokenParams, TokenResponse, issue};
use crate::oidc::{Provider, parse_scopes};
use crate::storage::DbConnection;
use crate::storage::oauth::GrantRow;

/// The grant id in the `jti` of client_credentials access tokens, which have no grant row.
pub const CLIENT_CREDENTIALS_GRANT: &str = "cc";

/// Scopes that only make sense with a user.
const USER_SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];

pub fn grant(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    client: &ClientSpec,
    p: &TokenParams,
) -> Outcome<TokenResponse> {
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
        scopes: scopes.join(" "),
        auth_time: None,
        amr: "[]".into(),
        acr: None,
        created_at: now,
        revoked_at: None,
    };
    issue(
        conn,
        provider,
        now,
        Issue { grant: &grant, scopes: &scopes, nonce: None, id_token: false, refresh_parent: None },
    )
}
