-- SAML replay store: the ID of every assertion accepted at an ACS, kept until the assertion
-- expires, so the same signed response cannot be posted twice (samael keeps no such cache).
-- id: hex SHA-256 of "<connector id>\n<assertion ID>".
CREATE TABLE saml_assertions (
    id TEXT PRIMARY KEY NOT NULL,
    connector_id TEXT NOT NULL,
    seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX saml_assertions_expiry ON saml_assertions (expires_at);
