//! Handlers: HTTP in, a domain call, HTTP out.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::client_ip::client_ip;
use super::csrf;
use super::error::WebError;
use super::extract::{MaybeSignedIn, SignedIn, session_cookie_name};
use super::views::{STYLESHEET, Views};
use crate::app::AppState;
use crate::audit::Action;
use crate::auth::session;
use crate::domain::SessionId;
use crate::domain::session::Session;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok")
}

/// Ready when the database answers; the reason stays in the log.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let s = state.clone();
    match web::block(move || s.db.ping()).await {
        Ok(Ok(())) => {
            HttpResponse::Ok().json(serde_json::json!({"status": "ready", "backups": state.backups.to_json()}))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({"status": "unavailable", "database": "unreachable"}))
        }
        Err(_) => HttpResponse::ServiceUnavailable().json(serde_json::json!({"status": "unavailable"})),
    }
}

/// RFC 9116. Expires is a rolling 180 days, so a running deployment never serves a stale file.
pub async fn security_txt(state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let Some(contact) = &state.config.security_contact else { return Err(WebError::NotFound) };
    let expires = (state.clock.now() + chrono::Duration::days(180)).format("%Y-%m-%dT%H:%M:%SZ");
    let mut body = format!(
        "Contact: {contact}\nExpires: {expires}\nCanonical: {}/.well-known/security.txt\n",
        state.config.base_url()
    );
    if let Some(policy) = &state.config.security_policy_url {
        body.push_str(&format!("Policy: {policy}\n"));
    }
    body.push_str("Preferred-Languages: en\n");
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(body))
}

/// The operator's colours, as CSS custom properties (CSP allows no inline style).
pub async fn theme(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(format!(":root {{ --accent: {}; }}\n", state.config.accent_colour))
}

pub async fn logo(state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let (bytes, kind) = state.config.logo.as_ref().ok_or(WebError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type(*kind)
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(bytes.clone()))
}

/// Browsers ask for it on every page; an empty answer beats a logged 404.
pub async fn favicon() -> HttpResponse {
    HttpResponse::NoContent().insert_header((header::CACHE_CONTROL, "public, max-age=86400")).finish()
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLESHEET)
}

fn page(html: String) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html)
}

fn csrf_for(state: &AppState, session: &Session) -> String {
    csrf::for_session(&state.csrf_key, session)
}

pub async fn home(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    MaybeSignedIn(session): MaybeSignedIn,
) -> Result<HttpResponse, WebError> {
    let Some(session) = session else {
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/login")).finish());
    };
    super::extract::fresh_connectors(&state, None).await?;
    let s = state.clone();
    let user_id = session.user_id;
    let (user, identities) = web::block(move || {
        s.db.read(|conn| {
            use crate::storage::users::UserRepository;
            Ok::<_, crate::storage::StorageError>((conn.find_user(user_id)?, conn.external_identities_of(user_id)?))
        })
    })
    .await??;
    let linked: Vec<String> = identities.iter().map(|i| i.connector_id.clone()).collect();
    let identities: Vec<serde_json::Value> = identities
        .iter()
        .map(|i| {
            let name =
                state.connectors.get(&i.connector_id).map(|c| c.name().to_owned()).unwrap_or(i.connector_id.clone());
            serde_json::json!({"id": i.id.to_string(), "connector": name})
        })
        .collect();
    let connectors: Vec<ConnectorLink> = state
        .connectors
        .all()
        .iter()
        .map(|c| ConnectorLink { id: c.id().to_owned(), name: c.name().to_owned() })
        .collect();
    Ok(page(views.render(
        "home.html",
        context! {
            product_name => &state.config.product_name,
            signed_in => true,
            csrf_token => csrf_for(&state, &session),
            email => user.as_ref().and_then(|u| u.email.clone()),
            linked => linked,
            identities => identities,
            connectors => connectors,
        },
    )?))
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
    unknown_domain: Option<String>,
}

/// Only a local path may be a place to return to: no scheme, no host, no `//` or `\` tricks.
pub fn safe_return_to(raw: Option<&str>) -> Option<String> {
    let r = raw?;
    let ok = r.starts_with('/')
        && !r.starts_with("//")
        && !r.starts_with("/\\")
        && !r.contains('\\')
        && !r.chars().any(char::is_control)
        && r.len() <= 2048;
    ok.then(|| r.to_owned())
}

/// A value form-urlencoded for a query string.
pub fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[derive(Debug, Serialize)]
struct ConnectorLink {
    id: String,
    name: String,
}

pub async fn login_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    views: web::Data<Views>,
    query: web::Query<LoginQuery>,
) -> Result<HttpResponse, WebError> {
    super::extract::fresh_connectors(&state, None).await?;
    let return_to = safe_return_to(query.return_to.as_deref());
    let connectors: Vec<ConnectorLink> = state
        .connectors
        .all()
        .iter()
        .map(|c| ConnectorLink { id: c.id().to_owned(), name: c.name().to_owned() })
        .collect();
    // The pre-session binds the password form and the passkey ceremony to this browser.
    let s = state.clone();
    let routed_domains =
        web::block(move || s.db.read(crate::storage::domains::DomainRepository::any_routed_domain)).await??;
    let passkey_login = state.webauthn.is_some();
    let (binding, pre_cookie) = if state.config.password_login || passkey_login {
        let (b, c) = super::password::pre_session(&req, &state);
        (Some(b), c)
    } else {
        (None, None)
    };
    let html = views.render(
        "login.html",
        context! {
            product_name => &state.config.product_name,
            connectors => connectors,
            return_to => return_to,
            discovery => routed_domains || state.connectors.all().iter().any(|c| !c.spec().domains.is_empty()),
            unknown_domain => query.unknown_domain.is_some(),
            password_login => state.config.password_login,
            passkey_login => passkey_login,
            signup_open => state.config.password_login && state.config.signup != crate::config::Signup::Invite,
            csrf_token => binding.map(|b| super::password::pre_token(&state, &b)),
        },
    )?;
    let mut res = HttpResponse::Ok();
    if let Some(c) = pre_cookie {
        res.cookie(c);
    }
    Ok(res.content_type("text/html; charset=utf-8").body(html))
}

pub async fn password_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(super::views::PASSWORD_SCRIPT)
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub(super) csrf_token: String,
}

pub(super) fn check_csrf(state: &AppState, session: &Session, form: &CsrfForm) -> Result<(), WebError> {
    csrf::require_session(&state.csrf_key, session, &form.csrf_token)
}

pub(super) fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = Cookie::build(session_cookie_name(state.config.is_https()), "")
        .path("/")
        .http_only(true)
        .secure(state.config.is_https())
        .same_site(SameSite::Lax)
        .finish();
    c.make_removal();
    c
}

pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(session): SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form)?;
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let s = state.clone();
    web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| session::end(conn, &s.auditor, now, session.user_id, session.id, Action::Logout, ip))
    })
    .await??;
    Ok(HttpResponse::SeeOther().cookie(removal_cookie(&state)).insert_header((header::LOCATION, "/login")).finish())
}

#[derive(Debug, Serialize)]
struct SessionRow {
    id: String,
    created_at: String,
    last_seen_at: String,
    user_agent: Option<String>,
    current: bool,
}

pub async fn sessions_page(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(current): SignedIn,
) -> Result<HttpResponse, WebError> {
    let s = state.clone();
    let user = current.user_id;
    let list =
        web::block(move || s.db.read(|conn| crate::storage::sessions::SessionRepository::sessions_of_user(conn, user)))
            .await??;
    let rows: Vec<SessionRow> = list
        .into_iter()
        .map(|s| SessionRow {
            id: s.id.to_string(),
            created_at: s.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            last_seen_at: s.last_seen_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            user_agent: s.user_agent,
            current: s.id == current.id,
        })
        .collect();
    Ok(page(views.render(
        "sessions.html",
        context! { product_name => &state.config.product_name, signed_in => true, csrf_token => csrf_for(&state, &current), sessions => rows },
    )?))
}

pub async fn end_session(
    id: web::Path<SessionId>,
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(current): SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &current, &form)?;
    let id = id.into_inner();
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let s = state.clone();
    let ended = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| session::end(conn, &s.auditor, now, current.user_id, id, Action::SessionEnded, ip))
    })
    .await??;
    if !ended {
        return Err(WebError::NotFound);
    }
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/sessions")).finish())
}

pub async fn not_found() -> Result<HttpResponse, WebError> {
    Err(WebError::NotFound)
}

pub async fn unlink_identity(
    id: web::Path<crate::domain::ExternalIdentityId>,
    req: HttpRequest,
    state: web::Data<AppState>,
    SignedIn(current): SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &current, &form)?;
    let id = id.into_inner();
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let s = state.clone();
    let done = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            Ok::<_, crate::storage::StorageError>(crate::auth::login::unlink(
                conn,
                &s.auditor,
                now,
                current.user_id,
                id,
                ip,
            ))
        })
    })
    .await??;
    match done {
        Ok(()) => Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/")).finish()),
        Err(crate::auth::login::UnlinkError::NotFound) => Err(WebError::NotFound),
        Err(crate::auth::login::UnlinkError::LastIdentity) => {
            Err(WebError::Forbidden("This is your only way to sign in, so it cannot be removed."))
        }
        Err(crate::auth::login::UnlinkError::Storage(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn return_to_accepts_only_local_paths() {
        assert_eq!(safe_return_to(Some("/sessions?x=1")), Some("/sessions?x=1".into()));
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "evil",
            "/a\\b",
            "/a\r\nSet-Cookie: x",
            "",
            "/\u{1}",
            "/\u{7f}",
        ] {
            assert_eq!(safe_return_to(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_return_to(None), None);
    }
}
