//! The HTTP layer: the only part of idp that knows actix-web. Routes are registered in one
//! place, [`configure`].

pub mod account;
pub mod admin_api;
pub mod admin_domains;
pub mod api;
pub mod client_ip;
pub mod clients;
pub mod console;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod invitations;
pub mod login;
pub mod mfa;
pub mod middleware;
pub mod oidc;
pub mod openapi;
pub mod password;
pub mod routes;
pub mod saml;
pub mod scim;
pub mod tokens;
pub mod views;
pub mod webauthn;

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::app::AppState;
use error::extractor_error;
use views::Views;

/// Every route idp serves.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(routes::healthz))
        .route("/readyz", web::get().to(routes::readyz))
        .route("/.well-known/security.txt", web::get().to(routes::security_txt))
        .route("/static/idp.css", web::get().to(routes::stylesheet))
        .route("/static/theme.css", web::get().to(routes::theme))
        .route("/favicon.ico", web::get().to(routes::favicon))
        .route("/static/logo", web::get().to(routes::logo))
        .route("/", web::get().to(routes::home))
        .service(
            // Authentication endpoints: rate limited per client IP.
            web::scope("/login")
                .wrap(from_fn(middleware::auth_rate_limit))
                .route("", web::get().to(routes::login_page))
                .route("/discover", web::get().to(login::discover))
                .route("/password", web::post().to(password::login))
                // Before `/{connector}`: no connector can be called `mfa`.
                .route("/mfa", web::get().to(mfa::page))
                .route("/mfa", web::post().to(mfa::submit))
                .route("/mfa/webauthn/start", web::post().to(webauthn::second_factor_start))
                .route("/mfa/webauthn/finish", web::post().to(webauthn::second_factor_finish))
                .route("/passkey/start", web::post().to(webauthn::passkey_start))
                .route("/passkey/finish", web::post().to(webauthn::passkey_finish))
                .route("/{connector}", web::get().to(login::start))
                .route("/{connector}/link", web::post().to(login::link)),
        )
        .service(
            web::scope("/signup")
                .wrap(from_fn(middleware::auth_rate_limit))
                .route("", web::get().to(password::signup_page))
                .route("", web::post().to(password::signup))
                .route("/strength", web::post().to(password::strength)),
        )
        .route("/static/password.js", web::get().to(routes::password_script))
        .route("/static/webauthn.js", web::get().to(webauthn::script))
        .service(
            web::scope("/callback")
                .wrap(from_fn(middleware::auth_rate_limit))
                .route("/{connector}", web::get().to(login::callback)),
        )
        .route("/saml/{connector}/metadata", web::get().to(saml::metadata))
        .service(
            web::resource("/saml/{connector}/acs")
                .wrap(from_fn(middleware::auth_rate_limit))
                .route(web::post().to(saml::acs)),
        )
        .route("/logout", web::post().to(routes::logout))
        // idp as an OpenID Provider.
        .route("/.well-known/openid-configuration", web::get().to(oidc::configuration))
        .route("/jwks", web::get().to(oidc::jwks))
        .route("/.well-known/jwks.json", web::get().to(oidc::jwks))
        .route("/authorize", web::get().to(oidc::authorize))
        .route("/authorize/consent", web::post().to(oidc::consent))
        .route("/userinfo", web::get().to(oidc::userinfo))
        .route("/userinfo", web::post().to(oidc::userinfo))
        .route("/logout", web::get().to(oidc::logout))
        // Client authentication endpoints: rate limited per client IP once it fails.
        .service(
            web::resource("/token")
                .wrap(from_fn(middleware::client_auth_rate_limit))
                .route(web::post().to(oidc::token)),
        )
        .service(
            web::resource("/introspect")
                .wrap(from_fn(middleware::client_auth_rate_limit))
                .route(web::post().to(oidc::introspect)),
        )
        .service(
            web::resource("/revoke")
                .wrap(from_fn(middleware::client_auth_rate_limit))
                .route(web::post().to(oidc::revoke)),
        )
        .route("/account/tokens", web::get().to(tokens::page))
        .route("/account/tokens", web::post().to(tokens::create))
        .route("/account/tokens/{id}/rotate", web::post().to(tokens::rotate))
        .route("/account/tokens/{id}/revoke", web::post().to(tokens::revoke))
        .route("/api/v1/openapi.json", web::get().to(openapi::document))
        .route("/api/v1/organisations", web::get().to(admin_api::list_organisations))
        .route("/api/v1/organisations", web::post().to(admin_api::create_organisation))
        .route("/api/v1/organisations/{org}", web::get().to(admin_api::get_organisation))
        .route("/api/v1/organisations/{org}", web::delete().to(admin_api::delete_organisation))
        .route("/api/v1/organisations/{org}/projects", web::get().to(admin_api::list_projects))
        .route("/api/v1/organisations/{org}/projects", web::post().to(admin_api::create_project))
        .route("/api/v1/organisations/{org}/projects/{project}", web::get().to(admin_api::get_project))
        .route("/api/v1/organisations/{org}/projects/{project}", web::delete().to(admin_domains::delete_project))
        .route("/api/v1/organisations/{org}/invitations", web::get().to(invitations::api_list))
        .route("/api/v1/organisations/{org}/invitations", web::post().to(invitations::api_create))
        .route("/api/v1/organisations/{org}/invitations/{id}", web::delete().to(invitations::api_revoke))
        .route("/invitations/{token}", web::get().to(invitations::show))
        .route("/invitations/{token}", web::post().to(invitations::accept))
        .route("/api/v1/organisations/{org}/domains", web::get().to(admin_domains::list_domains))
        .route("/api/v1/organisations/{org}/domains", web::post().to(admin_domains::claim_domain))
        .route("/api/v1/organisations/{org}/domains/{id}", web::get().to(admin_domains::get_domain))
        .route("/api/v1/organisations/{org}/domains/{id}", web::put().to(admin_domains::route_domain))
        .route("/api/v1/organisations/{org}/domains/{id}", web::delete().to(admin_domains::delete_domain))
        .route("/api/v1/organisations/{org}/domains/{id}/verify", web::post().to(admin_domains::verify_domain))
        .route("/api/v1/organisations/{org}/members", web::get().to(admin_api::list_members))
        .route("/api/v1/organisations/{org}/members/{user}", web::put().to(admin_api::set_member))
        .route("/api/v1/organisations/{org}/members/{user}", web::delete().to(admin_api::remove_member))
        .route("/api/v1/organisations/{org}/projects/{project}/members", web::get().to(admin_api::list_project_members))
        .route(
            "/api/v1/organisations/{org}/projects/{project}/members/{user}",
            web::put().to(admin_api::set_project_member),
        )
        .route(
            "/api/v1/organisations/{org}/projects/{project}/members/{user}",
            web::delete().to(admin_api::remove_project_member),
        )
        .route("/api/v1/organisations/{org}/roles", web::get().to(admin_api::list_roles))
        .route("/api/v1/organisations/{org}/roles", web::post().to(admin_api::create_role))
        .route("/api/v1/organisations/{org}/connectors", web::get().to(admin_api::list_connectors))
        .route("/api/v1/organisations/{org}/connectors", web::post().to(admin_api::create_connector))
        .route("/api/v1/organisations/{org}/connectors/{connector}", web::delete().to(admin_api::delete_connector))
        .route("/api/v1/organisations/{org}/mfa-policy", web::get().to(admin_api::get_org_policy))
        .route("/api/v1/organisations/{org}/mfa-policy", web::put().to(admin_api::set_org_policy))
        .route(
            "/api/v1/organisations/{org}/projects/{project}/mfa-policy",
            web::get().to(admin_api::get_project_policy),
        )
        .route(
            "/api/v1/organisations/{org}/projects/{project}/mfa-policy",
            web::put().to(admin_api::set_project_policy),
        )
        .route("/api/v1/organisations/{org}/token-policy", web::put().to(admin_api::set_token_policy))
        .route("/api/v1/organisations/{org}/audit", web::get().to(admin_api::audit))
        .route("/api/v1/organisations/{org}/audit/export", web::get().to(admin_api::audit_export))
        .route("/api/v1/organisations/{org}/tokens", web::get().to(tokens::api_list))
        .route("/api/v1/organisations/{org}/tokens", web::post().to(tokens::api_create))
        .route("/api/v1/tokens/{id}/rotate", web::post().to(tokens::api_rotate))
        .route("/api/v1/tokens/{id}", web::delete().to(tokens::api_revoke))
        .route("/api/v1/organisations/{org}/projects/{project}/clients", web::get().to(clients::api_list))
        .route("/api/v1/organisations/{org}/projects/{project}/clients", web::post().to(clients::api_register))
        .route("/api/v1/clients/{id}", web::get().to(clients::api_get))
        .route("/api/v1/clients/{id}", web::delete().to(clients::api_delete))
        .route("/api/v1/clients/{id}/secret", web::post().to(clients::api_rotate_secret))
        // The admin console: the API's operations as pages.
        .route("/admin", web::get().to(console::home))
        .route("/admin/organisations", web::post().to(console::create_organisation))
        .route("/admin/o/{org}", web::get().to(console::organisation))
        .route("/admin/o/{org}/projects", web::post().to(console::create_project))
        .route("/admin/o/{org}/members", web::post().to(console::set_member))
        .route("/admin/o/{org}/members/remove", web::post().to(console::remove_member))
        .route("/admin/o/{org}/members/reset-mfa", web::post().to(console::reset_member_mfa))
        .route("/admin/o/{org}/roles", web::post().to(console::create_role))
        .route("/admin/o/{org}/mfa-policy", web::post().to(console::set_org_policy))
        .route("/admin/o/{org}/connectors", web::post().to(console::create_connector))
        .route("/admin/o/{org}/connectors/delete", web::post().to(console::delete_connector))
        .route("/admin/o/{org}/scim-token", web::post().to(console::create_scim_token))
        .route("/admin/o/{org}/tokens/revoke", web::post().to(console::revoke_token))
        .route("/admin/o/{org}/token-policy", web::post().to(console::set_token_policy))
        .route("/admin/o/{org}/delete", web::post().to(console::delete_organisation))
        .route("/admin/o/{org}/domains", web::post().to(console::claim_domain))
        .route("/admin/o/{org}/domains/verify", web::post().to(console::verify_domain))
        .route("/admin/o/{org}/domains/route", web::post().to(console::route_domain))
        .route("/admin/o/{org}/domains/delete", web::post().to(console::delete_domain))
        .route("/admin/o/{org}/invitations", web::post().to(console::invite))
        .route("/admin/o/{org}/invitations/revoke", web::post().to(console::revoke_invitation))
        .route("/admin/o/{org}/p/{project}/delete", web::post().to(console::delete_project))
        .route("/admin/o/{org}/p/{project}/clients", web::post().to(console::register_client))
        .route("/admin/o/{org}/p/{project}/clients/delete", web::post().to(console::delete_client))
        .route("/admin/o/{org}/p/{project}/clients/secret", web::post().to(console::rotate_client_secret))
        .route("/admin/o/{org}/p/{project}/tokens", web::post().to(console::create_service_token))
        .route("/admin/o/{org}/p/{project}/tokens/change", web::post().to(console::change_service_token))
        .route("/admin/o/{org}/audit", web::get().to(console::audit))
        .route("/admin/o/{org}/p/{project}", web::get().to(console::project))
        .route("/admin/o/{org}/p/{project}/mfa-policy", web::post().to(console::set_project_policy))
        .route("/sessions", web::get().to(routes::sessions_page))
        .route("/account/mfa", web::get().to(account::page))
        .route("/account/mfa/totp", web::post().to(account::enrol))
        .route("/account/mfa/totp/confirm", web::post().to(account::confirm))
        .route("/account/mfa/totp/remove", web::post().to(account::remove))
        .route("/account/mfa/recovery", web::post().to(account::recovery_codes))
        .route("/account/mfa/webauthn/register/start", web::post().to(webauthn::register_start))
        .route("/account/mfa/webauthn/register/finish", web::post().to(webauthn::register_finish))
        .route("/account/mfa/webauthn/remove", web::post().to(webauthn::remove))
        .route("/sessions/{id}/end", web::post().to(routes::end_session))
        .route("/identities/{id}/unlink", web::post().to(routes::unlink_identity))
        // SCIM 2.0 for organisations' identity providers (organisation tokens).
        .service(scim::scope());
}

/// Limits and error handlers for actix's extractors: a malformed id in a path is a 404, a
/// malformed body a 400, an oversized one a 413, never a 500 and never the parser's words.
fn extractor_configs(cfg: &mut web::ServiceConfig, max_body: usize) {
    cfg.app_data(
        web::PathConfig::default().error_handler(|e, r| extractor_error(e.into(), StatusCode::NOT_FOUND, r.path())),
    )
    .app_data(
        web::QueryConfig::default().error_handler(|e, r| extractor_error(e.into(), StatusCode::BAD_REQUEST, r.path())),
    )
    .app_data(web::FormConfig::default().limit(max_body).error_handler(|e, r| {
        let status = match &e {
            actix_web::error::UrlencodedError::Overflow { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        extractor_error(e.into(), status, r.path())
    }))
    .app_data(web::JsonConfig::default().limit(max_body).error_handler(|e, r| {
        let status = match &e {
            actix_web::error::JsonPayloadError::Overflow { .. }
            | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        extractor_error(e.into(), status, r.path())
    }))
    .app_data(web::PayloadConfig::new(max_body));
}

pub async fn run(state: AppState) -> std::io::Result<()> {
    let bind = state.config.bind;
    let workers = match state.config.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let max_body = state.config.max_body_bytes;
    let views = web::Data::new(Views::with_branding(state.config.templates_dir.clone(), state.config.logo.is_some()));
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(views.clone())
            .configure(|cfg| extractor_configs(cfg, max_body))
            .configure(configure)
            .default_service(web::to(routes::not_found))
            .wrap(from_fn(middleware::same_origin))
            .wrap(from_fn(middleware::body_limit))
            .wrap(from_fn(middleware::security_headers))
            .wrap(from_fn(middleware::request_log))
    })
    .workers(workers)
    .bind(bind)?;
    tracing::info!(%bind, workers, "listening");
    server.run().await
}
