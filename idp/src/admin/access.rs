//! What a user may do in an organisation or one of its projects: the union of the permissions
//! of their organisation role and, for a project, their project role. Computed here only.

use std::collections::BTreeSet;

use crate::domain::role::{Permission, RoleRef};
use crate::domain::{OrganisationId, ProjectId, UserId};
use crate::storage::StorageResult;
use crate::storage::organisations::OrganisationRepository;

pub fn role_permissions(conn: &mut impl OrganisationRepository, role: RoleRef) -> StorageResult<BTreeSet<Permission>> {
    Ok(match role {
        RoleRef::Builtin(b) => b.permissions(),
        RoleRef::Custom(id) => conn.find_custom_role(id)?.map(|r| r.permissions).unwrap_or_default(),
    })
}

/// Permissions of `user` in `org` (and `project`, if given). Empty for a non-member.
pub fn permissions_of(
    conn: &mut impl OrganisationRepository,
    user: UserId,
    org: OrganisationId,
    project: Option<ProjectId>,
) -> StorageResult<BTreeSet<Permission>> {
    let mut out = match conn.organisation_membership(org, user)? {
        Some(m) => role_permissions(conn, m.role)?,
        None => BTreeSet::new(),
    };
    if let Some(p) = project {
        if let Some(m) = conn.project_membership(p, user)? {
            out.extend(role_permissions(conn, m.role)?);
        }
    }
    Ok(out)
}

/// The role through which `user` reaches `org` or `project`: their project role, or for a
/// project they are not a member of, an organisation role that manages projects.
pub fn role_in(
    conn: &mut impl OrganisationRepository,
    user: UserId,
    org: OrganisationId,
    project: Option<ProjectId>,
) -> StorageResult<Option<RoleRef>> {
    let org_role = conn.organisation_membership(org, user)?.map(|m| m.role);
    let Some(p) = project else { return Ok(org_role) };
    if let Some(m) = conn.project_membership(p, user)? {
        return Ok(Some(m.role));
    }
    match org_role {
        Some(r) if role_permissions(conn, r)?.contains(&Permission::ProjectsManage) => Ok(Some(r)),
        _ => Ok(None),
    }
}
