//! Roles: four built in, plus custom roles an organisation defines as named sets of permissions.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{CustomRoleId, OrganisationId};

/// What a role allows. Parsing rejects unknown names rather than guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    OrganisationRead,
    OrganisationManage,
    OrganisationDelete,
    MembersRead,
    MembersManage,
    RolesManage,
    ProjectsRead,
    ProjectsManage,
    ConnectorsManage,
    ClientsManage,
    TokensManage,
    PolicyManage,
    AuditRead,
    /// Provision users and groups over SCIM (organisation tokens).
    ScimProvision,
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::OrganisationRead,
        Permission::OrganisationManage,
        Permission::OrganisationDelete,
        Permission::MembersRead,
        Permission::MembersManage,
        Permission::RolesManage,
        Permission::ProjectsRead,
        Permission::ProjectsManage,
        Permission::ConnectorsManage,
        Permission::ClientsManage,
        Permission::TokensManage,
        Permission::PolicyManage,
        Permission::AuditRead,
        Permission::ScimProvision,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinRole {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl BuiltinRole {
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinRole::Owner => "owner",
            BuiltinRole::Admin => "admin",
            BuiltinRole::Member => "member",
            BuiltinRole::Viewer => "viewer",
        }
    }

    pub fn permissions(self) -> BTreeSet<Permission> {
        use Permission::*;
        let read = [OrganisationRead, MembersRead, ProjectsRead];
        match self {
            BuiltinRole::Owner => Permission::ALL.into_iter().collect(),
            BuiltinRole::Admin => Permission::ALL.into_iter().filter(|p| *p != OrganisationDelete).collect(),
            BuiltinRole::Member => read.into_iter().collect(),
            BuiltinRole::Viewer => read.into_iter().chain([AuditRead]).collect(),
        }
    }
}

impl fmt::Display for BuiltinRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected owner, admin, member or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for BuiltinRole {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "owner" => Ok(BuiltinRole::Owner),
            "admin" => Ok(BuiltinRole::Admin),
            "member" => Ok(BuiltinRole::Member),
            "viewer" => Ok(BuiltinRole::Viewer),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// The role a membership carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum RoleRef {
    Builtin(BuiltinRole),
    Custom(CustomRoleId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomRole {
    pub id: CustomRoleId,
    pub organisation_id: OrganisationId,
    pub name: String,
    pub permissions: BTreeSet<Permission>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_roles_nest() {
        let owner = BuiltinRole::Owner.permissions();
        let admin = BuiltinRole::Admin.permissions();
        let member = BuiltinRole::Member.permissions();
        assert!(admin.is_subset(&owner) && !owner.is_subset(&admin));
        assert!(member.is_subset(&admin));
        assert!(!BuiltinRole::Viewer.permissions().contains(&Permission::MembersManage));
    }

    #[test]
    fn role_names_round_trip_and_unknown_is_refused() {
        for r in [BuiltinRole::Owner, BuiltinRole::Admin, BuiltinRole::Member, BuiltinRole::Viewer] {
            assert_eq!(r.as_str().parse::<BuiltinRole>(), Ok(r));
        }
        assert!("Owner".parse::<BuiltinRole>().is_err());
        assert!("root".parse::<BuiltinRole>().is_err());
    }

    #[test]
    fn unknown_permission_is_refused() {
        assert!(serde_json::from_str::<Permission>("\"audit_read\"").is_ok());
        assert!(serde_json::from_str::<Permission>("\"everything\"").is_err());
    }
}
