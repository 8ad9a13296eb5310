-- SCIM 2.0 (docs/admin.md#scim): the Users and Groups an organisation's identity provider
-- provisions with an organisation token. attributes: the resource's SCIM attributes as
-- canonical JSON (validated against the published schema; id and meta are not in it).
-- kind: User or Group. unique_name: the lower-cased userName of a User, the id of a Group
-- (display names need not be unique). user_id: the idp user a SCIM User is (none for Groups).
CREATE TABLE scim_resources (
    id TEXT PRIMARY KEY NOT NULL,
    organisation_id TEXT NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    unique_name TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    external_id TEXT,
    attributes TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (organisation_id, kind, unique_name)
);
CREATE INDEX scim_resources_user ON scim_resources (user_id);
CREATE INDEX scim_resources_external_id ON scim_resources (organisation_id, kind, external_id);

-- Who is in which SCIM Group (derived from the group's members attribute), for the
-- organisation's group-to-role mappings.
CREATE TABLE scim_group_members (
    group_id TEXT NOT NULL REFERENCES scim_resources (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES scim_resources (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX scim_group_members_member ON scim_group_members (member_id);
