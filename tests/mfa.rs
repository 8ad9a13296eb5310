//! Second factors on both backends: the replay rule and single use hold when several
//! connections race (on PostgreSQL these are real concurrent transactions). TOTP codes come
//! from `oathtool`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use chrono::{DateTime, NaiveDateTime};
use harness::TestDb;
use idp::audit::Auditor;
use idp::crypto::pseudonym::Pseudonymiser;
use idp::crypto::secretbox::{KeySource, Keyring, MasterKeys};
use idp::domain::UserId;
use idp::domain::user::NewUser;
use idp::mfa::{self, MfaError, recovery, totp};
use idp::storage::Db;
use idp::storage::mfa::MfaRepository;
use idp::storage::secrets::SecretRepository;
use idp::storage::users::UserRepository;
use zeroize::Zeroizing;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> NaiveDateTime {
    DateTime::from_timestamp(secs, 0).unwrap().naive_utc()
}

fn oathtool(base32: &str, unix: i64) -> String {
    let when = DateTime::from_timestamp(unix, 0).unwrap().format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", base32, "--now", &when])
        .output()
        .expect("oathtool must be installed (Debian package oathtool; scripts/test installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Setup {
    db: Db,
    keys: MasterKeys,
    auditor: Auditor,
    user: UserId,
}

fn setup(t: &TestDb) -> Setup {
    let db = t.open();
    let keys = MasterKeys::new(KeySource::Env(Zeroizing::new(String::new())), Keyring::generate());
    let auditor = Auditor::new(Pseudonymiser::new(Zeroizing::new(vec![3; 32])));
    let user = db
        .write(|c| c.create_user(&NewUser { email: Some("a@example.com".into()), ..Default::default() }, at(T0)))
        .unwrap()
        .id;
    Setup { db, keys, auditor, user }
}

const RACERS: usize = 6;

/// Runs `attempt` in `RACERS` write transactions at once. On PostgreSQL every transaction has
/// begun, so each reads before any of them writes, when the attempts start; SQLite's
/// `BEGIN IMMEDIATE` lets one transaction in at a time, so there they start together and
/// queue on the write lock.
fn race<T: Send>(
    t: &TestDb,
    db: &Db,
    attempt: impl Fn(&mut idp::storage::DbConnection) -> Result<T, MfaError> + Sync,
) -> Vec<Result<T, MfaError>> {
    let barrier = std::sync::Barrier::new(RACERS);
    let inside = t.is_postgres();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RACERS)
            .map(|_| {
                scope.spawn(|| {
                    if !inside {
                        barrier.wait();
                    }
                    db.write(|c| {
                        if inside {
                            barrier.wait();
                        }
                        attempt(c)
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn totp_is_accepted_once_under_a_race(t: &TestDb) {
    let s = setup(t);
    let e = s.db.write(|c| totp::enrol(c, &s.keys, s.user, "Phone", "idp", "a@example.com", at(T0))).unwrap();
    s.db.write(|c| {
        totp::confirm(c, &s.keys, &s.auditor, s.user, e.credential_id, &oathtool(&e.secret_base32, T0), at(T0))
    })
    .unwrap();
    assert!(s.db.read(|c| mfa::has_second_factor(c, s.user)).unwrap());
    let now = T0 + 30;
    let code = oathtool(&e.secret_base32, now);
    let results = race(t, &s.db, |c| totp::verify(c, &s.keys, s.user, &code, at(now)));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(MfaError::Replayed))), "{results:?}");
    let row = s.db.read(|c| c.find_totp_credential(&e.credential_id.to_string())).unwrap().unwrap();
    assert_eq!(row.last_used_step, Some(now / 30));
    // A code two steps ahead is refused and leaves the stored step alone.
    let ahead = oathtool(&e.secret_base32, now + 60);
    assert!(matches!(s.db.write(|c| totp::verify(c, &s.keys, s.user, &ahead, at(now))), Err(MfaError::InvalidCode)));
    let after = s.db.read(|c| c.find_totp_credential(&e.credential_id.to_string())).unwrap().unwrap();
    assert_eq!(after.last_used_step, Some(now / 30));
}

fn a_recovery_code_is_used_once_under_a_race(t: &TestDb) {
    let s = setup(t);
    let set = s.db.write(|c| recovery::generate(c, &s.auditor, s.user, at(T0))).unwrap();
    let code = set.codes().next().unwrap().to_owned();
    let results = race(t, &s.db, |c| recovery::redeem(c, &s.auditor, s.user, &code, None, at(T0 + 1)));
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(MfaError::InvalidCode))), "{results:?}");
    let status = s.db.read(|c| recovery::status(c, s.user, at(T0))).unwrap();
    assert_eq!((status.total, status.remaining, status.used_since), (10, 9, 1));
}

fn only_one_authenticator_is_confirmed_per_user(t: &TestDb) {
    let s = setup(t);
    let a = s.db.write(|c| totp::enrol(c, &s.keys, s.user, "A", "idp", "a", at(T0))).unwrap();
    // Two pending credentials can only coexist if written straight to storage; the index
    // still refuses to confirm the second.
    let b_row = {
        let mut r = s.db.read(|c| c.find_totp_credential(&a.credential_id.to_string())).unwrap().unwrap();
        r.id = uuid::Uuid::new_v4().to_string();
        r
    };
    s.db.write(|c| c.insert_totp_credential(&b_row)).unwrap();
    assert!(s.db.write(|c| c.confirm_totp_credential(&a.credential_id.to_string(), T0 / 30, at(T0))).unwrap());
    let second = s.db.write(|c| c.confirm_totp_credential(&b_row.id, T0 / 30, at(T0)));
    assert!(matches!(second, Err(idp::storage::StorageError::Conflict(_))), "{second:?}");
}

fn deleting_a_user_removes_their_sealed_seeds(t: &TestDb) {
    let s = setup(t);
    s.db.write(|c| totp::enrol(c, &s.keys, s.user, "Phone", "idp", "a", at(T0))).unwrap();
    s.db.write(|c| recovery::generate(c, &s.auditor, s.user, at(T0))).unwrap();
    assert_eq!(s.db.read(|c| c.count_secrets()).unwrap(), 1);
    s.db.write(|c| c.delete_user(s.user)).unwrap();
    assert_eq!(s.db.read(|c| c.count_secrets()).unwrap(), 0);
    assert!(s.db.read(|c| c.totp_credentials_of(&s.user.to_string())).unwrap().is_empty());
    assert_eq!(s.db.read(|c| recovery::status(c, s.user, at(T0))).unwrap().total, 0);
}

on_both_backends!(
    totp_is_accepted_once_under_a_race,
    a_recovery_code_is_used_once_under_a_race,
    only_one_authenticator_is_confirmed_per_user,
    deleting_a_user_removes_their_sealed_seeds,
);
