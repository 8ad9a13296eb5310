//! Token revocation (RFC 7009). Revoking a refresh or an access token revokes its grant, so
//! every token of that authorization stops working. A token that is unknown, or not the
//! caller's, changes nothing and is answered the same way.

use chrono::NaiveDateTime;

use super::Provider;
use super::errors::Outcome;
use super::token::{ClientCredentials, authenticate, verify_access_token};
use crate::crypto::tokens::hash_token;
use crate::storage::DbConnection;
use crate::storage::oauth::OAuthRepository;

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
        None => verify_access_token(conn, provider, now, token)?.map(|(_, g)| g.id),
    };
    if let Some(id) = grant_id {
        if conn.find_grant(&id)?.is_some_and(|g| g.client_id == client.client_id) {
            conn.revoke_grant(&id, now)?;
        }
    }
    Ok(Ok(()))
}
