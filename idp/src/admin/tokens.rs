//! API token use cases: create, list, rotate, revoke, and the organisation's lifetime limit.
//! Who may do what is decided here: a user manages their own personal tokens; `tokens_manage`
//! in the organisation (or the project) manages service and organisation tokens and may revoke
//! anyone's; the operator at the CLI may do everything.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDateTime};
use serde::Serialize;

use super::access::{permissions_of, role_in};
use super::caller::{holds, permissions, resolve};
use super::organisations::AdminError;
use crate::audit::{Action, Auditor, Event};
use crate::crypto::tokens::hash_token;
use crate::domain::role::Permission;
use crate::domain::{ApiTokenId, OrganisationId, ProjectId, UserId};
use crate::storage::api_tokens::{ApiTokenPolicyRow, ApiTokenRepository, ApiTokenRow, ApiTokenSecretRow};
use crate::storage::audit::AuditRepository;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::users::UserRepository;
use crate::storage::{StorageError, parse_id};
use crate::tokens::{TokenKind, format, permission_name, scopes_from_json};

/// The longest lifetime when an organisation has set none.
pub const DEFAULT_MAX_LIFETIME_DAYS: i64 = 365;
/// The lifetime when the caller names none.
pub const DEFAULT_LIFETIME_DAYS: i64 = 90;
/// The longest grace a rotation may give the old secret.
pub const MAX_GRACE_HOURS: i64 = 24 * 30;

pub use super::caller::Caller;

#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub kind: TokenKind,
    pub name: &'a str,
    /// Organisation id or slug.
    pub organisation: &'a str,
    /// Project id or slug within the organisation; required for personal and service tokens.
    pub project: Option<&'a str>,
    /// The user a personal token acts as (the caller, unless the operator names another).
    pub user: Option<UserId>,
    pub scopes: BTreeSet<Permission>,
    pub lifetime_days: Option<i64>,
}

/// A token's metadata, never its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TokenInfo {
    #[schema(value_type = String)]
    pub id: ApiTokenId,
    #[schema(value_type = String)]
    pub kind: TokenKind,
    pub name: String,
    #[schema(value_type = String)]
    pub organisation_id: OrganisationId,
    #[schema(value_type = Option<String>)]
    pub project_id: Option<ProjectId>,
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    pub scopes: Vec<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    /// Pseudonymised address of the last use.
    pub last_used_source: Option<String>,
    pub revoked_at: Option<NaiveDateTime>,
}

impl TokenInfo {
    /// `active`, `expired` or `revoked` at `now`.
    pub fn state(&self, now: NaiveDateTime) -> &'static str {
        match (self.revoked_at, self.expires_at <= now) {
            (Some(_), _) => "revoked",
            (None, true) => "expired",
            (None, false) => "active",
        }
    }
}

/// The one time a secret is seen.
#[derive(Clone, Serialize)]
pub struct IssuedToken {
    pub token: TokenInfo,
    pub secret: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken").field("token", &self.token).field("secret", &"***").finish()
    }
}

fn info(row: &ApiTokenRow) -> Result<TokenInfo, AdminError> {
    let kind = TokenKind::parse(&row.kind).ok_or_else(|| StorageError::Corrupt(format!("token kind {}", row.kind)))?;
    Ok(TokenInfo {
        id: parse_id(&row.id)?,
        kind,
        name: row.name.clone(),
        organisation_id: parse_id(&row.organisation_id)?,
        project_id: row.project_id.as_deref().map(parse_id).transpose()?,
        user_id: row.user_id.as_deref().map(parse_id).transpose()?,
        scopes: scopes_from_json(&row.scopes)?.into_iter().map(permission_name).collect(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        last_used_source: row.last_used_source.clone(),
        revoked_at: row.revoked_at,
    })
}

fn check_name(name: &str) -> Result<String, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid("a token name is 1 to 100 printable characters".into()));
    }
    Ok(name.to_owned())
}

fn max_lifetime_days(conn: &mut impl ApiTokenRepository, org: OrganisationId) -> Result<i64, AdminError> {
    Ok(conn.api_token_policy(&org.to_string())?.map_or(DEFAULT_MAX_LIFETIME_DAYS, |p| i64::from(p.max_lifetime_days)))
}

pub fn create(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository + UserRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    new: &NewToken<'_>,
) -> Result<IssuedToken, AdminError> {
    let name = check_name(new.name)?;
    let (org, project) = resolve(conn, caller, new.organisation, new.project)?;
    if new.scopes.is_empty() {
        return Err(AdminError::Invalid("a token needs at least one scope".into()));
    }
    let user = match new.kind {
        TokenKind::Personal => {
            let project = project.ok_or_else(|| AdminError::Invalid("a personal token belongs to a project".into()))?;
            let user = match (caller, new.user) {
                (Caller::User(me), None) => me,
                (Caller::User(me), Some(u)) if u == me => me,
                (Caller::User(_), Some(_)) => {
                    return Err(AdminError::Forbidden("personal tokens are created by their own user"));
                }
                (Caller::Operator, Some(u)) => u,
                (Caller::Operator, None) => return Err(AdminError::Invalid("name the user the token acts as".into())),
                (Caller::Token(_), _) => {
                    return Err(AdminError::Forbidden("personal tokens are created by their user, not by a token"));
                }
            };
            if conn.find_user(user)?.is_none_or(|u| u.disabled) {
                return Err(AdminError::NotFound("user"));
            }
            if role_in(conn, user, org, Some(project))?.is_none() {
                return Err(AdminError::Invalid("the user is not a member of the project".into()));
            }
            let allowed = permissions_of(conn, user, org, Some(project))?;
            if let Some(extra) = new.scopes.iter().find(|p| !allowed.contains(p)) {
                return Err(AdminError::Invalid(format!(
                    "scope {} is not among the user's permissions in the project",
                    permission_name(*extra)
                )));
            }
            Some(user)
        }
        TokenKind::Service => {
            if project.is_none() {
                return Err(AdminError::Invalid("a service token belongs to a project".into()));
            }
            if !holds(conn, caller, org, project, Permission::TokensManage)? {
                return Err(AdminError::Forbidden("managing tokens needs tokens_manage"));
            }
            None
        }
        TokenKind::Organisation => {
            if project.is_some() {
                return Err(AdminError::Invalid("an organisation token belongs to no project".into()));
            }
            if !holds(conn, caller, org, None, Permission::TokensManage)? {
                return Err(AdminError::Forbidden("managing tokens needs tokens_manage"));
            }
            None
        }
    };
    // Nobody hands out more than they hold.
    if let (Caller::User(_) | Caller::Token(_), None) = (caller, user) {
        let mine = permissions(conn, caller, org, project)?;
        if let Some(extra) = new.scopes.iter().find(|p| !mine.contains(p)) {
            return Err(AdminError::Invalid(format!(
                "scope {} is not among your permissions",
                permission_name(*extra)
            )));
        }
    }
    let max = max_lifetime_days(conn, org)?;
    let days = new.lifetime_days.unwrap_or(DEFAULT_LIFETIME_DAYS.min(max));
    if days < 1 || days > max {
        return Err(AdminError::Invalid(format!("a token lives 1 to {max} days in this organisation")));
    }
    let secret = format::generate(new.kind);
    let id = ApiTokenId::new();
    let row = ApiTokenRow {
        id: id.to_string(),
        kind: new.kind.as_str().to_owned(),
        name,
        organisation_id: org.to_string(),
        project_id: project.map(|p| p.to_string()),
        user_id: user.map(|u| u.to_string()),
        created_by: match caller {
            Caller::Operator => Some("cli".into()),
            Caller::User(u) => Some(u.to_string()),
            Caller::Token(t) => Some(format!("token:{}", t.token)),
        },
        scopes: serde_json::to_string(&new.scopes).map_err(|e| AdminError::Invalid(e.to_string()))?,
        created_at: now,
        expires_at: now + Duration::days(days),
        last_used_at: None,
        last_used_source: None,
        revoked_at: None,
    };
    conn.insert_api_token(
        &row,
        &ApiTokenSecretRow {
            secret_hash: hash_token(&secret),
            token_id: row.id.clone(),
            created_at: now,
            expires_at: None,
        },
    )?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::TokenCreated)
            .target(id)
            .detail("kind", new.kind.as_str())
            .detail("organisation", org.to_string())
            .detail("scopes", row.scopes.as_str()),
    )?;
    Ok(IssuedToken { token: info(&row)?, secret })
}

/// The tokens a caller may see in an organisation: all of them with `tokens_manage` there,
/// those of the projects where they hold it, and their own personal tokens.
pub fn list(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository),
    caller: Caller,
    organisation: &str,
) -> Result<Vec<TokenInfo>, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    let all = holds(conn, caller, org, None, Permission::TokensManage)?;
    let mut out = Vec::new();
    for row in conn.api_tokens_of_organisation(&org.to_string())? {
        let t = info(&row)?;
        let own = caller.user().is_some() && t.user_id == caller.user() && caller.reaches(org, t.project_id);
        let in_reach = t.project_id.is_some() && holds(conn, caller, org, t.project_id, Permission::TokensManage)?;
        if all || own || in_reach {
            out.push(t);
        }
    }
    Ok(out)
}

/// A user's own personal tokens, across organisations.
pub fn list_own(conn: &mut impl ApiTokenRepository, user: UserId) -> Result<Vec<TokenInfo>, AdminError> {
    conn.api_tokens_of_user(&user.to_string())?.iter().map(info).collect()
}

/// Whether the token is the caller's own personal token.
fn owns(caller: Caller, row: &ApiTokenRow) -> bool {
    caller.user().is_some_and(|u| row.user_id.as_deref() == Some(u.to_string().as_str()))
}

/// Finds a token the caller may manage; anything else is `NotFound`, so ids don't leak.
fn manageable(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository),
    caller: Caller,
    id: &str,
) -> Result<ApiTokenRow, AdminError> {
    let not_found = AdminError::NotFound("token");
    let Ok(id) = id.parse::<ApiTokenId>() else { return Err(not_found) };
    let row = conn.find_api_token(&id.to_string())?.ok_or(AdminError::NotFound("token"))?;
    let org: OrganisationId = parse_id(&row.organisation_id)?;
    let project: Option<ProjectId> = row.project_id.as_deref().map(parse_id).transpose()?;
    if (owns(caller, &row) && caller.reaches(org, project))
        || holds(conn, caller, org, project, Permission::TokensManage)?
    {
        Ok(row)
    } else {
        Err(not_found)
    }
}

/// Issues a new secret; the old one keeps working for `grace_hours` (zero ends it now).
pub fn rotate(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    id: &str,
    grace_hours: i64,
) -> Result<IssuedToken, AdminError> {
    if !(0..=MAX_GRACE_HOURS).contains(&grace_hours) {
        return Err(AdminError::Invalid(format!("the grace period is 0 to {MAX_GRACE_HOURS} hours")));
    }
    let row = manageable(conn, caller, id)?;
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Err(AdminError::Invalid("a revoked or expired token cannot be rotated".into()));
    }
    let kind = TokenKind::parse(&row.kind).ok_or_else(|| StorageError::Corrupt(format!("token kind {}", row.kind)))?;
    let secret = format::generate(kind);
    conn.rotate_api_token(
        &row.id,
        &ApiTokenSecretRow {
            secret_hash: hash_token(&secret),
            token_id: row.id.clone(),
            created_at: now,
            expires_at: None,
        },
        now + Duration::hours(grace_hours),
    )?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::TokenRotated).target(&row.id).detail("grace_hours", grace_hours),
    )?;
    Ok(IssuedToken { token: info(&row)?, secret })
}

pub fn revoke(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    id: &str,
) -> Result<(), AdminError> {
    let row = manageable(conn, caller, id)?;
    if conn.revoke_api_token(&row.id, now)? {
        auditor.record(conn, now, Event::new(caller.actor(), Action::TokenRevoked).target(&row.id))?;
    }
    Ok(())
}

/// Sets the longest lifetime the organisation's tokens may have (existing tokens keep theirs).
pub fn set_max_lifetime(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    days: i64,
) -> Result<(), AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    if !holds(conn, caller, org, None, Permission::PolicyManage)? {
        return Err(AdminError::Forbidden("changing token policy needs policy_manage"));
    }
    let days = i32::try_from(days)
        .ok()
        .filter(|d| (1..=3650).contains(d))
        .ok_or_else(|| AdminError::Invalid("the maximum lifetime is 1 to 3650 days".into()))?;
    conn.set_api_token_policy(&ApiTokenPolicyRow {
        organisation_id: org.to_string(),
        max_lifetime_days: days,
        updated_at: now,
    })?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::TokenPolicySet)
            .target(org)
            .organisation(org)
            .detail("max_lifetime_days", i64::from(days)),
    )?;
    Ok(())
}

/// Revokes the user's personal tokens that their memberships no longer cover, after a
/// membership was removed or lowered. Returns how many.
pub fn revoke_lapsed(
    conn: &mut (impl ApiTokenRepository + OrganisationRepository),
    user: UserId,
    now: NaiveDateTime,
) -> Result<usize, StorageError> {
    let mut n = 0;
    for row in conn.api_tokens_of_user(&user.to_string())? {
        if row.revoked_at.is_some() || row.expires_at <= now {
            continue;
        }
        let org: OrganisationId = parse_id(&row.organisation_id)?;
        let project: Option<ProjectId> = row.project_id.as_deref().map(parse_id).transpose()?;
        if role_in(conn, user, org, project)?.is_none() && conn.revoke_api_token(&row.id, now)? {
            n += 1;
        }
    }
    Ok(n)
}
