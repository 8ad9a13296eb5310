//! API tokens over HTTP: the user's own page (`/account/tokens`) and the JSON API
//! (`/api/v1/...`). Both call `admin::tokens`, which decides who may do what.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::api::{api_admin_error, api_caller, api_try, blocked, json_body};
use super::error::WebError;
use super::extract::SignedIn;
use super::views::Views;
use crate::admin::organisations::AdminError;
use crate::admin::tokens::{self, Caller, IssuedToken, NewToken};
use crate::app::AppState;
use crate::domain::role::Permission;
use crate::domain::session::Session;
use crate::tokens::{TokenKind, parse_permission};

pub(crate) fn scopes(raw: &str) -> Result<std::collections::BTreeSet<crate::domain::role::Permission>, AdminError> {
    raw.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|s| parse_permission(s).ok_or_else(|| AdminError::Invalid(format!("unknown scope {s}"))))
        .collect()
}

// ---------------------------------------------------------------- the page

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf_token: String,
    name: String,
    organisation: String,
    project: String,
    scopes: String,
    days: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RotateForm {
    csrf_token: String,
    grace_hours: Option<String>,
}

#[derive(Default)]
struct Shown {
    secret: Option<String>,
    rotated: bool,
    grace_hours: i64,
    error: Option<String>,
}

async fn render(
    state: &web::Data<AppState>,
    views: &Views,
    session: &Session,
    shown: Shown,
) -> Result<HttpResponse, WebError> {
    let s = state.clone();
    let user = session.user_id;
    let list = web::block(move || s.db.read(|conn| tokens::list_own(conn, user))).await?.map_err(admin_to_web)?;
    let now = state.clock.now_naive();
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|t| {
            json!({"id": t.id.to_string(), "name": t.name, "scopes": t.scopes, "expires_at": t.expires_at.to_string(),
                   "last_used_at": t.last_used_at.map(|l| l.to_string()), "state": t.state(now)})
        })
        .collect();
    let html = views.render(
        "tokens.html",
        context! {
            product_name => &state.config.product_name,
            signed_in => true,
            csrf_token => super::csrf::for_session(&state.csrf_key, session),
            tokens => rows,
            secret => shown.secret,
            rotated => shown.rotated,
            grace_hours => shown.grace_hours,
            error => shown.error,
        },
    )?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

pub(crate) fn admin_to_web(e: AdminError) -> WebError {
    match e {
        AdminError::NotFound(_) => WebError::NotFound,
        AdminError::Forbidden(why) => WebError::Forbidden(why),
        AdminError::Storage(s) => s.into(),
        AdminError::Invalid(_) | AdminError::Conflict(_) => WebError::BadRequest("The request was refused."),
    }
}

fn check_csrf(state: &AppState, session: &Session, token: &str) -> Result<(), WebError> {
    super::csrf::require_session(&state.csrf_key, session, token)
}

/// The outcome of a form: the secret to show once, or the refusal in words.
async fn after(
    state: &web::Data<AppState>,
    views: &Views,
    session: &Session,
    r: Result<Option<(IssuedToken, Option<i64>)>, AdminError>,
) -> Result<HttpResponse, WebError> {
    let shown = match r {
        Ok(None) => Shown::default(),
        Ok(Some((issued, grace))) => Shown {
            secret: Some(issued.secret),
            rotated: grace.is_some(),
            grace_hours: grace.unwrap_or(0),
            error: None,
        },
        Err(AdminError::Invalid(why)) | Err(AdminError::Conflict(why)) => {
            Shown { error: Some(why), ..Shown::default() }
        }
        Err(AdminError::NotFound(what)) => Shown { error: Some(format!("{what} not found")), ..Shown::default() },
        Err(AdminError::Forbidden(why)) => Shown { error: Some(why.to_owned()), ..Shown::default() },
        Err(AdminError::Storage(e)) => return Err(e.into()),
    };
    render(state, views, session, shown).await
}

pub async fn page(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
) -> Result<HttpResponse, WebError> {
    render(&state, &views, &session, Shown::default()).await
}

pub async fn create(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let f = form.into_inner();
    let (s, user) = (state.clone(), session.user_id);
    let r = web::block(move || {
        let days = match f.days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            Some(d) => {
                Some(d.parse::<i64>().map_err(|_| AdminError::Invalid("the lifetime is a number of days".into()))?)
            }
        };
        let new = NewToken {
            kind: TokenKind::Personal,
            name: &f.name,
            organisation: f.organisation.trim(),
            project: Some(f.project.trim()),
            user: None,
            scopes: scopes(&f.scopes)?,
            lifetime_days: days,
        };
        let now = s.clock.now_naive();
        s.db.write(|conn| tokens::create(conn, &s.auditor, now, Caller::User(user), &new)).map(|t| Some((t, None)))
    })
    .await?;
    after(&state, &views, &session, r).await
}

pub async fn rotate(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    id: web::Path<String>,
    form: web::Form<RotateForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let grace = form.grace_hours.as_deref().map(str::trim).filter(|g| !g.is_empty()).unwrap_or("0").parse::<i64>();
    let Ok(grace) = grace else { return Err(WebError::BadRequest("The grace period is a number of hours.")) };
    let (s, user, id) = (state.clone(), session.user_id, id.into_inner());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| tokens::rotate(conn, &s.auditor, now, Caller::User(user), &id, grace))
            .map(|t| Some((t, Some(grace))))
    })
    .await?;
    after(&state, &views, &session, r).await
}

pub async fn revoke(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    id: web::Path<String>,
    form: web::Form<super::routes::CsrfForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let (s, user, id) = (state.clone(), session.user_id, id.into_inner());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| tokens::revoke(conn, &s.auditor, now, Caller::User(user), &id)).map(|()| None)
    })
    .await?;
    after(&state, &views, &session, r).await
}

// ---------------------------------------------------------------- the JSON API

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    kind: String,
    name: String,
    project: Option<String>,
    scopes: Vec<String>,
    lifetime_days: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[serde(default)]
    grace_hours: i64,
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/tokens", tag = "tokens",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, description = "`{\"tokens\": [TokenInfo]}`: all with tokens_manage, else the caller's own"),
        (status = 401, body = super::admin_api::ApiError), (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_list(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::TokensManage).await);
    let (s, org) = (state.clone(), org.into_inner());
    match web::block(move || s.db.read(|conn| tokens::list(conn, caller, &org))).await {
        Ok(Ok(list)) => {
            HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({"tokens": list}))
        }
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/tokens", tag = "tokens", request_body = CreateBody,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 201, description = "`{\"token\": TokenInfo, \"secret\": \"idp_...\"}`; the secret is shown this once"),
        (status = 400, body = super::admin_api::ApiError), (status = 401, body = super::admin_api::ApiError),
        (status = 403, body = super::admin_api::ApiError), (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::TokensManage).await);
    let b: CreateBody = api_try!(json_body(&body));
    let (s, org) = (state.clone(), org.into_inner());
    let r = web::block(move || {
        let kind = TokenKind::parse(&b.kind).ok_or_else(|| AdminError::Invalid(format!("unknown kind {}", b.kind)))?;
        let new = NewToken {
            kind,
            name: &b.name,
            organisation: &org,
            project: b.project.as_deref(),
            user: None,
            scopes: scopes(&b.scopes.join(","))?,
            lifetime_days: b.lifetime_days,
        };
        let now = s.clock.now_naive();
        s.db.write(|conn| tokens::create(conn, &s.auditor, now, caller, &new))
    })
    .await;
    issued(r, StatusCode::CREATED)
}

#[utoipa::path(post, path = "/api/v1/tokens/{id}/rotate", tag = "tokens", request_body = RotateBody,
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "`{\"token\": TokenInfo, \"secret\": \"idp_...\"}`; the old secret works for the grace period"),
        (status = 400, body = super::admin_api::ApiError), (status = 401, body = super::admin_api::ApiError),
        (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::TokensManage).await);
    let b: RotateBody = if body.is_empty() { RotateBody { grace_hours: 0 } } else { api_try!(json_body(&body)) };
    let (s, id) = (state.clone(), id.into_inner());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| tokens::rotate(conn, &s.auditor, now, caller, &id, b.grace_hours))
    })
    .await;
    issued(r, StatusCode::OK)
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked at once"), (status = 401, body = super::admin_api::ApiError),
        (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_revoke(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::TokensManage).await);
    let (s, id) = (state.clone(), id.into_inner());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| tokens::revoke(conn, &s.auditor, now, caller, &id))
    })
    .await;
    match r {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}

fn issued(
    r: Result<Result<IssuedToken, AdminError>, actix_web::error::BlockingError>,
    status: StatusCode,
) -> HttpResponse {
    match r {
        Ok(Ok(t)) => HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"token": t.token, "secret": t.secret})),
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}
