//! TOTP (RFC 6238): HMAC-SHA-1, 6 digits, 30-second steps, a 160-bit seed sealed at rest.
//!
//! A code is accepted for the current step or one step either side, never further, and only
//! for a step later than the last one accepted: the accepted step is stored by a conditional
//! update in the caller's transaction, so the same code (or an older one) never works twice,
//! not even on two instances at once. totp-rs checks codes (in constant time) but keeps no
//! state, so the window and the replay rule live here.

use std::fmt;

use chrono::{Duration, NaiveDateTime};
use rand::RngCore;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

use super::{MAX_INPUT_LEN, MfaError, unix_secs};
use crate::audit::{Action, Actor, Auditor, Event};
use crate::crypto::secretbox::MasterKeys;
use crate::domain::{TotpCredentialId, UserId};
use crate::storage::audit::AuditRepository;
use crate::storage::mfa::{MfaRepository, TotpCredentialRow};
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::{StorageError, StorageResult, parse_id};

pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// 160 bits, RFC 4226's recommendation.
pub const SEED_BYTES: usize = 20;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u64 = 1;
/// How long an enrolment may stay unconfirmed.
pub const PENDING_LIFETIME: Duration = Duration::minutes(15);
/// Longest credential name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A new, pending enrolment, shown to the user once: the secret is nowhere else in the clear.
pub struct TotpEnrolment {
    pub credential_id: TotpCredentialId,
    /// `otpauth://totp/...`, for the QR code.
    pub otpauth_uri: Zeroizing<String>,
    /// The seed in base32 (RFC 4648, no padding), for typing in by hand.
    pub secret_base32: Zeroizing<String>,
    /// The otpauth URI as a QR code: an SVG, base64 (for a `data:image/svg+xml;base64,` URL).
    pub qr_svg_base64: Zeroizing<String>,
    /// Confirm before this, or enrol again.
    pub expires_at: NaiveDateTime,
}

impl fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpEnrolment")
            .field("credential_id", &self.credential_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A credential as a settings page lists it (never the seed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpCredential {
    pub id: TotpCredentialId,
    pub name: String,
    pub confirmed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// A code that was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub credential_id: TotpCredentialId,
    pub step: i64,
}

/// Starts an enrolment: a fresh seed, sealed, in a pending credential (any earlier pending
/// one of the user is dropped). `issuer` and `account` label the entry in the authenticator app.
/// Refused with `AlreadyEnrolled` while the user has a confirmed authenticator: replacing one
/// is remove, then enrol.
pub fn enrol(
    conn: &mut (impl MfaRepository + SecretRepository),
    keys: &MasterKeys,
    user: UserId,
    name: &str,
    issuer: &str,
    account: &str,
    now: NaiveDateTime,
) -> Result<TotpEnrolment, MfaError> {
    let name = valid_name(name)?;
    let uid = user.to_string();
    if conn.confirmed_totp_credential(&uid)?.is_some() {
        return Err(MfaError::AlreadyEnrolled);
    }
    let mut seed = Zeroizing::new([0u8; SEED_BYTES]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_skew(0)
        .with_secret(seed.to_vec())
        .with_issuer(Some(label(issuer, "idp")))
        .with_account_name(label(account, "account"))
        .build()
        .map_err(|e| MfaError::Storage(StorageError::Corrupt(format!("TOTP parameters: {e}"))))?;
    let otpauth_uri = Zeroizing::new(totp.to_url().map_err(|e| StorageError::Corrupt(format!("TOTP URI: {e}")))?);
    let qr_svg_base64 = Zeroizing::new(qr_svg_base64(&otpauth_uri)?);
    let secret_base32 = Zeroizing::new(totp.secret().to_base32());

    conn.delete_pending_totp_of(&uid)?;
    let secret_id = conn.seal_secret(keys, SecretPurpose::TotpSeed, seed.as_ref(), now)?;
    let id = TotpCredentialId::new();
    conn.insert_totp_credential(&TotpCredentialRow {
        id: id.to_string(),
        user_id: uid,
        name,
        secret_id: secret_id.to_string(),
        confirmed_at: None,
        last_used_step: None,
        created_at: now,
        last_used_at: None,
    })?;
    Ok(TotpEnrolment {
        credential_id: id,
        otpauth_uri,
        secret_base32,
        qr_svg_base64,
        expires_at: now + PENDING_LIFETIME,
    })
}

/// Confirms a pending enrolment with a code from the authenticator; from now on it is the
/// user's factor. The step of that code counts as used. Audited as `mfa.totp_confirmed`.
pub fn confirm(
    conn: &mut (impl MfaRepository + SecretRepository + AuditRepository),
    keys: &MasterKeys,
    auditor: &Auditor,
    user: UserId,
    credential: TotpCredentialId,
    code: &str,
    now: NaiveDateTime,
) -> Result<Accepted, MfaError> {
    let code = normalise_code(code)?;
    let row = conn
        .find_totp_credential(&credential.to_string())?
        .filter(|r| r.user_id == user.to_string() && r.confirmed_at.is_none())
        .ok_or(MfaError::NoPendingEnrolment)?;
    if now >= row.created_at + PENDING_LIFETIME {
        return Err(MfaError::EnrolmentExpired);
    }
    if conn.confirmed_totp_credential(&row.user_id)?.is_some() {
        return Err(MfaError::AlreadyEnrolled);
    }
    let step = match matching_step(conn, keys, &row, &code, now)? {
        Match::Fresh(step) => step,
        Match::Replayed | Match::None => return Err(MfaError::InvalidCode),
    };
    match conn.confirm_totp_credential(&row.id, step, now) {
        Ok(true) => {}
        Ok(false) => return Err(MfaError::NoPendingEnrolment),
        // The one-confirmed-per-user index: another confirmation won a race.
        Err(StorageError::Conflict(_)) => return Err(MfaError::AlreadyEnrolled),
        Err(e) => return Err(e.into()),
    }
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::TotpConfirmed)
            .target(user)
            .detail("credential", row.id.as_str())
            .detail("name", row.name.as_str()),
    )?;
    Ok(Accepted { credential_id: credential, step })
}

/// Checks a code against the user's confirmed credential and, if it is good and fresh, records
/// its step as used. On any refusal nothing is written.
pub fn verify(
    conn: &mut (impl MfaRepository + SecretRepository),
    keys: &MasterKeys,
    user: UserId,
    code: &str,
    now: NaiveDateTime,
) -> Result<Accepted, MfaError> {
    let code = normalise_code(code)?;
    let row = conn.confirmed_totp_credential(&user.to_string())?.ok_or(MfaError::NotEnrolled)?;
    let step = match matching_step(conn, keys, &row, &code, now)? {
        Match::Fresh(step) => step,
        Match::Replayed => return Err(MfaError::Replayed),
        Match::None => return Err(MfaError::InvalidCode),
    };
    // Conditional on the stored step still being older: a concurrent acceptance of this step
    // (another request, another instance) makes this one a replay.
    if !conn.accept_totp_step(&row.id, step, now)? {
        return Err(MfaError::Replayed);
    }
    Ok(Accepted { credential_id: parse_id(&row.id)?, step })
}

/// Removes one of the user's credentials (pending or confirmed) and its sealed seed.
/// Audited as `mfa.totp_removed`.
pub fn remove(
    conn: &mut (impl MfaRepository + AuditRepository),
    auditor: &Auditor,
    actor: Actor,
    user: UserId,
    credential: TotpCredentialId,
    now: NaiveDateTime,
) -> Result<(), MfaError> {
    let id = credential.to_string();
    let row = conn.find_totp_credential(&id)?.filter(|r| r.user_id == user.to_string()).ok_or(MfaError::NotFound)?;
    conn.delete_totp_credential(&id)?;
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::TotpRemoved)
            .target(user)
            .detail("credential", id)
            .detail("confirmed", row.confirmed_at.is_some()),
    )?;
    Ok(())
}

/// The user's credentials, pending ones included.
pub fn credentials(conn: &mut impl MfaRepository, user: UserId) -> StorageResult<Vec<TotpCredential>> {
    conn.totp_credentials_of(&user.to_string())?
        .into_iter()
        .map(|r| {
            Ok(TotpCredential {
                id: parse_id(&r.id)?,
                name: r.name,
                confirmed_at: r.confirmed_at,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
            })
        })
        .collect()
}

/// Deletes enrolments left unconfirmed past their lifetime, with their seeds.
pub fn purge_pending(conn: &mut impl MfaRepository, now: NaiveDateTime) -> StorageResult<usize> {
    conn.purge_pending_totp(now - PENDING_LIFETIME)
}

enum Match {
    /// Matches a step in the window later than the last accepted one.
    Fresh(i64),
    /// Matches only a step in the window at or before the last accepted one.
    Replayed,
    None,
}

fn matching_step(
    conn: &mut impl SecretRepository,
    keys: &MasterKeys,
    row: &TotpCredentialRow,
    code: &str,
    now: NaiveDateTime,
) -> Result<Match, MfaError> {
    let seed = conn.open_secret(keys, parse_id(&row.secret_id)?, SecretPurpose::TotpSeed)?;
    let totp = checker(&seed)?;
    let current = unix_secs(now)? / STEP_SECS;
    let mut seen_old = false;
    for step in current.saturating_sub(SKEW_STEPS)..=current.saturating_add(SKEW_STEPS) {
        let Ok(signed) = i64::try_from(step) else { continue };
        let Some(at) = step.checked_mul(STEP_SECS) else { continue };
        // Skew 0: exactly this step.
        if totp.check(code, at).is_none() {
            continue;
        }
        if row.last_used_step.is_some_and(|last| signed <= last) {
            seen_old = true;
        } else {
            return Ok(Match::Fresh(signed));
        }
    }
    Ok(if seen_old { Match::Replayed } else { Match::None })
}

fn checker(seed: &[u8]) -> Result<Totp, MfaError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_step_duration(STEP_SECS)
        .with_skew(0)
        .with_secret(seed.to_vec())
        .build()
        .map_err(|e| MfaError::Storage(StorageError::Corrupt(format!("stored TOTP seed: {e}"))))
}

/// A code as typed: spaces (and a dash) people put in the middle are dropped; what remains must
/// be exactly six ASCII digits.
fn normalise_code(input: &str) -> Result<Zeroizing<String>, MfaError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(MfaError::Malformed("code too long"));
    }
    let code: Zeroizing<String> = Zeroizing::new(input.chars().filter(|c| !matches!(c, ' ' | '\t' | '-')).collect());
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MfaError::Malformed("a code is six digits"));
    }
    Ok(code)
}

fn valid_name(name: &str) -> Result<String, MfaError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(MfaError::Malformed("a name is 1 to 64 printable characters"));
    }
    Ok(name.to_owned())
}

/// An issuer or account label the otpauth format allows: no colon, no control characters.
fn label(s: &str, fallback: &str) -> String {
    let cleaned: String =
        s.chars().filter(|c| !c.is_control()).map(|c| if c == ':' { ' ' } else { c }).take(100).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() { fallback.to_owned() } else { cleaned.to_owned() }
}

/// The otpauth URI as a QR code: an SVG of one path, base64 for a `data:` URI.
fn qr_svg_base64(uri: &str) -> Result<String, MfaError> {
    use base64::Engine as _;
    use qrcodegen::{QrCode, QrCodeEcc};
    use std::fmt::Write as _;
    let qr = QrCode::encode_text(uri, QrCodeEcc::Medium)
        .map_err(|e| MfaError::Storage(StorageError::Corrupt(format!("TOTP QR code: {e}"))))?;
    const BORDER: i32 = 4;
    let size = qr.size();
    let dim = size + 2 * BORDER;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + BORDER, y + BORDER);
            }
        }
    }
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    );
    Ok(base64::engine::general_purpose::STANDARD.encode(svg))
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn codes_are_six_ascii_digits_after_dropping_spaces() {
        assert_eq!(normalise_code("123 456").unwrap().as_str(), "123456");
        assert_eq!(normalise_code(" 123-456 ").unwrap().as_str(), "123456");
        for bad in ["", "12345", "1234567", "abcdef", "12345a", "+12345", "１２３４５６", "١٢٣٤٥٦"] {
            assert!(matches!(normalise_code(bad), Err(MfaError::Malformed(_))), "{bad:?}");
        }
        assert!(matches!(normalise_code(&"1".repeat(10_000)), Err(MfaError::Malformed(_))));
    }

    #[test]
    fn labels_never_hold_a_colon() {
        assert_eq!(label("Acme: SSO", "x"), "Acme  SSO");
        assert_eq!(label(" \n ", "idp"), "idp");
    }
}
