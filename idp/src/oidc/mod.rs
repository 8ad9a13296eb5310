//! idp as an OpenID Provider: discovery, JWKS, the authorization code flow with PKCE, the
//! token endpoint (`grants/`), userinfo, introspection (RFC 7662), revocation (RFC 7009) and
//! RP-initiated logout. Domain logic only: `web::oidc` adapts it to HTTP.

pub mod authorize;
pub mod clients;
pub mod discovery;
pub mod errors;
pub mod grants;
pub mod introspection;
pub mod keys;
pub mod logout;
pub mod revocation;
pub mod rotation;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use crate::client_config::ClientSpec;
use keys::Signer;

/// An authorization code is good for this long (RFC 9700: short-lived).
pub const CODE_TTL_SECS: i64 = 60;
pub const ACCESS_TOKEN_TTL_SECS: i64 = 600;
pub const ID_TOKEN_TTL_SECS: i64 = 600;
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;

/// What the provider needs: its issuer, the registered clients and the signing key.
#[derive(Debug, Clone)]
pub struct Provider {
    pub issuer: String,
    pub clients: Arc<clients::Clients>,
    pub signer: Arc<Signer>,
}

impl Provider {
    pub fn new(issuer: &str, clients: Vec<ClientSpec>, signer: Signer) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            clients: Arc::new(clients::Clients::new(clients)),
            signer: Arc::new(signer),
        }
    }

    pub fn client(&self, client_id: &str) -> Option<Arc<ClientSpec>> {
        self.clients.get(client_id)
    }

    /// The audience of access tokens when no other resource is named: idp's own APIs.
    pub fn default_resource(&self) -> &str {
        &self.issuer
    }
}

/// Space-separated scopes, deduplicated, in the order given.
pub fn parse_scopes(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// Housekeeping: removes codes, refresh tokens and grants that can no longer be used. Rows are
/// kept one access-token lifetime past their expiry, since access tokens issued from them
/// check their grant until then.
pub fn purge(
    conn: &mut impl crate::storage::oauth::OAuthRepository,
    now: chrono::NaiveDateTime,
) -> crate::storage::StorageResult<usize> {
    conn.purge_oauth(now - chrono::Duration::seconds(ACCESS_TOKEN_TTL_SECS + CODE_TTL_SECS))
}

pub(crate) fn unix(t: chrono::NaiveDateTime) -> i64 {
    t.and_utc().timestamp()
}

#[cfg(test)]
mod tests;
