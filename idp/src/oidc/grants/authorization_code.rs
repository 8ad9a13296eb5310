//! `grant_type=authorization_code`: single use, at most 60 s old, bound to the client and the
//! redirect URI, PKCE checked (and a verifier without a challenge refused: no downgrade). A
//! code presented again, or by another client, revokes everything its grant issued.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use crate::client_config::ClientSpec;
use crate::crypto::tokens::{ct_eq, hash_token};
use crate::oidc::errors::{ErrorCode, Outcome, err};
use crate::oidc::token::{Issue, TokenParams, TokenResponse, issue, live_grant};
use crate::oidc::{Provider, parse_scopes};
use crate::storage::DbConnection;
use crate::storage::oauth::{OAuthRepository, Use};

fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

pub fn redeem(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    client: &ClientSpec,
    p: &TokenParams,
) -> Outcome<TokenResponse> {
    let invalid = || Ok(Err(err(ErrorCode::InvalidGrant, "The authorization code is invalid, expired or used.")));
    let (Some(code), Some(redirect_uri)) = (p.code.as_deref(), p.redirect_uri.as_deref()) else {
        return Ok(Err(err(ErrorCode::InvalidRequest, "code and redirect_uri are required.")));
    };
    let row = match conn.use_code(&hash_token(code), now)? {
        Use::Unknown => return invalid(),
        Use::Again(row) => {
            tracing::warn!(client = %client.client_id, "authorization code redeemed twice; grant revoked");
            conn.revoke_grant(&row.grant_id, now)?;
            return invalid();
        }
        Use::First(row) => row,
    };
    if row.client_id != client.client_id {
        tracing::warn!(client = %client.client_id, "authorization code presented by another client; grant revoked");
        conn.revoke_grant(&row.grant_id, now)?;
        return invalid();
    }
    if row.expires_at <= now || row.redirect_uri != redirect_uri {
        return invalid();
    }
    let pkce_ok = match (&row.code_challenge, p.code_verifier.as_deref()) {
        (Some(challenge), Some(v)) if valid_verifier(v) => {
            ct_eq(URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())).as_bytes(), challenge.as_bytes())
        }
        (None, None) => !client.require_pkce,
        _ => false,
    };
    if !pkce_ok {
        return invalid();
    }
    let Some(grant) = live_grant(conn, &row.grant_id)? else { return invalid() };
    let scopes = parse_scopes(&grant.scopes);
    issue(
        conn,
        provider,
        now,
        Issue {
            grant: &grant,
            scopes: &scopes,
            nonce: row.nonce.as_deref(),
            id_token: true,
            refresh_parent: Some(None),
        },
    )
}
