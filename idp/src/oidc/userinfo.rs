//! The UserInfo endpoint (OIDC Core §5.3): claims for the access token's user and scopes.

use chrono::NaiveDateTime;
use serde_json::{Value, json};

use super::errors::{ErrorCode, Outcome, err};
use super::token::verify_access_token;
use super::{Provider, parse_scopes};
use crate::storage::users::UserRepository;
use crate::storage::{DbConnection, parse_id};

pub fn userinfo(conn: &mut DbConnection, provider: &Provider, now: NaiveDateTime, token: &str) -> Outcome<Value> {
    let invalid = || Ok(Err(err(ErrorCode::InvalidToken, "The access token is invalid, expired or revoked.")));
    let Some((_, grant)) = verify_access_token(conn, provider, now, token)? else { return invalid() };
    let Some(user_id) = grant.user_id.as_deref() else { return invalid() };
    let Some(user) = conn.find_user(parse_id(user_id)?)?.filter(|u| !u.disabled) else { return invalid() };
    let scopes = parse_scopes(&grant.scopes);
    if !scopes.iter().any(|s| s == "openid") {
        return Ok(Err(err(ErrorCode::InvalidToken, "The access token was not issued for openid.")));
    }
    let mut claims = json!({"sub": user_id});
    if let Some(map) = claims.as_object_mut() {
        if scopes.iter().any(|s| s == "email") {
            map.insert("email".into(), user.email.into());
            map.insert("email_verified".into(), user.email_verified.into());
        }
        if scopes.iter().any(|s| s == "profile") {
            map.insert("name".into(), user.display_name.into());
        }
    }
    Ok(Ok(claims))
}
