use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::SessionRow;
use super::schema::sessions;
use super::{DbConnection, StorageError, StorageResult, parse_id};
use crate::domain::session::Session;
use crate::domain::{SessionId, UserId};

/// A session to store; the token itself never reaches the database, only its hash.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: UserId,
    pub now: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub amr: &'a [String],
    pub acr: Option<&'a str>,
    pub source: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub trait SessionRepository {
    fn create_session(&mut self, new: &NewSession<'_>) -> StorageResult<Session>;
    fn find_session_by_token_hash(&mut self, token_hash: &str) -> StorageResult<Option<Session>>;
    fn touch_session(&mut self, id: SessionId, now: NaiveDateTime) -> StorageResult<()>;
    fn delete_session(&mut self, id: SessionId) -> StorageResult<bool>;
    /// Ends a session only if it belongs to `user` (so an id from elsewhere ends nothing).
    fn delete_session_of_user(&mut self, user: UserId, id: SessionId) -> StorageResult<bool>;
    fn delete_sessions_of_user(&mut self, user: UserId) -> StorageResult<usize>;
    fn sessions_of_user(&mut self, user: UserId) -> StorageResult<Vec<Session>>;
    /// Removes sessions past their absolute expiry or idle since before `idle_cutoff`.
    fn delete_expired_sessions(&mut self, now: NaiveDateTime, idle_cutoff: NaiveDateTime) -> StorageResult<usize>;
}

fn session(r: SessionRow) -> StorageResult<Session> {
    Ok(Session {
        id: parse_id(&r.id)?,
        user_id: parse_id(&r.user_id)?,
        created_at: r.created_at,
        last_seen_at: r.last_seen_at,
        expires_at: r.expires_at,
        amr: serde_json::from_str(&r.amr).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        acr: r.acr,
        source: r.source,
        user_agent: r.user_agent,
    })
}

impl SessionRepository for DbConnection {
    fn create_session(&mut self, new: &NewSession<'_>) -> StorageResult<Session> {
        let row = SessionRow {
            id: SessionId::new().to_string(),
            token_hash: new.token_hash.to_owned(),
            user_id: new.user_id.to_string(),
            created_at: new.now,
            last_seen_at: new.now,
            expires_at: new.expires_at,
            amr: serde_json::to_string(new.amr).map_err(|e| StorageError::Corrupt(e.to_string()))?,
            acr: new.acr.map(str::to_owned),
            source: new.source.map(str::to_owned),
            user_agent: new.user_agent.map(|s| s.chars().take(256).collect()),
        };
        diesel::insert_into(sessions::table).values(&row).execute(self)?;
        session(row)
    }

    fn find_session_by_token_hash(&mut self, token_hash: &str) -> StorageResult<Option<Session>> {
        sessions::table
            .filter(sessions::token_hash.eq(token_hash))
            .select(SessionRow::as_select())
            .first(self)
            .optional()?
            .map(session)
            .transpose()
    }

    fn touch_session(&mut self, id: SessionId, now: NaiveDateTime) -> StorageResult<()> {
        diesel::update(sessions::table.find(id.to_string())).set(sessions::last_seen_at.eq(now)).execute(self)?;
        Ok(())
    }

    fn delete_session(&mut self, id: SessionId) -> StorageResult<bool> {
        Ok(diesel::delete(sessions::table.find(id.to_string())).execute(self)? > 0)
    }

    fn delete_session_of_user(&mut self, user: UserId, id: SessionId) -> StorageResult<bool> {
        let n = diesel::delete(sessions::table.find(id.to_string()).filter(sessions::user_id.eq(user.to_string())))
            .execute(self)?;
        Ok(n > 0)
    }

    fn delete_sessions_of_user(&mut self, user: UserId) -> StorageResult<usize> {
        Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user.to_string()))).execute(self)?)
    }

    fn sessions_of_user(&mut self, user: UserId) -> StorageResult<Vec<Session>> {
        sessions::table
            .filter(sessions::user_id.eq(user.to_string()))
            .order(sessions::created_at.desc())
            .select(SessionRow::as_select())
            .load(self)?
            .into_iter()
            .map(session)
            .collect()
    }

    fn delete_expired_sessions(&mut self, now: NaiveDateTime, idle_cutoff: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::delete(
            sessions::table.filter(sessions::expires_at.le(now).or(sessions::last_seen_at.le(idle_cutoff))),
        )
        .execute(self)?)
    }
}
