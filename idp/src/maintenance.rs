//! Periodic housekeeping inside `idp serve`: the audit retention purge, expired sessions, old
//! rate-limit windows, spent OAuth codes, refresh tokens and grants, unconfirmed TOTP enrolments, logins left waiting for their second factor, SAML assertion ids past their expiry.
//! Idempotent, so every instance may run it.

use std::time::Duration;

use crate::app::AppState;
use crate::auth::session;

pub const INTERVAL: Duration = Duration::from_secs(300);

/// One pass; returns (audit events, sessions, rate-limit rows) removed.
pub fn run_once(state: &AppState) -> Result<(usize, usize, usize), crate::storage::StorageError> {
    let now = state.clock.now_naive();
    let audit = state.db.write(|conn| state.auditor.purge(conn, now, state.config.audit.retention_days))?;
    let sessions = state.db.write(|conn| session::purge_expired(conn, &state.config.session, now))?;
    let limits = state.db.write(|conn| state.limiter.purge(conn, now.and_utc().timestamp()))?;
    state.db.write(|conn| crate::storage::login_flows::LoginFlowRepository::purge_login_flows(conn, now))?;
    state
        .db
        .write(|conn| crate::storage::saml_assertions::SamlAssertionRepository::purge_saml_assertions(conn, now))?;
    state.db.write(|conn| crate::oidc::purge(conn, now))?;
    state.db.write(|conn| crate::oidc::rotation::purge(conn, now))?;
    state.db.write(|conn| crate::mfa::totp::purge_pending(conn, now))?;
    state.db.write(|conn| crate::auth::mfa_login::purge_expired(conn, now))?;
    state.db.write(|conn| crate::storage::webauthn::WebauthnRepository::purge_webauthn_ceremonies(conn, now))?;
    Ok((audit, sessions, limits))
}

pub fn spawn(state: AppState) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            let s = state.clone();
            match actix_web::web::block(move || run_once(&s)).await {
                Ok(Ok((a, s, r))) => {
                    tracing::debug!(audit_purged = a, sessions_purged = s, rate_limits_purged = r, "maintenance")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "maintenance failed"),
                Err(e) => tracing::warn!(error = %e, "maintenance did not run"),
            }
        }
    });
}

/// Every instance: starts scheduled signing-key rotations and reloads the key set, so a key
/// made anywhere is published here long before it signs.
pub fn refresh_signing_keys(state: &AppState) -> Result<(), crate::storage::StorageError> {
    let now = state.clock.now_naive();
    let schedule = crate::oidc::rotation::Schedule::from_config(&state.config.tokens);
    let rotated = state
        .db
        .write(|conn| crate::oidc::rotation::rotate_if_due(conn, &state.keys, &state.auditor, now, schedule))?;
    for r in rotated {
        tracing::info!(kid = %r.kid, alg = r.algorithm.as_str(), signs_from = %r.signs_from, "signing key rotation started");
    }
    state.db.read(|conn| state.oidc.signer.refresh(conn, &state.keys, now))
}

/// Every instance: reloads the clients administrators registered, so one registered (or
/// deleted) anywhere is served (or refused) here within [`crate::oidc::clients::RELOAD`].
pub fn reload_clients(state: &AppState) -> Result<(), crate::storage::StorageError> {
    let specs = state.db.read(crate::admin::clients::load)?;
    state.oidc.clients.replace_stored(specs);
    Ok(())
}

/// Runs `job` on a blocking thread every `period` (the first run one period from now), logging
/// what failed as `what`.
fn spawn_every(
    state: AppState,
    period: std::time::Duration,
    what: &'static str,
    job: fn(&AppState) -> Result<(), crate::storage::StorageError>,
) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            let s = state.clone();
            match actix_web::web::block(move || job(&s)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "{what} were not reloaded"),
                Err(e) => tracing::warn!(error = %e, "{what} were not reloaded"),
            }
        }
    });
}

pub fn spawn_key_refresh(state: AppState) {
    let period = state.config.tokens.signing_key_reload;
    spawn_every(state, period, "signing keys", refresh_signing_keys);
}

pub fn spawn_client_reload(state: AppState) {
    spawn_every(state, crate::oidc::clients::RELOAD, "registered clients", reload_clients);
}
