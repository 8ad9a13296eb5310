//! API tokens: personal (a user acting within one project), service (owned by a project) and
//! organisation tokens (admin and SCIM automation). Validation is the hot path of every app
//! that calls introspection: a format check, one SHA-256, and a cached lookup; never a slow hash.

pub mod cache;
pub mod format;

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::crypto::tokens::hash_token;
use crate::domain::role::{Permission, RoleRef};
use crate::domain::{ApiTokenId, OrganisationId, ProjectId, UserId};
use crate::storage::api_tokens::{ApiTokenRepository, ApiTokenRow};
use crate::storage::organisations::OrganisationRepository;
use crate::storage::users::UserRepository;
use crate::storage::{StorageError, parse_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Personal,
    Service,
    Organisation,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Personal => "pat",
            TokenKind::Service => "sat",
            TokenKind::Organisation => "oat",
        }
    }

    pub fn from_prefix(p: &str) -> Option<Self> {
        match p {
            "pat" => Some(TokenKind::Personal),
            "sat" => Some(TokenKind::Service),
            "oat" => Some(TokenKind::Organisation),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Personal => "personal",
            TokenKind::Service => "service",
            TokenKind::Organisation => "organisation",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "personal" => Some(TokenKind::Personal),
            "service" => Some(TokenKind::Service),
            "organisation" => Some(TokenKind::Organisation),
            _ => None,
        }
    }
}

/// Who a valid API token speaks for, and what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiPrincipal {
    pub token_id: ApiTokenId,
    pub kind: TokenKind,
    /// The user a personal token acts as.
    pub user_id: Option<UserId>,
    pub organisation_id: OrganisationId,
    pub project_id: Option<ProjectId>,
    pub scopes: BTreeSet<Permission>,
    /// The user's role in the token's project (or organisation), for personal tokens.
    pub roles: Vec<String>,
    /// When this secret stops working: the token's expiry or the end of a rotation's grace.
    pub expires_at: NaiveDateTime,
}

impl ApiPrincipal {
    /// The `sub` apps see: the user, or the token itself for service and organisation tokens.
    pub fn subject(&self) -> String {
        match self.user_id {
            Some(u) => u.to_string(),
            None => format!("token:{}", self.token_id),
        }
    }

    pub fn scope_string(&self) -> String {
        self.scopes.iter().map(|p| permission_name(*p)).collect::<Vec<_>>().join(" ")
    }

    pub fn allows(&self, p: Permission) -> bool {
        self.scopes.contains(&p)
    }

    /// The RFC 7662 answer about this token from `issuer`.
    pub fn introspection(&self, issuer: &str) -> serde_json::Value {
        serde_json::json!({
            "active": true,
            "token_type": "api_token",
            "token_kind": self.kind,
            "iss": issuer,
            "sub": self.subject(),
            "client_id": self.token_id.to_string(),
            "scope": self.scope_string(),
            "exp": self.expires_at.and_utc().timestamp(),
            "organisation_id": self.organisation_id.to_string(),
            "project_id": self.project_id.map(|x| x.to_string()),
            "roles": self.roles,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not in the token format, or a failed checksum: refused before any lookup.
    #[error("not an idp API token")]
    Malformed,
    #[error("unknown token")]
    Unknown,
    #[error("the token has expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
    /// The user it acts as is disabled or no longer a member.
    #[error("the token's user may no longer use it")]
    UserGone,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub fn permission_name(p: Permission) -> String {
    serde_json::to_value(p).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub fn parse_permission(s: &str) -> Option<Permission> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

pub(crate) fn scopes_from_json(raw: &str) -> Result<BTreeSet<Permission>, StorageError> {
    serde_json::from_str(raw).map_err(|e| StorageError::Corrupt(format!("token scopes: {e}")))
}

/// Validates a presented token against storage. `now` decides expiry.
pub fn authenticate(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository + UserRepository),
    presented: &str,
    now: NaiveDateTime,
) -> Result<ApiPrincipal, TokenError> {
    let kind = format::parse(presented).ok_or(TokenError::Malformed)?;
    let (token, secret) = conn.find_api_token_by_secret(&hash_token(presented))?.ok_or(TokenError::Unknown)?;
    if token.kind != kind.as_str() {
        return Err(TokenError::Unknown);
    }
    if token.revoked_at.is_some() {
        return Err(TokenError::Revoked);
    }
    let expires_at = secret.expires_at.map_or(token.expires_at, |s| s.min(token.expires_at));
    if expires_at <= now {
        return Err(TokenError::Expired);
    }
    principal(conn, &token, kind, expires_at)
}

fn principal(
    conn: &mut (impl OrganisationRepository + UserRepository),
    token: &ApiTokenRow,
    kind: TokenKind,
    expires_at: NaiveDateTime,
) -> Result<ApiPrincipal, TokenError> {
    let organisation_id: OrganisationId = parse_id(&token.organisation_id)?;
    let project_id: Option<ProjectId> = token.project_id.as_deref().map(parse_id).transpose()?;
    let user_id: Option<UserId> = token.user_id.as_deref().map(parse_id).transpose()?;
    let mut roles = Vec::new();
    let mut scopes = scopes_from_json(&token.scopes)?;
    if let Some(user) = user_id {
        if conn.find_user(user)?.is_none_or(|u| u.disabled) {
            return Err(TokenError::UserGone);
        }
        let role =
            crate::admin::access::role_in(conn, user, organisation_id, project_id)?.ok_or(TokenError::UserGone)?;
        roles.push(role_name(conn, role)?);
        // A personal token never does more than its user may do today.
        let allowed = crate::admin::access::permissions_of(conn, user, organisation_id, project_id)?;
        scopes.retain(|p| allowed.contains(p));
    }
    Ok(ApiPrincipal {
        token_id: parse_id(&token.id)?,
        kind,
        user_id,
        organisation_id,
        project_id,
        scopes,
        roles,
        expires_at,
    })
}

pub fn role_name(conn: &mut impl OrganisationRepository, role: RoleRef) -> Result<String, StorageError> {
    Ok(match role {
        RoleRef::Builtin(b) => b.as_str().to_owned(),
        RoleRef::Custom(id) => conn.find_custom_role(id)?.map(|r| r.name).unwrap_or_else(|| id.to_string()),
    })
}

/// Validation with the in-process cache in front of storage. The cache-only step runs on the
/// request thread; only a miss needs a database connection.
#[derive(Debug)]
pub struct Validator {
    cache: cache::TokenCache,
    issuer: String,
    /// Clients' `project` references, resolved once (a project never changes organisation).
    client_projects: std::sync::RwLock<std::collections::HashMap<String, (OrganisationId, ProjectId)>>,
}

impl Validator {
    pub fn new(ttl: std::time::Duration, issuer: &str) -> Self {
        Self {
            cache: cache::TokenCache::new(ttl),
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_projects: Default::default(),
        }
    }

    /// `Err(Malformed)` for anything not in the token format; `Ok(None)` when storage must answer.
    pub fn cached(&self, presented: &str, now: NaiveDateTime) -> Result<Option<cache::Hit>, TokenError> {
        format::parse(presented).ok_or(TokenError::Malformed)?;
        Ok(self.cache.get(&hash_token(presented), now))
    }

    /// Looks the token up in storage and remembers the answer.
    pub fn load(
        &self,
        conn: &mut (impl ApiTokenRepository + OrganisationRepository + UserRepository),
        presented: &str,
        now: NaiveDateTime,
    ) -> Result<cache::Hit, TokenError> {
        let generation = crate::storage::api_tokens::revocation_generation();
        let p = match authenticate(conn, presented, now) {
            Ok(p) => std::sync::Arc::new(p),
            Err(e) => {
                self.cache.forget(&hash_token(presented));
                return Err(e);
            }
        };
        let answer = bytes::Bytes::from(p.introspection(&self.issuer).to_string());
        self.cache.put(hash_token(presented), p.clone(), answer.clone(), generation);
        Ok(cache::Hit { principal: p, answer, touch: true })
    }

    /// Either step, for callers already holding a connection.
    pub fn validate(
        &self,
        conn: &mut (impl ApiTokenRepository + OrganisationRepository + UserRepository),
        presented: &str,
        now: NaiveDateTime,
    ) -> Result<cache::Hit, TokenError> {
        match self.cached(presented, now)? {
            Some(hit) => Ok(hit),
            None => self.load(conn, presented, now),
        }
    }

    pub fn client_project(&self, reference: &str) -> Option<(OrganisationId, ProjectId)> {
        self.client_projects.read().ok()?.get(reference).copied()
    }

    /// Resolves a client's `project` (`org-slug/project-slug` or a project id) and remembers it.
    pub fn resolve_client_project(
        &self,
        conn: &mut impl OrganisationRepository,
        reference: &str,
    ) -> Result<Option<(OrganisationId, ProjectId)>, StorageError> {
        if let Some(hit) = self.client_project(reference) {
            return Ok(Some(hit));
        }
        let resolved = resolve_project(conn, reference)?;
        if let (Some(r), Ok(mut w)) = (resolved, self.client_projects.write()) {
            w.insert(reference.to_owned(), r);
        }
        Ok(resolved)
    }
}

/// A client's `project` reference (`org-slug/project-slug` or a project id), resolved.
pub fn resolve_project(
    conn: &mut impl OrganisationRepository,
    reference: &str,
) -> Result<Option<(OrganisationId, ProjectId)>, StorageError> {
    let found = match reference.parse::<ProjectId>() {
        Ok(id) => conn.find_project(id)?,
        Err(_) => match reference.split_once('/') {
            Some((org, project)) => match conn.find_organisation_by_slug(org)? {
                Some(o) => conn.find_project_by_slug(o.id, project)?,
                None => None,
            },
            None => None,
        },
    };
    Ok(found.map(|p| (p.organisation_id, p.id)))
}

/// Whether a client may learn about a token: a client bound to a project sees its
/// organisation's tokens (project tokens only of its own project); an unbound client, the
/// operator's own resource server, sees every token.
pub fn visible_to(client_project: Option<Option<(OrganisationId, ProjectId)>>, p: &ApiPrincipal) -> bool {
    match client_project {
        None => true,
        Some(None) => false,
        Some(Some((org, project))) => p.organisation_id == org && p.project_id.is_none_or(|tp| tp == project),
    }
}

#[cfg(test)]
mod tests;
