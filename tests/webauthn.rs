//! WebAuthn ceremonies (`idp::mfa::webauthn`) against webauthn-authenticator-rs's software
//! authenticators (SoftPasskey, SoftToken), on SQLite and PostgreSQL. Each refusal is its own
//! test and checks that nothing changed: the credentials as stored, and the audit log.
//! Username-less (discoverable) login needs resident keys, which these authenticators cannot
//! make: tests/webauthn_login.rs covers it in a real browser.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use chrono::{Duration, NaiveDateTime};
use harness::TestDb;
use idp::audit::{Actor, Auditor};
use idp::crypto::pseudonym::Pseudonymiser;
use idp::domain::user::NewUser;
use idp::domain::{SessionId, UserId};
use idp::mfa::MfaError;
use idp::mfa::webauthn::{self as wa, Account, Kind, Used};
use idp::storage::audit::AuditRepository;
use idp::storage::users::UserRepository;
use idp::storage::webauthn::{WebauthnCredentialRow, WebauthnRepository};
use idp::storage::{Db, StorageError};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_authenticator_rs::softtoken::SoftToken;
use webauthn_authenticator_rs::{AuthenticatorBackend, WebauthnAuthenticator};
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

const ORIGIN: &str = "https://idp.example.test";

struct World {
    db: Db,
    rp: Webauthn,
    auditor: Auditor,
    now: NaiveDateTime,
    alice: UserId,
    bob: UserId,
}

fn world(t: &TestDb) -> World {
    let db = t.open();
    let rp = wa::relying_party(&url::Url::parse(ORIGIN).unwrap(), "Test IdP").unwrap().unwrap();
    let auditor = Auditor::new(Pseudonymiser::new(zeroize::Zeroizing::new(vec![7; 32])));
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap().naive_utc();
    let user = |email: &str| {
        db.write(|c| {
            c.create_user(&NewUser { email: Some(email.into()), email_verified: true, display_name: None }, now)
        })
        .unwrap()
        .id
    };
    let (alice, bob) = (user("alice@example.test"), user("bob@example.test"));
    World { db, rp, auditor, now, alice, bob }
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

impl World {
    /// Registers a credential of `kind` for `user` with `auth`; returns the stored row.
    fn register(&self, user: UserId, kind: Kind, auth: &mut impl AuthenticatorBackend) -> WebauthnCredentialRow {
        let session = SessionId::new();
        let email = format!("{user}@example.test");
        let c = self
            .db
            .write(|conn| {
                let account = Account { user, name: &email, display_name: &email };
                wa::start_registration(conn, &self.rp, account, kind, "My key", session, self.now)
            })
            .unwrap();
        let mut options = c.options.clone();
        // The software authenticators cannot make resident keys (a browser's can).
        if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection") {
            sel["requireResidentKey"] = false.into();
            sel["residentKey"] = "discouraged".into();
        }
        let ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let response = auth.do_registration(origin(), ccr).unwrap();
        let response = serde_json::to_value(&response).unwrap();
        let done = self.db.write(|conn| {
            wa::finish_registration(
                conn,
                &self.rp,
                &self.auditor,
                user,
                session,
                &c.id.to_string(),
                kind,
                &response,
                self.now,
            )
        });
        let cred = done.unwrap();
        self.row(&cred.id.to_string())
    }

    fn row(&self, id: &str) -> WebauthnCredentialRow {
        self.db.read(|c| c.find_webauthn_credential(id)).unwrap().unwrap()
    }

    /// Starts a second-factor ceremony of `user` for the pending login `pending`.
    fn challenge(&self, user: UserId, pending: &str) -> (String, RequestChallengeResponse) {
        let c = self.db.write(|conn| wa::start_second_factor(conn, &self.rp, user, pending, self.now)).unwrap();
        (c.id.to_string(), serde_json::from_value(c.options).unwrap())
    }

    fn answer(&self, auth: &mut impl AuthenticatorBackend, rcr: RequestChallengeResponse) -> serde_json::Value {
        serde_json::to_value(auth.do_authentication(origin(), rcr).unwrap()).unwrap()
    }

    fn verify(
        &self,
        user: UserId,
        pending: &str,
        ceremony: &str,
        response: &serde_json::Value,
        at: NaiveDateTime,
    ) -> Result<Used, MfaError> {
        // Committed whatever the outcome, as the login step does: a refusal uses the ceremony up.
        self.db
            .write(|conn| {
                Ok::<_, StorageError>(wa::verify_second_factor(conn, &self.rp, user, pending, ceremony, response, at))
            })
            .unwrap()
    }

    /// Everything a refusal could have changed: every stored credential, and the audit log.
    fn snapshot(&self) -> (String, usize) {
        let rows: Vec<WebauthnCredentialRow> = [self.alice, self.bob]
            .iter()
            .flat_map(|u| self.db.read(|c| c.webauthn_credentials_of(&u.to_string())).unwrap())
            .collect();
        (serde_json::to_string(&rows).unwrap(), self.db.read(|c| c.audit_events(None, 10_000)).unwrap().len())
    }
}

fn passkey() -> SoftPasskey {
    SoftPasskey::new(true)
}

fn registered_passkeys_and_security_keys_are_second_factors(t: &TestDb) {
    let w = world(t);
    assert!(!w.db.read(|c| idp::mfa::has_second_factor(c, w.alice)).unwrap());
    let mut pk = passkey();
    let row = w.register(w.alice, Kind::Passkey, &mut pk);
    assert_eq!(
        (row.kind.as_str(), row.name.as_str(), row.sign_count, row.last_used_at),
        ("passkey", "My key", 0, None)
    );
    let (mut token, _) = SoftToken::new(true).unwrap();
    let key = w.register(w.alice, Kind::SecurityKey, &mut token);
    assert_eq!(key.kind, "security_key");
    assert!(w.db.read(|c| idp::mfa::has_second_factor(c, w.alice)).unwrap());
    let factors = w.db.read(|c| idp::mfa::policy::user_factors(c, w.alice)).unwrap();
    assert_eq!(factors, vec![idp::mfa::policy::Method::WebAuthn]);
    let events = w.db.read(|c| c.audit_events(Some("mfa.webauthn_registered"), 10)).unwrap();
    assert_eq!(events.len(), 2);

    // The security key answers a second-factor ceremony; its counter and last use are stored.
    let (ceremony, rcr) = w.challenge(w.alice, "pending-1");
    assert_eq!(rcr.public_key.allow_credentials.len(), 2, "both credentials may answer");
    let response = w.answer(&mut token, rcr);
    let used = w.verify(w.alice, "pending-1", &ceremony, &response, w.now).unwrap();
    assert_eq!((used.user, used.kind, used.amr), (w.alice, Kind::SecurityKey, wa::AMR_HWK));
    let after = w.row(&key.id);
    assert!(after.sign_count > 0, "the counter is stored");
    assert_eq!(after.last_used_at, Some(w.now));
    // So does the passkey, verifying its user as a passkey does ("preferred" lets the
    // authenticator choose; this one only verifies when told to).
    let (ceremony, mut rcr) = w.challenge(w.alice, "pending-2");
    rcr.public_key.user_verification = serde_json::from_value(serde_json::json!("required")).unwrap();
    let response = w.answer(&mut pk, rcr);
    assert_eq!(w.verify(w.alice, "pending-2", &ceremony, &response, w.now).unwrap().kind, Kind::Passkey);

    // Removal and the administrator's reset.
    w.db.write(|c| wa::remove(c, &w.auditor, Actor::User(w.alice), w.alice, row.id.parse().unwrap(), w.now)).unwrap();
    let other = w.db.write(|c| wa::remove(c, &w.auditor, Actor::User(w.bob), w.bob, key.id.parse().unwrap(), w.now));
    assert!(matches!(other, Err(MfaError::NotFound)), "bob cannot remove alice's key: {other:?}");
    let report = w.db.write(|c| idp::mfa::reset(c, &w.auditor, Actor::Cli, w.alice, w.now)).unwrap();
    assert_eq!(report.webauthn_credentials, 1);
    assert!(!w.db.read(|c| idp::mfa::has_second_factor(c, w.alice)).unwrap());
}

fn an_assertion_answering_another_users_challenge_is_refused(t: &TestDb) {
    let w = world(t);
    let mut alice_key = passkey();
    w.register(w.alice, Kind::SecurityKey, &mut alice_key);
    let mut bob_key = passkey();
    w.register(w.bob, Kind::SecurityKey, &mut bob_key);
    let before = w.snapshot();
    // Alice's authenticator answers Alice's challenge; the answer is sent to Bob's ceremony.
    let (_, alice_rcr) = w.challenge(w.alice, "pending-alice");
    let (bob_ceremony, _) = w.challenge(w.bob, "pending-bob");
    let response = w.answer(&mut alice_key, alice_rcr);
    let r = w.verify(w.bob, "pending-bob", &bob_ceremony, &response, w.now);
    assert!(matches!(r, Err(MfaError::Rejected(_))), "{r:?}");
    // Bob's ceremony claimed for Alice (or from Alice's pending login) is no ceremony at all.
    let (bob_ceremony, bob_rcr) = w.challenge(w.bob, "pending-bob");
    let response = w.answer(&mut bob_key, bob_rcr);
    let r = w.verify(w.alice, "pending-bob", &bob_ceremony, &response, w.now);
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    let (bob_ceremony, bob_rcr) = w.challenge(w.bob, "pending-bob");
    let response = w.answer(&mut bob_key, bob_rcr);
    let r = w.verify(w.bob, "pending-alice", &bob_ceremony, &response, w.now);
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    assert_eq!(w.snapshot(), before, "a refused assertion changed something");
}

fn a_replayed_assertion_is_refused(t: &TestDb) {
    let w = world(t);
    let mut key = passkey();
    let row = w.register(w.alice, Kind::SecurityKey, &mut key);
    let (ceremony, rcr) = w.challenge(w.alice, "p");
    let response = w.answer(&mut key, rcr);
    w.verify(w.alice, "p", &ceremony, &response, w.now).unwrap();
    let before = w.snapshot();
    // The same answer again: its ceremony is gone.
    let r = w.verify(w.alice, "p", &ceremony, &response, w.now);
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    // Nor does it answer a fresh ceremony (another challenge).
    let (fresh, _) = w.challenge(w.alice, "p");
    let r = w.verify(w.alice, "p", &fresh, &response, w.now);
    assert!(matches!(r, Err(MfaError::Rejected(_))), "{r:?}");
    assert_eq!(w.snapshot(), before);
    assert_eq!(w.row(&row.id).last_used_at, Some(w.now));
}

fn an_assertion_for_another_origin_is_refused(t: &TestDb) {
    let w = world(t);
    let mut key = passkey();
    w.register(w.alice, Kind::SecurityKey, &mut key);
    let before = w.snapshot();
    // The browser's part skipped: a page on another origin got our challenge signed.
    let (ceremony, rcr) = w.challenge(w.alice, "p");
    let evil = Url::parse("https://idp.example.test.evil.example").unwrap();
    let response = key.perform_auth(evil, rcr.public_key, 60_000).unwrap();
    let response = serde_json::to_value(response).unwrap();
    let r = w.verify(w.alice, "p", &ceremony, &response, w.now);
    assert!(matches!(r, Err(MfaError::Rejected(_))), "{r:?}");
    assert_eq!(w.snapshot(), before);
}

fn an_assertion_for_another_rp_id_is_refused(t: &TestDb) {
    let w = world(t);
    let mut key = passkey();
    w.register(w.alice, Kind::SecurityKey, &mut key);
    let before = w.snapshot();
    let (ceremony, mut rcr) = w.challenge(w.alice, "p");
    // Our origin and challenge, but signed for the parent domain's RP id.
    rcr.public_key.rp_id = "example.test".into();
    let response = w.answer(&mut key, rcr);
    let r = w.verify(w.alice, "p", &ceremony, &response, w.now);
    assert!(matches!(r, Err(MfaError::Rejected(_))), "{r:?}");
    assert_eq!(w.snapshot(), before);
}

fn a_counter_that_goes_back_is_refused(t: &TestDb) {
    let w = world(t);
    let mut key = passkey();
    let row = w.register(w.alice, Kind::SecurityKey, &mut key);
    let (ceremony, rcr) = w.challenge(w.alice, "p");
    let response = w.answer(&mut key, rcr);
    w.verify(w.alice, "p", &ceremony, &response, w.now).unwrap();
    // Another use (say, of a clone of this authenticator) got the stored counter to 1000 after
    // this ceremony started: webauthn-rs, which checks the copy in the ceremony, would accept.
    let (ceremony, rcr) = w.challenge(w.alice, "p");
    t.open()
        .write(|c| {
            use diesel::prelude::*;
            use idp::storage::schema::webauthn_credentials as wc;
            diesel::update(wc::table.find(&row.id))
                .set(wc::sign_count.eq(1000_i64))
                .execute(c)
                .map_err(idp::storage::StorageError::from)
        })
        .unwrap();
    let before = w.snapshot();
    let response = w.answer(&mut key, rcr);
    let r = w.verify(w.alice, "p", &ceremony, &response, w.now + Duration::seconds(10));
    assert!(matches!(r, Err(MfaError::CounterWentBack)), "{r:?}");
    assert_eq!(w.snapshot(), before);
    assert_eq!(w.row(&row.id).sign_count, 1000);
}

fn an_expired_ceremony_is_refused(t: &TestDb) {
    let w = world(t);
    let mut key = passkey();
    w.register(w.alice, Kind::SecurityKey, &mut key);
    let before = w.snapshot();
    let (ceremony, rcr) = w.challenge(w.alice, "p");
    let response = w.answer(&mut key, rcr);
    let late = w.now + wa::CEREMONY_LIFETIME;
    let r = w.verify(w.alice, "p", &ceremony, &response, late);
    assert!(matches!(r, Err(MfaError::CeremonyExpired)), "{r:?}");
    assert_eq!(w.snapshot(), before);
    // And it is gone: not even in time could it be finished now.
    let r = w.verify(w.alice, "p", &ceremony, &response, w.now);
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    // A registration expires the same way.
    let session = SessionId::new();
    let c =
        w.db.write(|conn| {
            let account = Account { user: w.alice, name: "a", display_name: "a" };
            wa::start_registration(conn, &w.rp, account, Kind::SecurityKey, "Late", session, w.now)
        })
        .unwrap();
    let ccr: CreationChallengeResponse = serde_json::from_value(c.options).unwrap();
    let response = serde_json::to_value(passkey().do_registration(origin(), ccr).unwrap()).unwrap();
    let r =
        w.db.write(|conn| {
            Ok::<_, StorageError>(wa::finish_registration(
                conn,
                &w.rp,
                &w.auditor,
                w.alice,
                session,
                &c.id.to_string(),
                Kind::SecurityKey,
                &response,
                late,
            ))
        })
        .unwrap();
    assert!(matches!(r, Err(MfaError::CeremonyExpired)), "{r:?}");
    assert_eq!(w.snapshot(), before);
}

fn bad_registrations_store_nothing(t: &TestDb) {
    let w = world(t);
    let before = w.snapshot();
    let session = SessionId::new();
    let start = |name: &str| {
        w.db.write(|conn| {
            let account = Account { user: w.alice, name: "a", display_name: "a" };
            wa::start_registration(conn, &w.rp, account, Kind::SecurityKey, name, session, w.now)
        })
    };
    for bad in ["", "   ", &"x".repeat(65), "bad\u{7}name"] {
        assert!(matches!(start(bad), Err(MfaError::Malformed(_))), "{bad:?}");
    }
    let finish = |ceremony: &str, kind: Kind, s: SessionId, user: UserId, response: &serde_json::Value| {
        w.db.write(|conn| {
            Ok::<_, StorageError>(wa::finish_registration(
                conn, &w.rp, &w.auditor, user, s, ceremony, kind, response, w.now,
            ))
        })
        .unwrap()
    };
    let answer = |c: &wa::Ceremony| {
        let ccr: CreationChallengeResponse = serde_json::from_value(c.options.clone()).unwrap();
        serde_json::to_value(passkey().do_registration(origin(), ccr).unwrap()).unwrap()
    };
    // Another session, another user, another kind, a malformed answer, a malformed id.
    let c = start("Key").unwrap();
    let r = finish(&c.id.to_string(), Kind::SecurityKey, SessionId::new(), w.alice, &answer(&c));
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    let c = start("Key").unwrap();
    let r = finish(&c.id.to_string(), Kind::SecurityKey, session, w.bob, &answer(&c));
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    let c = start("Key").unwrap();
    let r = finish(&c.id.to_string(), Kind::Passkey, session, w.alice, &answer(&c));
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    let c = start("Key").unwrap();
    let r = finish(&c.id.to_string(), Kind::SecurityKey, session, w.alice, &serde_json::json!({"id": 1}));
    assert!(matches!(r, Err(MfaError::Malformed(_))), "{r:?}");
    // A passkey whose authenticator (as the browser reports) made no resident key.
    let c =
        w.db.write(|conn| {
            let account = Account { user: w.alice, name: "a", display_name: "a" };
            wa::start_registration(conn, &w.rp, account, Kind::Passkey, "Key", session, w.now)
        })
        .unwrap();
    let mut options = c.options.clone();
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = false.into();
    options["publicKey"]["authenticatorSelection"]["residentKey"] = "discouraged".into();
    let ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let mut response = serde_json::to_value(passkey().do_registration(origin(), ccr).unwrap()).unwrap();
    response["extensions"] = serde_json::json!({"credProps": {"rk": false}});
    let r = finish(&c.id.to_string(), Kind::Passkey, session, w.alice, &response);
    assert!(matches!(r, Err(MfaError::NotDiscoverable)), "{r:?}");
    let r = finish("not-a-ceremony", Kind::SecurityKey, session, w.alice, &serde_json::json!({}));
    assert!(matches!(r, Err(MfaError::Malformed(_))), "{r:?}");
    // A new start replaces the session's earlier ceremony.
    let (c1, c2) = (start("Key").unwrap(), start("Key").unwrap());
    let r = finish(&c1.id.to_string(), Kind::SecurityKey, session, w.alice, &answer(&c1));
    assert!(matches!(r, Err(MfaError::NoCeremony)), "{r:?}");
    // An answer to another registration's challenge (of another session).
    let other = SessionId::new();
    let c3 =
        w.db.write(|conn| {
            let account = Account { user: w.alice, name: "a", display_name: "a" };
            wa::start_registration(conn, &w.rp, account, Kind::SecurityKey, "Key", other, w.now)
        })
        .unwrap();
    let r = finish(&c2.id.to_string(), Kind::SecurityKey, session, w.alice, &answer(&c3));
    assert!(matches!(r, Err(MfaError::Rejected(_))), "{r:?}");
    assert_eq!(w.snapshot(), before);
    // Nobody without a credential can start a second-factor ceremony.
    let r = w.db.write(|conn| wa::start_second_factor(conn, &w.rp, w.bob, "p", w.now));
    assert!(matches!(r, Err(MfaError::NotEnrolled)), "{r:?}");
}

fn an_admin_reset_needs_rights_and_a_second_factor_in_the_admins_session(t: &TestDb) {
    use idp::admin::mfa_reset::{ResetCaller, reset_user_factors};
    use idp::admin::organisations::AdminError;
    use idp::domain::role::{BuiltinRole, RoleRef};
    use idp::storage::organisations::OrganisationRepository;
    let w = world(t);
    let carol =
        w.db.write(|c| {
            c.create_user(
                &NewUser { email: Some("carol@example.test".into()), email_verified: true, display_name: None },
                w.now,
            )
        })
        .unwrap()
        .id;
    // Bob administers Acme, where Alice is a member; Carol is only a member of Acme.
    let org =
        w.db.write(|c| {
            idp::admin::organisations::create_organisation(c, &w.auditor, w.now, Actor::Cli, "Acme", None, &[w.bob])
        })
        .unwrap();
    w.db.write(|c| c.set_organisation_member(org.id, w.alice, RoleRef::Builtin(BuiltinRole::Member), w.now)).unwrap();
    w.db.write(|c| c.set_organisation_member(org.id, carol, RoleRef::Builtin(BuiltinRole::Member), w.now)).unwrap();
    let mut key = passkey();
    w.register(w.alice, Kind::SecurityKey, &mut key);
    let session = |user: UserId, amr: &[&str]| idp::domain::session::Session {
        id: SessionId::new(),
        user_id: user,
        created_at: w.now,
        last_seen_at: w.now,
        expires_at: w.now + Duration::hours(1),
        amr: amr.iter().map(|a| (*a).to_owned()).collect(),
        acr: None,
        source: None,
        user_agent: None,
    };
    let reset = |caller: ResetCaller<'_>, target: UserId| {
        w.db.write(|c| reset_user_factors(c, &w.auditor, w.now, caller, target))
    };
    let before = w.snapshot();
    let bob_first_factor_only = session(w.bob, &["fed"]);
    let r = reset(ResetCaller::Admin(&bob_first_factor_only), w.alice);
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
    let carol_mfa = session(carol, &["fed", "hwk", "mfa"]);
    let r = reset(ResetCaller::Admin(&carol_mfa), w.alice);
    assert!(matches!(r, Err(AdminError::NotFound("user"))), "a member is no admin: {r:?}");
    let alice_mfa = session(w.alice, &["hwk", "mfa"]);
    let r = reset(ResetCaller::Admin(&alice_mfa), w.alice);
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
    let r = reset(ResetCaller::Operator, UserId::new());
    assert!(matches!(r, Err(AdminError::NotFound("user"))), "{r:?}");
    assert_eq!(w.snapshot(), before, "a refused reset changed something");

    let bob_mfa = session(w.bob, &["fed", "otp", "mfa"]);
    let report = reset(ResetCaller::Admin(&bob_mfa), w.alice).unwrap();
    assert_eq!(report.webauthn_credentials, 1);
    assert!(!w.db.read(|c| idp::mfa::has_second_factor(c, w.alice)).unwrap());
    let events = w.db.read(|c| c.audit_events(Some("mfa.reset"), 10)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, format!("user:{}", w.bob));
    assert!(events[0].details.as_deref().unwrap_or_default().contains("\"webauthn_credentials\":1"), "{events:?}");
}

fn the_cli_resets_a_users_factors(t: &TestDb) {
    let w = world(t);
    let mut key = passkey();
    w.register(w.alice, Kind::SecurityKey, &mut key);
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| harness::run(harness::idp(dir.path()).args(args).env("IDP_DATABASE_URL", t.url()));
    let bad = cli(&["user", "reset-mfa", "not-a-user"]);
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("invalid value"),
        "{}",
        harness::text(&bad)
    );
    let unknown = cli(&["user", "reset-mfa", &UserId::new().to_string()]);
    assert!(
        !unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("user not found"),
        "{}",
        harness::text(&unknown)
    );
    assert!(w.db.read(|c| idp::mfa::has_second_factor(c, w.alice)).unwrap(), "a refused reset removed something");
    let out = cli(&["user", "reset-mfa", &w.alice.to_string()]);
    assert!(out.status.success(), "{}", harness::text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "reset the second factors of user {}: removed 0 authenticator apps, 1 security keys and passkeys, 0 recovery codes\n",
            w.alice
        )
    );
    assert!(!w.db.read(|c| idp::mfa::has_second_factor(c, w.alice)).unwrap());
    let events = w.db.read(|c| c.audit_events(Some("mfa.reset"), 10)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "cli");
}

fn an_ip_address_is_no_relying_party(_: &TestDb) {
    let rp = wa::relying_party(&url::Url::parse("http://127.0.0.1:8080").unwrap(), "x").unwrap();
    assert!(rp.is_none());
    let rp = wa::relying_party(&url::Url::parse("http://localhost:8080").unwrap(), "x").unwrap();
    assert!(rp.is_some());
}

on_both_backends!(
    registered_passkeys_and_security_keys_are_second_factors,
    an_assertion_answering_another_users_challenge_is_refused,
    a_replayed_assertion_is_refused,
    an_assertion_for_another_origin_is_refused,
    an_assertion_for_another_rp_id_is_refused,
    a_counter_that_goes_back_is_refused,
    an_expired_ceremony_is_refused,
    bad_registrations_store_nothing,
    an_ip_address_is_no_relying_party,
    an_admin_reset_needs_rights_and_a_second_factor_in_the_admins_session,
    the_cli_resets_a_users_factors,
);
