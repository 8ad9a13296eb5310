-- API tokens for people (personal, acting as their user in one project), for projects (service
-- accounts, which outlive their creator) and for organisations (admin and SCIM automation).
-- A token has one or more secrets: rotation adds one and gives the old one an end. Secrets are
-- stored only as SHA-256; the token's metadata never holds one.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    project_id TEXT REFERENCES projects (id) ON DELETE CASCADE,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_by TEXT,
    scopes TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    last_used_source TEXT,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_organisation ON api_tokens (organisation_id);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
CREATE TABLE api_token_secrets (
    secret_hash TEXT PRIMARY KEY NOT NULL,
    token_id TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP
);
CREATE INDEX api_token_secrets_token ON api_token_secrets (token_id);
-- The longest lifetime an organisation allows for its tokens.
CREATE TABLE api_token_policies (
    organisation_id TEXT PRIMARY KEY NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    max_lifetime_days INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
