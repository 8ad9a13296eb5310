-- A login whose first factor succeeded and whose second factor is still to come: short-lived,
-- single use, bound to the browser by a cookie of which only the SHA-256 is stored. No session
-- exists until the second factor is given; the row is deleted when it is.
CREATE TABLE pending_mfa_logins (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The first factor's authentication methods (RFC 8176) as a JSON array, and its acr.
    amr TEXT NOT NULL,
    acr TEXT,
    -- How the first factor was given, for the audit trail (a connector id, or "password").
    method TEXT NOT NULL,
    return_to TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX pending_mfa_logins_expires_at ON pending_mfa_logins (expires_at);
CREATE INDEX pending_mfa_logins_user_id ON pending_mfa_logins (user_id);
