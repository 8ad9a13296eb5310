use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{CustomRoleRow, OrganisationMemberRow, OrganisationRow, ProjectMemberRow, ProjectRow};
use super::schema::{
    custom_roles, invitations, oauth_clients, organisation_domains, organisation_members, organisation_mfa_policies,
    organisations, project_members, project_mfa_policies, projects,
};
use super::{DbConnection, StorageError, StorageResult, parse_id};
use crate::domain::organisation::{Organisation, Project, Slug};
use crate::domain::role::{BuiltinRole, CustomRole, Permission, RoleRef};
use crate::domain::{CustomRoleId, OrganisationId, ProjectId, UserId};

/// A user's membership with its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub user_id: UserId,
    pub role: RoleRef,
    pub created_at: NaiveDateTime,
    /// `None` when an administrator set it; `Some("connector:<id>")` when a group mapping did.
    pub source: Option<String>,
}

pub trait OrganisationRepository {
    fn create_organisation(&mut self, slug: &Slug, name: &str, now: NaiveDateTime) -> StorageResult<Organisation>;
    fn find_organisation(&mut self, id: OrganisationId) -> StorageResult<Option<Organisation>>;
    fn find_organisation_by_slug(&mut self, slug: &str) -> StorageResult<Option<Organisation>>;
    fn list_organisations(&mut self) -> StorageResult<Vec<Organisation>>;
    /// Deletes the organisation with its projects, roles and memberships.
    fn delete_organisation(&mut self, id: OrganisationId) -> StorageResult<()>;

    fn create_project(
        &mut self,
        org: OrganisationId,
        slug: &Slug,
        name: &str,
        now: NaiveDateTime,
    ) -> StorageResult<Project>;
    fn find_project(&mut self, id: ProjectId) -> StorageResult<Option<Project>>;
    fn list_projects(&mut self, org: OrganisationId) -> StorageResult<Vec<Project>>;
    /// Deletes the project with its memberships, two-factor policy and registered clients.
    fn delete_project(&mut self, id: ProjectId) -> StorageResult<()>;

    fn create_custom_role(
        &mut self,
        org: OrganisationId,
        name: &str,
        permissions: &BTreeSet<Permission>,
        now: NaiveDateTime,
    ) -> StorageResult<CustomRole>;
    fn list_custom_roles(&mut self, org: OrganisationId) -> StorageResult<Vec<CustomRole>>;
    fn find_custom_role(&mut self, id: CustomRoleId) -> StorageResult<Option<CustomRole>>;

    /// Adds the user to the organisation or changes their role (an administrator's doing).
    fn set_organisation_member(
        &mut self,
        org: OrganisationId,
        user: UserId,
        role: RoleRef,
        now: NaiveDateTime,
    ) -> StorageResult<()> {
        self.set_organisation_member_from(org, user, role, None, now)
    }
    /// As `set_organisation_member`, recording where the membership came from.
    fn set_organisation_member_from(
        &mut self,
        org: OrganisationId,
        user: UserId,
        role: RoleRef,
        source: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<()>;
    fn organisation_membership(&mut self, org: OrganisationId, user: UserId) -> StorageResult<Option<Membership>>;
    fn remove_organisation_member(&mut self, org: OrganisationId, user: UserId) -> StorageResult<()>;
    fn organisation_members(&mut self, org: OrganisationId) -> StorageResult<Vec<Membership>>;

    fn set_project_member(
        &mut self,
        project: ProjectId,
        user: UserId,
        role: RoleRef,
        now: NaiveDateTime,
    ) -> StorageResult<()> {
        self.set_project_member_from(project, user, role, None, now)
    }
    fn set_project_member_from(
        &mut self,
        project: ProjectId,
        user: UserId,
        role: RoleRef,
        source: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<()>;
    fn project_membership(&mut self, project: ProjectId, user: UserId) -> StorageResult<Option<Membership>>;
    fn find_project_by_slug(&mut self, org: OrganisationId, slug: &str) -> StorageResult<Option<Project>>;
    fn remove_project_member(&mut self, project: ProjectId, user: UserId) -> StorageResult<()>;
    fn project_members(&mut self, project: ProjectId) -> StorageResult<Vec<Membership>>;
}

fn role_columns(role: RoleRef) -> (Option<String>, Option<String>) {
    match role {
        RoleRef::Builtin(b) => (Some(b.as_str().to_owned()), None),
        RoleRef::Custom(id) => (None, Some(id.to_string())),
    }
}

fn role_from_columns(builtin: Option<String>, custom: Option<String>) -> StorageResult<RoleRef> {
    match (builtin, custom) {
        (Some(b), None) => {
            b.parse::<BuiltinRole>().map(RoleRef::Builtin).map_err(|e| StorageError::Corrupt(e.to_string()))
        }
        (None, Some(c)) => Ok(RoleRef::Custom(parse_id(&c)?)),
        _ => Err(StorageError::Corrupt("membership without exactly one role".into())),
    }
}

fn organisation(r: OrganisationRow) -> StorageResult<Organisation> {
    Ok(Organisation {
        id: parse_id(&r.id)?,
        slug: Slug::parse(&r.slug).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        name: r.name,
        created_at: r.created_at,
    })
}

fn project(r: ProjectRow) -> StorageResult<Project> {
    Ok(Project {
        id: parse_id(&r.id)?,
        organisation_id: parse_id(&r.organisation_id)?,
        slug: Slug::parse(&r.slug).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        name: r.name,
        created_at: r.created_at,
    })
}

fn custom_role(r: CustomRoleRow) -> StorageResult<CustomRole> {
    Ok(CustomRole {
        id: parse_id(&r.id)?,
        organisation_id: parse_id(&r.organisation_id)?,
        name: r.name,
        permissions: serde_json::from_str(&r.permissions).map_err(|e| StorageError::Corrupt(e.to_string()))?,
    })
}

impl OrganisationRepository for DbConnection {
    fn create_organisation(&mut self, slug: &Slug, name: &str, now: NaiveDateTime) -> StorageResult<Organisation> {
        let row = OrganisationRow {
            id: OrganisationId::new().to_string(),
            slug: slug.to_string(),
            name: name.to_owned(),
            created_at: now,
        };
        diesel::insert_into(organisations::table).values(&row).execute(self)?;
        organisation(row)
    }

    fn find_organisation(&mut self, id: OrganisationId) -> StorageResult<Option<Organisation>> {
        organisations::table
            .find(id.to_string())
            .select(OrganisationRow::as_select())
            .first(self)
            .optional()?
            .map(organisation)
            .transpose()
    }

    fn find_organisation_by_slug(&mut self, slug: &str) -> StorageResult<Option<Organisation>> {
        organisations::table
            .filter(organisations::slug.eq(slug))
            .select(OrganisationRow::as_select())
            .first(self)
            .optional()?
            .map(organisation)
            .transpose()
    }

    fn list_organisations(&mut self) -> StorageResult<Vec<Organisation>> {
        organisations::table
            .order((organisations::created_at, organisations::id))
            .select(OrganisationRow::as_select())
            .load(self)?
            .into_iter()
            .map(organisation)
            .collect()
    }

    fn delete_organisation(&mut self, id: OrganisationId) -> StorageResult<()> {
        let id = id.to_string();
        // Explicit, so the result does not depend on foreign-key enforcement being on.
        let project_ids = projects::table.filter(projects::organisation_id.eq(&id)).select(projects::id);
        diesel::delete(project_members::table.filter(project_members::project_id.eq_any(project_ids))).execute(self)?;
        let project_ids = projects::table.filter(projects::organisation_id.eq(&id)).select(projects::id);
        diesel::delete(project_mfa_policies::table.filter(project_mfa_policies::project_id.eq_any(project_ids)))
            .execute(self)?;
        diesel::delete(organisation_mfa_policies::table.find(&id)).execute(self)?;
        diesel::delete(organisation_domains::table.filter(organisation_domains::organisation_id.eq(&id)))
            .execute(self)?;
        diesel::delete(invitations::table.filter(invitations::organisation_id.eq(&id))).execute(self)?;
        diesel::delete(oauth_clients::table.filter(oauth_clients::organisation_id.eq(&id))).execute(self)?;
        diesel::delete(projects::table.filter(projects::organisation_id.eq(&id))).execute(self)?;
        diesel::delete(organisation_members::table.filter(organisation_members::organisation_id.eq(&id)))
            .execute(self)?;
        diesel::delete(custom_roles::table.filter(custom_roles::organisation_id.eq(&id))).execute(self)?;
        let n = diesel::delete(organisations::table.find(&id)).execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn delete_project(&mut self, id: ProjectId) -> StorageResult<()> {
        let id = id.to_string();
        diesel::delete(project_members::table.filter(project_members::project_id.eq(&id))).execute(self)?;
        diesel::delete(project_mfa_policies::table.find(&id)).execute(self)?;
        diesel::delete(oauth_clients::table.filter(oauth_clients::project_id.eq(&id))).execute(self)?;
        let n = diesel::delete(projects::table.find(&id)).execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn create_project(
        &mut self,
        org: OrganisationId,
        slug: &Slug,
        name: &str,
        now: NaiveDateTime,
    ) -> StorageResult<Project> {
        let row = ProjectRow {
            id: ProjectId::new().to_string(),
            organisation_id: org.to_string(),
            slug: slug.to_string(),
            name: name.to_owned(),
            created_at: now,
        };
        diesel::insert_into(projects::table).values(&row).execute(self)?;
        project(row)
    }

    fn find_project(&mut self, id: ProjectId) -> StorageResult<Option<Project>> {
        projects::table
            .find(id.to_string())
            .select(ProjectRow::as_select())
            .first(self)
            .optional()?
            .map(project)
            .transpose()
    }

    fn list_projects(&mut self, org: OrganisationId) -> StorageResult<Vec<Project>> {
        projects::table
            .filter(projects::organisation_id.eq(org.to_string()))
            .order((projects::created_at, projects::id))
            .select(ProjectRow::as_select())
            .load(self)?
            .into_iter()
            .map(project)
            .collect()
    }

    fn create_custom_role(
        &mut self,
        org: OrganisationId,
        name: &str,
        permissions: &BTreeSet<Permission>,
        now: NaiveDateTime,
    ) -> StorageResult<CustomRole> {
        let row = CustomRoleRow {
            id: CustomRoleId::new().to_string(),
            organisation_id: org.to_string(),
            name: name.to_owned(),
            permissions: serde_json::to_string(permissions).map_err(|e| StorageError::Corrupt(e.to_string()))?,
            created_at: now,
        };
        diesel::insert_into(custom_roles::table).values(&row).execute(self)?;
        custom_role(row)
    }

    fn find_custom_role(&mut self, id: CustomRoleId) -> StorageResult<Option<CustomRole>> {
        custom_roles::table
            .find(id.to_string())
            .select(CustomRoleRow::as_select())
            .first(self)
            .optional()?
            .map(custom_role)
            .transpose()
    }

    fn list_custom_roles(&mut self, org: OrganisationId) -> StorageResult<Vec<CustomRole>> {
        custom_roles::table
            .filter(custom_roles::organisation_id.eq(org.to_string()))
            .order(custom_roles::name)
            .select(CustomRoleRow::as_select())
            .load(self)?
            .into_iter()
            .map(custom_role)
            .collect()
    }

    fn set_organisation_member_from(
        &mut self,
        org: OrganisationId,
        user: UserId,
        role: RoleRef,
        source: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<()> {
        let (builtin_role, custom_role_id) = role_columns(role);
        let row = OrganisationMemberRow {
            organisation_id: org.to_string(),
            user_id: user.to_string(),
            builtin_role,
            custom_role_id,
            created_at: now,
            source: source.map(str::to_owned),
        };
        let updated = diesel::update(organisation_members::table.find((org.to_string(), user.to_string())))
            .set((
                organisation_members::builtin_role.eq(&row.builtin_role),
                organisation_members::custom_role_id.eq(&row.custom_role_id),
                organisation_members::source.eq(&row.source),
            ))
            .execute(self)?;
        if updated == 0 {
            diesel::insert_into(organisation_members::table).values(&row).execute(self)?;
        }
        Ok(())
    }

    fn remove_organisation_member(&mut self, org: OrganisationId, user: UserId) -> StorageResult<()> {
        let n = diesel::delete(organisation_members::table.find((org.to_string(), user.to_string()))).execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn organisation_members(&mut self, org: OrganisationId) -> StorageResult<Vec<Membership>> {
        organisation_members::table
            .filter(organisation_members::organisation_id.eq(org.to_string()))
            .order((organisation_members::created_at, organisation_members::user_id))
            .select(OrganisationMemberRow::as_select())
            .load(self)?
            .into_iter()
            .map(|r| {
                Ok(Membership {
                    user_id: parse_id(&r.user_id)?,
                    role: role_from_columns(r.builtin_role, r.custom_role_id)?,
                    created_at: r.created_at,
                    source: r.source,
                })
            })
            .collect()
    }

    fn set_project_member_from(
        &mut self,
        project: ProjectId,
        user: UserId,
        role: RoleRef,
        source: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<()> {
        let (builtin_role, custom_role_id) = role_columns(role);
        let row = ProjectMemberRow {
            project_id: project.to_string(),
            user_id: user.to_string(),
            builtin_role,
            custom_role_id,
            created_at: now,
            source: source.map(str::to_owned),
        };
        let updated = diesel::update(project_members::table.find((project.to_string(), user.to_string())))
            .set((
                project_members::builtin_role.eq(&row.builtin_role),
                project_members::custom_role_id.eq(&row.custom_role_id),
                project_members::source.eq(&row.source),
            ))
            .execute(self)?;
        if updated == 0 {
            diesel::insert_into(project_members::table).values(&row).execute(self)?;
        }
        Ok(())
    }

    fn remove_project_member(&mut self, project: ProjectId, user: UserId) -> StorageResult<()> {
        let n = diesel::delete(project_members::table.find((project.to_string(), user.to_string()))).execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn project_members(&mut self, project: ProjectId) -> StorageResult<Vec<Membership>> {
        project_members::table
            .filter(project_members::project_id.eq(project.to_string()))
            .order((project_members::created_at, project_members::user_id))
            .select(ProjectMemberRow::as_select())
            .load(self)?
            .into_iter()
            .map(|r| {
                Ok(Membership {
                    user_id: parse_id(&r.user_id)?,
                    role: role_from_columns(r.builtin_role, r.custom_role_id)?,
                    created_at: r.created_at,
                    source: r.source,
                })
            })
            .collect()
    }

    fn organisation_membership(&mut self, org: OrganisationId, user: UserId) -> StorageResult<Option<Membership>> {
        organisation_members::table
            .find((org.to_string(), user.to_string()))
            .select(OrganisationMemberRow::as_select())
            .first(self)
            .optional()?
            .map(|r| {
                Ok(Membership {
                    user_id: parse_id(&r.user_id)?,
                    role: role_from_columns(r.builtin_role, r.custom_role_id)?,
                    created_at: r.created_at,
                    source: r.source,
                })
            })
            .transpose()
    }

    fn project_membership(&mut self, project: ProjectId, user: UserId) -> StorageResult<Option<Membership>> {
        project_members::table
            .find((project.to_string(), user.to_string()))
            .select(ProjectMemberRow::as_select())
            .first(self)
            .optional()?
            .map(|r| {
                Ok(Membership {
                    user_id: parse_id(&r.user_id)?,
                    role: role_from_columns(r.builtin_role, r.custom_role_id)?,
                    created_at: r.created_at,
                    source: r.source,
                })
            })
            .transpose()
    }

    fn find_project_by_slug(&mut self, org: OrganisationId, slug: &str) -> StorageResult<Option<Project>> {
        projects::table
            .filter(projects::organisation_id.eq(org.to_string()))
            .filter(projects::slug.eq(slug))
            .select(ProjectRow::as_select())
            .first(self)
            .optional()?
            .map(project)
            .transpose()
    }
}
