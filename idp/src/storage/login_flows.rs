use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::login_flows;
use super::{DbConnection, StorageResult};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = login_flows)]
pub struct LoginFlowRow {
    pub id: String,
    pub state_hash: String,
    pub browser_hash: String,
    pub connector_id: String,
    #[serde(with = "super::models::base64_bytes")]
    pub sealed: Vec<u8>,
    pub return_to: Option<String>,
    pub link_user_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub trait LoginFlowRepository {
    fn insert_login_flow(&mut self, row: &LoginFlowRow) -> StorageResult<()>;
    /// Removes and returns the flow with this state: whoever takes it first has it, so a
    /// callback can be used once, on any instance.
    fn take_login_flow(&mut self, state_hash: &str) -> StorageResult<Option<LoginFlowRow>>;
    fn purge_login_flows(&mut self, now: NaiveDateTime) -> StorageResult<usize>;
}

impl LoginFlowRepository for DbConnection {
    fn insert_login_flow(&mut self, row: &LoginFlowRow) -> StorageResult<()> {
        diesel::insert_into(login_flows::table).values(row).execute(self)?;
        Ok(())
    }

    fn take_login_flow(&mut self, state_hash: &str) -> StorageResult<Option<LoginFlowRow>> {
        let Some(row) = login_flows::table
            .filter(login_flows::state_hash.eq(state_hash))
            .select(LoginFlowRow::as_select())
            .first(self)
            .optional()?
        else {
            return Ok(None);
        };
        let taken = diesel::delete(login_flows::table.find(&row.id)).execute(self)?;
        Ok((taken == 1).then_some(row))
    }

    fn purge_login_flows(&mut self, now: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::delete(login_flows::table.filter(login_flows::expires_at.le(now))).execute(self)?)
    }
}
