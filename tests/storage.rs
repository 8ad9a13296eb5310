//! The storage suite: every test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDateTime};
use diesel::prelude::*;
use harness::TestDb;
use idp::admin::organisations::{self, AdminError};
use idp::audit::{Action, Actor, Auditor, Event};
use idp::auth::rate_limit::{RateLimiter, Subject};
use idp::auth::session::{self, Origin};
use idp::config::{RateLimitConfig, SessionConfig};
use idp::crypto::pseudonym::Pseudonymiser;
use idp::crypto::secretbox::{KeySource, Keyring, MasterKeys, OpenError};
use idp::domain::role::{BuiltinRole, Permission, RoleRef};
use idp::domain::user::NewUser;
use idp::domain::{OrganisationId, SecretId, UserId};
use idp::storage::audit::AuditRepository;
use idp::storage::organisations::OrganisationRepository;
use idp::storage::secrets::{SecretPurpose, SecretRepository};
use idp::storage::sessions::SessionRepository;
use idp::storage::settings::SettingsRepository;
use idp::storage::users::UserRepository;
use idp::storage::{StorageError, schema};
use zeroize::Zeroizing;

fn at(secs: i64) -> NaiveDateTime {
    DateTime::from_timestamp(secs, 0).unwrap().naive_utc()
}

const T0: i64 = 1_780_000_000;

fn auditor() -> Auditor {
    Auditor::new(Pseudonymiser::new(Zeroizing::new(vec![42; 32])))
}

fn master_keys() -> MasterKeys {
    MasterKeys::new(KeySource::Env(Zeroizing::new(String::new())), Keyring::generate())
}

fn user(db: &idp::storage::Db, email: &str) -> UserId {
    db.write(|c| {
        c.create_user(
            &NewUser { email: Some(email.into()), email_verified: true, display_name: Some("A".into()) },
            at(T0),
        )
    })
    .unwrap()
    .id
}

fn migrations_are_idempotent(t: &TestDb) {
    let db = t.open();
    assert_eq!(db.migrate().unwrap(), 0, "a second migrate runs nothing");
    db.ping().unwrap();
}

fn users_round_trip_and_page(t: &TestDb) {
    let db = t.open();
    let ids: Vec<UserId> = (0..5).map(|i| user(&db, &format!("u{i}@example.com"))).collect();
    let found = db.read(|c| c.find_user(ids[2])).unwrap().unwrap();
    assert_eq!(found.email.as_deref(), Some("u2@example.com"));
    assert!(db.read(|c| c.find_user(UserId::new())).unwrap().is_none());
    let page1 = db.read(|c| c.list_users(None, 3)).unwrap();
    let page2 = db.read(|c| c.list_users(Some(page1[2].id), 3)).unwrap();
    let all: BTreeSet<UserId> = page1.iter().chain(&page2).map(|u| u.id).collect();
    assert_eq!(all.len(), 5, "keyset paging sees every user once");
    assert_eq!(db.read(|c| c.count_users()).unwrap(), 5);
    db.write(|c| c.set_user_disabled(ids[0], true, at(T0 + 1))).unwrap();
    assert!(db.read(|c| c.find_user(ids[0])).unwrap().unwrap().disabled);
    assert!(matches!(db.write(|c| c.set_user_disabled(UserId::new(), true, at(T0))), Err(StorageError::NotFound)));
    db.write(|c| c.delete_user(ids[1])).unwrap();
    assert_eq!(db.read(|c| c.count_users()).unwrap(), 4);
}

fn external_identity_is_unique_per_connector(t: &TestDb) {
    let db = t.open();
    let alice = user(&db, "alice@example.com");
    let bob = user(&db, "bob@example.com");
    db.write(|c| c.link_external_identity(alice, "google", "123", Some("alice@example.com"), at(T0))).unwrap();
    let dup = db.write(|c| c.link_external_identity(bob, "google", "123", None, at(T0)));
    assert!(matches!(dup, Err(StorageError::Conflict(_))), "{dup:?}");
    db.write(|c| c.link_external_identity(bob, "github", "123", None, at(T0))).unwrap();
    let found = db.read(|c| c.find_external_identity("google", "123")).unwrap().unwrap();
    assert_eq!(found.user_id, alice);
    assert_eq!(db.read(|c| c.external_identities_of(bob)).unwrap().len(), 1);
    db.write(|c| c.delete_user(alice)).unwrap();
    assert!(db.read(|c| c.find_external_identity("google", "123")).unwrap().is_none(), "identities go with their user");
}

fn organisations_projects_and_roles(t: &TestDb) {
    let db = t.open();
    let a = auditor();
    let (o1, o2) = (user(&db, "o1@example.com"), user(&db, "o2@example.com"));
    let member = user(&db, "m@example.com");
    let org = db
        .write(|c| organisations::create_organisation(c, &a, at(T0), Actor::Cli, "Acme Corp", None, &[o1, o2]))
        .unwrap();
    assert_eq!(org.slug.as_str(), "acme-corp");
    let dup = db.write(|c| organisations::create_organisation(c, &a, at(T0), Actor::Cli, "Acme Corp", None, &[]));
    assert!(matches!(dup, Err(AdminError::Conflict(_))), "{dup:?}");
    let owners = db.read(|c| c.organisation_members(org.id)).unwrap();
    assert_eq!(owners.len(), 2, "several owners");
    assert!(owners.iter().all(|m| m.role == RoleRef::Builtin(BuiltinRole::Owner)));

    let perms: BTreeSet<Permission> = [Permission::AuditRead, Permission::MembersRead].into();
    let auditor_role = db.write(|c| c.create_custom_role(org.id, "Auditor", &perms, at(T0))).unwrap();
    db.write(|c| c.set_organisation_member(org.id, member, RoleRef::Custom(auditor_role.id), at(T0))).unwrap();
    db.write(|c| c.set_organisation_member(org.id, member, RoleRef::Builtin(BuiltinRole::Viewer), at(T0))).unwrap();
    let roles = db.read(|c| c.list_custom_roles(org.id)).unwrap();
    assert_eq!(roles[0].permissions, perms);
    let m = db.read(|c| c.organisation_members(org.id)).unwrap().into_iter().find(|m| m.user_id == member).unwrap();
    assert_eq!(m.role, RoleRef::Builtin(BuiltinRole::Viewer), "setting a member again changes the role");

    let project =
        db.write(|c| organisations::create_project(c, &a, at(T0), Actor::Cli, "acme-corp", "Billing", None)).unwrap();
    db.write(|c| c.set_project_member(project.id, member, RoleRef::Builtin(BuiltinRole::Member), at(T0))).unwrap();
    assert_eq!(db.read(|c| c.project_members(project.id)).unwrap().len(), 1);
    assert_eq!(db.read(|c| c.list_projects(org.id)).unwrap().len(), 1);

    // The last owner stays.
    db.write(|c| organisations::remove_organisation_member(c, &a, at(T0), Actor::Cli, org.id, o1)).unwrap();
    let last = db.write(|c| organisations::remove_organisation_member(c, &a, at(T0), Actor::Cli, org.id, o2));
    assert!(matches!(last, Err(AdminError::Invalid(_))), "{last:?}");

    db.write(|c| c.delete_organisation(org.id)).unwrap();
    assert!(db.read(|c| c.find_project(project.id)).unwrap().is_none());
    assert!(db.read(|c| c.project_members(project.id)).unwrap().is_empty());
    assert!(db.read(|c| c.organisation_members(org.id)).unwrap().is_empty());
    assert!(db.read(|c| c.list_custom_roles(org.id)).unwrap().is_empty());
}

fn a_failed_use_case_writes_nothing(t: &TestDb) {
    let db = t.open();
    let a = auditor();
    let owner = user(&db, "o@example.com");
    let before = db.read(|c| c.audit_events(None, 100)).unwrap().len();
    let r = db.write(|c| {
        organisations::create_organisation(c, &a, at(T0), Actor::Cli, "Ghost", None, &[owner, UserId::new()])
    });
    assert!(matches!(r, Err(AdminError::NotFound(_))), "{r:?}");
    assert!(db.read(|c| c.list_organisations()).unwrap().is_empty(), "no half-written organisation");
    assert_eq!(db.read(|c| c.audit_events(None, 100)).unwrap().len(), before, "no audit event for what did not happen");
    for bad in ["", "   ", "a\u{0}b"] {
        assert!(db.write(|c| organisations::create_organisation(c, &a, at(T0), Actor::Cli, bad, None, &[])).is_err());
    }
    assert!(
        db.write(|c| organisations::create_organisation(c, &a, at(T0), Actor::Cli, "X", Some("Bad Slug"), &[]))
            .is_err()
    );
    assert!(matches!(
        db.write(|c| organisations::create_project(
            c,
            &a,
            at(T0),
            Actor::Cli,
            &OrganisationId::new().to_string(),
            "P",
            None
        )),
        Err(AdminError::NotFound(_))
    ));
}

fn sessions_expire_and_end(t: &TestDb) {
    let db = t.open();
    let a = auditor();
    let cfg = SessionConfig {
        idle_timeout: std::time::Duration::from_secs(1800),
        absolute_timeout: std::time::Duration::from_secs(3600),
    };
    let alice = user(&db, "alice@example.com");
    let bob = user(&db, "bob@example.com");
    let origin = Origin { ip: Some("192.0.2.7".parse().unwrap()), user_agent: Some("test".into()) };
    let (token, s) = db.write(|c| session::start(c, &a, &cfg, at(T0), alice, &["fed".into()], None, &origin)).unwrap();
    let (bob_token, bob_session) =
        db.write(|c| session::start(c, &a, &cfg, at(T0), bob, &["fed".into()], None, &origin)).unwrap();
    assert_ne!(token.expose(), bob_token.expose());
    assert_eq!(s.source.as_deref().map(|p| p.starts_with("ps_ip_")), Some(true), "the address is pseudonymised");

    let live = db.write(|c| session::resolve(c, &cfg, at(T0 + 600), token.expose())).unwrap().unwrap();
    assert_eq!(live.amr, vec!["fed".to_owned()]);
    assert!(db.write(|c| session::resolve(c, &cfg, at(T0 + 600), "x".repeat(43).as_str())).unwrap().is_none());
    assert!(db.write(|c| session::resolve(c, &cfg, at(T0 + 600), "short")).unwrap().is_none());
    // Touched at +600, so still live at +2399; idle-expired at +2400 + 1800.
    assert!(db.write(|c| session::resolve(c, &cfg, at(T0 + 2399), token.expose())).unwrap().is_some());
    assert!(
        db.write(|c| session::resolve(c, &cfg, at(T0 + 3600), token.expose())).unwrap().is_none(),
        "absolute timeout"
    );
    assert!(
        db.read(|c| c.find_session_by_token_hash(&idp::crypto::tokens::hash_token(token.expose()))).unwrap().is_none()
    );

    // Alice cannot end Bob's session by its id.
    assert!(!db.write(|c| session::end(c, &a, at(T0), alice, bob_session.id, Action::SessionEnded, None)).unwrap());
    assert!(db.write(|c| session::resolve(c, &cfg, at(T0 + 60), bob_token.expose())).unwrap().is_some());
    assert_eq!(db.write(|c| session::end_all(c, &a, at(T0), Actor::Cli, bob)).unwrap(), 1);
    assert!(db.write(|c| session::resolve(c, &cfg, at(T0 + 60), bob_token.expose())).unwrap().is_none());

    db.write(|c| session::start(c, &a, &cfg, at(T0), alice, &["fed".into()], None, &origin)).unwrap();
    assert_eq!(db.write(|c| session::purge_expired(c, &cfg, at(T0 + 3601))).unwrap(), 1);
}

fn session_tokens_are_stored_only_as_hashes(t: &TestDb) {
    let db = t.open();
    let cfg = SessionConfig::default();
    let alice = user(&db, "alice@example.com");
    let (token, _) =
        db.write(|c| session::start(c, &auditor(), &cfg, at(T0), alice, &[], None, &Origin::default())).unwrap();
    let raw = t.raw_bytes();
    assert!(!contains(&raw, token.expose().as_bytes()), "the session token is in the database");
}

fn audit_log_is_append_only_and_purged(t: &TestDb) {
    let db = t.open();
    let a = auditor();
    let ip = "203.0.113.9".parse().unwrap();
    db.write(|c| {
        a.record(
            c,
            at(T0),
            Event::new(Actor::Anonymous, Action::Logout).source(Some(ip)).email("email", "carol@example.com"),
        )
    })
    .unwrap();
    db.write(|c| a.record(c, at(T0 + 86_400 * 10), Event::new(Actor::System, Action::ServerInitialised))).unwrap();
    let events = db.read(|c| c.audit_events(Some("session.logout"), 10)).unwrap();
    let e = &events[0];
    assert!(e.source.as_deref().unwrap().starts_with("ps_ip_"));
    assert!(!e.details.as_deref().unwrap().contains("carol"));
    // The same address gives the same pseudonym: events can be correlated.
    assert_eq!(e.source, Some(a.pseudonymiser().pseudonymise(idp::crypto::pseudonym::Datum::IpAddress, "203.0.113.9")));

    let tamper = db.write(|c| {
        diesel::update(schema::audit_events::table)
            .set(schema::audit_events::actor.eq("someone-else"))
            .execute(c)
            .map_err(StorageError::from)
    });
    assert!(tamper.is_err(), "an audit event cannot be changed");
    assert_eq!(db.read(|c| c.audit_events(Some("session.logout"), 10)).unwrap()[0].actor, "anonymous");

    let raw = t.raw_bytes();
    assert!(!contains(&raw, b"carol@example.com") && !contains(&raw, b"203.0.113.9"), "personal data in plaintext");

    // Retention: 5 days keeps only the later event (and the purge records itself).
    let removed = db.write(|c| a.purge(c, at(T0 + 86_400 * 10), 5)).unwrap();
    assert_eq!(removed, 1);
    let left = db.read(|c| c.audit_events(None, 10)).unwrap();
    assert!(left.iter().all(|e| e.action != "session.logout"));
    assert!(left.iter().any(|e| e.action == "audit.purged"));
}

fn rate_limits_count_per_window(t: &TestDb) {
    let db = t.open();
    let limiter = RateLimiter::new(
        RateLimitConfig { window: std::time::Duration::from_secs(60), per_ip: 3, per_account: 2 },
        Pseudonymiser::new(Zeroizing::new(vec![1; 32])),
    );
    let ip = Subject::Ip("198.51.100.1".parse().unwrap());
    let now = 1_800_000_000; // a window boundary
    for _ in 0..3 {
        assert!(db.write(|c| limiter.hit(c, "auth", ip, now + 5)).unwrap().is_ok());
    }
    let limited = db.write(|c| limiter.hit(c, "auth", ip, now + 10)).unwrap().unwrap_err();
    assert_eq!(limited.retry_after_secs, 50);
    // Another address and another scope are counted apart.
    assert!(
        db.write(|c| limiter.hit(c, "auth", Subject::Ip("198.51.100.2".parse().unwrap()), now + 10)).unwrap().is_ok()
    );
    assert!(db.write(|c| limiter.hit(c, "token", ip, now + 10)).unwrap().is_ok());
    // The next window starts afresh.
    assert!(db.write(|c| limiter.hit(c, "auth", ip, now + 60)).unwrap().is_ok());
    let acct = Subject::Account("Alice@Example.com");
    assert!(db.write(|c| limiter.hit(c, "pwd", acct, now)).unwrap().is_ok());
    assert!(db.write(|c| limiter.hit(c, "pwd", Subject::Account("alice@example.com"), now)).unwrap().is_ok());
    assert!(db.write(|c| limiter.hit(c, "pwd", acct, now)).unwrap().is_err(), "accounts are normalised");
    assert!(!contains(&t.raw_bytes(), b"198.51.100.1"), "bucket names hold no address");
}

fn concurrent_rate_limit_hits_are_all_counted(t: &TestDb) {
    let db = t.open();
    let limiter = RateLimiter::new(
        RateLimitConfig { window: std::time::Duration::from_secs(3600), per_ip: 1000, per_account: 1 },
        Pseudonymiser::new(Zeroizing::new(vec![1; 32])),
    );
    let now = 1_800_000_000;
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (db, limiter) = (db.clone(), limiter.clone());
            s.spawn(move || {
                for _ in 0..25 {
                    db.write(|c| limiter.hit(c, "auth", Subject::Ip("192.0.2.1".parse().unwrap()), now))
                        .unwrap()
                        .unwrap();
                }
            });
        }
    });
    let hits: i32 = db
        .read(|c| schema::rate_limits::table.select(schema::rate_limits::hits).first(c).map_err(StorageError::from))
        .unwrap();
    assert_eq!(hits, 100);
}

fn concurrent_writers_never_see_database_is_locked(t: &TestDb) {
    let db = t.open();
    let errors = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..6 {
            let db = db.clone();
            let errors = &errors;
            s.spawn(move || {
                for i in 0..40 {
                    let r = db.write(|c| {
                        let u = c.create_user(
                            &NewUser { email: Some(format!("w{w}-{i}@example.com")), ..Default::default() },
                            at(T0),
                        )?;
                        c.find_user(u.id)?;
                        c.set_user_disabled(u.id, i % 2 == 0, at(T0 + 1))
                    });
                    if let Err(e) = r {
                        eprintln!("write failed: {e}");
                        errors.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(errors.into_inner(), 0);
    assert_eq!(db.read(|c| c.count_users()).unwrap(), 240);
}

fn secrets_are_sealed_at_rest_and_rotate(t: &TestDb) {
    let db = t.open();
    let keys = master_keys();
    let plain = b"totp-seed-JBSWY3DPEHPK3PXP-do-not-leak";
    let id = db.write(|c| c.seal_secret(&keys, SecretPurpose::TotpSeed, plain, at(T0))).unwrap();
    assert_eq!(db.read(|c| c.open_secret(&keys, id, SecretPurpose::TotpSeed)).unwrap().as_slice(), plain);
    assert!(matches!(db.read(|c| c.open_secret(&keys, id, SecretPurpose::SigningKey)), Err(StorageError::Corrupt(_))));
    assert!(!contains(&t.raw_bytes(), plain), "a secret is in the database in plaintext");

    // Rotation: a keyring with a new first key re-seals everything under it.
    let dir = tempfile::tempdir().unwrap();
    let file = KeySource::File(dir.path().join("master.key"));
    file.store(&keys.keyring().with_new_active_key()).unwrap();
    let rotated = MasterKeys::new(file.clone(), file.load().unwrap());
    for _ in 0..3 {
        db.write(|c| c.seal_secret(&keys, SecretPurpose::UpstreamClientSecret, b"x", at(T0))).unwrap();
    }
    assert_eq!(db.write(|c| c.reseal_batch(&rotated, 2, at(T0))).unwrap(), 2, "batches are bounded");
    assert_eq!(db.write(|c| c.reseal_batch(&rotated, 100, at(T0))).unwrap(), 2);
    let per_key = db.read(|c| c.secrets_per_key()).unwrap();
    assert_eq!(per_key, vec![(rotated.keyring().active_id().to_hex(), 4)]);
    let only_new = MasterKeys::new(file.clone(), rotated.keyring().only_active());
    assert_eq!(db.read(|c| c.open_secret(&only_new, id, SecretPurpose::TotpSeed)).unwrap().as_slice(), plain);
    db.read(|c| c.check_secrets_open(&only_new)).unwrap();
    assert!(
        matches!(db.read(|c| c.check_secrets_open(&keys)), Err(StorageError::Sealed(OpenError::UnknownKey(_))),),
        "the old keyring no longer opens what was re-sealed"
    );
}

fn a_corrupted_ciphertext_is_an_error_not_a_panic(t: &TestDb) {
    let db = t.open();
    let keys = master_keys();
    let id = db.write(|c| c.seal_secret(&keys, SecretPurpose::SamlPrivateKey, b"private", at(T0))).unwrap();
    let sealed: Vec<u8> = db
        .read(|c| {
            schema::secrets::table
                .find(id.to_string())
                .select(schema::secrets::sealed)
                .first(c)
                .map_err(StorageError::from)
        })
        .unwrap();
    for (i, garbage) in [flip(&sealed, 30), sealed[..10].to_vec(), vec![]].into_iter().enumerate() {
        db.write(|c| {
            diesel::update(schema::secrets::table.find(id.to_string()))
                .set(schema::secrets::sealed.eq(garbage))
                .execute(c)
                .map_err(StorageError::from)
        })
        .unwrap();
        let r = db.read(|c| c.open_secret(&keys, id, SecretPurpose::SamlPrivateKey));
        assert!(matches!(r, Err(StorageError::Sealed(_))), "case {i}: {r:?}");
    }
    assert!(matches!(
        db.read(|c| c.open_secret(&keys, SecretId::new(), SecretPurpose::SamlPrivateKey)),
        Err(StorageError::NotFound)
    ));
}

fn settings_keep_the_first_value(t: &TestDb) {
    let db = t.open();
    assert_eq!(db.write(|c| c.setting_or_insert("k", "first")).unwrap(), "first");
    assert_eq!(db.write(|c| c.setting_or_insert("k", "second")).unwrap(), "first");
    assert_eq!(db.read(|c| c.setting("k")).unwrap().as_deref(), Some("first"));
    assert!(db.read(|c| c.setting("absent")).unwrap().is_none());
}

fn group_mappings_sync_roles_and_leave_admin_decisions_alone(t: &TestDb) {
    use idp::auth::mapping::{Change, sync};
    use idp::connector_config::RoleMapping;
    use idp::domain::organisation::Slug;
    let db = t.open();
    let a = auditor();
    let alice = user(&db, "alice@example.com");
    let bob = user(&db, "bob@example.com");
    let org = db.write(|c| organisations::create_organisation(c, &a, at(T0), Actor::Cli, "Acme", None, &[])).unwrap();
    let other =
        db.write(|c| organisations::create_organisation(c, &a, at(T0), Actor::Cli, "Other", None, &[])).unwrap();
    let project =
        db.write(|c| organisations::create_project(c, &a, at(T0), Actor::Cli, "acme", "Billing", None)).unwrap();
    let rule = |group: &str, org: &str, project: Option<&str>, role| RoleMapping {
        group: group.into(),
        organisation: Slug::parse(org).unwrap(),
        project: project.map(|p| Slug::parse(p).unwrap()),
        role,
    };
    let rules = vec![
        rule("eng", "acme", None, BuiltinRole::Member),
        rule("admins", "acme", None, BuiltinRole::Admin),
        rule("billing", "acme", Some("billing"), BuiltinRole::Admin),
        rule("eng", "no-such-org", None, BuiltinRole::Member),
    ];
    let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // The strongest matching rule wins; projects get their own role.
    let ch = db.write(|c| sync(c, &a, at(T0), alice, "gh", &groups(&["eng", "admins", "billing"]), &rules)).unwrap();
    assert_eq!(ch.len(), 2, "{ch:?}");
    let m = db.read(|c| c.organisation_membership(org.id, alice)).unwrap().unwrap();
    assert_eq!((m.role, m.source.as_deref()), (RoleRef::Builtin(BuiltinRole::Admin), Some("connector:gh")));
    assert_eq!(
        db.read(|c| c.project_membership(project.id, alice)).unwrap().unwrap().role,
        RoleRef::Builtin(BuiltinRole::Admin)
    );
    // Nothing changes when nothing changed.
    assert!(
        db.write(|c| sync(c, &a, at(T0), alice, "gh", &groups(&["eng", "admins", "billing"]), &rules))
            .unwrap()
            .is_empty()
    );
    // Losing a group lowers the role; losing all removes the mapped memberships.
    db.write(|c| sync(c, &a, at(T0), alice, "gh", &groups(&["eng"]), &rules)).unwrap();
    assert_eq!(
        db.read(|c| c.organisation_membership(org.id, alice)).unwrap().unwrap().role,
        RoleRef::Builtin(BuiltinRole::Member)
    );
    assert!(db.read(|c| c.project_membership(project.id, alice)).unwrap().is_none());
    let ch = db.write(|c| sync(c, &a, at(T0), alice, "gh", &[], &rules)).unwrap();
    assert_eq!(ch, vec![Change::Removed { organisation: "acme".into(), project: None }]);
    assert!(db.read(|c| c.organisation_membership(org.id, alice)).unwrap().is_none());
    // An administrator's membership is never changed by a connector, nor another connector's.
    db.write(|c| c.set_organisation_member(org.id, bob, RoleRef::Builtin(BuiltinRole::Viewer), at(T0))).unwrap();
    assert!(db.write(|c| sync(c, &a, at(T0), bob, "gh", &groups(&["admins"]), &rules)).unwrap().is_empty());
    assert!(db.write(|c| sync(c, &a, at(T0), bob, "gh", &[], &rules)).unwrap().is_empty());
    assert_eq!(
        db.read(|c| c.organisation_membership(org.id, bob)).unwrap().unwrap().role,
        RoleRef::Builtin(BuiltinRole::Viewer)
    );
    assert!(db.read(|c| c.organisation_membership(other.id, alice)).unwrap().is_none());
    assert!(db.read(|c| c.audit_events(Some("member.removed"), 10)).unwrap().len() >= 2, "changes are audited");
}

fn flip(v: &[u8], i: usize) -> Vec<u8> {
    let mut v = v.to_vec();
    v[i] ^= 1;
    v
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Codes and refresh tokens are single use (a second use is seen), grants revoke, and the purge
/// removes only what nothing hangs off.
fn oauth_single_use_and_purge(t: &TestDb) {
    use idp::storage::oauth::{CodeRow, GrantRow, OAuthRepository, RefreshTokenRow, Use};
    let db = t.open();
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap().naive_utc();
    let later = now + chrono::Duration::hours(2);
    let grant = |id: &str| GrantRow {
        id: id.into(),
        client_id: "app".into(),
        user_id: None,
        session_id: None,
        scopes: "openid".into(),
        auth_time: None,
        amr: "[]".into(),
        acr: None,
        created_at: now,
        revoked_at: None,
    };
    db.write(|c| {
        c.insert_grant(&grant("g1"))?;
        c.insert_grant(&grant("g2"))?;
        c.insert_grant(&grant("g3"))?;
        c.insert_code(&CodeRow {
            code_hash: "h1".into(),
            grant_id: "g1".into(),
            client_id: "app".into(),
            redirect_uri: "https://a/cb".into(),
            nonce: None,
            code_challenge: None,
            created_at: now,
            expires_at: now + chrono::Duration::seconds(60),
            consumed_at: None,
        })?;
        c.insert_refresh_token(&RefreshTokenRow {
            token_hash: "r1".into(),
            grant_id: "g2".into(),
            parent_hash: None,
            created_at: now,
            expires_at: now + chrono::Duration::days(30),
            consumed_at: None,
        })
    })
    .unwrap();
    let first = db.write(|c| c.use_code("h1", now)).unwrap();
    assert!(matches!(first, Use::First(_)));
    assert!(matches!(db.write(|c| c.use_code("h1", now)).unwrap(), Use::Again(_)));
    assert_eq!(db.write(|c| c.use_code("nope", now)).unwrap(), Use::Unknown);
    assert!(matches!(db.write(|c| c.use_refresh_token("r1", now)).unwrap(), Use::First(_)));
    assert!(matches!(db.write(|c| c.use_refresh_token("r1", now)).unwrap(), Use::Again(_)));
    db.write(|c| c.revoke_grant("g2", now)).unwrap();
    assert!(db.read(|c| c.find_grant("g2")).unwrap().unwrap().revoked_at.is_some());
    // The code (expired) and grants g1 (then bare) and g3 go; g2 keeps its refresh token.
    assert_eq!(db.write(|c| c.purge_oauth(later)).unwrap(), 3);
    assert!(db.read(|c| c.find_grant("g1")).unwrap().is_none());
    assert!(db.read(|c| c.find_grant("g2")).unwrap().is_some());
}

on_both_backends!(
    migrations_are_idempotent,
    users_round_trip_and_page,
    external_identity_is_unique_per_connector,
    organisations_projects_and_roles,
    a_failed_use_case_writes_nothing,
    sessions_expire_and_end,
    session_tokens_are_stored_only_as_hashes,
    audit_log_is_append_only_and_purged,
    rate_limits_count_per_window,
    concurrent_rate_limit_hits_are_all_counted,
    concurrent_writers_never_see_database_is_locked,
    secrets_are_sealed_at_rest_and_rotate,
    a_corrupted_ciphertext_is_an_error_not_a_panic,
    settings_keep_the_first_value,
    group_mappings_sync_roles_and_leave_admin_decisions_alone,
    oauth_single_use_and_purge,
);
