//! Second factors: TOTP authenticators ([`totp`]), WebAuthn passkeys and security keys
//! ([`webauthn`]) and one-time recovery codes ([`recovery`]).
//!
//! Domain only: no HTTP, no login flow. Every function takes the connection, and the time, as
//! parameters; the caller decides the transaction (`Db::write`), so an audit event commits with
//! the change it records and a refusal leaves nothing behind.
//!
//! What counts as a factor: a *confirmed* TOTP credential, or a registered WebAuthn credential
//! (a registration only stores one once the authenticator's answer is verified). A pending
//! TOTP enrolment never does, and
//! recovery codes are a way back in for someone who has a factor, not a factor of their own.
//!
//! Attempts are rate limited per account with the shared limiter ([`count_attempt`]); call it in
//! its own write transaction before checking a code, so a refused code still counts.

pub mod policy;
pub mod recovery;
pub mod totp;
pub mod webauthn;

#[cfg(test)]
mod tests;

use chrono::NaiveDateTime;

use crate::audit::{Action, Actor, Auditor, Event};
use crate::auth::rate_limit::{Limited, RateLimiter, Subject};
use crate::domain::UserId;
use crate::storage::audit::AuditRepository;
use crate::storage::mfa::MfaRepository;
use crate::storage::rate_limits::RateLimitRepository;
use crate::storage::webauthn::WebauthnRepository;
use crate::storage::{StorageError, StorageResult};

/// Longest input accepted for a code before any processing; anything longer is malformed.
pub const MAX_INPUT_LEN: usize = 64;

/// The rate-limit scope (endpoint family) second-factor attempts are counted under.
pub const RATE_LIMIT_SCOPE: &str = "mfa";

/// Why a second-factor operation was refused. The `Display` text is for logs; a page shows
/// its own words (and should not tell `InvalidCode` from `Replayed` to the person typing).
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// Not in the shape of a code (or a name): refused before any lookup.
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    #[error("the code is wrong")]
    InvalidCode,
    /// A TOTP code for a time step at or before the last accepted one.
    #[error("the code was already used")]
    Replayed,
    /// The user has no confirmed TOTP credential.
    #[error("no TOTP authenticator is set up")]
    NotEnrolled,
    #[error("no such pending enrolment")]
    NoPendingEnrolment,
    #[error("the enrolment expired; start again")]
    EnrolmentExpired,
    /// The user already has a confirmed TOTP credential; remove it first.
    #[error("a TOTP authenticator is already set up")]
    AlreadyEnrolled,
    #[error("no such credential")]
    NotFound,
    /// No such WebAuthn ceremony for this user and binding (never started, used, or another's).
    #[error("no such WebAuthn ceremony")]
    NoCeremony,
    #[error("the WebAuthn ceremony expired; start again")]
    CeremonyExpired,
    /// webauthn-rs refused the authenticator's answer (challenge, origin, RP id, signature, ...).
    #[error("WebAuthn response refused: {0}")]
    Rejected(String),
    /// The answer came from a credential that is not one of this user's (or not a passkey).
    #[error("unknown WebAuthn credential")]
    UnknownCredential,
    /// The signature counter did not grow: a cloned authenticator, or a concurrent use.
    #[error("the WebAuthn signature counter did not increase")]
    CounterWentBack,
    #[error("too many WebAuthn credentials")]
    TooMany,
    /// A passkey registration whose authenticator made no resident (discoverable) key.
    #[error("the authenticator made no discoverable credential")]
    NotDiscoverable,
    /// The time given is before the Unix epoch.
    #[error("the clock is before 1970")]
    BadTime,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Whether the user has a second factor (a confirmed TOTP credential, or a WebAuthn credential).
pub fn has_second_factor(conn: &mut (impl MfaRepository + WebauthnRepository), user: UserId) -> StorageResult<bool> {
    Ok(conn.confirmed_totp_credential(&user.to_string())?.is_some() || webauthn::has_credential(conn, user)?)
}

/// Counts one second-factor attempt by `user` at `now_unix`. Run it in its own transaction
/// before checking the code (as `web::password` does for passwords), so that the count
/// survives the rollback of a refused attempt.
pub fn count_attempt(
    conn: &mut impl RateLimitRepository,
    limiter: &RateLimiter,
    user: UserId,
    now_unix: i64,
) -> StorageResult<Result<(), Limited>> {
    limiter.hit(conn, RATE_LIMIT_SCOPE, Subject::Account(&format!("user:{user}")), now_unix)
}

/// What an administrator's reset removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetReport {
    pub totp_credentials: usize,
    pub webauthn_credentials: usize,
    pub recovery_codes: usize,
}

/// Removes every TOTP credential (pending ones too, with their sealed seeds), every WebAuthn
/// credential (and ceremony in progress) and every recovery code of `user`, for an administrator helping someone who lost their device.
/// Audited as `mfa.reset`. Checking that `actor` may do this is the admin use case's job.
pub fn reset(
    conn: &mut (impl MfaRepository + WebauthnRepository + AuditRepository),
    auditor: &Auditor,
    actor: Actor,
    user: UserId,
    now: NaiveDateTime,
) -> Result<ResetReport, MfaError> {
    let uid = user.to_string();
    let mut totp_credentials = 0;
    for row in conn.totp_credentials_of(&uid)? {
        if conn.delete_totp_credential(&row.id)?.is_some() {
            totp_credentials += 1;
        }
    }
    let webauthn_credentials = conn.delete_webauthn_credentials_of(&uid)?;
    conn.delete_webauthn_ceremonies_of(&uid)?;
    let recovery_codes = conn.delete_recovery_codes_of(&uid)?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::MfaReset)
            .target(user)
            .detail("totp_credentials", totp_credentials)
            .detail("webauthn_credentials", webauthn_credentials)
            .detail("recovery_codes", recovery_codes),
    )?;
    Ok(ResetReport { totp_credentials, webauthn_credentials, recovery_codes })
}

/// `now` as whole Unix seconds, refusing times before the epoch.
fn unix_secs(now: NaiveDateTime) -> Result<u64, MfaError> {
    u64::try_from(now.and_utc().timestamp()).map_err(|_| MfaError::BadTime)
}
