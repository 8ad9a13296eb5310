//! `[[clients]]` in the configuration file: the relying parties idp serves as an OpenID
//! Provider, and their validation (one problem per line, like `[[connectors]]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::Problem;

/// How a client proves who it is at the token, introspection and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl TokenEndpointAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
            TokenEndpointAuthMethod::None => "none",
        }
    }
}

/// One `[[clients]]` table as written.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// The project the client belongs to: `organisation-slug/project-slug` or a project id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default = "yes")]
    pub first_party: bool,
    #[serde(default = "yes")]
    pub require_pkce: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    /// `RS256` (the default, the OIDC baseline), `ES256` or `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
}

fn yes() -> bool {
    true
}

/// The scopes a client may ask for when its table does not say.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];
/// The scopes idp knows.
pub const KNOWN_SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];

/// A client secret's SHA-256: the only form idp keeps once the configuration is read.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }
    /// The hash as stored (hex).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(stored: &str) -> Option<Self> {
        hex::decode(stored).ok()?.try_into().ok().map(Self)
    }
    /// Constant-time comparison of a presented secret with this hash.
    pub fn matches(&self, presented: &str) -> bool {
        crate::crypto::tokens::ct_eq(&Self::of(presented).0, &self.0)
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(***)")
    }
}

/// A validated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    pub client_id: String,
    pub name: String,
    /// `None` for a public client.
    pub secret: Option<SecretHash>,
    pub auth_method: TokenEndpointAuthMethod,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub project: Option<String>,
    pub first_party: bool,
    /// Always true for public clients.
    pub require_pkce: bool,
    pub id_token_alg: crate::crypto::signing::SigningAlgorithm,
}

impl ClientSpec {
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }
}

fn problem(key: String, what: impl Into<String>, expected: impl Into<String>) -> Problem {
    Problem { key, problem: what.into(), expected: expected.into() }
}

/// A redirect URI as registered: absolute, no fragment, https or loopback http.
fn check_uri(raw: &str) -> Result<(), &'static str> {
    let u = Url::parse(raw).map_err(|_| "is not an absolute URL")?;
    if u.fragment().is_some() {
        return Err("has a fragment");
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("has credentials");
    }
    let loopback = matches!(u.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(u.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
        || u.host_str() == Some("localhost");
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err("is not https (http only on loopback)"),
    }
}

fn resolve_secret(
    c: &ClientConfig,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, Problem> {
    let Some(secret) = crate::connector_config::secret_from(
        c.client_secret.as_ref(),
        c.client_secret_env.as_ref(),
        c.client_secret_file.as_ref(),
        key,
        env,
    )?
    else {
        return Ok(None);
    };
    if secret.len() < 32 {
        return Err(problem(
            format!("{key}.client_secret"),
            "is shorter than 32 characters",
            "a random secret of at least 32 characters (e.g. openssl rand -base64 32)",
        ));
    }
    Ok(Some(secret))
}

pub fn validate_clients(
    list: &[ClientConfig],
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Vec<ClientSpec> {
    let mut out: Vec<ClientSpec> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let key = format!("clients[{i}]");
        let before = problems.len();
        let id_ok = (1..=128).contains(&c.client_id.len())
            && c.client_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !id_ok {
            problems.push(problem(
                format!("{key}.client_id"),
                format!("{:?} is not a client id", c.client_id),
                "1 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_', '~'",
            ));
        } else if list.iter().take(i).any(|o| o.client_id == c.client_id) {
            problems.push(problem(
                format!("{key}.client_id"),
                format!("{:?} is used by another client", c.client_id),
                "a unique id",
            ));
        }
        let secret = resolve_secret(c, &key, env).map_err(|p| problems.push(p)).ok().flatten();
        let has_secret = c.client_secret.is_some() || c.client_secret_env.is_some() || c.client_secret_file.is_some();
        let auth_method = match (c.token_endpoint_auth_method, has_secret) {
            (None, true) => TokenEndpointAuthMethod::ClientSecretBasic,
            (None, false) => TokenEndpointAuthMethod::None,
            (Some(TokenEndpointAuthMethod::None), true) => {
                problems.push(problem(
                    format!("{key}.token_endpoint_auth_method"),
                    "is \"none\" but the client has a secret",
                    "client_secret_basic or client_secret_post, or no secret",
                ));
                TokenEndpointAuthMethod::None
            }
            (Some(m @ TokenEndpointAuthMethod::None), false) => m,
            (Some(m), true) => m,
            (Some(m), false) => {
                problems.push(problem(
                    format!("{key}.token_endpoint_auth_method"),
                    format!("is {:?} but the client has no secret", m.as_str()),
                    "a client_secret (or _env, _file), or \"none\" for a public client",
                ));
                m
            }
        };
        if c.redirect_uris.is_empty() {
            problems.push(problem(format!("{key}.redirect_uris"), "is empty", "at least one redirect URI"));
        }
        for (field, uris) in
            [("redirect_uris", &c.redirect_uris), ("post_logout_redirect_uris", &c.post_logout_redirect_uris)]
        {
            for u in uris {
                if let Err(why) = check_uri(u) {
                    problems.push(problem(
                        format!("{key}.{field}"),
                        format!("{u:?} {why}"),
                        "absolute https URLs without a fragment (http only on loopback)",
                    ));
                }
            }
        }
        let scopes: Vec<String> =
            c.scopes.clone().unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect());
        for s in &scopes {
            // RFC 6749 §3.3 scope-token; names other than the OIDC ones are the client's own API
            // scopes (for client_credentials and access tokens), opaque to idp.
            let token = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
            if s.is_empty() || s.len() > 64 || !s.bytes().all(token) {
                problems.push(problem(
                    format!("{key}.scopes"),
                    format!("{s:?} is not a scope name"),
                    "1 to 64 printable characters without spaces, quotes or backslashes",
                ));
            }
        }
        if !scopes.iter().any(|s| s == "openid") {
            problems.push(problem(format!("{key}.scopes"), "lacks openid", "a list including \"openid\""));
        }
        if !has_secret && !c.require_pkce {
            problems.push(problem(
                format!("{key}.require_pkce"),
                "is false for a public client",
                "true (public clients always use PKCE), or give the client a secret",
            ));
        }
        if let Some(p) = &c.project {
            let slug = |s: &str| crate::domain::organisation::Slug::parse(s).is_ok();
            let well_formed = p.parse::<crate::domain::ProjectId>().is_ok()
                || p.split_once('/').is_some_and(|(o, pr)| slug(o) && slug(pr));
            if !well_formed {
                problems.push(problem(
                    format!("{key}.project"),
                    format!("{p:?} names no project"),
                    "organisation/project slugs such as acme/billing, or a project id",
                ));
            }
        }
        let id_token_alg = match c.id_token_signed_response_alg.as_deref() {
            None => crate::crypto::signing::SigningAlgorithm::Rs256,
            Some(a) => crate::crypto::signing::SigningAlgorithm::parse(a).unwrap_or_else(|| {
                problems.push(problem(
                    format!("{key}.id_token_signed_response_alg"),
                    format!("{a:?} is not offered"),
                    "RS256, ES256 or EdDSA",
                ));
                crate::crypto::signing::SigningAlgorithm::Rs256
            }),
        };
        if problems.len() == before {
            out.push(ClientSpec {
                client_id: c.client_id.clone(),
                name: c.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| c.client_id.clone()),
                secret: secret.as_deref().map(SecretHash::of),
                auth_method,
                redirect_uris: c.redirect_uris.clone(),
                post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
                scopes,
                project: c.project.clone(),
                first_party: c.first_party,
                require_pkce: c.require_pkce || !has_secret,
                id_token_alg,
            });
        }
    }
    out
}
