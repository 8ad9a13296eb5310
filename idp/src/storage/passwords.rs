use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::password_credentials;
use super::{DbConnection, StorageResult, parse_id};
use crate::domain::UserId;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = password_credentials)]
pub struct PasswordCredentialRow {
    pub user_id: String,
    pub login: String,
    pub hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub trait PasswordRepository {
    /// The user and stored hash for a login name (a normalised e-mail address).
    fn password_for_login(&mut self, login: &str) -> StorageResult<Option<(UserId, String)>>;
    fn user_has_password(&mut self, user: UserId) -> StorageResult<bool>;
    /// Sets or replaces the user's password.
    fn set_password(&mut self, user: UserId, login: &str, hash: &str, now: NaiveDateTime) -> StorageResult<()>;
}

impl PasswordRepository for DbConnection {
    fn password_for_login(&mut self, login: &str) -> StorageResult<Option<(UserId, String)>> {
        let row: Option<(String, String)> = password_credentials::table
            .filter(password_credentials::login.eq(login))
            .select((password_credentials::user_id, password_credentials::hash))
            .first(self)
            .optional()?;
        row.map(|(u, h)| Ok((parse_id(&u)?, h))).transpose()
    }

    fn user_has_password(&mut self, user: UserId) -> StorageResult<bool> {
        let n: i64 = password_credentials::table.find(user.to_string()).count().get_result(self)?;
        Ok(n > 0)
    }

    fn set_password(&mut self, user: UserId, login: &str, hash: &str, now: NaiveDateTime) -> StorageResult<()> {
        let updated = diesel::update(password_credentials::table.find(user.to_string()))
            .set((
                password_credentials::hash.eq(hash),
                password_credentials::login.eq(login),
                password_credentials::updated_at.eq(now),
            ))
            .execute(self)?;
        if updated == 0 {
            diesel::insert_into(password_credentials::table)
                .values(&PasswordCredentialRow {
                    user_id: user.to_string(),
                    login: login.to_owned(),
                    hash: hash.to_owned(),
                    created_at: now,
                    updated_at: now,
                })
                .execute(self)?;
        }
        Ok(())
    }
}
