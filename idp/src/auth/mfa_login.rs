//! The second step of a login: after the first factor (an upstream connector or a password), a
//! user with a second factor gets no session yet, only a *pending login*: a row keyed by the
//! SHA-256 of a random token that the browser holds in a cookie, single use, alive for
//! [`PENDING_LIFETIME_SECS`]. A TOTP code or a recovery code then turns it into a session with
//! `amr` = the first factor's + `otp` + `mfa`, a WebAuthn assertion with the first factor's +
//! `hwk` (or `swk` for a synced passkey) + `mfa`; `acr` = [`ACR_MFA`] either way.
//!
//! A passkey on the login page is a whole login on its own ([`finish_passkey_login`]): the
//! passkey is possession, its PIN or biometric the second factor; `amr` = `hwk`/`swk` + `mfa`.
//!
//! Wrong codes leave the pending login in place (the person may try again) and are counted per
//! account with [`crate::mfa::count_attempt`], which the caller runs in its own transaction first.

use std::net::IpAddr;

use chrono::{Duration, NaiveDateTime};

use super::session::{self, Origin, SessionToken};
use crate::audit::{Action, Actor, Auditor, Event, Outcome};
use crate::config::SessionConfig;
use crate::crypto::secretbox::MasterKeys;
use crate::crypto::tokens::{hash_token, random_token};
use crate::domain::UserId;
use crate::domain::session::Session;
use crate::mfa::{self, MfaError};
use crate::storage::audit::AuditRepository;
use crate::storage::mfa::MfaRepository;
use crate::storage::pending_mfa::{PendingMfaLoginRow, PendingMfaRepository};
use crate::storage::secrets::SecretRepository;
use crate::storage::sessions::SessionRepository;
use crate::storage::users::UserRepository;
use crate::storage::webauthn::WebauthnRepository;
use crate::storage::{StorageError, StorageResult, parse_id};

/// How long the second factor may take after the first.
pub const PENDING_LIFETIME_SECS: i64 = 300;
/// The `acr` of a session that passed our second-factor step (NIST SP 800-63B AAL2: two
/// distinct factors, one of them a one-time code).
pub const ACR_MFA: &str = "aal2";
/// RFC 8176 values added to the first factor's `amr`.
pub const AMR_OTP: &str = "otp";
pub const AMR_MFA: &str = "mfa";

/// Whether a login whose first factor produced `amr` must give a second factor before it gets
/// a session. Today: the user has a second factor (a confirmed TOTP authenticator or a WebAuthn
/// credential, see [`mfa::has_second_factor`]) and the first factor did not
/// already assert `mfa` (a trusted upstream's). The hook for policy (an organisation or project
/// that requires a second factor) is here.
pub fn needs_second_factor(
    conn: &mut (impl MfaRepository + WebauthnRepository),
    user: UserId,
    amr: &[String],
) -> StorageResult<bool> {
    if amr.iter().any(|a| a == AMR_MFA) {
        return Ok(false);
    }
    mfa::has_second_factor(conn, user)
}

/// The cookie value of a pending login. Never logged, never stored.
pub struct PendingToken(String);

impl PendingToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PendingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingToken(***)")
    }
}

/// A login waiting for its second factor.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    pub id: String,
    pub user_id: UserId,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    /// How the first factor was given: a connector id, or `password`.
    pub method: String,
    pub return_to: Option<String>,
    pub expires_at: NaiveDateTime,
}

/// Parks a login whose first factor succeeded until its second factor is given.
pub fn begin(
    conn: &mut impl PendingMfaRepository,
    now: NaiveDateTime,
    user: UserId,
    amr: &[String],
    method: &str,
    return_to: Option<&str>,
) -> StorageResult<PendingToken> {
    let token = random_token(32);
    conn.insert_pending_mfa_login(&PendingMfaLoginRow {
        id: uuid::Uuid::new_v4().to_string(),
        token_hash: hash_token(&token),
        user_id: user.to_string(),
        amr: serde_json::to_string(amr).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        // The first factor's acr is replaced by ours when the second factor is given.
        acr: None,
        method: method.to_owned(),
        return_to: return_to.map(str::to_owned),
        created_at: now,
        expires_at: now + Duration::seconds(PENDING_LIFETIME_SECS),
    })?;
    Ok(PendingToken(token))
}

/// The live pending login a cookie names; unknown, malformed and expired ones are `None`.
pub fn find(
    conn: &mut impl PendingMfaRepository,
    now: NaiveDateTime,
    token: Option<&str>,
) -> StorageResult<Option<PendingLogin>> {
    let Some(token) = token.filter(|t| t.len() == 43) else { return Ok(None) };
    let Some(row) = conn.find_pending_mfa_login(&hash_token(token))? else { return Ok(None) };
    if row.expires_at <= now {
        return Ok(None);
    }
    Ok(Some(PendingLogin {
        user_id: parse_id(&row.user_id)?,
        amr: serde_json::from_str(&row.amr).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        id: row.id,
        acr: row.acr,
        method: row.method,
        return_to: row.return_to,
        expires_at: row.expires_at,
    }))
}

/// What the person gave: a code they typed, or their authenticator's answer to a WebAuthn
/// ceremony started for this pending login.
#[derive(Clone, Copy)]
pub enum SecondFactor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
    WebAuthn { webauthn: &'a webauthn_rs::Webauthn, ceremony: &'a str, response: &'a serde_json::Value },
}

impl std::fmt::Debug for SecondFactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecondFactor({}, ***)", self.name())
    }
}

impl SecondFactor<'_> {
    fn name(&self) -> &'static str {
        match self {
            SecondFactor::Totp(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
            SecondFactor::WebAuthn { .. } => "webauthn",
        }
    }
}

/// A finished login.
#[derive(Debug)]
pub struct Finished {
    pub token: SessionToken,
    pub session: Session,
    pub return_to: Option<String>,
    /// Set when a recovery code was used: how many the user has left.
    pub recovery_codes_left: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MfaLoginError {
    #[error("no such pending login (expired, already used, or never started)")]
    NoPendingLogin,
    #[error("the account is disabled")]
    Disabled,
    /// The code was refused (wrong, replayed, malformed): the pending login stays.
    #[error("second factor refused: {0}")]
    Refused(MfaError),
}

/// Checks the second factor of a pending login and, when it is good, ends the pending login and
/// starts the session (ending the browser's `previous` one). Run it in one write transaction:
/// the outer error is a storage failure (roll back); the inner one a refusal that is audited
/// as `login.failed` and leaves everything else as it was (commit).
#[allow(clippy::too_many_arguments)]
pub fn finish(
    conn: &mut (
             impl PendingMfaRepository
             + MfaRepository
             + WebauthnRepository
             + SecretRepository
             + SessionRepository
             + AuditRepository
         ),
    keys: &MasterKeys,
    auditor: &Auditor,
    config: &SessionConfig,
    now: NaiveDateTime,
    token: &str,
    factor: SecondFactor<'_>,
    origin: &Origin,
    previous: Option<&str>,
) -> Result<Result<Finished, MfaLoginError>, StorageError> {
    let Some(pending) = find(conn, now, Some(token))? else { return Ok(Err(MfaLoginError::NoPendingLogin)) };
    let user = pending.user_id;
    let checked = match factor {
        SecondFactor::Totp(code) => mfa::totp::verify(conn, keys, user, code, now).map(|_| (None, AMR_OTP)),
        SecondFactor::RecoveryCode(code) => {
            mfa::recovery::redeem(conn, auditor, user, code, origin.ip, now).map(|left| (Some(left), AMR_OTP))
        }
        SecondFactor::WebAuthn { webauthn, ceremony, response } => {
            match mfa::webauthn::verify_second_factor(conn, webauthn, user, &pending.id, ceremony, response, now) {
                Ok(used) => {
                    mfa::webauthn::audit_use(conn, auditor, &used, origin.ip, now)?;
                    Ok((None, used.amr))
                }
                Err(e) => Err(e),
            }
        }
    };
    let (recovery_codes_left, method_amr) = match checked {
        Ok(done) => done,
        Err(MfaError::Storage(e)) => return Err(e),
        Err(e) => {
            record_failure(conn, auditor, now, user, &pending.method, factor.name(), reason(&e), origin.ip)?;
            return Ok(Err(MfaLoginError::Refused(e)));
        }
    };
    // Single use: a concurrent request that finished first makes this one roll back (its
    // accepted step or used recovery code with it).
    if !conn.delete_pending_mfa_login(&pending.id)? {
        return Err(StorageError::Conflict("pending login already used".into()));
    }
    let mut amr = pending.amr.clone();
    for extra in [method_amr, AMR_MFA] {
        if !amr.iter().any(|a| a == extra) {
            amr.push(extra.to_owned());
        }
    }
    session::end_previous(conn, previous)?;
    let (token, session) = session::start(conn, auditor, config, now, user, &amr, Some(ACR_MFA), origin)?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::LoginSucceeded)
            .target(session.id)
            .detail("method", pending.method.as_str())
            .detail("second_factor", factor.name())
            .source(origin.ip),
    )?;
    Ok(Ok(Finished { token, session, return_to: pending.return_to, recovery_codes_left }))
}

fn reason(e: &MfaError) -> &'static str {
    match e {
        MfaError::Replayed => "code replayed",
        MfaError::Malformed(_) => "malformed code",
        MfaError::NotEnrolled => "no second factor",
        MfaError::NoCeremony => "no such webauthn ceremony",
        MfaError::CeremonyExpired => "webauthn ceremony expired",
        MfaError::Rejected(_) => "webauthn response refused",
        MfaError::UnknownCredential => "unknown webauthn credential",
        MfaError::CounterWentBack => "webauthn counter did not increase",
        _ => "wrong code",
    }
}

/// Finishes a username-less passkey login from the login page (see
/// [`mfa::webauthn::finish_passkey_login`]) and starts the session, ending the browser's
/// `previous` one. Run it in one write transaction: the outer error is a storage failure (roll
/// back), the inner one a refusal, audited as `login.failed` (commit: the ceremony is used up).
#[allow(clippy::too_many_arguments)]
pub fn finish_passkey_login(
    conn: &mut (impl WebauthnRepository + UserRepository + SessionRepository + AuditRepository),
    webauthn: &webauthn_rs::Webauthn,
    auditor: &Auditor,
    config: &SessionConfig,
    now: NaiveDateTime,
    pre_session: &str,
    ceremony: &str,
    response: &serde_json::Value,
    origin: &Origin,
    previous: Option<&str>,
) -> Result<Result<(SessionToken, Session), MfaLoginError>, StorageError> {
    let used = match mfa::webauthn::finish_passkey_login(conn, webauthn, pre_session, ceremony, response, now) {
        Ok(u) => u,
        Err(MfaError::Storage(e)) => return Err(e),
        Err(e) => {
            auditor.record(
                conn,
                now,
                Event::new(Actor::Anonymous, Action::LoginFailed)
                    .outcome(Outcome::Failure)
                    .detail("method", "passkey")
                    .detail("reason", reason(&e))
                    .source(origin.ip),
            )?;
            return Ok(Err(MfaLoginError::Refused(e)));
        }
    };
    let user = conn.find_user(used.user)?.ok_or(StorageError::NotFound)?;
    if user.disabled {
        auditor.record(
            conn,
            now,
            Event::new(Actor::User(used.user), Action::LoginFailed)
                .outcome(Outcome::Failure)
                .target(used.user)
                .detail("method", "passkey")
                .detail("reason", "account disabled")
                .source(origin.ip),
        )?;
        return Ok(Err(MfaLoginError::Disabled));
    }
    mfa::webauthn::audit_use(conn, auditor, &used, origin.ip, now)?;
    let amr = vec![used.amr.to_owned(), AMR_MFA.to_owned()];
    session::end_previous(conn, previous)?;
    let (token, session) = session::start(conn, auditor, config, now, used.user, &amr, Some(ACR_MFA), origin)?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(used.user), Action::LoginSucceeded)
            .target(session.id)
            .detail("method", "passkey")
            .detail("credential", used.credential.to_string())
            .source(origin.ip),
    )?;
    Ok(Ok((token, session)))
}

/// Records a refused second factor; `reason` is a fixed phrase.
#[allow(clippy::too_many_arguments)]
fn record_failure(
    conn: &mut impl AuditRepository,
    auditor: &Auditor,
    now: NaiveDateTime,
    user: UserId,
    method: &str,
    factor: &str,
    reason: &str,
    ip: Option<IpAddr>,
) -> StorageResult<()> {
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::LoginFailed)
            .outcome(Outcome::Failure)
            .target(user)
            .detail("method", method)
            .detail("second_factor", factor)
            .detail("reason", reason)
            .source(ip),
    )
}

/// Removes pending logins past their lifetime.
pub fn purge_expired(conn: &mut impl PendingMfaRepository, now: NaiveDateTime) -> StorageResult<usize> {
    conn.purge_pending_mfa_logins(now)
}
