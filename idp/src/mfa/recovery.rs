//! Recovery codes: a set of ten one-time codes, shown once, stored only as SHA-256.
//!
//! Each code is 120 random bits written as 24 Crockford base32 characters in six groups of four
//! (`7KQ2-M9XD-...`). With that much entropy a fast hash is enough (as for API tokens, see
//! `crypto::tokens::hash_token`): guessing is hopeless and a lookup is one indexed equality.
//! Input is forgiving: case, spaces and dashes are ignored, and the letters people confuse with
//! digits (O, I, L) read as 0 and 1, Crockford's rule.

use std::fmt;
use std::net::IpAddr;

use chrono::NaiveDateTime;
use rand::RngCore;
use zeroize::Zeroizing;

use super::{MAX_INPUT_LEN, MfaError};
use crate::audit::{Action, Actor, Auditor, Event};
use crate::crypto::tokens::hash_token;
use crate::domain::{RecoveryCodeSetId, UserId};
use crate::storage::StorageResult;
use crate::storage::audit::AuditRepository;
use crate::storage::mfa::{MfaRepository, RecoveryCodeRow};

pub const CODES_PER_SET: usize = 10;
/// Random bytes per code: 120 bits.
pub const CODE_BYTES: usize = 15;
/// Characters per code (5 bits each).
pub const CODE_CHARS: usize = CODE_BYTES * 8 / 5;
const GROUP: usize = 4;
/// Crockford's base32: no I, L, O, U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

const _: () = assert!(CODE_CHARS * 5 >= 112, "a recovery code carries at least 112 bits");
const _: () = assert!(CODE_BYTES * 8 == CODE_CHARS * 5, "codes encode whole bytes");

/// A freshly generated set, for showing once. `Debug` never prints the codes.
pub struct RecoveryCodes {
    pub set_id: RecoveryCodeSetId,
    codes: Vec<Zeroizing<String>>,
}

impl RecoveryCodes {
    /// The codes, grouped for reading (`XXXX-XXXX-XXXX-XXXX-XXXX-XXXX`).
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.codes.iter().map(|c| c.as_str())
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodes({}, {} codes: ***)", self.set_id, self.codes.len())
    }
}

/// Where a user's recovery codes stand, for a settings page or a warning after login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryStatus {
    /// Codes in the current set (0: none generated).
    pub total: i64,
    pub remaining: i64,
    /// Codes used after the `since` given (e.g. the previous login).
    pub used_since: i64,
}

/// Generates a new set for `user`, replacing (voiding) any earlier set. Audited as
/// `mfa.recovery_codes_generated`.
pub fn generate(
    conn: &mut (impl MfaRepository + AuditRepository),
    auditor: &Auditor,
    user: UserId,
    now: NaiveDateTime,
) -> Result<RecoveryCodes, MfaError> {
    let set_id = RecoveryCodeSetId::new();
    let uid = user.to_string();
    let mut codes = Vec::with_capacity(CODES_PER_SET);
    let mut rows = Vec::with_capacity(CODES_PER_SET);
    for _ in 0..CODES_PER_SET {
        let mut raw = Zeroizing::new([0u8; CODE_BYTES]);
        rand::rngs::OsRng.fill_bytes(raw.as_mut());
        let plain = encode(&raw);
        rows.push(RecoveryCodeRow {
            code_hash: hash_token(&plain),
            user_id: uid.clone(),
            set_id: set_id.to_string(),
            created_at: now,
            used_at: None,
        });
        codes.push(group(&plain));
    }
    conn.replace_recovery_codes(&uid, &rows)?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::RecoveryCodesGenerated)
            .target(user)
            .detail("set", set_id.to_string())
            .detail("count", CODES_PER_SET),
    )?;
    Ok(RecoveryCodes { set_id, codes })
}

/// Uses one of the user's codes: marks it used (once, even under a race) and audits
/// `mfa.recovery_code_used`; returns how many codes remain. Refusals (unknown, used, another
/// user's) change nothing.
pub fn redeem(
    conn: &mut (impl MfaRepository + AuditRepository),
    auditor: &Auditor,
    user: UserId,
    code: &str,
    source: Option<IpAddr>,
    now: NaiveDateTime,
) -> Result<i64, MfaError> {
    let canonical = normalise(code)?;
    let uid = user.to_string();
    let used = conn.use_recovery_code(&uid, &hash_token(&canonical), now)?.ok_or(MfaError::InvalidCode)?;
    let counts = conn.recovery_code_counts(&uid, now)?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::RecoveryCodeUsed)
            .target(user)
            .source(source)
            .detail("set", used.set_id)
            .detail("remaining", counts.remaining),
    )?;
    Ok(counts.remaining)
}

/// The user's codes: how many are left, and how many were used after `since`.
pub fn status(conn: &mut impl MfaRepository, user: UserId, since: NaiveDateTime) -> StorageResult<RecoveryStatus> {
    let c = conn.recovery_code_counts(&user.to_string(), since)?;
    Ok(RecoveryStatus { total: c.total, remaining: c.remaining, used_since: c.used_since })
}

/// The canonical form of a typed code: 24 upper-case Crockford characters, separators gone.
pub fn normalise(input: &str) -> Result<Zeroizing<String>, MfaError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(MfaError::Malformed("recovery code too long"));
    }
    let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS));
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '\t' | '-' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
            _ => return Err(MfaError::Malformed("not a recovery code")),
        };
        out.push(c);
    }
    if out.len() != CODE_CHARS {
        return Err(MfaError::Malformed("a recovery code is 24 characters"));
    }
    Ok(out)
}

fn encode(bytes: &[u8; CODE_BYTES]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS));
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let index = ((acc >> bits) & 31) as usize;
            out.push(ALPHABET.get(index).copied().map_or('0', char::from));
        }
        acc &= (1 << bits) - 1;
    }
    out
}

fn group(code: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP));
    for (i, c) in code.chars().enumerate() {
        if i > 0 && i % GROUP == 0 {
            out.push('-');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn encoding_is_crockford_and_whole() {
        assert_eq!(encode(&[0; CODE_BYTES]).as_str(), "0".repeat(CODE_CHARS));
        assert_eq!(encode(&[0xff; CODE_BYTES]).as_str(), "Z".repeat(CODE_CHARS));
        let mut one = [0u8; CODE_BYTES];
        one[CODE_BYTES - 1] = 1;
        assert_eq!(encode(&one).as_str(), format!("{}1", "0".repeat(CODE_CHARS - 1)));
        assert_eq!(group("ABCDEFGH").as_str(), "ABCD-EFGH");
    }

    #[test]
    fn input_is_forgiving_about_case_separators_and_lookalikes() {
        let canonical = "7KQ2M9XD0000111122223333";
        for typed in ["7kq2-m9xd-0000-1111-2222-3333", " 7KQ2 M9XD OOOO IIII 2222 3333 ", "7kq2m9xdoooollll22223333"] {
            assert_eq!(normalise(typed).unwrap().as_str(), canonical, "{typed:?}");
        }
    }

    #[test]
    fn malformed_and_oversized_input_is_an_error() {
        for bad in
            ["", "7KQ2", "7KQ2-M9XD-0000-1111-2222-333U", "7KQ2-M9XD-0000-1111-2222-33333", "ÄKQ2M9XD0000111122223333"]
        {
            assert!(matches!(normalise(bad), Err(MfaError::Malformed(_))), "{bad:?}");
        }
        assert!(matches!(normalise(&"A".repeat(1 << 20)), Err(MfaError::Malformed(_))));
        assert!(matches!(normalise(&"-".repeat(MAX_INPUT_LEN + 1)), Err(MfaError::Malformed(_))));
    }
}
