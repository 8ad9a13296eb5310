//! Two-factor policy use cases against a real SQLite database with a fixed clock: who may set
//! and read, what is written and audited, and that every refusal leaves nothing behind.

use std::collections::BTreeSet;

use super::*;
use crate::admin::organisations;
use crate::audit::Actor;
use crate::clock::{Clock, FixedClock};
use crate::crypto::pseudonym::Pseudonymiser;
use crate::crypto::secretbox::{KeySource, Keyring, MasterKeys};
use crate::domain::role::{BuiltinRole, RoleRef};
use crate::domain::user::NewUser;
use crate::mfa::policy::Allowed;
use crate::storage::dump::count_rows;
use crate::storage::{DatabaseUrl, Db};

struct World {
    _dir: tempfile::TempDir,
    db: Db,
    keys: MasterKeys,
    auditor: Auditor,
    clock: FixedClock,
    /// Owner of acme.
    alice: UserId,
    /// Member of acme's billing project.
    bob: UserId,
    /// Viewer in acme.
    carol: UserId,
    /// Owner of globex, nothing in acme.
    dave: UserId,
    billing: ProjectId,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("t.sqlite")), 2).unwrap();
    db.migrate().unwrap();
    let keys = MasterKeys::new(KeySource::Env(zeroize::Zeroizing::new(String::new())), Keyring::generate());
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
    let (alice, bob, carol, dave) =
        (user("alice@example.com"), user("bob@example.com"), user("carol@example.com"), user("dave@example.com"));
    let org = |name: &str, slug: &str, owner: UserId| {
        db.write(|c| organisations::create_organisation(c, &auditor, now, Actor::Cli, name, Some(slug), &[owner]))
            .unwrap()
    };
    let acme = org("Acme", "acme", alice);
    org("Globex", "globex", dave);
    let project = |org: &str, name: &str| {
        db.write(|c| organisations::create_project(c, &auditor, now, Actor::Cli, org, name, None)).unwrap()
    };
    let billing = project("acme", "Billing");
    project("acme", "Search");
    project("globex", "Billing");
    db.write(|c| c.set_project_member(billing.id, bob, RoleRef::Builtin(BuiltinRole::Member), now)).unwrap();
    db.write(|c| c.set_organisation_member(acme.id, carol, RoleRef::Builtin(BuiltinRole::Viewer), now)).unwrap();
    World { _dir: dir, db, keys, auditor, clock, alice, bob, carol, dave, billing: billing.id }
}

fn required(methods: &[String], grace_days: Option<i64>) -> PolicyChange<'_> {
    PolicyChange { required: true, methods, grace_days }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

impl World {
    fn now(&self) -> NaiveDateTime {
        self.clock.now_naive()
    }

    fn set_org(&self, caller: Caller, org: &str, change: PolicyChange<'_>) -> Result<Requirement, AdminError> {
        self.db.write(|c| set_organisation_policy(c, &self.auditor, self.now(), caller, org, change))
    }

    fn set_project(
        &self,
        caller: Caller,
        org: &str,
        project: &str,
        change: PolicyChange<'_>,
    ) -> Result<Requirement, AdminError> {
        self.db.write(|c| set_project_policy(c, &self.auditor, self.now(), caller, org, project, change))
    }

    fn effective(&self, caller: Caller, project: Option<&str>, user: Option<UserId>) -> EffectivePolicy {
        self.db.read(|c| get_effective(c, self.now(), caller, "acme", project, user)).unwrap()
    }

    /// (policy rows of both tables, `mfa.policy_set` events).
    fn written(&self) -> (i64, usize) {
        let rows = self
            .db
            .read(|c| -> Result<i64, crate::storage::dump::DumpError> {
                Ok(count_rows(c, "organisation_mfa_policies")? + count_rows(c, "project_mfa_policies")?)
            })
            .unwrap();
        let events = self.db.read(|c| c.audit_events(Some(Action::MfaPolicySet.as_str()), 100)).unwrap();
        (rows, events.len())
    }

    fn confirmed_totp(&self, user: UserId) {
        self.db
            .write(|c| -> Result<(), crate::mfa::MfaError> {
                let e = crate::mfa::totp::enrol(c, &self.keys, user, "Phone", "idp", "x@example.com", self.now())?;
                c.confirm_totp_credential(&e.credential_id.to_string(), 60_000_000, self.now())?;
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn the_operator_sets_an_organisation_policy_and_it_is_audited() {
    let w = world();
    let methods = strings(&["webauthn", "totp"]);
    let req = w.set_org(Caller::Operator, "acme", required(&methods, Some(7))).unwrap();
    let week = w.now() + Duration::days(7);
    let both = Allowed::Only([Method::Totp, Method::WebAuthn].into());
    assert_eq!(req, Requirement { required: true, allowed: both, grace_until: Some(week) });
    let org = w.effective(Caller::Operator, None, None).organisation_id;
    let row = w.db.read(|c| c.organisation_mfa_policy(&org.to_string())).unwrap().unwrap();
    assert_eq!((row.requirement.as_str(), row.methods.as_str()), ("required", r#"["totp","webauthn"]"#));
    assert_eq!((row.grace_until, row.updated_at, row.updated_by.as_str()), (Some(week), w.now(), "cli"));

    let events = w.db.read(|c| c.audit_events(Some(Action::MfaPolicySet.as_str()), 10)).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!((e.actor.as_str(), e.target.as_deref()), ("cli", Some(row.organisation_id.as_str())));
    let details: serde_json::Value = serde_json::from_str(e.details.as_deref().unwrap()).unwrap();
    assert_eq!(details["scope"], "organisation");
    assert_eq!(details["old"], "off");
    assert_eq!(details["new"], "required, methods totp,webauthn, enrolment grace until 2027-01-22 08:00 UTC");

    // Turning it off again records the old value.
    w.clock.advance(60);
    w.set_org(Caller::Operator, "acme", PolicyChange { required: false, methods: &[], grace_days: None }).unwrap();
    let events = w.db.read(|c| c.audit_events(Some(Action::MfaPolicySet.as_str()), 10)).unwrap();
    let details: serde_json::Value = serde_json::from_str(events[0].details.as_deref().unwrap()).unwrap();
    assert_eq!(
        (details["old"].as_str().unwrap().starts_with("required"), details["new"].as_str()),
        (true, Some("off"))
    );
    assert_eq!(w.written(), (1, 2));
}

#[test]
fn an_owner_sets_a_project_policy_and_gets_the_effective_one() {
    let w = world();
    let totp = strings(&["totp"]);
    w.set_org(Caller::Operator, "acme", required(&[], Some(30))).unwrap();
    let org_grace = w.now() + Duration::days(30);
    // Audit events are listed newest first; a later time keeps that order unambiguous.
    w.clock.advance(60);
    let req = w.set_project(Caller::User(w.alice), "acme", "billing", required(&totp, Some(3))).unwrap();
    assert_eq!(req.allowed, Allowed::Only([Method::Totp].into()));
    assert_eq!(req.grace_until, Some(w.now() + Duration::days(3)), "the earlier grace wins");
    let row = w.db.read(|c| c.project_mfa_policy(&w.billing.to_string())).unwrap().unwrap();
    assert_eq!(row.updated_by, format!("user:{}", w.alice));
    let events = w.db.read(|c| c.audit_events(Some(Action::MfaPolicySet.as_str()), 1)).unwrap();
    assert_eq!(events[0].target.as_deref(), Some(w.billing.to_string().as_str()));
    assert_eq!(events[0].actor, format!("user:{}", w.alice));

    // A project set to off stays required by the organisation.
    let off = PolicyChange { required: false, methods: &[], grace_days: None };
    let req = w.set_project(Caller::Operator, "acme", "billing", off).unwrap();
    assert_eq!((req.required, req.allowed.clone(), req.grace_until), (true, Allowed::Any, Some(org_grace)));
    let shown = w.effective(Caller::User(w.alice), Some("billing"), None);
    assert_eq!((shown.project, shown.effective), (Some(Policy::off()), req));
}

#[test]
fn members_and_viewers_are_forbidden_and_nothing_is_written() {
    let w = world();
    let before = w.written();
    // Bob belongs to a project only: the organisation itself is not his to see.
    assert!(matches!(w.set_org(Caller::User(w.bob), "acme", required(&[], None)), Err(AdminError::NotFound(_))));
    assert!(matches!(w.set_org(Caller::User(w.carol), "acme", required(&[], None)), Err(AdminError::Forbidden(_))));
    for caller in [Caller::User(w.bob), Caller::User(w.carol)] {
        assert!(
            matches!(w.set_project(caller, "acme", "billing", required(&[], None)), Err(AdminError::Forbidden(_))),
            "{caller:?}"
        );
        let shown = w.db.read(|c| get_effective(c, w.now(), caller, "acme", Some("billing"), None));
        assert!(matches!(shown, Err(AdminError::Forbidden(_))), "{caller:?}");
    }
    assert_eq!(w.written(), before);
}

#[test]
fn a_caller_of_another_organisation_gets_not_found() {
    let w = world();
    let dave = Caller::User(w.dave);
    assert!(matches!(w.set_org(dave, "acme", required(&[], None)), Err(AdminError::NotFound("organisation"))));
    assert!(matches!(
        w.set_project(dave, "acme", "billing", required(&[], None)),
        Err(AdminError::NotFound("organisation"))
    ));
    let shown = w.db.read(|c| get_effective(c, w.now(), dave, "acme", None, None));
    assert!(matches!(shown, Err(AdminError::NotFound("organisation"))));
    let listed = w.db.read(|c| list_effective(c, dave, "acme"));
    assert!(matches!(listed, Err(AdminError::NotFound("organisation"))));
    // The same answer as for names that do not exist; and globex's own project is not acme's.
    assert!(matches!(w.set_org(Caller::Operator, "nope", required(&[], None)), Err(AdminError::NotFound(_))));
    assert!(matches!(
        w.set_project(Caller::Operator, "acme", "nope", required(&[], None)),
        Err(AdminError::NotFound("project"))
    ));
    assert!(w.set_project(dave, "globex", "billing", required(&[], None)).is_ok());
    assert_eq!(w.written(), (1, 1));
}

#[test]
fn invalid_input_is_refused_and_nothing_is_written() {
    let w = world();
    let (sms, recovery, totp) = (strings(&["sms"]), strings(&["recovery_code"]), strings(&["totp"]));
    let cases: Vec<(&str, PolicyChange<'_>, &str)> = vec![
        ("unknown method", PolicyChange { required: true, methods: &sms, grace_days: None }, "unknown"),
        ("recovery codes", PolicyChange { required: true, methods: &recovery, grace_days: None }, "fallback"),
        ("methods when off", PolicyChange { required: false, methods: &totp, grace_days: None }, "only apply"),
        ("grace when off", PolicyChange { required: false, methods: &[], grace_days: Some(3) }, "only applies"),
        ("no grace days", PolicyChange { required: true, methods: &[], grace_days: Some(0) }, "1 to 365"),
        ("too many grace days", PolicyChange { required: true, methods: &[], grace_days: Some(366) }, "1 to 365"),
        ("negative grace", PolicyChange { required: true, methods: &[], grace_days: Some(-1) }, "1 to 365"),
    ];
    for (name, change, says) in cases {
        for result in [
            w.set_org(Caller::Operator, "acme", change),
            w.set_project(Caller::User(w.alice), "acme", "billing", change),
        ] {
            match result {
                Err(AdminError::Invalid(m)) => assert!(m.contains(says), "{name}: {m}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
    assert_eq!(w.written(), (0, 0));
}

#[test]
fn method_lists_with_nothing_in_common_are_refused_both_ways() {
    let w = world();
    let (totp, webauthn) = (strings(&["totp"]), strings(&["webauthn"]));
    w.set_org(Caller::Operator, "acme", required(&totp, None)).unwrap();
    let before = w.written();
    let refused = w.set_project(Caller::Operator, "acme", "billing", required(&webauthn, None));
    assert!(matches!(refused, Err(AdminError::Invalid(m)) if m.contains("no method in common")));
    assert_eq!(w.written(), before);

    // The other way round: a project lists webauthn while the organisation is off.
    w.set_org(Caller::Operator, "acme", PolicyChange { required: false, methods: &[], grace_days: None }).unwrap();
    w.set_project(Caller::Operator, "acme", "billing", required(&webauthn, None)).unwrap();
    let before = w.written();
    let refused = w.set_org(Caller::Operator, "acme", required(&totp, None));
    assert!(matches!(refused, Err(AdminError::Invalid(m)) if m.contains("project billing")));
    assert_eq!(w.written(), before);
    // Allowing both is fine, and narrows billing to webauthn.
    w.set_org(Caller::Operator, "acme", required(&strings(&["totp", "webauthn"]), None)).unwrap();
    let shown = w.effective(Caller::Operator, Some("billing"), None);
    assert_eq!(shown.effective.allowed, Allowed::Only([Method::WebAuthn].into()));
}

#[test]
fn what_a_user_would_meet_follows_their_factors_and_the_grace() {
    let w = world();
    w.set_project(Caller::Operator, "acme", "billing", required(&[], Some(2))).unwrap();
    let all: BTreeSet<Method> = Method::ALL.into_iter().collect();
    let standing = |u: UserId| w.effective(Caller::Operator, Some("billing"), Some(u)).user.unwrap();

    let bob = standing(w.bob);
    assert_eq!(bob.factors, vec![]);
    assert_eq!(bob.without_mfa, Decision::Enrol { methods: all.clone(), grace_until: w.now() + Duration::days(2) });

    w.confirmed_totp(w.bob);
    assert_eq!(standing(w.bob).without_mfa, Decision::StepUp { methods: [Method::Totp].into() });

    w.clock.advance(2 * 86_400);
    assert_eq!(standing(w.alice).without_mfa, Decision::EnrolNow { methods: all });
    assert_eq!(standing(w.bob).without_mfa, Decision::StepUp { methods: [Method::Totp].into() });

    // In a project that requires nothing, nobody is held up.
    assert_eq!(w.effective(Caller::Operator, Some("search"), Some(w.alice)).user.unwrap().without_mfa, Decision::Allow);
    let unknown = w.db.read(|c| get_effective(c, w.now(), Caller::Operator, "acme", None, Some(UserId::new())));
    assert!(matches!(unknown, Err(AdminError::NotFound("user"))));
}

#[test]
fn the_overview_lists_every_project() {
    let w = world();
    w.set_org(Caller::Operator, "acme", required(&[], None)).unwrap();
    w.set_project(Caller::Operator, "acme", "billing", required(&strings(&["totp"]), None)).unwrap();
    let (org, projects) = w.db.read(|c| list_effective(c, Caller::User(w.alice), "acme")).unwrap();
    assert!(org.required);
    let rows: Vec<(String, bool, Allowed)> = projects
        .into_iter()
        .map(|p| (p.project.slug.as_str().to_owned(), p.own.required, p.effective.allowed))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("billing".to_owned(), true, Allowed::Only([Method::Totp].into())),
            ("search".to_owned(), false, Allowed::Any),
        ]
    );
}

#[test]
fn policies_go_with_their_organisation() {
    let w = world();
    w.set_org(Caller::Operator, "acme", required(&[], None)).unwrap();
    w.set_project(Caller::Operator, "acme", "billing", required(&[], None)).unwrap();
    w.set_project(Caller::Operator, "globex", "billing", required(&[], None)).unwrap();
    let acme = w.effective(Caller::Operator, None, None).organisation_id;
    w.db.write(|c| c.delete_organisation(acme)).unwrap();
    assert_eq!(w.written().0, 1, "only globex's project policy is left");
}
