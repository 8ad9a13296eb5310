//! Two-factor policy through the binary: `idp org|project set-mfa` and `show-mfa`, on SQLite
//! and PostgreSQL. Every refused command says why in one line and writes nothing. The
//! combination and decision rules themselves are tables in idp/src/mfa/policy_tests.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use harness::{TestDb, idp, run, text};
use idp::domain::user::NewUser;
use idp::storage::audit::AuditRepository;
use idp::storage::users::UserRepository;

struct World {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl World {
    fn new(db: TestDb) -> World {
        let w = World { db, dir: tempfile::tempdir().unwrap() };
        w.idp(&["org", "create", "--name", "Acme", "--slug", "acme"]);
        w.idp(&["project", "create", "--org", "acme", "--name", "Billing", "--slug", "billing"]);
        w.idp(&["project", "create", "--org", "acme", "--name", "Search", "--slug", "search"]);
        w
    }

    fn output(&self, args: &[&str]) -> std::process::Output {
        run(idp(self.dir.path()).args(args).env("IDP_DATABASE_URL", self.db.url()))
    }

    fn idp(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(out.status.success(), "idp {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its error line (`idp: ...`, or clap's `error: ...`).
    fn refused(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(!out.status.success(), "idp {args:?} should fail: {}", text(&out));
        assert!(out.stdout.is_empty(), "idp {args:?} printed a result: {}", text(&out));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("idp: ")).collect();
        let clap: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        match (ours.as_slice(), clap.as_slice()) {
            ([line], []) | ([], [line]) => (*line).to_owned(),
            _ => panic!("idp {args:?}: expected one error line, got {stderr}"),
        }
    }

    /// Everything a refused command might have changed: the policies as shown, and the audit.
    fn state(&self) -> (String, usize) {
        let shown = self.idp(&["org", "show-mfa", "--org", "acme"]);
        let events = self.db.open().read(|c| c.audit_events(Some("mfa.policy_set"), 1000)).unwrap();
        (shown, events.len())
    }
}

fn scenario(db: TestDb) {
    let w = World::new(db);
    let before = w.idp(&["org", "show-mfa", "--org", "acme"]);
    assert_eq!(
        before, "acme\toff\nacme/billing\town: off\teffective: off\nacme/search\town: off\teffective: off\n",
        "nothing is required by default"
    );

    let out = w.idp(&["org", "set-mfa", "--org", "acme", "--require", "--grace-days", "7"]);
    assert!(out.starts_with("two-factor policy of acme set: required, any method, enrolment grace until "), "{out}");
    // The project's own requirement has no grace, and the strictest wins.
    let out =
        w.idp(&["project", "set-mfa", "--org", "acme", "--project", "billing", "--require", "--methods", "webauthn"]);
    assert_eq!(
        out,
        "two-factor policy of acme/billing set; effective there now: required, methods webauthn, no enrolment grace\n"
    );
    let shown = w.idp(&["org", "show-mfa", "--org", "acme"]);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(lines[0].starts_with("acme\trequired, any method, enrolment grace until"), "{shown}");
    assert_eq!(
        lines[1],
        "acme/billing\town: required, methods webauthn, no enrolment grace\teffective: required, methods webauthn, no enrolment grace"
    );
    assert!(lines[2].starts_with("acme/search\town: off\teffective: required, any method, enrolment grace until"));

    // What a user without a factor meets.
    let user =
        w.db.open()
            .write(|c| {
                c.create_user(
                    &NewUser { email: Some("u@example.com".into()), email_verified: true, display_name: None },
                    chrono::Utc::now().naive_utc(),
                )
            })
            .unwrap()
            .id
            .to_string();
    let shown = w.idp(&["project", "show-mfa", "--org", "acme", "--project", "billing", "--user", &user]);
    assert!(shown.contains("effective\trequired, methods webauthn, no enrolment grace"), "{shown}");
    assert!(shown.contains(&format!("user {user}\tfactors: none\t")), "{shown}");
    assert!(shown.contains("must enrol a second factor (webauthn) first"), "{shown}");
    let shown = w.idp(&["project", "show-mfa", "--org", "acme", "--project", "search", "--user", &user]);
    assert!(shown.contains("gets in, and is asked to enrol (totp,webauthn) before"), "{shown}");

    let before = w.state();
    assert_eq!(before.1, 2, "one audit event per change");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["org", "set-mfa", "--org", "acme", "--require", "--off"], "cannot be used with"),
        (vec!["org", "set-mfa", "--org", "acme"], "required arguments were not provided"),
        (
            vec!["org", "set-mfa", "--org", "acme", "--require", "--methods", "sms"],
            "unknown second-factor method \"sms\"",
        ),
        (
            vec!["org", "set-mfa", "--org", "acme", "--require", "--methods", "totp,recovery_code"],
            "recovery codes are a fallback",
        ),
        (
            vec!["org", "set-mfa", "--org", "acme", "--off", "--methods", "totp"],
            "only apply when two-factor is required",
        ),
        (
            vec!["org", "set-mfa", "--org", "acme", "--off", "--grace-days", "3"],
            "only applies when two-factor is required",
        ),
        (
            vec!["org", "set-mfa", "--org", "acme", "--require", "--grace-days", "0"],
            "the grace period is 1 to 365 days",
        ),
        (vec!["org", "set-mfa", "--org", "acme", "--require", "--grace-days", "soon"], "invalid value 'soon'"),
        (vec!["org", "set-mfa", "--org", "nope", "--require"], "organisation not found"),
        (vec!["project", "set-mfa", "--org", "acme", "--project", "nope", "--require"], "project not found"),
        (vec!["project", "set-mfa", "--org", "acme", "--project", "billing"], "required arguments were not provided"),
        // billing allows only webauthn: an organisation allowing only totp would lock it.
        (vec!["org", "set-mfa", "--org", "acme", "--require", "--methods", "totp"], "no method in common"),
        (vec!["project", "show-mfa", "--org", "acme", "--project", "billing", "--user", "not-a-user"], "invalid value"),
    ];
    for (args, says) in cases {
        let line = w.refused(&args);
        assert!(line.contains(says), "idp {args:?}: {line}");
    }
    assert_eq!(w.state(), before, "a refused command wrote something");

    // Turning the project off leaves the organisation's requirement in force.
    let out = w.idp(&["project", "set-mfa", "--org", "acme", "--project", "billing", "--off"]);
    assert!(out.contains("effective there now: required, any method, enrolment grace until"), "{out}");
    let out = w.idp(&["org", "set-mfa", "--org", "acme", "--off"]);
    assert_eq!(out, "two-factor policy of acme set: off\n");
    assert_eq!(w.state().1, 4);
}

#[test]
fn policies_are_set_shown_and_refused_on_sqlite() {
    scenario(TestDb::sqlite());
}

#[test]
fn policies_are_set_shown_and_refused_on_postgres() {
    scenario(TestDb::postgres());
}
