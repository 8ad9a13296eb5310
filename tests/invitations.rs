//! Invitations through the binary: an administrator invites an e-mail address with a role, the
//! person signed in with that verified address accepts at the URL and becomes a member; and
//! every refusal (signed out, wrong or unverified e-mail, revoked, expired, used, unknown, bad
//! input, another organisation) changes nothing. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::path::Path;

use harness::{Server, TestDb, client, idp, run, text};
use reqwest::Method;
use serde_json::{Value, json};

const ALL: &str = "organisation_read,organisation_manage,organisation_delete,members_read,members_manage,roles_manage,\
                   projects_read,projects_manage,connectors_manage,clients_manage,tokens_manage,policy_manage,audit_read,\
                   scim_provision";

struct World {
    db: TestDb,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    server: Server,
    acme: String,
}

fn cli(dir: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let out = run(idp(dir).args(args).envs(env.iter().map(|(k, v)| (k, v))));
    assert!(out.status.success(), "idp {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn world(db: TestDb) -> World {
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [("IDP_DATABASE_URL", db.url()), ("IDP_TOKENS_CACHE_TTL", "0s".into())]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    cli(dir.path(), &env, &["org", "create", "--name", "Acme", "--slug", "acme"]);
    cli(dir.path(), &env, &["org", "create", "--name", "Globex", "--slug", "globex"]);
    let args = ["token", "create", "--kind", "organisation", "--name", "t", "--org", "acme", "--scopes", ALL];
    let acme = format!("Bearer {}", cli(dir.path(), &env, &args).trim());
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(dir.path(), &pairs);
    World { db, dir, env, server, acme }
}

impl World {
    fn call(&self, method: Method, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = client().request(method, self.server.url(path)).header("authorization", bearer);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    fn token(&self, org: &str, scopes: &str) -> String {
        let args = ["token", "create", "--kind", "organisation", "--name", "t", "--org", org, "--scopes", scopes];
        format!("Bearer {}", cli(self.dir.path(), &self.env, &args).trim())
    }

    /// A user with this e-mail (verified or not), signed in: their session cookie.
    fn signed_in(&self, email: &str, verified: bool) -> String {
        use idp::storage::users::UserRepository;
        let mut vars = self.env.clone();
        vars.push(("IDP_DATA_DIR".into(), self.dir.path().join("idp-data").display().to_string()));
        let s = idp::app::build_state(idp::config::Config::load_with(None, &vars).unwrap()).unwrap();
        let now = s.clock.now_naive();
        let (token, _) =
            s.db.write(|c| {
                let u = c.create_user(
                    &idp::domain::user::NewUser {
                        email: Some(email.into()),
                        email_verified: verified,
                        display_name: None,
                    },
                    now,
                )?;
                idp::auth::session::start(
                    c,
                    &s.auditor,
                    &s.config.session,
                    now,
                    u.id,
                    &["fed".into()],
                    None,
                    &idp::auth::session::Origin::default(),
                )
            })
            .unwrap();
        format!("idp_session={}", token.expose())
    }

    fn open(&self, url: &str, cookie: Option<&str>) -> (u16, String, String) {
        let mut r = client().get(url);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        let r = r.send().unwrap();
        let loc = r.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (r.status().as_u16(), loc.unwrap_or_default(), r.text().unwrap())
    }

    /// Submits the page's Join form.
    fn join(&self, url: &str, cookie: &str, csrf: &str) -> (u16, String) {
        let r = client()
            .post(url)
            .header("cookie", cookie)
            .header("origin", self.server.url("").trim_end_matches('/'))
            .form(&[("csrf_token", csrf)])
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    fn invite(&self, email: &str, role: &str) -> (String, String) {
        let (s, r) = self.call(
            Method::POST,
            "/api/v1/organisations/acme/invitations",
            &self.acme,
            Some(json!({"email": email, "role": role})),
        );
        assert_eq!(s, 201, "{r}");
        (r["invitation"]["id"].as_str().unwrap().to_owned(), r["accept_url"].as_str().unwrap().to_owned())
    }

    fn members(&self) -> Vec<(String, String)> {
        let (_, r) = self.call(Method::GET, "/api/v1/organisations/acme/members", &self.acme, None);
        r["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["email"].as_str().unwrap_or_default().to_owned(), m["role"].as_str().unwrap().to_owned()))
            .collect()
    }

    fn status_of(&self, id: &str) -> String {
        let (_, r) = self.call(Method::GET, "/api/v1/organisations/acme/invitations", &self.acme, None);
        let found = r["invitations"].as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
        found["status"].as_str().unwrap().to_owned()
    }
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no form in {html}")) + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

fn an_invited_user_joins(db: TestDb) {
    let w = world(db);
    let (id, url) = w.invite(" Bob@Example.com ", "admin");
    let token = url.strip_prefix(&w.server.url("/invitations/")).unwrap_or_else(|| panic!("{url}")).to_owned();
    assert_eq!(token.len(), 43, "256 bits, base64url");
    let (_, listed) = w.call(Method::GET, "/api/v1/organisations/acme/invitations", &w.acme, None);
    assert!(!listed.to_string().contains(&token), "the token is shown once only: {listed}");
    assert_eq!(listed["invitations"][0]["email"], "Bob@Example.com");
    assert_eq!(w.status_of(&id), "pending");

    // Signed out: to the login page, which comes back here.
    let (s, loc, _) = w.open(&url, None);
    assert_eq!((s, loc.as_str()), (303, format!("/login?return_to=%2Finvitations%2F{token}").as_str()));

    let bob = w.signed_in("bob@example.com", true);
    let (s, _, page) = w.open(&url, Some(&bob));
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Join Acme") && page.contains("admin"), "{page}");
    assert!(!w.members().iter().any(|(e, _)| e == "bob@example.com"), "opening the page changes nothing");

    let (s, _) = w.join(&url, &bob, "forged");
    assert_eq!(s, 403);
    assert_eq!(w.status_of(&id), "pending");
    let (s, page) = w.join(&url, &bob, &csrf_of(&page));
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("You are now a member of <strong>Acme</strong>"), "{page}");
    assert!(w.members().contains(&("bob@example.com".into(), "admin".into())), "{:?}", w.members());
    assert_eq!(w.status_of(&id), "accepted");
    let (_, log) = w.call(Method::GET, "/api/v1/organisations/acme/audit?action=invitation.accepted", &w.acme, None);
    assert_eq!(log["events"].as_array().unwrap().len(), 1, "{log}");

    // Used up: a second acceptance, by anyone, is refused.
    let (s, _, page) = w.open(&url, Some(&bob));
    assert_eq!(s, 410, "{page}");
    assert!(page.contains("used already"), "{page}");
    assert!(!w.server.stderr().contains("panicked"));
}

#[test]
fn an_invited_user_joins_with_the_role_on_sqlite() {
    an_invited_user_joins(TestDb::sqlite());
}

#[test]
fn an_invited_user_joins_with_the_role_on_postgres() {
    an_invited_user_joins(TestDb::postgres());
}

fn refusals(db: TestDb) {
    let w = world(db);
    let before = w.members();
    let (bob_id, bob_url) = w.invite("bob@example.com", "member");

    // Someone else signed in: refused, and the invitation stays for bob.
    let eve = w.signed_in("eve@example.com", true);
    let (s, _, page) = w.open(&bob_url, Some(&eve));
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("another e-mail address"), "{page}");
    let (s, _) = w.join(&bob_url, &eve, "x");
    assert_eq!(s, 403);
    // The right address, not verified by the provider.
    let unverified = w.signed_in("Bob@example.com", false);
    let (s, _, page) = w.open(&bob_url, Some(&unverified));
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("not verified"), "{page}");
    assert_eq!(w.status_of(&bob_id), "pending");

    // Revoked.
    let (carol_id, carol_url) = w.invite("carol@example.com", "viewer");
    let path = format!("/api/v1/organisations/acme/invitations/{carol_id}");
    assert_eq!(w.call(Method::DELETE, &path, &w.acme, None).0, 204);
    assert_eq!(w.call(Method::DELETE, &path, &w.acme, None).0, 409);
    let carol = w.signed_in("carol@example.com", true);
    let (s, _, page) = w.open(&carol_url, Some(&carol));
    assert_eq!(s, 410, "{page}");
    assert!(page.contains("revoked"), "{page}");

    // Expired (moved into the past behind the API's back).
    let (dan_id, dan_url) = w.invite("dan@example.com", "member");
    {
        use diesel::prelude::*;
        use idp::storage::schema::invitations as i;
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::minutes(1);
        w.db.open()
            .write(|c| {
                diesel::update(i::table.find(&dan_id))
                    .set(i::expires_at.eq(past))
                    .execute(c)
                    .map_err(idp::storage::StorageError::from)
            })
            .unwrap();
    }
    let dan = w.signed_in("dan@example.com", true);
    let (s, _, page) = w.open(&dan_url, Some(&dan));
    assert_eq!(s, 410, "{page}");
    assert!(page.contains("expired"), "{page}");
    let (s, page) = w.join(&dan_url, &dan, &csrf_of(&w.open(&w.server.url("/account/tokens"), Some(&dan)).2));
    assert_eq!(s, 410, "{page}");
    assert_eq!(w.status_of(&dan_id), "expired");

    // A guessed or mangled token.
    for bad in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x", &"y".repeat(500)] {
        let (s, _, page) = w.open(&w.server.url(&format!("/invitations/{bad}")), Some(&dan));
        assert_eq!(s, 404, "{bad}: {page}");
    }
    assert_eq!(w.members(), before, "no refusal added a member");

    // Bad input to the API: 400, and nothing created.
    let n = |w: &World| {
        let (_, r) = w.call(Method::GET, "/api/v1/organisations/acme/invitations", &w.acme, None);
        r["invitations"].as_array().unwrap().len()
    };
    let count = n(&w);
    for body in [
        json!({"email": "not-an-address", "role": "member"}),
        json!({"email": "", "role": "member"}),
        json!({"email": "a b@example.com", "role": "member"}),
        json!({"email": format!("{}@example.com", "a".repeat(300)), "role": "member"}),
        json!({"email": "x@example.com", "role": "nope"}),
        json!({"email": "x@example.com", "role": "6f1f1b1e-0000-4000-8000-000000000000"}),
        json!({"email": "x@example.com"}),
        json!({"email": "x@example.com", "role": "member", "days": 30}),
        json!(["x@example.com"]),
    ] {
        let (s, r) = w.call(Method::POST, "/api/v1/organisations/acme/invitations", &w.acme, Some(body.clone()));
        assert_eq!((s, r["error"].as_str()), (400, Some("invalid_request")), "{body}: {r}");
    }
    // An admin without organisation_delete cannot invite owners; a reader cannot invite at all.
    let admin = w.token("acme", &ALL.replace("organisation_delete,", ""));
    let body = json!({"email": "x@example.com", "role": "owner"});
    let (s, r) = w.call(Method::POST, "/api/v1/organisations/acme/invitations", &admin, Some(body.clone()));
    assert_eq!((s, r["message"].as_str()), (403, Some("only an owner makes owners")), "{r}");
    let reader = w.token("acme", "members_read");
    assert_eq!(w.call(Method::POST, "/api/v1/organisations/acme/invitations", &reader, Some(body.clone())).0, 403);
    assert_eq!(
        w.call(Method::DELETE, &format!("/api/v1/organisations/acme/invitations/{bob_id}"), &reader, None).0,
        403
    );
    // Another organisation sees none of it.
    let globex = w.token("globex", ALL);
    assert_eq!(w.call(Method::GET, "/api/v1/organisations/acme/invitations", &globex, None).0, 404);
    assert_eq!(
        w.call(Method::DELETE, &format!("/api/v1/organisations/acme/invitations/{bob_id}"), &globex, None).0,
        404
    );
    assert_eq!(
        w.call(Method::DELETE, &format!("/api/v1/organisations/globex/invitations/{bob_id}"), &globex, None).0,
        404
    );
    assert_eq!(n(&w), count, "nothing was created");

    // Bob still gets in with his.
    let bob = w.signed_in("bob@example.com", true);
    let (_, _, page) = w.open(&bob_url, Some(&bob));
    assert_eq!(w.join(&bob_url, &bob, &csrf_of(&page)).0, 200);
    assert!(w.members().contains(&("bob@example.com".into(), "member".into())));
    assert!(!w.server.stderr().contains("panicked"));
}

#[test]
fn refused_invitations_change_nothing_on_sqlite() {
    refusals(TestDb::sqlite());
}

#[test]
fn refused_invitations_change_nothing_on_postgres() {
    refusals(TestDb::postgres());
}

/// End to end under `signup = "invite"`: a person new to idp opens the URL signed out, signs in
/// through an OIDC upstream (oidc-provider), gets an account because they were invited, comes
/// back to the invitation and joins. Without the invitation the same login is refused.
#[test]
fn a_new_person_invited_signs_up_through_a_connector_and_joins() {
    use harness::free_port;
    use harness::peers::{Browser, UpstreamClient, oidc_upstream};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let secret = "broker-secret-0123456789abcdef";
    let upstream = oidc_upstream(&[UpstreamClient {
        client_id: "idp-broker",
        client_secret: secret,
        redirect_uris: vec![format!("{base}/callback/up")],
    }]);
    let toml = format!(
        "signup = \"invite\"\n\n[[connectors]]\nid = \"up\"\ntype = \"oidc\"\nname = \"Upstream\"\nissuer = \"{}\"\nclient_id = \"idp-broker\"\nclient_secret = \"{secret}\"\n",
        upstream.base
    );
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    let env = vec![("IDP_CONFIG".to_owned(), config.display().to_string())];
    cli(dir.path(), &env, &["org", "create", "--name", "Acme", "--slug", "acme"]);
    let args = ["token", "create", "--kind", "organisation", "--name", "t", "--org", "acme", "--scopes", ALL];
    let token = format!("Bearer {}", cli(dir.path(), &env, &args).trim());
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_at(dir.path(), port, &pairs);
    let api = |method: Method, path: &str, body: Option<Value>| {
        let mut r = client().request(method, server.url(path)).header("authorization", &token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null))
    };

    // Not invited: the sign-up policy refuses the upstream's alice.
    let mut b = Browser::new();
    let page = b.open(&server.url("/login/up"));
    assert_eq!(page.status, 403, "{}", page.body);

    let (s, r) = api(
        Method::POST,
        "/api/v1/organisations/acme/invitations",
        Some(json!({"email": "alice@example.test", "role": "member"})),
    );
    assert_eq!(s, 201, "{r}");
    let url = r["accept_url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(&base).unwrap().to_owned();

    let mut b = Browser::new();
    let login = b.open(&url);
    assert!(login.url.contains("/login?return_to="), "{}", login.url);
    let enc: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    let page = b.open(&server.url(&format!("/login/up?return_to={enc}")));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with(&path), "back at the invitation: {}", page.url);
    assert!(page.body.contains("Join Acme"), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let (s, _) = b.post_form_page(&url, &base, &format!("csrf_token={csrf}"));
    assert_eq!(s, 200);
    let (_, members) = api(Method::GET, "/api/v1/organisations/acme/members", None);
    let emails: Vec<&str> = members["members"].as_array().unwrap().iter().filter_map(|m| m["email"].as_str()).collect();
    assert_eq!(emails, ["alice@example.test"], "{members}");
    assert!(!server.stderr().contains("panicked"));
}
