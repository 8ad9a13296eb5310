//! API tokens against a real SQLite database with a fixed clock: the lifecycle, rotation's
//! grace, revocation through the cache, personal tokens following their user's memberships,
//! and which clients may see which tokens.

use std::collections::BTreeSet;

use super::*;
use crate::admin::organisations::{self, AdminError};
use crate::admin::tokens::{self, Caller, NewToken};
use crate::audit::{Actor, Auditor};
use crate::clock::{Clock, FixedClock};
use crate::crypto::pseudonym::Pseudonymiser;
use crate::domain::organisation::Project;
use crate::domain::role::BuiltinRole;
use crate::domain::user::NewUser;
use crate::storage::{DatabaseUrl, Db};

struct World {
    _dir: tempfile::TempDir,
    db: Db,
    auditor: Auditor,
    clock: FixedClock,
    alice: UserId,
    bob: UserId,
    org: OrganisationId,
    billing: Project,
    search: Project,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("t.sqlite")), 2).unwrap();
    db.migrate().unwrap();
    let auditor = Auditor::new(Pseudonymiser::new(zeroize::Zeroizing::new(vec![7; 32])));
    let clock = FixedClock::at_unix(1_800_000_000);
    let now = clock.now_naive();
    let user = |email: &str| {
        db.write(|c| {
            c.create_user(&NewUser { email: Some(email.into()), email_verified: true, display_name: None }, now)
        })
        .unwrap()
        .id
    };
    let (alice, bob) = (user("alice@example.com"), user("bob@example.com"));
    let org = db
        .write(|c| organisations::create_organisation(c, &auditor, now, Actor::Cli, "Acme", Some("acme"), &[alice]))
        .unwrap();
    let project = |name: &str| {
        db.write(|c| organisations::create_project(c, &auditor, now, Actor::Cli, "acme", name, None)).unwrap()
    };
    let (billing, search) = (project("Billing"), project("Search"));
    db.write(|c| c.set_project_member(billing.id, bob, RoleRef::Builtin(BuiltinRole::Member), now)).unwrap();
    World { _dir: dir, db, auditor, clock, alice, bob, org: org.id, billing, search }
}

fn scopes(names: &[&str]) -> BTreeSet<Permission> {
    names.iter().map(|n| parse_permission(n).unwrap()).collect()
}

impl World {
    fn now(&self) -> NaiveDateTime {
        self.clock.now_naive()
    }

    fn create(
        &self,
        caller: Caller,
        kind: TokenKind,
        project: Option<&str>,
        sc: &[&str],
    ) -> Result<tokens::IssuedToken, AdminError> {
        let user = match (caller, kind) {
            (Caller::Operator, TokenKind::Personal) => Some(self.bob),
            _ => None,
        };
        let new = NewToken {
            kind,
            name: "ci",
            organisation: "acme",
            project,
            user,
            scopes: scopes(sc),
            lifetime_days: Some(30),
        };
        self.db.write(|c| tokens::create(c, &self.auditor, self.now(), caller, &new))
    }

    fn service(&self) -> tokens::IssuedToken {
        self.create(Caller::Operator, TokenKind::Service, Some("billing"), &["audit_read"]).unwrap()
    }

    fn check(&self, secret: &str) -> Result<ApiPrincipal, TokenError> {
        self.db.read(|c| authenticate(c, secret, self.now()))
    }

    fn rotate(&self, id: ApiTokenId, grace_hours: i64) -> String {
        self.db
            .write(|c| tokens::rotate(c, &self.auditor, self.now(), Caller::Operator, &id.to_string(), grace_hours))
            .unwrap()
            .secret
    }
}

#[test]
fn a_service_token_validates_with_its_project_and_scopes() {
    let w = world();
    let t = w.service();
    let p = w.check(&t.secret).unwrap();
    assert_eq!((p.kind, p.project_id, p.organisation_id), (TokenKind::Service, Some(w.billing.id), w.org));
    assert_eq!(p.scope_string(), "audit_read");
    assert_eq!(p.subject(), format!("token:{}", t.token.id));
    assert!(t.secret.starts_with("idp_sat_"));
}

#[test]
fn a_mistyped_token_is_refused_before_any_lookup() {
    let w = world();
    let t = w.service();
    let mut chars: Vec<char> = t.secret.chars().collect();
    let i = 12;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    let typo: String = chars.into_iter().collect();
    assert!(matches!(w.check(&typo), Err(TokenError::Malformed)));
    assert!(matches!(w.check(""), Err(TokenError::Malformed)));
    assert!(matches!(w.check(&t.secret.replace("_sat_", "_pat_")), Err(TokenError::Malformed)));
    assert!(matches!(w.check(&format!("{} ", t.secret)), Err(TokenError::Malformed)));
    // Well formed, checksum right, never issued.
    assert!(matches!(w.check(&format::generate(TokenKind::Service)), Err(TokenError::Unknown)));
}

#[test]
fn an_expired_token_is_refused() {
    let w = world();
    let t = w.service();
    w.clock.advance(30 * 86_400 - 1);
    assert!(w.check(&t.secret).is_ok());
    w.clock.advance(1);
    assert!(matches!(w.check(&t.secret), Err(TokenError::Expired)));
}

#[test]
fn rotation_keeps_the_old_secret_for_the_grace_period_only() {
    let w = world();
    let t = w.service();
    let new = w.rotate(t.token.id, 2);
    assert!(w.check(&t.secret).is_ok(), "old secret within its grace");
    assert!(w.check(&new).is_ok());
    w.clock.advance(2 * 3600);
    assert!(matches!(w.check(&t.secret), Err(TokenError::Expired)), "grace over");
    assert!(w.check(&new).is_ok());
}

#[test]
fn rotation_without_grace_ends_the_old_secret_at_once() {
    let w = world();
    let t = w.service();
    let new = w.rotate(t.token.id, 0);
    assert!(w.check(&t.secret).is_err());
    assert!(w.check(&new).is_ok());
    // A second rotation shortens, never extends, the first one's grace.
    let third = w.rotate(t.token.id, 5);
    assert!(w.check(&t.secret).is_err());
    assert!(w.check(&new).is_ok() && w.check(&third).is_ok());
}

#[test]
fn a_rotation_grace_out_of_range_changes_nothing() {
    let w = world();
    let t = w.service();
    for grace in [-1, tokens::MAX_GRACE_HOURS + 1] {
        let r =
            w.db.write(|c| tokens::rotate(c, &w.auditor, w.now(), Caller::Operator, &t.token.id.to_string(), grace));
        assert!(matches!(r, Err(AdminError::Invalid(_))), "{grace}");
    }
    assert!(w.check(&t.secret).is_ok());
}

#[test]
fn revocation_is_seen_at_once_even_through_the_cache() {
    let w = world();
    let t = w.service();
    let v = Validator::new(std::time::Duration::from_secs(60), "https://id.example.com");
    w.db.read(|c| v.validate(c, &t.secret, w.now())).unwrap();
    assert!(v.cached(&t.secret, w.now()).unwrap().is_some(), "cached");
    w.db.write(|c| tokens::revoke(c, &w.auditor, w.now(), Caller::Operator, &t.token.id.to_string())).unwrap();
    assert!(v.cached(&t.secret, w.now()).unwrap().is_none(), "a revocation empties the cache");
    assert!(matches!(w.db.read(|c| v.validate(c, &t.secret, w.now())), Err(TokenError::Revoked)));
}

#[test]
fn a_cached_token_still_expires() {
    let w = world();
    let t = w.service();
    let new = w.rotate(t.token.id, 1);
    let v = Validator::new(std::time::Duration::from_secs(60), "https://id.example.com");
    w.db.read(|c| v.validate(c, &t.secret, w.now())).unwrap();
    w.db.read(|c| v.validate(c, &new, w.now())).unwrap();
    w.clock.advance(3600);
    assert!(v.cached(&t.secret, w.now()).unwrap().is_none(), "the cache holds nothing past the grace");
    assert!(w.db.read(|c| v.validate(c, &t.secret, w.now())).is_err());
}

#[test]
fn a_personal_token_follows_its_users_membership() {
    let w = world();
    let t = w.create(Caller::User(w.bob), TokenKind::Personal, Some("billing"), &["members_read"]);
    let t = t.unwrap();
    let p = w.check(&t.secret).unwrap();
    assert_eq!((p.user_id, p.roles.clone()), (Some(w.bob), vec!["member".to_owned()]));
    w.db.write(|c| c.remove_project_member(w.billing.id, w.bob)).unwrap();
    assert!(matches!(w.check(&t.secret), Err(TokenError::UserGone)), "membership gone, token useless");
    assert_eq!(w.db.write(|c| tokens::revoke_lapsed(c, w.bob, w.now())).unwrap(), 1);
    w.db.write(|c| c.set_project_member(w.billing.id, w.bob, RoleRef::Builtin(BuiltinRole::Member), w.now())).unwrap();
    assert!(matches!(w.check(&t.secret), Err(TokenError::Revoked)), "coming back does not revive it");
}

#[test]
fn removing_a_member_revokes_their_personal_tokens() {
    let w = world();
    let now = w.now();
    // An organisation admin reaches every project through that role.
    w.db.write(|c| c.set_organisation_member(w.org, w.bob, RoleRef::Builtin(BuiltinRole::Admin), now)).unwrap();
    let t = w.create(Caller::User(w.bob), TokenKind::Personal, Some("search"), &["audit_read"]);
    let t = t.unwrap();
    assert!(w.check(&t.secret).is_ok());
    w.db.write(|c| organisations::remove_organisation_member(c, &w.auditor, now, Actor::Cli, w.org, w.bob)).unwrap();
    assert!(matches!(w.check(&t.secret), Err(TokenError::Revoked)));
}

#[test]
fn a_personal_token_never_does_more_than_its_user_today() {
    let w = world();
    let now = w.now();
    w.db.write(|c| c.set_project_member(w.billing.id, w.bob, RoleRef::Builtin(BuiltinRole::Admin), now)).unwrap();
    let t = w.create(Caller::User(w.bob), TokenKind::Personal, Some("billing"), &["members_manage", "members_read"]);
    let t = t.unwrap();
    assert!(w.check(&t.secret).unwrap().allows(Permission::MembersManage));
    w.db.write(|c| c.set_project_member(w.billing.id, w.bob, RoleRef::Builtin(BuiltinRole::Viewer), now)).unwrap();
    let p = w.check(&t.secret).unwrap();
    assert!(!p.allows(Permission::MembersManage), "demoted: the scope is gone");
    assert!(p.allows(Permission::MembersRead));
}

#[test]
fn nobody_hands_out_more_than_they_hold() {
    let w = world();
    // Bob is a member: he can neither make a service token nor a personal one beyond his role.
    let r = w.create(Caller::User(w.bob), TokenKind::Service, Some("billing"), &["audit_read"]);
    assert!(matches!(r, Err(AdminError::Forbidden(_))), "{r:?}");
    let r = w.create(Caller::User(w.bob), TokenKind::Personal, Some("billing"), &["members_manage"]);
    assert!(matches!(r, Err(AdminError::Invalid(_))), "{r:?}");
    // A project he is not in does not exist for him.
    let r = w.create(Caller::User(w.bob), TokenKind::Personal, Some("search"), &["members_read"]);
    assert!(matches!(r, Err(AdminError::Invalid(_) | AdminError::NotFound(_))), "{r:?}");
    let none = w.db.read(|c| c.api_tokens_of_organisation(&w.org.to_string())).unwrap();
    assert!(none.is_empty(), "nothing was written");
}

#[test]
fn another_organisations_member_sees_nothing() {
    let w = world();
    let now = w.now();
    let eve =
        w.db.write(|c| {
            c.create_user(
                &NewUser { email: Some("eve@example.com".into()), email_verified: true, display_name: None },
                now,
            )
        })
        .unwrap()
        .id;
    w.db.write(|c| organisations::create_organisation(c, &w.auditor, now, Actor::Cli, "Evil", Some("evil"), &[eve]))
        .unwrap();
    let t = w.service();
    let id = t.token.id.to_string();
    let list = w.db.read(|c| tokens::list(c, Caller::User(eve), "acme"));
    assert!(matches!(list, Err(AdminError::NotFound(_))));
    for r in [
        w.db.write(|c| tokens::revoke(c, &w.auditor, now, Caller::User(eve), &id)),
        w.db.write(|c| tokens::rotate(c, &w.auditor, now, Caller::User(eve), &id, 0)).map(|_| ()),
    ] {
        assert!(matches!(r, Err(AdminError::NotFound("token"))), "{r:?}");
    }
    assert!(w.check(&t.secret).is_ok(), "unchanged");
    let _ = w.alice;
}

#[test]
fn clients_see_only_their_projects_tokens() {
    let w = world();
    let t = w.service();
    let p = w.check(&t.secret).unwrap();
    assert!(visible_to(None, &p), "an unbound client is the operator's resource server");
    assert!(visible_to(Some(Some((w.org, w.billing.id))), &p));
    assert!(!visible_to(Some(Some((w.org, w.search.id))), &p), "another project");
    assert!(!visible_to(Some(Some((OrganisationId::new(), w.billing.id))), &p), "another organisation");
    assert!(!visible_to(Some(None), &p), "a client whose project does not exist");
}

#[test]
fn the_organisation_caps_token_lifetimes() {
    let w = world();
    w.db.write(|c| tokens::set_max_lifetime(c, &w.auditor, w.now(), Caller::Operator, "acme", 7)).unwrap();
    let r = w.create(Caller::Operator, TokenKind::Service, Some("billing"), &["audit_read"]);
    assert!(matches!(r, Err(AdminError::Invalid(_))), "30 days is over the cap");
    let r = w.db.write(|c| tokens::set_max_lifetime(c, &w.auditor, w.now(), Caller::User(w.bob), "acme", 3650));
    assert!(matches!(r, Err(AdminError::Forbidden(_) | AdminError::NotFound(_))), "{r:?}");
}

#[test]
fn an_expired_cache_entry_sends_one_caller_to_storage_and_answers_the_others_meanwhile() {
    let w = world();
    let t = w.service();
    let p = std::sync::Arc::new(w.check(&t.secret).unwrap());
    let hash = crate::crypto::tokens::hash_token(&t.secret);
    let generation = crate::storage::api_tokens::revocation_generation;
    // Other tests revoke tokens in this process, which (rightly) empties every cache: a run
    // that saw a revocation is not evidence either way and is tried again.
    for _ in 0..20 {
        let cache = cache::TokenCache::new(std::time::Duration::from_millis(100));
        let g = generation();
        cache.put(hash.clone(), p.clone(), bytes::Bytes::from_static(b"{}"), g);
        let fresh = cache.get(&hash, w.now()).is_some();
        std::thread::sleep(std::time::Duration::from_millis(150));
        let first = cache.get(&hash, w.now()).is_none();
        let others = cache.get(&hash, w.now()).is_some();
        std::thread::sleep(std::time::Duration::from_millis(1000));
        let late = cache.get(&hash, w.now()).is_none();
        if generation() != g {
            continue;
        }
        assert!(fresh);
        assert!(first, "the first caller after the TTL refreshes");
        assert!(others, "the others are answered meanwhile");
        assert!(late, "a refresh that never came back does not keep the entry alive");
        cache.put(hash.clone(), p.clone(), bytes::Bytes::from_static(b"{}"), g);
        cache.forget(&hash);
        assert!(cache.get(&hash, w.now()).is_none(), "a failed lookup forgets the entry");
        return;
    }
    panic!("revocations elsewhere in the process never left this test alone");
}
