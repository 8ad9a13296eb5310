-- Invitations to join an organisation with a role, accepted by the signed-in user whose
-- verified e-mail matches. The token is shown once (as an accept URL) and kept as SHA-256.
CREATE TABLE invitations (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    builtin_role TEXT,
    custom_role_id TEXT REFERENCES custom_roles (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    accepted_at TIMESTAMP,
    accepted_by TEXT REFERENCES users (id) ON DELETE SET NULL,
    CHECK ((builtin_role IS NULL) <> (custom_role_id IS NULL))
);
CREATE INDEX invitations_organisation ON invitations (organisation_id);
