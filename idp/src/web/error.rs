//! The one place errors become HTTP. Nothing from the database or a library reaches a client:
//! internal errors are logged with the request id and answered with a generic page.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not found")]
    NotFound,
    #[error("login required")]
    LoginRequired { return_to: String },
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("upstream unavailable: {0}")]
    UpstreamDown(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StorageError> for WebError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => WebError::NotFound,
            StorageError::Unavailable(why) => WebError::Unavailable(why),
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for WebError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        WebError::Internal(e.to_string())
    }
}

impl WebError {
    fn public_message(&self) -> &'static str {
        match self {
            WebError::NotFound => "This page does not exist.",
            WebError::LoginRequired { .. } => "Please sign in.",
            WebError::Forbidden(why) | WebError::BadRequest(why) | WebError::Unauthorized(why) => why,
            WebError::RateLimited { .. } => "Too many attempts. Please wait a moment and try again.",
            WebError::UpstreamDown(_) => {
                "The sign-in provider is not answering right now. Please try again in a few minutes."
            }
            WebError::Unavailable(_) => "The service is temporarily unavailable. Please try again shortly.",
            WebError::Internal(_) => "Something went wrong on our side. The error has been logged.",
        }
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::UpstreamDown(_) => StatusCode::BAD_GATEWAY,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            WebError::Internal(detail) | WebError::Unavailable(detail) => {
                tracing::error!(error = %detail, "request failed")
            }
            other => tracing::debug!(error = %other, "request refused"),
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            WebError::LoginRequired { return_to } => {
                let target = format!(
                    "/login?return_to={}",
                    url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
                );
                res.insert_header((header::LOCATION, target));
            }
            WebError::RateLimited { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")))
            .body(error_page(self.status_code(), self.public_message()))
    }
}

/// A self-contained error page; it needs no template, so it works when nothing else does.
pub fn error_page(status: StatusCode, message: &str) -> String {
    let title = status.canonical_reason().unwrap_or("Error");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/static/idp.css\"></head><body><main class=\"card\">\
         <h1>{title}</h1><p>{}</p><p><a href=\"/\">Home</a></p></main></body></html>",
        html_escape(message)
    )
}

pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Errors from actix's own extractors (bad paths, bodies, forms), answered without their text.
pub fn extractor_error(err: actix_web::Error, status: StatusCode, path: &str) -> actix_web::Error {
    tracing::debug!(error = %err, "extractor refused the request");
    let message = match status {
        StatusCode::NOT_FOUND => "This page does not exist.",
        StatusCode::PAYLOAD_TOO_LARGE => "The request is too large.",
        _ => "The request could not be understood.",
    };
    actix_web::error::InternalError::from_response(err, refusal(path, status, message)).into()
}

/// A refusal made before any handler ran, in the form the path's callers read: JSON for the
/// API, a page for browsers.
pub fn refusal(path: &str, status: StatusCode, message: &str) -> HttpResponse {
    if path.starts_with("/api/") {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            _ => "invalid_request",
        };
        return super::api::api_error(status, code, message);
    }
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(error_page(status, message))
}
