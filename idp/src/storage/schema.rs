// One schema for both backends; migrations/{sqlite,postgres} create the same tables.

diesel::table! {
    secrets (id) {
        id -> Text,
        purpose -> Text,
        sealed -> Binary,
        key_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Nullable<Text>,
        email_verified -> Bool,
        display_name -> Nullable<Text>,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    external_identities (id) {
        id -> Text,
        user_id -> Text,
        connector_id -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        created_at -> Timestamp,
        last_login_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    organisations (id) {
        id -> Text,
        slug -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    projects (id) {
        id -> Text,
        organisation_id -> Text,
        slug -> Text,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    custom_roles (id) {
        id -> Text,
        organisation_id -> Text,
        name -> Text,
        permissions -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    organisation_members (organisation_id, user_id) {
        organisation_id -> Text,
        user_id -> Text,
        builtin_role -> Nullable<Text>,
        custom_role_id -> Nullable<Text>,
        created_at -> Timestamp,
        source -> Nullable<Text>,
    }
}

diesel::table! {
    project_members (project_id, user_id) {
        project_id -> Text,
        user_id -> Text,
        builtin_role -> Nullable<Text>,
        custom_role_id -> Nullable<Text>,
        created_at -> Timestamp,
        source -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        amr -> Text,
        acr -> Nullable<Text>,
        source -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (id) {
        id -> Text,
        algorithm -> Text,
        public_jwk -> Text,
        secret_id -> Text,
        created_at -> Timestamp,
        signs_from -> Timestamp,
        retires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        occurred_at -> Timestamp,
        actor -> Text,
        action -> Text,
        target -> Nullable<Text>,
        outcome -> Text,
        source -> Nullable<Text>,
        details -> Nullable<Text>,
        organisation_id -> Nullable<Text>,
    }
}

diesel::table! {
    rate_limits (bucket) {
        bucket -> Text,
        window_start -> BigInt,
        hits -> Integer,
    }
}

diesel::joinable!(external_identities -> users (user_id));
diesel::joinable!(projects -> organisations (organisation_id));
diesel::joinable!(custom_roles -> organisations (organisation_id));
diesel::joinable!(organisation_members -> organisations (organisation_id));
diesel::joinable!(organisation_members -> users (user_id));
diesel::joinable!(project_members -> projects (project_id));
diesel::joinable!(project_members -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(signing_keys -> secrets (secret_id));

diesel::allow_tables_to_appear_in_same_query!(
    secrets,
    settings,
    users,
    external_identities,
    organisations,
    projects,
    custom_roles,
    organisation_members,
    project_members,
    sessions,
    signing_keys,
    audit_events,
    rate_limits,
);

diesel::table! {
    login_flows (id) {
        id -> Text,
        state_hash -> Text,
        browser_hash -> Text,
        connector_id -> Text,
        sealed -> Binary,
        return_to -> Nullable<Text>,
        link_user_id -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(login_flows, users);

diesel::table! {
    pending_mfa_logins (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        amr -> Text,
        acr -> Nullable<Text>,
        method -> Text,
        return_to -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(pending_mfa_logins, users);

diesel::table! {
    password_credentials (user_id) {
        user_id -> Text,
        login -> Text,
        hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(password_credentials, users);

diesel::table! {
    organisation_connectors (id) {
        id -> Text,
        organisation_id -> Text,
        settings -> Text,
        secret_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(organisation_connectors, organisations);

diesel::table! {
    oauth_grants (id) {
        id -> Text,
        client_id -> Text,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        scopes -> Text,
        auth_time -> Nullable<Timestamp>,
        amr -> Text,
        acr -> Nullable<Text>,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oauth_codes (code_hash) {
        code_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        redirect_uri -> Text,
        nonce -> Nullable<Text>,
        code_challenge -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oauth_refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        parent_hash -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        consumed_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(oauth_codes -> oauth_grants (grant_id));
diesel::joinable!(oauth_refresh_tokens -> oauth_grants (grant_id));
diesel::allow_tables_to_appear_in_same_query!(oauth_grants, oauth_codes, oauth_refresh_tokens, users);

diesel::table! {
    api_tokens (id) {
        id -> Text,
        kind -> Text,
        name -> Text,
        organisation_id -> Text,
        project_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        created_by -> Nullable<Text>,
        scopes -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        last_used_source -> Nullable<Text>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_token_secrets (secret_hash) {
        secret_hash -> Text,
        token_id -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_token_policies (organisation_id) {
        organisation_id -> Text,
        max_lifetime_days -> Integer,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(api_token_secrets -> api_tokens (token_id));
diesel::allow_tables_to_appear_in_same_query!(api_tokens, api_token_secrets, api_token_policies);

diesel::table! {
    totp_credentials (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        secret_id -> Text,
        confirmed_at -> Nullable<Timestamp>,
        last_used_step -> Nullable<BigInt>,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_codes (code_hash) {
        code_hash -> Text,
        user_id -> Text,
        set_id -> Text,
        created_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(totp_credentials -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(totp_credentials, recovery_codes, users);
diesel::allow_tables_to_appear_in_same_query!(totp_credentials, secrets);

diesel::table! {
    revoked_access_tokens (jti) {
        jti -> Text,
        client_id -> Text,
        revoked_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    oauth_consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scopes -> Text,
        granted_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(oauth_consents, users);

diesel::table! {
    organisation_mfa_policies (organisation_id) {
        organisation_id -> Text,
        requirement -> Text,
        methods -> Text,
        grace_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        updated_by -> Text,
    }
}

diesel::table! {
    project_mfa_policies (project_id) {
        project_id -> Text,
        requirement -> Text,
        methods -> Text,
        grace_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        updated_by -> Text,
    }
}

diesel::joinable!(organisation_mfa_policies -> organisations (organisation_id));
diesel::joinable!(project_mfa_policies -> projects (project_id));
diesel::allow_tables_to_appear_in_same_query!(organisation_mfa_policies, organisations);
diesel::allow_tables_to_appear_in_same_query!(project_mfa_policies, projects);

diesel::table! {
    oauth_clients (id) {
        id -> Text,
        organisation_id -> Text,
        project_id -> Text,
        settings -> Text,
        secret_hash -> Nullable<Text>,
        created_at -> Timestamp,
        created_by -> Text,
    }
}

diesel::joinable!(oauth_clients -> projects (project_id));
diesel::allow_tables_to_appear_in_same_query!(oauth_clients, projects);

diesel::table! {
    scim_resources (id) {
        id -> Text,
        organisation_id -> Text,
        kind -> Text,
        unique_name -> Text,
        user_id -> Nullable<Text>,
        external_id -> Nullable<Text>,
        attributes -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    scim_group_members (group_id, member_id) {
        group_id -> Text,
        member_id -> Text,
    }
}

diesel::table! {
    webauthn_credentials (id) {
        id -> Text,
        user_id -> Text,
        kind -> Text,
        name -> Text,
        credential_id -> Text,
        credential -> Text,
        sign_count -> BigInt,
        backup_eligible -> Bool,
        backed_up -> Bool,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Text,
        purpose -> Text,
        user_id -> Nullable<Text>,
        binding_hash -> Text,
        name -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(webauthn_credentials -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(webauthn_credentials, users);

diesel::table! {
    saml_assertions (id) {
        id -> Text,
        connector_id -> Text,
        seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    organisation_domains (id) {
        id -> Text,
        organisation_id -> Text,
        domain -> Text,
        token -> Text,
        verified_at -> Nullable<Timestamp>,
        connector_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        organisation_id -> Text,
        email -> Text,
        builtin_role -> Nullable<Text>,
        custom_role_id -> Nullable<Text>,
        token_hash -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        accepted_at -> Nullable<Timestamp>,
        accepted_by -> Nullable<Text>,
    }
}
