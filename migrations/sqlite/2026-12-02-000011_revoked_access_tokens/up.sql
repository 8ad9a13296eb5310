-- Access tokens revoked before they expired, for grants that keep no row of their own
-- (client_credentials issues without a database write; RFC 7009 revocation lands here).
-- Rows go once the token would have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    revoked_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);
