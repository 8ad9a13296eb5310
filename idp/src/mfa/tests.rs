//! Second factors against a real SQLite database with a fixed clock. Every TOTP code comes from
//! `oathtool` (OATH Toolkit), an independent implementation, never from our own code; every
//! refusal is checked to have changed nothing.

use std::process::Command;

use chrono::{DateTime, NaiveDateTime};

use super::recovery::{self, CODE_CHARS, CODES_PER_SET};
use super::totp::{self, TotpEnrolment};
use super::*;
use crate::audit::{Action, Actor, Auditor};
use crate::clock::{Clock, FixedClock};
use crate::config::RateLimitConfig;
use crate::crypto::pseudonym::Pseudonymiser;
use crate::crypto::secretbox::{KeySource, Keyring, MasterKeys};
use crate::domain::user::NewUser;
use crate::domain::{TotpCredentialId, UserId};
use crate::storage::audit::AuditRepository;
use crate::storage::mfa::{MfaRepository, RecoveryCodeRow, TotpCredentialRow};
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::users::UserRepository;
use crate::storage::{DatabaseUrl, Db, schema};

/// 2027-01-15 08:00:00 UTC, the first second of a step.
const T0: i64 = 1_800_000_000;

struct World {
    _dir: tempfile::TempDir,
    db: Db,
    keys: MasterKeys,
    auditor: Auditor,
    clock: FixedClock,
    alice: UserId,
    bob: UserId,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("t.sqlite")), 4).unwrap();
    db.migrate().unwrap();
    let keys = MasterKeys::new(KeySource::Env(zeroize::Zeroizing::new(String::new())), Keyring::generate());
    let auditor = Auditor::new(Pseudonymiser::new(zeroize::Zeroizing::new(vec![9; 32])));
    let clock = FixedClock::at_unix(T0);
    let now = clock.now_naive();
    let user = |email: &str| {
        db.write(|c| {
            c.create_user(&NewUser { email: Some(email.into()), email_verified: true, display_name: None }, now)
        })
        .unwrap()
        .id
    };
    let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
    World { _dir: dir, db, keys, auditor, clock, alice, bob }
}

/// The TOTP code for `unix` from oathtool: `oathtool --totp -b <base32> --now '<UTC time>'`.
fn oathtool(base32: &str, unix: i64) -> String {
    let when = DateTime::from_timestamp(unix, 0).unwrap().format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let out = Command::new("oathtool")
        .args(["--totp", "-b", base32, "--now", &when])
        .output()
        .expect("oathtool must be installed (Debian package oathtool; scripts/test installs it)");
    assert!(out.status.success(), "oathtool failed: {}", String::from_utf8_lossy(&out.stderr));
    let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(code.len(), 6, "{code:?}");
    code
}

impl World {
    fn now(&self) -> NaiveDateTime {
        self.clock.now_naive()
    }

    fn unix(&self) -> i64 {
        self.clock.now().timestamp()
    }

    fn enrol(&self, user: UserId) -> TotpEnrolment {
        self.db
            .write(|c| totp::enrol(c, &self.keys, user, "Phone", "Acme IdP", "alice@example.com", self.now()))
            .unwrap()
    }

    fn confirm(&self, user: UserId, e: &TotpEnrolment, code: &str) -> Result<totp::Accepted, MfaError> {
        self.db.write(|c| totp::confirm(c, &self.keys, &self.auditor, user, e.credential_id, code, self.now()))
    }

    /// Alice with a confirmed authenticator (confirmed with the code of the current step).
    fn enrolled(&self) -> TotpEnrolment {
        let e = self.enrol(self.alice);
        self.confirm(self.alice, &e, &oathtool(&e.secret_base32, self.unix())).unwrap();
        e
    }

    fn verify(&self, code: &str) -> Result<totp::Accepted, MfaError> {
        self.db.write(|c| totp::verify(c, &self.keys, self.alice, code, self.now()))
    }

    fn row(&self, id: TotpCredentialId) -> Option<TotpCredentialRow> {
        self.db.read(|c| c.find_totp_credential(&id.to_string())).unwrap()
    }

    fn step(&self, id: TotpCredentialId) -> Option<i64> {
        self.row(id).unwrap().last_used_step
    }

    fn codes_rows(&self) -> Vec<RecoveryCodeRow> {
        use diesel::prelude::*;
        self.db
            .read(|c| {
                schema::recovery_codes::table
                    .order(schema::recovery_codes::code_hash)
                    .select(RecoveryCodeRow::as_select())
                    .load(c)
                    .map_err(crate::storage::StorageError::from)
            })
            .unwrap()
    }

    fn actions(&self, action: Action) -> usize {
        self.db.read(|c| c.audit_events(Some(action.as_str()), 100)).unwrap().len()
    }

    fn redeem(&self, user: UserId, code: &str) -> Result<i64, MfaError> {
        self.db.write(|c| recovery::redeem(c, &self.auditor, user, code, None, self.now()))
    }

    fn factor(&self, user: UserId) -> bool {
        self.db.read(|c| has_second_factor(c, user)).unwrap()
    }
}

/// A six-digit code that is not valid for any step from −3 to +3 around `unix`.
fn wrong_code(base32: &str, unix: i64) -> String {
    let near: Vec<String> = (-3..=3).map(|k| oathtool(base32, unix + 30 * k)).collect();
    (0..1_000_000).map(|n| format!("{n:06}")).find(|c| !near.contains(c)).unwrap()
}

// ---- TOTP ----

#[test]
fn an_enrolment_confirmed_with_an_oathtool_code_becomes_the_factor() {
    let w = world();
    let e = w.enrol(w.alice);
    assert_eq!(e.secret_base32.len(), 32, "160 bits in base32");
    assert!(e.otpauth_uri.starts_with("otpauth://totp/"), "{}", e.otpauth_uri.as_str());
    assert!(e.otpauth_uri.contains(&format!("secret={}", e.secret_base32.as_str())));
    assert!(e.otpauth_uri.contains("issuer=Acme%20IdP"), "{}", e.otpauth_uri.as_str());
    let svg = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, e.qr_svg_base64.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(svg.starts_with("<svg ") && svg.contains("<path d=\"M"), "{svg}");
    assert!(!format!("{e:?}").contains(e.secret_base32.as_str()), "Debug leaks the seed");
    assert!(!w.factor(w.alice));
    let accepted = w.confirm(w.alice, &e, &oathtool(&e.secret_base32, w.unix())).unwrap();
    assert_eq!(accepted.step, T0 / 30);
    assert!(w.factor(w.alice));
    assert!(!w.factor(w.bob));
    let row = w.row(e.credential_id).unwrap();
    assert_eq!((row.confirmed_at, row.last_used_step), (Some(w.now()), Some(T0 / 30)));
    assert_eq!(w.actions(Action::TotpConfirmed), 1);
    // Sealed at rest: the secrets row opens as a TOTP seed and holds no plaintext.
    let seed = w.db.read(|c| c.open_secret(&w.keys, row.secret_id.parse().unwrap(), SecretPurpose::TotpSeed)).unwrap();
    assert_eq!(seed.len(), 20);
    let sealed: Vec<u8> =
        w.db.read(|c| {
            use diesel::prelude::*;
            schema::secrets::table
                .find(&row.secret_id)
                .select(schema::secrets::sealed)
                .first(c)
                .map_err(crate::storage::StorageError::from)
        })
        .unwrap();
    assert!(!sealed.windows(seed.len()).any(|win| win == seed.as_slice()));
}

#[test]
fn codes_of_the_current_and_adjacent_steps_are_accepted_once_each() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(300);
    let t = w.unix();
    // Oldest first: each accepted step must be later than the last.
    for (k, code) in [(-1, oathtool(&e.secret_base32, t - 30)), (0, oathtool(&e.secret_base32, t))] {
        let a = w.verify(&code).unwrap();
        assert_eq!(a.step, t / 30 + k);
        assert_eq!(w.step(e.credential_id), Some(t / 30 + k));
    }
    let a = w.verify(&oathtool(&e.secret_base32, t + 30)).unwrap();
    assert_eq!(a.step, t / 30 + 1);
    assert_eq!(w.row(e.credential_id).unwrap().last_used_at, Some(w.now()));
}

#[test]
fn a_code_with_spaces_is_accepted() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(30);
    let code = oathtool(&e.secret_base32, w.unix());
    let spaced = format!(" {} {} ", &code[..3], &code[3..]);
    assert!(w.verify(&spaced).is_ok());
}

#[test]
fn the_same_code_is_refused_a_second_time_within_its_window() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(60);
    let code = oathtool(&e.secret_base32, w.unix());
    w.verify(&code).unwrap();
    let stored = w.row(e.credential_id).unwrap();
    assert!(matches!(w.verify(&code), Err(MfaError::Replayed)));
    // Half a step later, and a whole step later (it is then the previous step, still in the window).
    for secs in [15, 15] {
        w.clock.advance(secs);
        assert!(matches!(w.verify(&code), Err(MfaError::Replayed)));
    }
    let after = w.row(e.credential_id).unwrap();
    assert_eq!((after.last_used_step, after.last_used_at), (stored.last_used_step, stored.last_used_at));
}

#[test]
fn the_confirmation_code_cannot_be_used_to_log_in() {
    let w = world();
    let e = w.enrol(w.alice);
    let code = oathtool(&e.secret_base32, w.unix());
    w.confirm(w.alice, &e, &code).unwrap();
    assert!(matches!(w.verify(&code), Err(MfaError::Replayed)));
    assert_eq!(w.step(e.credential_id), Some(T0 / 30));
}

#[test]
fn an_older_step_than_the_last_accepted_is_refused() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(300);
    let t = w.unix();
    w.verify(&oathtool(&e.secret_base32, t + 30)).unwrap();
    for earlier in [t, t - 30] {
        assert!(matches!(w.verify(&oathtool(&e.secret_base32, earlier)), Err(MfaError::Replayed)));
    }
    assert_eq!(w.step(e.credential_id), Some(t / 30 + 1));
}

#[test]
fn a_code_from_two_steps_ago_is_refused() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(300);
    let before = w.row(e.credential_id).unwrap();
    let code = oathtool(&e.secret_base32, w.unix() - 60);
    assert!(matches!(w.verify(&code), Err(MfaError::InvalidCode)));
    let after = w.row(e.credential_id).unwrap();
    assert_eq!((after.last_used_step, after.last_used_at), (before.last_used_step, before.last_used_at));
}

#[test]
fn a_code_from_two_steps_ahead_is_refused() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(300);
    let before = w.row(e.credential_id).unwrap();
    let code = oathtool(&e.secret_base32, w.unix() + 60);
    assert!(matches!(w.verify(&code), Err(MfaError::InvalidCode)));
    let after = w.row(e.credential_id).unwrap();
    assert_eq!((after.last_used_step, after.last_used_at), (before.last_used_step, before.last_used_at));
}

#[test]
fn a_wrong_code_leaves_last_used_step_unchanged() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(90);
    let before = w.row(e.credential_id).unwrap();
    let wrong = wrong_code(&e.secret_base32, w.unix());
    assert!(matches!(w.verify(&wrong), Err(MfaError::InvalidCode)));
    let after = w.row(e.credential_id).unwrap();
    assert_eq!((after.last_used_step, after.last_used_at), (before.last_used_step, before.last_used_at));
    // The right code still works afterwards.
    assert!(w.verify(&oathtool(&e.secret_base32, w.unix())).is_ok());
}

#[test]
fn an_unconfirmed_enrolment_is_not_a_factor() {
    let w = world();
    let e = w.enrol(w.alice);
    assert!(!w.factor(w.alice));
    let code = oathtool(&e.secret_base32, w.unix());
    assert!(matches!(w.verify(&code), Err(MfaError::NotEnrolled)));
    let row = w.row(e.credential_id).unwrap();
    assert_eq!((row.confirmed_at, row.last_used_step, row.last_used_at), (None, None, None));
    assert_eq!(w.actions(Action::TotpConfirmed), 0);
}

#[test]
fn a_wrong_confirmation_code_leaves_the_enrolment_pending() {
    let w = world();
    let e = w.enrol(w.alice);
    let wrong = wrong_code(&e.secret_base32, w.unix());
    assert!(matches!(w.confirm(w.alice, &e, &wrong), Err(MfaError::InvalidCode)));
    let row = w.row(e.credential_id).unwrap();
    assert_eq!((row.confirmed_at, row.last_used_step), (None, None));
    assert!(!w.factor(w.alice));
    // Nor can another user confirm it, even with the right code.
    let right = oathtool(&e.secret_base32, w.unix());
    assert!(matches!(w.confirm(w.bob, &e, &right), Err(MfaError::NoPendingEnrolment)));
    assert_eq!(w.row(e.credential_id).unwrap().confirmed_at, None);
}

#[test]
fn a_pending_enrolment_expires_and_is_purged_with_its_seed() {
    let w = world();
    let e = w.enrol(w.alice);
    let secrets = w.db.read(|c| c.count_secrets()).unwrap();
    w.clock.advance(15 * 60);
    let code = oathtool(&e.secret_base32, w.unix());
    assert!(matches!(w.confirm(w.alice, &e, &code), Err(MfaError::EnrolmentExpired)));
    assert_eq!(w.row(e.credential_id).unwrap().confirmed_at, None);
    // A confirmed credential of another user is never purged.
    let b = w.db.write(|c| totp::enrol(c, &w.keys, w.bob, "Key", "idp", "bob", w.now())).unwrap();
    w.confirm(w.bob, &b, &oathtool(&b.secret_base32, w.unix())).unwrap();
    w.clock.advance(3600);
    assert_eq!(w.db.write(|c| totp::purge_pending(c, w.now())).unwrap(), 1);
    assert!(w.row(e.credential_id).is_none());
    assert!(w.row(b.credential_id).is_some());
    assert_eq!(w.db.read(|c| c.count_secrets()).unwrap(), secrets, "the expired seed went with it");
}

#[test]
fn a_new_enrolment_replaces_a_pending_one() {
    let w = world();
    let first = w.enrol(w.alice);
    let second = w.enrol(w.alice);
    assert!(w.row(first.credential_id).is_none());
    let code = oathtool(&first.secret_base32, w.unix());
    assert!(matches!(w.confirm(w.alice, &first, &code), Err(MfaError::NoPendingEnrolment)));
    assert!(w.confirm(w.alice, &second, &oathtool(&second.secret_base32, w.unix())).is_ok());
}

#[test]
fn a_second_authenticator_is_refused_while_one_is_confirmed() {
    let w = world();
    let first = w.enrolled();
    let secrets = w.db.read(|c| c.count_secrets()).unwrap();
    let r = w.db.write(|c| totp::enrol(c, &w.keys, w.alice, "Tablet", "idp", "alice", w.now()));
    assert!(matches!(r, Err(MfaError::AlreadyEnrolled)));
    assert_eq!(w.db.read(|c| totp::credentials(c, w.alice)).unwrap().len(), 1);
    assert_eq!(w.db.read(|c| c.count_secrets()).unwrap(), secrets, "no seed was sealed");
    // A pending credential written past the domain (as a race could leave it) is still
    // refused at confirmation.
    let mut pending = w.row(first.credential_id).unwrap();
    pending.id = TotpCredentialId::new().to_string();
    pending.confirmed_at = None;
    pending.last_used_step = None;
    w.db.write(|c| c.insert_totp_credential(&pending)).unwrap();
    let pending_id: TotpCredentialId = pending.id.parse().unwrap();
    w.clock.advance(30);
    let code = oathtool(&first.secret_base32, w.unix());
    let r = w.db.write(|c| totp::confirm(c, &w.keys, &w.auditor, w.alice, pending_id, &code, w.now()));
    assert!(matches!(r, Err(MfaError::AlreadyEnrolled)));
    assert_eq!(w.row(pending_id).unwrap().confirmed_at, None);
    // The confirmed one is untouched and still works, with the same code.
    assert_eq!(w.step(first.credential_id), Some(T0 / 30));
    assert!(w.verify(&code).is_ok());
}

#[test]
fn malformed_and_oversized_codes_are_errors_and_change_nothing() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(30);
    let before = w.row(e.credential_id).unwrap();
    let huge = "9".repeat(1 << 20);
    for bad in ["", "12345", "1234567", "abcdef", "12 34 5", "１２３４５６", "123456\0", huge.as_str()] {
        assert!(matches!(w.verify(bad), Err(MfaError::Malformed(_))), "{:?}", &bad[..bad.len().min(20)]);
        assert!(matches!(w.confirm(w.alice, &e, bad), Err(MfaError::Malformed(_))));
    }
    let after = w.row(e.credential_id).unwrap();
    assert_eq!((after.last_used_step, after.last_used_at), (before.last_used_step, before.last_used_at));
    for bad_name in ["", "   ", "a\nb", &"n".repeat(65)] {
        let r = w.db.write(|c| totp::enrol(c, &w.keys, w.bob, bad_name, "idp", "bob", w.now()));
        assert!(matches!(r, Err(MfaError::Malformed(_))));
    }
    assert!(w.db.read(|c| totp::credentials(c, w.bob)).unwrap().is_empty());
}

#[test]
fn two_concurrent_checks_of_one_code_accept_it_once() {
    let w = world();
    let e = w.enrolled();
    w.clock.advance(30);
    let code = oathtool(&e.secret_base32, w.unix());
    let results: Vec<Result<totp::Accepted, MfaError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| w.verify(&code))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(MfaError::Replayed))));
}

#[test]
fn the_conditional_update_refuses_a_step_that_is_not_later() {
    let w = world();
    let e = w.enrolled();
    let id = e.credential_id.to_string();
    let step = T0 / 30 + 5;
    assert!(w.db.write(|c| c.accept_totp_step(&id, step, w.now())).unwrap());
    assert!(!w.db.write(|c| c.accept_totp_step(&id, step, w.now())).unwrap(), "same step twice");
    assert!(!w.db.write(|c| c.accept_totp_step(&id, step - 1, w.now())).unwrap());
    assert_eq!(w.step(e.credential_id), Some(step));
}

#[test]
fn removing_the_authenticator_deletes_it_with_its_seed_and_is_audited() {
    let w = world();
    let e = w.enrolled();
    let secrets = w.db.read(|c| c.count_secrets()).unwrap();
    // Bob cannot remove Alice's.
    let r = w.db.write(|c| totp::remove(c, &w.auditor, Actor::User(w.bob), w.bob, e.credential_id, w.now()));
    assert!(matches!(r, Err(MfaError::NotFound)));
    assert!(w.factor(w.alice));
    w.db.write(|c| totp::remove(c, &w.auditor, Actor::User(w.alice), w.alice, e.credential_id, w.now())).unwrap();
    assert!(!w.factor(w.alice));
    assert!(w.row(e.credential_id).is_none());
    assert_eq!(w.db.read(|c| c.count_secrets()).unwrap(), secrets - 1);
    assert_eq!(w.actions(Action::TotpRemoved), 1);
    w.clock.advance(30);
    assert!(matches!(w.verify(&oathtool(&e.secret_base32, w.unix())), Err(MfaError::NotEnrolled)));
}

// ---- recovery codes ----

#[test]
fn a_set_is_ten_distinct_high_entropy_codes_stored_only_as_hashes() {
    let w = world();
    let set = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let codes: Vec<String> = set.codes().map(str::to_owned).collect();
    assert_eq!(codes.len(), CODES_PER_SET);
    let mut distinct = codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), CODES_PER_SET);
    for c in &codes {
        assert_eq!(c.len(), CODE_CHARS + 5, "six groups of four: {c}");
        assert_eq!(c.split('-').count(), 6);
        assert!(c.chars().all(|ch| ch == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(ch)), "{c}");
    }
    assert!(!format!("{set:?}").contains(&codes[0]));
    let rows = w.codes_rows();
    assert_eq!(rows.len(), CODES_PER_SET);
    for c in &codes {
        let canonical = c.replace('-', "");
        assert!(rows.iter().any(|r| r.code_hash == crate::crypto::tokens::hash_token(&canonical)));
        assert!(rows.iter().all(|r| !r.code_hash.contains(&canonical)));
    }
    assert_eq!(w.actions(Action::RecoveryCodesGenerated), 1);
    let status = w.db.read(|c| recovery::status(c, w.alice, w.now())).unwrap();
    assert_eq!(status, recovery::RecoveryStatus { total: 10, remaining: 10, used_since: 0 });
}

#[test]
fn a_recovery_code_works_once_and_is_audited() {
    let w = world();
    let set = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let code = set.codes().next().unwrap().to_owned();
    let last_login = w.now();
    w.clock.advance(60);
    assert_eq!(w.redeem(w.alice, &code).unwrap(), 9);
    assert_eq!(w.actions(Action::RecoveryCodeUsed), 1);
    let rows = w.codes_rows();
    assert_eq!(rows.iter().filter(|r| r.used_at == Some(w.now())).count(), 1);
    let status = w.db.read(|c| recovery::status(c, w.alice, last_login)).unwrap();
    assert_eq!(status, recovery::RecoveryStatus { total: 10, remaining: 9, used_since: 1 });
    let later = w.db.read(|c| recovery::status(c, w.alice, w.now())).unwrap();
    assert_eq!(later.used_since, 0, "none used since this login");
}

#[test]
fn a_recovery_code_used_twice_is_refused_the_second_time() {
    let w = world();
    let set = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let code = set.codes().nth(3).unwrap().to_owned();
    w.redeem(w.alice, &code).unwrap();
    let before = w.codes_rows();
    w.clock.advance(60);
    assert!(matches!(w.redeem(w.alice, &code), Err(MfaError::InvalidCode)));
    assert!(matches!(w.redeem(w.alice, &code.to_lowercase()), Err(MfaError::InvalidCode)));
    let after = w.codes_rows();
    assert_eq!(format!("{before:?}"), format!("{after:?}"), "the refusal changed a row");
    assert_eq!(w.actions(Action::RecoveryCodeUsed), 1);
}

#[test]
fn a_recovery_code_is_single_use_under_a_race() {
    let w = world();
    let set = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let code = set.codes().next().unwrap().to_owned();
    let results: Vec<Result<i64, MfaError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| w.redeem(w.alice, &code))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert_eq!(w.actions(Action::RecoveryCodeUsed), 1);
}

#[test]
fn typed_forms_of_a_code_are_accepted() {
    let w = world();
    let set = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let codes: Vec<String> = set.codes().map(str::to_owned).collect();
    assert_eq!(w.redeem(w.alice, &codes[0].to_lowercase()).unwrap(), 9);
    assert_eq!(w.redeem(w.alice, &codes[1].replace('-', " ")).unwrap(), 8);
    assert_eq!(w.redeem(w.alice, &format!("  {}  ", codes[2].replace('-', ""))).unwrap(), 7);
}

#[test]
fn a_new_set_voids_the_old_one() {
    let w = world();
    let old = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let old_codes: Vec<String> = old.codes().map(str::to_owned).collect();
    w.redeem(w.alice, &old_codes[0]).unwrap();
    let new = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let before = w.codes_rows();
    assert!(before.iter().all(|r| r.set_id == new.set_id.to_string() && r.used_at.is_none()));
    for c in &old_codes {
        assert!(matches!(w.redeem(w.alice, c), Err(MfaError::InvalidCode)));
    }
    assert_eq!(format!("{before:?}"), format!("{:?}", w.codes_rows()));
    let status = w.db.read(|c| recovery::status(c, w.alice, w.now())).unwrap();
    assert_eq!((status.total, status.remaining), (10, 10));
    assert!(w.redeem(w.alice, new.codes().next().unwrap()).is_ok());
}

#[test]
fn another_users_recovery_code_is_refused() {
    let w = world();
    let set = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let before = w.codes_rows();
    assert!(matches!(w.redeem(w.bob, set.codes().next().unwrap()), Err(MfaError::InvalidCode)));
    assert_eq!(format!("{before:?}"), format!("{:?}", w.codes_rows()));
}

#[test]
fn malformed_and_oversized_recovery_codes_are_errors_and_change_nothing() {
    let w = world();
    let set = w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let good = set.codes().next().unwrap().to_owned();
    let before = w.codes_rows();
    let huge = "A".repeat(1 << 20);
    let too_long = format!("{good}A");
    let too_short = good[..good.len() - 1].to_owned();
    let non_ascii = format!("Å{}", &good[1..]);
    for bad in ["", "----", "not a code", too_long.as_str(), too_short.as_str(), non_ascii.as_str(), huge.as_str()] {
        assert!(matches!(w.redeem(w.alice, bad), Err(MfaError::Malformed(_))), "{:?}", &bad[..bad.len().min(30)]);
    }
    // Well formed but never issued.
    assert!(matches!(w.redeem(w.alice, &"Z".repeat(CODE_CHARS)), Err(MfaError::InvalidCode)));
    assert_eq!(format!("{before:?}"), format!("{:?}", w.codes_rows()));
    assert_eq!(w.actions(Action::RecoveryCodeUsed), 0);
}

// ---- reset and rate limits ----

#[test]
fn an_admin_reset_removes_every_factor_and_code_and_is_audited() {
    let w = world();
    let e = w.enrolled();
    w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let pending = w.db.write(|c| totp::enrol(c, &w.keys, w.bob, "Phone", "idp", "bob", w.now())).unwrap();
    w.db.write(|c| recovery::generate(c, &w.auditor, w.bob, w.now())).unwrap();
    let secrets = w.db.read(|c| c.count_secrets()).unwrap();
    let report = w.db.write(|c| reset(c, &w.auditor, Actor::Cli, w.alice, w.now())).unwrap();
    assert_eq!(report, ResetReport { totp_credentials: 1, webauthn_credentials: 0, recovery_codes: 10 });
    assert!(!w.factor(w.alice));
    assert!(w.row(e.credential_id).is_none());
    assert_eq!(w.db.read(|c| c.count_secrets()).unwrap(), secrets - 1);
    assert_eq!(w.db.read(|c| recovery::status(c, w.alice, w.now())).unwrap().total, 0);
    // Bob's are untouched.
    assert!(w.row(pending.credential_id).is_some());
    assert_eq!(w.db.read(|c| recovery::status(c, w.bob, w.now())).unwrap().total, 10);
    let events = w.db.read(|c| c.audit_events(Some(Action::MfaReset.as_str()), 10)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].target.as_deref(), Some(w.alice.to_string().as_str()));
    assert_eq!(events[0].actor, "cli");
}

#[test]
fn deleting_a_user_deletes_their_factors_and_seeds() {
    let w = world();
    w.enrolled();
    w.db.write(|c| recovery::generate(c, &w.auditor, w.alice, w.now())).unwrap();
    let bob = w.db.write(|c| totp::enrol(c, &w.keys, w.bob, "Phone", "idp", "bob", w.now())).unwrap();
    assert_eq!(w.db.read(|c| c.count_secrets()).unwrap(), 2);
    w.db.write(|c| c.delete_user(w.alice)).unwrap();
    assert!(w.db.read(|c| c.totp_credentials_of(&w.alice.to_string())).unwrap().is_empty());
    assert!(w.codes_rows().is_empty());
    assert_eq!(w.db.read(|c| c.count_secrets()).unwrap(), 1, "Alice's seed went with her, Bob's stayed");
    assert!(w.row(bob.credential_id).is_some());
}

#[test]
fn attempts_are_counted_per_account() {
    let w = world();
    let config = RateLimitConfig { window: std::time::Duration::from_secs(60), per_ip: 100, per_account: 3 };
    let limiter = crate::auth::rate_limit::RateLimiter::new(config, w.auditor.pseudonymiser().clone());
    for _ in 0..3 {
        assert!(w.db.write(|c| count_attempt(c, &limiter, w.alice, w.unix())).unwrap().is_ok());
    }
    assert!(w.db.write(|c| count_attempt(c, &limiter, w.alice, w.unix())).unwrap().is_err());
    assert!(w.db.write(|c| count_attempt(c, &limiter, w.bob, w.unix())).unwrap().is_ok(), "per account");
    w.clock.advance(60);
    assert!(w.db.write(|c| count_attempt(c, &limiter, w.alice, w.unix())).unwrap().is_ok(), "a new window");
}
