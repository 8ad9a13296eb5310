//! SCIM 2.0 over HTTP at `/scim/v2` (RFC 7644): authenticate the organisation token, parse
//! the body and the query, call `scim::service` in one transaction, answer
//! `application/scim+json`. Every refusal, 401 and 413 included, is a SCIM Error body.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use crate::app::AppState;
use crate::audit::Actor;
use crate::connector_config::RoleMapping;
use crate::domain::role::Permission;
use crate::domain::{ApiTokenId, OrganisationId};
use crate::scim::error::error_body;
use crate::scim::schema::{self, Kind};
use crate::scim::service::{self, Query, Scope};
use crate::scim::{ScimError, ScimType};
use crate::storage::DbConnection;
use crate::storage::organisations::OrganisationRepository;
use crate::tokens::{TokenError, TokenKind};

const CONTENT_TYPE: &str = "application/scim+json";

fn respond(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, CONTENT_TYPE))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.to_string())
}

fn refuse(status: StatusCode, scim_type: Option<ScimType>, detail: &str) -> HttpResponse {
    respond(status, &error_body(status.as_u16(), scim_type.map(ScimType::as_str), detail))
}

fn scim_error(e: &ScimError) -> HttpResponse {
    if let ScimError::Storage(inner) = e {
        tracing::error!(error = %inner, "scim: storage failure");
    }
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, &e.body())
}

/// The 413 the body limit answers on SCIM paths.
pub fn too_large() -> HttpResponse {
    refuse(StatusCode::PAYLOAD_TOO_LARGE, None, "The request is too large.")
}

fn unauthorized() -> HttpResponse {
    let mut r = refuse(
        StatusCode::UNAUTHORIZED,
        None,
        "Authenticate with an organisation token carrying scim_provision, as a Bearer token.",
    );
    r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"idp SCIM\""));
    r
}

/// The organisation (and token) an organisation token with `scim_provision` speaks for.
async fn organisation(
    req: &HttpRequest,
    state: &web::Data<AppState>,
) -> Result<(OrganisationId, ApiTokenId), HttpResponse> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|a| a.to_str().ok())
        .and_then(|a| a.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).and(a.get(7..)))
        .map(|t| t.trim().to_owned());
    let Some(presented) = bearer else { return Err(unauthorized()) };
    let s = state.clone();
    let now = state.clock.now_naive();
    match web::block(move || s.db.read(|conn| s.tokens.validate(conn, &presented, now))).await {
        Ok(Ok(hit)) => {
            let p = &hit.principal;
            if p.kind == TokenKind::Organisation && p.allows(Permission::ScimProvision) {
                if hit.touch {
                    super::oidc::record_token_use(state, req, p);
                }
                Ok((p.organisation_id, p.token_id))
            } else {
                Err(refuse(StatusCode::FORBIDDEN, None, "The token is not an organisation token with scim_provision."))
            }
        }
        Ok(Err(TokenError::Storage(e))) => Err(scim_error(&ScimError::Storage(e))),
        Err(_) => Err(scim_error(&ScimError::Storage(crate::storage::StorageError::Unavailable("blocked".into())))),
        Ok(Err(_)) => Err(unauthorized()),
    }
}

fn base(state: &AppState) -> String {
    format!("{}/scim/v2", state.config.base_url())
}

/// Authenticates, then runs `f` in one transaction (a write one when `write`).
async fn run<F>(req: &HttpRequest, state: &web::Data<AppState>, write: bool, status: StatusCode, f: F) -> HttpResponse
where
    F: FnOnce(&mut DbConnection, &Scope<'_>) -> Result<Option<Value>, ScimError> + Send + 'static,
{
    let (org, token) = match organisation(req, state).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // The organisations' own connectors (and their mappings), as a login page sees them.
    if let Err(e) = super::extract::fresh_connectors(state, None).await {
        tracing::error!(error = %e, "scim: could not load the organisations' connectors");
        return scim_error(&ScimError::Storage(crate::storage::StorageError::Unavailable("connectors".into())));
    }
    let if_match = req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let s = state.clone();
    let r = web::block(move || {
        let connectors: Vec<(String, bool, Vec<RoleMapping>)> = s
            .connectors
            .all()
            .iter()
            .map(|c| (c.id().to_owned(), s.connectors.is_fixed(c.id()), c.spec().role_mappings.clone()))
            .collect();
        let base = base(&s);
        let now = s.clock.now_naive();
        let work = |conn: &mut DbConnection| -> Result<Option<Value>, ScimError> {
            let o = conn.find_organisation(org)?.ok_or(ScimError::NotFound)?;
            // Only the file's connectors and the organisation's own map roles here.
            let mappings = service::mappings_for(conn, org, &connectors)?;
            let sc = Scope {
                org,
                org_slug: o.slug,
                base: &base,
                mappings: &mappings,
                auditor: &s.auditor,
                actor: Actor::Token(token),
                now,
                if_match: if_match.as_deref(),
            };
            f(conn, &sc)
        };
        if write { s.db.write(work) } else { s.db.read(work) }
    })
    .await;
    match r {
        Ok(Ok(Some(v))) => {
            let mut resp = respond(status, &v);
            if let Some(tag) = v.pointer("/meta/version").and_then(Value::as_str) {
                if let Ok(h) = header::HeaderValue::from_str(tag) {
                    resp.headers_mut().insert(header::ETAG, h);
                }
            }
            if status == StatusCode::CREATED {
                if let Some(loc) = v.pointer("/meta/location").and_then(Value::as_str) {
                    if let Ok(h) = header::HeaderValue::from_str(loc) {
                        resp.headers_mut().insert(header::LOCATION, h);
                    }
                }
            }
            resp
        }
        Ok(Ok(None)) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => scim_error(&e),
        Err(_) => scim_error(&ScimError::Storage(crate::storage::StorageError::Unavailable("blocked".into()))),
    }
}

fn json(body: Result<web::Bytes, actix_web::Error>) -> Result<Value, HttpResponse> {
    let bytes = body.map_err(|e| {
        if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            refuse(StatusCode::BAD_REQUEST, Some(ScimType::InvalidSyntax), "The body could not be read.")
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, Some(ScimType::InvalidSyntax), "The body is not JSON."))
}

fn query(req: &HttpRequest) -> Result<Query, HttpResponse> {
    let pairs =
        url::form_urlencoded::parse(req.query_string().as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()));
    Query::from_pairs(pairs).map_err(|e| scim_error(&e))
}

macro_rules! try_resp {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(resp) => return resp,
        }
    };
}

// ------------------------------------------------------------------ discovery

async fn discovery(
    req: HttpRequest,
    state: web::Data<AppState>,
    doc: impl FnOnce(&str) -> Option<Value>,
) -> HttpResponse {
    if let Err(r) = organisation(&req, &state).await {
        return r;
    }
    match doc(&base(&state)) {
        Some(v) => respond(StatusCode::OK, &v),
        None => scim_error(&ScimError::NotFound),
    }
}

async fn service_provider_config(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let max = state.config.max_body_bytes;
    discovery(req, state, |b| Some(schema::service_provider_config(b, max))).await
}

async fn resource_types(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    discovery(req, state, |b| {
        Some(schema::list_of([Kind::User, Kind::Group].iter().map(|k| schema::resource_type_document(*k, b)).collect()))
    })
    .await
}

async fn resource_type(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    discovery(req, state, move |b| {
        [Kind::User, Kind::Group].into_iter().find(|k| k.as_str() == id).map(|k| schema::resource_type_document(k, b))
    })
    .await
}

async fn schemas(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    discovery(req, state, |b| {
        Some(schema::list_of([Kind::User, Kind::Group].iter().map(|k| schema::schema_document(*k, b)).collect()))
    })
    .await
}

async fn schema_one(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    discovery(req, state, move |b| {
        [Kind::User, Kind::Group].into_iter().find(|k| k.urn() == id).map(|k| schema::schema_document(k, b))
    })
    .await
}

async fn not_allowed(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(r) = organisation(&req, &state).await {
        return r;
    }
    refuse(StatusCode::METHOD_NOT_ALLOWED, None, "This endpoint does not take that method.")
}

async fn not_found(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(r) = organisation(&req, &state).await {
        return r;
    }
    scim_error(&ScimError::NotFound)
}

// ------------------------------------------------------------------ resources

async fn list(kinds: &'static [Kind], req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = try_resp!(query(&req));
    run(&req, &state, false, StatusCode::OK, move |c, sc| service::list(c, sc, kinds, &q).map(Some)).await
}

async fn search(
    kinds: &'static [Kind],
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    if let Err(r) = organisation(&req, &state).await {
        return r;
    }
    let b = try_resp!(json(body));
    let q = try_resp!(Query::from_search(&b).map_err(|e| scim_error(&e)));
    run(&req, &state, false, StatusCode::OK, move |c, sc| service::list(c, sc, kinds, &q).map(Some)).await
}

async fn create(
    kind: Kind,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    if let Err(r) = organisation(&req, &state).await {
        return r;
    }
    let b = try_resp!(json(body));
    run(&req, &state, true, StatusCode::CREATED, move |c, sc| service::create(c, sc, kind, &b).map(Some)).await
}

async fn get(kind: Kind, req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let q = try_resp!(query(&req));
    let id = id.into_inner();
    run(&req, &state, false, StatusCode::OK, move |c, sc| service::get(c, sc, kind, &id, &q).map(Some)).await
}

async fn replace(
    kind: Kind,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    if let Err(r) = organisation(&req, &state).await {
        return r;
    }
    let b = try_resp!(json(body));
    let id = id.into_inner();
    run(&req, &state, true, StatusCode::OK, move |c, sc| service::replace(c, sc, kind, &id, &b).map(Some)).await
}

async fn patch(
    kind: Kind,
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    if let Err(r) = organisation(&req, &state).await {
        return r;
    }
    let b = try_resp!(json(body));
    let id = id.into_inner();
    run(&req, &state, true, StatusCode::OK, move |c, sc| service::patch(c, sc, kind, &id, &b).map(Some)).await
}

async fn delete(kind: Kind, req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    run(&req, &state, true, StatusCode::NO_CONTENT, move |c, sc| service::delete(c, sc, kind, &id).map(|()| None)).await
}

type Body = Result<web::Bytes, actix_web::Error>;
type Data = web::Data<AppState>;
type Id = web::Path<String>;

const USERS: &[Kind] = &[Kind::User];
const GROUPS: &[Kind] = &[Kind::Group];
const ALL: &[Kind] = &[Kind::User, Kind::Group];

fn resources(kind: Kind, kinds: &'static [Kind]) -> actix_web::Scope {
    web::scope(&format!("/{}", kind.endpoint()))
        .service(
            web::resource("")
                .route(web::get().to(move |r: HttpRequest, s: Data| list(kinds, r, s)))
                .route(web::post().to(move |r: HttpRequest, s: Data, b: Body| create(kind, r, s, b)))
                .default_service(web::to(not_allowed)),
        )
        .service(
            web::resource("/.search")
                .route(web::post().to(move |r: HttpRequest, s: Data, b: Body| search(kinds, r, s, b)))
                .default_service(web::to(not_allowed)),
        )
        .service(
            web::resource("/{id}")
                .route(web::get().to(move |r: HttpRequest, s: Data, id: Id| get(kind, r, s, id)))
                .route(web::put().to(move |r: HttpRequest, s: Data, id: Id, b: Body| replace(kind, r, s, id, b)))
                .route(web::patch().to(move |r: HttpRequest, s: Data, id: Id, b: Body| patch(kind, r, s, id, b)))
                .route(web::delete().to(move |r: HttpRequest, s: Data, id: Id| delete(kind, r, s, id)))
                .default_service(web::to(not_allowed)),
        )
        .default_service(web::to(not_found))
}

fn discovery_resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(not_allowed))
}

/// Every SCIM route, under `/scim/v2`.
pub fn scope() -> actix_web::Scope {
    web::scope("/scim/v2")
        .service(discovery_resource("/ServiceProviderConfig").route(web::get().to(service_provider_config)))
        .service(discovery_resource("/ResourceTypes").route(web::get().to(resource_types)))
        .service(discovery_resource("/ResourceTypes/{id}").route(web::get().to(resource_type)))
        .service(discovery_resource("/Schemas").route(web::get().to(schemas)))
        .service(discovery_resource("/Schemas/{id}").route(web::get().to(schema_one)))
        .service(
            web::resource("/.search")
                .route(web::post().to(|r: HttpRequest, s: Data, b: Body| search(ALL, r, s, b)))
                .default_service(web::to(not_allowed)),
        )
        .service(resources(Kind::User, USERS))
        .service(resources(Kind::Group, GROUPS))
        .default_service(web::to(not_found))
}
