//! Token introspection (RFC 7662), for authenticated confidential clients, about their own
//! tokens only: anything else is `{"active": false}`.

use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::errors::Outcome;
use super::token::{ClientCredentials, authenticate, live_grant, verify_access_token};
use super::{Provider, unix};
use crate::crypto::tokens::hash_token;
use crate::storage::DbConnection;
use crate::storage::oauth::OAuthRepository;

pub fn introspect(
    conn: &mut DbConnection,
    provider: &Provider,
    now: NaiveDateTime,
    creds: &ClientCredentials,
    token: &str,
) -> Outcome<Value> {
    let client = match authenticate(provider, creds, false) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let inactive = inactive();
    if let Some(claims) = super::grants::token_exchange::verify_exchanged(provider, now, token) {
        let ours = [claims.get("client_id"), claims.get("aud")]
            .iter()
            .any(|c| c.and_then(Value::as_str) == Some(client.client_id.as_str()));
        if !ours || !super::grants::token_exchange::live_exchanged(conn, &claims, now)? {
            return Ok(Ok(inactive));
        }
        let mut out = claims;
        if let Some(map) = out.as_object_mut() {
            map.insert("active".into(), true.into());
            map.insert("token_type".into(), "Bearer".into());
        }
        return Ok(Ok(out));
    }
    if let Some((claims, grant)) = verify_access_token(conn, provider, now, token)? {
        if grant.client_id != client.client_id {
            return Ok(Ok(inactive));
        }
        let mut out = claims;
        if let Some(map) = out.as_object_mut() {
            map.insert("active".into(), true.into());
            map.insert("token_type".into(), "Bearer".into());
        }
        return Ok(Ok(out));
    }
    if let Some(rt) = conn.find_refresh_token(&hash_token(token))? {
        if rt.consumed_at.is_none() && rt.expires_at > now {
            if let Some(grant) = live_grant(conn, &rt.grant_id)?.filter(|g| g.client_id == client.client_id) {
                return Ok(Ok(json!({
                    "active": true, "token_type": "refresh_token", "client_id": grant.client_id,
                    "sub": grant.user_id, "scope": grant.scopes, "iss": provider.issuer,
                    "iat": unix(rt.created_at), "exp": unix(rt.expires_at),
                })));
            }
        }
    }
    Ok(Ok(inactive))
}

pub fn inactive() -> Value {
    json!({"active": false})
}
