//! Passkeys and security keys end to end, in headless Chromium with a DevTools virtual
//! authenticator (tests/peers/browser/webauthn.mjs), under idp's real CSP, on SQLite and
//! PostgreSQL: a user signs in through the upstream OIDC peer (oidc-provider) to an application
//! whose project requires a second factor, is sent to enrol and registers a passkey, signs out,
//! signs in again with the passkey alone (no user name) and the application gets its code; then
//! registers a security key on an authenticator without user verification and uses it as the
//! second step after the upstream login. The audit log is checked after.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use harness::peers::{UpstreamClient, oidc_upstream};
use harness::{Server, TestDb, free_port, idp, run, text};
use idp::storage::audit::AuditRepository;

const SECRET: &str = "broker-secret-0123456789abcdef";

fn scenario(db: TestDb, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // localhost, not 127.0.0.1: an IP address is not a valid WebAuthn RP id.
    let base = format!("http://localhost:{port}");
    let upstream = oidc_upstream(&[UpstreamClient {
        client_id: "idp-broker",
        client_secret: SECRET,
        redirect_uris: vec![format!("{base}/callback/up")],
    }]);
    let app_redirect = format!("{base}/healthz");
    let toml = format!(
        "signup = \"open\"\n\n[[connectors]]\nid = \"up\"\ntype = \"oidc\"\nname = \"Upstream\"\nissuer = \"{}\"\n\
         client_id = \"idp-broker\"\nclient_secret = \"{SECRET}\"\n\n[[clients]]\nclient_id = \"app\"\n\
         client_secret = \"app-secret-0123456789abcdef0123456789abcdef\"\nredirect_uris = [\"{app_redirect}\"]\nproject = \"acme/billing\"\n",
        upstream.base
    );
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    let cfg = config.display().to_string();
    let url = db.url();
    let cli = |args: &[&str]| {
        let out = run(idp(dir.path()).args(args).env("IDP_CONFIG", &cfg).env("IDP_DATABASE_URL", &url));
        assert!(out.status.success(), "idp {args:?}: {}", text(&out));
    };
    cli(&["org", "create", "--name", "Acme", "--slug", "acme"]);
    cli(&["project", "create", "--org", "acme", "--name", "Billing", "--slug", "billing"]);
    cli(&["project", "set-mfa", "--org", "acme", "--project", "billing", "--require", "--methods", "webauthn"]);
    let server = Server::start_at(
        dir.path(),
        port,
        &[("IDP_CONFIG", cfg.as_str()), ("IDP_DATABASE_URL", url.as_str()), ("IDP_PUBLIC_URL", base.as_str())],
    );
    upstream.get("/__test/set-user?user=alice");

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let driver = root.join("tests/peers/browser");
    assert!(
        driver.join("node_modules/playwright-core").exists() && std::path::Path::new("/usr/bin/chromium").exists(),
        "headless Chromium is not installed: run ./scripts/test (it installs chromium and tests/peers/browser)"
    );
    let out_dir = root.join("tests/artifacts").join(name);
    std::fs::create_dir_all(&out_dir).unwrap();
    let redirect = url::form_urlencoded::byte_serialize(app_redirect.as_bytes()).collect::<String>();
    let authorize = format!(
        "/authorize?response_type=code&client_id=app&redirect_uri={redirect}&scope=openid%20email&state=s1\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    );
    let out = std::process::Command::new("node")
        .arg(driver.join("webauthn.mjs"))
        .args(["--base", &base, "--connector", "up", "--expect", "alice@example.test", "--authorize", &authorize])
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
        panic!("no JSON from the driver: {stdout} {}\n{}", String::from_utf8_lossy(&out.stderr), server.stderr())
    });
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(out.status.success() && v["ok"] == true, "{v:#}\nserver: {}", server.stderr());
    assert_eq!(v["console_errors"].as_array().map(Vec::len), Some(0), "{v:#}");
    let amr = |key: &str| -> Vec<String> {
        v[key].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
    };
    // A passkey alone is a multi-factor login; a security key is the upstream login's second step.
    assert_eq!(amr("amr_passkey"), ["hwk", "mfa"], "{v:#}");
    assert_eq!(amr("amr_security_key"), ["fed", "hwk", "mfa"], "{v:#}");
    let code = v["code_redirect"].as_str().unwrap();
    assert!(code.starts_with(&format!("{app_redirect}?code=")) && code.contains("state=s1"), "{code}");
    for shot in ["enrol_page", "passkey_home", "second_step", "signed_in"] {
        assert!(std::path::Path::new(v[shot].as_str().unwrap()).exists(), "{shot} screenshot kept");
    }

    // Audited: two registrations, two uses, one removal, and the logins.
    let audit = db.open();
    let count = |action: &str| audit.read(|c| c.audit_events(Some(action), 100)).unwrap().len();
    assert_eq!(count("mfa.webauthn_registered"), 2);
    assert_eq!(count("mfa.webauthn_used"), 2);
    assert_eq!(count("mfa.webauthn_removed"), 1);
    let logins = audit.read(|c| c.audit_events(Some("login.succeeded"), 100)).unwrap();
    let details: Vec<String> = logins.iter().filter_map(|e| e.details.clone()).collect();
    assert!(details.iter().any(|d| d.contains("\"method\":\"passkey\"")), "{details:?}");
    assert!(details.iter().any(|d| d.contains("\"second_factor\":\"webauthn\"")), "{details:?}");
    drop(server);
}

#[test]
fn passkey_enrolment_login_and_security_key_in_a_real_browser_on_sqlite() {
    scenario(TestDb::sqlite(), "webauthn-sqlite");
}

#[test]
fn passkey_enrolment_login_and_security_key_in_a_real_browser_on_postgres() {
    scenario(TestDb::postgres(), "webauthn-postgres");
}
