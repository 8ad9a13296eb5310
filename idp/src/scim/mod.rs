//! SCIM 2.0 (RFC 7643/7644): an organisation's identity provider (Okta, OneLogin, Entra ID)
//! provisions its Users and Groups with an organisation token carrying `scim_provision`.
//! Resources are kept as canonical JSON validated against the schema idp publishes
//! ([`schema`]); [`filter`] and [`patch`] work on that JSON generically; [`service`] maps
//! Users onto idp users and organisation membership, Groups onto roles through the
//! organisation's group-to-role mappings (`auth::mapping`), and deactivation onto an
//! at-once cut-off (`admin::deprovision`). Nothing here knows HTTP.

pub mod error;
pub mod filter;
pub mod patch;
pub mod schema;
pub mod service;

pub use error::{ScimError, ScimType};
pub use schema::Kind;
