DROP INDEX audit_events_organisation;
ALTER TABLE audit_events DROP COLUMN organisation_id;
