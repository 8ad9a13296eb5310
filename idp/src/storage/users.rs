use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{ExternalIdentityRow, UserRow};
use super::schema::{external_identities, users};
use super::{DbConnection, StorageError, StorageResult, parse_id};
use crate::domain::user::{ExternalIdentity, NewUser, User};
use crate::domain::{ExternalIdentityId, UserId};

pub trait UserRepository {
    fn create_user(&mut self, new: &NewUser, now: NaiveDateTime) -> StorageResult<User>;
    fn find_user(&mut self, id: UserId) -> StorageResult<Option<User>>;
    /// Users ordered by creation, `limit` at most, after the given id (keyset paging).
    fn list_users(&mut self, after: Option<UserId>, limit: i64) -> StorageResult<Vec<User>>;
    fn count_users(&mut self) -> StorageResult<i64>;
    fn set_user_disabled(&mut self, id: UserId, disabled: bool, now: NaiveDateTime) -> StorageResult<()>;
    fn delete_user(&mut self, id: UserId) -> StorageResult<()>;
    /// Links an upstream account to a user; the (connector, subject) pair is unique.
    fn link_external_identity(
        &mut self,
        user: UserId,
        connector_id: &str,
        subject: &str,
        email: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<ExternalIdentity>;
    fn find_external_identity(&mut self, connector_id: &str, subject: &str) -> StorageResult<Option<ExternalIdentity>>;
    fn external_identities_of(&mut self, user: UserId) -> StorageResult<Vec<ExternalIdentity>>;
    /// Removes one of the user's identities; an id that is not theirs removes nothing.
    fn unlink_external_identity(&mut self, user: UserId, id: ExternalIdentityId) -> StorageResult<bool>;
    fn touch_external_identity(&mut self, id: ExternalIdentityId, now: NaiveDateTime) -> StorageResult<()>;
}

impl TryFrom<UserRow> for User {
    type Error = StorageError;
    fn try_from(r: UserRow) -> StorageResult<User> {
        Ok(User {
            id: parse_id(&r.id)?,
            email: r.email,
            email_verified: r.email_verified,
            display_name: r.display_name,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl TryFrom<ExternalIdentityRow> for ExternalIdentity {
    type Error = StorageError;
    fn try_from(r: ExternalIdentityRow) -> StorageResult<ExternalIdentity> {
        Ok(ExternalIdentity {
            id: parse_id(&r.id)?,
            user_id: parse_id(&r.user_id)?,
            connector_id: r.connector_id,
            subject: r.subject,
            email: r.email,
            created_at: r.created_at,
            last_login_at: r.last_login_at,
        })
    }
}

impl UserRepository for DbConnection {
    fn create_user(&mut self, new: &NewUser, now: NaiveDateTime) -> StorageResult<User> {
        let row = UserRow {
            id: UserId::new().to_string(),
            email: new.email.clone(),
            email_verified: new.email_verified,
            display_name: new.display_name.clone(),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(users::table).values(&row).execute(self)?;
        row.try_into()
    }

    fn find_user(&mut self, id: UserId) -> StorageResult<Option<User>> {
        users::table
            .find(id.to_string())
            .select(UserRow::as_select())
            .first(self)
            .optional()?
            .map(User::try_from)
            .transpose()
    }

    fn list_users(&mut self, after: Option<UserId>, limit: i64) -> StorageResult<Vec<User>> {
        let mut q = users::table.select(UserRow::as_select()).order((users::created_at, users::id)).into_boxed();
        if let Some(after) = after {
            let Some(anchor) = self.find_user(after)? else { return Ok(Vec::new()) };
            q = q.filter(
                users::created_at
                    .gt(anchor.created_at)
                    .or(users::created_at.eq(anchor.created_at).and(users::id.gt(after.to_string()))),
            );
        }
        q.limit(limit).load(self)?.into_iter().map(User::try_from).collect()
    }

    fn count_users(&mut self) -> StorageResult<i64> {
        Ok(users::table.count().get_result(self)?)
    }

    fn set_user_disabled(&mut self, id: UserId, disabled: bool, now: NaiveDateTime) -> StorageResult<()> {
        let n = diesel::update(users::table.find(id.to_string()))
            .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
            .execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn delete_user(&mut self, id: UserId) -> StorageResult<()> {
        use super::schema::{secrets, totp_credentials};
        // The cascade removes the user's TOTP credentials but cannot reach their sealed seeds.
        let seeds = totp_credentials::table
            .filter(totp_credentials::user_id.eq(id.to_string()))
            .select(totp_credentials::secret_id);
        diesel::delete(secrets::table.filter(secrets::id.eq_any(seeds))).execute(self)?;
        let n = diesel::delete(users::table.find(id.to_string())).execute(self)?;
        if n == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn link_external_identity(
        &mut self,
        user: UserId,
        connector_id: &str,
        subject: &str,
        email: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<ExternalIdentity> {
        let row = ExternalIdentityRow {
            id: ExternalIdentityId::new().to_string(),
            user_id: user.to_string(),
            connector_id: connector_id.to_owned(),
            subject: subject.to_owned(),
            email: email.map(str::to_owned),
            created_at: now,
            last_login_at: None,
        };
        diesel::insert_into(external_identities::table).values(&row).execute(self)?;
        row.try_into()
    }

    fn find_external_identity(&mut self, connector_id: &str, subject: &str) -> StorageResult<Option<ExternalIdentity>> {
        external_identities::table
            .filter(external_identities::connector_id.eq(connector_id))
            .filter(external_identities::subject.eq(subject))
            .select(ExternalIdentityRow::as_select())
            .first(self)
            .optional()?
            .map(ExternalIdentity::try_from)
            .transpose()
    }

    fn external_identities_of(&mut self, user: UserId) -> StorageResult<Vec<ExternalIdentity>> {
        external_identities::table
            .filter(external_identities::user_id.eq(user.to_string()))
            .order(external_identities::created_at)
            .select(ExternalIdentityRow::as_select())
            .load(self)?
            .into_iter()
            .map(ExternalIdentity::try_from)
            .collect()
    }

    fn unlink_external_identity(&mut self, user: UserId, id: ExternalIdentityId) -> StorageResult<bool> {
        let n = diesel::delete(
            external_identities::table.find(id.to_string()).filter(external_identities::user_id.eq(user.to_string())),
        )
        .execute(self)?;
        Ok(n > 0)
    }

    fn touch_external_identity(&mut self, id: ExternalIdentityId, now: NaiveDateTime) -> StorageResult<()> {
        diesel::update(external_identities::table.find(id.to_string()))
            .set(external_identities::last_login_at.eq(Some(now)))
            .execute(self)?;
        Ok(())
    }
}
