-- Second factors: TOTP authenticators and one-time recovery codes.
-- A TOTP credential's seed lives sealed in `secrets` (purpose totp_seed); this table holds only
-- its id. An enrolment is pending (confirmed_at NULL) until the user proves it with a code, and
-- a pending one never counts as a factor. last_used_step is the last accepted 30-second step:
-- a code for that step or any earlier one is a replay and is refused.
CREATE TABLE totp_credentials (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret_id TEXT NOT NULL,
    confirmed_at TIMESTAMP,
    last_used_step BIGINT,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX totp_credentials_user ON totp_credentials (user_id);
-- At most one confirmed TOTP credential per user.
CREATE UNIQUE INDEX totp_credentials_one_confirmed ON totp_credentials (user_id) WHERE confirmed_at IS NOT NULL;
-- Recovery codes, stored only as SHA-256 (they carry 120 random bits). A new set replaces the
-- old one whole; a code is used once (used_at set).
CREATE TABLE recovery_codes (
    code_hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    set_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);
