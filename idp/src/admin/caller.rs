//! Who calls an administrative use case, and the two questions every one of them asks: can the
//! caller see this organisation (or project) at all, and do they hold a permission in it.

use std::collections::BTreeSet;

use super::access::{permissions_of, role_in};
use super::organisations::{AdminError, find_organisation};
use crate::audit::Actor;
use crate::domain::role::Permission;
use crate::domain::{ApiTokenId, OrganisationId, ProjectId, UserId};
use crate::storage::organisations::OrganisationRepository;
use crate::tokens::ApiPrincipal;

/// A set of permissions small enough to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u32);

impl Permissions {
    fn bit(p: Permission) -> u32 {
        let i = Permission::ALL.iter().position(|x| *x == p).unwrap_or(31);
        1 << i
    }
    pub fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |acc, p| acc | Self::bit(p)))
    }
}

/// An API token calling: it acts only inside its organisation (and its project, if it has
/// one), never beyond its scopes, and a personal token never beyond its user's current rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCaller {
    pub token: ApiTokenId,
    pub user: Option<UserId>,
    pub organisation: OrganisationId,
    pub project: Option<ProjectId>,
    pub scopes: Permissions,
}

impl From<&ApiPrincipal> for TokenCaller {
    fn from(p: &ApiPrincipal) -> Self {
        Self {
            token: p.token_id,
            user: p.user_id,
            organisation: p.organisation_id,
            project: p.project_id,
            scopes: p.scopes.iter().copied().collect(),
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Operator,
    User(UserId),
    Token(TokenCaller),
}

impl Caller {
    pub(crate) fn actor(self) -> Actor {
        match self {
            Caller::Operator => Actor::Cli,
            Caller::User(u) => Actor::User(u),
            Caller::Token(t) => Actor::Token(t.token),
        }
    }

    /// Whether a token caller's reach covers `org` and `project` (people and the operator are
    /// bounded by their roles instead).
    pub fn reaches(self, org: OrganisationId, project: Option<ProjectId>) -> bool {
        match self {
            Caller::Token(t) => t.reaches(org, project),
            Caller::Operator | Caller::User(_) => true,
        }
    }

    /// The person behind the call, if there is one: a signed-in user, or a personal token's user.
    pub fn user(self) -> Option<UserId> {
        match self {
            Caller::Operator => None,
            Caller::User(u) => Some(u),
            Caller::Token(t) => t.user,
        }
    }
}

impl TokenCaller {
    /// Whether the token's reach covers `org` and `project`: its own organisation, and for a
    /// project token only its project (never the organisation as a whole).
    fn reaches(&self, org: OrganisationId, project: Option<ProjectId>) -> bool {
        self.organisation == org && (self.project.is_none() || self.project == project)
    }
}

/// What `caller` may do in `org` (and `project`). Empty where they have no standing.
pub fn permissions(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    org: OrganisationId,
    project: Option<ProjectId>,
) -> Result<BTreeSet<Permission>, AdminError> {
    Ok(match caller {
        Caller::Operator => Permission::ALL.into_iter().collect(),
        Caller::User(u) => permissions_of(conn, u, org, project)?,
        Caller::Token(t) if !t.reaches(org, project) => BTreeSet::new(),
        Caller::Token(t) => {
            let scoped = Permission::ALL.into_iter().filter(|p| t.scopes.contains(*p));
            match t.user {
                Some(u) => {
                    let mine = permissions_of(conn, u, org, project)?;
                    scoped.filter(|p| mine.contains(p)).collect()
                }
                None => scoped.collect(),
            }
        }
    })
}

/// Whether `caller` holds `permission` in the organisation (or the project).
pub fn holds(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    org: OrganisationId,
    project: Option<ProjectId>,
    permission: Permission,
) -> Result<bool, AdminError> {
    Ok(permissions(conn, caller, org, project)?.contains(&permission))
}

/// `Forbidden` with `why` unless the caller holds `permission`.
pub fn require(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    org: OrganisationId,
    project: Option<ProjectId>,
    permission: Permission,
    why: &'static str,
) -> Result<(), AdminError> {
    if holds(conn, caller, org, project, permission)? { Ok(()) } else { Err(AdminError::Forbidden(why)) }
}

/// Resolves the organisation (and project) a caller names, by id or slug. A caller with no
/// standing in either gets `NotFound`, exactly as for an id that does not exist.
pub fn resolve(
    conn: &mut impl OrganisationRepository,
    caller: Caller,
    organisation: &str,
    project: Option<&str>,
) -> Result<(OrganisationId, Option<ProjectId>), AdminError> {
    let org = find_organisation(conn, organisation)?.ok_or(AdminError::NotFound("organisation"))?;
    let project = match project {
        None => None,
        Some(p) => {
            let found = match p.parse::<ProjectId>() {
                Ok(id) => conn.find_project(id)?.filter(|x| x.organisation_id == org.id),
                Err(_) => conn.find_project_by_slug(org.id, p)?,
            };
            Some(found.ok_or(AdminError::NotFound("project"))?.id)
        }
    };
    let visible = match caller {
        Caller::Operator => true,
        Caller::User(u) => role_in(conn, u, org.id, None)?.is_some() || role_in(conn, u, org.id, project)?.is_some(),
        Caller::Token(t) => {
            t.organisation == org.id
                && (t.project.is_none() || project.is_none() || t.project == project)
                && t.user.map_or(Ok(true), |u| {
                    Ok::<_, AdminError>(
                        role_in(conn, u, org.id, None)?.is_some() || role_in(conn, u, org.id, t.project)?.is_some(),
                    )
                })?
        }
    };
    if !visible {
        return Err(if project.is_some() && matches!(caller, Caller::Token(t) if t.organisation == org.id) {
            AdminError::NotFound("project")
        } else {
            AdminError::NotFound("organisation")
        });
    }
    Ok((org.id, project))
}
