//! SCIM resources (`scim_resources`) and group membership (`scim_group_members`). The
//! attributes are kept as the canonical JSON `scim` produced; storage does not look inside.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{scim_group_members, scim_resources};
use super::{DbConnection, StorageError, StorageResult};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = scim_resources)]
pub struct ScimResourceRow {
    pub id: String,
    pub organisation_id: String,
    /// `User` or `Group`.
    pub kind: String,
    /// The lower-cased userName of a User; the id of a Group.
    pub unique_name: String,
    pub user_id: Option<String>,
    pub external_id: Option<String>,
    /// Canonical JSON of the SCIM attributes (no id, no meta).
    pub attributes: String,
    pub version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = scim_group_members)]
pub struct ScimGroupMemberRow {
    pub group_id: String,
    pub member_id: String,
}

/// The indexed columns a lookup can go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    UniqueName,
    ExternalId,
}

pub trait ScimRepository {
    fn insert_scim_resource(&mut self, row: &ScimResourceRow) -> StorageResult<()>;
    /// The resource of that kind in that organisation; another organisation's is `None`.
    fn find_scim_resource(&mut self, org: &str, kind: &str, id: &str) -> StorageResult<Option<ScimResourceRow>>;
    fn scim_resources(&mut self, org: &str, kind: &str) -> StorageResult<Vec<ScimResourceRow>>;
    fn scim_resource_of_user(&mut self, user_id: &str) -> StorageResult<Option<ScimResourceRow>>;
    /// The resources of that kind whose unique name, or external id, is exactly `value`.
    fn scim_resources_named(
        &mut self,
        org: &str,
        kind: &str,
        column: NamedBy,
        value: &str,
    ) -> StorageResult<Vec<ScimResourceRow>>;
    /// Writes the row's attributes, names, version and time; `NotFound` if it is gone.
    fn update_scim_resource(&mut self, row: &ScimResourceRow) -> StorageResult<()>;
    fn delete_scim_resource(&mut self, id: &str) -> StorageResult<()>;
    /// Replaces the group's members.
    fn set_scim_group_members(&mut self, group_id: &str, members: &[String]) -> StorageResult<()>;
    fn scim_group_members(&mut self, group_id: &str) -> StorageResult<Vec<String>>;
    /// The groups `member_id` is directly in.
    fn scim_groups_of(&mut self, member_id: &str) -> StorageResult<Vec<String>>;
    /// The display names of the organisation's groups that idp user `user_id` is directly in.
    fn scim_group_names_of_user(&mut self, org: &str, user_id: &str) -> StorageResult<Vec<String>>;
}

impl ScimRepository for DbConnection {
    fn insert_scim_resource(&mut self, row: &ScimResourceRow) -> StorageResult<()> {
        diesel::insert_into(scim_resources::table).values(row).execute(self)?;
        Ok(())
    }

    fn find_scim_resource(&mut self, org: &str, kind: &str, id: &str) -> StorageResult<Option<ScimResourceRow>> {
        Ok(scim_resources::table
            .find(id)
            .filter(scim_resources::organisation_id.eq(org))
            .filter(scim_resources::kind.eq(kind))
            .select(ScimResourceRow::as_select())
            .first(self)
            .optional()?)
    }

    fn scim_resources(&mut self, org: &str, kind: &str) -> StorageResult<Vec<ScimResourceRow>> {
        Ok(scim_resources::table
            .filter(scim_resources::organisation_id.eq(org))
            .filter(scim_resources::kind.eq(kind))
            .order((scim_resources::created_at, scim_resources::id))
            .select(ScimResourceRow::as_select())
            .load(self)?)
    }

    fn scim_resource_of_user(&mut self, user_id: &str) -> StorageResult<Option<ScimResourceRow>> {
        Ok(scim_resources::table
            .filter(scim_resources::user_id.eq(user_id))
            .select(ScimResourceRow::as_select())
            .first(self)
            .optional()?)
    }

    fn scim_resources_named(
        &mut self,
        org: &str,
        kind: &str,
        column: NamedBy,
        value: &str,
    ) -> StorageResult<Vec<ScimResourceRow>> {
        let q = scim_resources::table
            .filter(scim_resources::organisation_id.eq(org))
            .filter(scim_resources::kind.eq(kind))
            .into_boxed();
        let q = match column {
            NamedBy::UniqueName => q.filter(scim_resources::unique_name.eq(value)),
            NamedBy::ExternalId => q.filter(scim_resources::external_id.eq(value)),
        };
        Ok(q.order((scim_resources::created_at, scim_resources::id)).select(ScimResourceRow::as_select()).load(self)?)
    }

    fn update_scim_resource(&mut self, row: &ScimResourceRow) -> StorageResult<()> {
        let n = diesel::update(scim_resources::table.find(&row.id))
            .set((
                scim_resources::unique_name.eq(&row.unique_name),
                scim_resources::external_id.eq(&row.external_id),
                scim_resources::attributes.eq(&row.attributes),
                scim_resources::version.eq(row.version),
                scim_resources::updated_at.eq(row.updated_at),
            ))
            .execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn delete_scim_resource(&mut self, id: &str) -> StorageResult<()> {
        // Explicit, so the result does not depend on foreign-key enforcement being on.
        diesel::delete(
            scim_group_members::table
                .filter(scim_group_members::group_id.eq(id).or(scim_group_members::member_id.eq(id))),
        )
        .execute(self)?;
        let n = diesel::delete(scim_resources::table.find(id)).execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn set_scim_group_members(&mut self, group_id: &str, members: &[String]) -> StorageResult<()> {
        diesel::delete(scim_group_members::table.filter(scim_group_members::group_id.eq(group_id))).execute(self)?;
        let rows: Vec<ScimGroupMemberRow> = members
            .iter()
            .map(|m| ScimGroupMemberRow { group_id: group_id.to_owned(), member_id: m.clone() })
            .collect();
        if !rows.is_empty() {
            super::on_concrete!(&mut *self, c => diesel::insert_into(scim_group_members::table).values(&rows).execute(c))?;
        }
        Ok(())
    }

    fn scim_group_members(&mut self, group_id: &str) -> StorageResult<Vec<String>> {
        Ok(scim_group_members::table
            .filter(scim_group_members::group_id.eq(group_id))
            .order(scim_group_members::member_id)
            .select(scim_group_members::member_id)
            .load(self)?)
    }

    fn scim_groups_of(&mut self, member_id: &str) -> StorageResult<Vec<String>> {
        Ok(scim_group_members::table
            .filter(scim_group_members::member_id.eq(member_id))
            .order(scim_group_members::group_id)
            .select(scim_group_members::group_id)
            .load(self)?)
    }

    fn scim_group_names_of_user(&mut self, org: &str, user_id: &str) -> StorageResult<Vec<String>> {
        let me: Vec<String> = scim_resources::table
            .filter(scim_resources::organisation_id.eq(org))
            .filter(scim_resources::kind.eq("User"))
            .filter(scim_resources::user_id.eq(user_id))
            .select(scim_resources::id)
            .load(self)?;
        if me.is_empty() {
            return Ok(Vec::new());
        }
        let groups: Vec<String> = scim_group_members::table
            .filter(scim_group_members::member_id.eq_any(&me))
            .select(scim_group_members::group_id)
            .load(self)?;
        let attributes: Vec<String> = scim_resources::table
            .filter(scim_resources::organisation_id.eq(org))
            .filter(scim_resources::kind.eq("Group"))
            .filter(scim_resources::id.eq_any(&groups))
            .select(scim_resources::attributes)
            .load(self)?;
        let mut names: Vec<String> = attributes
            .iter()
            .filter_map(|a| serde_json::from_str::<serde_json::Value>(a).ok())
            .filter_map(|a| a.get("displayName").and_then(serde_json::Value::as_str).map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// What a SCIM User says about its idp user: the primary e-mail and the display name.
pub fn set_user_profile(
    conn: &mut DbConnection,
    user_id: &str,
    email: Option<&str>,
    display_name: Option<&str>,
    now: NaiveDateTime,
) -> StorageResult<()> {
    use super::schema::users;
    let n = diesel::update(users::table.find(user_id))
        .set((users::email.eq(email), users::display_name.eq(display_name), users::updated_at.eq(now)))
        .execute(conn)?;
    if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
}
