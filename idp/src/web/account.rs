//! `/account/mfa`: a signed-in user's own second factors. Enrol a TOTP authenticator (QR code
//! and the key written out; active once a code from it is accepted), remove it (with a current
//! code from it: proof that whoever removes it holds it, not just a borrowed session), and
//! generate recovery codes (shown once; a new set voids the old one).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::csrf;
use super::error::WebError;
use super::extract::SignedIn;
use super::views::Views;
use crate::app::AppState;
use crate::audit::Actor;
use crate::domain::session::Session;
use crate::domain::{TotpCredentialId, UserId};
use crate::mfa::{self, MfaError, recovery, totp};
use crate::storage::StorageError;

fn csrf_ok(state: &AppState, session: &Session, presented: &str) -> Result<(), WebError> {
    csrf::require_session(&state.csrf_key, session, presented)
}

#[derive(Debug, Serialize)]
struct CredentialView {
    id: String,
    name: String,
    confirmed_at: Option<String>,
    last_used_at: Option<String>,
}

#[derive(Debug, Serialize, Default)]
struct Extra {
    /// A fresh enrolment: QR code, key, and the credential to confirm.
    enrol_qr: Option<String>,
    enrol_secret: Option<String>,
    enrol_id: Option<String>,
    /// A fresh set of recovery codes, shown this once.
    new_codes: Option<Vec<String>>,
    problem: Option<&'static str>,
    notice: Option<&'static str>,
    /// Where an application's project sent the user from (a local path).
    return_to: Option<String>,
}

#[derive(Debug, Serialize)]
struct WebauthnView {
    id: String,
    name: String,
    kind_label: &'static str,
    synced: bool,
    created_at: String,
    last_used_at: Option<String>,
}

async fn render(
    state: &web::Data<AppState>,
    views: &Views,
    session: &Session,
    extra: Extra,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let s = state.clone();
    let user = session.user_id;
    let (creds, codes, keys) = web::block(move || {
        s.db.read(|conn| {
            let since = chrono::NaiveDateTime::default();
            Ok::<_, StorageError>((
                totp::credentials(conn, user)?,
                recovery::status(conn, user, since)?,
                crate::mfa::webauthn::credentials(conn, user)?,
            ))
        })
    })
    .await??;
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let confirmed: Vec<CredentialView> = creds
        .iter()
        .filter(|c| c.confirmed_at.is_some())
        .map(|c| CredentialView {
            id: c.id.to_string(),
            name: c.name.clone(),
            confirmed_at: c.confirmed_at.map(fmt),
            last_used_at: c.last_used_at.map(fmt),
        })
        .collect();
    let keys: Vec<WebauthnView> = keys
        .iter()
        .map(|k| WebauthnView {
            id: k.id.to_string(),
            name: k.name.clone(),
            kind_label: match k.kind {
                crate::mfa::webauthn::Kind::Passkey => "passkey",
                crate::mfa::webauthn::Kind::SecurityKey => "security key",
            },
            synced: k.backup_eligible,
            created_at: fmt(k.created_at),
            last_used_at: k.last_used_at.map(fmt),
        })
        .collect();
    let html = views.render(
        "account_mfa.html",
        context! {
            product_name => &state.config.product_name,
            signed_in => true,
            csrf_token => csrf::token(&state.csrf_key, &session.id.to_string()),
            totp => confirmed,
            webauthn_credentials => keys,
            webauthn_available => state.webauthn.is_some(),
            recovery_total => codes.total,
            recovery_remaining => codes.remaining,
            session_amr => &session.amr,
            extra => extra,
        },
    )?;
    Ok(HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    done: Option<String>,
    /// Set when an application's project sent the user here to set up a second factor.
    return_to: Option<String>,
}

/// `GET /account/mfa`.
pub async fn page(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, WebError> {
    let notice = match query.done.as_deref() {
        Some("confirmed") if query.return_to.is_some() => Some(
            "Your authenticator app is set up. Continue to the application: it asks you to sign in again, with a code from the app.",
        ),
        Some("confirmed") => Some("Your authenticator app is set up. Sign-ins now ask for a code from it."),
        Some("removed") => Some("Your authenticator app was removed."),
        Some("webauthn_added") if query.return_to.is_some() => Some(
            "Your security key or passkey is set up. Continue to the application: it asks you to sign in again, with it.",
        ),
        Some("webauthn_added") => Some("Your security key or passkey is set up."),
        Some("webauthn_removed") => Some("The security key or passkey was removed."),
        _ if query.return_to.as_deref().is_some_and(|r| r.starts_with("/admin")) => {
            Some("This organisation's administration requires a second factor. Set one up here, then continue to it.")
        }
        _ if query.return_to.is_some() => Some(
            "The application you were signing in to requires a second factor. Set one up here, then continue to it.",
        ),
        _ => None,
    };
    let return_to = super::routes::safe_return_to(query.return_to.as_deref());
    render(&state, &views, &session, Extra { notice, return_to, ..Default::default() }, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct EnrolForm {
    csrf_token: String,
    #[serde(default)]
    name: String,
    /// Carried through the set-up when an application's project sent the user here.
    return_to: Option<String>,
}

/// `POST /account/mfa/totp`: starts an enrolment and shows the QR code and key once.
pub async fn enrol(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    form: web::Form<EnrolForm>,
) -> Result<HttpResponse, WebError> {
    csrf_ok(&state, &session, &form.csrf_token)?;
    let s = state.clone();
    let user = session.user_id;
    let name = if form.name.trim().is_empty() { "Authenticator app".to_owned() } else { form.name.clone() };
    let started = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            use crate::storage::users::UserRepository;
            let account = conn.find_user(user)?.and_then(|u| u.email).unwrap_or_else(|| user.to_string());
            Ok::<_, StorageError>(totp::enrol(conn, &s.keys, user, &name, &s.config.product_name, &account, now))
        })
    })
    .await??;
    let bad = StatusCode::BAD_REQUEST;
    match started {
        Ok(e) => {
            let extra = Extra {
                enrol_qr: Some(e.qr_svg_base64.to_string()),
                enrol_secret: Some(e.secret_base32.to_string()),
                enrol_id: Some(e.credential_id.to_string()),
                return_to: super::routes::safe_return_to(form.return_to.as_deref()),
                ..Default::default()
            };
            render(&state, &views, &session, extra, StatusCode::OK).await
        }
        Err(MfaError::AlreadyEnrolled) => {
            let problem = Some("An authenticator app is already set up. Remove it first to set up another.");
            render(&state, &views, &session, Extra { problem, ..Default::default() }, bad).await
        }
        Err(MfaError::Malformed(_)) => {
            let problem = Some("A name is 1 to 64 printable characters.");
            render(&state, &views, &session, Extra { problem, ..Default::default() }, bad).await
        }
        Err(MfaError::Storage(e)) => Err(e.into()),
        Err(e) => Err(WebError::Internal(e.to_string())),
    }
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    csrf_token: String,
    credential_id: TotpCredentialId,
    code: String,
    return_to: Option<String>,
}

async fn counted(state: &web::Data<AppState>, user: UserId) -> Result<(), WebError> {
    let s = state.clone();
    let limited = web::block(move || {
        let now = s.clock.now().timestamp();
        s.db.write(|conn| mfa::count_attempt(conn, &s.limiter, user, now))
    })
    .await??;
    limited.map_err(|l| WebError::RateLimited { retry_after_secs: l.retry_after_secs })
}

/// `POST /account/mfa/totp/confirm`: activates the enrolment with a code from the app.
pub async fn confirm(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, WebError> {
    csrf_ok(&state, &session, &form.csrf_token)?;
    counted(&state, session.user_id).await?;
    let s = state.clone();
    let (user, id, code) = (session.user_id, form.credential_id, form.code.clone());
    let done = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| Ok::<_, StorageError>(totp::confirm(conn, &s.keys, &s.auditor, user, id, &code, now)))
    })
    .await??;
    let return_to = super::routes::safe_return_to(form.return_to.as_deref());
    let problem = match done {
        Ok(_) => {
            let target = match &return_to {
                Some(r) => format!("/account/mfa?done=confirmed&return_to={}", super::routes::enc(r)),
                None => "/account/mfa?done=confirmed".to_owned(),
            };
            return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish());
        }
        Err(MfaError::InvalidCode | MfaError::Malformed(_)) => {
            // The QR code is not shown again; the same enrolment may still be confirmed.
            let extra = Extra {
                enrol_id: Some(form.credential_id.to_string()),
                return_to,
                problem: Some("That code is not valid. Type the six digits your app shows now."),
                ..Default::default()
            };
            return render(&state, &views, &session, extra, StatusCode::BAD_REQUEST).await;
        }
        Err(MfaError::NoPendingEnrolment | MfaError::EnrolmentExpired) => {
            "This set-up expired or was replaced. Please start again."
        }
        Err(MfaError::AlreadyEnrolled) => "An authenticator app is already set up.",
        Err(MfaError::Storage(e)) => return Err(e.into()),
        Err(e) => return Err(WebError::Internal(e.to_string())),
    };
    render(&state, &views, &session, Extra { problem: Some(problem), ..Default::default() }, StatusCode::BAD_REQUEST)
        .await
}

/// `POST /account/mfa/totp/remove`: removes the authenticator, given a current code from it.
pub async fn remove(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, WebError> {
    csrf_ok(&state, &session, &form.csrf_token)?;
    counted(&state, session.user_id).await?;
    let s = state.clone();
    let (user, id, code) = (session.user_id, form.credential_id, form.code.clone());
    let done = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            // The code first, in the same transaction: a refusal removes nothing.
            if let Err(e) = totp::verify(conn, &s.keys, user, &code, now) {
                return Ok::<_, StorageError>(Err(e));
            }
            Ok(totp::remove(conn, &s.auditor, Actor::User(user), user, id, now))
        })
    })
    .await??;
    match done {
        Ok(()) => Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/account/mfa?done=removed")).finish()),
        Err(MfaError::Storage(e)) => Err(e.into()),
        Err(MfaError::NotFound) => Err(WebError::NotFound),
        Err(_) => {
            let problem = Some("That code is not valid. Type the six digits your app shows now.");
            render(&state, &views, &session, Extra { problem, ..Default::default() }, StatusCode::BAD_REQUEST).await
        }
    }
}

/// `POST /account/mfa/recovery`: a new set of recovery codes, shown once (the old set is void).
pub async fn recovery_codes(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    form: web::Form<super::routes::CsrfForm>,
) -> Result<HttpResponse, WebError> {
    csrf_ok(&state, &session, &form.csrf_token)?;
    let s = state.clone();
    let user = session.user_id;
    let codes = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            if !mfa::has_second_factor(conn, user)? {
                return Ok::<_, StorageError>(None);
            }
            match recovery::generate(conn, &s.auditor, user, now) {
                Ok(c) => Ok(Some(c.codes().map(str::to_owned).collect::<Vec<_>>())),
                Err(MfaError::Storage(e)) => Err(e),
                Err(e) => Err(StorageError::Corrupt(e.to_string())),
            }
        })
    })
    .await??;
    let Some(codes) = codes else {
        let problem =
            Some("Set up an authenticator app, a security key or a passkey first: recovery codes stand in for it.");
        return render(&state, &views, &session, Extra { problem, ..Default::default() }, StatusCode::BAD_REQUEST)
            .await;
    };
    render(&state, &views, &session, Extra { new_codes: Some(codes), ..Default::default() }, StatusCode::OK).await
}
