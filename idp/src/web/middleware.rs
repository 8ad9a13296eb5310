//! Middleware shared by every route: request ids and logs, security headers, body limits,
//! cross-origin refusal for unsafe methods, and the per-IP rate limit for auth endpoints.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError, web};
use tracing::Instrument;

use super::error::WebError;
use crate::app::AppState;
use crate::auth::rate_limit::Subject;

/// The request id, available to handlers as a request extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn request_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    // An invitation's path is its secret: never logged.
    let path =
        if req.path().starts_with(crate::admin::invitations::ACCEPT_PATH) { "/invitations/***" } else { req.path() };
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path);
    let started = Instant::now();
    async move {
        let mut res = next.call(req).await?.map_into_boxed_body();
        let status = res.status().as_u16();
        let micros = started.elapsed().as_micros() as u64;
        if status >= 500 {
            tracing::warn!(status, micros, "response");
        } else {
            tracing::debug!(status, micros, "response");
        }
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
        }
        Ok(res)
    }
    .instrument(span)
    .await
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let https = req.app_data::<web::Data<AppState>>().map(|s| s.config.is_https()).unwrap_or(true);
    let mut res = next.call(req).await?.map_into_boxed_body();
    let h = res.headers_mut();
    let set = |h: &mut header::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Same-origin: our own forms carry a real Origin; nothing (codes, states) leaks to others.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    );
    if https {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=63072000; includeSubDomains");
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    Ok(res)
}

fn refuse(req: ServiceRequest, status: StatusCode, message: &str) -> ServiceResponse<BoxBody> {
    let res = super::error::refusal(req.path(), status, message);
    req.into_response(res)
}

/// Refuses a declared body over the limit before reading it; extractors bound the rest.
pub async fn body_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let limit = req.app_data::<web::Data<AppState>>().map(|s| s.config.max_body_bytes).unwrap_or(64 * 1024);
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        if req.path().starts_with("/scim/") {
            return Ok(req.into_response(super::scim::too_large()));
        }
        return Ok(refuse(req, StatusCode::PAYLOAD_TOO_LARGE, "The request is too large."));
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// CSRF, first layer: an unsafe request that a browser marks as coming from another origin is
/// refused whatever it carries. Non-browser clients send neither header and pass to the
/// second layer (form tokens, or bearer credentials on APIs). A SAML ACS is the exception: the
/// IdP's page posts to it from the IdP's origin by design, and what it accepts is bound to this
/// browser's flow (RelayState, flow cookie, InResponseTo) and signed by the pinned key.
pub async fn same_origin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) && !is_saml_acs(req.path()) {
        let fetch_site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let origin = req.headers().get(header::ORIGIN).map(|o| o.to_str());
        let origin_ok = match (origin, req.app_data::<web::Data<AppState>>()) {
            // Browsers send `Origin: null` where the referrer policy or a sandbox withholds the
            // origin; Fetch Metadata still says where the request came from.
            (Some(Ok("null")), _) => fetch_site == Some("same-origin"),
            (Some(Ok(o)), Some(state)) => o == state.config.public_url.origin().ascii_serialization(),
            (Some(_), _) => false,
            (None, _) => true,
        };
        let fetch_site_ok = fetch_site.is_none_or(|v| matches!(v, "same-origin" | "none"));
        if !origin_ok || !fetch_site_ok {
            return Ok(refuse(req, StatusCode::FORBIDDEN, "This request came from another site and was refused."));
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn is_saml_acs(path: &str) -> bool {
    let mut parts = path.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(""), Some("saml"), Some(id), Some("acs"), None) if !id.is_empty()
    )
}

/// The per-IP limit for authentication endpoints; per-account limits are applied by the login
/// logic once it knows the account.
pub async fn auth_rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let ip = super::client_ip::client_ip(req.request(), &state.config.trusted_proxies);
    if let Some(ip) = ip {
        let s = state.clone();
        let verdict = web::block(move || {
            let now = s.clock.now().timestamp();
            s.db.write(|conn| s.limiter.hit(conn, "auth", Subject::Ip(ip), now))
        })
        .await;
        match verdict {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(limited))) => {
                let res = WebError::RateLimited { retry_after_secs: limited.retry_after_secs }.error_response();
                return Ok(req.into_response(res));
            }
            // Fail closed: an authentication endpoint without its limit is not served.
            Ok(Err(e)) => return Ok(req.into_response(WebError::from(e).error_response())),
            Err(e) => return Ok(req.into_response(WebError::from(e).error_response())),
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// Rate limit for the client-authenticated endpoints (token, introspection, revocation):
/// a network is counted once it has failed client authentication, and from then on every
/// request of it counts until the window passes. Guessing secrets is limited exactly as at
/// the login endpoints; an app that authenticates correctly never waits for the database.
pub async fn client_auth_rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(ip) = super::client_ip::client_ip(req.request(), &state.config.trusted_proxies) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let now = state.clock.now().timestamp();
    let suspect = state.limiter.is_suspect(ip, now);
    if suspect {
        let s = state.clone();
        let verdict = web::block(move || s.db.write(|conn| s.limiter.hit(conn, "auth", Subject::Ip(ip), now))).await;
        match verdict {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(limited))) => {
                let res = WebError::RateLimited { retry_after_secs: limited.retry_after_secs }.error_response();
                return Ok(req.into_response(res));
            }
            Ok(Err(e)) => return Ok(req.into_response(WebError::from(e).error_response())),
            Err(e) => return Ok(req.into_response(WebError::from(e).error_response())),
        }
    }
    let res = next.call(req).await?.map_into_boxed_body();
    if res.status() == actix_web::http::StatusCode::UNAUTHORIZED {
        state.limiter.mark_suspect(ip, now);
        if !suspect {
            // The first failure is counted too, so the limit is the same as for suspects.
            let s = state.clone();
            let counted =
                web::block(move || s.db.write(|conn| s.limiter.hit(conn, "auth", Subject::Ip(ip), now))).await;
            if !matches!(counted, Ok(Ok(_))) {
                tracing::warn!("could not count a failed client authentication");
            }
        }
    }
    Ok(res)
}
