//! Token revocation (RFC 7009). Revoking a refresh or an access token revokes its grant, so
//! every token of that authorization stops working; a client_credentials access token, which
//! has no grant, is revoked alone. A token that is unknown, or not the
//! caller's, changes nothing and is answered the same way.

use chrono::{DateTime, NaiveDateTime};

use super::Provider;
use super::errors::Outcome;
use super::grants::client_credentials::CLIENT_CREDENTIALS_GRANT;
use super::token::{ClientCredentials, authenticate, verify_access_token};
use crate::crypto::tokens::hash_token;
use crate::storage::DbConnection;
use crate::storage::oauth::{OAuthRepository, RevokedAccessTokenRow};

pub fn revoke(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    creds: &ClientCredentials,
    token: &str,
) -> Outcome<()> {
    let client = match authenticate(provider, creds, true) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let grant_id = match conn.find_refresh_token(&hash_token(token))? {
        Some(rt) => Some(rt.grant_id),
        None => match verify_access_token(conn, provider, now, token)? {
            // A client_credentials token has no grant row: it is revoked by its jti.
            Some((claims, g)) if g.id == CLIENT_CREDENTIALS_GRANT => {
                let jti = claims.get("jti").and_then(|j| j.as_str());
                let exp = claims.get("exp").and_then(|e| e.as_i64()).and_then(|e| DateTime::from_timestamp(e, 0));
                if let (Some(jti), Some(exp), true) = (jti, exp, g.client_id == client.client_id) {
                    conn.revoke_access_token(&RevokedAccessTokenRow {
                        jti: jti.to_owned(),
                        client_id: g.client_id,
                        revoked_at: now,
                        expires_at: exp.naive_utc(),
                    })?;
                }
                None
            }
            other => other.map(|(_, g)| g.id),
        },
    };
    if let Some(id) = grant_id {
        if conn.find_grant(&id)?.is_some_and(|g| g.client_id == client.client_id) {
            conn.revoke_grant(&id, now)?;
        }
    }
    Ok(Ok(()))
}
