//! Password sign-in and sign-up pages (only when `password_login` is on), with a pre-session
//! CSRF token: a random cookie, and a form token bound to it by HMAC.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;

use super::client_ip::client_ip;
use super::csrf;
use super::error::WebError;
use super::extract::session_cookie_name;
use super::routes::safe_return_to;
use super::views::Views;
use crate::app::AppState;
use crate::audit::{Action, Actor, Event};
use crate::auth::mfa_login;
use crate::auth::password::{self, SignupError};
use crate::auth::rate_limit::Subject;
use crate::auth::session::{self, Origin};
use crate::crypto::tokens::random_token;

fn pre_cookie_name(https: bool) -> &'static str {
    if https { "__Host-idp_csrf" } else { "idp_csrf" }
}

/// The pre-session binding: the browser's cookie, or a new one to set.
pub fn pre_session(req: &HttpRequest, state: &AppState) -> (String, Option<Cookie<'static>>) {
    let name = pre_cookie_name(state.config.is_https());
    match req.cookie(name) {
        Some(c) if c.value().len() == 43 => (c.value().to_owned(), None),
        _ => {
            let value = random_token(32);
            let cookie = Cookie::build(name, value.clone())
                .path("/")
                .http_only(true)
                .secure(state.config.is_https())
                .same_site(SameSite::Lax)
                .finish();
            (value, Some(cookie))
        }
    }
}

/// The login page's pre-session cookie value, when the browser has a well-formed one.
pub fn pre_binding(req: &HttpRequest, state: &AppState) -> Option<String> {
    req.cookie(pre_cookie_name(state.config.is_https())).map(|c| c.value().to_owned()).filter(|v| v.len() == 43)
}

pub fn pre_token(state: &AppState, binding: &str) -> String {
    csrf::token(&state.csrf_key, &format!("pre:{binding}"))
}

fn check_pre_token(req: &HttpRequest, state: &AppState, presented: &str) -> Result<(), WebError> {
    let binding =
        req.cookie(pre_cookie_name(state.config.is_https())).map(|c| c.value().to_owned()).unwrap_or_default();
    if !binding.is_empty() && csrf::verify(&state.csrf_key, &format!("pre:{binding}"), presented) {
        Ok(())
    } else {
        Err(WebError::Forbidden("The form has expired. Please go back, reload the page and try again."))
    }
}

fn enabled(state: &AppState) -> Result<(), WebError> {
    if state.config.password_login { Ok(()) } else { Err(WebError::NotFound) }
}

fn session_cookie(state: &AppState, token: &str) -> Cookie<'static> {
    Cookie::build(session_cookie_name(state.config.is_https()), token.to_owned())
        .path("/")
        .http_only(true)
        .secure(state.config.is_https())
        .same_site(SameSite::Lax)
        .finish()
}

/// Starts a session for a user who proved a password (or, when they have a second factor, a
/// pending login that asks for it).
async fn signed_in(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    user: crate::domain::UserId,
    target: String,
) -> Result<HttpResponse, WebError> {
    let origin = Origin {
        ip: client_ip(req, &state.config.trusted_proxies),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    let previous = req.cookie(session_cookie_name(state.config.is_https())).map(|c| c.value().to_owned());
    let s = state.clone();
    let return_to = target.clone();
    let started = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            let amr = ["pwd".to_owned()];
            if mfa_login::needs_second_factor(conn, user, &amr)? {
                let pending = mfa_login::begin(conn, now, user, &amr, "password", Some(return_to.as_str()))?;
                return Ok(Err(pending));
            }
            session::end_previous(conn, previous.as_deref())?;
            let (token, session) = session::start(conn, &s.auditor, &s.config.session, now, user, &amr, None, &origin)?;
            s.auditor.record(
                conn,
                now,
                Event::new(Actor::User(user), Action::LoginSucceeded)
                    .target(session.id)
                    .detail("method", "password")
                    .source(origin.ip),
            )?;
            Ok::<_, crate::storage::StorageError>(Ok((token, session)))
        })
    })
    .await??;
    let token = match started {
        Ok((token, _session)) => token,
        Err(pending) => return Ok(super::mfa::ask_for_second_factor(state, &pending)),
    };
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie(state, token.expose()))
        .insert_header((header::LOCATION, target))
        .finish())
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    email: String,
    password: String,
    csrf_token: String,
    return_to: Option<String>,
}

pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    enabled(&state)?;
    check_pre_token(&req, &state, &form.csrf_token)?;
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let s = state.clone();
    let email = form.email.clone();
    let limited = web::block(move || {
        let now = s.clock.now().timestamp();
        s.db.write(|conn| s.limiter.hit(conn, "password", Subject::Account(&password::login_name(&email)), now))
    })
    .await??;
    if let Err(l) = limited {
        return Err(WebError::RateLimited { retry_after_secs: l.retry_after_secs });
    }
    let s = state.clone();
    let (email, pw) = (form.email.clone(), form.password.clone());
    let user = web::block(move || password::verify(&s.db, &s.passwords, &email, &pw)).await??;
    let Some(user) = user else {
        let s = state.clone();
        let email = form.email.clone();
        web::block(move || {
            let now = s.clock.now_naive();
            s.db.write(|conn| password::record_failure(conn, &s.auditor, now, &email, ip))
        })
        .await??;
        return Err(WebError::Unauthorized("Wrong e-mail address or password."));
    };
    let target = safe_return_to(form.return_to.as_deref()).unwrap_or_else(|| "/".into());
    signed_in(&state, &req, user, target).await
}

pub async fn signup_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    views: web::Data<Views>,
) -> Result<HttpResponse, WebError> {
    enabled(&state)?;
    render_signup(&req, &state, &views, "", &[], actix_web::http::StatusCode::OK)
}

fn render_signup(
    req: &HttpRequest,
    state: &AppState,
    views: &Views,
    email: &str,
    problems: &[String],
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, WebError> {
    let (binding, cookie) = pre_session(req, state);
    let html = views.render(
        "signup.html",
        context! {
            product_name => &state.config.product_name,
            csrf_token => pre_token(state, &binding),
            email => email,
            problems => problems,
            min_length => 15,
        },
    )?;
    let mut res = HttpResponse::build(status);
    if let Some(c) = cookie {
        res.cookie(c);
    }
    Ok(res.content_type("text/html; charset=utf-8").body(html))
}

#[derive(Debug, Deserialize)]
pub struct SignupForm {
    email: String,
    password: String,
    csrf_token: String,
}

pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    views: web::Data<Views>,
    form: web::Form<SignupForm>,
) -> Result<HttpResponse, WebError> {
    enabled(&state)?;
    check_pre_token(&req, &state, &form.csrf_token)?;
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let s = state.clone();
    let (email, pw) = (form.email.clone(), form.password.clone());
    let created = web::block(move || {
        let now = s.clock.now_naive();
        password::sign_up(
            &s.db,
            &s.passwords,
            &s.auditor,
            &s.config.signup,
            s.config.password.composition_rule,
            now,
            &email,
            &pw,
            ip,
        )
    })
    .await?;
    let bad = actix_web::http::StatusCode::BAD_REQUEST;
    match created {
        Ok(user) => signed_in(&state, &req, user, "/".into()).await,
        Err(SignupError::Password(problems)) => {
            let list: Vec<String> =
                problems.iter().map(|p| format!("Password: {}.", p.to_string().trim_end_matches('.'))).collect();
            render_signup(&req, &state, &views, &form.email, &list, bad)
        }
        Err(SignupError::InvalidEmail) => {
            render_signup(&req, &state, &views, &form.email, &["That is not an e-mail address.".into()], bad)
        }
        Err(SignupError::Closed) => {
            Err(WebError::Forbidden("Sign-up is closed for this address. Ask an administrator for an invitation."))
        }
        Err(SignupError::Exists) => render_signup(
            &req,
            &state,
            &views,
            &form.email,
            &["An account with this address exists; sign in instead.".into()],
            bad,
        ),
        Err(SignupError::Hash) => Err(WebError::Internal("password hashing failed".into())),
        Err(SignupError::Storage(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct StrengthQuery {
    password: String,
    #[serde(default)]
    email: String,
}

/// Feedback for the sign-up form as the user types (zxcvbn on the server; the page's script
/// asks here, since the CSP allows only our own scripts and connections).
pub async fn strength(state: web::Data<AppState>, body: web::Json<StrengthQuery>) -> Result<HttpResponse, WebError> {
    enabled(&state)?;
    let rules = crate::crypto::password::PasswordRules {
        has_second_factor: false,
        composition: state.config.password.composition_rule,
    };
    let email = body.email.clone();
    let pw = body.password.clone();
    let (s, verdict) = web::block(move || {
        let inputs: Vec<&str> = [email.as_str()].into_iter().filter(|e| !e.is_empty()).collect();
        let s = crate::crypto::password::strength(&pw, &inputs);
        let verdict = crate::crypto::password::check_new(&pw, (!email.is_empty()).then_some(email.as_str()), rules);
        (s, verdict)
    })
    .await?;
    let problems: Vec<String> = verdict.err().unwrap_or_default().iter().map(|p| p.to_string()).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "score": s.score,
        "warning": s.warning,
        "suggestions": s.suggestions,
        "acceptable": problems.is_empty(),
        "problems": problems,
    })))
}
