//! Extractors that hand handlers an already-resolved session.

use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::error::WebError;
use crate::app::AppState;
use crate::auth::session;
use crate::domain::session::Session;

/// The session cookie's name: `__Host-` prefixed (Secure, no Domain, Path=/) on https; on a
/// plain-http loopback deployment browsers refuse that prefix, so it goes without.
pub fn session_cookie_name(https: bool) -> &'static str {
    if https { "__Host-idp_session" } else { "idp_session" }
}

/// The request's live session, if it has one.
pub struct MaybeSignedIn(pub Option<Session>);

/// A live session, or a redirect to the login page.
pub struct SignedIn(pub Session);

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, WebError> {
    req.app_data::<web::Data<AppState>>().cloned().ok_or_else(|| WebError::Internal("no app state".into()))
}

async fn resolve(req: HttpRequest) -> Result<Option<Session>, WebError> {
    let state = state(&req)?;
    let Some(cookie) = req.cookie(session_cookie_name(state.config.is_https())) else { return Ok(None) };
    let token = cookie.value().to_owned();
    let found = web::block(move || {
        let now = state.clock.now_naive();
        state.db.read(|conn| session::resolve(conn, &state.config.session, now, &token))
    })
    .await??;
    Ok(found)
}

impl FromRequest for MaybeSignedIn {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { resolve(req).await.map(MaybeSignedIn) })
    }
}

impl FromRequest for SignedIn {
    type Error = WebError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let return_to = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
            resolve(req).await?.map(SignedIn).ok_or(WebError::LoginRequired { return_to })
        })
    }
}

/// Re-reads the organisations' connectors when they are stale or `id` is not known yet.
pub async fn fresh_connectors(state: &web::Data<AppState>, id: Option<&str>) -> Result<(), WebError> {
    if !state.connectors.needs_refresh(id) {
        return Ok(());
    }
    let s = state.clone();
    let specs = web::block(move || s.db.read(|conn| crate::admin::connectors::load(conn, &s.keys))).await??;
    state.connectors.replace_stored(specs);
    Ok(())
}
