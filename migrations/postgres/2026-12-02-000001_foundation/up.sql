-- Foundation schema (PostgreSQL). Keep in step with migrations/sqlite/ of the same name.
-- Identifiers are UUIDv4 text; timestamps are UTC.

CREATE TABLE secrets (
    id TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    key_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX secrets_key_id ON secrets (key_id);

CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    display_name TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX users_email ON users (email);

CREATE TABLE external_identities (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connector_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    created_at TIMESTAMP NOT NULL,
    last_login_at TIMESTAMP,
    UNIQUE (connector_id, subject)
);
CREATE INDEX external_identities_user ON external_identities (user_id);

CREATE TABLE organisations (
    id TEXT PRIMARY KEY NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE projects (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (organisation_id, slug)
);

CREATE TABLE custom_roles (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (organisation_id, name)
);

CREATE TABLE organisation_members (
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    builtin_role TEXT,
    custom_role_id TEXT REFERENCES custom_roles (id) ON DELETE RESTRICT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (organisation_id, user_id),
    CHECK ((builtin_role IS NULL) <> (custom_role_id IS NULL))
);
CREATE INDEX organisation_members_user ON organisation_members (user_id);

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    builtin_role TEXT,
    custom_role_id TEXT REFERENCES custom_roles (id) ON DELETE RESTRICT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (project_id, user_id),
    CHECK ((builtin_role IS NULL) <> (custom_role_id IS NULL))
);
CREATE INDEX project_members_user ON project_members (user_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    amr TEXT NOT NULL,
    acr TEXT,
    source TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE signing_keys (
    id TEXT PRIMARY KEY NOT NULL,
    algorithm TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    secret_id TEXT NOT NULL REFERENCES secrets (id),
    created_at TIMESTAMP NOT NULL,
    signs_from TIMESTAMP NOT NULL,
    retires_at TIMESTAMP
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    source TEXT,
    details TEXT
);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE rate_limits (
    bucket TEXT PRIMARY KEY NOT NULL,
    window_start BIGINT NOT NULL,
    hits INTEGER NOT NULL
);
