//! HTTP adapters for `oidc`: parse the request, one domain call, map the answer. OAuth errors
//! become JSON here (RFC 6749 §5.2) or a redirect decided by the domain; nothing internal leaks.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::client_ip::client_ip;
use super::error::WebError;
use super::extract::{MaybeSignedIn, SignedIn};
use super::views::Views;
use crate::app::AppState;
use crate::audit::Action;
use crate::auth::session;
use crate::oidc::authorize::{AuthorizeParams, Decision};
use crate::oidc::errors::{ErrorCode, OAuthError};
use crate::oidc::logout::{LogoutError, LogoutParams};
use crate::oidc::token::{ClientCredentials, TokenParams};
use crate::oidc::{discovery, introspection, revocation, token, userinfo};

/// The one mapping from OAuth errors to HTTP for the back-channel endpoints.
fn oauth_error(e: &OAuthError) -> HttpResponse {
    let status = match e.code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CACHE_CONTROL, "no-store"));
    match e.code {
        ErrorCode::InvalidClient => {
            res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"idp\""));
        }
        ErrorCode::InvalidToken => {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
        }
        _ => {}
    }
    res.json(serde_json::json!({"error": e.code.as_str(), "error_description": e.description}))
}

fn json_no_store(v: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(v)
}

fn outcome<T>(r: Result<Result<T, OAuthError>, WebError>, ok: impl FnOnce(T) -> HttpResponse) -> HttpResponse {
    match r {
        Ok(Ok(v)) => ok(v),
        Ok(Err(e)) => oauth_error(&e),
        Err(e) => {
            tracing::error!(error = %e, "oidc request failed");
            oauth_error(&OAuthError::new(ErrorCode::ServerError, "The server could not complete the request."))
        }
    }
}

fn form_decode(s: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
}

/// HTTP Basic client credentials (RFC 6749 §2.3.1: both parts form-urlencoded).
fn basic(req: &HttpRequest) -> Option<(String, String)> {
    let raw = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = raw.strip_prefix("Basic ").or_else(|| raw.strip_prefix("basic "))?;
    let text = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

fn credentials(req: &HttpRequest, client_id: Option<String>, client_secret: Option<String>) -> ClientCredentials {
    ClientCredentials { basic: basic(req), form_id: client_id, form_secret: client_secret }
}

pub async fn configuration(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(discovery::metadata(&state.oidc.issuer))
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let max_age = format!("public, max-age={}", state.config.tokens.jwks_max_age.as_secs());
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, max_age))
        .content_type("application/jwk-set+json")
        .body(state.oidc.signer.jwks(state.clock.now_naive()).to_string())
}

pub async fn authorize(
    req: HttpRequest,
    state: web::Data<AppState>,
    views: web::Data<Views>,
    params: web::Query<AuthorizeParams>,
    MaybeSignedIn(session): MaybeSignedIn,
) -> Result<HttpResponse, WebError> {
    let raw_query = req.query_string().to_owned();
    let (s, q, current) = (state.clone(), raw_query.clone(), session.clone());
    let decision = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| crate::oidc::authorize::authorize(conn, &s.oidc, now, &params, &q, current.as_ref()))
    })
    .await??;
    follow(&state, &views, decision, session.as_ref(), &raw_query)
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    csrf_token: String,
    /// The authorization request's query, as the consent page received it.
    query: String,
    decision: String,
}

/// The consent page's answer. The request is checked again from its query; the page's only
/// other input is allow or deny.
pub async fn consent(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    form: web::Form<ConsentForm>,
) -> Result<HttpResponse, WebError> {
    super::csrf::require_session(&state.csrf_key, &session, &form.csrf_token)?;
    let allow = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Err(WebError::BadRequest("The answer is neither allow nor deny.")),
    };
    let params = web::Query::<AuthorizeParams>::from_query(&form.query)
        .map_err(|_| WebError::BadRequest("The request is malformed."))?
        .into_inner();
    let (s, q, current) = (state.clone(), form.query.clone(), session.clone());
    let decision = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| crate::oidc::authorize::answer_consent(conn, &s.oidc, now, &params, &q, &current, allow))
    })
    .await??;
    follow(&state, &views, decision, Some(&session), &form.query)
}

fn follow(
    state: &AppState,
    views: &Views,
    decision: Decision,
    session: Option<&crate::domain::session::Session>,
    raw_query: &str,
) -> Result<HttpResponse, WebError> {
    use super::routes::enc;
    let location = match decision {
        Decision::Refuse(why) => return Err(WebError::BadRequest(why)),
        Decision::Redirect(url) => url,
        Decision::Consent { client_id: _, client_name, scopes } => {
            let Some(session) = session else { return Err(WebError::BadRequest("Sign in first.")) };
            let described: Vec<String> = scopes.iter().map(|s| describe_scope(s)).collect();
            let html = views.render(
                "consent.html",
                minijinja::context! {
                    product_name => &state.config.product_name,
                    signed_in => true,
                    csrf_token => super::csrf::for_session(&state.csrf_key, session),
                    client_name => client_name,
                    scopes => described,
                    query => raw_query,
                },
            )?;
            return Ok(HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(html));
        }
        Decision::Login { return_to, login_hint: Some(hint) } => {
            format!("/login/discover?email={}&return_to={}", enc(&hint), enc(&return_to))
        }
        Decision::Login { return_to, login_hint: None } => format!("/login?return_to={}", enc(&return_to)),
        Decision::Enrol { return_to } => format!("/account/mfa?return_to={}", enc(&return_to)),
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::LOCATION, location))
        .finish())
}

/// A body that is not a form is answered in OAuth's terms, not with the HTML error page.
fn bad_body() -> HttpResponse {
    oauth_error(&OAuthError::new(
        ErrorCode::InvalidRequest,
        "The request body must be a form (application/x-www-form-urlencoded).",
    ))
}

pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: Result<web::Form<TokenParams>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else { return bad_body() };
    let mut params = form.into_inner();
    let creds = credentials(&req, params.client_id.take(), params.client_secret.take());
    if params.grant_type.as_deref() == Some("client_credentials") {
        // No storage involved: answered on this thread.
        let now = state.clock.now_naive();
        let r = token::client_credentials(&state.oidc, now, &creds, &params).map_err(WebError::from);
        return outcome(r, |t| json_no_store(&t));
    }
    let s = state.clone();
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| token::exchange(conn, &s.oidc, now, &creds, &params))
    })
    .await
    .map_err(WebError::from)
    .and_then(|r| r.map_err(WebError::from));
    outcome(r, |t| json_no_store(&t))
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    raw.strip_prefix("Bearer ").map(|t| t.trim().to_owned())
}

pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(token) = bearer(&req) else {
        return oauth_error(&OAuthError::new(ErrorCode::InvalidToken, "A bearer access token is required."));
    };
    let s = state.clone();
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.read(|conn| userinfo::userinfo(conn, &s.oidc, now, &token))
    })
    .await
    .map_err(WebError::from)
    .and_then(|r| r.map_err(WebError::from));
    outcome(r, |v| json_no_store(&v))
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: Result<web::Form<TokenForm>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else { return bad_body() };
    let f = form.into_inner();
    let creds = credentials(&req, f.client_id, f.client_secret);
    let token = f.token.unwrap_or_default();
    if crate::tokens::format::parse(&token).is_some() {
        return introspect_api_token(&req, state, &creds, token).await;
    }
    let s = state.clone();
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.read(|conn| introspection::introspect(conn, &s.oidc, now, &creds, &token))
    })
    .await
    .map_err(WebError::from)
    .and_then(|r| r.map_err(WebError::from));
    outcome(r, |v| json_no_store(&v))
}

/// The hot path: a cached API token is answered without touching the database.
async fn introspect_api_token(
    req: &HttpRequest,
    state: web::Data<AppState>,
    creds: &ClientCredentials,
    token: String,
) -> HttpResponse {
    let project_ref = match token::authenticate(&state.oidc, creds, false) {
        Ok(c) => c.project.clone(),
        Err(e) => return oauth_error(&e),
    };
    let now = state.clock.now_naive();
    let cached = state.tokens.cached(&token, now).ok().flatten();
    let known_project = project_ref.as_deref().map(|r| state.tokens.client_project(r));
    let (hit, client_project) = match (cached, known_project) {
        (Some(hit), None) => (Some(hit), None),
        (Some(hit), Some(Some(p))) => (Some(hit), Some(Some(p))),
        _ => {
            let s = state.clone();
            let r = web::block(move || {
                s.db.read(|conn| {
                    let project = match &project_ref {
                        Some(r) => Some(s.tokens.resolve_client_project(conn, r)?),
                        None => None,
                    };
                    let principal = s.tokens.validate(conn, &token, now).ok();
                    Ok::<_, crate::storage::StorageError>((principal, project))
                })
            })
            .await
            .map_err(WebError::from)
            .and_then(|r| r.map_err(WebError::from));
            match r {
                Ok((hit, project)) => (hit, project),
                Err(e) => {
                    tracing::error!(error = %e, "introspection failed");
                    return oauth_error(&OAuthError::new(
                        ErrorCode::ServerError,
                        "The server could not complete the request.",
                    ));
                }
            }
        }
    };
    let Some(hit) = hit.filter(|h| crate::tokens::visible_to(client_project, &h.principal)) else {
        return json_no_store(&introspection::inactive());
    };
    if hit.touch {
        record_token_use(&state, req, &hit.principal);
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(hit.answer)
}

/// Writes a token's last use, off the request path (at most once a minute per token).
pub(crate) fn record_token_use(state: &web::Data<AppState>, req: &HttpRequest, p: &crate::tokens::ApiPrincipal) {
    let source = client_ip(req, &state.config.trusted_proxies).map(|ip| {
        state.auditor.pseudonymiser().pseudonymise(crate::crypto::pseudonym::Datum::IpAddress, &ip.to_string())
    });
    let (s, id) = (state.clone(), p.token_id.to_string());
    actix_web::rt::spawn(async move {
        let r = web::block(move || {
            let now = s.clock.now_naive();
            s.db.write(|conn| {
                use crate::storage::api_tokens::ApiTokenRepository;
                conn.touch_api_token(&id, now, source.as_deref())
            })
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "could not record an API token's last use");
        }
    });
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: Result<web::Form<TokenForm>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else { return bad_body() };
    let f = form.into_inner();
    let creds = credentials(&req, f.client_id, f.client_secret);
    let token = f.token.unwrap_or_default();
    let s = state.clone();
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| revocation::revoke(conn, &s.oidc, now, &creds, &token))
    })
    .await
    .map_err(WebError::from)
    .and_then(|r| r.map_err(WebError::from));
    outcome(r, |()| HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).finish())
}

/// RP-initiated logout: ends the session the ID token names, then back to a registered URI.
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    params: web::Query<LogoutParams>,
) -> Result<HttpResponse, WebError> {
    let checked = crate::oidc::logout::check(&state.oidc, &params).map_err(|e| {
        tracing::info!(error = %e, "RP-initiated logout refused");
        WebError::BadRequest(match e {
            LogoutError::BadHint => "The sign-out request is not valid.",
            LogoutError::WrongClient => "The sign-out request names another application.",
            LogoutError::UnregisteredRedirect => "The application's sign-out return address is not registered.",
        })
    })?;
    let ip = client_ip(&req, &state.config.trusted_proxies);
    if let Some(sid) = checked.session {
        let s = state.clone();
        let user = checked.user;
        web::block(move || {
            let now = s.clock.now_naive();
            s.db.write(|conn| session::end(conn, &s.auditor, now, user, sid, Action::Logout, ip))
        })
        .await??;
    }
    let target = checked.redirect.unwrap_or_else(|| "/login".into());
    Ok(HttpResponse::SeeOther()
        .cookie(super::routes::removal_cookie(&state))
        .insert_header((header::LOCATION, target))
        .finish())
}

/// What a scope means, for the consent page.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "know who you are (your account id here)".into(),
        "email" => "see your e-mail address".into(),
        "profile" => "see your name".into(),
        "offline_access" => "keep access while you are away (until you sign out of it)".into(),
        other => format!("use its permission \"{other}\""),
    }
}
