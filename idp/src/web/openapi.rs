//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations.

use actix_web::HttpResponse;
use actix_web::http::header;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin_api as a, admin_domains as d, clients as c, invitations as i, tokens as t};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (idp_pat_..., idp_sat_..., idp_oat_...) carrying the call's scope"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "idp_session",
                "A browser session; unsafe methods also need X-CSRF-Token",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "idp admin API", description = "Administration of organisations, verified domains, projects, members, invitations, roles, connectors, clients, API tokens, two-factor policy and the audit log."),
    security(("api_token" = []), ("session" = [])),
    modifiers(&Security),
    paths(
        a::list_organisations, a::create_organisation, a::get_organisation, a::delete_organisation,
        a::list_projects, a::create_project, a::get_project, d::delete_project,
        d::list_domains, d::claim_domain, d::get_domain, d::route_domain, d::delete_domain, d::verify_domain,
        a::list_members, a::set_member, a::remove_member,
        i::api_list, i::api_create, i::api_revoke,
        a::list_project_members, a::set_project_member, a::remove_project_member,
        a::list_roles, a::create_role,
        a::list_connectors, a::create_connector, a::delete_connector,
        a::get_org_policy, a::set_org_policy, a::get_project_policy, a::set_project_policy, a::set_token_policy,
        a::audit, a::audit_export,
        t::api_list, t::api_create, t::api_rotate, t::api_revoke,
        c::api_list, c::api_register, c::api_get, c::api_rotate_secret, c::api_delete,
    ),
    components(schemas(crate::admin::tokens::TokenInfo))
)]
pub struct ApiDoc;

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_admin_path() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 20, "{}", paths.len());
        assert!(paths["/api/v1/organisations/{org}/members/{user}"]["put"].is_object());
    }
}
