//! Login through upstream connectors: `/login/{id}` starts, `/callback/{id}` finishes.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::client_ip::client_ip;
use super::error::WebError;
use super::extract::{SignedIn, session_cookie_name};
use super::routes::{CsrfForm, check_csrf, safe_return_to};
use crate::app::AppState;
use crate::auth::login::{self, LoginError, LoginPolicy};
use crate::auth::session::Origin;
use crate::crypto::tokens::random_token;
use crate::upstream::UpstreamError;

fn flow_cookie_name(https: bool) -> &'static str {
    if https { "__Host-idp_flow" } else { "idp_flow" }
}

fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(state.config.is_https())
        .same_site(SameSite::Lax)
        .finish()
}

fn redirect_uri(state: &AppState, connector: &str) -> String {
    format!("{}/callback/{connector}", state.config.base_url())
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
    login_hint: Option<String>,
}

/// `GET /login/{id}`: sign in through a connector.
pub async fn start(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<StartQuery>,
) -> Result<HttpResponse, WebError> {
    super::extract::fresh_connectors(&state, Some(&id)).await?;
    let connector = state.connectors.get(&id).ok_or(WebError::NotFound)?;
    let hint = query.login_hint.as_deref().filter(|h| h.len() <= 256 && !h.chars().any(char::is_control));
    begin_flow(&state, &connector, hint, safe_return_to(query.return_to.as_deref()), None).await
}

/// `POST /login/{id}/link`: link this connector's account to the signed-in user. A POST with
/// the session's form token, so another site cannot start a link in the user's name.
pub async fn link(
    state: web::Data<AppState>,
    id: web::Path<String>,
    SignedIn(session): SignedIn,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form)?;
    super::extract::fresh_connectors(&state, Some(&id)).await?;
    let connector = state.connectors.get(&id).ok_or(WebError::NotFound)?;
    begin_flow(&state, &connector, None, Some("/".into()), Some(session.user_id)).await
}

async fn begin_flow(
    state: &web::Data<AppState>,
    connector: &crate::upstream::Connector,
    hint: Option<&str>,
    return_to: Option<String>,
    link_user: Option<crate::domain::UserId>,
) -> Result<HttpResponse, WebError> {
    let keys = match connector.saml() {
        Some(_) => Some(super::saml::sp_keys(state).await?),
        None => None,
    };
    let sp = crate::upstream::saml::SpContext {
        base_url: state.config.base_url(),
        keys: keys.as_deref(),
        now: state.clock.now(),
    };
    let authorization =
        connector.authorize(&redirect_uri(state, connector.id()), hint, sp).await.map_err(upstream_error)?;
    let binding = random_token(32);
    let s = state.clone();
    let connector_id = connector.id().to_owned();
    let (auth_state, secrets) = (authorization.state.clone(), authorization.secrets);
    let b = binding.clone();
    web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            login::begin(conn, &s.keys, now, &connector_id, &auth_state, &secrets, &b, return_to.as_deref(), link_user)
        })
    })
    .await?
    .map_err(login_error)?;
    let mut flow = cookie(state, flow_cookie_name(state.config.is_https()), binding);
    flow.set_max_age(CookieDuration::seconds(login::FLOW_LIFETIME_SECS));
    if connector.saml().is_some() && state.config.is_https() {
        // The IdP posts the response to the ACS from its own site: a Lax cookie would stay behind.
        flow.set_same_site(SameSite::None);
    }
    Ok(HttpResponse::SeeOther().cookie(flow).insert_header((header::LOCATION, authorization.url.to_string())).finish())
}

/// Audits a failed login and answers with `err`; `reason` is a fixed phrase.
pub(super) async fn fail(
    state: &web::Data<AppState>,
    connector_id: &str,
    ip: Option<std::net::IpAddr>,
    reason: &'static str,
    err: WebError,
) -> Result<HttpResponse, WebError> {
    Err(refused(state, connector_id, ip, reason, err).await)
}

/// Audits a failed login; returns `err` for the caller to answer with.
pub(super) async fn refused(
    state: &web::Data<AppState>,
    connector_id: &str,
    ip: Option<std::net::IpAddr>,
    reason: &'static str,
    err: WebError,
) -> WebError {
    let s = state.clone();
    let connector_id = connector_id.to_owned();
    let audited = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| login::record_failure(conn, &s.auditor, now, &connector_id, reason, ip))
    })
    .await;
    if let Ok(Err(e)) = audited {
        tracing::error!(error = %e, "could not audit a failed login");
    }
    tracing::info!(reason, "login failed");
    err
}

/// Consumes the flow a response names (`flow_state`: OIDC `state`, SAML `RelayState`), bound
/// to this browser's flow cookie; a refusal is audited.
pub(super) async fn take_flow(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    connector_id: &str,
    flow_state: String,
) -> Result<login::TakenFlow, WebError> {
    let ip = client_ip(req, &state.config.trusted_proxies);
    let binding = req.cookie(flow_cookie_name(state.config.is_https())).map(|c| c.value().to_owned());
    let s = state.clone();
    let id = connector_id.to_owned();
    let taken = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| login::take(conn, &s.keys, now, &id, &flow_state, binding.as_deref()))
    })
    .await?;
    match taken.map_err(WebError::from)? {
        Ok(f) => Ok(f),
        Err(e) => {
            let reason = match e {
                LoginError::UnknownFlow => "unknown or reused state",
                LoginError::WrongConnector => "response for another connector",
                LoginError::WrongBrowser => "flow cookie missing or wrong",
                _ => "flow error",
            };
            Err(refused(state, connector_id, ip, reason, login_error(e)).await)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, WebError> {
    super::extract::fresh_connectors(&state, Some(&id)).await?;
    let connector = state.connectors.get(&id).ok_or(WebError::NotFound)?;
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let cid = connector.id().to_owned();
    let Some(flow_state) = query.state.clone() else {
        return fail(
            &state,
            &cid,
            ip,
            "no state",
            WebError::BadRequest("The sign-in response is incomplete. Please start again."),
        )
        .await;
    };
    let flow = take_flow(&req, &state, &cid, flow_state).await?;
    if query.error.is_some() {
        let err = WebError::Forbidden("The sign-in was cancelled or refused by the provider.");
        return fail(&state, &cid, ip, "refused upstream", err).await;
    }
    if let Err(e) = connector.check_response_issuer(query.iss.as_deref()).await {
        tracing::warn!(error = ?e, "authorization response issuer check failed");
        return fail(&state, &cid, ip, "issuer mismatch", upstream_error(e)).await;
    }
    let Some(code) = query.code.as_deref() else {
        return fail(
            &state,
            &cid,
            ip,
            "no code",
            WebError::BadRequest("The sign-in response is incomplete. Please start again."),
        )
        .await;
    };
    let identity = match connector.finish(&redirect_uri(&state, connector.id()), code, flow.secrets.clone()).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = ?e, connector = %connector.id(), "upstream login failed");
            let reason = match e {
                UpstreamError::Unavailable(_) => "upstream unavailable",
                UpstreamError::Denied(_) => "upstream refused",
                UpstreamError::Invalid(_) => "invalid upstream response",
                UpstreamError::NotAllowed(_) => "not allowed by connector policy",
            };
            return fail(&state, &cid, ip, reason, upstream_error(e)).await;
        }
    };
    complete(&req, &state, &connector, identity, Some(flow)).await
}

/// The end of every upstream login, OIDC, GitHub and SAML alike: the account (link or
/// just-in-time sign-up), the group-to-role sync, a fresh session or the second-factor step.
pub(super) async fn complete(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    connector: &crate::upstream::Connector,
    identity: crate::upstream::ExternalIdentity,
    flow: Option<login::TakenFlow>,
) -> Result<HttpResponse, WebError> {
    let ip = client_ip(req, &state.config.trusted_proxies);
    let origin = Origin {
        ip,
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    let s = state.clone();
    let trust = connector.spec().trust_upstream_mfa;
    let previous = req.cookie(session_cookie_name(state.config.is_https())).map(|c| c.value().to_owned());
    let link_user = flow.as_ref().and_then(|f| f.link_user);
    let return_to = flow.as_ref().and_then(|f| f.return_to.clone());
    let rt = return_to.clone();
    let done = web::block(move || {
        let now = s.clock.now_naive();
        let mappings =
            s.connectors.get(&identity.connector_id).map(|c| c.spec().role_mappings.clone()).unwrap_or_default();
        let policy = LoginPolicy {
            signup: &s.config.signup,
            session: &s.config.session,
            trust_upstream_mfa: trust,
            role_mappings: &mappings,
        };
        // One transaction: a refusal leaves nothing behind (no half-linked identity).
        s.db.write(|conn| {
            let done = login::complete(conn, &s.auditor, policy, now, &identity, link_user, &origin, rt.as_deref())?;
            if matches!(done, login::Completed::Session(..)) {
                crate::auth::session::end_previous(conn, previous.as_deref())?;
            }
            Ok::<_, LoginError>(done)
        })
    })
    .await?;
    let token = match done {
        Ok(login::Completed::Session(token, _, _)) => token,
        Ok(login::Completed::SecondFactor(pending, _)) => {
            let mut gone = cookie(state, flow_cookie_name(state.config.is_https()), String::new());
            gone.make_removal();
            let mut res = super::mfa::ask_for_second_factor(state, &pending);
            res.add_cookie(&gone).map_err(|e| WebError::Internal(e.to_string()))?;
            return Ok(res);
        }
        Err(e) => {
            let reason = match e {
                LoginError::EmailNotVerified => "e-mail not verified",
                LoginError::SignupClosed => "sign-up closed",
                LoginError::Disabled => "account disabled",
                LoginError::LinkedElsewhere => "identity linked to another user",
                _ => "login error",
            };
            return fail(state, connector.id(), ip, reason, login_error(e)).await;
        }
    };
    let mut gone = cookie(state, flow_cookie_name(state.config.is_https()), String::new());
    gone.make_removal();
    let target = return_to.unwrap_or_else(|| "/".into());
    Ok(HttpResponse::SeeOther()
        .cookie(cookie(state, session_cookie_name(state.config.is_https()), token.expose().to_owned()))
        .cookie(gone)
        .insert_header((header::LOCATION, target))
        .finish())
}

pub(super) fn upstream_error(e: UpstreamError) -> WebError {
    match e {
        UpstreamError::Unavailable(why) => WebError::UpstreamDown(why),
        UpstreamError::Denied(_) => WebError::Forbidden("The sign-in was refused by the provider."),
        UpstreamError::Invalid(_) => {
            WebError::BadRequest("The provider's answer could not be verified. Please start again.")
        }
        UpstreamError::NotAllowed(_) => WebError::Forbidden("This account is not allowed to sign in here."),
    }
}

pub(super) fn login_error(e: LoginError) -> WebError {
    match e {
        LoginError::UnknownFlow | LoginError::WrongConnector | LoginError::WrongBrowser => {
            WebError::BadRequest("This sign-in link has expired or was already used. Please start again.")
        }
        LoginError::EmailNotVerified => WebError::Forbidden(
            "Your e-mail address is not verified with the provider. Verify it there, then sign in again.",
        ),
        LoginError::SignupClosed => {
            WebError::Forbidden("There is no account for you here. Ask an administrator for an invitation.")
        }
        LoginError::Disabled => WebError::Forbidden("This account is disabled."),
        LoginError::LinkedElsewhere => WebError::Forbidden("That account is already linked to another user."),
        LoginError::Concurrent => {
            WebError::BadRequest("Another sign-in for this account finished at the same time. Please sign in again.")
        }
        LoginError::Storage(e) => e.into(),
    }
}

#[derive(Debug, Deserialize)]
pub struct DiscoverQuery {
    email: String,
    return_to: Option<String>,
}

/// Home-realm discovery: an e-mail whose domain is routed to a connector goes straight there.
pub async fn discover(state: web::Data<AppState>, query: web::Query<DiscoverQuery>) -> Result<HttpResponse, WebError> {
    super::extract::fresh_connectors(&state, None).await?;
    let email = query.email.trim();
    let return_to = safe_return_to(query.return_to.as_deref());
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    // The operator's `domains` first, then the domains organisations verified and routed.
    let routed = match state.connectors.for_email(email) {
        Some(c) => Some(c),
        None => {
            let (s, e) = (state.clone(), email.to_owned());
            let id =
                web::block(move || s.db.read(|conn| crate::admin::domains::connector_for_email(conn, &e))).await??;
            match id {
                Some(id) => {
                    super::extract::fresh_connectors(&state, Some(&id)).await?;
                    state.connectors.get(&id)
                }
                None => None,
            }
        }
    };
    let mut target = match routed {
        Some(c) => format!("/login/{}?login_hint={}", c.id(), enc(email)),
        None => "/login?unknown_domain=1".to_owned(),
    };
    if let Some(r) = return_to {
        target.push_str(&format!("&return_to={}", enc(&r)));
    }
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish())
}
