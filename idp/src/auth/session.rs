//! Server-side sessions. The browser holds a 256-bit random token; the database holds its
//! SHA-256 and the session's expiry, so a database leak yields no usable cookie.

use std::net::IpAddr;

use chrono::{Duration, NaiveDateTime};

use crate::audit::{Action, Actor, Auditor, Event};
use crate::config::SessionConfig;
use crate::crypto::pseudonym::Datum;
use crate::crypto::tokens::{hash_token, random_token};
use crate::domain::session::Session;
use crate::domain::{SessionId, UserId};
use crate::storage::StorageResult;
use crate::storage::audit::AuditRepository;
use crate::storage::oauth::OAuthRepository;
use crate::storage::sessions::{NewSession, SessionRepository};

/// The cookie value of a new session. Never logged, never stored.
pub struct SessionToken(String);

impl SessionToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

/// Where a login came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// Seen-at updates are written at most this often, so reading pages is not a write each time.
const TOUCH_EVERY_SECS: i64 = 60;

fn duration(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// Starts a new session (a fresh id every login: no fixation), audited in the same unit of work.
#[allow(clippy::too_many_arguments)]
pub fn start(
    conn: &mut (impl SessionRepository + AuditRepository),
    auditor: &Auditor,
    config: &SessionConfig,
    now: NaiveDateTime,
    user: UserId,
    amr: &[String],
    acr: Option<&str>,
    origin: &Origin,
) -> StorageResult<(SessionToken, Session)> {
    let token = random_token(32);
    let source = origin.ip.map(|ip| auditor.pseudonymiser().pseudonymise(Datum::IpAddress, &ip.to_string()));
    let session = conn.create_session(&NewSession {
        token_hash: &hash_token(&token),
        user_id: user,
        now,
        expires_at: now + duration(config.absolute_timeout),
        amr,
        acr,
        source: source.as_deref(),
        user_agent: origin.user_agent.as_deref(),
    })?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::SessionCreated).target(session.id).source(origin.ip),
    )?;
    Ok((SessionToken(token), session))
}

/// The live session a cookie names, if any; expired ones are removed on sight.
pub fn resolve(
    conn: &mut impl SessionRepository,
    config: &SessionConfig,
    now: NaiveDateTime,
    token: &str,
) -> StorageResult<Option<Session>> {
    if token.len() != 43 {
        return Ok(None);
    }
    let Some(session) = conn.find_session_by_token_hash(&hash_token(token))? else { return Ok(None) };
    if !session.is_live(now, duration(config.idle_timeout)) {
        conn.delete_session(session.id)?;
        return Ok(None);
    }
    if now - session.last_seen_at >= Duration::seconds(TOUCH_EVERY_SECS) {
        conn.touch_session(session.id, now)?;
    }
    Ok(Some(session))
}

/// Ends one of the user's own sessions; an id that is not theirs ends nothing.
pub fn end(
    conn: &mut (impl SessionRepository + AuditRepository + OAuthRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    user: UserId,
    id: SessionId,
    action: Action,
    ip: Option<IpAddr>,
) -> StorageResult<bool> {
    let ended = conn.delete_session_of_user(user, id)?;
    if ended {
        // What apps were given from the session ends with it.
        conn.revoke_session_grants(id, now)?;
        auditor.record(conn, now, Event::new(Actor::User(user), action).target(id).source(ip))?;
    }
    Ok(ended)
}

/// Ends the session a browser still carries when it logs in again, so each login leaves one
/// live session behind (and a planted cookie never survives a login).
pub fn end_previous(conn: &mut impl SessionRepository, previous_token: Option<&str>) -> StorageResult<()> {
    if let Some(token) = previous_token.filter(|t| t.len() == 43) {
        if let Some(old) = conn.find_session_by_token_hash(&hash_token(token))? {
            conn.delete_session(old.id)?;
        }
    }
    Ok(())
}

/// Ends every session of a user (an admin action, or deprovisioning).
pub fn end_all(
    conn: &mut (impl SessionRepository + AuditRepository + OAuthRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    user: UserId,
) -> StorageResult<usize> {
    let n = conn.delete_sessions_of_user(user)?;
    conn.revoke_user_grants(user, now)?;
    auditor.record(conn, now, Event::new(actor, Action::SessionEnded).target(user).detail("sessions", n))?;
    Ok(n)
}

pub fn purge_expired(
    conn: &mut impl SessionRepository,
    config: &SessionConfig,
    now: NaiveDateTime,
) -> StorageResult<usize> {
    conn.delete_expired_sessions(now, now - duration(config.idle_timeout))
}
