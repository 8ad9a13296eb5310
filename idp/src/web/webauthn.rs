//! WebAuthn ceremonies over JSON, driven by `/static/webauthn.js`: each has a `start` that
//! answers the options for `navigator.credentials.create()` / `get()` and the ceremony's id, and
//! a `finish` that takes the authenticator's answer. Every body carries a CSRF token bound to
//! what the ceremony is bound to (the session, the pending login's cookie, or the login page's
//! pre-session cookie), and same-origin is enforced by middleware as for forms.
//!
//! A finish answers `{"redirect": URL}` and the script navigates there: no redirect follows a
//! form post, so the CSP's `form-action` never stands between a login and an application.
//! Refusals answer `{"error": "..."}` with a 4xx status and change nothing but the used-up
//! ceremony.

use std::sync::Arc;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use webauthn_rs::Webauthn;

use super::client_ip::client_ip;
use super::csrf;
use super::error::WebError;
use super::extract::{SignedIn, session_cookie_name};
use super::routes::safe_return_to;
use crate::app::AppState;
use crate::auth::mfa_login::{self, MfaLoginError, SecondFactor};
use crate::auth::session::{Origin, SessionToken};
use crate::domain::WebauthnCredentialId;
use crate::mfa::MfaError;
use crate::mfa::webauthn::{self as wa, Account, Ceremony, Kind};
use crate::storage::StorageError;

fn relying_party(state: &AppState) -> Result<Arc<Webauthn>, WebError> {
    state.webauthn.clone().ok_or(WebError::NotFound)
}

fn refused(status: StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

fn started(c: &Ceremony) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "ceremony": c.id.to_string(), "options": c.options }))
}

fn redirect_to(target: &str) -> serde_json::Value {
    serde_json::json!({ "redirect": target })
}

/// The words for a refused ceremony; nothing tells which check failed.
fn problem(e: &MfaError) -> (StatusCode, &'static str) {
    match e {
        MfaError::NoCeremony | MfaError::CeremonyExpired => {
            (StatusCode::BAD_REQUEST, "This attempt expired or was already used. Please try again.")
        }
        MfaError::Malformed("a name is 1 to 64 printable characters") => {
            (StatusCode::BAD_REQUEST, "A name is 1 to 64 printable characters.")
        }
        MfaError::Malformed(_) => {
            (StatusCode::BAD_REQUEST, "The browser's answer could not be read. Please try again.")
        }
        MfaError::AlreadyEnrolled => (StatusCode::BAD_REQUEST, "This security key or passkey is registered already."),
        MfaError::TooMany => {
            (StatusCode::BAD_REQUEST, "You have as many security keys and passkeys as allowed. Remove one first.")
        }
        MfaError::NotEnrolled => (StatusCode::BAD_REQUEST, "No security key or passkey is set up for this account."),
        MfaError::NotDiscoverable => {
            (StatusCode::BAD_REQUEST, "This authenticator cannot keep a passkey. Add it as a security key instead.")
        }
        _ => (StatusCode::UNAUTHORIZED, "The security key or passkey was not accepted."),
    }
}

fn origin_of(req: &HttpRequest, state: &AppState) -> Origin {
    Origin {
        ip: client_ip(req, &state.config.trusted_proxies),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    }
}

fn session_cookie(state: &AppState, token: &SessionToken) -> Cookie<'static> {
    Cookie::build(session_cookie_name(state.config.is_https()), token.expose().to_owned())
        .path("/")
        .http_only(true)
        .secure(state.config.is_https())
        .same_site(SameSite::Lax)
        .finish()
}

// ---- registration on /account/mfa ----

#[derive(Debug, Deserialize)]
pub struct RegisterStart {
    csrf_token: String,
    kind: String,
    #[serde(default)]
    name: String,
}

/// `POST /account/mfa/webauthn/register/start`.
pub async fn register_start(
    state: web::Data<AppState>,
    SignedIn(session): SignedIn,
    body: web::Json<RegisterStart>,
) -> Result<HttpResponse, WebError> {
    csrf::require_session(&state.csrf_key, &session, &body.csrf_token)?;
    let rp = relying_party(&state)?;
    let kind = match Kind::parse(&body.kind) {
        Ok(k) => k,
        Err(_) => return Ok(refused(StatusCode::BAD_REQUEST, "Choose a passkey or a security key.")),
    };
    let name = match (body.name.trim().is_empty(), kind) {
        (false, _) => body.name.clone(),
        (true, Kind::Passkey) => "Passkey".to_owned(),
        (true, Kind::SecurityKey) => "Security key".to_owned(),
    };
    let s = state.clone();
    let done = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            use crate::storage::users::UserRepository;
            let user = conn.find_user(session.user_id)?.ok_or(StorageError::NotFound)?;
            let label = user.email.clone().unwrap_or_else(|| user.id.to_string());
            let display = user.display_name.clone().unwrap_or_else(|| label.clone());
            let account = Account { user: user.id, name: &label, display_name: &display };
            Ok::<_, StorageError>(wa::start_registration(conn, &rp, account, kind, &name, session.id, now))
        })
    })
    .await??;
    match done {
        Ok(c) => Ok(started(&c)),
        Err(MfaError::Storage(e)) => Err(e.into()),
        Err(e) => {
            let (status, message) = problem(&e);
            Ok(refused(status, message))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Finish {
    csrf_token: String,
    ceremony: String,
    #[serde(default)]
    kind: String,
    credential: serde_json::Value,
    #[serde(default)]
    return_to: Option<String>,
}

/// `POST /account/mfa/webauthn/register/finish`: stores the credential.
pub async fn register_finish(
    state: web::Data<AppState>,
    SignedIn(session): SignedIn,
    body: web::Json<Finish>,
) -> Result<HttpResponse, WebError> {
    csrf::require_session(&state.csrf_key, &session, &body.csrf_token)?;
    let rp = relying_party(&state)?;
    let Ok(kind) = Kind::parse(&body.kind) else {
        return Ok(refused(StatusCode::BAD_REQUEST, "Choose a passkey or a security key."));
    };
    let s = state.clone();
    let body = body.into_inner();
    let ceremony = body.ceremony.clone();
    let done = web::block(move || {
        let now = s.clock.now_naive();
        // Committed either way: a refused answer still uses the ceremony up.
        s.db.write(|conn| {
            Ok::<_, StorageError>(wa::finish_registration(
                conn,
                &rp,
                &s.auditor,
                session.user_id,
                session.id,
                &ceremony,
                kind,
                &body.credential,
                now,
            ))
        })
    })
    .await??;
    match done {
        Ok(_) => {
            let target = match safe_return_to(body.return_to.as_deref()) {
                Some(r) => format!("/account/mfa?done=webauthn_added&return_to={}", super::routes::enc(&r)),
                None => "/account/mfa?done=webauthn_added".to_owned(),
            };
            Ok(HttpResponse::Ok().json(redirect_to(&target)))
        }
        Err(MfaError::Storage(e)) => Err(e.into()),
        Err(e) => {
            tracing::info!(error = %e, "webauthn registration refused");
            let (status, message) = problem(&e);
            let status = if status == StatusCode::UNAUTHORIZED { StatusCode::BAD_REQUEST } else { status };
            Ok(refused(status, message))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct RemoveForm {
    csrf_token: String,
    credential_id: WebauthnCredentialId,
}

/// `POST /account/mfa/webauthn/remove` (a plain form): removes one credential. Only from a
/// session that itself used a second factor: a session left open after a first factor alone
/// cannot take a factor away.
pub async fn remove(
    state: web::Data<AppState>,
    SignedIn(session): SignedIn,
    form: web::Form<RemoveForm>,
) -> Result<HttpResponse, WebError> {
    csrf::require_session(&state.csrf_key, &session, &form.csrf_token)?;
    if !session.amr.iter().any(|a| a == mfa_login::AMR_MFA) {
        return Err(WebError::Forbidden(
            "To remove a security key or passkey, sign in again with a second factor first.",
        ));
    }
    let s = state.clone();
    let (user, id) = (session.user_id, form.credential_id);
    let done = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            Ok::<_, StorageError>(wa::remove(conn, &s.auditor, crate::audit::Actor::User(user), user, id, now))
        })
    })
    .await??;
    match done {
        Ok(()) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/account/mfa?done=webauthn_removed"))
            .finish()),
        Err(MfaError::Storage(e)) => Err(e.into()),
        Err(_) => Err(WebError::NotFound),
    }
}

// ---- the second factor on /login/mfa ----

#[derive(Debug, Deserialize)]
pub struct Start {
    csrf_token: String,
}

/// `POST /login/mfa/webauthn/start`: a ceremony for the pending login's user.
pub async fn second_factor_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Start>,
) -> Result<HttpResponse, WebError> {
    let rp = relying_party(&state)?;
    let token = super::mfa::pending_token(&req, &state).ok_or(super::mfa::NO_PENDING)?;
    if !csrf::verify(&state.csrf_key, &format!("mfa:{token}"), &body.csrf_token) {
        return Err(WebError::Forbidden("The form has expired. Please go back, reload the page and try again."));
    }
    let s = state.clone();
    let done = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            let Some(pending) = mfa_login::find(conn, now, Some(&token))? else { return Ok(None) };
            Ok::<_, StorageError>(Some(wa::start_second_factor(conn, &rp, pending.user_id, &pending.id, now)))
        })
    })
    .await??;
    match done {
        None => Err(super::mfa::NO_PENDING),
        Some(Ok(c)) => Ok(started(&c)),
        Some(Err(MfaError::Storage(e))) => Err(e.into()),
        Some(Err(e)) => {
            let (status, message) = problem(&e);
            Ok(refused(status, message))
        }
    }
}

/// `POST /login/mfa/webauthn/finish`: the answer; a good one ends the pending login and starts
/// the session.
pub async fn second_factor_finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Finish>,
) -> Result<HttpResponse, WebError> {
    let rp = relying_party(&state)?;
    let token = super::mfa::pending_token(&req, &state).ok_or(super::mfa::NO_PENDING)?;
    if !csrf::verify(&state.csrf_key, &format!("mfa:{token}"), &body.csrf_token) {
        return Err(WebError::Forbidden("The form has expired. Please go back, reload the page and try again."));
    }
    let s = state.clone();
    let t = token.clone();
    let pending = web::block(move || {
        let now = s.clock.now_naive();
        s.db.read(|conn| mfa_login::find(conn, now, Some(&t)))
    })
    .await??
    .ok_or(super::mfa::NO_PENDING)?;
    // Counted in its own transaction, so a refused answer still counts.
    let s = state.clone();
    let user = pending.user_id;
    let limited = web::block(move || {
        let now = s.clock.now().timestamp();
        s.db.write(|conn| crate::mfa::count_attempt(conn, &s.limiter, user, now))
    })
    .await??;
    if let Err(l) = limited {
        return Err(WebError::RateLimited { retry_after_secs: l.retry_after_secs });
    }
    let origin = origin_of(&req, &state);
    let previous = req.cookie(session_cookie_name(state.config.is_https())).map(|c| c.value().to_owned());
    let s = state.clone();
    let body = body.into_inner();
    let done = web::block(move || {
        let now = s.clock.now_naive();
        let factor = SecondFactor::WebAuthn { webauthn: &rp, ceremony: &body.ceremony, response: &body.credential };
        s.db.write(|conn| {
            mfa_login::finish(
                conn,
                &s.keys,
                &s.auditor,
                &s.config.session,
                now,
                &token,
                factor,
                &origin,
                previous.as_deref(),
            )
        })
    })
    .await?;
    let finished = match done {
        Ok(Ok(f)) => f,
        Ok(Err(MfaLoginError::NoPendingLogin)) | Err(StorageError::Conflict(_)) => return Err(super::mfa::NO_PENDING),
        Ok(Err(MfaLoginError::Disabled)) => return Err(WebError::Forbidden("This account is disabled.")),
        Ok(Err(MfaLoginError::Refused(e))) => {
            tracing::info!(error = %e, "webauthn second factor refused");
            let (status, message) = problem(&e);
            return Ok(refused(status, message));
        }
        Err(e) => return Err(e.into()),
    };
    let mut gone = super::mfa::pending_cookie(&state, String::new());
    gone.make_removal();
    let target = finished.return_to.unwrap_or_else(|| "/".into());
    Ok(HttpResponse::Ok().cookie(session_cookie(&state, &finished.token)).cookie(gone).json(redirect_to(&target)))
}

// ---- the passkey login on /login ----

fn pre_session(req: &HttpRequest, state: &AppState, presented: &str) -> Result<String, WebError> {
    let binding = super::password::pre_binding(req, state)
        .filter(|b| csrf::verify(&state.csrf_key, &format!("pre:{b}"), presented))
        .ok_or(WebError::Forbidden("The form has expired. Please go back, reload the page and try again."))?;
    Ok(binding)
}

/// `POST /login/passkey/start`: a username-less ceremony, bound to the login page's cookie.
pub async fn passkey_start(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Start>,
) -> Result<HttpResponse, WebError> {
    let rp = relying_party(&state)?;
    let binding = pre_session(&req, &state, &body.csrf_token)?;
    let s = state.clone();
    let c = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| Ok::<_, StorageError>(wa::start_passkey_login(conn, &rp, &binding, now)))
    })
    .await??;
    match c {
        Ok(c) => Ok(started(&c)),
        Err(MfaError::Storage(e)) => Err(e.into()),
        Err(e) => Err(WebError::Internal(e.to_string())),
    }
}

/// `POST /login/passkey/finish`: a passkey of the user it names signs them in.
pub async fn passkey_finish(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<Finish>,
) -> Result<HttpResponse, WebError> {
    let rp = relying_party(&state)?;
    let binding = pre_session(&req, &state, &body.csrf_token)?;
    let origin = origin_of(&req, &state);
    let previous = req.cookie(session_cookie_name(state.config.is_https())).map(|c| c.value().to_owned());
    let s = state.clone();
    let body = body.into_inner();
    let return_to = safe_return_to(body.return_to.as_deref()).unwrap_or_else(|| "/".into());
    let done = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            mfa_login::finish_passkey_login(
                conn,
                &rp,
                &s.auditor,
                &s.config.session,
                now,
                &binding,
                &body.ceremony,
                &body.credential,
                &origin,
                previous.as_deref(),
            )
        })
    })
    .await??;
    match done {
        Ok((token, _session)) => {
            Ok(HttpResponse::Ok().cookie(session_cookie(&state, &token)).json(redirect_to(&return_to)))
        }
        Err(MfaLoginError::Disabled) => Ok(refused(StatusCode::FORBIDDEN, "This account is disabled.")),
        Err(MfaLoginError::Refused(e)) => {
            tracing::info!(error = %e, "passkey login refused");
            let (status, message) = problem(&e);
            Ok(refused(status, message))
        }
        Err(MfaLoginError::NoPendingLogin) => Err(WebError::Internal("no pending login in a passkey login".into())),
    }
}

/// `GET /static/webauthn.js`.
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(super::views::WEBAUTHN_SCRIPT)
}
