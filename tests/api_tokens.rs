//! API tokens through the binary: made, rotated and revoked with `idp token`, validated by apps
//! through introspection (RFC 7662), on SQLite and PostgreSQL. The lifecycle's clock-dependent
//! rules (expiry, the end of a grace period) are in idp/src/tokens/tests.rs with a fixed clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::path::Path;

use harness::{Server, TestDb, client, idp, run, text};
use serde_json::Value;

const SECRET: &str = "resource-server-secret-0123456789abcdef";

struct World {
    _db: TestDb,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    server: Server,
}

fn world(db: TestDb) -> World {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[[clients]]\nclient_id = \"rs\"\nclient_secret_env = \"RS_SECRET\"\nredirect_uris = [\"https://rs.example.com/cb\"]\n\n\
                [[clients]]\nclient_id = \"billing-app\"\nclient_secret_env = \"RS_SECRET\"\nproject = \"acme/billing\"\n\
                redirect_uris = [\"https://billing.example.com/cb\"]\n\n\
                [[clients]]\nclient_id = \"search-app\"\nclient_secret_env = \"RS_SECRET\"\nproject = \"acme/search\"\n\
                redirect_uris = [\"https://search.example.com/cb\"]\n";
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    // The CLI is another process: with no cache its revocations are seen at the next request.
    let env: Vec<(String, String)> = [
        ("IDP_CONFIG", config.to_str().unwrap()),
        ("IDP_DATABASE_URL", &db.url()),
        ("RS_SECRET", SECRET),
        ("IDP_TOKENS_CACHE_TTL", "0s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let w0 = |args: &[&str]| cli(dir.path(), &env, args);
    w0(&["org", "create", "--name", "Acme", "--slug", "acme"]);
    w0(&["project", "create", "--org", "acme", "--name", "Billing", "--slug", "billing"]);
    w0(&["project", "create", "--org", "acme", "--name", "Search", "--slug", "search"]);
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(dir.path(), &pairs);
    World { _db: db, dir, env, server }
}

fn cli(dir: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let out = run(idp(dir).args(args).envs(env.iter().map(|(k, v)| (k, v))));
    assert!(out.status.success(), "idp {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

impl World {
    fn idp(&self, args: &[&str]) -> String {
        cli(self.dir.path(), &self.env, args)
    }

    fn idp_fails(&self, args: &[&str]) -> String {
        let out = run(idp(self.dir.path()).args(args).envs(self.env.iter().map(|(k, v)| (k, v))));
        assert!(!out.status.success(), "idp {args:?} should fail: {}", text(&out));
        text(&out)
    }

    /// Creates a service token for billing; returns (id, secret).
    fn service_token(&self) -> (String, String) {
        let args =
            ["token", "create", "--kind", "service", "--name", "deploy bot", "--org", "acme", "--project", "billing"];
        let out = run(idp(self.dir.path())
            .args(args)
            .args(["--scopes", "audit_read,members_read"])
            .envs(self.env.iter().map(|(k, v)| (k, v))));
        assert!(out.status.success(), "{}", text(&out));
        let secret = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let id = self
            .idp(&["token", "list", "--org", "acme"])
            .lines()
            .last()
            .unwrap()
            .split('\t')
            .next()
            .unwrap()
            .to_owned();
        (id, secret)
    }

    fn introspect(&self, client_id: &str, token: &str) -> Value {
        let r = client()
            .post(self.server.url("/introspect"))
            .basic_auth(client_id, Some(SECRET))
            .form(&[("token", token)])
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.json().unwrap()
    }

    fn active(&self, token: &str) -> bool {
        self.introspect("rs", token)["active"].as_bool().unwrap()
    }
}

fn lifecycle(db: TestDb) {
    let w = world(db);
    let (id, secret) = w.service_token();
    assert!(secret.starts_with("idp_sat_") && secret.len() > 50, "{secret}");

    let r = w.introspect("rs", &secret);
    assert_eq!(r["active"], true, "{r}");
    let mut scopes: Vec<&str> = r["scope"].as_str().unwrap().split(' ').collect();
    scopes.sort_unstable();
    assert_eq!(scopes, ["audit_read", "members_read"]);
    assert_eq!(r["sub"], format!("token:{id}"));
    assert_eq!(r["token_kind"], "service");
    assert!(r["project_id"].is_string() && r["organisation_id"].is_string() && r["exp"].is_i64(), "{r}");
    assert_eq!(w.introspect("billing-app", &secret)["active"], true, "the token's own project's app");
    assert_eq!(w.introspect("search-app", &secret), serde_json::json!({"active": false}), "another project's app");

    // Rotation with a grace period: old and new both work.
    let rotated = w.idp(&["token", "rotate", &id, "--grace-hours", "1"]).trim().to_owned();
    assert_ne!(rotated, secret);
    assert!(w.active(&secret) && w.active(&rotated), "both valid during the grace period");
    // Without grace: the previous secrets die at once.
    let again = w.idp(&["token", "rotate", &id, "--grace-hours", "0"]).trim().to_owned();
    assert!(!w.active(&secret) && !w.active(&rotated) && w.active(&again));

    w.idp(&["token", "revoke", &id]);
    assert!(!w.active(&again), "revoked at once");
    assert!(w.idp(&["token", "list", "--org", "acme"]).contains("revoked"));
    let t = w.idp_fails(&["token", "rotate", &id, "--grace-hours", "1"]);
    assert!(t.contains("revoked"), "{t}");
}

#[test]
fn a_service_token_is_rotated_with_grace_and_revoked_on_sqlite() {
    lifecycle(TestDb::sqlite());
}

#[test]
fn a_service_token_is_rotated_with_grace_and_revoked_on_postgres() {
    lifecycle(TestDb::postgres());
}

#[test]
fn malformed_and_mistyped_tokens_are_inactive() {
    let w = world(TestDb::sqlite());
    let (_, secret) = w.service_token();
    let mut typo = secret.clone().into_bytes();
    typo[20] = if typo[20] == b'x' { b'y' } else { b'x' };
    let long = "idp_sat_".to_owned() + &"a".repeat(5000);
    for bad in [String::from_utf8(typo).unwrap(), secret.to_uppercase(), format!("{secret}x"), long, "idp".into()] {
        assert_eq!(w.introspect("rs", &bad), serde_json::json!({"active": false}), "{bad}");
    }
    assert!(w.active(&secret), "the real one still works");
}

#[test]
fn introspection_of_an_api_token_needs_client_authentication() {
    let w = world(TestDb::sqlite());
    let (_, secret) = w.service_token();
    for auth in [None, Some(("rs", "wrong")), Some(("nobody", SECRET))] {
        let mut req = client().post(w.server.url("/introspect")).form(&[("token", secret.as_str())]);
        if let Some((id, s)) = auth {
            req = req.basic_auth(id, Some(s));
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert!(!body.to_string().contains("audit_read"), "nothing about the token leaks");
    }
}

#[test]
fn the_cli_refuses_bad_requests_with_a_clear_line_and_writes_nothing() {
    let w = world(TestDb::sqlite());
    let base = ["token", "create", "--name", "x", "--org", "acme"];
    for (extra, needle) in [
        (&["--kind", "service", "--project", "billing", "--scopes", "fly"][..], "unknown scope"),
        (&["--kind", "service", "--scopes", "audit_read"][..], "belongs to a project"),
        (&["--kind", "service", "--project", "nope", "--scopes", "audit_read"][..], "project not found"),
        (&["--kind", "service", "--project", "billing", "--scopes", "audit_read", "--days", "4000"][..], "days"),
        (&["--kind", "personal", "--project", "billing", "--scopes", "audit_read"][..], "user"),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let t = w.idp_fails(&args);
        assert!(t.contains(needle), "{args:?}: {t}");
    }
    assert_eq!(w.idp(&["token", "list", "--org", "acme"]), "", "nothing was created");
    let t = w.idp_fails(&["token", "revoke", "0b8c7a4e-1d7f-4c38-9d40-7d0e4a6b2f11"]);
    assert!(t.contains("not found"), "{t}");
    let t = w.idp_fails(&["token", "rotate", "not-an-id"]);
    assert!(t.contains("not found"), "{t}");
}

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

impl World {
    fn exchange(&self, client_id: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let mut f = vec![("grant_type", EXCHANGE)];
        f.extend_from_slice(form);
        let r = client().post(self.server.url("/token")).basic_auth(client_id, Some(SECRET)).form(&f).send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    /// jose (npm) verifies an access token offline against idp's JWKS.
    fn jose_verifies(&self, jwt: &str) -> Value {
        let rp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/rp");
        assert!(rp.join("node_modules/jose").exists(), "tests/peers/rp is not installed: run ./scripts/test");
        let tokens = serde_json::json!([{"id_token": jwt, "access_token": jwt}]).to_string();
        let out = std::process::Command::new("node")
            .arg(rp.join("rp.mjs"))
            .arg("verify")
            .env("ISSUER", &self.server.base)
            .env("CLIENT_ID", "billing-app")
            .env("CLIENT_SECRET", SECRET)
            .env("TOKENS", tokens)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["access"].clone()
    }
}

#[test]
fn an_api_token_is_exchanged_for_a_jwt_that_apps_verify_offline_and_online() {
    let w = world(TestDb::sqlite());
    let (id, secret) = w.service_token();
    let issuer = w.server.base.clone();
    let (status, r) = w.exchange(
        "billing-app",
        &[
            ("subject_token", &secret),
            ("subject_token_type", ACCESS_TOKEN),
            ("scope", "audit_read"),
            ("audience", &issuer),
        ],
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!((r["issued_token_type"].as_str(), r["token_type"].as_str()), (Some(ACCESS_TOKEN), Some("Bearer")));
    assert_eq!(r["scope"], "audit_read", "narrowed as asked");
    assert!(r["expires_in"].as_i64().unwrap() <= 600 && r.get("refresh_token").is_none(), "{r}");
    let jwt = r["access_token"].as_str().unwrap();

    let offline = w.jose_verifies(jwt);
    assert_eq!((offline["ok"].as_bool(), offline["alg"].as_str()), (Some(true), Some("ES256")), "{offline}");

    let online = w.introspect("billing-app", jwt);
    assert_eq!(online["active"], true, "{online}");
    assert_eq!(online["api_token_id"], id.as_str());
    assert_eq!(online["sub"], format!("token:{id}"));
    assert_eq!(online["scope"], "audit_read");
    assert_eq!(w.introspect("search-app", jwt)["active"], false, "not that client's token");

    w.idp(&["token", "revoke", &id]);
    assert_eq!(w.introspect("billing-app", jwt)["active"], false, "the API token's revocation reaches its JWTs");
    let (status, r) = w.exchange("billing-app", &[("subject_token", &secret), ("subject_token_type", ACCESS_TOKEN)]);
    assert_eq!((status, r["error"].as_str()), (400, Some("invalid_grant")));
}

#[test]
fn token_exchange_refuses_what_it_must_and_issues_nothing() {
    let w = world(TestDb::sqlite());
    let (_, secret) = w.service_token();
    let good = [("subject_token", secret.as_str()), ("subject_token_type", ACCESS_TOKEN)];
    type Form<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Form<'_>, &str)> = vec![
        ("search-app", good.to_vec(), "invalid_grant"),
        (
            "billing-app",
            vec![("subject_token", &secret), ("subject_token_type", ACCESS_TOKEN), ("scope", "members_manage")],
            "invalid_scope",
        ),
        (
            "billing-app",
            vec![("subject_token", &secret), ("subject_token_type", "urn:ietf:params:oauth:token-type:id_token")],
            "invalid_request",
        ),
        ("billing-app", vec![("subject_token", &secret)], "invalid_request"),
        ("billing-app", vec![("subject_token_type", ACCESS_TOKEN)], "invalid_request"),
        (
            "billing-app",
            vec![("subject_token", "idp_sat_forged"), ("subject_token_type", ACCESS_TOKEN)],
            "invalid_grant",
        ),
        (
            "billing-app",
            vec![
                ("subject_token", &secret),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", "https://evil.example"),
            ],
            "invalid_target",
        ),
        (
            "billing-app",
            vec![
                ("subject_token", &secret),
                ("subject_token_type", ACCESS_TOKEN),
                ("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"),
            ],
            "invalid_request",
        ),
    ];
    for (client_id, form, error) in cases {
        let (status, r) = w.exchange(client_id, &form);
        assert_eq!((status, r["error"].as_str()), (400, Some(error)), "{client_id} {form:?}: {r}");
        assert!(r.get("access_token").is_none());
    }
    let r = client()
        .post(w.server.url("/token"))
        .form(&[("grant_type", EXCHANGE), ("subject_token", &secret), ("subject_token_type", ACCESS_TOKEN)])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401, "an unauthenticated caller");
    assert!(w.active(&secret), "nothing happened to the token");
}

/// Bob, a member of billing (and of the organisation, if asked) with a live session made through the library against the
/// server's own database; returns his session cookie value.
fn bob_signed_in(w: &World, role: idp::domain::role::BuiltinRole, in_organisation: bool) -> String {
    use idp::storage::organisations::OrganisationRepository;
    use idp::storage::users::UserRepository;
    let mut vars: Vec<(String, String)> = w.env.iter().filter(|(k, _)| k.starts_with("IDP_")).cloned().collect();
    vars.push(("IDP_DATA_DIR".into(), w.dir.path().join("idp-data").display().to_string()));
    let config = idp::config::Config::load_with(None, &vars).unwrap();
    let s = idp::app::build_state(config).unwrap();
    let now = s.clock.now_naive();
    let (token, _) =
        s.db.write(|c| {
            let u = c.create_user(
                &idp::domain::user::NewUser { email: Some("bob@example.com".into()), ..Default::default() },
                now,
            )?;
            let org = c.find_organisation_by_slug("acme")?.unwrap();
            let project = c.find_project_by_slug(org.id, "billing")?.unwrap();
            c.set_project_member(project.id, u.id, idp::domain::role::RoleRef::Builtin(role), now)?;
            if in_organisation {
                c.set_organisation_member(org.id, u.id, idp::domain::role::RoleRef::Builtin(role), now)?;
            }
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
    token.expose().to_owned()
}

fn field(html: &str, marker: &str) -> String {
    let start = html.find(marker).unwrap_or_else(|| panic!("{marker} not in {html}")) + marker.len();
    let end = html[start..].find(['"', '<']).unwrap() + start;
    html[start..end].to_owned()
}

#[test]
fn a_user_manages_personal_tokens_on_their_page() {
    let w = world(TestDb::sqlite());
    let cookie = format!("idp_session={}", bob_signed_in(&w, idp::domain::role::BuiltinRole::Member, false));
    let get =
        || client().get(w.server.url("/account/tokens")).header("cookie", &cookie).send().unwrap().text().unwrap();
    let page = get();
    assert!(page.contains("You have no personal tokens"), "{page}");
    let csrf = field(&page, "name=\"csrf_token\" value=\"");
    let post = |path: &str, form: &[(&str, &str)]| {
        let r = client().post(w.server.url(path)).header("cookie", &cookie).form(form).send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let create = [
        ("csrf_token", csrf.as_str()),
        ("name", "laptop"),
        ("organisation", "acme"),
        ("project", "billing"),
        ("scopes", "members_read"),
        ("days", ""),
    ];
    let (status, _) = post(
        "/account/tokens",
        &[
            ("csrf_token", "forged"),
            ("name", "x"),
            ("organisation", "acme"),
            ("project", "billing"),
            ("scopes", "members_read"),
        ],
    );
    assert_eq!(status, 403, "no CSRF token, no token");
    let (status, page) = post("/account/tokens", &create);
    assert_eq!(status, 200);
    let secret = field(&page, "<code class=\"secret\">");
    assert!(secret.starts_with("idp_pat_"), "{page}");
    let p = w.introspect("billing-app", &secret);
    assert_eq!((p["active"].as_bool(), p["roles"].clone()), (Some(true), serde_json::json!(["member"])));

    // Beyond his role: refused in words, nothing created.
    let mut bad = create;
    bad[4] = ("scopes", "members_manage");
    let (status, page) = post("/account/tokens", &bad);
    assert_eq!(status, 200);
    assert!(page.contains("not among the user&#x27;s permissions") || page.contains("not among"), "{page}");

    let id = field(&get(), "action=\"/account/tokens/").split('/').next().unwrap().to_owned();
    let (_, page) = post(&format!("/account/tokens/{id}/rotate"), &[("csrf_token", &csrf), ("grace_hours", "1")]);
    let rotated = field(&page, "<code class=\"secret\">");
    assert!(w.active(&secret) && w.active(&rotated));
    post(&format!("/account/tokens/{id}/revoke"), &[("csrf_token", &csrf)]);
    assert!(!w.active(&rotated) && !w.active(&secret));
    assert!(get().contains("revoked"));
}

#[test]
fn the_json_api_manages_tokens_for_sessions_and_personal_tokens() {
    let w = world(TestDb::sqlite());
    let cookie = format!("idp_session={}", bob_signed_in(&w, idp::domain::role::BuiltinRole::Admin, true));
    let page = client().get(w.server.url("/account/tokens")).header("cookie", &cookie).send().unwrap().text().unwrap();
    let csrf = field(&page, "name=\"csrf_token\" value=\"");
    let api = |method: reqwest::Method, path: &str, auth: &[(&str, &str)], body: Option<Value>| {
        let mut r = client().request(method, w.server.url(path));
        for (k, v) in auth {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };
    let session = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let body = serde_json::json!({"kind": "personal", "name": "ci", "project": "billing", "scopes": ["tokens_manage", "members_read", "audit_read"]});
    let post = reqwest::Method::POST;

    assert_eq!(api(post.clone(), "/api/v1/organisations/acme/tokens", &[], Some(body.clone())).0, 401);
    let (status, r) = api(post.clone(), "/api/v1/organisations/acme/tokens", &session[..1], Some(body.clone()));
    assert_eq!((status, r["error"].as_str()), (403, Some("csrf")), "a session needs the CSRF header");
    let (status, r) = api(post.clone(), "/api/v1/organisations/acme/tokens", &session, Some(body.clone()));
    assert_eq!(status, 201, "{r}");
    let pat = r["secret"].as_str().unwrap().to_owned();

    // The personal token itself may now call the API (it carries tokens_manage).
    let bearer = format!("Bearer {pat}");
    let as_token = [("authorization", bearer.as_str())];
    // A token hands out nothing beyond its own scopes, whatever its user holds.
    let beyond =
        serde_json::json!({"kind": "service", "name": "deploy", "project": "billing", "scopes": ["policy_manage"]});
    let (status, r) = api(post.clone(), "/api/v1/organisations/acme/tokens", &as_token, Some(beyond));
    assert_eq!(status, 400, "{r}");
    let svc = serde_json::json!({"kind": "service", "name": "deploy", "project": "billing", "scopes": ["audit_read"]});
    let (status, r) = api(post.clone(), "/api/v1/organisations/acme/tokens", &as_token, Some(svc));
    assert_eq!(status, 201, "{r}");
    let svc_id = r["token"]["id"].as_str().unwrap().to_owned();
    let svc_secret = r["secret"].as_str().unwrap().to_owned();
    let (status, r) = api(reqwest::Method::GET, "/api/v1/organisations/acme/tokens", &as_token, None);
    assert_eq!(status, 200);
    assert_eq!(r["tokens"].as_array().unwrap().len(), 2);
    assert!(!r.to_string().contains(&svc_secret), "secrets are never listed");

    let (status, r) = api(
        post.clone(),
        &format!("/api/v1/tokens/{svc_id}/rotate"),
        &as_token,
        Some(serde_json::json!({"grace_hours": 2})),
    );
    assert_eq!(status, 200, "{r}");
    assert!(w.active(&svc_secret) && w.active(r["secret"].as_str().unwrap()));

    // Refusals: malformed body, unknown fields, unknown org, another's guess.
    for bad in [
        serde_json::json!({"kind": "personal"}),
        serde_json::json!({"kind": "x", "name": "n", "scopes": []}),
        serde_json::json!({"kind": "service", "name": "n", "project": "billing", "scopes": ["audit_read"], "admin": true}),
    ] {
        let (status, r) = api(post.clone(), "/api/v1/organisations/acme/tokens", &as_token, Some(bad.clone()));
        assert_eq!(status, 400, "{bad}: {r}");
    }
    assert_eq!(api(reqwest::Method::GET, "/api/v1/organisations/nope/tokens", &as_token, None).0, 404);
    assert_eq!(
        api(reqwest::Method::DELETE, "/api/v1/tokens/0b8c7a4e-1d7f-4c38-9d40-7d0e4a6b2f11", &as_token, None).0,
        404
    );
    let svc_bearer = format!("Bearer {svc_secret}");
    assert_eq!(
        api(reqwest::Method::GET, "/api/v1/organisations/acme/tokens", &[("authorization", &svc_bearer)], None).0,
        403,
        "a service token without tokens_manage"
    );
    assert_eq!(
        api(
            reqwest::Method::GET,
            "/api/v1/organisations/acme/tokens",
            &[("authorization", "Bearer idp_pat_nonsense")],
            None
        )
        .0,
        401
    );

    assert_eq!(api(reqwest::Method::DELETE, &format!("/api/v1/tokens/{svc_id}"), &as_token, None).0, 204);
    assert!(!w.active(&svc_secret));
}
