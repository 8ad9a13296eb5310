-- Connectors an organisation's administrators created (beside those in the config file). The
-- settings are the [[connectors]] table without its secret; the client secret is sealed.
CREATE TABLE organisation_connectors (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    settings TEXT NOT NULL,
    secret_id TEXT NOT NULL REFERENCES secrets (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX organisation_connectors_organisation ON organisation_connectors (organisation_id);
