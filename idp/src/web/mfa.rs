//! `/login/mfa`: the second step of a login (see `auth::mfa_login`). The pending login is named
//! by a cookie of its own (HttpOnly, SameSite=Lax, five minutes); the form's CSRF token is bound
//! to that cookie, so a form from one browser is refused with another browser's cookie.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;

use super::client_ip::client_ip;
use super::csrf;
use super::error::WebError;
use super::extract::session_cookie_name;
use super::views::Views;
use crate::app::AppState;
use crate::auth::mfa_login::{self, MfaLoginError, PendingToken, SecondFactor};
use crate::auth::session::Origin;
use crate::mfa::MfaError;

pub fn pending_cookie_name(https: bool) -> &'static str {
    if https { "__Host-idp_mfa" } else { "idp_mfa" }
}

pub(super) fn pending_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(pending_cookie_name(state.config.is_https()), value)
        .path("/")
        .http_only(true)
        .secure(state.config.is_https())
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(mfa_login::PENDING_LIFETIME_SECS))
        .finish()
}

/// The answer to a first factor that needs a second one: the pending login's cookie and a
/// redirect to `/login/mfa`.
pub fn ask_for_second_factor(state: &AppState, pending: &PendingToken) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(pending_cookie(state, pending.expose().to_owned()))
        .insert_header((header::LOCATION, "/login/mfa"))
        .finish()
}

pub(super) fn form_token(state: &AppState, pending: &str) -> String {
    csrf::token(&state.csrf_key, &format!("mfa:{pending}"))
}

pub(super) const NO_PENDING: WebError = WebError::BadRequest(
    "There is no sign-in waiting for a code (it expired or was already used). Please sign in again.",
);

pub(super) fn pending_token(req: &HttpRequest, state: &AppState) -> Option<String> {
    req.cookie(pending_cookie_name(state.config.is_https())).map(|c| c.value().to_owned())
}

async fn render(
    state: &web::Data<AppState>,
    views: &Views,
    token: &str,
    user: crate::domain::UserId,
    problem: Option<&str>,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let s = state.clone();
    let (totp, webauthn) = web::block(move || {
        s.db.read(|conn| {
            use crate::storage::mfa::MfaRepository;
            let totp = conn.confirmed_totp_credential(&user.to_string())?.is_some();
            let webauthn = s.webauthn.is_some() && crate::mfa::webauthn::has_credential(conn, user)?;
            Ok::<_, crate::storage::StorageError>((totp, webauthn))
        })
    })
    .await??;
    let html = views.render(
        "login_mfa.html",
        context! {
            product_name => &state.config.product_name,
            csrf_token => form_token(state, token),
            problem => problem,
            totp => totp,
            webauthn => webauthn,
        },
    )?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html))
}

/// `GET /login/mfa`.
pub async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    views: web::Data<Views>,
) -> Result<HttpResponse, WebError> {
    let token = pending_token(&req, &state).ok_or(NO_PENDING)?;
    let s = state.clone();
    let t = token.clone();
    let found = web::block(move || {
        let now = s.clock.now_naive();
        s.db.read(|conn| mfa_login::find(conn, now, Some(&t)))
    })
    .await??;
    let Some(pending) = found else { return Err(NO_PENDING) };
    render(&state, &views, &token, pending.user_id, None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct MfaForm {
    csrf_token: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    recovery_code: String,
}

/// `POST /login/mfa`: a TOTP code (`code`) or a recovery code (`recovery_code`).
pub async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    views: web::Data<Views>,
    form: web::Form<MfaForm>,
) -> Result<HttpResponse, WebError> {
    let token = pending_token(&req, &state).ok_or(NO_PENDING)?;
    if !csrf::verify(&state.csrf_key, &format!("mfa:{token}"), &form.csrf_token) {
        return Err(WebError::Forbidden("The form has expired. Please go back, reload the page and try again."));
    }
    let s = state.clone();
    let t = token.clone();
    let pending = web::block(move || {
        let now = s.clock.now_naive();
        s.db.read(|conn| mfa_login::find(conn, now, Some(&t)))
    })
    .await??
    .ok_or(NO_PENDING)?;
    // Counted in its own transaction, so a refused code still counts.
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
    let origin = Origin {
        ip: client_ip(&req, &state.config.trusted_proxies),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    let previous = req.cookie(session_cookie_name(state.config.is_https())).map(|c| c.value().to_owned());
    let s = state.clone();
    let (t, code, recovery) = (token.clone(), form.code.clone(), form.recovery_code.clone());
    let done = web::block(move || {
        let now = s.clock.now_naive();
        let factor =
            if recovery.trim().is_empty() { SecondFactor::Totp(&code) } else { SecondFactor::RecoveryCode(&recovery) };
        s.db.write(|conn| {
            mfa_login::finish(
                conn,
                &s.keys,
                &s.auditor,
                &s.config.session,
                now,
                &t,
                factor,
                &origin,
                previous.as_deref(),
            )
        })
    })
    .await?;
    let finished = match done {
        Ok(Ok(f)) => f,
        Ok(Err(MfaLoginError::NoPendingLogin)) => return Err(NO_PENDING),
        Ok(Err(MfaLoginError::Disabled)) => return Err(WebError::Forbidden("This account is disabled.")),
        Ok(Err(MfaLoginError::Refused(e))) => {
            let problem = match e {
                MfaError::Malformed(_) if !form.recovery_code.trim().is_empty() => {
                    "That is not a recovery code. It has 24 letters and digits."
                }
                MfaError::Malformed(_) => "A code from your authenticator app is six digits.",
                _ if !form.recovery_code.trim().is_empty() => "That recovery code is not valid (or was used already).",
                _ => "That code is not valid. Wait for the next code in your app and try again.",
            };
            return render(&state, &views, &token, user, Some(problem), StatusCode::UNAUTHORIZED).await;
        }
        Err(crate::storage::StorageError::Conflict(_)) => return Err(NO_PENDING),
        Err(e) => return Err(e.into()),
    };
    let mut gone = pending_cookie(&state, String::new());
    gone.make_removal();
    let session = Cookie::build(session_cookie_name(state.config.is_https()), finished.token.expose().to_owned())
        .path("/")
        .http_only(true)
        .secure(state.config.is_https())
        .same_site(SameSite::Lax)
        .finish();
    let target = finished.return_to.unwrap_or_else(|| "/".into());
    if let Some(left) = finished.recovery_codes_left {
        // Shown once, at this login: a page with a link on, instead of the redirect.
        let html = views.render(
            "login_recovery_used.html",
            context! { product_name => &state.config.product_name, left => left, target => target },
        )?;
        return Ok(HttpResponse::Ok().cookie(session).cookie(gone).content_type("text/html; charset=utf-8").body(html));
    }
    Ok(HttpResponse::SeeOther().cookie(session).cookie(gone).insert_header((header::LOCATION, target)).finish())
}
