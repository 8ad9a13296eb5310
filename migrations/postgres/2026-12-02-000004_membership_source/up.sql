-- Where a membership came from: NULL when an administrator set it, 'connector:<id>' when a
-- connector's group mapping did (and will take it away again when the group goes).
ALTER TABLE organisation_members ADD COLUMN source TEXT;
ALTER TABLE project_members ADD COLUMN source TEXT;
