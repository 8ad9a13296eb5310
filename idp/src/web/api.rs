//! What every JSON API handler under `/api/v1` shares: who the caller is, the error body, the
//! body parser.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::admin::organisations::AdminError;
use crate::admin::tokens::Caller;
use crate::app::AppState;
use crate::domain::role::Permission;

/// An API refusal: `{"error": code, "message": words}` with the matching status.
pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": code, "message": message}))
}

pub(crate) fn api_admin_error(e: AdminError) -> HttpResponse {
    match e {
        AdminError::Invalid(why) => api_error(StatusCode::BAD_REQUEST, "invalid_request", &why),
        AdminError::Conflict(why) => api_error(StatusCode::CONFLICT, "conflict", &why),
        // Forbidden on something the caller can see; what they cannot see is NotFound.
        AdminError::Forbidden(why) => api_error(StatusCode::FORBIDDEN, "forbidden", why),
        AdminError::NotFound(what) => api_error(StatusCode::NOT_FOUND, "not_found", &format!("{what} not found")),
        AdminError::Storage(e) => {
            tracing::error!(error = %e, "api: storage failure");
            api_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "The server could not complete the request.")
        }
    }
}

/// Who calls the API: an API token carrying `needs` (confined to its organisation or project,
/// and a personal token to its user's rights), or a browser session, whose unsafe requests must
/// carry its CSRF token in `X-CSRF-Token`.
pub(crate) async fn api_caller(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    needs: Permission,
) -> Result<Caller, HttpResponse> {
    let unauthorized =
        || api_error(StatusCode::UNAUTHORIZED, "unauthorized", "Authenticate with a session or an API token.");
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        let Some(bearer) = auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer ")) else {
            return Err(unauthorized());
        };
        let (s, presented) = (state.clone(), bearer.trim().to_owned());
        let now = state.clock.now_naive();
        let r = web::block(move || s.db.read(|conn| s.tokens.validate(conn, &presented, now))).await;
        return match r {
            Ok(Ok(hit)) if hit.principal.allows(needs) => Ok(Caller::Token((&*hit.principal).into())),
            Ok(Ok(_)) => Err(api_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("The token lacks the {} scope.", crate::tokens::permission_name(needs)),
            )),
            Ok(Err(crate::tokens::TokenError::Storage(e))) => Err(api_admin_error(AdminError::Storage(e))),
            _ => Err(unauthorized()),
        };
    }
    let Ok(super::extract::MaybeSignedIn(Some(session))) =
        <super::extract::MaybeSignedIn as actix_web::FromRequest>::extract(req).await
    else {
        return Err(unauthorized());
    };
    if req.method() != actix_web::http::Method::GET {
        let presented = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if super::csrf::require_session(&state.csrf_key, &session, presented).is_err() {
            return Err(api_error(StatusCode::FORBIDDEN, "csrf", "X-CSRF-Token is missing or wrong."));
        }
    }
    Ok(Caller::User(session.user_id))
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HttpResponse> {
    serde_json::from_slice(body)
        .map_err(|_| api_error(StatusCode::BAD_REQUEST, "invalid_request", "The body is not the JSON this call takes."))
}

/// The response of a refusal, returned as it is.
macro_rules! api_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}
pub(crate) use api_try;

pub(crate) fn blocked(e: actix_web::error::BlockingError) -> HttpResponse {
    api_admin_error(AdminError::Storage(crate::storage::StorageError::Unavailable(e.to_string())))
}
