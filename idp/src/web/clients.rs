//! Registered downstream clients over the JSON API (`/api/v1/...`); `admin::clients` decides
//! who may do what. After a change this instance serves it at once; the others within
//! `oidc::clients::RELOAD`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::api::{api_admin_error, api_caller, api_try, blocked, json_body};
use crate::admin::clients::{self, IssuedClient, Registration};
use crate::admin::organisations::AdminError;
use crate::app::AppState;
use crate::domain::role::Permission;

type Blocked<T> = Result<Result<T, AdminError>, actix_web::error::BlockingError>;

pub(crate) fn reloaded(state: &AppState) {
    if let Err(e) = crate::maintenance::reload_clients(state) {
        tracing::warn!(error = %e, "registered clients were not reloaded after a change");
    }
}

fn answer<T: serde::Serialize>(r: Blocked<T>, status: StatusCode) -> HttpResponse {
    match r {
        Ok(Ok(v)) => HttpResponse::build(status).insert_header((header::CACHE_CONTROL, "no-store")).json(v),
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}

fn issued(r: Blocked<IssuedClient>, status: StatusCode) -> HttpResponse {
    answer(r.map(|r| r.map(|i| json!({"client": i.client, "client_secret": i.secret}))), status)
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/projects/{project}/clients", tag = "clients",
    params(("org" = String, Path, description = "Organisation id or slug"), ("project" = String, Path, description = "Project id or slug")),
    responses((status = 200, description = "`{\"clients\": [ClientInfo]}`"), (status = 401, body = super::admin_api::ApiError),
        (status = 403, body = super::admin_api::ApiError), (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_list(req: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::ClientsManage).await);
    let (s, (org, project)) = (state.clone(), path.into_inner());
    let r = web::block(move || s.db.read(|conn| clients::list(conn, caller, &org, &project))).await;
    answer(r.map(|r| r.map(|list| json!({"clients": list}))), StatusCode::OK)
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/projects/{project}/clients", tag = "clients",
    request_body = Registration,
    params(("org" = String, Path, description = "Organisation id or slug"), ("project" = String, Path, description = "Project id or slug")),
    responses((status = 201, description = "`{\"client\": ClientInfo, \"client_secret\": \"...\"}`; the secret is shown this once"),
        (status = 400, body = super::admin_api::ApiError), (status = 401, body = super::admin_api::ApiError), (status = 403, body = super::admin_api::ApiError), (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_register(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::ClientsManage).await);
    let reg: Registration = api_try!(json_body(&body));
    let (s, (org, project)) = (state.clone(), path.into_inner());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        let r = s.db.write(|conn| clients::register(conn, &s.auditor, now, caller, &org, &project, &reg));
        reloaded(&s);
        r
    })
    .await;
    issued(r, StatusCode::CREATED)
}

#[utoipa::path(get, path = "/api/v1/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "client_id")),
    responses((status = 200, body = crate::admin::clients::ClientInfo), (status = 401, body = super::admin_api::ApiError), (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_get(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::ClientsManage).await);
    let (s, id) = (state.clone(), id.into_inner());
    let r = web::block(move || s.db.read(|conn| clients::get(conn, caller, &id))).await;
    answer(r, StatusCode::OK)
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/secret", tag = "clients",
    params(("id" = String, Path, description = "client_id")),
    responses((status = 200, description = "`{\"client\": ClientInfo, \"client_secret\": \"...\"}`; the old secret stops working"),
        (status = 400, body = super::admin_api::ApiError), (status = 401, body = super::admin_api::ApiError), (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_rotate_secret(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::ClientsManage).await);
    let (s, id) = (state.clone(), id.into_inner());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        let r = s.db.write(|conn| clients::rotate_secret(conn, &s.auditor, now, caller, &id));
        reloaded(&s);
        r
    })
    .await;
    issued(r, StatusCode::OK)
}

#[utoipa::path(delete, path = "/api/v1/clients/{id}", tag = "clients",
    params(("id" = String, Path, description = "client_id")),
    responses((status = 204, description = "Deleted; everything issued to it revoked"), (status = 401, body = super::admin_api::ApiError),
        (status = 404, body = super::admin_api::ApiError)))]
pub async fn api_delete(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let caller = api_try!(api_caller(&req, &state, Permission::ClientsManage).await);
    let (s, id) = (state.clone(), id.into_inner());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        let r = s.db.write(|conn| clients::delete(conn, &s.auditor, now, caller, &id));
        reloaded(&s);
        r
    })
    .await;
    match r {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}
