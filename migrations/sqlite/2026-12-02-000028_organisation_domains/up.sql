-- E-mail domains an organisation claims. A claim is proved by a DNS TXT record
-- (`_idp-challenge.<domain>` = `idp-verify=<token>`); a verified domain may be routed to one of
-- the organisation's connectors for home-realm discovery. A domain is verified by one
-- organisation at most.
CREATE TABLE organisation_domains (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    domain TEXT NOT NULL,
    token TEXT NOT NULL,
    verified_at TIMESTAMP,
    connector_id TEXT REFERENCES organisation_connectors (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (organisation_id, domain)
);
CREATE UNIQUE INDEX organisation_domains_verified ON organisation_domains (domain) WHERE verified_at IS NOT NULL;
