//! idp: a standalone identity provider and SSO broker.
//!
//! The map (docs/architecture.md has the long form). Dependencies point one way:
//! `web -> {auth, admin, audit} -> {domain, storage, crypto}`.
//!
//! - [`config`]: typed configuration from TOML and `IDP_*` variables, validated, no globals.
//! - [`clock`]: time as a parameter.
//! - [`domain`]: pure types: ids, users, organisations, projects, roles, sessions.
//! - [`crypto`]: sealed secrets (AES-256-GCM), tokens, pseudonyms, signing keys.
//! - [`storage`]: repository traits and their diesel implementation for SQLite and PostgreSQL.
//! - [`audit`]: the append-only, pseudonymised audit log.
//! - [`auth`]: sessions and rate limits.
//! - [`mfa`]: second factors: TOTP, WebAuthn (passkeys and security keys) and recovery codes,
//!   and the organisation/project two-factor policy.
//! - [`admin`]: administrative use cases (organisations, projects, key rotation), and the
//!   at-once cut-off of a deprovisioned user (`admin::deprovision`).
//! - [`scim`]: SCIM 2.0 for organisations' identity providers: schemas, filters, PATCH, Users
//!   and Groups (docs/admin.md#scim-provisioning).
//! - [`web`]: HTTP: routes, middleware, extractors, views. The only module that knows actix.
//! - [`oidc`]: idp as an OpenID Provider (discovery, authorize, token, grants, userinfo, ...).
//! - [`backup`]: encrypted, backend-neutral backups, restore and the restore rehearsal.
//! - [`app`]: assembles the state; [`cli`]: the command line; [`maintenance`]: periodic jobs.

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
mod cli_backup;
mod cli_mfa;
mod cli_token;
pub mod client_config;
pub mod clock;
pub mod config;
pub mod connector_config;
pub mod crypto;
pub mod domain;
pub mod maintenance;
pub mod mfa;
pub mod oidc;
pub mod saml_config;
pub mod scim;
pub mod storage;
pub mod tokens;
pub mod upstream;
pub mod web;
