//! The admin JSON API under `/api/v1`: organisations, projects, members, roles, connectors,
//! two-factor policy and the audit log. Each handler names the permission a token must carry,
//! then hands the call to `admin::*`, which decides what the caller may do there.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{api_admin_error, api_caller, api_try, blocked, json_body};
use crate::admin::audit_log::{self, AuditPage};
use crate::admin::caller::Caller;
use crate::admin::connectors::{self, ConnectorInfo};
use crate::admin::directory::{self, MemberInfo, RoleInfo};
use crate::admin::mfa_policy::{self, PolicyChange};
use crate::admin::organisations::AdminError;
use crate::app::AppState;
use crate::domain::UserId;
use crate::domain::organisation::{Organisation, Project};
use crate::domain::role::Permission;
use crate::mfa::policy::{Allowed, Policy, Requirement};

/// Runs a use case off the async threads and answers with its result as JSON.
pub(crate) async fn answer<T, F>(state: &web::Data<AppState>, status: StatusCode, f: F) -> HttpResponse
where
    T: Serialize + Send + 'static,
    F: FnOnce(&AppState) -> Result<T, AdminError> + Send + 'static,
{
    let s = state.clone();
    match web::block(move || f(&s)).await {
        Ok(Ok(_)) if status == StatusCode::NO_CONTENT => HttpResponse::NoContent().finish(),
        Ok(Ok(v)) => HttpResponse::build(status).insert_header((header::CACHE_CONTROL, "no-store")).json(v),
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}

pub(crate) async fn caller(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    needs: Permission,
) -> Result<Caller, HttpResponse> {
    api_caller(req, state, needs).await
}

/// An API refusal.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// `unauthorized`, `forbidden`, `csrf`, `not_found`, `invalid_request`, `conflict`.
    pub error: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganisationList {
    pub organisations: Vec<Organisation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<Project>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    pub roles: Vec<RoleInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorList {
    pub connectors: Vec<ConnectorInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    pub name: String,
    /// Derived from the name when absent.
    pub slug: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// The organisation's slug, typed again.
    pub confirm: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `owner`, `admin`, `member`, `viewer`, or a custom role's id.
    pub role: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    pub name: String,
    /// Permission names, as in token scopes.
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub required: bool,
    /// `totp`, `webauthn`; empty or absent for any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Days from now during which users without an allowed factor still get in.
    pub grace_days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub required: bool,
    pub methods: Vec<String>,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339_opt")]
    pub grace_until: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RequirementView {
    pub required: bool,
    /// The methods that satisfy it; absent for any.
    pub allowed: Option<Vec<String>>,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339_opt")]
    pub grace_until: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaPolicyView {
    pub organisation: PolicyView,
    pub project: Option<PolicyView>,
    /// What users meet: organisation and project combined, strictest wins.
    pub effective: RequirementView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPolicy {
    pub max_lifetime_days: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events of this action (for example `member.set`).
    pub action: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 500; 100 when absent.
    pub limit: Option<i64>,
}

pub(crate) fn policy_view(p: &Policy) -> PolicyView {
    PolicyView {
        required: p.required,
        methods: p.methods.iter().map(|m| m.as_str().to_owned()).collect(),
        grace_until: p.grace_until,
    }
}

pub(crate) fn requirement_view(r: &Requirement) -> RequirementView {
    RequirementView {
        required: r.required,
        allowed: match &r.allowed {
            Allowed::Any => None,
            Allowed::Only(set) => Some(set.iter().map(|m| m.as_str().to_owned()).collect()),
        },
        grace_until: r.grace_until,
    }
}

fn user_id(s: &str) -> Result<UserId, AdminError> {
    s.parse().map_err(|_| AdminError::NotFound("user"))
}

#[utoipa::path(get, path = "/api/v1/organisations", tag = "organisations",
    responses((status = 200, body = OrganisationList), (status = 401, body = ApiError)))]
pub async fn list_organisations(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationRead).await);
    answer(&state, StatusCode::OK, move |s| {
        let organisations = s.db.read(|conn| directory::list_organisations(conn, c))?;
        Ok(OrganisationList { organisations })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/organisations", tag = "organisations", request_body = NewOrganisation,
    responses((status = 201, body = Organisation), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 409, body = ApiError)))]
pub async fn create_organisation(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationManage).await);
    let b: NewOrganisation = api_try!(json_body(&body));
    answer(&state, StatusCode::CREATED, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::create_organisation_as(conn, &s.auditor, now, c, &b.name, b.slug.as_deref()))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}", tag = "organisations",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = Organisation), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn get_organisation(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationRead).await);
    let org = org.into_inner();
    answer(&state, StatusCode::OK, move |s| s.db.read(|conn| directory::get_organisation(conn, c, &org))).await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{org}", tag = "organisations", request_body = Confirmation,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 204, description = "Deleted with everything it owned"), (status = 400, body = ApiError),
        (status = 401, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn delete_organisation(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::OrganisationDelete).await);
    let b: Confirmation = api_try!(json_body(&body));
    let org = org.into_inner();
    answer(&state, StatusCode::NO_CONTENT, move |s| {
        let now = s.clock.now_naive();
        let r = s.db.write(|conn| directory::delete_organisation(conn, &s.auditor, now, c, &org, &b.confirm));
        if r.is_ok() {
            if let Err(e) = crate::maintenance::reload_clients(s) {
                tracing::warn!(error = %e, "registered clients were not reloaded after an organisation was deleted");
            }
        }
        r
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/projects", tag = "projects",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = ProjectList), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn list_projects(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::ProjectsRead).await);
    let org = org.into_inner();
    answer(&state, StatusCode::OK, move |s| {
        Ok(ProjectList { projects: s.db.read(|conn| directory::list_projects(conn, c, &org))? })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/projects", tag = "projects", request_body = NewOrganisation,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 201, body = Project), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn create_project(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::ProjectsManage).await);
    let b: NewOrganisation = api_try!(json_body(&body));
    let org = org.into_inner();
    answer(&state, StatusCode::CREATED, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::create_project_as(conn, &s.auditor, now, c, &org, &b.name, b.slug.as_deref()))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/projects/{project}", tag = "projects",
    params(("org" = String, Path, description = "Organisation id or slug"),
        ("project" = String, Path, description = "Project id or slug")),
    responses((status = 200, body = Project), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn get_project(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::ProjectsRead).await);
    let (org, project) = path.into_inner();
    answer(&state, StatusCode::OK, move |s| s.db.read(|conn| directory::get_project(conn, c, &org, &project))).await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/members", tag = "members",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = MemberList), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn list_members(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersRead).await);
    let org = org.into_inner();
    answer(&state, StatusCode::OK, move |s| {
        Ok(MemberList { members: s.db.read(|conn| directory::list_members(conn, c, &org, None))? })
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/projects/{project}/members", tag = "members",
    params(("org" = String, Path, description = "Organisation id or slug"),
        ("project" = String, Path, description = "Project id or slug")),
    responses((status = 200, body = MemberList), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn list_project_members(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersRead).await);
    let (org, project) = path.into_inner();
    answer(&state, StatusCode::OK, move |s| {
        Ok(MemberList { members: s.db.read(|conn| directory::list_members(conn, c, &org, Some(&project)))? })
    })
    .await
}

async fn put_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    (org, project, user): (String, Option<String>, String),
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersManage).await);
    let b: MemberRole = api_try!(json_body(&body));
    answer(&state, StatusCode::OK, move |s| {
        let user = user_id(&user)?;
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::set_member(conn, &s.auditor, now, c, &org, project.as_deref(), user, &b.role))
    })
    .await
}

async fn delete_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    (org, project, user): (String, Option<String>, String),
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersManage).await);
    answer(&state, StatusCode::NO_CONTENT, move |s| {
        let user = user_id(&user)?;
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::remove_member(conn, &s.auditor, now, c, &org, project.as_deref(), user))
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/organisations/{org}/members/{user}", tag = "members", request_body = MemberRole,
    params(("org" = String, Path, description = "Organisation id or slug"), ("user" = String, Path, description = "User id")),
    responses((status = 200, body = MemberInfo), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn set_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (org, user) = path.into_inner();
    put_member(req, state, (org, None, user), body).await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{org}/members/{user}", tag = "members",
    params(("org" = String, Path, description = "Organisation id or slug"), ("user" = String, Path, description = "User id")),
    responses((status = 204, description = "Removed, with their project memberships and the personal tokens they covered"),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn remove_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (org, user) = path.into_inner();
    delete_member(req, state, (org, None, user)).await
}

#[utoipa::path(put, path = "/api/v1/organisations/{org}/projects/{project}/members/{user}", tag = "members",
    request_body = MemberRole,
    params(("org" = String, Path, description = "Organisation id or slug"),
        ("project" = String, Path, description = "Project id or slug"), ("user" = String, Path, description = "User id")),
    responses((status = 200, body = MemberInfo), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn set_project_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (org, project, user) = path.into_inner();
    put_member(req, state, (org, Some(project), user), body).await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{org}/projects/{project}/members/{user}", tag = "members",
    params(("org" = String, Path, description = "Organisation id or slug"),
        ("project" = String, Path, description = "Project id or slug"), ("user" = String, Path, description = "User id")),
    responses((status = 204, description = "Removed from the project"), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn remove_project_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let (org, project, user) = path.into_inner();
    delete_member(req, state, (org, Some(project), user)).await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/roles", tag = "roles",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = RoleList), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
pub async fn list_roles(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersRead).await);
    let org = org.into_inner();
    answer(&state, StatusCode::OK, move |s| {
        Ok(RoleList { roles: s.db.read(|conn| directory::list_roles(conn, c, &org))? })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/roles", tag = "roles", request_body = NewRole,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 201, body = RoleInfo), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn create_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::RolesManage).await);
    let b: NewRole = api_try!(json_body(&body));
    let org = org.into_inner();
    answer(&state, StatusCode::CREATED, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::create_role(conn, &s.auditor, now, c, &org, &b.name, &b.permissions))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/connectors", tag = "connectors",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = ConnectorList), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn list_connectors(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::ConnectorsManage).await);
    let org = org.into_inner();
    answer(&state, StatusCode::OK, move |s| {
        Ok(ConnectorList { connectors: s.db.read(|conn| connectors::list_of(conn, c, &org))? })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/connectors", tag = "connectors",
    request_body(content = Object, description = "A `[[connectors]]` table as JSON, with `client_secret` itself"),
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 201, body = ConnectorInfo), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
pub async fn create_connector(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::ConnectorsManage).await);
    let config: crate::config::ConnectorConfig = api_try!(json_body(&body));
    let org = org.into_inner();
    answer(&state, StatusCode::CREATED, move |s| {
        let now = s.clock.now_naive();
        let taken = |id: &str| s.connectors.is_fixed(id);
        s.db.write(|conn| connectors::create_as(conn, &s.keys, &s.auditor, now, c, &org, &config, &taken))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{org}/connectors/{connector}", tag = "connectors",
    params(("org" = String, Path, description = "Organisation id or slug"), ("connector" = String, Path, description = "Connector id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn delete_connector(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::ConnectorsManage).await);
    let (org, id) = path.into_inner();
    answer(&state, StatusCode::NO_CONTENT, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| connectors::delete_as(conn, &s.auditor, now, c, &org, &id))
    })
    .await
}

async fn policy_of(state: web::Data<AppState>, c: Caller, org: String, project: Option<String>) -> HttpResponse {
    answer(&state, StatusCode::OK, move |s| {
        let now = s.clock.now_naive();
        let e = s.db.read(|conn| mfa_policy::get_effective(conn, now, c, &org, project.as_deref(), None))?;
        Ok(MfaPolicyView {
            organisation: policy_view(&e.organisation),
            project: e.project.as_ref().map(policy_view),
            effective: requirement_view(&e.effective),
        })
    })
    .await
}

async fn put_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: String,
    project: Option<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::PolicyManage).await);
    let b: PolicyBody = api_try!(json_body(&body));
    let (s, o, p) = (state.clone(), org.clone(), project.clone());
    let r = web::block(move || {
        let now = s.clock.now_naive();
        let change = PolicyChange { required: b.required, methods: &b.methods, grace_days: b.grace_days };
        s.db.write(|conn| match p.as_deref() {
            Some(p) => mfa_policy::set_project_policy(conn, &s.auditor, now, c, &o, p, change),
            None => mfa_policy::set_organisation_policy(conn, &s.auditor, now, c, &o, change),
        })
    })
    .await;
    match r {
        Ok(Ok(_)) => policy_of(state, c, org, project).await,
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/mfa-policy", tag = "policy",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = MfaPolicyView), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn get_org_policy(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::PolicyManage).await);
    policy_of(state, c, org.into_inner(), None).await
}

#[utoipa::path(put, path = "/api/v1/organisations/{org}/mfa-policy", tag = "policy", request_body = PolicyBody,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = MfaPolicyView), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn set_org_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    put_policy(req, state, org.into_inner(), None, body).await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/projects/{project}/mfa-policy", tag = "policy",
    params(("org" = String, Path, description = "Organisation id or slug"),
        ("project" = String, Path, description = "Project id or slug")),
    responses((status = 200, body = MfaPolicyView), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn get_project_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::PolicyManage).await);
    let (org, project) = path.into_inner();
    policy_of(state, c, org, Some(project)).await
}

#[utoipa::path(put, path = "/api/v1/organisations/{org}/projects/{project}/mfa-policy", tag = "policy",
    request_body = PolicyBody,
    params(("org" = String, Path, description = "Organisation id or slug"),
        ("project" = String, Path, description = "Project id or slug")),
    responses((status = 200, body = MfaPolicyView), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn set_project_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (org, project) = path.into_inner();
    put_policy(req, state, org, Some(project), body).await
}

#[utoipa::path(put, path = "/api/v1/organisations/{org}/token-policy", tag = "tokens", request_body = TokenPolicy,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 204, description = "Set"), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn set_token_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::PolicyManage).await);
    let b: TokenPolicy = api_try!(json_body(&body));
    let org = org.into_inner();
    answer(&state, StatusCode::NO_CONTENT, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| crate::admin::tokens::set_max_lifetime(conn, &s.auditor, now, c, &org, b.max_lifetime_days))
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/audit", tag = "audit", params(("org" = String, Path, description = "Organisation id or slug"), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ApiError), (status = 401, body = ApiError),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn audit(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::AuditRead).await);
    let (org, q) = (org.into_inner(), q.into_inner());
    answer(&state, StatusCode::OK, move |s| {
        s.db.read(|conn| audit_log::list(conn, c, &org, q.action.as_deref(), q.cursor.as_deref(), q.limit))
    })
    .await
}

/// The most events one export holds; page with `cursor` for more.
const EXPORT_MAX: usize = 100_000;

#[utoipa::path(get, path = "/api/v1/organisations/{org}/audit/export", tag = "audit",
    params(("org" = String, Path, description = "Organisation id or slug"), AuditQuery),
    responses((status = 200, description = "One JSON event per line, newest first", content_type = "application/jsonl", body = String),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError)))]
pub async fn audit_export(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::AuditRead).await);
    let (s, org, q) = (state.clone(), org.into_inner(), q.into_inner());
    let r = web::block(move || -> Result<String, AdminError> {
        let mut out = String::new();
        let (mut cursor, mut n) = (q.cursor.clone(), 0usize);
        loop {
            let page = s.db.read(|conn| {
                audit_log::list(conn, c, &org, q.action.as_deref(), cursor.as_deref(), Some(audit_log::MAX_PAGE))
            })?;
            for e in &page.events {
                out.push_str(&serde_json::to_string(e).map_err(|e| AdminError::Invalid(e.to_string()))?);
                out.push('\n');
                n += 1;
            }
            match page.next_cursor {
                Some(next) if n < EXPORT_MAX => cursor = Some(next),
                _ => break,
            }
        }
        Ok(out)
    })
    .await;
    match r {
        Ok(Ok(body)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("application/jsonl")
            .body(body),
        Ok(Err(e)) => api_admin_error(e),
        Err(e) => blocked(e),
    }
}
