use chrono::NaiveDateTime;

use crate::audit::{Action, Actor, Auditor, Event};
use crate::domain::organisation::{Organisation, Project, Slug};
use crate::domain::role::{BuiltinRole, RoleRef};
use crate::domain::{OrganisationId, UserId};
use crate::storage::audit::AuditRepository;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::users::UserRepository;
use crate::storage::{StorageError, StorageResult};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for AdminError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(what) => AdminError::Conflict(format!("already exists ({what})")),
            other => AdminError::Storage(other),
        }
    }
}

fn check_name(name: &str) -> Result<&str, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AdminError::Invalid("a name is 1 to 200 printable characters".into()));
    }
    Ok(name)
}

fn slug_for(slug: Option<&str>, name: &str) -> Result<Slug, AdminError> {
    match slug {
        Some(s) => Slug::parse(s),
        None => Slug::from_name(name),
    }
    .map_err(|e| AdminError::Invalid(e.to_string()))
}

/// Creates an organisation with its owners (several are allowed; each must be a known user).
pub fn create_organisation(
    conn: &mut (impl OrganisationRepository + UserRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    name: &str,
    slug: Option<&str>,
    owners: &[UserId],
) -> Result<Organisation, AdminError> {
    let name = check_name(name)?;
    let slug = slug_for(slug, name)?;
    let org = conn.create_organisation(&slug, name, now)?;
    for owner in owners {
        if conn.find_user(*owner)?.is_none() {
            return Err(AdminError::NotFound("owner user"));
        }
        conn.set_organisation_member(org.id, *owner, RoleRef::Builtin(BuiltinRole::Owner), now)?;
        auditor.record(
            conn,
            now,
            Event::new(actor.clone(), Action::MemberSet)
                .target(org.id)
                .organisation(org.id)
                .detail("user", owner.to_string())
                .detail("role", "owner"),
        )?;
    }
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::OrganisationCreated)
            .target(org.id)
            .organisation(org.id)
            .detail("slug", slug.as_str()),
    )?;
    Ok(org)
}

/// Finds an organisation by id or slug.
pub fn find_organisation(
    conn: &mut impl OrganisationRepository,
    id_or_slug: &str,
) -> StorageResult<Option<Organisation>> {
    match id_or_slug.parse::<OrganisationId>() {
        Ok(id) => conn.find_organisation(id),
        Err(_) => conn.find_organisation_by_slug(id_or_slug),
    }
}

pub fn create_project(
    conn: &mut (impl OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    organisation: &str,
    name: &str,
    slug: Option<&str>,
) -> Result<Project, AdminError> {
    let name = check_name(name)?;
    let slug = slug_for(slug, name)?;
    let org = find_organisation(conn, organisation)?.ok_or(AdminError::NotFound("organisation"))?;
    let project = conn.create_project(org.id, &slug, name, now)?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::ProjectCreated)
            .target(project.id)
            .organisation(org.id)
            .detail("organisation", org.id.to_string()),
    )?;
    Ok(project)
}

/// Removes a member, refusing to remove an organisation's last owner.
pub fn remove_organisation_member(
    conn: &mut (impl OrganisationRepository + AuditRepository + crate::storage::api_tokens::ApiTokenRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    org: OrganisationId,
    user: UserId,
) -> Result<(), AdminError> {
    let members = conn.organisation_members(org)?;
    let owner = RoleRef::Builtin(BuiltinRole::Owner);
    let is_owner = members.iter().any(|m| m.user_id == user && m.role == owner);
    if is_owner && members.iter().filter(|m| m.role == owner).count() == 1 {
        return Err(AdminError::Invalid("an organisation keeps at least one owner".into()));
    }
    conn.remove_organisation_member(org, user).map_err(|e| match e {
        StorageError::NotFound => AdminError::NotFound("membership"),
        other => other.into(),
    })?;
    let revoked = super::tokens::revoke_lapsed(conn, user, now)?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::MemberRemoved)
            .target(org)
            .organisation(org)
            .detail("user", user.to_string())
            .detail("tokens_revoked", revoked),
    )?;
    Ok(())
}
