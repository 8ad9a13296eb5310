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
