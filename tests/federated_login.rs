//! Federated login end to end: idp as the broker between a scripted browser and real upstreams
//! (oidc-provider as Google and as a generic issuer; the GitHub fake), on SQLite and PostgreSQL,
//! with every negative path asserting that no session and no user came of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use harness::peers::{Browser, Peer, UpstreamClient, dead_url, github_fake, oidc_upstream};
use harness::{Server, TestDb, free_port, idp, run, text};

const SECRET: &str = "broker-secret-0123456789abcdef";

/// A running idp with its upstream(s).
struct World {
    dir: tempfile::TempDir,
    server: Server,
    upstream: Peer,
    github: Option<Peer>,
    _db: Option<TestDb>,
    env: Vec<(String, String)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Options<'a> {
    backend: Backend,
    signup: &'a str,
    /// Extra TOML for the `up` connector (e.g. `hosted_domains`).
    up_extra: &'a str,
    up_type: &'a str,
    /// A second connector `b` at the same upstream with its own client.
    second_connector: bool,
    github: bool,
    up_issuer_override: Option<String>,
    password_login: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            signup: "open",
            up_extra: "",
            up_type: "oidc",
            second_connector: false,
            github: false,
            up_issuer_override: None,
            password_login: false,
        }
    }
}

fn world(o: Options<'_>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let upstream = oidc_upstream(&[
        UpstreamClient {
            client_id: "idp-broker",
            client_secret: SECRET,
            redirect_uris: vec![format!("{base}/callback/up")],
        },
        UpstreamClient {
            client_id: "idp-broker-b",
            client_secret: SECRET,
            redirect_uris: vec![format!("{base}/callback/b")],
        },
    ]);
    let issuer = o.up_issuer_override.clone().unwrap_or_else(|| upstream.base.clone());
    let mut toml = format!(
        "password_login = {}\nsignup = \"{}\"\n\n[[connectors]]\nid = \"up\"\ntype = \"{}\"\nname = \"Upstream\"\nissuer = \"{issuer}\"\nclient_id = \"idp-broker\"\nclient_secret_env = \"UP_SECRET\"\n{}\n",
        o.password_login, o.signup, o.up_type, o.up_extra
    );
    if o.second_connector {
        toml.push_str(&format!(
            "\n[[connectors]]\nid = \"b\"\ntype = \"oidc\"\nname = \"Second\"\nissuer = \"{}\"\nclient_id = \"idp-broker-b\"\nclient_secret = \"{SECRET}\"\n",
            upstream.base
        ));
    }
    let github = o.github.then(|| github_fake("gh-client", "gh-secret"));
    if let Some(gh) = &github {
        toml.push_str(&format!(
            "\n[[connectors]]\nid = \"gh\"\ntype = \"github\"\nname = \"GitHub\"\nbase_url = \"{}\"\nclient_id = \"gh-client\"\nclient_secret = \"gh-secret\"\norgs = [\"acme\"]\nrole_mappings = [{{ group = \"acme/admins\", organisation = \"acme-corp\", role = \"admin\" }}]\n",
            gh.base
        ));
    }
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    let db = (o.backend == Backend::Postgres).then(TestDb::postgres);
    let mut env =
        vec![("IDP_CONFIG".to_owned(), config.display().to_string()), ("UP_SECRET".to_owned(), SECRET.to_owned())];
    if let Some(db) = &db {
        env.push(("IDP_DATABASE_URL".to_owned(), db.url()));
    }
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_at(dir.path(), port, &env_refs);
    World { dir, server, upstream, github, _db: db, env }
}

impl World {
    fn users(&self) -> String {
        let mut cmd = idp(self.dir.path());
        cmd.args(["user", "list"]);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn user_count(&self) -> usize {
        self.users().lines().count()
    }

    fn login(&self, browser: &mut Browser, connector: &str) -> harness::peers::Page {
        browser.open(&self.server.url(&format!("/login/{connector}")))
    }

    fn set_user(&self, user: &str) {
        self.upstream.get(&format!("/__test/set-user?user={user}"));
    }

    fn tamper(&self, kind: &str) {
        self.upstream.get(&format!("/__test/tamper?kind={kind}"));
    }

    /// Whether this browser has a session at idp.
    fn signed_in(&self, browser: &mut Browser) -> bool {
        let page = browser.open(&self.server.url("/"));
        page.status == 200 && page.body.contains("Signed in")
    }
}

fn assert_refused(w: &World, browser: &mut Browser, page: &harness::peers::Page, status: u16, users_before: usize) {
    assert_eq!(page.status, status, "{}: {}", page.url, page.body);
    assert!(page.url.starts_with(&w.server.base), "ended at {}", page.url);
    assert!(
        !page.body.to_lowercase().contains("error:") && !page.body.contains("diesel"),
        "internal text leaked: {}",
        page.body
    );
    assert!(!w.signed_in(browser), "a session was created");
    assert_eq!(w.user_count(), users_before, "a user was created");
}

fn oidc_login_creates_the_user_and_a_session(backend: Backend) {
    let w = world(Options { backend, ..Default::default() });
    let mut b = Browser::new();
    let login = b.open(&w.server.url("/login"));
    assert!(login.body.contains("Continue with Upstream"));
    let page = w.login(&mut b, "up");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("alice@example.test"), "{}", page.body);
    assert!(b.visited_containing("/callback/up").unwrap().contains("iss="), "the upstream sends iss (RFC 9207)");
    assert!(w.users().contains("alice@example.test"));
    // A second login is the same user, with a new session.
    let mut b2 = Browser::new();
    assert_eq!(w.login(&mut b2, "up").status, 200);
    assert_eq!(w.user_count(), 1);
    let sessions = b.open(&w.server.url("/sessions")).body;
    assert_eq!(sessions.matches("/end\"").count(), 1, "the other browser's session is listed and can be ended");
    // Logging in again in the same browser replaces its session instead of adding one.
    assert_eq!(w.login(&mut b, "up").status, 200);
    let sessions = b.open(&w.server.url("/sessions")).body;
    assert_eq!(sessions.matches("this session").count(), 1);
    assert_eq!(sessions.matches("/end\"").count(), 1, "{sessions}");
    // Ending the other browser's session from this one.
    let i = sessions.find("/sessions/").unwrap();
    let end_path = sessions[i..].split('"').next().unwrap().to_owned();
    let csrf = field(&sessions, "name=\"csrf_token\" value=\"");
    assert_eq!(b.post_form(&w.server.url(&end_path), &w.server.base, &format!("csrf_token={csrf}")).0, 303);
    assert!(!w.signed_in(&mut b2), "the ended session no longer works");
    assert!(w.signed_in(&mut b));
}

#[test]
fn oidc_login_on_sqlite() {
    oidc_login_creates_the_user_and_a_session(Backend::Sqlite);
}

#[test]
fn oidc_login_on_postgresql() {
    oidc_login_creates_the_user_and_a_session(Backend::Postgres);
}

#[test]
fn google_connector_honours_hosted_domains() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let w = world(Options {
            backend,
            up_type: "google",
            up_extra: "hosted_domains = [\"example.test\"]",
            ..Default::default()
        });
        let mut b = Browser::new();
        assert_eq!(w.login(&mut b, "up").status, 200);
        w.set_user("carol");
        let mut b = Browser::new();
        let page = w.login(&mut b, "up");
        assert_refused(&w, &mut b, &page, 403, 1);
    }
}

fn github_login(backend: Backend) {
    let w = world(Options { backend, github: true, ..Default::default() });
    let gh = w.github.as_ref().unwrap();
    let mut b = Browser::new();
    let page = w.login(&mut b, "gh");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("octocat@github.test"), "{}", page.body);
    // Outside the allowed organisations.
    gh.get("/__test/set-user?user=outsider");
    let mut b = Browser::new();
    let page = w.login(&mut b, "gh");
    assert_refused(&w, &mut b, &page, 403, 1);
    // Without a verified primary e-mail.
    gh.get("/__test/set-user?user=unverified");
    let mut b = Browser::new();
    let page = w.login(&mut b, "gh");
    assert_refused(&w, &mut b, &page, 403, 1);
}

#[test]
fn github_login_on_sqlite() {
    github_login(Backend::Sqlite);
}

#[test]
fn github_login_on_postgresql() {
    github_login(Backend::Postgres);
}

#[test]
fn missing_state_is_refused() {
    let w = world(Options::default());
    let mut b = Browser::new();
    let page = b.open(&w.server.url("/callback/up?code=abc"));
    assert_refused(&w, &mut b, &page, 400, 0);
}

#[test]
fn mismatched_state_is_refused() {
    let w = world(Options::default());
    let mut b = Browser::new();
    let cb = b.open_until(&w.server.url("/login/up"), "/callback/up");
    let page = b.open(&with_param(&cb, "state", "forged-state"));
    assert_refused(&w, &mut b, &page, 400, 0);
    // The genuine callback still completes: the refusal was the state's doing.
    assert_eq!(b.open(&cb).status, 200);
}

/// `url` with one query parameter's value replaced.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key { value.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

#[test]
fn reused_state_is_refused() {
    let w = world(Options::default());
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "up").status, 200);
    let cb = b.visited_containing("/callback/up").unwrap();
    // The same browser replays the callback, then a fresh one does.
    let again = b.open(&cb);
    assert_eq!(again.status, 400);
    let mut fresh = Browser::new();
    let page = fresh.open(&cb);
    assert_refused(&w, &mut fresh, &page, 400, 1);
}

#[test]
fn a_callback_in_another_browser_is_refused() {
    let w = world(Options::default());
    // The attacker starts a login and hands the victim's browser the callback link.
    let mut attacker = Browser::new();
    let cb = attacker.open_until(&w.server.url("/login/up"), "/callback/up");
    let mut victim = Browser::new();
    let page = victim.open(&cb);
    assert_refused(&w, &mut victim, &page, 400, 0);
}

fn tampered(kind: &str) {
    let w = world(Options::default());
    w.tamper(kind);
    let mut b = Browser::new();
    let page = w.login(&mut b, "up");
    assert_refused(&w, &mut b, &page, 400, 0);
}

#[test]
fn nonce_mismatch_is_refused() {
    tampered("nonce");
}

#[test]
fn id_token_signed_by_another_key_is_refused() {
    tampered("other-key");
}

#[test]
fn id_token_with_unknown_kid_is_refused_after_one_refetch() {
    tampered("unknown-kid");
}

#[test]
fn wrong_audience_is_refused() {
    tampered("wrong-aud");
}

#[test]
fn expired_id_token_is_refused() {
    tampered("expired");
}

#[test]
fn alg_none_is_refused() {
    tampered("alg-none");
}

#[test]
fn wrong_issuer_in_id_token_is_refused() {
    tampered("wrong-iss");
}

#[test]
fn a_response_for_connector_a_delivered_to_b_is_refused() {
    let w = world(Options { second_connector: true, ..Default::default() });
    let mut b = Browser::new();
    let cb = b.open_until(&w.server.url("/login/up"), "/callback/up");
    let page = b.open(&cb.replace("/callback/up", "/callback/b"));
    assert_refused(&w, &mut b, &page, 400, 0);
    // The flow was consumed by the attempt: A's own callback no longer works either.
    let page = b.open(&cb);
    assert_refused(&w, &mut b, &page, 400, 0);
}

#[test]
fn an_authorization_response_from_another_issuer_is_refused() {
    let w = world(Options::default());
    let mut b = Browser::new();
    let cb = b.open_until(&w.server.url("/login/up"), "/callback/up");
    assert!(cb.contains("iss="), "the upstream sends iss (RFC 9207): {cb}");
    let page = b.open(&with_param(&cb, "iss", "http://evil.example"));
    assert_refused(&w, &mut b, &page, 400, 0);
    // Without iss from an issuer that announces it: also refused.
    let mut c = Browser::new();
    let cb = c.open_until(&w.server.url("/login/up"), "/callback/up");
    let stripped: String = {
        let mut u = url::Url::parse(&cb).unwrap();
        let pairs: Vec<(String, String)> =
            u.query_pairs().filter(|(k, _)| k != "iss").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        u.to_string()
    };
    let page = c.open(&stripped);
    assert_refused(&w, &mut c, &page, 400, 0);
}

#[test]
fn upstream_access_denied_gives_a_clear_page() {
    let w = world(Options::default());
    w.set_user("__deny__");
    let mut b = Browser::new();
    let page = w.login(&mut b, "up");
    assert_refused(&w, &mut b, &page, 403, 0);
    assert!(page.body.contains("cancelled or refused"), "{}", page.body);
}

#[test]
fn upstream_down_gives_a_clear_page() {
    let w = world(Options { up_issuer_override: Some(dead_url()), ..Default::default() });
    let mut b = Browser::new();
    let page = w.login(&mut b, "up");
    assert_refused(&w, &mut b, &page, 502, 0);
    assert!(page.body.contains("not answering"), "{}", page.body);
}

#[test]
fn return_to_off_site_is_ignored() {
    let w = world(Options::default());
    for target in ["https://evil.example/", "//evil.example/x", "/\\evil.example"] {
        let mut b = Browser::new();
        let page = b.open(&w.server.url(&format!("/login/up?return_to={}", urlencode(target))));
        assert_eq!(page.status, 200);
        assert!(page.url.starts_with(&w.server.base), "{target}: ended at {}", page.url);
        assert!(
            b.visited.iter().all(|u| !u.contains("evil.example") || !u.starts_with("https://evil")),
            "{:?}",
            b.visited
        );
    }
    let mut b = Browser::new();
    let page = b.open(&w.server.url("/login/up?return_to=/sessions"));
    assert!(page.url.ends_with("/sessions"), "{}", page.url);
}

/// Links a connector's account from the home page's form, following the flow to its end.
fn link(w: &World, b: &mut Browser, connector: &str) -> harness::peers::Page {
    let csrf = field(&b.open(&w.server.url("/")).body, "name=\"csrf_token\" value=\"");
    let (status, loc) =
        b.post_form(&w.server.url(&format!("/login/{connector}/link")), &w.server.base, &format!("csrf_token={csrf}"));
    assert_eq!(status, 303);
    b.open(url::Url::parse(&w.server.base).unwrap().join(&loc.unwrap()).unwrap().as_str())
}

fn field(html: &str, marker: &str) -> String {
    let start = html.find(marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn unverified_email_creates_no_account() {
    let w = world(Options::default());
    w.set_user("bob");
    let mut b = Browser::new();
    let page = w.login(&mut b, "up");
    assert_refused(&w, &mut b, &page, 403, 0);
    assert!(page.body.contains("not verified"), "{}", page.body);
}

#[test]
fn invite_only_signup_creates_no_account() {
    let w = world(Options { signup: "invite", ..Default::default() });
    let mut b = Browser::new();
    let page = w.login(&mut b, "up");
    assert_refused(&w, &mut b, &page, 403, 0);
}

#[test]
fn a_second_identity_is_linked_only_by_proving_both() {
    let w = world(Options { github: true, ..Default::default() });
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "up").status, 200);
    // Linking needs a session.
    let mut anon = Browser::new();
    let (status, loc) = anon.post_form(&w.server.url("/login/gh/link"), &w.server.base, "csrf_token=x");
    assert_eq!(status, 303);
    assert!(loc.unwrap().starts_with("/login?return_to="));
    // Linking with the form: a token from another session is refused.
    let mut e = Browser::new();
    assert_eq!(w.login(&mut e, "up").status, 200);
    let other_csrf = field(&e.open(&w.server.url("/")).body, "name=\"csrf_token\" value=\"");
    assert_eq!(
        b.post_form(&w.server.url("/login/gh/link"), &w.server.base, &format!("csrf_token={other_csrf}")).0,
        403
    );
    // Signed in as alice, complete GitHub: linked to alice, no new user.
    let page = link(&w, &mut b, "gh");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(w.user_count(), 1);
    assert!(page.body.contains("GitHub: linked"), "{}", page.body);
    assert_eq!(page.body.matches("/unlink").count(), 2, "each identity can be unlinked once there are two");
    // Logging in with GitHub alone is now alice.
    let mut c = Browser::new();
    let page = w.login(&mut c, "gh");
    assert!(page.body.contains("alice@example.test"), "{}", page.body);
    // Unlinking: a form token from another session is refused, an id that is not one of the
    // user's is not found, and the last identity stays.
    let b_page = b.open(&w.server.url("/"));
    let b_csrf = field(&b_page.body, "name=\"csrf_token\" value=\"");
    let ids: Vec<String> =
        b_page.body.match_indices("/identities/").map(|(i, _)| b_page.body[i + 12..i + 48].to_owned()).collect();
    assert_eq!(ids.len(), 2);
    let unlink = |browser: &mut Browser, id: &str, csrf: &str| {
        browser
            .post_form(
                &w.server.url(&format!("/identities/{id}/unlink")),
                &w.server.base,
                &format!("csrf_token={csrf}"),
            )
            .0
    };
    let c_csrf = field(&c.open(&w.server.url("/")).body, "name=\"csrf_token\" value=\"");
    assert_eq!(unlink(&mut c, &ids[0], &b_csrf), 403, "another session's CSRF token");
    assert_eq!(unlink(&mut c, &uuid::Uuid::new_v4().to_string(), &c_csrf), 404);
    assert_eq!(unlink(&mut c, &ids[0], &c_csrf), 303);
    assert_eq!(unlink(&mut c, &ids[1], &c_csrf), 403, "the last way to sign in stays");
    // Dave cannot take over the GitHub account linked to alice.
    w.set_user("dave");
    let mut d = Browser::new();
    assert_eq!(w.login(&mut d, "up").status, 200);
    let page = link(&w, &mut d, "gh");
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(w.user_count(), 2);
}

#[test]
fn home_realm_discovery_routes_an_email_domain_to_its_connector() {
    let w = world(Options { up_extra: "domains = [\"corp.test\"]", ..Default::default() });
    let mut b = Browser::new();
    let login = b.open(&w.server.url("/login"));
    assert!(login.body.contains("action=\"/login/discover\""), "the e-mail box is shown");
    // carol@corp.test goes to the upstream with her address as login_hint, and is signed in as carol.
    let page = b.open(&w.server.url("/login/discover?email=carol%40corp.test"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("carol@corp.test"), "{}", page.body);
    assert!(b.visited.iter().any(|u| u.contains("login_hint=carol%40corp.test")), "{:?}", b.visited);
    // A domain nobody routes comes back to the login page with a note.
    let mut c = Browser::new();
    let page = c.open(&w.server.url("/login/discover?email=x%40elsewhere.test"));
    assert!(page.url.contains("/login?unknown_domain=1") && page.body.contains("no single sign-on"), "{}", page.url);
    assert!(!w.signed_in(&mut c));
}

#[test]
fn an_operator_ends_all_sessions_of_a_user() {
    let w = world(Options::default());
    let (mut b1, mut b2) = (Browser::new(), Browser::new());
    assert_eq!(w.login(&mut b1, "up").status, 200);
    assert_eq!(w.login(&mut b2, "up").status, 200);
    let id = w.users().split('\t').next().unwrap().to_owned();
    let mut cmd = idp(w.dir.path());
    cmd.args(["user", "end-sessions", &id]);
    for (k, v) in &w.env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(out.status.success() && text(&out).contains("ended 2 sessions"), "{}", text(&out));
    assert!(!w.signed_in(&mut b1) && !w.signed_in(&mut b2));
    let mut cmd = idp(w.dir.path());
    cmd.args(["user", "end-sessions", &uuid::Uuid::new_v4().to_string()]);
    for (k, v) in &w.env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(!out.status.success() && text(&out).contains("no user"), "{}", text(&out));
}

#[test]
fn a_link_request_from_another_site_only_signs_in() {
    let w = world(Options { github: true, ..Default::default() });
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "up").status, 200);
    // A top-level GET another site can trigger: it must not attach GitHub to alice.
    let page = b.open(&w.server.url("/login/gh?link=1"));
    assert!(page.body.contains("octocat@github.test"), "{}", page.body);
    assert_eq!(w.user_count(), 2, "a separate account, not a link");
    let mut c = Browser::new();
    let page = w.login(&mut c, "up");
    assert!(page.body.contains("GitHub: <form") || !page.body.contains("GitHub: linked"), "{}", page.body);
}

/// Drives tests/peers/browser/login.mjs (headless Chromium); screenshots go to tests/artifacts/.
fn browser_run(args: &[&str], name: &str) -> serde_json::Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let driver = root.join("tests/peers/browser");
    assert!(
        driver.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "headless Chromium is not installed: run ./scripts/test (it installs chromium and tests/peers/browser)"
    );
    let out_dir = root.join("tests/artifacts").join(name);
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = std::process::Command::new("node")
        .arg(driver.join("login.mjs"))
        .args(args)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON from the driver: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(out.status.success() && v["ok"] == true, "{v:#}");
    v
}

#[test]
fn a_person_logs_in_and_signs_up_in_a_real_browser() {
    let w = world(Options { password_login: true, ..Default::default() });
    let v = browser_run(
        &["--base", &w.server.base, "--connector", "up", "--name", "Upstream", "--expect", "alice@example.test"],
        "federated-login",
    );
    assert!(std::path::Path::new(v["login"].as_str().unwrap()).exists(), "the login page screenshot is kept");
    assert_eq!(v["console_errors"].as_array().map(Vec::len), Some(0), "{v:#}");
    let v = browser_run(
        &[
            "--base",
            &w.server.base,
            "--signup",
            "--email",
            "frank@example.test",
            "--password",
            "granite lantern orbit pickle",
        ],
        "password-signup",
    );
    assert_eq!(v["strength_acceptable"], true, "{v:#}");
    assert!(w.users().contains("frank@example.test"));
}

#[test]
fn github_teams_map_to_organisation_roles() {
    use idp::storage::organisations::OrganisationRepository;
    let w = world(Options { github: true, ..Default::default() });
    let mut cmd = idp(w.dir.path());
    cmd.args(["org", "create", "--name", "Acme Corp"]);
    for (k, v) in &w.env {
        cmd.env(k, v);
    }
    assert!(run(&mut cmd).status.success());
    let mut b = Browser::new();
    assert_eq!(w.login(&mut b, "gh").status, 200);
    let db = idp::storage::Db::open(&idp::storage::DatabaseUrl::Sqlite(w.dir.path().join("idp-data/idp.sqlite")), 1)
        .unwrap();
    let org = db.read(|c| c.find_organisation_by_slug("acme-corp")).unwrap().unwrap();
    let members = db.read(|c| c.organisation_members(org.id)).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].role, idp::domain::role::RoleRef::Builtin(idp::domain::role::BuiltinRole::Admin));
    assert_eq!(members[0].source.as_deref(), Some("connector:gh"));
}

#[test]
fn an_organisation_adds_its_own_connector_with_its_secret_sealed() {
    let w = world(Options::default());
    let cli = |args: &[&str]| {
        let mut cmd = idp(w.dir.path());
        cmd.args(args);
        for (k, v) in &w.env {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    assert!(cli(&["org", "create", "--name", "Acme Corp"]).status.success());
    let file = w.dir.path().join("b.toml");
    std::fs::write(
        &file,
        format!(
            "id = \"b\"\ntype = \"oidc\"\nname = \"Acme SSO\"\nissuer = \"{}\"\nclient_id = \"idp-broker-b\"\nclient_secret_env = \"ACME_SECRET\"\ndomains = [\"acme.test\"]\n",
            w.upstream.base
        ),
    )
    .unwrap();
    let mut cmd = idp(w.dir.path());
    cmd.args(["connector", "create", "--org", "acme-corp", "--file"]).arg(&file);
    for (k, v) in &w.env {
        cmd.env(k, v);
    }
    // The upstream knows idp-broker-b with the shared test secret.
    cmd.env("ACME_SECRET", SECRET);
    let out = run(&mut cmd);
    assert!(out.status.success() && text(&out).contains("/callback/b"), "{}", text(&out));
    // An id the configuration file uses is refused.
    std::fs::write(
        &file,
        format!(
            "id = \"up\"\ntype = \"oidc\"\nname = \"X\"\nissuer = \"{}\"\nclient_id = \"x\"\nclient_secret = \"s\"\n",
            w.upstream.base
        ),
    )
    .unwrap();
    let out = cli(&["connector", "create", "--org", "acme-corp", "--file", &file.display().to_string()]);
    assert!(!out.status.success() && text(&out).contains("configuration file"), "{}", text(&out));
    // The running server picks the new connector up without a restart.
    let mut b = Browser::new();
    assert!(b.open(&w.server.url("/login")).body.contains("Continue with Acme SSO"));
    let page = w.login(&mut b, "b");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("alice@example.test"));
    let raw = std::fs::read(w.dir.path().join("idp-data/idp.sqlite")).unwrap();
    let wal = std::fs::read(w.dir.path().join("idp-data/idp.sqlite-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(
            !bytes.windows(SECRET.len()).any(|x| x == SECRET.as_bytes()),
            "the client secret is in the database in plaintext"
        );
    }
    assert!(text(&cli(&["connector", "list"])).contains("b\toidc\tAcme SSO"));
    assert!(cli(&["connector", "delete", "b"]).status.success());
    assert!(!text(&cli(&["connector", "list"])).contains("Acme SSO"));
}
