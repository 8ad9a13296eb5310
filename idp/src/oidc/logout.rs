//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). The `id_token_hint` names the
//! client and the session; `post_logout_redirect_uri` must be registered for that client,
//! exactly. A request that fails a check ends nothing.

use serde::Deserialize;

use super::Provider;
use crate::client_config::ClientSpec;
use crate::domain::{SessionId, UserId};

#[derive(Debug, Default, Clone, Deserialize)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub client_id: Option<String>,
    pub state: Option<String>,
}

/// A checked logout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    pub user: UserId,
    pub session: Option<SessionId>,
    /// Where to send the browser afterwards (with `state`), if the client asked.
    pub redirect: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    #[error("id_token_hint is missing or was not issued by idp")]
    BadHint,
    #[error("client_id does not match the id_token_hint")]
    WrongClient,
    #[error("post_logout_redirect_uri is not registered for the client")]
    UnregisteredRedirect,
}

/// Checks a logout request. Expired ID tokens are fine as hints (the spec allows them).
pub fn check(provider: &Provider, p: &LogoutParams) -> Result<Logout, LogoutError> {
    let claims = p
        .id_token_hint
        .as_deref()
        .and_then(|t| provider.signer.verify(t, "JWT"))
        .filter(|c| c.get("iss").and_then(|i| i.as_str()) == Some(provider.issuer.as_str()))
        .ok_or(LogoutError::BadHint)?;
    let client: std::sync::Arc<ClientSpec> =
        claims.get("aud").and_then(|a| a.as_str()).and_then(|a| provider.client(a)).ok_or(LogoutError::BadHint)?;
    if p.client_id.as_deref().is_some_and(|c| c != client.client_id) {
        return Err(LogoutError::WrongClient);
    }
    let user: UserId =
        claims.get("sub").and_then(|s| s.as_str()).and_then(|s| s.parse().ok()).ok_or(LogoutError::BadHint)?;
    let session = claims.get("sid").and_then(|s| s.as_str()).and_then(|s| s.parse().ok());
    let redirect = match p.post_logout_redirect_uri.as_deref() {
        None => None,
        Some(uri) if client.post_logout_redirect_uris.iter().any(|u| u == uri) => {
            let mut u = url::Url::parse(uri).map_err(|_| LogoutError::UnregisteredRedirect)?;
            if let Some(state) = &p.state {
                u.query_pairs_mut().append_pair("state", state);
            }
            Some(u.to_string())
        }
        Some(_) => return Err(LogoutError::UnregisteredRedirect),
    };
    Ok(Logout { user, session, redirect })
}
