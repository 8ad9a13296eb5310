use chrono::NaiveDateTime;
use serde::Serialize;

use super::{ExternalIdentityId, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: Option<String>,
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// What is needed to create a user.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub email: Option<String>,
    pub email_verified: bool,
    pub display_name: Option<String>,
}

/// A user's account at an upstream connector: (connector, subject) is unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExternalIdentity {
    pub id: ExternalIdentityId,
    pub user_id: UserId,
    pub connector_id: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_login_at: Option<NaiveDateTime>,
}
