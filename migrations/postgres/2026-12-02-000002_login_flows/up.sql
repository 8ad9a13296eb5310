-- Server-side state of a login in progress at an upstream connector: single use, expiring,
-- bound to the browser by a cookie whose hash is stored. The PKCE verifier and nonce are sealed.
CREATE TABLE login_flows (
    id TEXT PRIMARY KEY NOT NULL,
    state_hash TEXT NOT NULL UNIQUE,
    browser_hash TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    sealed BYTEA NOT NULL,
    return_to TEXT,
    link_user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX login_flows_expires_at ON login_flows (expires_at);
