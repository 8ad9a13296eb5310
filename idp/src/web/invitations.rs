//! Invitations over HTTP: the accept page (`/invitations/{token}`, a signed-in user's, else a
//! redirect to /login that comes back) and the admin JSON API. The work is `admin::invitations`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin_api::{ApiError, answer, caller};
use super::api::{api_try, json_body};
use super::error::WebError;
use super::extract::SignedIn;
use super::views::Views;
use crate::admin::invitations::{self, CreatedInvitation, Invitation, InvitationError, InvitationInfo};
use crate::app::AppState;
use crate::domain::role::Permission;
use crate::domain::session::Session;

// ---------------------------------------------------------------- the page

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    csrf_token: String,
}

fn page(
    state: &AppState,
    views: &Views,
    session: &Session,
    token: &str,
    r: Result<(Invitation, bool), InvitationError>,
) -> Result<HttpResponse, WebError> {
    let (status, html) = match r {
        Ok((inv, accepted)) => (
            StatusCode::OK,
            views.render(
                "invitation.html",
                context! {
                    product_name => &state.config.product_name,
                    signed_in => true,
                    csrf_token => super::csrf::for_session(&state.csrf_key, session),
                    organisation => inv.organisation.name,
                    role => inv.role,
                    email => inv.email,
                    token => token,
                    accepted => accepted,
                },
            )?,
        ),
        Err(InvitationError::Storage(e)) => return Err(e.into()),
        Err(e) => {
            let status = match e {
                InvitationError::Unknown => StatusCode::NOT_FOUND,
                InvitationError::Expired
                | InvitationError::Revoked
                | InvitationError::Used
                | InvitationError::RoleGone => StatusCode::GONE,
                InvitationError::AlreadyMember => StatusCode::CONFLICT,
                _ => StatusCode::FORBIDDEN,
            };
            let error = e.to_string();
            let error =
                format!("{}{}", error.get(..1).unwrap_or_default().to_uppercase(), error.get(1..).unwrap_or_default());
            let html = views.render(
                "invitation.html",
                context! { product_name => &state.config.product_name, signed_in => true, error => error },
            )?;
            (status, html)
        }
    };
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

/// What the invitation is, and a button to accept it; nothing changes yet.
pub async fn show(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    token: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let token = token.into_inner();
    let (s, t, user) = (state.clone(), token.clone(), session.user_id);
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.read(|conn| invitations::preview(conn, now, user, &t))
    })
    .await?;
    page(&state, &views, &session, &token, r.map(|i| (i, false)))
}

pub async fn accept(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    token: web::Path<String>,
    form: web::Form<AcceptForm>,
) -> Result<HttpResponse, WebError> {
    super::csrf::require_session(&state.csrf_key, &session, &form.csrf_token)?;
    let token = token.into_inner();
    let (s, t, user) = (state.clone(), token.clone(), session.user_id);
    let r = web::block(move || {
        let now = s.clock.now_naive();
        s.db.write(|conn| invitations::accept(conn, &s.auditor, now, user, &t))
    })
    .await?;
    page(&state, &views, &session, &token, r.map(|i| (i, true)))
}

// ---------------------------------------------------------------- the API

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub invitations: Vec<InvitationInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    pub email: String,
    /// `owner`, `admin`, `member`, `viewer`, or a custom role's id.
    pub role: String,
}

#[utoipa::path(get, path = "/api/v1/organisations/{org}/invitations", tag = "members",
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 200, body = InvitationList), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn api_list(req: HttpRequest, state: web::Data<AppState>, org: web::Path<String>) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersRead).await);
    let org = org.into_inner();
    answer(&state, StatusCode::OK, move |s| {
        let now = s.clock.now_naive();
        Ok(InvitationList { invitations: s.db.read(|conn| invitations::list(conn, now, c, &org))? })
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/organisations/{org}/invitations", tag = "members", request_body = NewInvitation,
    params(("org" = String, Path, description = "Organisation id or slug")),
    responses((status = 201, body = CreatedInvitation, description = "Created; `accept_url` is shown this once"),
        (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError)))]
pub async fn api_create(
    req: HttpRequest,
    state: web::Data<AppState>,
    org: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersManage).await);
    let b: NewInvitation = api_try!(json_body(&body));
    let org = org.into_inner();
    answer(&state, StatusCode::CREATED, move |s| {
        let now = s.clock.now_naive();
        let base = s.config.base_url();
        s.db.write(|conn| invitations::create(conn, &s.auditor, now, c, &org, &b.email, &b.role, base))
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/organisations/{org}/invitations/{id}", tag = "members",
    params(("org" = String, Path, description = "Organisation id or slug"), ("id" = String, Path, description = "Invitation id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ApiError), (status = 403, body = ApiError),
        (status = 404, body = ApiError), (status = 409, body = ApiError, description = "Accepted or revoked already")))]
pub async fn api_revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let c = api_try!(caller(&req, &state, Permission::MembersManage).await);
    let (org, id) = path.into_inner();
    answer(&state, StatusCode::NO_CONTENT, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| invitations::revoke(conn, &s.auditor, now, c, &org, &id))
    })
    .await
}
