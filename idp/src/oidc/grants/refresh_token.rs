//! `grant_type=refresh_token` with rotation: each use returns a new refresh token and consumes
//! the old one. A consumed token presented again means it was copied: the whole family (the
//! grant) is revoked, the legitimate holder's tokens included (RFC 9700 §4.14.2).

use chrono::NaiveDateTime;

use crate::client_config::ClientSpec;
use crate::crypto::tokens::hash_token;
use crate::oidc::errors::{ErrorCode, Outcome, err};
use crate::oidc::token::{Issue, TokenParams, TokenResponse, issue, live_grant};
use crate::oidc::{Provider, parse_scopes};
use crate::storage::DbConnection;
use crate::storage::oauth::{OAuthRepository, Use};

pub fn refresh(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    client: &ClientSpec,
    p: &TokenParams,
) -> Outcome<TokenResponse> {
    let invalid = || Ok(Err(err(ErrorCode::InvalidGrant, "The refresh token is invalid, expired or revoked.")));
    let Some(token) = p.refresh_token.as_deref() else {
        return Ok(Err(err(ErrorCode::InvalidRequest, "refresh_token is required.")));
    };
    let hash = hash_token(token);
    let Some(found) = conn.find_refresh_token(&hash)? else { return invalid() };
    let Some(grant) = conn.find_grant(&found.grant_id)? else { return invalid() };
    if grant.client_id != client.client_id {
        return invalid();
    }
    match conn.use_refresh_token(&hash, now)? {
        Use::Unknown => return invalid(),
        Use::Again(row) => {
            tracing::warn!(client = %client.client_id, "refresh token reused; token family revoked");
            conn.revoke_grant(&row.grant_id, now)?;
            return invalid();
        }
        Use::First(_) => {}
    }
    if found.expires_at <= now {
        return invalid();
    }
    let Some(grant) = live_grant(conn, &grant.id)? else { return invalid() };
    let granted = parse_scopes(&grant.scopes);
    let scopes = match p.scope.as_deref() {
        None => granted,
        Some(raw) => {
            let asked = parse_scopes(raw);
            if asked.iter().any(|s| !granted.contains(s)) {
                return Ok(Err(err(ErrorCode::InvalidScope, "A refresh cannot widen the granted scopes.")));
            }
            asked
        }
    };
    let with_id_token = scopes.iter().any(|s| s == "openid");
    issue(
        conn,
        provider,
        now,
        Issue {
            grant: &grant,
            scopes: &scopes,
            nonce: None,
            id_token: with_id_token,
            refresh_parent: Some(Some(hash)),
        },
    )
}
