ALTER TABLE organisation_members DROP COLUMN source;
ALTER TABLE project_members DROP COLUMN source;
