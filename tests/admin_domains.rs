//! Verified domains through the binary, against dnsmasq serving the TXT records: claiming,
//! verifying (and every way a check fails), routing a verified domain to a connector for the
//! login page's home-realm discovery, and what an unverified domain never does; on SQLite and
//! PostgreSQL. Also deleting a project.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::path::Path;

use harness::peers::{Dnsmasq, free_dns_port};
use harness::{Server, TestDb, client, idp, run, text};
use reqwest::Method;
use serde_json::{Value, json};

const ALL: &str = "organisation_read,organisation_manage,organisation_delete,members_read,members_manage,roles_manage,\
                   projects_read,projects_manage,connectors_manage,clients_manage,tokens_manage,policy_manage,audit_read";

struct World {
    _db: TestDb,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    server: Server,
    dns_port: u16,
    acme: String,
    globex: String,
}

fn cli(dir: &Path, env: &[(String, String)], args: &[&str]) -> String {
    let out = run(idp(dir).args(args).envs(env.iter().map(|(k, v)| (k, v))));
    assert!(out.status.success(), "idp {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// acme (project billing) and globex, an all-powerful organisation token for each, and the
/// server asking the loopback port where dnsmasq is started later.
fn world(db: TestDb) -> World {
    let dir = tempfile::tempdir().unwrap();
    let dns_port = free_dns_port();
    let env: Vec<(String, String)> = [
        ("IDP_DATABASE_URL", db.url()),
        ("IDP_TOKENS_CACHE_TTL", "0s".into()),
        ("IDP_DNS_RESOLVER", format!("127.0.0.1:{dns_port}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for args in [
        &["org", "create", "--name", "Acme", "--slug", "acme"][..],
        &["project", "create", "--org", "acme", "--name", "Billing", "--slug", "billing"],
        &["org", "create", "--name", "Globex", "--slug", "globex"],
    ] {
        cli(dir.path(), &env, args);
    }
    let token = |org: &str| {
        let args = ["token", "create", "--kind", "organisation", "--name", "t", "--org", org, "--scopes", ALL];
        format!("Bearer {}", cli(dir.path(), &env, &args).trim())
    };
    let (acme, globex) = (token("acme"), token("globex"));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(dir.path(), &pairs);
    World { _db: db, dir, env, server, dns_port, acme, globex }
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

    fn dns(&self, records: &[(&str, &str)]) -> Dnsmasq {
        Dnsmasq::start(self.dns_port, records)
    }

    /// Where the login page's discovery sends `email`.
    fn discover(&self, email: &str) -> String {
        let r = client().get(self.server.url(&format!("/login/discover?email={email}"))).send().unwrap();
        assert_eq!(r.status(), 303);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    fn audit_actions(&self) -> Vec<String> {
        let (_, log) = self.call(Method::GET, "/api/v1/organisations/acme/audit?limit=500", &self.acme, None);
        log["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect()
    }

    fn connector(&self, bearer: &str, org: &str, id: &str) {
        let (s, r) = self.call(
            Method::POST,
            &format!("/api/v1/organisations/{org}/connectors"),
            bearer,
            Some(json!({"id": id, "type": "oidc", "name": "SSO", "issuer": format!("https://sso.{org}.example"),
                "client_id": "c", "client_secret": "s"})),
        );
        assert_eq!(s, 201, "{r}");
    }
}

fn verify_and_route(db: TestDb) {
    let w = world(db);
    let a = w.acme.as_str();
    w.connector(a, "acme", "acme-sso");
    let (s, d) = w.call(Method::POST, "/api/v1/organisations/acme/domains", a, Some(json!({"domain": "Acme.TEST."})));
    assert_eq!(s, 201, "{d}");
    assert_eq!((d["domain"].as_str(), d["verified"].as_bool()), (Some("acme.test"), Some(false)), "{d}");
    assert_eq!(d["txt_name"], "_idp-challenge.acme.test");
    let value = d["txt_value"].as_str().unwrap().to_owned();
    let token = value.strip_prefix("idp-verify=").unwrap();
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "128 bits, hex: {value}");
    let id = d["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/organisations/acme/domains/{id}");
    let verify = format!("{base}/verify");

    // An unverified domain does not route, and discovery knows nothing of it.
    let (s, r) = w.call(Method::PUT, &base, a, Some(json!({"connector": "acme-sso"})));
    assert_eq!(s, 400, "{r}");
    assert_eq!(w.discover("bob@acme.test"), "/login?unknown_domain=1");

    // Each failed check is a 400 saying why, and changes nothing.
    let refusals: [(&[(&str, &str)], &str); 4] = [
        (&[], "no TXT record"),
        (&[("_idp-challenge.acme.test", "idp-verify=00000000000000000000000000000000")], "do not hold"),
        (&[("acme.test", value.as_str())], "no TXT record"),
        (&[("_idp-challenge.other.test", value.as_str())], "no TXT record"),
    ];
    for (records, why) in refusals {
        let _dns = w.dns(records);
        let (s, r) = w.call(Method::POST, &verify, a, None);
        assert_eq!((s, r["error"].as_str()), (400, Some("invalid_request")), "{records:?}: {r}");
        assert!(r["message"].as_str().unwrap().contains(why), "{records:?}: {r}");
    }
    // Nobody answering is a 400 too, not a 500.
    let (s, r) = w.call(Method::POST, &verify, a, None);
    assert_eq!(s, 400, "{r}");
    assert!(r["message"].as_str().unwrap().contains("could not be looked up"), "{r}");
    assert!(!w.audit_actions().contains(&"domain.verified".to_owned()));

    // Another organisation cannot see, verify, route or delete acme's domain.
    let g = w.globex.as_str();
    for (m, path, body) in [
        (Method::GET, base.clone(), None),
        (Method::POST, verify.clone(), None),
        (Method::PUT, base.clone(), Some(json!({"connector": null}))),
        (Method::DELETE, base.clone(), None),
        (Method::POST, format!("/api/v1/organisations/globex/domains/{id}/verify"), None),
        (Method::DELETE, format!("/api/v1/organisations/globex/domains/{id}"), None),
    ] {
        let (s, r) = w.call(m.clone(), &path, g, body);
        assert_eq!(s, 404, "{m} {path}: {r}");
    }

    // While nobody verified it, globex may claim it too (unverified).
    let (s, theirs) =
        w.call(Method::POST, "/api/v1/organisations/globex/domains", g, Some(json!({"domain": "acme.test"})));
    assert_eq!(s, 201, "{theirs}");
    let their_verify = format!("/api/v1/organisations/globex/domains/{}/verify", theirs["id"].as_str().unwrap());
    let their_value = theirs["txt_value"].as_str().unwrap().to_owned();
    assert_ne!(their_value, value, "each claim has its own token");

    // The right record, among others, verifies it.
    let dns = w.dns(&[("_idp-challenge.acme.test", "v=spf1 -all"), ("_idp-challenge.acme.test", value.as_str())]);
    let (s, r) = w.call(Method::POST, &verify, a, None);
    assert_eq!((s, r["verified"].as_bool()), (200, Some(true)), "{r}");
    assert!(r["verified_at"].is_string());
    assert!(w.audit_actions().contains(&"domain.verified".to_owned()));
    drop(dns);

    // Once acme verified it, globex can neither claim it again nor verify its claim, even with
    // its own record published.
    let (s, r) = w.call(Method::POST, "/api/v1/organisations/globex/domains", g, Some(json!({"domain": "acme.test"})));
    assert_eq!((s, r["error"].as_str()), (409, Some("conflict")), "{r}");
    let dns =
        w.dns(&[("_idp-challenge.acme.test", value.as_str()), ("_idp-challenge.acme.test", their_value.as_str())]);
    let (s, r) = w.call(Method::POST, &their_verify, g, None);
    assert_eq!((s, r["error"].as_str()), (409, Some("conflict")), "{r}");
    drop(dns);

    // Routed to one of acme's connectors, never to another organisation's or an unknown one.
    w.connector(g, "globex", "globex-sso");
    for bad in ["globex-sso", "nope"] {
        let (s, r) = w.call(Method::PUT, &base, a, Some(json!({"connector": bad})));
        assert_eq!(s, 400, "{bad}: {r}");
    }
    let (s, r) = w.call(Method::PUT, &base, a, Some(json!({"connector": "acme-sso"})));
    assert_eq!((s, r["connector"].as_str()), (200, Some("acme-sso")), "{r}");
    assert!(w.audit_actions().contains(&"domain.routed".to_owned()));
    assert_eq!(w.discover("Bob@ACME.test"), "/login/acme-sso?login_hint=Bob%40ACME.test");
    assert_eq!(w.discover("bob@eu.acme.test"), "/login?unknown_domain=1", "exact domain only");
    let login = client().get(w.server.url("/login")).send().unwrap().text().unwrap();
    assert!(login.contains("/login/discover"), "the login page offers discovery once a domain routes");

    let (s, r) = w.call(Method::GET, "/api/v1/organisations/acme/domains", a, None);
    assert_eq!((s, r["domains"].as_array().map(Vec::len)), (200, Some(1)), "{r}");

    // Deleting the connector un-routes the domain; deleting the domain frees it.
    let (s, _) = w.call(Method::DELETE, "/api/v1/organisations/acme/connectors/acme-sso", a, None);
    assert_eq!(s, 204);
    let (_, r) = w.call(Method::GET, &base, a, None);
    assert_eq!(r["connector"], Value::Null, "{r}");
    assert_eq!(w.discover("bob@acme.test"), "/login?unknown_domain=1");
    assert_eq!(w.call(Method::DELETE, &base, a, None).0, 204);
    assert_eq!(w.call(Method::GET, &base, a, None).0, 404);
    assert!(w.audit_actions().contains(&"domain.deleted".to_owned()));
    let _dns = w.dns(&[("_idp-challenge.acme.test", their_value.as_str())]);
    let (s, r) = w.call(Method::POST, &their_verify, g, None);
    assert_eq!((s, r["verified"].as_bool()), (200, Some(true)), "free again once acme let it go: {r}");
    assert!(!w.server.stderr().contains("panicked"));
}

#[test]
fn a_domain_verified_over_dns_routes_the_login_page_on_sqlite() {
    verify_and_route(TestDb::sqlite());
}

#[test]
fn a_domain_verified_over_dns_routes_the_login_page_on_postgres() {
    verify_and_route(TestDb::postgres());
}

/// acme claims gmail.com and never verifies it: nothing routes, even with the route forced
/// into the database behind the API's back.
#[test]
fn an_unverified_domain_routes_nothing() {
    let w = world(TestDb::sqlite());
    let a = w.acme.as_str();
    w.connector(a, "acme", "acme-sso");
    let (s, d) = w.call(Method::POST, "/api/v1/organisations/acme/domains", a, Some(json!({"domain": "gmail.com"})));
    assert_eq!(s, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let (s, r) = w.call(
        Method::PUT,
        &format!("/api/v1/organisations/acme/domains/{id}"),
        a,
        Some(json!({"connector": "acme-sso"})),
    );
    assert_eq!(s, 400, "{r}");
    assert_eq!(w.discover("someone@gmail.com"), "/login?unknown_domain=1");
    {
        use diesel::prelude::*;
        use idp::storage::schema::organisation_domains as d;
        let db = w._db.open();
        db.write(|c| {
            diesel::update(d::table.find(id))
                .set(d::connector_id.eq(Some("acme-sso")))
                .execute(c)
                .map_err(idp::storage::StorageError::from)
        })
        .unwrap();
    }
    assert_eq!(w.discover("someone@gmail.com"), "/login?unknown_domain=1");
    let login = client().get(w.server.url("/login")).send().unwrap().text().unwrap();
    assert!(!login.contains("/login/discover"), "no discovery form for an unverified route");
}

#[test]
fn malformed_domains_and_bodies_are_refused_and_change_nothing() {
    let w = world(TestDb::sqlite());
    let a = w.acme.as_str();
    let long_label = format!("{}.test", "a".repeat(64));
    let long_name = format!("{}.test", ["abcdefgh"; 40].join("."));
    let huge = "a".repeat(10_000);
    for body in [
        json!({"domain": ""}),
        json!({"domain": "localhost"}),
        json!({"domain": "a..test"}),
        json!({"domain": "-acme.test"}),
        json!({"domain": "acme_corp.test"}),
        json!({"domain": "bücher.test"}),
        json!({"domain": "192.168.1.1"}),
        json!({"domain": "bob@acme.test"}),
        json!({"domain": long_label}),
        json!({"domain": long_name}),
        json!({"domain": huge}),
        json!({"domain": 5}),
        json!({"domain": "acme.test", "verified": true}),
        json!({}),
    ] {
        let (s, r) = w.call(Method::POST, "/api/v1/organisations/acme/domains", a, Some(body.clone()));
        assert_eq!((s, r["error"].as_str()), (400, Some("invalid_request")), "{body}: {r}");
    }
    let (s, _) =
        // Over the 64 KiB limit, small enough to be sent whole before the 413 closes the
        // connection (2 MB raced it into a broken pipe under load).
        w.call(Method::POST, "/api/v1/organisations/acme/domains", a, Some(json!({"domain": "a".repeat(128 * 1024)})));
    assert_eq!(s, 413);
    let (_, r) = w.call(Method::GET, "/api/v1/organisations/acme/domains", a, None);
    assert_eq!(r["domains"], json!([]), "nothing was claimed: {r}");
    let (s, _) = w.call(Method::POST, "/api/v1/organisations/acme/domains", a, Some(json!({"domain": "acme.test"})));
    assert_eq!(s, 201);
    let (s, r) = w.call(Method::POST, "/api/v1/organisations/acme/domains", a, Some(json!({"domain": "ACME.test"})));
    assert_eq!(s, 409, "claimed twice: {r}");
    for path in [
        "/api/v1/organisations/acme/domains/not-a-uuid",
        "/api/v1/organisations/acme/domains/6f1f1b1e-0000-4000-8000-000000000000",
    ] {
        assert_eq!(w.call(Method::GET, path, a, None).0, 404, "{path}");
        assert_eq!(w.call(Method::POST, &format!("{path}/verify"), a, None).0, 404, "{path}");
        assert_eq!(w.call(Method::PUT, path, a, Some(json!({"connector": 7}))).0, 400, "{path}");
    }
    assert!(!w.server.stderr().contains("panicked"));
}

/// A project goes with its clients, tokens, memberships and two-factor policy, after its slug is
/// typed again; another organisation gets 404; the organisation and its other data stay.
fn delete_project(db: TestDb) {
    let w = world(db);
    let a = w.acme.as_str();
    let p = "/api/v1/organisations/acme/projects/billing";
    let (s, r) = w.call(
        Method::POST,
        &format!("{p}/clients"),
        a,
        Some(json!({"name": "Billing app", "redirect_uris": ["https://billing.example/cb"]})),
    );
    assert_eq!(s, 201, "{r}");
    let (s, r) = w.call(Method::PUT, &format!("{p}/mfa-policy"), a, Some(json!({"required": true})));
    assert_eq!(s, 200, "{r}");
    let args = [
        "token",
        "create",
        "--kind",
        "service",
        "--name",
        "ci",
        "--org",
        "acme",
        "--project",
        "billing",
        "--scopes",
        "projects_read",
    ];
    let service = format!("Bearer {}", cli(w.dir.path(), &w.env, &args).trim());
    assert_eq!(w.call(Method::GET, p, &service, None).0, 200);
    // A project token cannot delete its own project.
    let args = [
        "token",
        "create",
        "--kind",
        "service",
        "--name",
        "ci2",
        "--org",
        "acme",
        "--project",
        "billing",
        "--scopes",
        "projects_manage",
    ];
    let manager = format!("Bearer {}", cli(w.dir.path(), &w.env, &args).trim());
    assert_eq!(w.call(Method::DELETE, p, &manager, Some(json!({"confirm": "billing"}))).0, 403);

    assert_eq!(w.call(Method::DELETE, p, &w.globex, Some(json!({"confirm": "billing"}))).0, 404);
    for body in [json!({"confirm": "Billing"}), json!({}), json!({"confirm": "billing", "force": true})] {
        let (s, r) = w.call(Method::DELETE, p, a, Some(body.clone()));
        assert_eq!(s, 400, "{body}: {r}");
    }
    assert_eq!(w.call(Method::GET, p, a, None).0, 200, "still there");
    assert_eq!(w.call(Method::DELETE, p, a, Some(json!({"confirm": "billing"}))).0, 204);
    assert_eq!(w.call(Method::GET, p, a, None).0, 404);
    assert_eq!(w.call(Method::GET, p, &service, None).0, 401, "its tokens went with it");
    assert_eq!(w.call(Method::GET, "/api/v1/organisations/acme", a, None).0, 200);
    assert!(w.audit_actions().contains(&"project.deleted".to_owned()));
    let db = w._db.open();
    let counts = db
        .read(|c| {
            use diesel::prelude::*;
            use idp::storage::schema::{api_tokens, oauth_clients, project_members, project_mfa_policies, projects};
            let n = |r: Result<i64, diesel::result::Error>| r.map_err(idp::storage::StorageError::from);
            Ok::<_, idp::storage::StorageError>((
                n(projects::table.count().get_result(c))?,
                n(oauth_clients::table.count().get_result(c))?,
                n(project_mfa_policies::table.count().get_result(c))?,
                n(project_members::table.count().get_result(c))?,
                n(api_tokens::table.filter(api_tokens::project_id.is_not_null()).count().get_result(c))?,
            ))
        })
        .unwrap();
    assert_eq!(counts, (0, 0, 0, 0, 0));
}

#[test]
fn deleting_a_project_deletes_its_data_on_sqlite() {
    delete_project(TestDb::sqlite());
}

#[test]
fn deleting_a_project_deletes_its_data_on_postgres() {
    delete_project(TestDb::postgres());
}
