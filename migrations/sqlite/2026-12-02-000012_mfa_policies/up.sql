-- Two-factor requirements of organisations and projects (docs/mfa.md). No row means "off".
-- requirement: 'off' or 'required'. methods: a JSON array of 'totp' / 'webauthn', empty for
-- any method. grace_until: until when a user without an allowed factor may still come in
-- (and enrol later); NULL for no grace. updated_by: the actor, as the audit log names it.
CREATE TABLE organisation_mfa_policies (
    organisation_id TEXT PRIMARY KEY NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    requirement TEXT NOT NULL,
    methods TEXT NOT NULL,
    grace_until TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE TABLE project_mfa_policies (
    project_id TEXT PRIMARY KEY NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    requirement TEXT NOT NULL,
    methods TEXT NOT NULL,
    grace_until TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    updated_by TEXT NOT NULL
);
