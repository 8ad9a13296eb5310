//! End-to-end tests of the `idp` binary: zero-config start, PostgreSQL, HTTP hygiene, bad
//! configuration and keys, the CLI, and master-key rotation while serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use harness::{Server, TestDb, client, idp, run, text};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn zero_config_start_creates_a_private_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let data = dir.path().join("idp-data");
    assert_eq!(mode(&data), 0o700);
    for f in std::fs::read_dir(&data).unwrap() {
        let p = f.unwrap().path();
        assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
    }
    assert!(data.join("master.key").exists() && data.join("idp.sqlite").exists());
    let ready = client().get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    // No contact configured: security.txt is absent rather than wrong.
    assert_eq!(client().get(server.url("/.well-known/security.txt")).send().unwrap().status(), 404);
}

#[test]
fn serves_on_postgresql_with_the_same_schema() {
    let db = TestDb::postgres();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("IDP_DATABASE_URL", &db.url())]);
    assert_eq!(client().get(server.url("/readyz")).send().unwrap().status(), 200);
    assert!(!dir.path().join("idp-data/idp.sqlite").exists(), "no SQLite file when on PostgreSQL");
    let out = run(idp(dir.path()).args(["org", "list"]).env("IDP_DATABASE_URL", db.url()));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn every_response_carries_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("IDP_SECURITY_CONTACT", "mailto:security@example.test")]);
    for path in ["/healthz", "/login", "/no/such/page", "/.well-known/security.txt"] {
        let r = client().get(server.url(path)).send().unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert!(h.contains_key("x-request-id"), "{path}");
        assert!(!h.contains_key("strict-transport-security"), "no HSTS on plain-http loopback");
    }
    let txt = client().get(server.url("/.well-known/security.txt")).send().unwrap().text().unwrap();
    assert!(txt.contains("Contact: mailto:security@example.test") && txt.contains("Expires: "), "{txt}");
}

#[test]
fn bad_requests_get_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[("IDP_HTTP_MAX_BODY_BYTES", "2048"), ("IDP_PASSWORD_LOGIN", "true"), ("IDP_SIGNUP", "open")],
    );
    let c = client();
    assert_eq!(c.get(server.url("/definitely/not/here")).send().unwrap().status(), 404);
    // A non-UUID id in a path is a 404, before anything else is looked at.
    for id in ["not-a-uuid", "1", "..%2f..%2fetc", "6F1C2A52-9A43-4A59-8F6B-9C5D3F0F3A11"] {
        let r = c.post(server.url(&format!("/sessions/{id}/end"))).send().unwrap();
        assert_eq!(r.status(), 404, "{id}");
    }
    // Pages that need a session send the browser to the login page.
    let r = c.get(server.url("/sessions")).send().unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?return_to=%2Fsessions");
    // Oversized bodies: declared, and streamed without a length.
    let big = "a".repeat(10_000);
    let r = c
        .post(server.url("/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    // Streamed without a length: /signup reads its form before anything else looks at it.
    let chunks = futures_stream(big.into_bytes());
    let r = c
        .post(server.url("/signup"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(chunks)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    // A cross-site form post is refused outright.
    let r = c.post(server.url("/logout")).header("origin", "https://evil.example").body("csrf_token=x").send().unwrap();
    assert_eq!(r.status(), 403);
    let r = c.post(server.url("/logout")).header("sec-fetch-site", "cross-site").body("csrf_token=x").send().unwrap();
    assert_eq!(r.status(), 403);
    // `Origin: null` (a referrer policy or sandbox withholding it) passes only as same-origin.
    let null_origin = |fetch_site: Option<&str>| {
        let mut req = c.post(server.url("/logout")).header("origin", "null").body("csrf_token=x");
        if let Some(site) = fetch_site {
            req = req.header("sec-fetch-site", site);
        }
        req.send().unwrap().status()
    };
    assert_eq!(null_origin(Some("cross-site")), 403);
    assert_eq!(null_origin(None), 403);
    assert_eq!(null_origin(Some("same-origin")), 303, "on to the next layer: no session, so to the login page");
    // Internal details never reach the client.
    let body = c.get(server.url("/sessions/x/end")).send().unwrap().text().unwrap();
    assert!(!body.to_lowercase().contains("uuid") && !body.contains("diesel"), "{body}");
}

/// A body without Content-Length, so only the extractor's limit can stop it.
fn futures_stream(bytes: Vec<u8>) -> reqwest::blocking::Body {
    reqwest::blocking::Body::new(std::io::Cursor::new(bytes))
}

#[test]
fn login_endpoints_are_rate_limited_per_ip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("IDP_RATE_LIMIT_PER_IP", "3"), ("IDP_RATE_LIMIT_WINDOW", "1h")]);
    let c = client();
    for _ in 0..3 {
        assert_eq!(c.get(server.url("/login")).send().unwrap().status(), 200);
    }
    let r = c.get(server.url("/login")).send().unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    assert_eq!(c.get(server.url("/healthz")).send().unwrap().status(), 200, "only auth endpoints are limited");
}

#[test]
fn config_check_names_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "no_such_key = 1\n").unwrap();
    let out = run(idp(dir.path()).args(["config", "check", "--config"]).arg(&bad));
    assert!(!out.status.success());
    assert!(text(&out).contains("no_such_key"), "{}", text(&out));

    std::fs::write(&bad, "bind = [\n").unwrap();
    let out = run(idp(dir.path()).args(["config", "check", "--config"]).arg(&bad));
    assert!(!out.status.success() && text(&out).contains("bad.toml"), "{}", text(&out));

    let out =
        run(idp(dir.path()).args(["config", "check"]).env("IDP_BIND", "nowhere").env("IDP_AUDIT_RETENTION_DAYS", "0"));
    let t = text(&out);
    assert!(!out.status.success() && t.contains("config: bind") && t.contains("config: audit.retention_days"), "{t}");

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "bind = \"127.0.0.1:9999\"\n[session]\nidle_timeout = \"15m\"\n").unwrap();
    let out = run(idp(dir.path()).args(["config", "check"]).env("IDP_CONFIG", &good));
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dir.path().join("idp-data").exists(), "config check starts nothing");
}

#[test]
fn an_unreachable_database_stops_the_start_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = harness::free_port();
    let out = run(idp(dir.path())
        .arg("serve")
        .env("IDP_DATABASE_URL", format!("postgres://postgres:hunter2@127.0.0.1:{port}/idp")));
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("cannot open the database"), "{t}");
    assert!(!t.contains("hunter2"), "the password leaked: {t}");
}

#[test]
fn a_missing_or_wrong_master_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("idp-data/master.key");
    drop(Server::start(dir.path(), &[]));
    let original = std::fs::read(&key).unwrap();

    std::fs::remove_file(&key).unwrap();
    let out = run(idp(dir.path()).args(["org", "list"]));
    assert!(!out.status.success());
    assert!(text(&out).contains("is missing") && text(&out).contains("will not generate"), "{}", text(&out));
    assert!(!key.exists(), "a new key was generated over sealed data");

    // Another valid key: refused, naming the key the data needs.
    let other = tempfile::tempdir().unwrap();
    drop(Server::start(other.path(), &[]));
    std::fs::copy(other.path().join("idp-data/master.key"), &key).unwrap();
    let out = run(idp(dir.path()).args(["org", "list"]));
    assert!(!out.status.success() && text(&out).contains("wrong master key"), "{}", text(&out));

    std::fs::write(&key, "garbage\n").unwrap();
    let out = run(idp(dir.path()).args(["org", "list"]));
    assert!(!out.status.success() && text(&out).contains("line 1"), "{}", text(&out));

    std::fs::write(&key, &original).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(idp(dir.path()).args(["org", "list"]));
    assert!(!out.status.success() && text(&out).contains("chmod 600"), "{}", text(&out));

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run(idp(dir.path()).args(["org", "list"]));
    assert!(out.status.success(), "{}", text(&out));

    // The key in the environment works the same way.
    let env_key = String::from_utf8(original).unwrap();
    std::fs::remove_file(&key).unwrap();
    let entries: Vec<&str> = env_key.lines().filter(|l| l.starts_with("idp-master-v1:")).collect();
    let out = run(idp(dir.path()).args(["org", "list"]).env("IDP_MASTER_KEY", entries.join(",")));
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn cli_creates_and_lists_organisations_and_projects() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(idp(dir.path()).args(["org", "create", "--name", "Acme Corp"]));
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let id = line.split('\t').next().unwrap().to_owned();
    assert!(id.parse::<uuid::Uuid>().is_ok(), "{line}");
    let out = run(idp(dir.path()).args(["project", "create", "--org", "acme-corp", "--name", "Billing"]));
    assert!(out.status.success(), "{}", text(&out));
    let out = run(idp(dir.path()).args(["project", "create", "--org", &id, "--name", "Billing"]));
    assert!(!out.status.success() && text(&out).contains("already exists"), "{}", text(&out));
    let out = run(idp(dir.path()).args(["org", "list"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme-corp\tAcme Corp"));
    let out = run(idp(dir.path()).args(["org", "create", "--name", "X", "--owner", "not-a-uuid"]));
    assert!(!out.status.success());
    let out = run(idp(dir.path()).args(["user", "list"]));
    assert!(out.status.success(), "{}", text(&out));
    for cmd in
        [&["--help"][..], &["serve", "--help"], &["keys", "rotate-master", "--help"], &["org", "create", "--help"]]
    {
        let out = run(idp(dir.path()).args(cmd));
        assert!(out.status.success() && !out.stdout.is_empty(), "{cmd:?}");
    }
}

#[test]
fn master_key_rotates_while_the_server_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let key = dir.path().join("idp-data/master.key");
    let before = std::fs::read_to_string(&key).unwrap();
    let out = run(idp(dir.path()).args(["keys", "rotate-master"]));
    assert!(out.status.success(), "{}", text(&out));
    let after = std::fs::read_to_string(&key).unwrap();
    assert_ne!(before, after);
    assert_eq!(after.lines().filter(|l| l.starts_with("idp-master-v1:")).count(), 1, "the old key is gone");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(client().get(server.url("/readyz")).send().unwrap().status(), 200);
    drop(server);
    // Everything sealed opens with the new key alone.
    let server = Server::start(dir.path(), &[]);
    assert_eq!(client().get(server.url("/readyz")).send().unwrap().status(), 200);
}

#[path = "foundation_sessions.rs"]
mod sessions;

#[test]
fn pages_carry_the_operators_branding() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.svg");
    std::fs::write(&logo, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>").unwrap();
    let logo_path = logo.display().to_string();
    let server = Server::start(
        dir.path(),
        &[
            ("IDP_PRODUCT_NAME", "Acme ID"),
            ("IDP_BRANDING_ACCENT_COLOUR", "#ff6600"),
            ("IDP_BRANDING_LOGO_FILE", &logo_path),
        ],
    );
    let page = client().get(server.url("/login")).send().unwrap().text().unwrap();
    assert!(page.contains("Sign in to Acme ID") && page.contains("src=\"/static/logo\""), "{page}");
    let css = client().get(server.url("/static/theme.css")).send().unwrap().text().unwrap();
    assert!(css.contains("--accent: #ff6600"), "{css}");
    let r = client().get(server.url("/static/logo")).send().unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    for (k, v) in
        [("IDP_BRANDING_ACCENT_COLOUR", "red; } body { display:none"), ("IDP_BRANDING_LOGO_FILE", "/etc/hostname")]
    {
        let out = run(idp(dir.path()).args(["config", "check"]).env(k, v));
        assert!(!out.status.success() && text(&out).contains("branding."), "{}", text(&out));
    }
}
