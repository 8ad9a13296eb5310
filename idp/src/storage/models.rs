//! Row types, as stored. Converted to domain types at the repository boundary. Their serde form
//! (field name = column name, bytes as base64, timestamps as text) is the backup's row format.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::*;

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = external_identities)]
pub struct ExternalIdentityRow {
    pub id: String,
    pub user_id: String,
    pub connector_id: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = organisations)]
pub struct OrganisationRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = projects)]
pub struct ProjectRow {
    pub id: String,
    pub organisation_id: String,
    pub slug: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = custom_roles)]
pub struct CustomRoleRow {
    pub id: String,
    pub organisation_id: String,
    pub name: String,
    pub permissions: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = organisation_members)]
pub struct OrganisationMemberRow {
    pub organisation_id: String,
    pub user_id: String,
    pub builtin_role: Option<String>,
    pub custom_role_id: Option<String>,
    pub created_at: NaiveDateTime,
    /// NULL: set by an administrator; `connector:<id>`: by that connector's group mapping.
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = project_members)]
pub struct ProjectMemberRow {
    pub project_id: String,
    pub user_id: String,
    pub builtin_role: Option<String>,
    pub custom_role_id: Option<String>,
    pub created_at: NaiveDateTime,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub token_hash: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub amr: String,
    pub acr: Option<String>,
    pub source: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = secrets)]
pub struct SecretRow {
    pub id: String,
    pub purpose: String,
    #[serde(with = "base64_bytes")]
    pub sealed: Vec<u8>,
    pub key_id: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub id: String,
    pub algorithm: String,
    pub public_jwk: String,
    pub secret_id: String,
    pub created_at: NaiveDateTime,
    pub signs_from: NaiveDateTime,
    pub retires_at: Option<NaiveDateTime>,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub id: String,
    pub occurred_at: NaiveDateTime,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub source: Option<String>,
    pub details: Option<String>,
    /// Absent from backups made before the column existed.
    #[serde(default)]
    pub organisation_id: Option<String>,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = settings)]
pub struct SettingRow {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Queryable, Selectable, Insertable, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[diesel(table_name = rate_limits)]
pub struct RateLimitRow {
    pub bucket: String,
    pub window_start: i64,
    pub hits: i32,
}

/// Binary columns as standard base64 text in serde formats.
pub(crate) mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
