//! Backups: round trips on both backends and across them, consistency under load, and every
//! kind of bad input through the binary (a one-line error, a non-zero exit, nothing half-written).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use diesel::prelude::*;
use harness::{TestDb, idp, run, text};
use idp::admin::organisations;
use idp::app::{self, AppState};
use idp::audit::Actor;
use idp::auth::rate_limit::Subject;
use idp::auth::session::{self, Origin};
use idp::backup::{self, format};
use idp::config::Config;
use idp::crypto::backup_key::BackupKey;
use idp::domain::role::{BuiltinRole, Permission, RoleRef};
use idp::domain::user::NewUser;
use idp::storage::dump::{self, TABLES};
use idp::storage::organisations::OrganisationRepository;
use idp::storage::secrets::{SecretPurpose, SecretRepository};
use idp::storage::users::UserRepository;
use idp::storage::{DatabaseUrl, Db, database_columns, schema};

const ORG_NAME: &str = "Plaintext Canary Org";

/// An idp deployment on `t`: the state built as `idp serve` builds it, keys in `dir`.
fn deployment(t: &TestDb, dir: &Path) -> AppState {
    let env = vec![("IDP_DATABASE_URL".to_owned(), t.url()), ("IDP_DATA_DIR".to_owned(), dir.display().to_string())];
    app::build_state(Config::load_with(None, &env).unwrap()).unwrap()
}

/// Fills every table: users, external identities, an organisation with a project, a custom
/// role and members, sealed secrets, a session, OAuth grants, codes and refresh tokens, API tokens,
/// TOTP credentials and recovery codes, two-factor policies, rate limits (settings, signing keys
/// and audit events come with the start).
fn populate(s: &AppState) -> String {
    let now = s.clock.now_naive();
    let users: Vec<_> = (0..5)
        .map(|i| {
            s.db.write(|c| {
                c.create_user(
                    &NewUser {
                        email: Some(format!("canary{i}@example.com")),
                        email_verified: i % 2 == 0,
                        display_name: (i != 3).then(|| format!("User {i}")),
                    },
                    now,
                )
            })
            .unwrap()
            .id
        })
        .collect();
    s.db.write(|c| c.link_external_identity(users[0], "google", "g-123", Some("canary0@example.com"), now)).unwrap();
    let org =
        s.db.write(|c| organisations::create_organisation(c, &s.auditor, now, Actor::Cli, ORG_NAME, None, &users[..1]))
            .unwrap();
    let perms: BTreeSet<Permission> = [Permission::AuditRead].into();
    let role = s.db.write(|c| c.create_custom_role(org.id, "Auditors", &perms, now)).unwrap();
    s.db.write(|c| c.set_organisation_member(org.id, users[1], RoleRef::Custom(role.id), now)).unwrap();
    let project = s
        .db
        .write(|c| organisations::create_project(c, &s.auditor, now, Actor::Cli, org.slug.as_str(), "Billing", None))
        .unwrap();
    s.db.write(|c| c.set_project_member(project.id, users[2], RoleRef::Builtin(BuiltinRole::Member), now)).unwrap();
    s.db.write(|c| c.seal_secret(&s.keys, SecretPurpose::TotpSeed, b"JBSWY3DPEHPK3PXP", now)).unwrap();
    s.db.write(|c| -> Result<(), idp::mfa::MfaError> {
        use idp::storage::mfa::MfaRepository;
        let e = idp::mfa::totp::enrol(c, &s.keys, users[0], "Phone", "idp", "canary0@example.com", now)?;
        // Confirmed through storage (no code needed here), so the nullable columns hold values.
        c.confirm_totp_credential(&e.credential_id.to_string(), 60_000_000, now)?;
        idp::mfa::totp::enrol(c, &s.keys, users[1], "Pending", "idp", "canary1@example.com", now)?;
        let set = idp::mfa::recovery::generate(c, &s.auditor, users[0], now)?;
        let first = set.codes().next().map(str::to_owned).unwrap_or_default();
        idp::mfa::recovery::redeem(c, &s.auditor, users[0], &first, None, now)?;
        Ok(())
    })
    .unwrap();
    s.db.write(|c| {
        use idp::storage::webauthn::{WebauthnCeremonyRow, WebauthnCredentialRow, WebauthnRepository};
        // Through storage (a real ceremony needs an authenticator: tests/webauthn.rs), with every
        // nullable column holding a value.
        c.insert_webauthn_credential(&WebauthnCredentialRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: users[0].to_string(),
            kind: "passkey".into(),
            name: "Canary passkey".into(),
            credential_id: "Y2FuYXJ5LWNyZWRlbnRpYWw".into(),
            credential: "{\"cred_id\":\"Y2FuYXJ5\"}".into(),
            sign_count: 42,
            backup_eligible: true,
            backed_up: false,
            created_at: now,
            last_used_at: Some(now),
        })?;
        c.insert_webauthn_ceremony(&WebauthnCeremonyRow {
            id: uuid::Uuid::new_v4().to_string(),
            purpose: "register_passkey".into(),
            user_id: Some(users[0].to_string()),
            binding_hash: "b".repeat(64),
            name: Some("Canary key".into()),
            state: "{}".into(),
            created_at: now,
            expires_at: now,
        })
    })
    .unwrap();
    let cfg = s.config.session.clone();
    let origin = Origin { ip: Some("192.0.2.7".parse().unwrap()), user_agent: Some("test agent".into()) };
    s.db.write(|c| session::start(c, &s.auditor, &cfg, now, users[0], &["pwd".into()], Some("aal1"), &origin)).unwrap();
    s.db.write(|c| {
        let cfg: idp::config::ConnectorConfig = toml::from_str(
            "id = \"acme-sso\"\ntype = \"oidc\"\nname = \"Acme SSO\"\nissuer = \"https://sso.acme.example\"\nclient_id = \"c\"\nclient_secret = \"acme-client-secret\"\n",
        )
        .unwrap();
        idp::admin::connectors::create(c, &s.keys, &s.auditor, now, Actor::Cli, org.slug.as_str(), &cfg, &|_| false)
            .map_err(|e| idp::storage::StorageError::Corrupt(e.to_string()))
    })
    .unwrap();
    s.db.write(|c| {
        use idp::storage::domains::{DomainRepository, OrganisationDomainRow};
        use idp::storage::invitations::{InvitationRepository, InvitationRow};
        // Through storage, with every nullable column holding a value (a verified, routed domain;
        // an accepted invitation).
        c.insert_domain(&OrganisationDomainRow {
            id: uuid::Uuid::new_v4().to_string(),
            organisation_id: org.id.to_string(),
            domain: "canary.example".into(),
            token: "0123456789abcdef0123456789abcdef".into(),
            verified_at: Some(now),
            connector_id: Some("acme-sso".into()),
            created_at: now,
        })?;
        c.insert_invitation(&InvitationRow {
            id: uuid::Uuid::new_v4().to_string(),
            organisation_id: org.id.to_string(),
            email: "canary4@example.com".into(),
            builtin_role: Some("member".into()),
            custom_role_id: None,
            token_hash: "c".repeat(64),
            created_by: "cli".into(),
            created_at: now,
            expires_at: now,
            revoked_at: Some(now),
            accepted_at: Some(now),
            accepted_by: Some(users[4].to_string()),
        })
    })
    .unwrap();
    s.db.write(|c| {
        idp::storage::passwords::PasswordRepository::set_password(
            c,
            users[0],
            "canary0@example.com",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            now,
        )
    })
    .unwrap();
    s.db.write(|c| {
        let secrets = idp::upstream::FlowSecrets {
            nonce: Some("n".into()),
            pkce_verifier: Some("v".into()),
            saml_request_id: None,
        };
        idp::auth::login::begin(c, &s.keys, now, "google", "state-x", &secrets, "binding", Some("/"), Some(users[0]))
    })
    .unwrap();
    s.db.write(|c| idp::auth::mfa_login::begin(c, now, users[0], &["fed".into()], "google", Some("/"))).unwrap();
    s.db.write(|c| {
        use idp::storage::oauth::{CodeRow, GrantRow, OAuthRepository, RefreshTokenRow};
        let grant = GrantRow {
            id: uuid::Uuid::new_v4().to_string(),
            client_id: "app".into(),
            user_id: Some(users[0].to_string()),
            session_id: None,
            scopes: "openid email offline_access".into(),
            auth_time: Some(now),
            amr: "[\"fed\"]".into(),
            acr: Some("aal1".into()),
            created_at: now,
            revoked_at: None,
        };
        c.insert_grant(&grant)?;
        c.insert_code(&CodeRow {
            code_hash: "c0de".repeat(16),
            grant_id: grant.id.clone(),
            client_id: "app".into(),
            redirect_uri: "https://app.example.com/cb".into(),
            nonce: Some("n".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            created_at: now,
            expires_at: now,
            consumed_at: Some(now),
        })?;
        c.set_consent(&idp::storage::oauth::ConsentRow {
            user_id: users[0].to_string(),
            client_id: "third-party".into(),
            scopes: "openid email".into(),
            granted_at: now,
        })?;
        c.revoke_access_token(&idp::storage::oauth::RevokedAccessTokenRow {
            jti: "cc.revoked-jti".into(),
            client_id: "app".into(),
            revoked_at: now,
            expires_at: now,
        })?;
        c.insert_refresh_token(&RefreshTokenRow {
            token_hash: "ref1".repeat(16),
            grant_id: grant.id,
            parent_hash: Some("ref0".repeat(16)),
            created_at: now,
            expires_at: now,
            consumed_at: None,
        })
    })
    .unwrap();
    s.db.write(|c| {
        use idp::admin::tokens::{self, Caller, NewToken};
        let issued = tokens::create(
            c,
            &s.auditor,
            now,
            Caller::Operator,
            &NewToken {
                kind: idp::tokens::TokenKind::Service,
                name: "deploy bot",
                organisation: org.slug.as_str(),
                project: Some(project.slug.as_str()),
                user: None,
                scopes: [Permission::AuditRead].into(),
                lifetime_days: Some(30),
            },
        )?;
        tokens::rotate(c, &s.auditor, now, Caller::Operator, &issued.token.id.to_string(), 1)?;
        tokens::set_max_lifetime(c, &s.auditor, now, Caller::Operator, org.slug.as_str(), 90)
    })
    .unwrap();
    s.db.write(|c| {
        use idp::admin::mfa_policy::{PolicyChange, set_organisation_policy, set_project_policy};
        use idp::admin::tokens::Caller;
        let methods = ["totp".to_owned()];
        let change = PolicyChange { required: true, methods: &methods, grace_days: Some(7) };
        set_organisation_policy(c, &s.auditor, now, Caller::Operator, org.slug.as_str(), change)?;
        set_project_policy(c, &s.auditor, now, Caller::Operator, org.slug.as_str(), project.slug.as_str(), change)
    })
    .unwrap();
    s.db.write(|c| {
        let reg: idp::admin::clients::Registration = serde_json::from_value(serde_json::json!({
            "name": "Billing web", "redirect_uris": ["https://billing.example.com/cb"]
        }))
        .unwrap();
        let caller = idp::admin::tokens::Caller::Operator;
        idp::admin::clients::register(c, &s.auditor, now, caller, org.slug.as_str(), project.slug.as_str(), &reg)
    })
    .unwrap();
    s.db.write(|c| -> Result<(), idp::scim::ScimError> {
        use idp::scim::{Kind, service};
        let sc = service::Scope {
            org: org.id,
            org_slug: org.slug.clone(),
            base: "https://idp.example.com/scim/v2",
            mappings: &[],
            auditor: &s.auditor,
            actor: Actor::Cli,
            now,
            if_match: None,
        };
        let u = service::create(c, &sc, Kind::User, &serde_json::json!({"userName": "scim.canary@example.com"}))?;
        let members = serde_json::json!([{"value": u["id"]}]);
        service::create(c, &sc, Kind::Group, &serde_json::json!({"displayName": "Engineers", "members": members}))?;
        Ok(())
    })
    .unwrap();
    s.db.write(|c| {
        use idp::storage::saml_assertions::{SamlAssertionRepository, SamlAssertionRow};
        c.record_saml_assertion(&SamlAssertionRow {
            id: "5a".repeat(32),
            connector_id: "okta".into(),
            seen_at: now,
            expires_at: now,
        })
    })
    .unwrap();
    s.db.write(|c| s.limiter.hit(c, "auth", Subject::Ip("192.0.2.7".parse().unwrap()), now.and_utc().timestamp()))
        .unwrap()
        .unwrap();
    let hash: String =
        s.db.read(|c| {
            schema::sessions::table
                .select(schema::sessions::token_hash)
                .first(c)
                .map_err(idp::storage::StorageError::from)
        })
        .unwrap();
    hash
}

/// Every table's rows in their dump form.
fn tables(db: &Db) -> Vec<(&'static str, Vec<u8>)> {
    db.read(|c| {
        TABLES
            .iter()
            .map(|t| {
                let mut out = Vec::new();
                dump::dump_table(c, t, &mut out)?;
                Ok((*t, out))
            })
            .collect::<Result<Vec<_>, dump::DumpError>>()
    })
    .unwrap()
}

fn rows_in(url: &str) -> i64 {
    let db = Db::open(&DatabaseUrl::parse(url).unwrap(), 1).unwrap();
    db.read(|c| -> Result<i64, dump::DumpError> {
        if database_columns(c)?.is_empty() {
            return Ok(0);
        }
        Ok(dump::count_all(c)?.iter().map(|(_, n)| n).sum())
    })
    .unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn round_trip(from: TestDb, to: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let s = deployment(&from, dir.path());
    let token_hash = populate(&s);
    let before = tables(&s.db);
    for (t, rows) in &before {
        assert!(!rows.is_empty(), "the fixture leaves {t} empty, so the round trip would not cover it");
    }
    let key = BackupKey::generate();
    let file = dir.path().join("b.idpbak");
    let created = backup::create(&s.db, &key, &file, Utc::now()).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    for needle in ["canary0@example.com", ORG_NAME, &token_hash, "JBSWY3DPEHPK3PXP", "Billing"] {
        assert!(!contains(&bytes, needle.as_bytes()), "{needle} in plaintext in the backup");
    }
    let target = Db::open(&DatabaseUrl::parse(&to.url()).unwrap(), 2).unwrap();
    let restored = backup::restore(&target, &key, Some(&s.keys), "test keys", &file, false).unwrap();
    assert_eq!(restored.header, created.header);
    assert!(restored.sealed_checked >= 1);
    let after = tables(&target);
    for ((t, a), (_, b)) in before.iter().zip(&after) {
        assert_eq!(String::from_utf8_lossy(a), String::from_utf8_lossy(b), "table {t} differs after the restore");
    }
    // Every column of every table is in the dump: a column the row types miss would fail here.
    let columns = target.read(database_columns).unwrap();
    for (t, rows) in &after {
        let first: serde_json::Value =
            serde_json::from_slice(rows.lines().next().unwrap().unwrap().as_bytes()).unwrap();
        let dumped: BTreeSet<String> = first.as_object().unwrap().keys().cloned().collect();
        let in_db: BTreeSet<String> = columns.iter().filter(|(tt, _)| tt == t).map(|(_, c)| c.clone()).collect();
        assert_eq!(dumped, in_db, "table {t}: the dump's columns are not the database's");
    }
    let tables_in_db: BTreeSet<&str> = columns.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tables_in_db, TABLES.iter().copied().collect(), "a table in the database is not backed up");
}

#[test]
fn round_trip_sqlite_to_sqlite() {
    round_trip(TestDb::sqlite(), TestDb::sqlite());
}

#[test]
fn round_trip_postgres_to_postgres() {
    round_trip(TestDb::postgres(), TestDb::postgres());
}

#[test]
fn round_trip_sqlite_to_postgres() {
    round_trip(TestDb::sqlite(), TestDb::postgres());
}

#[test]
fn round_trip_postgres_to_sqlite() {
    round_trip(TestDb::postgres(), TestDb::sqlite());
}

/// A backup taken while a writer keeps adding users and memberships restores consistently.
fn backup_under_load(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let s = deployment(&t, dir.path());
    populate(&s);
    let org = s.db.read(|c| c.list_organisations()).unwrap()[0].id;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let now = s.clock.now_naive();
                s.db.write(|c| {
                    let u = c.create_user(
                        &NewUser { email: Some(format!("load{n}@example.com")), ..Default::default() },
                        now,
                    )?;
                    c.set_organisation_member(org, u.id, RoleRef::Builtin(BuiltinRole::Viewer), now)
                })
                .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let key = BackupKey::generate();
    let file = dir.path().join("load.idpbak");
    let created = backup::create(&s.db, &key, &file, Utc::now()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);
    let verified = backup::verify(&key, Some(&s.keys), "test keys", &file).unwrap();
    let users = created.header.tables.iter().find(|t| t.name == "users").unwrap().rows;
    let members = created.header.tables.iter().find(|t| t.name == "organisation_members").unwrap().rows;
    assert_eq!(users - 5, members - 2, "each loaded user came with its membership: the snapshot is consistent");
    assert_eq!(verified.header, created.header);
}

#[test]
fn backup_under_load_sqlite() {
    backup_under_load(TestDb::sqlite());
}

#[test]
fn backup_under_load_postgres() {
    backup_under_load(TestDb::postgres());
}

/// A scheduled run backs up into backup.dir, verifies, leaves the note `list` shows, audits;
/// on PostgreSQL an instance that does not hold the advisory lock skips.
fn scheduled_run(t: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let s = deployment(&t, dir.path());
    populate(&s);
    let other = s.db.try_exclusive(idp::backup::schedule::LOCK_KEY).unwrap();
    if t.is_postgres() {
        assert!(other.is_some());
        let second = Db::open(&DatabaseUrl::parse(&t.url()).unwrap(), 1).unwrap();
        assert!(second.try_exclusive(idp::backup::schedule::LOCK_KEY).unwrap().is_none(), "the lock is exclusive");
        let mut blocked = s.clone();
        blocked.db = second;
        assert!(idp::backup::schedule::run_once(&blocked).unwrap().is_none(), "another instance holds the lock");
    }
    drop(other);
    let created = idp::backup::schedule::run_once(&s).unwrap().unwrap();
    assert!(created.path.starts_with(&s.config.backup.dir));
    let key = s.config.backup.key.load().unwrap();
    let listed = idp::backup::schedule::list(&s.config.backup.dir, Some(&key)).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].verify.as_ref().unwrap().ok);
    assert_eq!(listed[0].header.as_ref().unwrap(), &created.header);
    let actions: Vec<String> =
        s.db.read(|c| {
            schema::audit_events::table
                .select(schema::audit_events::action)
                .load(c)
                .map_err(idp::storage::StorageError::from)
        })
        .unwrap();
    assert!(actions.iter().any(|a| a == "backup.created") && actions.iter().any(|a| a == "backup.verified"));
}

#[test]
fn scheduled_run_sqlite() {
    scheduled_run(TestDb::sqlite());
}

#[test]
fn scheduled_run_postgres() {
    scheduled_run(TestDb::postgres());
}

// ---- the binary, with bad input ----

/// A SQLite deployment in a temp dir with an organisation, and a backup of it.
struct Fixture {
    dir: tempfile::TempDir,
    backup: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let out = run(idp(dir.path()).args(["org", "create", "--name", ORG_NAME]));
        assert!(out.status.success(), "{}", text(&out));
        let backup = dir.path().join("b.idpbak");
        let out = run(idp(dir.path()).args(["backup", "create", "--output"]).arg(&backup));
        assert!(out.status.success(), "{}", text(&out));
        Fixture { dir, backup }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn verify(&self, file: &Path) -> (bool, String) {
        let out = run(idp(self.dir.path()).args(["backup", "verify"]).arg(file));
        (out.status.success(), text(&out))
    }

    /// Restores into a fresh SQLite file; returns success, output and that database's URL.
    fn restore_fresh(&self, file: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
        let url = format!("sqlite://{}", self.path(&format!("r-{}.sqlite", uuid::Uuid::new_v4().simple())).display());
        let mut cmd = idp(self.dir.path());
        cmd.args(["backup", "restore"]).arg(file).env("IDP_DATABASE_URL", &url);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        (out.status.success(), text(&out), url)
    }

    fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.backup).unwrap()
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// Adds `n` users straight through the library, for backups that take a while.
    fn grow(&self, n: usize) {
        let db = Db::open(&DatabaseUrl::Sqlite(self.path("idp-data/idp.sqlite")), 2).unwrap();
        let now = Utc::now().naive_utc();
        db.write(|c| {
            for i in 0..n {
                c.create_user(
                    &NewUser {
                        email: Some(format!("bulk{i}@example.com")),
                        display_name: Some("x".repeat(40)),
                        ..Default::default()
                    },
                    now,
                )?;
            }
            Ok::<_, idp::storage::StorageError>(())
        })
        .unwrap();
    }
}

fn one_line_failure(ok: bool, out: &str, expect: &str) {
    assert!(!ok, "succeeded: {out}");
    assert!(out.to_lowercase().contains(expect), "expected {expect:?} in: {out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("idp: ")).count(), 1, "one line: {out}");
    assert!(!out.contains("panicked"), "{out}");
}

/// Frame starts (after the 31-byte prefix) of a backup file.
fn frames(file: &[u8]) -> Vec<(usize, usize)> {
    let mut at = 31;
    let mut out = Vec::new();
    while at + 5 <= file.len() {
        let len = u32::from_be_bytes(file[at + 1..at + 5].try_into().unwrap()) as usize;
        out.push((at, 5 + len));
        at += 5 + len;
    }
    out
}

#[test]
fn a_fresh_backup_verifies_lists_and_restores() {
    let f = Fixture::new();
    let (ok, out) = f.verify(&f.backup);
    assert!(ok && out.contains("backup OK"), "{out}");
    let (ok, out, url) = f.restore_fresh(&f.backup, &[]);
    assert!(ok, "{out}");
    let orgs = run(idp(f.dir.path()).args(["org", "list"]).env("IDP_DATABASE_URL", &url));
    assert!(text(&orgs).contains(ORG_NAME), "{}", text(&orgs));
    // The default location, its modes, and the list.
    let out = run(idp(f.dir.path()).args(["backup", "create"]));
    assert!(out.status.success(), "{}", text(&out));
    let bdir = f.path("idp-data/backups");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&bdir).unwrap().permissions().mode() & 0o777, 0o700);
    let made = std::fs::read_dir(&bdir).unwrap().next().unwrap().unwrap().path();
    assert_eq!(std::fs::metadata(&made).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(f.verify(&made).0);
    let list = text(&run(idp(f.dir.path()).args(["backup", "list"])));
    assert!(list.contains("verified OK") && list.contains("schema "), "{list}");
}

#[test]
fn a_truncated_file_is_refused() {
    let f = Fixture::new();
    let b = f.bytes();
    let (last, _) = *frames(&b).last().unwrap();
    for (name, cut) in [("half", b.len() / 2), ("no-last-chunk", last), ("prefix-only", 20)] {
        let p = f.write(&format!("{name}.idpbak"), &b[..cut]);
        let (ok, out) = f.verify(&p);
        assert!(!ok, "{name}: {out}");
        let (ok, out, url) = f.restore_fresh(&p, &[]);
        assert!(!ok, "{name}: {out}");
        assert_eq!(rows_in(&url), 0, "{name}: the target holds rows after a failed restore");
    }
    let p = f.write("t.idpbak", &b[..last]);
    let (ok, out) = f.verify(&p);
    one_line_failure(ok, &out, "truncated");
}

#[test]
fn a_flipped_byte_in_any_chunk_is_refused() {
    let f = Fixture::new();
    let b = f.bytes();
    let fr = frames(&b);
    assert!(fr.len() >= 2);
    for (i, (at, len)) in fr.iter().enumerate() {
        let mut bad = b.clone();
        bad[at + len / 2] ^= 0x01;
        let p = f.write(&format!("flip{i}.idpbak"), &bad);
        let (ok, out) = f.verify(&p);
        one_line_failure(ok, &out, "failed authentication");
        let (ok, _, url) = f.restore_fresh(&p, &[]);
        assert!(!ok);
        assert_eq!(rows_in(&url), 0);
    }
}

#[test]
fn swapped_chunks_are_refused() {
    let f = Fixture::new();
    let b = f.bytes();
    let fr = frames(&b);
    let ((a, al), (c, cl)) = (fr[0], fr[1]);
    let mut swapped = b[..a].to_vec();
    swapped.extend_from_slice(&b[c..c + cl]);
    swapped.extend_from_slice(&b[a..a + al]);
    swapped.extend_from_slice(&b[c + cl..]);
    let p = f.write("swapped.idpbak", &swapped);
    let (ok, out) = f.verify(&p);
    one_line_failure(ok, &out, "chunk 0");
}

#[test]
fn the_wrong_backup_key_is_named() {
    let f = Fixture::new();
    let other = BackupKey::generate().to_text();
    let out = run(idp(f.dir.path()).args(["backup", "verify"]).arg(&f.backup).env("IDP_BACKUP_KEY", other.as_str()));
    one_line_failure(out.status.success(), &text(&out), "backup key");
    let (ok, out, url) = f.restore_fresh(&f.backup, &[("IDP_BACKUP_KEY", other.as_str())]);
    one_line_failure(ok, &out, "backup key");
    assert_eq!(rows_in(&url), 0);
}

#[test]
fn a_missing_master_key_is_explained() {
    let f = Fixture::new();
    std::fs::rename(f.path("idp-data/master.key"), f.path("master.key.away")).unwrap();
    let (ok, out) = f.verify(&f.backup);
    one_line_failure(ok, &out, "master key");
    let (ok, out, url) = f.restore_fresh(&f.backup, &[]);
    one_line_failure(ok, &out, "sealed under master key");
    assert!(out.contains("IDP_MASTER_KEY"), "{out}");
    assert_eq!(rows_in(&url), 0);
    assert!(!f.path("idp-data/master.key").exists(), "restore never generates a master key");
}

#[test]
fn a_backup_from_a_newer_schema_is_refused() {
    let f = Fixture::new();
    let key = BackupKey::parse(&std::fs::read_to_string(f.path("idp-data/backup.key")).unwrap()).unwrap();
    let (mut header, mut rows) = backup::open(&f.backup, &key).unwrap();
    header.schema_version = "99991231000000".into();
    let mut rest = Vec::new();
    rows.read_to_end(&mut rest).unwrap();
    let mut w = format::BackupWriter::new(Vec::new(), &key).unwrap();
    serde_json::to_writer(&mut w, &header).unwrap();
    w.write_all(b"\n").unwrap();
    w.end_chunk().unwrap();
    w.write_all(&rest).unwrap();
    let p = f.write("newer.idpbak", &w.finish().unwrap());
    let (ok, out, url) = f.restore_fresh(&p, &[]);
    one_line_failure(ok, &out, "newer schema");
    assert_eq!(rows_in(&url), 0);
}

#[test]
fn a_non_empty_target_is_refused_unless_forced() {
    let f = Fixture::new();
    let src = format!("sqlite://{}", f.path("idp-data/idp.sqlite").display());
    let before = rows_in(&src);
    let out = run(idp(f.dir.path()).args(["backup", "restore"]).arg(&f.backup));
    one_line_failure(out.status.success(), &text(&out), "not empty");
    assert_eq!(rows_in(&src), before, "the target is unchanged");
    let out = run(idp(f.dir.path()).args(["backup", "restore", "--force"]).arg(&f.backup));
    assert!(out.status.success(), "{}", text(&out));
    let orgs = text(&run(idp(f.dir.path()).args(["org", "list"])));
    assert_eq!(orgs.matches(ORG_NAME).count(), 1, "{orgs}");
}

#[test]
fn a_full_disk_leaves_no_backup_file() {
    let f = Fixture::new();
    f.grow(3_000);
    let out_dir = f.path("out");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("full.idpbak");
    let script = format!(
        "trap '' XFSZ; ulimit -f 64; exec {} backup create --output {}",
        harness::idp_bin().display(),
        target.display()
    );
    let out = run(idp(f.dir.path()).arg("--version").env("X", "1")); // warm the page cache
    assert!(out.status.success());
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).current_dir(f.dir.path()).env("IDP_LOG_FORMAT", "text");
    let out = run(&mut cmd);
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("backup failed") && msg.contains("File too large"), "{msg}");
    assert!(!target.exists(), "a backup file was left behind");
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0, "a partial file was left behind");
}

fn wait_for(mut cond: impl FnMut() -> bool, secs: u64) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

#[test]
fn kill_9_during_backup_leaves_nothing_that_passes_as_complete() {
    let f = Fixture::new();
    f.grow(20_000);
    let out_dir = f.path("k");
    std::fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("k.idpbak");
    let mut child = idp(f.dir.path())
        .args(["backup", "create", "--output"])
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started =
        wait_for(|| std::fs::read_dir(&out_dir).unwrap().any(|e| e.unwrap().metadata().unwrap().len() > 0), 20);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started, "the backup never began writing");
    assert!(!target.exists(), "a killed backup left a file with the final name");
    for e in std::fs::read_dir(&out_dir).unwrap() {
        let p = e.unwrap().path();
        assert!(p.file_name().unwrap().to_string_lossy().contains(".partial-"), "{}", p.display());
        assert!(!f.verify(&p).0, "a partial file verifies");
    }
    let list = text(&run(idp(f.dir.path()).args(["backup", "list"]).env("IDP_BACKUP_DIR", &out_dir)));
    assert!(list.contains("no backups"), "{list}");
}

#[test]
fn kill_9_during_restore_leaves_the_target_empty() {
    let f = Fixture::new();
    f.grow(20_000);
    let big = f.path("big.idpbak");
    assert!(run(idp(f.dir.path()).args(["backup", "create", "--output"]).arg(&big)).status.success());
    let url = format!("sqlite://{}", f.path("killed.sqlite").display());
    let mut child = idp(f.dir.path())
        .args(["backup", "restore"])
        .arg(&big)
        .env("IDP_DATABASE_URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wal = f.path("killed.sqlite-wal");
    wait_for(|| std::fs::metadata(&wal).map(|m| m.len() > 100_000).unwrap_or(false), 20);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the restore finished before it was killed; make the fixture bigger");
    assert_eq!(rows_in(&url), 0, "a killed restore left rows behind");
}

#[test]
fn a_target_that_goes_away_mid_restore_is_rolled_back() {
    let f = Fixture::new();
    f.grow(20_000);
    let big = f.path("big.idpbak");
    assert!(run(idp(f.dir.path()).args(["backup", "create", "--output"]).arg(&big)).status.success());
    let pg = TestDb::postgres();
    let TestDb::Postgres { name, admin, .. } = &pg else { unreachable!() };
    let child = idp(f.dir.path())
        .args(["backup", "restore"])
        .arg(&big)
        .env("IDP_DATABASE_URL", pg.url())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut admin_conn = diesel::PgConnection::establish(admin).unwrap();
    let sql = format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = '{name}' AND state = 'active' AND query ILIKE 'INSERT%'"
    );
    #[derive(QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let killed = wait_for(
        || {
            let pids: Vec<Pid> = diesel::sql_query(&sql).load(&mut admin_conn).unwrap_or_default();
            for p in &pids {
                let _ = diesel::sql_query(format!("SELECT pg_terminate_backend({})", p.pid)).execute(&mut admin_conn);
            }
            !pids.is_empty()
        },
        30,
    );
    let out = child.wait_with_output().unwrap();
    assert!(killed, "never saw the restore's inserts");
    let msg = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{msg}");
    assert!(msg.contains("restore failed"), "{msg}");
    assert!(!msg.contains("panicked"), "{msg}");
    assert_eq!(rows_in(&pg.url()), 0, "rows were left behind");
}
