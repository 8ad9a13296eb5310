use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::AuditEventRow;
use super::schema::audit_events;
use super::{DbConnection, StorageResult};

pub trait AuditRepository {
    fn append_audit_event(&mut self, row: &AuditEventRow) -> StorageResult<()>;
    /// Newest first, optionally only one action.
    fn audit_events(&mut self, action: Option<&str>, limit: i64) -> StorageResult<Vec<AuditEventRow>>;
    /// One organisation's events, newest first: `limit` of them older than the `before` cursor
    /// (an event's time and id), optionally only one action.
    fn organisation_audit_events(
        &mut self,
        organisation_id: &str,
        action: Option<&str>,
        before: Option<(NaiveDateTime, &str)>,
        limit: i64,
    ) -> StorageResult<Vec<AuditEventRow>>;
    /// The retention purge: deletes events older than `before`.
    fn purge_audit_events(&mut self, before: NaiveDateTime) -> StorageResult<usize>;
}

impl AuditRepository for DbConnection {
    fn append_audit_event(&mut self, row: &AuditEventRow) -> StorageResult<()> {
        diesel::insert_into(audit_events::table).values(row).execute(self)?;
        Ok(())
    }

    fn audit_events(&mut self, action: Option<&str>, limit: i64) -> StorageResult<Vec<AuditEventRow>> {
        let mut q = audit_events::table
            .select(AuditEventRow::as_select())
            .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(a) = action {
            q = q.filter(audit_events::action.eq(a.to_owned()));
        }
        Ok(q.load(self)?)
    }

    fn organisation_audit_events(
        &mut self,
        organisation_id: &str,
        action: Option<&str>,
        before: Option<(NaiveDateTime, &str)>,
        limit: i64,
    ) -> StorageResult<Vec<AuditEventRow>> {
        let mut q = audit_events::table
            .select(AuditEventRow::as_select())
            .filter(audit_events::organisation_id.eq(organisation_id.to_owned()))
            .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(a) = action {
            q = q.filter(audit_events::action.eq(a.to_owned()));
        }
        if let Some((at, id)) = before {
            q = q.filter(
                audit_events::occurred_at
                    .lt(at)
                    .or(audit_events::occurred_at.eq(at).and(audit_events::id.lt(id.to_owned()))),
            );
        }
        Ok(q.load(self)?)
    }

    fn purge_audit_events(&mut self, before: NaiveDateTime) -> StorageResult<usize> {
        Ok(diesel::delete(audit_events::table.filter(audit_events::occurred_at.lt(before))).execute(self)?)
    }
}
