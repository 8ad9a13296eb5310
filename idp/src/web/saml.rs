//! SAML 2.0 endpoints of a connection: `GET /saml/{id}/metadata` (our SP metadata) and
//! `POST /saml/{id}/acs` (HTTP-POST binding). A login starts at `/login/{id}` like any other
//! and ends in the same completion as `/callback/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::client_ip::client_ip;
use super::error::WebError;
use super::login::{complete, fail, take_flow};
use crate::app::AppState;
use crate::auth::login::saml_replay;
use crate::upstream::saml::SamlRejection;

pub async fn metadata(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    super::extract::fresh_connectors(&state, Some(&id)).await?;
    let connector = state.connectors.get(&id).ok_or(WebError::NotFound)?;
    let saml = connector.saml().ok_or(WebError::NotFound)?;
    let xml = saml.metadata(state.config.base_url(), &state.saml_sp).map_err(|e| WebError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().content_type("application/samlmetadata+xml").body(xml))
}

#[derive(Debug, Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState")]
    relay_state: Option<String>,
}

const INCOMPLETE: &str = "The sign-in response is incomplete. Please start again.";
const UNVERIFIED: &str = "The identity provider's answer could not be verified. Please start again.";

fn reason(r: &SamlRejection) -> &'static str {
    match r {
        SamlRejection::Malformed(_) => "malformed SAML response",
        SamlRejection::Signature(_) => "SAML signature invalid",
        SamlRejection::Encryption(_) => "SAML encrypted assertion refused",
        SamlRejection::Status(_) => "upstream refused",
        SamlRejection::Issuer(_) => "SAML issuer mismatch",
        SamlRejection::Audience(_) => "SAML audience mismatch",
        SamlRejection::Destination(_) => "SAML recipient or destination mismatch",
        SamlRejection::InResponseTo(_) => "SAML InResponseTo mismatch",
        SamlRejection::Time(_) => "SAML assertion outside its validity",
        SamlRejection::Subject(_) => "SAML subject unusable",
        SamlRejection::Replay => "SAML assertion replayed",
        SamlRejection::Unsolicited => "unsolicited SAML response",
    }
}

fn page(r: &SamlRejection) -> WebError {
    match r {
        SamlRejection::Status(_) => WebError::Forbidden("The identity provider refused the sign-in."),
        SamlRejection::Replay => WebError::BadRequest("This sign-in response was already used. Please start again."),
        SamlRejection::Unsolicited => {
            WebError::BadRequest("Sign-in must start here, not at the identity provider. Please start again.")
        }
        _ => WebError::BadRequest(UNVERIFIED),
    }
}

/// `POST /saml/{id}/acs`.
pub async fn acs(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<AcsForm>,
) -> Result<HttpResponse, WebError> {
    super::extract::fresh_connectors(&state, Some(&id)).await?;
    let connector = state.connectors.get(&id).ok_or(WebError::NotFound)?;
    let saml = connector.saml().ok_or(WebError::NotFound)?;
    let ip = client_ip(&req, &state.config.trusted_proxies);
    let cid = connector.id().to_owned();
    let AcsForm { saml_response, relay_state } = form.into_inner();
    let flow = match relay_state.filter(|r| !r.is_empty()) {
        Some(relay) => Some(take_flow(&req, &state, &cid, relay).await?),
        None if saml.allows_idp_initiated() => None,
        None => {
            let r = SamlRejection::Unsolicited;
            return fail(&state, &cid, ip, reason(&r), page(&r)).await;
        }
    };
    let request_id = match &flow {
        Some(f) => match f.secrets.saml_request_id.clone() {
            Some(r) => Some(r),
            None => return fail(&state, &cid, ip, "flow error", WebError::BadRequest(INCOMPLETE)).await,
        },
        None => None,
    };
    // xmlsec is CPU work: off the async workers.
    let (s, c) = (state.clone(), connector.clone());
    let checked = web::block(move || {
        let Some(saml) = c.saml() else { return Err(SamlRejection::Malformed("not a SAML connection")) };
        let now = s.clock.now();
        let (identity, accepted) =
            saml.finish(&saml_response, s.config.base_url(), &s.saml_sp, request_id.as_deref(), now)?;
        let fresh = s.db.write(|conn| saml_replay(conn, s.clock.now_naive(), c.id(), &accepted)).map_err(|e| {
            tracing::error!(error = %e, "SAML replay store");
            SamlRejection::Malformed("replay store unavailable")
        })?;
        if !fresh {
            return Err(SamlRejection::Replay);
        }
        Ok(identity)
    })
    .await?;
    let identity = match checked {
        Ok(i) => i,
        Err(r) => {
            tracing::warn!(error = %r, connector = %cid, "SAML response refused");
            return fail(&state, &cid, ip, reason(&r), page(&r)).await;
        }
    };
    complete(&req, &state, &connector, identity, flow).await
}
