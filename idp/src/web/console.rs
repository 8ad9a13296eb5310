//! The admin console: pages under `/admin` doing what `/api/v1` does, for a signed-in user,
//! through the same `admin::*` use cases (which decide who may do what there). Plain forms, so
//! it works without JavaScript; every POST carries the session's CSRF token; after a change the
//! browser is sent back to the page (POST, redirect, GET), a refusal is shown on the page.
//!
//! An organisation's pages hold the session to the organisation's (or the project's) two-factor
//! requirement, as its applications' tokens are: no way around the policy through the console.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::admin_api::{policy_view, requirement_view};
use super::error::WebError;
use super::extract::SignedIn;
use super::routes::enc;
use super::views::Views;
use crate::admin::caller::Caller;
use crate::admin::mfa_policy::{self, PolicyChange};
use crate::admin::organisations::AdminError;
use crate::admin::tokens::{self, NewToken};
use crate::admin::{audit_log, connectors, directory, domains, invitations};
use crate::app::AppState;
use crate::domain::UserId;
use crate::domain::role::Permission;
use crate::domain::session::Session;
use crate::mfa::policy::Decision;
use crate::tokens::TokenKind;

type Outcome<T> = Result<T, AdminError>;

/// Runs a use case off the async threads.
async fn off_thread<T, F>(state: &web::Data<AppState>, f: F) -> Result<Outcome<T>, WebError>
where
    T: Send + 'static,
    F: FnOnce(&AppState) -> Outcome<T> + Send + 'static,
{
    let s = state.clone();
    web::block(move || f(&s)).await.map_err(|e| WebError::Unavailable(e.to_string()))
}

/// A section the caller may not see is left out; anything else that went wrong is an error.
fn optional<T>(r: Outcome<T>) -> Outcome<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(AdminError::Forbidden(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn status_of(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn check_csrf(state: &AppState, session: &Session, presented: &str) -> Result<(), WebError> {
    super::csrf::require_session(&state.csrf_key, session, presented)
}

/// What the page says after a change (known keys only: nothing from the URL is echoed).
fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "The organisation was created. You are its owner.",
        "project_created" => "The project was created.",
        "member_updated" => "The member's role was changed.",
        "member_removed" => "The member was removed, signed out everywhere and their tokens revoked.",
        "role_created" => "The role was created.",
        "mfa_reset" => "The member's second factors were removed. They set up new ones at their next sign-in.",
        "policy_set" => "The two-factor policy was saved.",
        "connector_created" => "The connection was created. Give the identity provider the details shown for it.",
        "connector_deleted" => "The connection was deleted.",
        "token_revoked" => "The token was revoked.",
        "token_policy_set" => "The longest token lifetime was saved. Existing tokens keep theirs.",
        "domain_claimed" => "The domain was added. Publish the TXT record shown for it, then verify.",
        "domain_verified" => "The domain is verified.",
        "domain_routed" => "The domain's routing was saved.",
        "domain_deleted" => "The domain was removed.",
        "invitation_revoked" => "The invitation was revoked.",
        "project_deleted" => "The project was deleted with its clients, tokens, memberships and policy.",
        "client_deleted" => "The client was deleted; what it was issued no longer works.",
        "deleted" => "The organisation was deleted with everything it owned.",
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// What a page shows besides its data: a notice, a refusal, a secret shown once.
#[derive(Default)]
struct Flash {
    notice: Option<&'static str>,
    error: Option<String>,
    secret: Option<String>,
    invitation_url: Option<String>,
    /// A client just registered (or its secret rotated): its id, beside `secret`.
    client_id: Option<String>,
}

impl Flash {
    fn done(q: &DoneQuery) -> Self {
        Self { notice: notice(q.done.as_deref()), ..Default::default() }
    }
    fn refused(e: &AdminError) -> Self {
        Self { error: Some(e.to_string()), ..Default::default() }
    }
}

// ---------------------------------------------------------------- the two-factor gate

/// Holds the session to the organisation's (and project's) requirement: `Some(redirect)` when
/// it must step up or enrol first.
async fn gate(
    state: &web::Data<AppState>,
    session: &Session,
    org: &str,
    project: Option<&str>,
    here: &str,
) -> Result<Option<HttpResponse>, WebError> {
    let (user, amr, org, project) = (session.user_id, session.amr.clone(), org.to_owned(), project.map(str::to_owned));
    let decision = off_thread(state, move |s| {
        let now = s.clock.now_naive();
        s.db.read(|conn| {
            let caller = Caller::User(user);
            let o = directory::get_organisation(conn, caller, &org)?;
            let p = project.map(|p| directory::get_project(conn, caller, &org, &p)).transpose()?;
            Ok(crate::mfa::policy::entering(conn, now, user, &amr, o.id, p.map(|p| p.id))?)
        })
    })
    .await?
    .map_err(super::tokens::admin_to_web)?;
    Ok(match decision {
        Decision::Allow | Decision::Enrol { .. } => None,
        Decision::StepUp { .. } => Some(see_other(&format!("/login?return_to={}", enc(here)))),
        Decision::EnrolNow { .. } => Some(see_other(&format!("/account/mfa?return_to={}", enc(here)))),
        Decision::Unsatisfiable => {
            return Err(WebError::Forbidden(
                "The organisation's and the project's two-factor policies allow no common method.",
            ));
        }
    })
}

macro_rules! gated {
    ($state:expr, $session:expr, $org:expr, $project:expr, $here:expr) => {
        if let Some(redirect) = gate($state, $session, $org, $project, $here).await? {
            return Ok(redirect);
        }
    };
}

// ---------------------------------------------------------------- /admin

async fn render_home(
    state: &web::Data<AppState>,
    views: &Views,
    session: &Session,
    flash: Flash,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let user = session.user_id;
    let orgs = off_thread(state, move |s| s.db.read(|conn| directory::list_organisations(conn, Caller::User(user))))
        .await?
        .map_err(super::tokens::admin_to_web)?;
    let body = views.render(
        "console.html",
        context! {
            product_name => &state.config.product_name,
            signed_in => true,
            csrf_token => super::csrf::for_session(&state.csrf_key, session),
            organisations => orgs,
            notice => flash.notice,
            error => flash.error,
        },
    )?;
    Ok(html(status, body))
}

/// `GET /admin`: the organisations the user belongs to, and a form to create one.
pub async fn home(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, WebError> {
    render_home(&state, &views, &session, Flash::done(&q), StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct NameForm {
    csrf_token: String,
    name: String,
    #[serde(default)]
    slug: String,
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

/// `POST /admin/organisations`.
pub async fn create_organisation(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    form: web::Form<NameForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let (user, f) = (session.user_id, form.into_inner());
    let r = off_thread(&state, move |s| {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            directory::create_organisation_as(conn, &s.auditor, now, Caller::User(user), &f.name, non_empty(&f.slug))
        })
    })
    .await?;
    match r {
        Ok(org) => Ok(see_other(&format!("/admin/o/{}?done=created", org.slug.as_str()))),
        Err(AdminError::Storage(e)) => Err(e.into()),
        Err(e) => render_home(&state, &views, &session, Flash::refused(&e), status_of(&e)).await,
    }
}

// ---------------------------------------------------------------- /admin/o/{org}

fn connector_view(state: &AppState, c: &connectors::ConnectorInfo) -> serde_json::Value {
    let kind = c.settings.get("type").and_then(|t| t.as_str()).unwrap_or("").to_owned();
    let base = state.config.base_url().trim_end_matches('/').to_owned();
    let (metadata, acs) = if kind == "saml" {
        (Some(format!("{base}/saml/{}/metadata", c.id)), Some(format!("{base}/saml/{}/acs", c.id)))
    } else {
        (None, None)
    };
    let callback = (kind != "saml").then(|| format!("{base}/callback/{}", c.id));
    json!({
        "id": c.id,
        "name": c.settings.get("name"),
        "kind": kind,
        "preset": c.settings.get("preset"),
        "mappings": c.settings.get("role_mappings"),
        "metadata_url": metadata,
        "acs_url": acs,
        "callback_url": callback,
        "created_at": crate::domain::timestamp::display(c.created_at),
    })
}

async fn render_org(
    state: &web::Data<AppState>,
    views: &Views,
    session: &Session,
    org: &str,
    flash: Flash,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let (user, key) = (session.user_id, org.to_owned());
    let data = off_thread(state, move |s| {
        s.db.read(|conn| {
            let c = Caller::User(user);
            let org = directory::get_organisation(conn, c, &key)?;
            let projects = optional(directory::list_projects(conn, c, &key))?;
            let members = optional(directory::list_members(conn, c, &key, None))?;
            let roles = optional(directory::list_roles(conn, c, &key))?;
            let policy = optional(mfa_policy::list_effective(conn, c, &key))?;
            let conns = optional(connectors::list_of(conn, c, &key))?;
            let toks = optional(tokens::list(conn, c, &key))?;
            let audit = optional(audit_log::list(conn, c, &key, None, None, Some(10)))?;
            let doms = optional(domains::list(conn, c, &key))?;
            let invites = optional(invitations::list(conn, s.clock.now_naive(), c, &key))?;
            let can: Vec<String> = crate::admin::caller::permissions(conn, c, org.id, None)?
                .into_iter()
                .map(crate::tokens::permission_name)
                .collect();
            Ok((org, projects, members, roles, policy, conns, toks, audit, can, doms, invites))
        })
    })
    .await?
    .map_err(super::tokens::admin_to_web)?;
    let (org, projects, members, roles, policy, conns, toks, audit, can, doms, invites) = data;
    let policy = policy.map(|(own, per_project)| {
        let projects: Vec<_> = per_project
            .iter()
            .map(|p| json!({"slug": p.project.slug.as_str(), "own": policy_view(&p.own), "effective": requirement_view(&p.effective)}))
            .collect();
        json!({"organisation": policy_view(&own), "projects": projects})
    });
    let conns: Option<Vec<_>> = conns.map(|cs| cs.iter().map(|c| connector_view(state, c)).collect());
    let now = state.clock.now_naive();
    let toks: Option<Vec<_>> = toks.map(|ts| {
        ts.iter()
            .filter(|t| t.kind == TokenKind::Organisation)
            .map(|t| {
                json!({"id": t.id.to_string(), "name": t.name, "scopes": t.scopes, "state": t.state(now),
                            "expires_at": crate::domain::timestamp::display(t.expires_at)})
            })
            .collect()
    });
    let body = views.render(
        "console_org.html",
        context! {
            product_name => &state.config.product_name,
            signed_in => true,
            csrf_token => super::csrf::for_session(&state.csrf_key, session),
            org => org,
            projects => projects,
            members => members.map(|ms| ms.iter().map(|m| json!({
                "user_id": m.user_id.to_string(), "email": m.email, "display_name": m.display_name,
                "role": m.role, "source": m.source, "you": m.user_id == session.user_id,
            })).collect::<Vec<_>>()),
            roles => roles,
            policy => policy,
            connectors => conns,
            scim_tokens => toks,
            audit => audit.map(|a| a.events),
            can => can,
            public_url => state.config.base_url().trim_end_matches('/'),
            notice => flash.notice,
            error => flash.error,
            secret => flash.secret,
            invitation_url => flash.invitation_url,
            domains => doms,
            invitations => invites.map(|is| is.into_iter().filter(|i| i.status == "pending").collect::<Vec<_>>()),
        },
    )?;
    Ok(html(status, body))
}

/// `GET /admin/o/{org}`: the organisation on one page.
pub async fn organisation(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, WebError> {
    let org = org.into_inner();
    gated!(&state, &session, &org, None, &format!("/admin/o/{org}"));
    render_org(&state, &views, &session, &org, Flash::done(&q), StatusCode::OK).await
}

/// A form's change to an organisation: checks the CSRF token and the two-factor gate, runs the
/// use case, then sends the browser back to the page with `done`, or shows the refusal there.
async fn org_change<F>(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    session: Session,
    org: String,
    csrf_token: &str,
    done: &str,
    f: F,
) -> Result<HttpResponse, WebError>
where
    F: FnOnce(&AppState, Caller, &str) -> Outcome<()> + Send + 'static,
{
    check_csrf(&state, &session, csrf_token)?;
    let here = format!("/admin/o/{org}");
    gated!(&state, &session, &org, None, &here);
    let (user, key) = (session.user_id, org.clone());
    match off_thread(&state, move |s| f(s, Caller::User(user), &key)).await? {
        Ok(()) => Ok(see_other(&format!("{here}?done={done}"))),
        Err(AdminError::Storage(e)) => Err(e.into()),
        Err(AdminError::NotFound("organisation")) => Err(WebError::NotFound),
        Err(e) => render_org(&state, &views, &session, &org, Flash::refused(&e), status_of(&e)).await,
    }
}

/// `POST /admin/o/{org}/projects`.
pub async fn create_project(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<NameForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "project_created", move |s, c, org| {
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::create_project_as(conn, &s.auditor, now, c, org, &f.name, non_empty(&f.slug)))
            .map(|_| ())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct MemberForm {
    csrf_token: String,
    user: String,
    #[serde(default)]
    role: String,
}

fn member(raw: &str) -> Outcome<UserId> {
    raw.parse().map_err(|_| AdminError::NotFound("user"))
}

/// `POST /admin/o/{org}/members`: a member's role.
pub async fn set_member(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<MemberForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "member_updated", move |s, c, org| {
        let user = member(&f.user)?;
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::set_member(conn, &s.auditor, now, c, org, None, user, &f.role)).map(|_| ())
    })
    .await
}

/// `POST /admin/o/{org}/members/remove`: removes a member, cut off at once.
pub async fn remove_member(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<MemberForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "member_removed", move |s, c, org| {
        let user = member(&f.user)?;
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::remove_member(conn, &s.auditor, now, c, org, None, user))
    })
    .await
}

/// `POST /admin/o/{org}/members/reset-mfa`: removes a member's second factors, for someone who
/// lost their devices. Needs `members_manage` and a session that itself used a second factor.
pub async fn reset_member_mfa(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<MemberForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    let acting = session.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "mfa_reset", move |s, c, org| {
        let user = member(&f.user)?;
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            // A member of this organisation, as the caller sees it; then the reset's own rules.
            if !directory::list_members(conn, c, org, None)?.iter().any(|m| m.user_id == user) {
                return Err(AdminError::NotFound("user"));
            }
            crate::admin::mfa_reset::reset_user_factors(
                conn,
                &s.auditor,
                now,
                crate::admin::mfa_reset::ResetCaller::Admin(&acting),
                user,
            )
        })
        .map(|_| ())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    csrf_token: String,
    name: String,
    /// Permission names, comma- or space-separated.
    permissions: String,
}

/// `POST /admin/o/{org}/roles`: a custom role.
pub async fn create_role(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "role_created", move |s, c, org| {
        let perms: Vec<String> = f.permissions.split([',', ' ']).filter(|p| !p.is_empty()).map(str::to_owned).collect();
        let now = s.clock.now_naive();
        s.db.write(|conn| directory::create_role(conn, &s.auditor, now, c, org, &f.name, &perms)).map(|_| ())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct PolicyForm {
    csrf_token: String,
    /// `off` or `required`.
    requirement: String,
    method_totp: Option<String>,
    method_webauthn: Option<String>,
    #[serde(default)]
    grace_days: String,
}

impl PolicyForm {
    fn change(&self) -> Outcome<(bool, Vec<String>, Option<i64>)> {
        let required = match self.requirement.as_str() {
            "required" => true,
            "off" => false,
            _ => return Err(AdminError::Invalid("the requirement is off or required".into())),
        };
        let methods: Vec<String> = [("totp", &self.method_totp), ("webauthn", &self.method_webauthn)]
            .iter()
            .filter(|(_, on)| on.is_some())
            .map(|(m, _)| (*m).to_owned())
            .collect();
        let grace = match non_empty(&self.grace_days) {
            None => None,
            Some(d) => {
                Some(d.parse::<i64>().map_err(|_| AdminError::Invalid("the grace period is a number of days".into()))?)
            }
        };
        Ok((required, methods, grace))
    }
}

/// `POST /admin/o/{org}/mfa-policy`.
pub async fn set_org_policy(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<PolicyForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "policy_set", move |s, c, org| {
        let (required, methods, grace_days) = f.change()?;
        let now = s.clock.now_naive();
        let change = PolicyChange { required, methods: &methods, grace_days };
        s.db.write(|conn| mfa_policy::set_organisation_policy(conn, &s.auditor, now, c, org, change)).map(|_| ())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct ConnectorForm {
    csrf_token: String,
    /// `saml` or `oidc`.
    kind: String,
    id: String,
    name: String,
    #[serde(default)]
    preset: String,
    #[serde(default)]
    idp_metadata: String,
    #[serde(default)]
    idp_entity_id: String,
    #[serde(default)]
    sso_url: String,
    #[serde(default)]
    idp_certificate: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    /// One rule a line: `group = role`, or `group = project/role` for a project role.
    #[serde(default)]
    role_mappings: String,
}

impl ConnectorForm {
    /// The form as a `[[connectors]]` table, as the API takes it.
    fn mappings(&self, organisation: &str) -> Outcome<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for line in self.role_mappings.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad =
                || AdminError::Invalid(format!("a mapping is `group = role` or `group = project/role`, not {line:?}"));
            let (group, target) = line.rsplit_once('=').ok_or_else(bad)?;
            let (group, target) = (group.trim(), target.trim());
            if group.is_empty() || target.is_empty() {
                return Err(bad());
            }
            let (project, role) = match target.split_once('/') {
                Some((p, r)) => (Some(p.trim()), r.trim()),
                None => (None, target),
            };
            out.push(json!({"group": group, "organisation": organisation, "project": project, "role": role}));
        }
        Ok(out)
    }

    fn config(&self, organisation: &str) -> Outcome<crate::config::ConnectorConfig> {
        let mut v = serde_json::Map::new();
        let mappings = self.mappings(organisation)?;
        if !mappings.is_empty() {
            v.insert("role_mappings".into(), serde_json::Value::Array(mappings));
        }
        v.insert("id".into(), json!(self.id.trim()));
        v.insert("name".into(), json!(self.name.trim()));
        let fields: [(&str, &str); 5] = match self.kind.as_str() {
            "saml" => [
                ("preset", &self.preset),
                ("idp_metadata", &self.idp_metadata),
                ("idp_entity_id", &self.idp_entity_id),
                ("sso_url", &self.sso_url),
                ("idp_certificate", &self.idp_certificate),
            ],
            "oidc" => [
                ("issuer", &self.issuer),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("", ""),
                ("", ""),
            ],
            _ => return Err(AdminError::Invalid("the connection type is saml or oidc".into())),
        };
        v.insert("type".into(), json!(self.kind));
        for (key, val) in fields {
            if let (false, Some(t)) = (key.is_empty(), non_empty(val)) {
                v.insert(key.into(), json!(t));
            }
        }
        let v = serde_json::Value::Object(v);
        serde_json::from_value(v).map_err(|e| AdminError::Invalid(format!("the connection is not complete: {e}")))
    }
}

/// `POST /admin/o/{org}/connectors`: a SAML or OIDC connection.
pub async fn create_connector(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<ConnectorForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "connector_created", move |s, c, org| {
        let slug = s.db.read(|conn| directory::get_organisation(conn, c, org))?.slug;
        let config = f.config(slug.as_str())?;
        let now = s.clock.now_naive();
        let taken = |id: &str| s.connectors.is_fixed(id);
        s.db.write(|conn| connectors::create_as(conn, &s.keys, &s.auditor, now, c, org, &config, &taken)).map(|_| ())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct IdForm {
    csrf_token: String,
    id: String,
}

/// `POST /admin/o/{org}/connectors/delete`.
pub async fn delete_connector(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<IdForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "connector_deleted", move |s, c, org| {
        let now = s.clock.now_naive();
        s.db.write(|conn| connectors::delete_as(conn, &s.auditor, now, c, org, &f.id))
    })
    .await
}

/// `POST /admin/o/{org}/tokens/revoke`: revokes one of the organisation's tokens.
pub async fn revoke_token(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<IdForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "token_revoked", move |s, c, org| {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            // Only a token of this organisation, whatever else the caller may manage.
            let key = directory::get_organisation(conn, c, org)?.id;
            if !tokens::list(conn, c, org)?.iter().any(|t| t.id.to_string() == f.id && t.organisation_id == key) {
                return Err(AdminError::NotFound("token"));
            }
            tokens::revoke(conn, &s.auditor, now, c, &f.id)
        })
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct TokenPolicyForm {
    csrf_token: String,
    max_lifetime_days: String,
}

/// `POST /admin/o/{org}/token-policy`: the longest lifetime the organisation's tokens may have.
pub async fn set_token_policy(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<TokenPolicyForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "token_policy_set", move |s, c, org| {
        let days = f
            .max_lifetime_days
            .trim()
            .parse::<i64>()
            .map_err(|_| AdminError::Invalid("the longest lifetime is a number of days".into()))?;
        let now = s.clock.now_naive();
        s.db.write(|conn| tokens::set_max_lifetime(conn, &s.auditor, now, c, org, days))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct ScimTokenForm {
    csrf_token: String,
    name: String,
}

/// `POST /admin/o/{org}/scim-token`: an organisation token with `scim_provision`, for the
/// identity provider's SCIM client; shown once, on the page.
pub async fn create_scim_token(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<ScimTokenForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let org = org.into_inner();
    gated!(&state, &session, &org, None, &format!("/admin/o/{org}"));
    let (user, key, name) = (session.user_id, org.clone(), form.name.clone());
    let r = off_thread(&state, move |s| {
        let now = s.clock.now_naive();
        let new = NewToken {
            kind: TokenKind::Organisation,
            name: &name,
            organisation: &key,
            project: None,
            user: None,
            scopes: [Permission::ScimProvision].into_iter().collect(),
            lifetime_days: None,
        };
        s.db.write(|conn| tokens::create(conn, &s.auditor, now, Caller::User(user), &new))
    })
    .await?;
    let (flash, status) = match r {
        Ok(issued) => (Flash { secret: Some(issued.secret), ..Default::default() }, StatusCode::OK),
        Err(AdminError::Storage(e)) => return Err(e.into()),
        Err(e) => {
            let status = status_of(&e);
            (Flash::refused(&e), status)
        }
    };
    render_org(&state, &views, &session, &org, flash, status).await
}

#[derive(Debug, Deserialize)]
pub struct ConfirmForm {
    csrf_token: String,
    confirm: String,
}

/// `POST /admin/o/{org}/delete`: deletes the organisation, given its slug typed again.
pub async fn delete_organisation(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let org = org.into_inner();
    gated!(&state, &session, &org, None, &format!("/admin/o/{org}"));
    let (user, key, confirm) = (session.user_id, org.clone(), form.confirm.clone());
    let r = off_thread(&state, move |s| {
        let now = s.clock.now_naive();
        let r = s
            .db
            .write(|conn| directory::delete_organisation(conn, &s.auditor, now, Caller::User(user), &key, &confirm));
        if r.is_ok() {
            super::clients::reloaded(s);
        }
        r
    })
    .await?;
    match r {
        Ok(()) => Ok(see_other("/admin?done=deleted")),
        Err(AdminError::Storage(e)) => Err(e.into()),
        Err(e) => render_org(&state, &views, &session, &org, Flash::refused(&e), status_of(&e)).await,
    }
}

// ---------------------------------------------------------------- domains and invitations

#[derive(Debug, Deserialize)]
pub struct DomainForm {
    csrf_token: String,
    domain: String,
}

/// `POST /admin/o/{org}/domains`: claims a domain, to verify by a DNS TXT record.
pub async fn claim_domain(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<DomainForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "domain_claimed", move |s, c, org| {
        let now = s.clock.now_naive();
        s.db.write(|conn| domains::claim(conn, &s.auditor, now, c, org, &f.domain)).map(|_| ())
    })
    .await
}

/// `POST /admin/o/{org}/domains/verify`: looks the TXT record up now.
pub async fn verify_domain(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<IdForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let org = org.into_inner();
    let here = format!("/admin/o/{org}");
    gated!(&state, &session, &org, None, &here);
    let (user, o, id) = (session.user_id, org.clone(), form.id.clone());
    // No database connection is held while DNS answers.
    let challenge =
        off_thread(&state, move |s| s.db.read(|conn| domains::challenge(conn, Caller::User(user), &o, &id))).await?;
    let r = match challenge {
        Err(e) => Err(e),
        Ok(ch) => {
            let found = if ch.verified {
                Ok(Vec::new())
            } else {
                crate::admin::dns::TxtResolver::new(state.config.dns_resolver).txt(&ch.txt_name).await
            };
            let (o, id) = (org.clone(), form.id.clone());
            off_thread(&state, move |s| {
                let now = s.clock.now_naive();
                s.db.write(|conn| {
                    domains::complete_verification(conn, &s.auditor, now, Caller::User(user), &o, &id, found)
                })
            })
            .await?
            .map(|_| ())
        }
    };
    match r {
        Ok(()) => Ok(see_other(&format!("{here}?done=domain_verified"))),
        Err(AdminError::Storage(e)) => Err(e.into()),
        Err(AdminError::NotFound("organisation")) => Err(WebError::NotFound),
        Err(e) => render_org(&state, &views, &session, &org, Flash::refused(&e), status_of(&e)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct RouteForm {
    csrf_token: String,
    id: String,
    /// A connector id; empty for none.
    #[serde(default)]
    connector: String,
}

/// `POST /admin/o/{org}/domains/route`: sends the domain's e-mails to a connector at login.
pub async fn route_domain(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<RouteForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "domain_routed", move |s, c, org| {
        let now = s.clock.now_naive();
        s.db.write(|conn| domains::route(conn, &s.auditor, now, c, org, &f.id, non_empty(&f.connector))).map(|_| ())
    })
    .await
}

/// `POST /admin/o/{org}/domains/delete`.
pub async fn delete_domain(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<IdForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "domain_deleted", move |s, c, org| {
        let now = s.clock.now_naive();
        s.db.write(|conn| domains::delete(conn, &s.auditor, now, c, org, &f.id))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    csrf_token: String,
    email: String,
    role: String,
}

/// `POST /admin/o/{org}/invitations`: the accept URL is shown once, on the page.
pub async fn invite(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<InviteForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let org = org.into_inner();
    gated!(&state, &session, &org, None, &format!("/admin/o/{org}"));
    let (user, key, f) = (session.user_id, org.clone(), form.into_inner());
    let r = off_thread(&state, move |s| {
        let now = s.clock.now_naive();
        let base = s.config.base_url().trim_end_matches('/').to_owned();
        s.db.write(|conn| {
            invitations::create(conn, &s.auditor, now, Caller::User(user), &key, &f.email, &f.role, &base)
        })
    })
    .await?;
    let (flash, status) = match r {
        Ok(created) => (Flash { invitation_url: Some(created.accept_url), ..Default::default() }, StatusCode::OK),
        Err(AdminError::Storage(e)) => return Err(e.into()),
        Err(AdminError::NotFound("organisation")) => return Err(WebError::NotFound),
        Err(e) => {
            let status = status_of(&e);
            (Flash::refused(&e), status)
        }
    };
    render_org(&state, &views, &session, &org, flash, status).await
}

/// `POST /admin/o/{org}/invitations/revoke`.
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    form: web::Form<IdForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    org_change(state, views, session, org.into_inner(), &csrf, "invitation_revoked", move |s, c, org| {
        let now = s.clock.now_naive();
        s.db.write(|conn| invitations::revoke(conn, &s.auditor, now, c, org, &f.id))
    })
    .await
}

// ---------------------------------------------------------------- projects

async fn render_project(
    state: &web::Data<AppState>,
    views: &Views,
    session: &Session,
    org: &str,
    project: &str,
    flash: Flash,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let (user, o, p) = (session.user_id, org.to_owned(), project.to_owned());
    let data = off_thread(state, move |s| {
        let now = s.clock.now_naive();
        s.db.read(|conn| {
            let c = Caller::User(user);
            let org = directory::get_organisation(conn, c, &o)?;
            let project = directory::get_project(conn, c, &o, &p)?;
            let members = optional(directory::list_members(conn, c, &o, Some(&p)))?;
            let policy = optional(mfa_policy::get_effective(conn, now, c, &o, Some(&p), None))?;
            let clients = optional(crate::admin::clients::list(conn, c, &o, &p))?;
            let toks = optional(tokens::list(conn, c, &o))?.map(|ts| {
                ts.into_iter()
                    .filter(|t| t.kind == TokenKind::Service && t.project_id == Some(project.id))
                    .map(|t| {
                        json!({"id": t.id.to_string(), "name": t.name, "scopes": t.scopes, "state": t.state(now),
                                    "expires_at": crate::domain::timestamp::display(t.expires_at)})
                    })
                    .collect::<Vec<_>>()
            });
            let can: Vec<String> = crate::admin::caller::permissions(conn, c, org.id, None)?
                .into_iter()
                .map(crate::tokens::permission_name)
                .collect();
            Ok((org, project, members, policy, clients, toks, can))
        })
    })
    .await?
    .map_err(super::tokens::admin_to_web)?;
    let (org, project, members, policy, clients, toks, can) = data;
    let policy = policy.map(|e| {
        json!({
            "organisation": policy_view(&e.organisation),
            "own": e.project.as_ref().map(policy_view),
            "effective": requirement_view(&e.effective),
        })
    });
    let body = views.render(
        "console_project.html",
        context! {
            product_name => &state.config.product_name,
            signed_in => true,
            csrf_token => super::csrf::for_session(&state.csrf_key, session),
            org => org,
            project => project,
            members => members,
            policy => policy,
            clients => clients,
            service_tokens => toks,
            can => can,
            notice => flash.notice,
            error => flash.error,
            secret => flash.secret,
            client_id => flash.client_id,
        },
    )?;
    Ok(html(status, body))
}

/// `GET /admin/o/{org}/p/{project}`.
pub async fn project(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, WebError> {
    let (org, project) = path.into_inner();
    gated!(&state, &session, &org, Some(&project), &format!("/admin/o/{org}/p/{project}"));
    render_project(&state, &views, &session, &org, &project, Flash::done(&q), StatusCode::OK).await
}

/// `POST /admin/o/{org}/p/{project}/mfa-policy`.
pub async fn set_project_policy(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<PolicyForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let (org, project) = path.into_inner();
    let here = format!("/admin/o/{org}/p/{project}");
    gated!(&state, &session, &org, Some(&project), &here);
    let (user, o, p, f) = (session.user_id, org.clone(), project.clone(), form.into_inner());
    let r = off_thread(&state, move |s| {
        let (required, methods, grace_days) = f.change()?;
        let now = s.clock.now_naive();
        let change = PolicyChange { required, methods: &methods, grace_days };
        s.db.write(|conn| mfa_policy::set_project_policy(conn, &s.auditor, now, Caller::User(user), &o, &p, change))
            .map(|_| ())
    })
    .await?;
    match r {
        Ok(()) => Ok(see_other(&format!("{here}?done=policy_set"))),
        Err(AdminError::Storage(e)) => Err(e.into()),
        Err(e) => render_project(&state, &views, &session, &org, &project, Flash::refused(&e), status_of(&e)).await,
    }
}

/// `POST /admin/o/{org}/p/{project}/delete`: deletes the project, given its slug typed again.
pub async fn delete_project(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    check_csrf(&state, &session, &form.csrf_token)?;
    let (org, project) = path.into_inner();
    gated!(&state, &session, &org, Some(&project), &format!("/admin/o/{org}/p/{project}"));
    let (user, o, p, confirm) = (session.user_id, org.clone(), project.clone(), form.confirm.clone());
    let r = off_thread(&state, move |s| {
        let now = s.clock.now_naive();
        let r =
            s.db.write(|conn| directory::delete_project(conn, &s.auditor, now, Caller::User(user), &o, &p, &confirm));
        if r.is_ok() {
            super::clients::reloaded(s);
        }
        r
    })
    .await?;
    match r {
        Ok(()) => Ok(see_other(&format!("/admin/o/{org}?done=project_deleted"))),
        Err(AdminError::Storage(e)) => Err(e.into()),
        Err(e) => render_project(&state, &views, &session, &org, &project, Flash::refused(&e), status_of(&e)).await,
    }
}

/// A form's change in a project, as [`org_change`] for an organisation: `Some(flash)` from the
/// use case re-renders the page with it (a secret shown once), `None` sends the browser back.
async fn project_change<F>(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    session: Session,
    (org, project): (String, String),
    csrf_token: &str,
    done: &str,
    f: F,
) -> Result<HttpResponse, WebError>
where
    F: FnOnce(&AppState, Caller, &str, &str) -> Outcome<Option<Flash>> + Send + 'static,
{
    check_csrf(&state, &session, csrf_token)?;
    let here = format!("/admin/o/{org}/p/{project}");
    gated!(&state, &session, &org, Some(&project), &here);
    let (user, o, p) = (session.user_id, org.clone(), project.clone());
    match off_thread(&state, move |s| f(s, Caller::User(user), &o, &p)).await? {
        Ok(None) => Ok(see_other(&format!("{here}?done={done}"))),
        Ok(Some(flash)) => render_project(&state, &views, &session, &org, &project, flash, StatusCode::OK).await,
        Err(AdminError::Storage(e)) => Err(e.into()),
        Err(e) => render_project(&state, &views, &session, &org, &project, Flash::refused(&e), status_of(&e)).await,
    }
}

fn lines(raw: &str) -> Vec<String> {
    raw.split_whitespace().map(str::to_owned).collect()
}

#[derive(Debug, Deserialize)]
pub struct ClientForm {
    csrf_token: String,
    name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    public: Option<String>,
    first_party: Option<String>,
}

/// `POST /admin/o/{org}/p/{project}/clients`: registers an OpenID Connect client; its secret
/// is shown once.
pub async fn register_client(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<ClientForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    project_change(state, views, session, path.into_inner(), &csrf, "", move |s, c, org, project| {
        let reg = crate::admin::clients::Registration {
            name: f.name.trim().to_owned(),
            redirect_uris: lines(&f.redirect_uris),
            post_logout_redirect_uris: lines(&f.post_logout_redirect_uris),
            scopes: None,
            public: f.public.is_some(),
            first_party: f.first_party.is_some(),
            require_pkce: None,
            token_endpoint_auth_method: None,
            id_token_signed_response_alg: None,
        };
        let now = s.clock.now_naive();
        let issued =
            s.db.write(|conn| crate::admin::clients::register(conn, &s.auditor, now, c, org, project, &reg))?;
        super::clients::reloaded(s);
        Ok(Some(Flash { client_id: Some(issued.client.client_id), secret: issued.secret, ..Default::default() }))
    })
    .await
}

/// The client, if it is one of this project's: anything else is not found.
fn project_client(
    conn: &mut crate::storage::DbConnection,
    c: Caller,
    org: &str,
    project: &str,
    id: &str,
) -> Outcome<()> {
    if crate::admin::clients::list(conn, c, org, project)?.iter().any(|cl| cl.client_id == id) {
        Ok(())
    } else {
        Err(AdminError::NotFound("client"))
    }
}

/// `POST /admin/o/{org}/p/{project}/clients/delete`.
pub async fn delete_client(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<IdForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    project_change(state, views, session, path.into_inner(), &csrf, "client_deleted", move |s, c, org, project| {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            project_client(conn, c, org, project, &f.id)?;
            crate::admin::clients::delete(conn, &s.auditor, now, c, &f.id)
        })?;
        super::clients::reloaded(s);
        Ok(None)
    })
    .await
}

/// `POST /admin/o/{org}/p/{project}/clients/secret`: a new secret, shown once; the old one
/// stops working.
pub async fn rotate_client_secret(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<IdForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    project_change(state, views, session, path.into_inner(), &csrf, "", move |s, c, org, project| {
        let now = s.clock.now_naive();
        let issued = s.db.write(|conn| {
            project_client(conn, c, org, project, &f.id)?;
            crate::admin::clients::rotate_secret(conn, &s.auditor, now, c, &f.id)
        })?;
        super::clients::reloaded(s);
        Ok(Some(Flash { client_id: Some(issued.client.client_id), secret: issued.secret, ..Default::default() }))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct ServiceTokenForm {
    csrf_token: String,
    name: String,
    /// Permission names, comma- or space-separated.
    scopes: String,
    #[serde(default)]
    days: String,
}

/// `POST /admin/o/{org}/p/{project}/tokens`: a service-account token, owned by the project.
pub async fn create_service_token(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<ServiceTokenForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    project_change(state, views, session, path.into_inner(), &csrf, "", move |s, c, org, project| {
        let scopes = super::tokens::scopes(&f.scopes)?;
        let days = match non_empty(&f.days) {
            None => None,
            Some(d) => {
                Some(d.parse::<i64>().map_err(|_| AdminError::Invalid("the lifetime is a number of days".into()))?)
            }
        };
        let new = NewToken {
            kind: TokenKind::Service,
            name: &f.name,
            organisation: org,
            project: Some(project),
            user: None,
            scopes,
            lifetime_days: days,
        };
        let now = s.clock.now_naive();
        let issued = s.db.write(|conn| tokens::create(conn, &s.auditor, now, c, &new))?;
        Ok(Some(Flash { secret: Some(issued.secret), ..Default::default() }))
    })
    .await
}

#[derive(Debug, Deserialize)]
pub struct TokenActionForm {
    csrf_token: String,
    id: String,
    /// `rotate` or `revoke`.
    action: String,
    #[serde(default)]
    grace_hours: String,
}

/// `POST /admin/o/{org}/p/{project}/tokens/change`: rotates (the old secret lives on for the
/// grace period) or revokes one of the project's service tokens.
pub async fn change_service_token(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    path: web::Path<(String, String)>,
    form: web::Form<TokenActionForm>,
) -> Result<HttpResponse, WebError> {
    let f = form.into_inner();
    let csrf = f.csrf_token.clone();
    project_change(state, views, session, path.into_inner(), &csrf, "token_revoked", move |s, c, org, project| {
        let now = s.clock.now_naive();
        s.db.write(|conn| {
            let pid = directory::get_project(conn, c, org, project)?.id;
            if !tokens::list(conn, c, org)?.iter().any(|t| t.id.to_string() == f.id && t.project_id == Some(pid)) {
                return Err(AdminError::NotFound("token"));
            }
            match f.action.as_str() {
                "revoke" => tokens::revoke(conn, &s.auditor, now, c, &f.id).map(|()| None),
                "rotate" => {
                    let hours = non_empty(&f.grace_hours).unwrap_or("0");
                    let hours = hours
                        .parse::<i64>()
                        .map_err(|_| AdminError::Invalid("the grace period is a number of hours".into()))?;
                    let issued = tokens::rotate(conn, &s.auditor, now, c, &f.id, hours)?;
                    Ok(Some(Flash { secret: Some(issued.secret), ..Default::default() }))
                }
                _ => Err(AdminError::Invalid("the action is rotate or revoke".into())),
            }
        })
    })
    .await
}

// ---------------------------------------------------------------- the audit log

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    cursor: Option<String>,
}

/// `GET /admin/o/{org}/audit`: the organisation's audit log, newest first, 50 a page.
pub async fn audit(
    state: web::Data<AppState>,
    views: web::Data<Views>,
    SignedIn(session): SignedIn,
    org: web::Path<String>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, WebError> {
    let org = org.into_inner();
    gated!(&state, &session, &org, None, &format!("/admin/o/{org}/audit"));
    let (user, key, q) = (session.user_id, org.clone(), q.into_inner());
    let action = q.action.as_deref().and_then(non_empty).map(str::to_owned);
    let (a, cursor) = (action.clone(), q.cursor.clone());
    let (org, page) = off_thread(&state, move |s| {
        s.db.read(|conn| {
            let c = Caller::User(user);
            let org = directory::get_organisation(conn, c, &key)?;
            let page = audit_log::list(conn, c, &key, a.as_deref(), cursor.as_deref(), Some(50));
            Ok((org, page))
        })
    })
    .await?
    .map_err(super::tokens::admin_to_web)?;
    let (page, error) = match page {
        Ok(page) => (Some(page), None),
        Err(AdminError::Invalid(why)) => (None, Some(why)),
        Err(e) => return Err(super::tokens::admin_to_web(e)),
    };
    let older = page.as_ref().and_then(|p| p.next_cursor.as_ref()).map(|c| {
        let mut link = format!("/admin/o/{}/audit?cursor={}", org.slug.as_str(), enc(c));
        if let Some(a) = &action {
            link.push_str(&format!("&action={}", enc(a)));
        }
        link
    });
    let body = views.render(
        "console_audit.html",
        context! {
            product_name => &state.config.product_name,
            signed_in => true,
            csrf_token => super::csrf::for_session(&state.csrf_key, &session),
            org => org,
            events => page.map(|p| p.events),
            action => action,
            older => older,
            error => error,
        },
    )?;
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok(html(status, body))
}
