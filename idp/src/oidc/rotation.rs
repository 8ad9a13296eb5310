//! Signing-key rotation. A new key is published in JWKS before it signs: a scheduled one a day
//! ahead (half the period for periods under two days), a forced one `Schedule::lead` ahead,
//! which covers the JWKS cache time we announce plus every instance's reload. The key it replaces
//! keeps signing until then and stays published until every token it signed has expired.
//! `Immediate` is for a compromised key: it stops being trusted at once.

use chrono::{Duration, NaiveDateTime};

use crate::audit::{Action, Actor, Auditor, Event};
use crate::crypto::secretbox::MasterKeys;
use crate::crypto::signing::{self, SigningAlgorithm};
use crate::storage::audit::AuditRepository;
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::signing_keys::{SigningKeyRepository, StoredSigningKey};
use crate::storage::{StorageError, StorageResult};

/// When keys change, from `[tokens]` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How long a key signs before its successor takes over.
    pub period: Duration,
    /// How long a forced rotation's key is published before it signs: long enough for every
    /// instance to reload and every app's JWKS cache to expire, twice over.
    pub lead: Duration,
}

impl Schedule {
    pub fn from_config(t: &crate::config::TokensConfig) -> Self {
        let d = |x: std::time::Duration| Duration::from_std(x).unwrap_or(Duration::days(1));
        Self { period: d(t.signing_key_rotation), lead: (d(t.signing_key_reload) + d(t.jwks_max_age)) * 2 }
    }

    /// The lead time of a scheduled rotation: a day, or half the period if that is shorter.
    pub fn scheduled_lead(&self) -> Duration {
        (self.period / 2).min(Duration::days(1)).max(self.lead)
    }
}
/// The longest a token idp signs lives, plus clock skew: how long a replaced key stays published.
pub const RETIRE_AFTER: Duration = Duration::seconds(
    if super::ID_TOKEN_TTL_SECS > super::ACCESS_TOKEN_TTL_SECS {
        super::ID_TOKEN_TTL_SECS
    } else {
        super::ACCESS_TOKEN_TTL_SECS
    } + 5 * 60,
);

pub const ALGORITHMS: [SigningAlgorithm; 3] =
    [SigningAlgorithm::Rs256, SigningAlgorithm::Es256, SigningAlgorithm::EdDsa];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Published now, signs after the schedule's lead; the old key's tokens stay valid.
    Forced,
    /// Signs now; the old key and everything it signed stop being trusted now.
    Immediate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub algorithm: SigningAlgorithm,
    pub kid: String,
    pub signs_from: NaiveDateTime,
}

fn of(keys: &[StoredSigningKey], alg: SigningAlgorithm) -> impl Iterator<Item = &StoredSigningKey> {
    keys.iter().filter(move |k| k.algorithm == alg.as_str())
}

/// Starts the next key for every algorithm whose current key has served `period` (less the
/// lead time) and has no successor yet. Safe to run on every instance at once: only the one
/// whose conditional update retires the current key inserts a successor.
pub fn rotate_if_due(
    conn: &mut (impl SigningKeyRepository + SecretRepository + AuditRepository),
    keys: &MasterKeys,
    auditor: &Auditor,
    now: NaiveDateTime,
    schedule: Schedule,
) -> StorageResult<Vec<Rotated>> {
    let (period, lead) = (schedule.period, schedule.scheduled_lead());
    let stored = conn.signing_keys()?;
    let mut out = Vec::new();
    for alg in ALGORITHMS {
        let successor_pending = of(&stored, alg).any(|k| k.signs_from > now && k.retires_at.is_none());
        let current =
            of(&stored, alg).filter(|k| k.signs_from <= now && k.retires_at.is_none()).max_by_key(|k| k.signs_from);
        let due = current.is_none_or(|c| c.signs_from + period - lead <= now);
        if successor_pending || !due {
            continue;
        }
        let signs_from = if current.is_some() { now + lead } else { now };
        let guarded = true;
        if let Some(r) = start_successor(conn, keys, auditor, now, alg, current, signs_from, Actor::System, guarded)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// A rotation now, asked for by the operator.
pub fn rotate_now(
    conn: &mut (impl SigningKeyRepository + SecretRepository + AuditRepository),
    keys: &MasterKeys,
    auditor: &Auditor,
    now: NaiveDateTime,
    algorithms: &[SigningAlgorithm],
    mode: Mode,
    lead: Duration,
) -> StorageResult<Vec<Rotated>> {
    let stored = conn.signing_keys()?;
    let mut out = Vec::new();
    for alg in algorithms.iter().copied() {
        let live: Vec<&StoredSigningKey> = of(&stored, alg).filter(|k| k.retires_at.is_none_or(|r| r > now)).collect();
        let signs_from = match mode {
            Mode::Forced => now + lead,
            Mode::Immediate => now,
        };
        // A successor that has not signed yet is replaced outright.
        for pending in live.iter().filter(|k| k.signs_from > now) {
            conn.retire_signing_key(&pending.kid, now)?;
        }
        if mode == Mode::Immediate {
            for k in live.iter().filter(|k| k.signs_from <= now) {
                conn.retire_signing_key(&k.kid, now)?;
            }
        }
        let current = live.iter().filter(|k| k.signs_from <= now).max_by_key(|k| k.signs_from).copied();
        let current = if mode == Mode::Immediate { None } else { current };
        // The operator's rotation always happens, whatever the schedule did meanwhile.
        let guarded = false;
        if let Some(r) = start_successor(conn, keys, auditor, now, alg, current, signs_from, Actor::Cli, guarded)? {
            out.push(r);
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn start_successor(
    conn: &mut (impl SigningKeyRepository + SecretRepository + AuditRepository),
    keys: &MasterKeys,
    auditor: &Auditor,
    now: NaiveDateTime,
    alg: SigningAlgorithm,
    current: Option<&StoredSigningKey>,
    signs_from: NaiveDateTime,
    actor: Actor,
    guarded: bool,
) -> StorageResult<Option<Rotated>> {
    if let Some(c) = current {
        // Guarded: only the caller whose update retires the current key starts its successor.
        if !conn.retire_signing_key(&c.kid, signs_from + RETIRE_AFTER)? && guarded {
            return Ok(None);
        }
    }
    let generated = signing::generate(alg).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let secret_id = conn.seal_secret(keys, SecretPurpose::SigningKey, &generated.private_pkcs8, now)?;
    conn.insert_signing_key(&StoredSigningKey {
        kid: generated.kid.clone(),
        algorithm: alg.as_str().into(),
        public_jwk: generated.public_jwk,
        secret_id,
        created_at: now,
        signs_from,
        retires_at: None,
    })?;
    let mut event = Event::new(actor, Action::SigningKeyRotated)
        .target(&generated.kid)
        .detail("alg", alg.as_str())
        .detail("signs_from", signs_from.to_string());
    if let Some(c) = current {
        event = event.detail("replaces", c.kid.as_str());
    }
    auditor.record(conn, now, event)?;
    Ok(Some(Rotated { algorithm: alg, kid: generated.kid, signs_from }))
}

/// Deletes keys (and their sealed private halves) retired more than a day ago.
pub fn purge(conn: &mut (impl SigningKeyRepository + SecretRepository), now: NaiveDateTime) -> StorageResult<usize> {
    let gone = conn.purge_signing_keys(now - Duration::days(1))?;
    for id in &gone {
        conn.delete_secret(*id)?;
    }
    Ok(gone.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::clock::{Clock, FixedClock};
    use crate::crypto::pseudonym::Pseudonymiser;
    use crate::crypto::secretbox::{KeySource, Keyring};
    use crate::oidc::keys::Signer;
    use crate::storage::{DatabaseUrl, Db};

    struct World {
        _dir: tempfile::TempDir,
        db: Db,
        keys: MasterKeys,
        auditor: Auditor,
        clock: FixedClock,
    }

    const PERIOD: i64 = 30;
    const LEAD: Duration = Duration::minutes(12);

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("t.sqlite")), 2).unwrap();
        db.migrate().unwrap();
        let keys = MasterKeys::new(KeySource::Env(zeroize::Zeroizing::new(String::new())), Keyring::generate());
        let auditor = Auditor::new(Pseudonymiser::new(zeroize::Zeroizing::new(vec![1; 32])));
        let clock = FixedClock::at_unix(1_800_000_000);
        let w = World { _dir: dir, db, keys, auditor, clock };
        assert_eq!(w.due().len(), ALGORITHMS.len(), "a database without keys gets one of each");
        w
    }

    impl World {
        fn now(&self) -> NaiveDateTime {
            self.clock.now_naive()
        }
        fn due(&self) -> Vec<Rotated> {
            let schedule = Schedule { period: Duration::days(PERIOD), lead: LEAD };
            self.db.write(|c| rotate_if_due(c, &self.keys, &self.auditor, self.now(), schedule)).unwrap()
        }
        fn signer(&self) -> Signer {
            self.db.read(|c| Signer::load(c, &self.keys, self.now())).unwrap()
        }
        fn kids(&self, s: &Signer) -> Vec<String> {
            let jwks = s.jwks(self.now());
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
        }
        fn advance(&self, d: Duration) {
            self.clock.advance(d.num_seconds());
        }
    }

    fn token(s: &Signer, now: NaiveDateTime) -> String {
        s.sign(SigningAlgorithm::Es256, "at+jwt", &json!({"sub": "alice"}), now).unwrap()
    }

    #[test]
    fn a_scheduled_key_is_published_a_day_before_it_signs_and_the_old_one_stays_until_its_tokens_expire() {
        let w = world();
        let s = w.signer();
        let first = s.signing_kid(SigningAlgorithm::Es256, w.now()).unwrap();
        w.advance(Duration::days(PERIOD) - Duration::days(1) - Duration::seconds(1));
        assert!(w.due().is_empty(), "not due yet");
        w.advance(Duration::seconds(1));
        let rotated = w.due();
        assert_eq!(rotated.len(), ALGORITHMS.len(), "every algorithm");
        let next = rotated.iter().find(|r| r.algorithm == SigningAlgorithm::Es256).unwrap();
        assert_eq!(next.signs_from, w.now() + Duration::days(1));
        assert!(w.due().is_empty(), "a second instance running the schedule starts nothing more");

        s.db_refresh(&w);
        assert!(w.kids(&s).contains(&next.kid), "published at once");
        assert_eq!(s.signing_kid(SigningAlgorithm::Es256, w.now()).unwrap(), first, "the old key still signs");
        let old_token = token(&s, w.now());

        w.advance(Duration::days(1));
        s.db_refresh(&w);
        assert_eq!(s.signing_kid(SigningAlgorithm::Es256, w.now()).unwrap(), next.kid, "the new key signs");
        assert!(s.verify(&old_token, "at+jwt").is_some(), "the old key's tokens still verify");
        assert!(w.kids(&s).contains(&first));

        w.advance(RETIRE_AFTER);
        s.db_refresh(&w);
        assert!(!w.kids(&s).contains(&first), "retired once its tokens have expired");
        assert!(s.verify(&old_token, "at+jwt").is_none());
        assert!(w.due().is_empty());
    }

    #[test]
    fn a_forced_rotation_publishes_first_and_signs_later() {
        let w = world();
        let s = w.signer();
        let first = s.signing_kid(SigningAlgorithm::Rs256, w.now()).unwrap();
        let r =
            w.db.write(|c| rotate_now(c, &w.keys, &w.auditor, w.now(), &[SigningAlgorithm::Rs256], Mode::Forced, LEAD))
                .unwrap();
        assert_eq!(r.len(), 1);
        s.db_refresh(&w);
        assert!(w.kids(&s).contains(&r[0].kid));
        assert_eq!(s.signing_kid(SigningAlgorithm::Rs256, w.now()).unwrap(), first);
        w.advance(LEAD);
        s.db_refresh(&w);
        assert_eq!(s.signing_kid(SigningAlgorithm::Rs256, w.now()).unwrap(), r[0].kid);
        // Forcing again while a successor waits replaces the successor, not the signing key.
        let again =
            w.db.write(|c| rotate_now(c, &w.keys, &w.auditor, w.now(), &[SigningAlgorithm::Rs256], Mode::Forced, LEAD))
                .unwrap();
        let third =
            w.db.write(|c| rotate_now(c, &w.keys, &w.auditor, w.now(), &[SigningAlgorithm::Rs256], Mode::Forced, LEAD))
                .unwrap();
        s.db_refresh(&w);
        assert!(!w.kids(&s).contains(&again[0].kid), "the replaced successor never signs");
        assert!(w.kids(&s).contains(&third[0].kid));
        assert_eq!(s.signing_kid(SigningAlgorithm::Rs256, w.now()).unwrap(), r[0].kid);
    }

    #[test]
    fn an_immediate_rotation_distrusts_the_old_key_at_once() {
        let w = world();
        let s = w.signer();
        let old_token = token(&s, w.now());
        let first = s.signing_kid(SigningAlgorithm::Es256, w.now()).unwrap();
        let r =
            w.db.write(|c| rotate_now(c, &w.keys, &w.auditor, w.now(), &ALGORITHMS, Mode::Immediate, LEAD)).unwrap();
        assert_eq!(r.len(), ALGORITHMS.len());
        w.advance(Duration::seconds(1));
        s.db_refresh(&w);
        assert!(s.verify(&old_token, "at+jwt").is_none(), "the compromised key's tokens are refused");
        assert!(!w.kids(&s).contains(&first));
        let new = s.signing_kid(SigningAlgorithm::Es256, w.now()).unwrap();
        assert!(r.iter().any(|x| x.kid == new));
        assert!(s.verify(&token(&s, w.now()), "at+jwt").is_some());
    }

    #[test]
    fn retired_keys_and_their_sealed_halves_are_purged() {
        let w = world();
        w.db.write(|c| rotate_now(c, &w.keys, &w.auditor, w.now(), &ALGORITHMS, Mode::Immediate, LEAD)).unwrap();
        let before = w.db.read(|c| c.signing_keys()).unwrap().len();
        let n = ALGORITHMS.len();
        assert_eq!(before, 2 * n);
        assert_eq!(w.db.write(|c| purge(c, w.now())).unwrap(), 0, "kept a day after retiring");
        w.advance(Duration::days(1) + Duration::seconds(1));
        assert_eq!(w.db.write(|c| purge(c, w.now())).unwrap(), n);
        assert_eq!(w.db.read(|c| c.signing_keys()).unwrap().len(), n);
        w.signer();
    }

    impl Signer {
        fn db_refresh(&self, w: &World) {
            w.db.read(|c| self.refresh(c, &w.keys, w.now())).unwrap();
        }
    }
}
