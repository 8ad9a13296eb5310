-- The organisation an event belongs to, so its administrators can read their own log.
ALTER TABLE audit_events ADD COLUMN organisation_id TEXT;
CREATE INDEX audit_events_organisation ON audit_events (organisation_id, occurred_at);
