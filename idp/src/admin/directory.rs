//! Organisations, projects, members and roles as an organisation's administrators manage them.
//! Every use case resolves what the caller names (unknown and invisible alike are `NotFound`)
//! and then checks one permission.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::caller::{Caller, permissions, require, resolve};
use super::organisations::{AdminError, create_organisation, create_project, remove_organisation_member};
use crate::audit::{Action, Auditor, Event};
use crate::domain::organisation::{Organisation, Project};
use crate::domain::role::{BuiltinRole, CustomRole, Permission, RoleRef};
use crate::domain::{CustomRoleId, OrganisationId, UserId};
use crate::storage::StorageError;
use crate::storage::api_tokens::ApiTokenRepository;
use crate::storage::audit::AuditRepository;
use crate::storage::clients::ClientRepository;
use crate::storage::connectors::ConnectorRepository;
use crate::storage::oauth::OAuthRepository;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::secrets::SecretRepository;
use crate::storage::users::UserRepository;
use crate::tokens::permission_name;

/// A member as the API shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MemberInfo {
    #[schema(value_type = String)]
    pub user_id: UserId,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// A built-in role's name, or a custom role's id.
    pub role: String,
    /// `None` when an administrator set it; `connector:<id>` when a group mapping did.
    pub source: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339")]
    pub created_at: NaiveDateTime,
}

/// A role the organisation can hand out.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RoleInfo {
    /// A built-in role's name, or a custom role's id.
    pub id: String,
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
}

pub(crate) fn role_string(role: RoleRef) -> String {
    match role {
        RoleRef::Builtin(b) => b.as_str().to_owned(),
        RoleRef::Custom(id) => id.to_string(),
    }
}

fn role_info(id: String, name: String, builtin: bool, permissions: &BTreeSet<Permission>) -> RoleInfo {
    RoleInfo { id, name, builtin, permissions: permissions.iter().map(|p| permission_name(*p)).collect() }
}

/// The organisations the caller belongs to (all of them for the operator; its own for a token).
pub fn list_organisations(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
) -> Result<Vec<Organisation>, AdminError> {
    let mut out = Vec::new();
    for org in conn.list_organisations()? {
        if permissions(conn, caller, org.id, None)?.contains(&Permission::OrganisationRead) {
            out.push(org);
        }
    }
    Ok(out)
}

pub fn get_organisation(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    organisation: &str,
) -> Result<Organisation, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::OrganisationRead, "reading the organisation needs organisation_read")?;
    conn.find_organisation(org)?.ok_or(AdminError::NotFound("organisation"))
}

/// A signed-in user creates an organisation and becomes its owner. Tokens belong to an
/// organisation already and cannot create others.
pub fn create_organisation_as(
    conn: &mut (impl OrganisationRepository + UserRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    name: &str,
    slug: Option<&str>,
) -> Result<Organisation, AdminError> {
    let owners: Vec<UserId> = match caller {
        Caller::User(u) => vec![u],
        Caller::Operator => Vec::new(),
        Caller::Token(_) => return Err(AdminError::Forbidden("an API token cannot create organisations")),
    };
    create_organisation(conn, auditor, now, caller.actor(), name, slug, &owners)
}

/// Deletes an organisation and everything it owns from the live database. `confirm` must be
/// the organisation's slug, so a stray call does not do it.
pub fn delete_organisation(
    conn: &mut (
             impl OrganisationRepository
             + AuditRepository
             + ApiTokenRepository
             + ClientRepository
             + OAuthRepository
             + ConnectorRepository
             + SecretRepository
         ),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    confirm: &str,
) -> Result<(), AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(
        conn,
        caller,
        org,
        None,
        Permission::OrganisationDelete,
        "deleting an organisation needs organisation_delete",
    )?;
    let found = conn.find_organisation(org)?.ok_or(AdminError::NotFound("organisation"))?;
    if confirm != found.slug.as_str() {
        return Err(AdminError::Invalid("to confirm, give the organisation's slug".into()));
    }
    let key = org.to_string();
    // Revoked first, so caches everywhere drop them, then deleted with the rest.
    let mut tokens = 0usize;
    for t in conn.api_tokens_of_organisation(&key)? {
        if conn.revoke_api_token(&t.id, now)? {
            tokens += 1;
        }
    }
    let mut grants = 0usize;
    for c in conn.clients()?.into_iter().filter(|c| c.organisation_id == key) {
        grants += conn.revoke_client_grants(&c.id, now)?;
    }
    let mut connectors = 0usize;
    for c in conn.organisation_connectors()?.into_iter().filter(|c| c.organisation_id == key) {
        if let Some(row) = conn.delete_organisation_connector(&c.id)? {
            conn.delete_secret(crate::storage::parse_id(&row.secret_id)?)?;
            connectors += 1;
        }
    }
    conn.delete_api_tokens_of_organisation(&key)?;
    conn.delete_organisation(org).map_err(|e| match e {
        StorageError::NotFound => AdminError::NotFound("organisation"),
        other => other.into(),
    })?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::OrganisationDeleted)
            .target(org)
            .organisation(org)
            .detail("slug", found.slug.as_str())
            .detail("tokens_revoked", tokens)
            .detail("grants_revoked", grants)
            .detail("connectors_deleted", connectors),
    )?;
    Ok(())
}

/// Deletes a project and what it owns from the live database: its registered clients (every
/// grant issued to them revoked first), the API tokens confined to it (revoked first, so every
/// instance's cache drops them), its memberships and its two-factor policy. `confirm` must be
/// the project's slug.
#[allow(clippy::too_many_arguments)]
pub fn delete_project(
    conn: &mut (impl OrganisationRepository + AuditRepository + ApiTokenRepository + ClientRepository + OAuthRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    project: &str,
    confirm: &str,
) -> Result<(), AdminError> {
    let (org, pid) = resolve(conn, caller, organisation, Some(project))?;
    let pid = pid.ok_or(AdminError::NotFound("project"))?;
    // Organisation-wide, so a project token cannot delete its own project.
    require(conn, caller, org, None, Permission::ProjectsManage, "deleting a project needs projects_manage")?;
    let found = conn.find_project(pid)?.ok_or(AdminError::NotFound("project"))?;
    if confirm != found.slug.as_str() {
        return Err(AdminError::Invalid("to confirm, give the project's slug".into()));
    }
    let key = pid.to_string();
    let mut tokens = 0usize;
    for t in
        conn.api_tokens_of_organisation(&org.to_string())?.into_iter().filter(|t| t.project_id.as_deref() == Some(&key))
    {
        if conn.revoke_api_token(&t.id, now)? {
            tokens += 1;
        }
    }
    let mut grants = 0usize;
    let clients = conn.clients_of_project(&key)?;
    for c in &clients {
        grants += conn.revoke_client_grants(&c.id, now)?;
    }
    conn.delete_api_tokens_of_project(&key)?;
    conn.delete_project(pid).map_err(|e| match e {
        StorageError::NotFound => AdminError::NotFound("project"),
        other => other.into(),
    })?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::ProjectDeleted)
            .target(pid)
            .organisation(org)
            .detail("slug", found.slug.as_str())
            .detail("tokens_revoked", tokens)
            .detail("clients_deleted", clients.len())
            .detail("grants_revoked", grants),
    )?;
    Ok(())
}

pub fn list_projects(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    organisation: &str,
) -> Result<Vec<Project>, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    let all = permissions(conn, caller, org, None)?.contains(&Permission::ProjectsRead);
    let mut out = Vec::new();
    for p in conn.list_projects(org)? {
        if all || permissions(conn, caller, org, Some(p.id))?.contains(&Permission::ProjectsRead) {
            out.push(p);
        }
    }
    Ok(out)
}

pub fn get_project(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    organisation: &str,
    project: &str,
) -> Result<Project, AdminError> {
    let (org, pid) = resolve(conn, caller, organisation, Some(project))?;
    let pid = pid.ok_or(AdminError::NotFound("project"))?;
    require(conn, caller, org, Some(pid), Permission::ProjectsRead, "reading projects needs projects_read")?;
    conn.find_project(pid)?.ok_or(AdminError::NotFound("project"))
}

pub fn create_project_as(
    conn: &mut (impl OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    name: &str,
    slug: Option<&str>,
) -> Result<Project, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::ProjectsManage, "creating projects needs projects_manage")?;
    create_project(conn, auditor, now, caller.actor(), &org.to_string(), name, slug)
}

/// The members of the organisation, or of one project.
pub fn list_members(
    conn: &mut (impl OrganisationRepository + UserRepository),
    caller: Caller,
    organisation: &str,
    project: Option<&str>,
) -> Result<Vec<MemberInfo>, AdminError> {
    let (org, pid) = resolve(conn, caller, organisation, project)?;
    require(conn, caller, org, pid, Permission::MembersRead, "reading members needs members_read")?;
    let members = match pid {
        Some(p) => conn.project_members(p)?,
        None => conn.organisation_members(org)?,
    };
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let user = conn.find_user(m.user_id)?;
        out.push(MemberInfo {
            user_id: m.user_id,
            email: user.as_ref().and_then(|u| u.email.clone()),
            display_name: user.and_then(|u| u.display_name),
            role: role_string(m.role),
            source: m.source,
            created_at: m.created_at,
        });
    }
    Ok(out)
}

/// Parses a role as the API names it: a built-in role's name or one of the organisation's
/// custom roles by id.
pub(crate) fn parse_role(
    conn: &mut impl OrganisationRepository,
    org: OrganisationId,
    role: &str,
) -> Result<RoleRef, AdminError> {
    if let Ok(b) = role.parse::<BuiltinRole>() {
        return Ok(RoleRef::Builtin(b));
    }
    let id: CustomRoleId = role
        .parse()
        .map_err(|_| AdminError::Invalid(format!("unknown role {role:?}: a built-in role or a custom role's id")))?;
    match conn.find_custom_role(id)? {
        Some(r) if r.organisation_id == org => Ok(RoleRef::Custom(id)),
        _ => Err(AdminError::Invalid(format!("unknown role {role:?}: a built-in role or a custom role's id"))),
    }
}

/// `Forbidden` unless the caller holds every permission of `role` (only an owner makes owners).
pub(crate) fn may_hand_out(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    org: OrganisationId,
    project: Option<crate::domain::ProjectId>,
    role: RoleRef,
) -> Result<(), AdminError> {
    let mine = permissions(conn, caller, org, project)?;
    let granted = super::access::role_permissions(conn, role)?;
    match granted.iter().find(|p| !mine.contains(p)) {
        None => Ok(()),
        Some(Permission::OrganisationDelete) => Err(AdminError::Forbidden("only an owner makes owners")),
        Some(_) => Err(AdminError::Forbidden("a role is handed out only by someone holding all of its permissions")),
    }
}

/// Adds a member or changes their role. Only an owner makes owners; nobody hands out a role
/// with permissions they do not hold themselves.
#[allow(clippy::too_many_arguments)]
pub fn set_member(
    conn: &mut (impl OrganisationRepository + UserRepository + AuditRepository + ApiTokenRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    project: Option<&str>,
    user: UserId,
    role: &str,
) -> Result<MemberInfo, AdminError> {
    let (org, pid) = resolve(conn, caller, organisation, project)?;
    require(conn, caller, org, pid, Permission::MembersManage, "managing members needs members_manage")?;
    let role = parse_role(conn, org, role)?;
    may_hand_out(conn, caller, org, pid, role)?;
    let found = conn.find_user(user)?.filter(|u| !u.disabled).ok_or(AdminError::NotFound("user"))?;
    if let Some(p) = pid {
        conn.set_project_member(p, user, role, now)?;
    } else {
        let before = conn.organisation_membership(org, user)?;
        let owner = RoleRef::Builtin(BuiltinRole::Owner);
        if before.as_ref().is_some_and(|m| m.role == owner) && role != owner {
            let owners = conn.organisation_members(org)?.iter().filter(|m| m.role == owner).count();
            if owners == 1 {
                return Err(AdminError::Invalid("an organisation keeps at least one owner".into()));
            }
        }
        conn.set_organisation_member(org, user, role, now)?;
    }
    let revoked = super::tokens::revoke_lapsed(conn, user, now)?;
    let mut event = Event::new(caller.actor(), Action::MemberSet)
        .target(pid.map_or_else(|| org.to_string(), |p| p.to_string()))
        .organisation(org)
        .detail("user", user.to_string())
        .detail("role", role_string(role));
    if revoked > 0 {
        event = event.detail("tokens_revoked", revoked);
    }
    auditor.record(conn, now, event)?;
    Ok(MemberInfo {
        user_id: user,
        email: found.email,
        display_name: found.display_name,
        role: role_string(role),
        source: None,
        created_at: now,
    })
}

/// Removes a member from the organisation, cut off at once (`admin::deprovision`), or from one
/// project (with the personal tokens only that membership covered).
pub fn remove_member(
    conn: &mut (
             impl OrganisationRepository
             + AuditRepository
             + ApiTokenRepository
             + crate::storage::sessions::SessionRepository
             + OAuthRepository
             + UserRepository
         ),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    project: Option<&str>,
    user: UserId,
) -> Result<(), AdminError> {
    let (org, pid) = resolve(conn, caller, organisation, project)?;
    require(conn, caller, org, pid, Permission::MembersManage, "managing members needs members_manage")?;
    let Some(p) = pid else {
        return remove_organisation_member(conn, auditor, now, caller.actor(), org, user);
    };
    conn.remove_project_member(p, user).map_err(|e| match e {
        StorageError::NotFound => AdminError::NotFound("membership"),
        other => other.into(),
    })?;
    let revoked = super::tokens::revoke_lapsed(conn, user, now)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::MemberRemoved)
            .target(p)
            .organisation(org)
            .detail("user", user.to_string())
            .detail("tokens_revoked", revoked),
    )?;
    Ok(())
}

/// The built-in roles and the organisation's custom roles.
pub fn list_roles(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    organisation: &str,
) -> Result<Vec<RoleInfo>, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::MembersRead, "reading roles needs members_read")?;
    let builtin = [BuiltinRole::Owner, BuiltinRole::Admin, BuiltinRole::Member, BuiltinRole::Viewer];
    let mut out: Vec<RoleInfo> =
        builtin.iter().map(|b| role_info(b.as_str().into(), b.as_str().into(), true, &b.permissions())).collect();
    out.extend(
        conn.list_custom_roles(org)?.iter().map(|r| role_info(r.id.to_string(), r.name.clone(), false, &r.permissions)),
    );
    Ok(out)
}

/// Creates a custom role: a named set of permissions, none beyond the caller's own.
pub fn create_role(
    conn: &mut (impl OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    name: &str,
    permission_names: &[String],
) -> Result<RoleInfo, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::RolesManage, "managing roles needs roles_manage")?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid("a role name is 1 to 100 printable characters".into()));
    }
    if name.parse::<BuiltinRole>().is_ok() {
        return Err(AdminError::Conflict(format!("{name} is a built-in role")));
    }
    let mut set = BTreeSet::new();
    for p in permission_names {
        let parsed = crate::tokens::parse_permission(p)
            .ok_or_else(|| AdminError::Invalid(format!("unknown permission {p:?}")))?;
        set.insert(parsed);
    }
    if set.is_empty() {
        return Err(AdminError::Invalid("a role needs at least one permission".into()));
    }
    let mine = permissions(conn, caller, org, None)?;
    if set.iter().any(|p| !mine.contains(p)) {
        return Err(AdminError::Forbidden("a role holds only permissions its creator holds"));
    }
    let role: CustomRole = conn.create_custom_role(org, name, &set, now)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::RoleCreated)
            .target(role.id)
            .organisation(org)
            .detail("permissions", set.iter().map(|p| permission_name(*p)).collect::<Vec<_>>().join(" ")),
    )?;
    Ok(role_info(role.id.to_string(), role.name, false, &role.permissions))
}
