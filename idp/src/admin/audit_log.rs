//! An organisation's audit log as its administrators read it: newest first, paged by an opaque
//! cursor, filtered by action. Personal data in it is already pseudonymised at write time.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::caller::{Caller, require, resolve};
use super::organisations::AdminError;
use crate::domain::role::Permission;
use crate::storage::audit::AuditRepository;
use crate::storage::models::AuditEventRow;
use crate::storage::organisations::OrganisationRepository;

/// The most events one page holds.
pub const MAX_PAGE: i64 = 500;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: String,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339")]
    pub occurred_at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    /// Pseudonymised source address.
    pub source: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<String>,
}

fn event(r: AuditEventRow) -> AuditEvent {
    // An event without details shows `{}`: the schema says an object.
    let details = r
        .details
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    AuditEvent {
        id: r.id,
        occurred_at: r.occurred_at,
        actor: r.actor,
        action: r.action,
        target: r.target,
        outcome: r.outcome,
        source: r.source,
        details,
    }
}

const CURSOR_FORMAT: &str = "%Y%m%dT%H%M%S%.6f";

fn cursor_of(e: &AuditEvent) -> String {
    format!("{}_{}", e.occurred_at.format(CURSOR_FORMAT), e.id)
}

fn parse_cursor(c: &str) -> Result<(NaiveDateTime, &str), AdminError> {
    let bad = || AdminError::Invalid("the cursor is not one this API gave".into());
    let (at, id) = c.split_once('_').ok_or_else(bad)?;
    let at = NaiveDateTime::parse_from_str(at, CURSOR_FORMAT).map_err(|_| bad())?;
    if id.len() != 36 || id.parse::<uuid::Uuid>().is_err() {
        return Err(bad());
    }
    Ok((at, id))
}

pub fn list(
    conn: &mut (impl OrganisationRepository + AuditRepository),
    caller: Caller,
    organisation: &str,
    action: Option<&str>,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<AuditPage, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::AuditRead, "reading the audit log needs audit_read")?;
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AdminError::Invalid(format!("limit is 1 to {MAX_PAGE}")));
    }
    if action.is_some_and(|a| a.len() > 100) {
        return Err(AdminError::Invalid("no action has so long a name".into()));
    }
    let before = cursor.map(parse_cursor).transpose()?;
    let rows = conn.organisation_audit_events(&org.to_string(), action, before, limit + 1)?;
    let more = rows.len() as i64 > limit;
    let events: Vec<AuditEvent> = rows.into_iter().take(limit as usize).map(event).collect();
    let next_cursor = if more { events.last().map(cursor_of) } else { None };
    Ok(AuditPage { events, next_cursor })
}
