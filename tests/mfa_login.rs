//! The second step of a login, end to end: a scripted browser logs in through oidc-provider
//! (the upstream), sets up TOTP on `/account/mfa` with codes from `oathtool` (never from idp's
//! own code), and signs in again with a code or a recovery code; every refusal its own test,
//! each asserting that no session came of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use harness::peers::{Browser, Page, Peer, UpstreamClient, oidc_upstream};
use harness::{Server, TestDb, free_port, idp, run, text};

const SECRET: &str = "broker-secret-0123456789abcdef";

struct World {
    _dir: tempfile::TempDir,
    server: Server,
    upstream: Peer,
    db: TestDb,
}

fn world(db: TestDb, connector_extra: &str) -> World {
    world_with(db, "", connector_extra)
}

fn world_with(db: TestDb, top: &str, connector_extra: &str) -> World {
    world_at(db, free_port(), top, connector_extra, |_| {})
}

/// idp on `port`; `setup` runs `idp` commands against its database before it starts.
fn world_at(db: TestDb, port: u16, top: &str, connector_extra: &str, setup: impl FnOnce(&dyn Fn(&[&str]))) -> World {
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let upstream = oidc_upstream(&[UpstreamClient {
        client_id: "idp-broker",
        client_secret: SECRET,
        redirect_uris: vec![format!("{base}/callback/up")],
    }]);
    let toml = format!(
        "signup = \"open\"\n{top}\n\n[[connectors]]\nid = \"up\"\ntype = \"oidc\"\nname = \"Upstream\"\nissuer = \"{}\"\nclient_id = \"idp-broker\"\nclient_secret = \"{SECRET}\"\n{connector_extra}\n",
        upstream.base
    );
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    let cfg = config.display().to_string();
    let url = db.url();
    setup(&|args: &[&str]| {
        let out = run(idp(dir.path()).args(args).env("IDP_CONFIG", &cfg).env("IDP_DATABASE_URL", &url));
        assert!(out.status.success(), "idp {args:?}: {}", text(&out));
    });
    let server =
        Server::start_at(dir.path(), port, &[("IDP_CONFIG", cfg.as_str()), ("IDP_DATABASE_URL", url.as_str())]);
    World { _dir: dir, server, upstream, db }
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let i = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[i..].split('"').next().unwrap().to_owned()
}

fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A TOTP code from oathtool, for the step `offset` seconds from now.
fn oathtool(secret: &str, offset: i64) -> String {
    let out = std::process::Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("now {offset:+} seconds"), secret])
        .output()
        .expect("oathtool must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl World {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn login(&self, b: &mut Browser, user: &str) -> Page {
        self.upstream.get(&format!("/__test/set-user?user={user}"));
        b.open(&self.url("/login/up"))
    }

    fn signed_in(&self, b: &mut Browser) -> bool {
        let page = b.open(&self.url("/"));
        page.status == 200 && page.body.contains("Signed in")
    }

    /// The `amr` of the browser's session, as the account page shows it.
    fn amr(&self, b: &mut Browser) -> Vec<String> {
        let page = b.open(&self.url("/account/mfa"));
        assert_eq!(page.status, 200, "{}", page.body);
        let i = page.body.find("class=\"amr\">").unwrap() + "class=\"amr\">".len();
        page.body[i..].split('<').next().unwrap().split_whitespace().map(str::to_owned).collect()
    }

    fn post(&self, b: &mut Browser, path: &str, body: &str) -> (u16, String) {
        b.post_form_page(&self.url(path), &self.server.base, body)
    }

    /// Sets up TOTP on the account page of a signed-in browser; returns the base32 key.
    fn enrol(&self, b: &mut Browser) -> String {
        let page = b.open(&self.url("/account/mfa"));
        let csrf = field(&page.body, "csrf_token");
        let (status, body) = self.post(b, "/account/mfa/totp", &format!("csrf_token={csrf}&name=Phone"));
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("src=\"data:image/svg+xml;base64,"), "a QR code image: {body}");
        let i = body.find("class=\"secret\">").unwrap() + "class=\"secret\">".len();
        let secret = body[i..].split('<').next().unwrap().to_owned();
        assert_eq!(secret.len(), 32, "{secret}");
        let id = field(&body, "credential_id");
        let (status, _) = self.post(
            b,
            "/account/mfa/totp/confirm",
            &format!("csrf_token={csrf}&credential_id={id}&code={}", oathtool(&secret, 0)),
        );
        assert_eq!(status, 303, "a good code activates the authenticator");
        assert!(b.open(&self.url("/account/mfa")).body.contains("Set up: <strong>Phone</strong>"));
        secret
    }

    fn logout(&self, b: &mut Browser) {
        let csrf = field(&b.open(&self.url("/")).body, "csrf_token");
        let (status, _) = b.post_form(&self.url("/logout"), &self.server.base, &format!("csrf_token={csrf}"));
        assert_eq!(status, 303);
        assert!(!self.signed_in(b));
    }

    /// Logs in through the upstream up to the code page; returns its form token.
    fn first_factor(&self, b: &mut Browser, user: &str) -> String {
        let page = self.login(b, user);
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.url.ends_with("/login/mfa"), "asked for a code: {}", page.url);
        assert!(page.body.contains("authenticator app"), "{}", page.body);
        assert!(!self.signed_in(b), "no session before the second factor");
        // The redirect to `/` for the check above does not touch the pending login.
        field(&b.open(&self.url("/login/mfa")).body, "csrf_token")
    }

    fn submit_code(&self, b: &mut Browser, csrf: &str, code: &str) -> (u16, String) {
        self.post(b, "/login/mfa", &format!("csrf_token={csrf}&code={}", enc(code)))
    }

    /// A user with TOTP set up, signed out, in a fresh world. Returns the key; the code of the
    /// current step is spent (the confirmation used it).
    fn enrolled(&self, b: &mut Browser, user: &str) -> String {
        assert_eq!(self.login(b, user).status, 200);
        assert!(self.signed_in(b));
        let secret = self.enrol(b);
        self.logout(b);
        secret
    }

    /// `(action, outcome, details)` of every audit event whose action starts with `prefix`.
    fn audit(&self, prefix: &str) -> Vec<(String, String, String)> {
        use diesel::sql_types::{Nullable, Text};
        use diesel::{Connection, QueryableByName, RunQueryDsl};
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Text)]
            action: String,
            #[diesel(sql_type = Text)]
            outcome: String,
            #[diesel(sql_type = Nullable<Text>)]
            details: Option<String>,
        }
        let q = format!(
            "SELECT action, outcome, details FROM audit_events WHERE action LIKE '{prefix}%' ORDER BY occurred_at, id"
        );
        let rows: Vec<Row> = match &self.db {
            TestDb::Sqlite { path, .. } => {
                let mut c = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
                diesel::sql_query(q).load(&mut c).unwrap()
            }
            TestDb::Postgres { url, .. } => {
                let mut c = diesel::PgConnection::establish(url).unwrap();
                diesel::sql_query(q).load(&mut c).unwrap()
            }
        };
        rows.into_iter().map(|r| (r.action, r.outcome, r.details.unwrap_or_default())).collect()
    }

    fn sql(&self, statement: &str) {
        use diesel::{Connection, RunQueryDsl};
        match &self.db {
            TestDb::Sqlite { path, .. } => {
                let mut c = diesel::SqliteConnection::establish(&path.display().to_string()).unwrap();
                diesel::sql_query(statement).execute(&mut c).unwrap();
            }
            TestDb::Postgres { url, .. } => {
                let mut c = diesel::PgConnection::establish(url).unwrap();
                diesel::sql_query(statement).execute(&mut c).unwrap();
            }
        }
    }
}

fn totp_login(db: TestDb) {
    let w = world(db, "");
    let mut b = Browser::new();
    let secret = w.enrolled(&mut b, "alice");
    let csrf = w.first_factor(&mut b, "alice");
    // The next step's code: the current one was spent on the confirmation.
    let (status, body) = w.submit_code(&mut b, &csrf, &oathtool(&secret, 30));
    assert_eq!(status, 303, "{body}");
    assert!(w.signed_in(&mut b));
    let amr = w.amr(&mut b);
    for m in ["fed", "otp", "mfa"] {
        assert!(amr.iter().any(|a| a == m), "{m} in {amr:?}");
    }
    // The pending login is gone with its use: the code page no longer answers.
    assert_eq!(b.open(&w.url("/login/mfa")).status, 400);
}

#[test]
fn totp_login_on_sqlite() {
    totp_login(TestDb::sqlite());
}

#[test]
fn totp_login_on_postgresql() {
    totp_login(TestDb::postgres());
}

#[test]
fn a_wrong_code_gives_no_session() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    let secret = w.enrolled(&mut b, "alice");
    let csrf = w.first_factor(&mut b, "alice");
    // A real code, but for ten minutes ago: outside the window.
    let (status, body) = w.submit_code(&mut b, &csrf, &oathtool(&secret, -600));
    assert_eq!(status, 401);
    assert!(body.contains("That code is not valid"), "{body}");
    assert!(!w.signed_in(&mut b));
    // The pending login survives a wrong code: the right one still works.
    let (status, _) = w.submit_code(&mut b, &csrf, &oathtool(&secret, 30));
    assert_eq!(status, 303);
    assert!(w.signed_in(&mut b));
}

#[test]
fn a_malformed_code_gives_no_session() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    w.enrolled(&mut b, "alice");
    let csrf = w.first_factor(&mut b, "alice");
    let (status, body) = w.submit_code(&mut b, &csrf, "12ab56");
    assert_eq!(status, 401);
    assert!(body.contains("six digits"), "{body}");
    assert!(!w.signed_in(&mut b));
}

#[test]
fn a_replayed_code_is_refused() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    let secret = w.enrolled(&mut b, "alice");
    let code = oathtool(&secret, 30);
    let csrf = w.first_factor(&mut b, "alice");
    assert_eq!(w.submit_code(&mut b, &csrf, &code).0, 303);
    w.logout(&mut b);
    let csrf = w.first_factor(&mut b, "alice");
    let (status, body) = w.submit_code(&mut b, &csrf, &code);
    assert_eq!(status, 401, "{body}");
    assert!(!w.signed_in(&mut b));
    // The code the confirmation used is refused too.
    let (status, _) = w.submit_code(&mut b, &csrf, &oathtool(&secret, 0));
    assert_eq!(status, 401);
    assert!(!w.signed_in(&mut b));
}

#[test]
fn too_many_wrong_codes_are_rate_limited() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    let secret = w.enrolled(&mut b, "alice");
    let csrf = w.first_factor(&mut b, "alice");
    let mut limited = false;
    for _ in 0..30 {
        let (status, _) = w.submit_code(&mut b, &csrf, &oathtool(&secret, -600));
        if status == 429 {
            limited = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(limited, "wrong codes are counted per account");
    // Even the right code is refused while limited.
    assert_eq!(w.submit_code(&mut b, &csrf, &oathtool(&secret, 30)).0, 429);
    assert!(!w.signed_in(&mut b));
}

fn recovery_codes(w: &World, b: &mut Browser) -> Vec<String> {
    let csrf = field(&b.open(&w.url("/account/mfa")).body, "csrf_token");
    let (status, body) = w.post(b, "/account/mfa/recovery", &format!("csrf_token={csrf}"));
    assert_eq!(status, 200, "{body}");
    let codes: Vec<String> =
        body.split("<li><code>").skip(1).map(|s| s.split('<').next().unwrap().to_owned()).collect();
    assert_eq!(codes.len(), 10, "{body}");
    codes
}

fn recovery_code_login(db: TestDb) {
    let w = world(db, "");
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "alice").status, 200);
    w.enrol(&mut b);
    let codes = recovery_codes(&w, &mut b);
    assert!(b.open(&w.url("/account/mfa")).body.contains("10 of 10 recovery codes left"));
    w.logout(&mut b);

    let csrf = w.first_factor(&mut b, "alice");
    let (status, body) = w.post(&mut b, "/login/mfa", &format!("csrf_token={csrf}&recovery_code={}", codes[3]));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("One of your recovery codes was used; 9 left."), "{body}");
    assert!(w.signed_in(&mut b));
    assert!(w.amr(&mut b).iter().any(|a| a == "mfa"));
    w.logout(&mut b);

    // The same code a second time: refused.
    let csrf = w.first_factor(&mut b, "alice");
    let (status, body) = w.post(&mut b, "/login/mfa", &format!("csrf_token={csrf}&recovery_code={}", codes[3]));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("recovery code is not valid"), "{body}");
    assert!(!w.signed_in(&mut b));
}

#[test]
fn a_recovery_code_works_once_on_sqlite() {
    recovery_code_login(TestDb::sqlite());
}

#[test]
fn a_recovery_code_works_once_on_postgresql() {
    recovery_code_login(TestDb::postgres());
}

#[test]
fn a_new_set_of_recovery_codes_voids_the_old_one() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "alice").status, 200);
    w.enrol(&mut b);
    let old = recovery_codes(&w, &mut b);
    let new = recovery_codes(&w, &mut b);
    assert!(old.iter().all(|c| !new.contains(c)));
    w.logout(&mut b);
    let csrf = w.first_factor(&mut b, "alice");
    let (status, _) = w.post(&mut b, "/login/mfa", &format!("csrf_token={csrf}&recovery_code={}", old[0]));
    assert_eq!(status, 401);
    assert!(!w.signed_in(&mut b));
}

#[test]
fn a_pending_login_from_another_browser_is_refused() {
    let w = world(TestDb::sqlite(), "");
    let mut victim = Browser::new();
    let secret = w.enrolled(&mut victim, "alice");
    let csrf = w.first_factor(&mut victim, "alice");
    // Another browser with no pending login of its own, given the first one's form token.
    let mut other = Browser::new();
    let (status, body) = w.submit_code(&mut other, &csrf, &oathtool(&secret, 30));
    assert_eq!(status, 400, "{body}");
    assert!(!w.signed_in(&mut other));
    // Another browser with a pending login of its own: the first browser's form token is not
    // good with its cookie.
    let csrf_other = w.first_factor(&mut other, "alice");
    assert_ne!(csrf, csrf_other);
    let (status, _) = w.submit_code(&mut other, &csrf, &oathtool(&secret, 30));
    assert_eq!(status, 403);
    assert!(!w.signed_in(&mut other));
    assert!(!w.signed_in(&mut victim));
}

#[test]
fn an_expired_pending_login_is_refused() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    let secret = w.enrolled(&mut b, "alice");
    let csrf = w.first_factor(&mut b, "alice");
    // Five minutes and a second later, without waiting for them.
    w.sql("UPDATE pending_mfa_logins SET expires_at = created_at");
    let (status, body) = w.submit_code(&mut b, &csrf, &oathtool(&secret, 30));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Please sign in again"), "{body}");
    assert!(!w.signed_in(&mut b));
    assert_eq!(b.open(&w.url("/login/mfa")).status, 400);
}

#[test]
fn the_code_page_without_a_pending_login_is_a_clear_error() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    let page = b.open(&w.url("/login/mfa"));
    assert_eq!(page.status, 400);
    assert!(page.body.contains("no sign-in waiting for a code"), "{}", page.body);
    let (status, _) = w.submit_code(&mut b, "x", "123456");
    assert_eq!(status, 400);
    assert!(!w.signed_in(&mut b));
}

#[test]
fn a_user_without_totp_is_not_asked() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    let page = w.login(&mut b, "alice");
    assert!(page.body.contains("Signed in"), "{}", page.body);
    assert_eq!(w.amr(&mut b), vec!["fed".to_owned()]);
}

#[test]
fn a_trusted_upstream_that_asserted_mfa_skips_the_step() {
    let w = world(TestDb::sqlite(), "trust_upstream_mfa = true");
    let mut b = Browser::new();
    // carol's upstream login reports amr ["pwd", "mfa"].
    w.enrolled(&mut b, "carol");
    let page = w.login(&mut b, "carol");
    assert!(page.body.contains("Signed in"), "not asked for a code: {} {}", page.url, page.body);
    let amr = w.amr(&mut b);
    assert!(amr.iter().any(|a| a == "mfa"), "{amr:?}");
    assert!(!amr.iter().any(|a| a == "otp"), "{amr:?}");
    // alice's upstream did not assert mfa: she is asked.
    let mut a = Browser::new();
    w.enrolled(&mut a, "alice");
    w.first_factor(&mut a, "alice");
}

#[test]
fn an_untrusted_upstream_that_asserted_mfa_still_asks() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    w.enrolled(&mut b, "carol");
    w.first_factor(&mut b, "carol");
}

#[test]
fn removing_totp_needs_a_current_code() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "alice").status, 200);
    let secret = w.enrol(&mut b);
    let page = b.open(&w.url("/account/mfa"));
    let (csrf, id) = (field(&page.body, "csrf_token"), field(&page.body, "credential_id"));
    let (status, _) =
        w.post(&mut b, "/account/mfa/totp/remove", &format!("csrf_token={csrf}&credential_id={id}&code=000000"));
    assert_eq!(status, 400);
    assert!(b.open(&w.url("/account/mfa")).body.contains("Set up: <strong>Phone</strong>"));
    let (status, _) = w.post(
        &mut b,
        "/account/mfa/totp/remove",
        &format!("csrf_token={csrf}&credential_id={id}&code={}", oathtool(&secret, 30)),
    );
    assert_eq!(status, 303);
    w.logout(&mut b);
    // No second factor any more: signed in straight away.
    assert!(w.login(&mut b, "alice").body.contains("Signed in"));
}

#[test]
fn account_forms_need_the_csrf_token() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "alice").status, 200);
    for path in ["/account/mfa/totp", "/account/mfa/recovery"] {
        let (status, _) = w.post(&mut b, path, "csrf_token=forged");
        assert_eq!(status, 403, "{path}");
    }
    assert!(b.open(&w.url("/account/mfa")).body.contains("No authenticator app is set up"));
}

#[test]
fn a_wrong_confirmation_code_does_not_activate_totp() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "alice").status, 200);
    let csrf = field(&b.open(&w.url("/account/mfa")).body, "csrf_token");
    let (_, body) = w.post(&mut b, "/account/mfa/totp", &format!("csrf_token={csrf}"));
    let id = field(&body, "credential_id");
    let (status, body) =
        w.post(&mut b, "/account/mfa/totp/confirm", &format!("csrf_token={csrf}&credential_id={id}&code=000000"));
    assert_eq!(status, 400, "{body}");
    w.logout(&mut b);
    assert!(w.login(&mut b, "alice").body.contains("Signed in"), "not asked: nothing was activated");
}

#[test]
fn a_password_login_asks_for_the_code_too() {
    let w = world_with(TestDb::sqlite(), "password_login = true", "");
    let mut b = Browser::new();
    let pw = "gravel orbit lantern quietly";
    let csrf = field(&b.open(&w.url("/signup")).body, "csrf_token");
    let (status, _) =
        w.post(&mut b, "/signup", &format!("email=erin%40example.test&password={}&csrf_token={csrf}", enc(pw)));
    assert_eq!(status, 303);
    assert!(w.signed_in(&mut b));
    let secret = w.enrol(&mut b);
    w.logout(&mut b);
    let csrf = field(&b.open(&w.url("/login")).body, "csrf_token");
    let (status, loc) = b.post_form(
        &w.url("/login/password"),
        &w.server.base,
        &format!("email=erin%40example.test&password={}&csrf_token={csrf}&return_to=%2Fsessions", enc(pw)),
    );
    assert_eq!((status, loc.as_deref()), (303, Some("/login/mfa")));
    assert!(!w.signed_in(&mut b), "no session after the password alone");
    let csrf = field(&b.open(&w.url("/login/mfa")).body, "csrf_token");
    let (status, body) = w.submit_code(&mut b, &csrf, &oathtool(&secret, 30));
    assert_eq!(status, 303, "{body}");
    assert!(w.signed_in(&mut b));
    assert_eq!(w.amr(&mut b), vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()]);
}

#[test]
fn the_login_step_is_audited() {
    let w = world(TestDb::sqlite(), "");
    let mut b = Browser::new();
    let secret = w.enrolled(&mut b, "alice");
    let csrf = w.first_factor(&mut b, "alice");
    assert_eq!(w.submit_code(&mut b, &csrf, &oathtool(&secret, -600)).0, 401);
    assert_eq!(w.submit_code(&mut b, &csrf, &oathtool(&secret, 30)).0, 303);
    let failed = w.audit("login.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].1, "failure");
    assert!(failed[0].2.contains("totp") && failed[0].2.contains("wrong code"), "{failed:?}");
    let ok: Vec<_> = w.audit("login.succeeded").into_iter().filter(|e| e.2.contains("second_factor")).collect();
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert!(ok[0].2.contains("totp"), "{ok:?}");
    assert_eq!(w.audit("mfa.totp_confirmed").len(), 1);
}

/// Runs tests/peers/browser/login.mjs with `args` and returns its JSON verdict, screenshots in
/// tests/artifacts/`name`/.
fn browser(w: &World, name: &str, args: &[&str]) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let driver = root.join("tests/peers/browser");
    assert!(
        driver.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "headless Chromium is not installed: run ./scripts/test (it installs chromium and tests/peers/browser)"
    );
    let out_dir = root.join("tests/artifacts").join(name);
    std::fs::create_dir_all(&out_dir).unwrap();
    w.upstream.get("/__test/set-user?user=alice");
    let out = std::process::Command::new("node")
        .arg(driver.join("login.mjs"))
        .args(["--base", &w.server.base, "--connector", "up", "--expect", "alice@example.test", "--mfa"])
        .args(args)
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
    let amr: Vec<&str> = v["amr"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(amr, ["fed", "otp", "mfa"], "{v:#}");
    for shot in ["enrol", "code_page", "signed_in"] {
        assert!(std::path::Path::new(v[shot].as_str().unwrap()).exists(), "{shot} screenshot kept");
    }
    v
}

/// Headless Chromium (tests/peers/browser/login.mjs --mfa) through the whole TOTP story, under
/// idp's real CSP, the user setting TOTP up by choice.
#[test]
fn a_person_sets_up_totp_and_signs_in_with_it_in_a_real_browser() {
    let w = world(TestDb::sqlite(), "");
    browser(&w, "mfa-login", &[]);
}

const APP_REDIRECT: &str = "/healthz";

/// The same, forced: an application whose project requires TOTP sends the first login to
/// enrolment; after signing out, the second login answers with the second step and ends at the
/// application with a code.
fn forced_totp_in_a_real_browser(db: TestDb, name: &str) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}{APP_REDIRECT}");
    let client = format!(
        "[[clients]]\nclient_id = \"app\"\nclient_secret = \"app-secret-0123456789abcdef0123456789abcdef\"\n\
         redirect_uris = [\"{redirect}\"]\nproject = \"acme/billing\"\n"
    );
    let w = world_at(db, port, &client, "", |cli| {
        cli(&["org", "create", "--name", "Acme", "--slug", "acme"]);
        cli(&["project", "create", "--org", "acme", "--name", "Billing", "--slug", "billing"]);
        cli(&["project", "set-mfa", "--org", "acme", "--project", "billing", "--require", "--methods", "totp"]);
    });
    let authorize = format!(
        "/authorize?response_type=code&client_id=app&redirect_uri={}&scope=openid%20email&state=s1\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        enc(&redirect)
    );
    let v = browser(&w, name, &["--authorize", &authorize]);
    let code = v["code_redirect"].as_str().unwrap();
    assert!(code.starts_with(&format!("{redirect}?code=")) && code.contains("state=s1"), "{code}");
    assert_eq!(w.audit("mfa.totp_confirmed").len(), 1);
    let logins = w.audit("login.succeeded");
    assert!(logins.iter().any(|(_, _, d)| d.contains("totp")), "{logins:?}");
}

#[test]
fn a_project_that_requires_totp_makes_the_user_enrol_in_a_real_browser_on_sqlite() {
    forced_totp_in_a_real_browser(TestDb::sqlite(), "mfa-forced-sqlite");
}

#[test]
fn a_project_that_requires_totp_makes_the_user_enrol_in_a_real_browser_on_postgresql() {
    forced_totp_in_a_real_browser(TestDb::postgres(), "mfa-forced-postgresql");
}
