//! SCIM errors (RFC 7644 §3.12): an HTTP status, a `scimType` for 400s and words for people.
//! Storage failures never reach the client as text.

use serde_json::{Value, json};

use crate::storage::StorageError;

pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The `scimType` values of RFC 7644 Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    #[error("{}: {detail}", scim_type.as_str())]
    BadRequest { scim_type: ScimType, detail: String },
    #[error("resource not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` names another version (RFC 7644 §3.14).
    #[error("the resource has changed")]
    PreconditionFailed,
    #[error(transparent)]
    Storage(StorageError),
}

impl From<StorageError> for ScimError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(_) => ScimError::Conflict("a resource with that name already exists".into()),
            other => ScimError::Storage(other),
        }
    }
}

impl ScimError {
    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError::BadRequest { scim_type, detail: detail.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ScimError::BadRequest { .. } => 400,
            ScimError::NotFound => 404,
            ScimError::Conflict(_) => 409,
            ScimError::PreconditionFailed => 412,
            ScimError::Storage(_) => 500,
        }
    }

    /// The response body; a storage failure says only that the server failed.
    pub fn body(&self) -> Value {
        match self {
            ScimError::BadRequest { scim_type, detail } => error_body(400, Some(scim_type.as_str()), detail),
            ScimError::NotFound => error_body(404, None, "Resource not found."),
            ScimError::Conflict(why) => error_body(409, Some(ScimType::Uniqueness.as_str()), why),
            ScimError::PreconditionFailed => error_body(412, None, "The resource has changed; read it again."),
            ScimError::Storage(_) => error_body(500, None, "The server could not complete the request."),
        }
    }
}

/// An error body of the SCIM Error schema.
pub fn error_body(status: u16, scim_type: Option<&str>, detail: &str) -> Value {
    let mut v = json!({"schemas": [ERROR_URN], "status": status.to_string(), "detail": detail});
    if let (Some(t), Some(map)) = (scim_type, v.as_object_mut()) {
        map.insert("scimType".into(), t.into());
    }
    v
}
