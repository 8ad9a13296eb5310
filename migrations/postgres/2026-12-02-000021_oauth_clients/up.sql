-- Downstream OIDC clients that organisations' administrators register for a project through
-- the API (docs/oidc-provider.md); the file's [[clients]] are not stored. id is the client_id
-- (a UUID). settings: the registration as JSON, without any secret. secret_hash: hex SHA-256
-- of the secret idp generated (shown once); NULL for a public client.
CREATE TABLE oauth_clients (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    secret_hash TEXT,
    created_at TIMESTAMP NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX oauth_clients_project ON oauth_clients (project_id);
