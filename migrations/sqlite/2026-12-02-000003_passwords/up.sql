-- Password credentials, for deployments that turn password_login on. `login` is the
-- normalised e-mail address the user signs in with; the hash is argon2id (PHC string).
CREATE TABLE password_credentials (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    login TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
