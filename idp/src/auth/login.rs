//! The login flow at an upstream connector, in three steps:
//! `begin` stores the flow (state, sealed PKCE verifier and nonce, bound to the browser);
//! `take` consumes it at the callback (single use, on any instance); `complete` resolves the
//! account from the verified identity (existing link, explicit link, or just-in-time sign-up)
//! and starts a fresh session. Every outcome is audited.

use std::net::IpAddr;

use chrono::{Duration, NaiveDateTime};
use zeroize::Zeroizing;

use crate::audit::{Action, Actor, Auditor, Event, Outcome};
use crate::config::{SessionConfig, Signup};
use crate::crypto::secretbox::MasterKeys;
use crate::crypto::tokens::{ct_eq, hash_token};
use crate::domain::UserId;
use crate::domain::session::Session;
use crate::domain::user::{NewUser, User};
use crate::storage::audit::AuditRepository;
use crate::storage::login_flows::{LoginFlowRepository, LoginFlowRow};
use crate::storage::organisations::OrganisationRepository;
use crate::storage::sessions::SessionRepository;
use crate::storage::users::UserRepository;
use crate::storage::{StorageError, parse_id};
use crate::upstream::{ExternalIdentity, FlowSecrets};

use super::mfa_login::{self, PendingToken, needs_second_factor};
use super::session::{self, Origin, SessionToken};
use crate::storage::mfa::MfaRepository;
use crate::storage::pending_mfa::PendingMfaRepository;

/// How long a user has to come back from the upstream.
pub const FLOW_LIFETIME_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("no such login in progress (expired, already used, or never started)")]
    UnknownFlow,
    #[error("the login was started for another connector")]
    WrongConnector,
    #[error("the login was started in another browser")]
    WrongBrowser,
    #[error("the upstream did not verify the e-mail address")]
    EmailNotVerified,
    #[error("sign-up is closed for this address")]
    SignupClosed,
    #[error("the account is disabled")]
    Disabled,
    #[error("that upstream account is already linked to another user")]
    LinkedElsewhere,
    #[error("another login for the same account finished first")]
    Concurrent,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A consumed flow, ready for the code exchange.
#[derive(Debug)]
pub struct TakenFlow {
    pub connector_id: String,
    pub secrets: FlowSecrets,
    pub return_to: Option<String>,
    pub link_user: Option<UserId>,
}

fn flow_context(id: &str) -> Vec<u8> {
    format!("idp-login-flow:{id}").into_bytes()
}

#[allow(clippy::too_many_arguments)]
pub fn begin(
    conn: &mut impl LoginFlowRepository,
    keys: &MasterKeys,
    now: NaiveDateTime,
    connector_id: &str,
    state: &str,
    secrets: &FlowSecrets,
    browser_binding: &str,
    return_to: Option<&str>,
    link_user: Option<UserId>,
) -> Result<(), LoginError> {
    let id = uuid::Uuid::new_v4().to_string();
    let plain = Zeroizing::new(serde_json::to_vec(secrets).map_err(|e| StorageError::Corrupt(e.to_string()))?);
    let (_, sealed) = keys.seal(&flow_context(&id), &plain).map_err(|e| StorageError::Unavailable(e.to_string()))?;
    conn.insert_login_flow(&LoginFlowRow {
        state_hash: hash_token(state),
        browser_hash: hash_token(browser_binding),
        connector_id: connector_id.to_owned(),
        sealed,
        return_to: return_to.map(str::to_owned),
        link_user_id: link_user.map(|u| u.to_string()),
        created_at: now,
        expires_at: now + Duration::seconds(FLOW_LIFETIME_SECS),
        id,
    })?;
    Ok(())
}

/// Consumes the flow a callback names. The flow is gone whatever the outcome, so a state is
/// good for one try: the outer result is a storage failure (nothing changed), the inner one a
/// refusal (the flow is consumed all the same, and the caller commits).
pub fn take(
    conn: &mut impl LoginFlowRepository,
    keys: &MasterKeys,
    now: NaiveDateTime,
    connector_id: &str,
    state: &str,
    browser_binding: Option<&str>,
) -> Result<Result<TakenFlow, LoginError>, StorageError> {
    let Some(row) = conn.take_login_flow(&hash_token(state))? else { return Ok(Err(LoginError::UnknownFlow)) };
    if row.expires_at <= now {
        return Ok(Err(LoginError::UnknownFlow));
    }
    if row.connector_id != connector_id {
        return Ok(Err(LoginError::WrongConnector));
    }
    let bound = browser_binding.is_some_and(|b| ct_eq(hash_token(b).as_bytes(), row.browser_hash.as_bytes()));
    if !bound {
        return Ok(Err(LoginError::WrongBrowser));
    }
    // A flow sealed under a master key since rotated away is as good as expired.
    let Ok(plain) = keys.open(&flow_context(&row.id), &row.sealed) else { return Ok(Err(LoginError::UnknownFlow)) };
    let Ok(secrets) = serde_json::from_slice::<FlowSecrets>(&plain) else { return Ok(Err(LoginError::UnknownFlow)) };
    Ok(Ok(TakenFlow {
        connector_id: row.connector_id,
        secrets,
        return_to: row.return_to,
        link_user: row.link_user_id.as_deref().map(parse_id).transpose()?,
    }))
}

/// Policy inputs for completing a login.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy<'a> {
    pub signup: &'a Signup,
    pub session: &'a SessionConfig,
    /// Whether the connector's own `amr` (e.g. `mfa`) is recorded in the session.
    pub trust_upstream_mfa: bool,
    /// The connector's group-to-role rules, synced at every login.
    pub role_mappings: &'a [crate::connector_config::RoleMapping],
}

fn may_sign_up(signup: &Signup, email: &str) -> bool {
    match signup {
        Signup::Open => true,
        Signup::Invite => false,
        Signup::Domains(domains) => {
            email.rsplit_once('@').is_some_and(|(_, d)| domains.iter().any(|allowed| allowed.eq_ignore_ascii_case(d)))
        }
    }
}

/// How a login with a good first factor goes on.
#[derive(Debug)]
pub enum Completed {
    /// Signed in.
    Session(SessionToken, Session, User),
    /// The user must give a second factor first (see [`super::mfa_login`]); no session yet.
    SecondFactor(PendingToken, User),
}

/// Finds or creates the account for a verified upstream identity and starts a session, or a
/// pending login when [`needs_second_factor`] says so.
#[allow(clippy::too_many_arguments)]
pub fn complete(
    conn: &mut (
             impl UserRepository
             + SessionRepository
             + AuditRepository
             + OrganisationRepository
             + crate::storage::api_tokens::ApiTokenRepository
             + MfaRepository
             + crate::storage::webauthn::WebauthnRepository
             + PendingMfaRepository
             + crate::storage::scim::ScimRepository
             + crate::storage::connectors::ConnectorRepository
             + crate::storage::invitations::InvitationRepository
         ),
    auditor: &Auditor,
    policy: LoginPolicy<'_>,
    now: NaiveDateTime,
    identity: &ExternalIdentity,
    link_user: Option<UserId>,
    origin: &Origin,
    return_to: Option<&str>,
) -> Result<Completed, LoginError> {
    let user = match conn.find_external_identity(&identity.connector_id, &identity.subject)? {
        Some(linked) => {
            if link_user.is_some_and(|u| u != linked.user_id) {
                return Err(LoginError::LinkedElsewhere);
            }
            conn.touch_external_identity(linked.id, now)?;
            conn.find_user(linked.user_id)?.ok_or(StorageError::NotFound)?
        }
        None => match link_user {
            Some(user_id) => {
                let user = conn.find_user(user_id)?.ok_or(StorageError::NotFound)?;
                conn.link_external_identity(
                    user.id,
                    &identity.connector_id,
                    &identity.subject,
                    identity.email.as_deref(),
                    now,
                )
                .map_err(conflict_is_a_race)?;
                auditor.record(
                    conn,
                    now,
                    Event::new(Actor::User(user.id), Action::IdentityLinked)
                        .target(user.id)
                        .detail("connector", identity.connector_id.as_str())
                        .source(origin.ip),
                )?;
                user
            }
            None => {
                let verified = identity.email.as_deref().filter(|_| identity.email_verified);
                // An account SCIM provisioned for this person is theirs (docs/admin.md#scim-provisioning).
                if let Some(user_id) = crate::scim::service::provisioned_account(
                    conn,
                    &identity.connector_id,
                    policy.role_mappings,
                    &identity.subject,
                    verified,
                )? {
                    let user = conn.find_user(user_id)?.ok_or(StorageError::NotFound)?;
                    conn.link_external_identity(user.id, &identity.connector_id, &identity.subject, verified, now)
                        .map_err(conflict_is_a_race)?;
                    auditor.record(
                        conn,
                        now,
                        Event::new(Actor::System, Action::IdentityLinked)
                            .target(user.id)
                            .detail("connector", identity.connector_id.as_str())
                            .detail("via", "scim")
                            .source(origin.ip),
                    )?;
                    user
                } else {
                    let email = verified.ok_or(LoginError::EmailNotVerified)?;
                    // Someone invited (admin::invitations) gets an account whatever the policy;
                    // joining the organisation is still their own step, at the invitation's page.
                    if !may_sign_up(policy.signup, email) && !conn.open_invitation_for(email, now)? {
                        return Err(LoginError::SignupClosed);
                    }
                    let user = conn.create_user(
                        &NewUser {
                            email: Some(email.to_owned()),
                            email_verified: true,
                            display_name: identity.name.clone(),
                        },
                        now,
                    )?;
                    conn.link_external_identity(user.id, &identity.connector_id, &identity.subject, Some(email), now)
                        .map_err(conflict_is_a_race)?;
                    auditor.record(
                        conn,
                        now,
                        Event::new(Actor::User(user.id), Action::UserCreated)
                            .target(user.id)
                            .detail("connector", identity.connector_id.as_str())
                            .email("email", email)
                            .source(origin.ip),
                    )?;
                    user
                }
            }
        },
    };
    if user.disabled {
        return Err(LoginError::Disabled);
    }
    super::mapping::sync(conn, auditor, now, user.id, &identity.connector_id, &identity.groups, policy.role_mappings)?;
    let mut amr = vec!["fed".to_owned()];
    if policy.trust_upstream_mfa {
        amr.extend(identity.amr.iter().filter(|a| *a != "fed").cloned());
    }
    let acr = if policy.trust_upstream_mfa { identity.acr.as_deref() } else { None };
    // Linking an account is done from a signed-in session, which already passed this step.
    if link_user.is_none() && needs_second_factor(conn, user.id, &amr)? {
        let pending = mfa_login::begin(conn, now, user.id, &amr, &identity.connector_id, return_to)?;
        return Ok(Completed::SecondFactor(pending, user));
    }
    let (token, session) = session::start(conn, auditor, policy.session, now, user.id, &amr, acr, origin)?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user.id), Action::LoginSucceeded)
            .target(session.id)
            .detail("connector", identity.connector_id.as_str())
            .source(origin.ip),
    )?;
    Ok(Completed::Session(token, session, user))
}

#[derive(Debug, thiserror::Error)]
pub enum UnlinkError {
    #[error("no such linked account")]
    NotFound,
    #[error("the last way to sign in cannot be removed")]
    LastIdentity,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Removes one of the user's upstream identities, keeping at least one way to sign in.
pub fn unlink(
    conn: &mut (impl UserRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    user: UserId,
    identity: crate::domain::ExternalIdentityId,
    ip: Option<IpAddr>,
) -> Result<(), UnlinkError> {
    let identities = conn.external_identities_of(user)?;
    let Some(target) = identities.iter().find(|i| i.id == identity) else { return Err(UnlinkError::NotFound) };
    if identities.len() <= 1 {
        return Err(UnlinkError::LastIdentity);
    }
    conn.unlink_external_identity(user, identity)?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::IdentityUnlinked)
            .target(user)
            .detail("connector", target.connector_id.as_str())
            .source(ip),
    )?;
    Ok(())
}

/// The identity was linked by a concurrent login between our read and our write: refuse this
/// one (its transaction rolls back) instead of failing with a 500.
fn conflict_is_a_race(e: StorageError) -> LoginError {
    match e {
        StorageError::Conflict(_) => LoginError::Concurrent,
        other => other.into(),
    }
}

/// Records a failed login; `reason` is a fixed phrase, never upstream text with personal data.
pub fn record_failure(
    conn: &mut impl AuditRepository,
    auditor: &Auditor,
    now: NaiveDateTime,
    connector_id: &str,
    reason: &str,
    ip: Option<IpAddr>,
) -> Result<(), StorageError> {
    auditor.record(
        conn,
        now,
        Event::new(Actor::Anonymous, Action::LoginFailed)
            .outcome(Outcome::Failure)
            .detail("connector", connector_id)
            .detail("reason", reason)
            .source(ip),
    )
}

/// Records a verified SAML assertion's id until it expires; `false` if it was seen before.
pub fn saml_replay(
    conn: &mut impl crate::storage::saml_assertions::SamlAssertionRepository,
    now: NaiveDateTime,
    connector_id: &str,
    accepted: &crate::upstream::saml::Accepted,
) -> Result<bool, StorageError> {
    conn.record_saml_assertion(&crate::storage::saml_assertions::SamlAssertionRow {
        id: hash_token(&format!("{connector_id}\n{}", accepted.assertion_id)),
        connector_id: connector_id.to_owned(),
        seen_at: now,
        expires_at: accepted.remember_until.naive_utc(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signup_policy() {
        assert!(may_sign_up(&Signup::Open, "a@b.c"));
        assert!(!may_sign_up(&Signup::Invite, "a@b.c"));
        let d = Signup::Domains(vec!["example.com".into()]);
        assert!(may_sign_up(&d, "a@Example.com"));
        assert!(!may_sign_up(&d, "a@example.com.evil"));
        assert!(!may_sign_up(&d, "a@sub.example.com"));
        assert!(!may_sign_up(&d, "example.com"));
    }
}
