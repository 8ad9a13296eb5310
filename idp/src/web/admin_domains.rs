//! The admin JSON API's organisation set-up calls: verified domains and their routing, and
//! deleting a project. Thin adapters over `admin::domains` and `admin::directory`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin_api::{ApiError, answer, caller};
use super::api::{api_admin_error, api_try, blocked, json_body};
use crate::admin::dns::TxtResolver;
use crate::admin::domains::{self, DomainInfo};
use crate::app::AppState;
use crate::domain::role::Permission;

#[derive(Debug, Serialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    /// Such as `acme.test`; internationalised names in their `xn--` form.
    pub domain: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRoute {
    /// One of the organisation's own connectors; `null` or absent un-routes the domain.
    pub connector: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfirmation {
    /// The project's slug, typed again.
    pub confirm: String,
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/domains", tag = "domains",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = DomainList), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn list_domains(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationManage).await);
    let org = org.into_inner();
    answer(&state, StatusCode::OK, move |s| Ok(DomainList { domains: s.db.read(|conn| domains::list(conn, c, &org))? }))
        .await
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/domains", tag = "domains", request_body = NewDomain,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 201, body = DomainInfo, description = "Claimed, unverified: publish `txt_value` as a TXT record at `txt_name`"),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn claim_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationManage).await);
    let b: NewDomain = api_try!(json_body(&body));
    let org = org.into_inner();
    answer(&state, StatusCode::CREATED, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| domains::claim(conn, &s.auditor, now, c, &org, &b.domain))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/domains/{id}", tag = "domains",
    params(("org" = String, Path, description = "Organisation id or slug"), ("id" = String, Path, description = "Domain id")),
    responses((status = 200, body = DomainInfo), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn get_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationManage).await);
    let (org, id) = path.into_inner();
    answer(&state, StatusCode::OK, move |s| s.db.read(|conn| domains::get(conn, c, &org, &id))).await
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/domains/{id}/verify", tag = "domains",
    params(("org" = String, Path, description = "Organisation id or slug"), ("id" = String, Path, description = "Domain id")),
    responses((status = 200, body = DomainInfo, description = "Verified"),
        (status = 400, body = ApiError, description = "The TXT record is missing or does not hold the value"),
        (status = 401, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError),
        (status = 409, body = ApiError, description = "Another organisation verified the domain")))]
pub async fn verify_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationManage).await);
    let (org, id) = path.into_inner();
    let (s, o, i) = (state.clone(), org.clone(), id.clone());
    let challenge = match web::block(move || s.db.read(|conn| domains::challenge(conn, c, &o, &i))).await {
        Ok(Ok(ch)) => ch,
        Ok(Err(e)) => return api_admin_error(e),
        Err(e) => return blocked(e),
    };
    let found = if challenge.verified {
        Ok(Vec::new())
    } else {
        TxtResolver::new(state.config.dns_resolver).txt(&challenge.txt_name).await
    };
    answer(&state, StatusCode::OK, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| domains::complete_verification(conn, &s.auditor, now, c, &org, &id, found))
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/organisations/{org}/domains/{id}", tag = "domains", request_body = DomainRoute,
    params(("org" = String, Path, description = "Organisation id or slug"), ("id" = String, Path, description = "Domain id")),
    responses((status = 200, body = DomainInfo), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn route_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationManage).await);
    let b: DomainRoute = api_try!(json_body(&body));
    let (org, id) = path.into_inner();
    answer(&state, StatusCode::OK, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| domains::route(conn, &s.auditor, now, c, &org, &id, b.connector.as_deref()))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{org}/domains/{id}", tag = "domains",
    params(("org" = String, Path, description = "Organisation id or slug"), ("id" = String, Path, description = "Domain id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn delete_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationManage).await);
    let (org, id) = path.into_inner();
    answer(&state, StatusCode::NO_CONTENT, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| domains::delete(conn, &s.auditor, now, c, &org, &id))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{org}/projects/{project}", tag = "projects",
    request_body = ProjectConfirmation,
    params(("org" = String, Path, description = "Organisation id or slug"),
        ("project" = String, Path, description = "Project id or slug")),
    responses((status = 204, description = "Deleted with its clients, tokens, memberships and policy"),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn delete_project(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::ProjectsManage).await);
    let b: ProjectConfirmation = api_try!(json_body(&body));
    let (org, project) = path.into_inner();
    answer(&state, StatusCode::NO_CONTENT, move |s| {
        let now = s.clock.now_naive();
        let r = s.db.write(|conn| {
            crate::admin::directory::delete_project(conn, &s.auditor, now, c, &org, &project, &b.confirm)
        });
        if r.is_ok() {
            if let Err(e) = crate::maintenance::reload_clients(s) {
                tracing::warn!(error = %e, "registered clients were not reloaded after a project was deleted");
            }
        }
        r
    })
    .await
}
