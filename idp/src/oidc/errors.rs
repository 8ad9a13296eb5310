//! OAuth 2.0 / OpenID Connect errors with the standards' names (RFC 6749 §4.1.2.1 and §5.2,
//! RFC 6750 §3.1, RFC 7009, OIDC Core §3.1.2.6). Only `web::oidc` turns them into HTTP.

use crate::storage::StorageError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    UnsupportedTokenType,
    InvalidScope,
    /// RFC 8693 §2.2.2.
    InvalidTarget,
    AccessDenied,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    InvalidToken,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::ServerError => "server_error",
        }
    }
}

/// An error a client may see: a standard code and a fixed description (never internal detail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: &'static str,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: &'static str) -> Self {
        Self { code, description }
    }
}

impl From<StorageError> for OAuthError {
    fn from(e: StorageError) -> Self {
        tracing::error!(error = %e, "oidc: storage failure");
        OAuthError::new(ErrorCode::ServerError, "The server could not complete the request.")
    }
}

pub(crate) fn err(code: ErrorCode, description: &'static str) -> OAuthError {
    OAuthError::new(code, description)
}

/// A refusal that still commits what the request changed (a revoked grant after a replay):
/// the outer error rolls the transaction back, the inner one does not.
pub type Outcome<T> = Result<Result<T, OAuthError>, StorageError>;
