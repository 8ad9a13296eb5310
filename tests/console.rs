//! The admin console. Headless Chromium (tests/peers/browser/console.mjs) walks a company
//! admin's onboarding on SQLite and PostgreSQL, screenshots kept in tests/artifacts/console-*/;
//! the SCIM token it generated must then work against /scim/v2. Negative, each its own test:
//! another organisation's admin gets 404, a form without the CSRF token changes nothing, a
//! member without the permission is refused, a session without a required second factor is
//! sent to step up or enrol before any page or change of an enforcing organisation or project.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use harness::peers::{Browser, Peer, UpstreamClient, oidc_upstream};
use harness::{Server, TestDb, free_port, idp, run, text};
use idp::storage::audit::AuditRepository;

const SECRET: &str = "broker-secret-0123456789abcdef";

struct World {
    dir: tempfile::TempDir,
    server: Server,
    upstream: Peer,
    db: TestDb,
    cfg: String,
}

fn world(db: TestDb) -> World {
    world_with_dns(db, 0)
}

/// With `dns_port`, idp's `dns_resolver` is 127.0.0.1 on that port (the walk starts dnsmasq
/// there once it knows the record to serve).
fn world_with_dns(db: TestDb, dns_port: u16) -> World {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let upstream = oidc_upstream(&[UpstreamClient {
        client_id: "idp-broker",
        client_secret: SECRET,
        redirect_uris: vec![format!("{base}/callback/up")],
    }]);
    let toml = format!(
        "signup = \"open\"\n{}\n[[connectors]]\nid = \"up\"\ntype = \"oidc\"\nname = \"Upstream\"\nissuer = \"{}\"\n\
         client_id = \"idp-broker\"\nclient_secret = \"{SECRET}\"\n",
        if dns_port == 0 { String::new() } else { format!("dns_resolver = \"127.0.0.1:{dns_port}\"\n") },
        upstream.base
    );
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    let cfg = config.display().to_string();
    let url = db.url();
    let server =
        Server::start_at(dir.path(), port, &[("IDP_CONFIG", cfg.as_str()), ("IDP_DATABASE_URL", url.as_str())]);
    World { dir, server, upstream, db, cfg }
}

impl World {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out =
            run(idp(self.dir.path()).args(args).env("IDP_CONFIG", &self.cfg).env("IDP_DATABASE_URL", self.db.url()));
        assert!(out.status.success(), "idp {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A browser signed in through the upstream as `user`.
    fn signed_in(&self, user: &str) -> Browser {
        let mut b = Browser::new();
        self.upstream.get(&format!("/__test/set-user?user={user}"));
        let page = b.open(&self.url("/login/up"));
        assert!(page.status == 200 && page.body.contains("Signed in"), "{} {}", page.url, page.body);
        b
    }

    fn csrf(&self, b: &mut Browser, path: &str) -> String {
        let page = b.open(&self.url(path));
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let marker = "name=\"csrf_token\" value=\"";
        let i = page.body.find(marker).unwrap() + marker.len();
        page.body[i..].split('"').next().unwrap().to_owned()
    }

    fn post(&self, b: &mut Browser, path: &str, body: &str) -> (u16, Option<String>) {
        b.post_form(&self.url(path), &self.server.base, body)
    }

    fn count(&self, action: &str) -> usize {
        self.db.open().read(|c| c.audit_events(Some(action), 1000)).unwrap().len()
    }

    /// Every audit event: a change that was refused leaves this as it was.
    fn total(&self) -> usize {
        self.db.open().read(|c| c.audit_events(None, 100_000)).unwrap().len()
    }

    /// Sets up TOTP on /account/mfa with a code from oathtool.
    fn set_up_totp(&self, b: &mut Browser) -> String {
        let csrf = self.csrf(b, "/account/mfa");
        let (status, page) = b.post_form_page(
            &self.url("/account/mfa/totp"),
            &self.server.base,
            &format!("csrf_token={csrf}&name=phone"),
        );
        assert_eq!(status, 200, "{page}");
        let between = |a: &str, b: &str| page.split(a).nth(1).unwrap().split(b).next().unwrap().to_owned();
        let secret = between("<code class=\"secret\">", "<");
        let id = between("name=\"credential_id\" value=\"", "\"");
        let out = std::process::Command::new("oathtool").args(["--totp", "-b", &secret]).output().unwrap();
        let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let (status, loc) =
            self.post(b, "/account/mfa/totp/confirm", &format!("csrf_token={csrf}&credential_id={id}&code={code}"));
        assert_eq!((status, loc.as_deref()), (303, Some("/account/mfa?done=confirmed")));
        secret
    }

    /// Signs out, then in again through the upstream with a TOTP code for the next step.
    fn sign_in_with_totp(&self, b: &mut Browser, user: &str, secret: &str) {
        let csrf = self.csrf(b, "/");
        assert_eq!(self.post(b, "/logout", &format!("csrf_token={csrf}")).0, 303);
        self.upstream.get(&format!("/__test/set-user?user={user}"));
        let page = b.open(&self.url("/login/up"));
        assert!(page.url.ends_with("/login/mfa"), "{}", page.url);
        let csrf = self.csrf(b, "/login/mfa");
        let out = std::process::Command::new("oathtool")
            .args(["--totp", "-b", "-N", "now +30 seconds", secret])
            .output()
            .unwrap();
        let code = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let (status, _) = self.post(b, "/login/mfa", &format!("csrf_token={csrf}&code={code}"));
        assert_eq!(status, 303);
    }

    /// alice creates organisation acme (with project billing) in the console.
    fn acme(&self) -> Browser {
        let mut alice = self.signed_in("alice");
        let csrf = self.csrf(&mut alice, "/admin");
        let (status, loc) =
            self.post(&mut alice, "/admin/organisations", &format!("csrf_token={csrf}&name=Acme&slug=acme"));
        assert_eq!((status, loc.as_deref()), (303, Some("/admin/o/acme?done=created")));
        let (status, _) =
            self.post(&mut alice, "/admin/o/acme/projects", &format!("csrf_token={csrf}&name=Billing&slug=billing"));
        assert_eq!(status, 303);
        alice
    }
}

fn walk(db: TestDb, name: &str) {
    let dns_port = harness::peers::free_dns_port();
    let w = world_with_dns(db, dns_port);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let driver = root.join("tests/peers/browser");
    assert!(
        driver.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "headless Chromium is not installed: run ./scripts/test (it installs chromium and tests/peers/browser)"
    );
    let out_dir = root.join("tests/artifacts").join(name);
    std::fs::create_dir_all(&out_dir).unwrap();
    w.upstream.get("/__test/set-user?user=alice");
    let cert = root.join("idp/src/upstream/saml/testdata/idp-cert.pem");
    let out = std::process::Command::new("node")
        .arg(driver.join("console.mjs"))
        .args(["--base", &w.server.base, "--connector", "up", "--dns-port", &dns_port.to_string()])
        .arg("--saml-cert")
        .arg(&cert)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
        panic!("no JSON from the driver: {stdout} {}\n{}", String::from_utf8_lossy(&out.stderr), w.server.stderr())
    });
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(out.status.success() && v["ok"] == true, "{v:#}\nserver: {}", w.server.stderr());
    assert_eq!(v["console_errors"].as_array().map(Vec::len), Some(0), "{v:#}");
    for shot in v["shots"].as_object().unwrap().values() {
        assert!(std::path::Path::new(shot.as_str().unwrap()).exists(), "{shot} kept");
    }
    assert!(v["shots"].as_object().unwrap().len() >= 8, "{v:#}");

    // What the pages did is what the API and the CLI see.
    let orgs = w.cli(&["org", "list"]);
    assert!(orgs.contains("acme"), "{orgs}");
    let policy = w.cli(&["project", "show-mfa", "--org", "acme", "--project", "billing"]);
    assert!(policy.contains("totp"), "{policy}");
    for action in ["organisation.created", "project.created", "connector.created", "token.created", "mfa.policy_set"] {
        assert!(w.count(action) >= 1, "{action} not audited");
    }
    assert!(v["invitation"].as_str().unwrap().starts_with(&w.url("/invitations/")), "{v:#}");
    assert!(v["discovery"].as_str().unwrap().starts_with("/login/acme-okta"), "{v:#}");
    for action in ["domain.verified", "invitation.created"] {
        assert!(w.count(action) == 1, "{action} not audited once");
    }
    let audit: Vec<&str> = v["audit_actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(audit.contains(&"connector.created") && audit.contains(&"mfa.policy_set"), "{audit:?}");

    // The SCIM token shown once works against /scim/v2, for this organisation.
    let token = v["scim_token"].as_str().unwrap();
    let r = reqwest::blocking::Client::new().get(w.url("/scim/v2/Users")).bearer_auth(token).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().unwrap();
    assert!(body["totalResults"].as_u64().is_some(), "{body}");
}

#[test]
fn a_company_admin_onboards_their_organisation_in_a_real_browser_on_sqlite() {
    walk(TestDb::sqlite(), "console-sqlite");
}

#[test]
fn a_company_admin_onboards_their_organisation_in_a_real_browser_on_postgresql() {
    walk(TestDb::postgres(), "console-postgresql");
}

#[test]
fn another_organisations_admin_gets_404_on_every_page_and_form() {
    let w = world(TestDb::sqlite());
    let _alice = w.acme();
    let mut mallory = w.signed_in("dave");
    let csrf = w.csrf(&mut mallory, "/admin");
    for path in ["/admin/o/acme", "/admin/o/acme/audit", "/admin/o/acme/p/billing"] {
        let page = mallory.open(&w.url(path));
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains("Billing"), "{path} leaks");
    }
    let before = w.total();
    for (path, body) in [
        ("/admin/o/acme/projects", "name=Evil&slug=evil".to_owned()),
        ("/admin/o/acme/mfa-policy", "requirement=off".to_owned()),
        ("/admin/o/acme/connectors", "kind=oidc&id=evil&name=Evil&issuer=http://x&client_id=x".to_owned()),
        ("/admin/o/acme/scim-token", "name=evil".to_owned()),
        ("/admin/o/acme/delete", "confirm=acme".to_owned()),
        ("/admin/o/acme/p/billing/mfa-policy", "requirement=off".to_owned()),
        ("/admin/o/acme/p/billing/delete", "confirm=billing".to_owned()),
        ("/admin/o/acme/p/billing/clients", "name=Evil&redirect_uris=https%3A%2F%2Fevil.example%2Fcb".to_owned()),
        ("/admin/o/acme/p/billing/tokens", "name=evil&scopes=audit_read".to_owned()),
        ("/admin/o/acme/domains", "domain=acme.test".to_owned()),
        ("/admin/o/acme/invitations", "email=evil%40example.test&role=owner".to_owned()),
        ("/admin/o/acme/token-policy", "max_lifetime_days=1".to_owned()),
        ("/admin/o/acme/roles", "name=evil&permissions=audit_read".to_owned()),
    ] {
        let (status, _) = w.post(&mut mallory, path, &format!("csrf_token={csrf}&{body}"));
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(w.total(), before, "nothing was audited, so nothing changed");
    assert!(w.cli(&["org", "list"]).contains("acme"));
}

#[test]
fn a_console_form_without_the_csrf_token_changes_nothing() {
    let w = world(TestDb::sqlite());
    let mut alice = w.acme();
    let before = w.total();
    for token in ["", "csrf_token=wrong&"] {
        let (status, _) = w.post(&mut alice, "/admin/o/acme/projects", &format!("{token}name=Other&slug=other"));
        assert!(status == 400 || status == 403, "{status}");
        let (status, _) = w.post(&mut alice, "/admin/o/acme/delete", &format!("{token}confirm=acme"));
        assert!(status == 400 || status == 403, "{status}");
    }
    assert_eq!(w.total(), before);
    let page = alice.open(&w.url("/admin/o/acme"));
    assert!(!page.body.contains("/admin/o/acme/p/other") && page.body.contains("/admin/o/acme/p/billing"));
}

#[test]
fn refusals_are_shown_on_the_page_and_change_nothing() {
    let w = world(TestDb::sqlite());
    let mut alice = w.acme();
    let csrf = w.csrf(&mut alice, "/admin/o/acme");
    let before = w.total();
    // A slug taken, a connection missing its IdP, an unknown role, a wrong confirmation.
    let cases = [
        ("/admin/o/acme/projects", "name=Billing&slug=billing", 409),
        ("/admin/o/acme/connectors", "kind=saml&id=half&name=Half&preset=okta", 400),
        ("/admin/o/acme/connectors", "kind=ldap&id=x&name=X", 400),
        (
            "/admin/o/acme/connectors",
            "kind=oidc&id=o1&name=O&issuer=http%3A%2F%2F127.0.0.1%3A1&client_id=x&role_mappings=no+equals+sign",
            400,
        ),
        ("/admin/o/acme/token-policy", "max_lifetime_days=forever", 400),
        ("/admin/o/acme/mfa-policy", "requirement=sometimes", 400),
        ("/admin/o/acme/mfa-policy", "requirement=required&grace_days=many", 400),
        ("/admin/o/acme/delete", "confirm=acme-typo", 400),
    ];
    for (path, body, want) in cases {
        let (status, page) = alice.post_form_page(&w.url(path), &w.server.base, &format!("csrf_token={csrf}&{body}"));
        assert_eq!(status, want, "{path} {body}: {page}");
        assert!(page.contains("class=\"problems\""), "{path}: no refusal shown");
    }
    assert_eq!(w.total(), before);
    // Oversized (over the 64 KiB default): refused before any handler. Small enough to be sent
    // whole before the server answers and closes.
    let huge = format!("csrf_token={csrf}&name={}", "x".repeat(128 * 1024));
    let (status, _) = w.post(&mut alice, "/admin/o/acme/projects", &huge);
    assert_eq!(status, 413);
}

#[test]
fn a_member_without_the_permission_is_refused() {
    let w = world(TestDb::sqlite());
    let mut alice = w.acme();
    let mut dave = w.signed_in("dave");
    let users = w.cli(&["user", "list"]);
    let dave_id = users.lines().find(|l| l.contains("dave@")).unwrap().split_whitespace().next().unwrap().to_owned();
    // alice makes dave a viewer through the members form.
    let csrf = w.csrf(&mut alice, "/admin/o/acme");
    let (status, _) =
        w.post(&mut alice, "/admin/o/acme/members", &format!("csrf_token={csrf}&user={dave_id}&role=viewer"));
    assert_eq!(status, 303);
    let page = dave.open(&w.url("/admin/o/acme"));
    assert_eq!(page.status, 200, "{}", page.body);
    // A viewer sees the organisation, but not the forms that change it.
    for form in ["Delete this organisation", "Create project", "Create role", "Generate SCIM token", "/members/remove"]
    {
        assert!(!page.body.contains(form), "a viewer is offered {form}");
    }
    assert!(page.body.contains("alice@example.test") && page.body.contains("/admin/o/acme/audit"));
    let csrf = w.csrf(&mut dave, "/admin/o/acme");
    let before = w.total();
    let (status, page) = dave.post_form_page(
        &w.url("/admin/o/acme/projects"),
        &w.server.base,
        &format!("csrf_token={csrf}&name=X&slug=x"),
    );
    assert_eq!(status, 403, "{page}");
    let (status, _) =
        dave.post_form_page(&w.url("/admin/o/acme/delete"), &w.server.base, &format!("csrf_token={csrf}&confirm=acme"));
    assert_eq!(status, 403);
    assert_eq!(w.total(), before);
}

#[test]
fn a_session_without_a_required_second_factor_must_enrol_or_step_up_first() {
    let w = world(TestDb::sqlite());
    let mut alice = w.acme();
    w.cli(&["project", "set-mfa", "--org", "acme", "--project", "billing", "--require"]);
    // The project's pages and forms: sent to enrol (alice has no factor), nothing changed.
    let (status, loc) = {
        let csrf = w.csrf(&mut alice, "/admin/o/acme");
        w.post(&mut alice, "/admin/o/acme/p/billing/mfa-policy", &format!("csrf_token={csrf}&requirement=off"))
    };
    assert_eq!(status, 303);
    assert!(loc.as_deref().unwrap().starts_with("/account/mfa?return_to=%2Fadmin%2Fo%2Facme%2Fp%2Fbilling"), "{loc:?}");
    let page = alice.open(&w.url("/admin/o/acme/p/billing"));
    assert!(page.url.contains("/account/mfa?return_to="), "{}", page.url);
    assert!(w.cli(&["project", "show-mfa", "--org", "acme", "--project", "billing"]).contains("required"));
    // With a factor set up but not used by this session: step up (sign in again).
    let _ = w.set_up_totp(&mut alice);
    let page = alice.open_until(&w.url("/admin/o/acme/p/billing"), "/login?");
    assert!(page.contains("return_to=%2Fadmin%2Fo%2Facme%2Fp%2Fbilling"), "{page}");
    // The organisation itself does not require one: its page still opens.
    assert_eq!(alice.open(&w.url("/admin/o/acme")).status, 200);
}

#[test]
fn resetting_a_members_second_factors_needs_a_session_that_used_one() {
    let w = world(TestDb::sqlite());
    let mut alice = w.acme();
    let mut dave = w.signed_in("dave");
    w.set_up_totp(&mut dave);
    let users = w.cli(&["user", "list"]);
    let dave_id = users.lines().find(|l| l.contains("dave@")).unwrap().split_whitespace().next().unwrap().to_owned();
    let csrf = w.csrf(&mut alice, "/admin/o/acme");
    assert_eq!(
        w.post(&mut alice, "/admin/o/acme/members", &format!("csrf_token={csrf}&user={dave_id}&role=member")).0,
        303
    );
    let dave_has_totp = || {
        let standing = w.cli(&["project", "show-mfa", "--org", "acme", "--project", "billing", "--user", &dave_id]);
        standing.contains("totp")
    };
    assert!(dave_has_totp());

    // alice's session signed in with the upstream only: refused, nothing removed.
    let (status, page) = alice.post_form_page(
        &w.url("/admin/o/acme/members/reset-mfa"),
        &w.server.base,
        &format!("csrf_token={csrf}&user={dave_id}"),
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("needs a session that used a second factor"), "{page}");
    assert!(dave_has_totp());
    assert_eq!(w.count("mfa.reset"), 0);

    // Signed in again with her own second factor: done, audited.
    let secret = w.set_up_totp(&mut alice);
    w.sign_in_with_totp(&mut alice, "alice", &secret);
    let csrf = w.csrf(&mut alice, "/admin/o/acme");
    let (status, loc) =
        w.post(&mut alice, "/admin/o/acme/members/reset-mfa", &format!("csrf_token={csrf}&user={dave_id}"));
    assert_eq!((status, loc.as_deref()), (303, Some("/admin/o/acme?done=mfa_reset")));
    assert!(!dave_has_totp());
    assert_eq!(w.count("mfa.reset"), 1);

    // Someone outside the organisation: 404 for alice, as for an id that does not exist.
    let (status, _) = w.post(
        &mut alice,
        "/admin/o/acme/members/reset-mfa",
        &format!("csrf_token={csrf}&user=00000000-0000-4000-8000-000000000000"),
    );
    assert_eq!(status, 404);
}

#[test]
fn deleting_a_project_needs_its_slug_typed_again() {
    let w = world(TestDb::sqlite());
    let mut alice = w.acme();
    let csrf = w.csrf(&mut alice, "/admin/o/acme/p/billing");
    let (status, page) = alice.post_form_page(
        &w.url("/admin/o/acme/p/billing/delete"),
        &w.server.base,
        &format!("csrf_token={csrf}&confirm=billing-typo"),
    );
    assert_eq!(status, 400, "{page}");
    assert_eq!(alice.open(&w.url("/admin/o/acme/p/billing")).status, 200);
    let (status, loc) =
        w.post(&mut alice, "/admin/o/acme/p/billing/delete", &format!("csrf_token={csrf}&confirm=billing"));
    assert_eq!((status, loc.as_deref()), (303, Some("/admin/o/acme?done=project_deleted")));
    assert_eq!(alice.open(&w.url("/admin/o/acme/p/billing")).status, 404);
    assert_eq!(w.count("project.deleted"), 1);
}

/// The secret shown once on a page.
fn shown_secret(page: &str) -> String {
    page.split("<code class=\"secret new-secret\">").nth(1).unwrap().split('<').next().unwrap().to_owned()
}

#[test]
fn applications_and_service_tokens_are_managed_from_the_project_page() {
    let w = world(TestDb::sqlite());
    let mut alice = w.acme();
    let csrf = w.csrf(&mut alice, "/admin/o/acme/p/billing");
    let post = |b: &mut Browser, path: &str, body: &str| {
        b.post_form_page(&w.url(path), &w.server.base, &format!("csrf_token={csrf}&{body}"))
    };
    // An application: its secret is shown once and authenticates it at the token endpoints.
    let (status, page) = post(
        &mut alice,
        "/admin/o/acme/p/billing/clients",
        "name=Billing+app&redirect_uris=https%3A%2F%2Fbilling.example%2Fcb&first_party=on",
    );
    assert_eq!(status, 200, "{page}");
    let client_id = page.split("<code class=\"client-id\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    let client_secret = shown_secret(&page);
    let http = reqwest::blocking::Client::new();
    let introspect = |token: &str, secret: &str| -> (u16, serde_json::Value) {
        let r = http
            .post(w.url("/introspect"))
            .basic_auth(&client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    };
    assert_eq!(introspect("idp_sat_nothing", &client_secret).0, 200);
    assert_eq!(introspect("idp_sat_nothing", "wrong").0, 401);

    // A service token, then its rotation with a grace period: old and new both validate.
    let (status, page) = post(&mut alice, "/admin/o/acme/p/billing/tokens", "name=ci&scopes=audit_read");
    assert_eq!(status, 200, "{page}");
    let old = shown_secret(&page);
    assert!(old.starts_with("idp_sat_"), "{old}");
    assert_eq!(introspect(&old, &client_secret).1["active"], true);
    let id = page
        .split("name=\"id\" value=\"")
        .filter_map(|s| s.split('"').next())
        .find(|i| i.len() == 36 && !i.contains(&client_id))
        .unwrap()
        .to_owned();
    let (status, page) =
        post(&mut alice, "/admin/o/acme/p/billing/tokens/change", &format!("id={id}&action=rotate&grace_hours=1"));
    assert_eq!(status, 200, "{page}");
    let new = shown_secret(&page);
    assert_ne!(new, old);
    assert_eq!(introspect(&old, &client_secret).1["active"], true);
    assert_eq!(introspect(&new, &client_secret).1["active"], true);
    // A bad grace period or action changes nothing.
    for body in [format!("id={id}&action=rotate&grace_hours=soon"), format!("id={id}&action=explode")] {
        let (status, _) = post(&mut alice, "/admin/o/acme/p/billing/tokens/change", &body);
        assert_eq!(status, 400, "{body}");
    }
    assert_eq!(introspect(&new, &client_secret).1["active"], true);

    // Deleting the application: its secret stops working.
    let (status, _) = post(&mut alice, "/admin/o/acme/p/billing/clients/delete", &format!("id={client_id}"));
    assert_eq!(status, 303);
    assert_eq!(introspect(&new, &client_secret).0, 401);
    assert_eq!(w.count("client.deleted"), 1);
}
