//! Administrative use cases. Callers prove their rights by the `Actor` they pass; the CLI is
//! the operator and may do everything. Authorisation for organisation admins lands here too.

pub mod access;
pub mod audit_log;
pub mod caller;
pub mod clients;
pub mod connectors;
pub mod deprovision;
pub mod directory;
pub mod dns;
pub mod domains;
pub mod invitations;
pub mod keys;
pub mod mfa_policy;
pub mod mfa_reset;
pub mod organisations;
pub mod tokens;
