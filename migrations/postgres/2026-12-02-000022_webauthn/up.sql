-- WebAuthn credentials: passkeys (discoverable, user verification required; a first factor on
-- their own) and security keys (a second factor). `credential` is webauthn-rs's serialised
-- credential (public key, algorithm, counter, flags: nothing secret). sign_count and the backup
-- flags are kept in columns too, so an accepted use is a conditional update: two instances
-- racing on the same assertion cannot both win, and a counter never goes back.
CREATE TABLE webauthn_credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- passkey | security_key
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- The authenticator's credential id, base64url without padding.
    credential_id TEXT NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    sign_count BIGINT NOT NULL,
    backup_eligible BOOLEAN NOT NULL DEFAULT FALSE,
    backed_up BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_id);
-- A registration or authentication in progress: webauthn-rs's state (the challenge), stored
-- server-side so any instance can finish it; single use (deleted when taken), five minutes.
-- binding_hash is the SHA-256 of what it is bound to: the session, the pending login, or the
-- login page's pre-session cookie.
CREATE TABLE webauthn_ceremonies (
    id TEXT PRIMARY KEY NOT NULL,
    -- register_passkey | register_security_key | second_factor | passkey_login
    purpose TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    binding_hash TEXT NOT NULL,
    name TEXT,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX webauthn_ceremonies_expires_at ON webauthn_ceremonies (expires_at);
CREATE INDEX webauthn_ceremonies_user ON webauthn_ceremonies (user_id);
