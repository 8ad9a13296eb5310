//! idp as an OpenID Provider end to end: a scripted browser signs in through idp, which itself
//! brokers to the oidc-provider upstream; openid-client (the certified RP) exchanges the code
//! with PKCE, refreshes and builds the logout URL; jose verifies the tokens against idp's JWKS.
//! The RFC 9700 negatives are each their own test (more in idp/src/oidc/tests.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::path::Path;
use std::process::Command;

use harness::peers::{Browser, Peer, UpstreamClient, oidc_upstream};
use harness::{Server, TestDb, client, free_port};

const UP_SECRET: &str = "broker-secret-0123456789abcdef";
const RP_SECRET: &str = "relying-party-secret-0123456789abcdef";

struct World {
    _db: Option<TestDb>,
    _dir: tempfile::TempDir,
    server: Server,
    _upstream: Peer,
    rp: String,
    /// The server's environment, for running the CLI against the same deployment.
    env: Vec<(String, String)>,
}

fn world() -> World {
    world_on(None)
}

fn world_on(db: Option<TestDb>) -> World {
    world_with(db, &[])
}

fn world_with(db: Option<TestDb>, extra_env: &[(&str, &str)]) -> World {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let upstream = oidc_upstream(&[UpstreamClient {
        client_id: "idp-broker",
        client_secret: UP_SECRET,
        redirect_uris: vec![format!("{base}/callback/up")],
    }]);
    // Nothing listens there: the browser stops at the redirect, as an attacker holding it would.
    let rp = format!("http://127.0.0.1:{}", free_port());
    let toml = format!(
        "signup = \"open\"\n\n[[connectors]]\nid = \"up\"\ntype = \"oidc\"\nname = \"Upstream\"\nissuer = \"{}\"\n\
         client_id = \"idp-broker\"\nclient_secret = \"{UP_SECRET}\"\n\n[[clients]]\nclient_id = \"rp\"\n\
         client_secret_env = \"RP_SECRET\"\nredirect_uris = [\"{rp}/cb\"]\npost_logout_redirect_uris = [\"{rp}/bye\"]\n\n\
         [[clients]]\nclient_id = \"other\"\nclient_secret_env = \"RP_SECRET\"\nredirect_uris = [\"{rp}/cb\"]\n\n\
         [[clients]]\nclient_id = \"legacy\"\nclient_secret_env = \"RP_SECRET\"\nredirect_uris = [\"{rp}/cb\"]\nrequire_pkce = false\n\n\
         [[clients]]\nclient_id = \"partner\"\nname = \"Partner App\"\nclient_secret_env = \"RP_SECRET\"\n\
         redirect_uris = [\"{rp}/cb\"]\nfirst_party = false\n",
        upstream.base
    );
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    let db_url = db.as_ref().map(TestDb::url);
    let mut env =
        vec![("IDP_CONFIG", config.to_str().unwrap()), ("RP_SECRET", RP_SECRET), ("IDP_RATE_LIMIT_PER_IP", "10000")];
    if let Some(url) = &db_url {
        env.push(("IDP_DATABASE_URL", url));
    }
    env.extend_from_slice(extra_env);
    let server = Server::start_at(dir.path(), port, &env);
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    World { _db: db, _dir: dir, server, _upstream: upstream, rp, env }
}

fn rp_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/rp")
}

impl World {
    fn node(&self, mode: &str, env: &[(&str, &str)]) -> serde_json::Value {
        assert!(
            rp_dir().join("node_modules/openid-client").exists(),
            "tests/peers/rp is not installed: run ./scripts/test (or npm ci --prefix tests/peers/rp)"
        );
        let out = Command::new("node")
            .arg(rp_dir().join("rp.mjs"))
            .arg(mode)
            .env("ISSUER", &self.server.base)
            .env("CLIENT_ID", "rp")
            .env("CLIENT_SECRET", RP_SECRET)
            .env("REDIRECT_URI", format!("{}/cb", self.rp))
            .env("POST_LOGOUT_REDIRECT_URI", format!("{}/bye", self.rp))
            .envs(env.iter().copied())
            .output()
            .expect("node must be installed");
        assert!(out.status.success(), "rp.mjs {mode}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Signs the browser in at idp through the upstream and returns the authorize redirect to
    /// the RP's callback, with what the RP must keep.
    fn sign_in(&self, browser: &mut Browser) -> (String, serde_json::Value) {
        let start = self.node("start", &[]);
        let login = browser.open(start["url"].as_str().unwrap());
        assert_eq!(login.status, 200);
        let url = url::Url::parse(&login.url).unwrap();
        assert_eq!(url.path(), "/login", "no session: idp asks to sign in first");
        let return_to = url.query_pairs().find(|(k, _)| k == "return_to").unwrap().1.into_owned();
        assert!(return_to.starts_with("/authorize?"), "{return_to}");
        let enc: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        let callback = browser.open_until(&self.server.url(&format!("/login/up?return_to={enc}")), &self.rp);
        (callback, start)
    }

    fn signed_in(&self, browser: &mut Browser) -> bool {
        browser.open(&self.server.url("/sessions")).url.ends_with("/sessions")
    }
}

#[test]
fn openid_client_completes_code_pkce_refresh_and_logout_and_jose_verifies_tokens() {
    let w = world();
    let mut b = Browser::new();
    let (callback, start) = w.sign_in(&mut b);
    assert!(callback.contains("iss="), "RFC 9207 iss in the authorization response: {callback}");
    let done = w.node(
        "finish",
        &[
            ("CALLBACK", &callback),
            ("VERIFIER", start["verifier"].as_str().unwrap()),
            ("STATE", start["state"].as_str().unwrap()),
            ("NONCE", start["nonce"].as_str().unwrap()),
        ],
    );
    assert_eq!(done["email"], "alice@example.test", "{done}");
    assert_eq!(done["id_verified"], true, "{done}");
    assert_eq!(done["access_verified"], true, "{done}");
    assert_eq!(done["userinfo"]["sub"], done["sub"]);
    assert_eq!(done["userinfo"]["email"], "alice@example.test");
    assert_eq!(done["tamper_refused"], true);
    assert_eq!(done["refreshed"], true, "{done}");
    assert_eq!(done["refresh_reuse_refused"], true, "{done}");
    // The reuse revoked the whole family: the refreshed access token is dead too.
    let r = client()
        .get(w.server.url("/userinfo"))
        .bearer_auth(done["refreshed_access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    // RP-initiated logout back to the registered URI, with state; the session is gone.
    assert!(w.signed_in(&mut b));
    let bye = b.open_until(done["logout_url"].as_str().unwrap(), &format!("{}/bye", w.rp));
    assert!(bye.contains("state=bye-state"), "{bye}");
    assert!(!w.signed_in(&mut b), "the session survived the logout");
}

#[test]
fn post_logout_redirect_uri_not_registered_is_refused_and_ends_nothing() {
    let w = world();
    let mut b = Browser::new();
    let (callback, start) = w.sign_in(&mut b);
    let done = w.node(
        "finish",
        &[
            ("CALLBACK", &callback),
            ("VERIFIER", start["verifier"].as_str().unwrap()),
            ("STATE", start["state"].as_str().unwrap()),
            ("NONCE", start["nonce"].as_str().unwrap()),
        ],
    );
    let mut url = url::Url::parse(done["logout_url"].as_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "post_logout_redirect_uri" { "https://evil.example/bye".into() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    let r = client().get(url.as_str()).header("cookie", "x=y").send().unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
    let page = b.open(url.as_str());
    assert_eq!(page.status, 400);
    assert!(w.signed_in(&mut b), "a refused logout ended the session");
}

#[test]
fn introspection_by_an_unauthenticated_caller_is_refused() {
    let w = world();
    for auth in [None, Some(("rp", "wrong-secret")), Some(("nobody", RP_SECRET))] {
        let mut req = client().post(w.server.url("/introspect")).form(&[("token", "anything")]);
        if let Some((id, secret)) = auth {
            req = req.basic_auth(id, Some(secret));
        }
        let r = req.send().unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: serde_json::Value = r.json().unwrap();
        assert_eq!(body["error"], "invalid_client");
    }
    let r = client()
        .post(w.server.url("/introspect"))
        .basic_auth("rp", Some(RP_SECRET))
        .form(&[("token", "x")])
        .send()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["active"], false);
}

#[test]
fn redirect_uri_variants_are_refused_at_authorize() {
    let w = world();
    let good = format!("{}/cb", w.rp);
    let port: u16 = w.rp.rsplit(':').next().unwrap().parse().unwrap();
    for bad in [
        format!("{good}/../evil"),
        format!("{good}?x=1"),
        format!("http://evil.example:{port}/cb"),
        format!("https://127.0.0.1:{port}/cb"),
        format!("http://127.0.0.1:{}/cb", port.wrapping_add(1)),
        format!("{good}/"),
    ] {
        let enc: String = url::form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        let r = client()
            .get(w.server.url(&format!(
                "/authorize?response_type=code&client_id=rp&scope=openid&redirect_uri={enc}&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
            )))
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none(), "{bad}: redirected");
    }
}

#[test]
fn discovery_and_jwks_are_published() {
    let w = world();
    let meta: serde_json::Value =
        client().get(w.server.url("/.well-known/openid-configuration")).send().unwrap().json().unwrap();
    assert_eq!(meta["issuer"], w.server.base);
    assert_eq!(meta["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    let jwks: serde_json::Value = client().get(meta["jwks_uri"].as_str().unwrap()).send().unwrap().json().unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["alg"] == "RS256"));
    assert!(keys.iter().all(|k| k.get("d").is_none()), "a private member in the JWKS");
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

impl World {
    /// A browser signed in at idp (through the upstream).
    fn browser(&self) -> Browser {
        let mut b = Browser::new();
        assert_eq!(b.open(&self.server.url("/login/up")).status, 200);
        assert!(self.signed_in(&mut b));
        b
    }

    /// The redirect `/authorize` answers with for `client`, given extra query parameters.
    fn authorize(&self, b: &mut Browser, client_id: &str, extra: &str) -> url::Url {
        let cb: String = url::form_urlencoded::byte_serialize(format!("{}/cb", self.rp).as_bytes()).collect();
        let u = self.server.url(&format!(
            "/authorize?response_type=code&client_id={client_id}&scope=openid%20offline_access&state=s1&redirect_uri={cb}{extra}"
        ));
        url::Url::parse(&b.open_until(&u, &self.rp)).unwrap()
    }

    fn code(&self, b: &mut Browser, client_id: &str, extra: &str) -> String {
        let u = self.authorize(b, client_id, extra);
        u.query_pairs().find(|(k, _)| k == "code").unwrap_or_else(|| panic!("no code: {u}")).1.into_owned()
    }

    fn token(&self, client_id: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let r =
            client().post(self.server.url("/token")).basic_auth(client_id, Some(RP_SECRET)).form(form).send().unwrap();
        (r.status().as_u16(), r.json().unwrap())
    }

    fn redeem(&self, client_id: &str, code: &str, verifier: Option<&str>) -> (u16, serde_json::Value) {
        let cb = format!("{}/cb", self.rp);
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", cb.as_str())];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        self.token(client_id, &form)
    }

    fn userinfo_status(&self, access_token: &str) -> u16 {
        client().get(self.server.url("/userinfo")).bearer_auth(access_token).send().unwrap().status().as_u16()
    }
}

fn error_of(u: &url::Url) -> String {
    assert!(u.query_pairs().all(|(k, _)| k != "code"), "a code was issued: {u}");
    u.query_pairs().find(|(k, _)| k == "error").unwrap().1.into_owned()
}

fn refused(r: &(u16, serde_json::Value)) {
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert_eq!(r.1["error"], "invalid_grant");
    assert!(r.1.get("access_token").is_none() && r.1.get("id_token").is_none());
}

#[test]
fn pkce_missing_is_refused() {
    let w = world();
    let mut b = w.browser();
    assert_eq!(error_of(&w.authorize(&mut b, "rp", "")), "invalid_request");
}

#[test]
fn pkce_plain_is_refused() {
    let w = world();
    let mut b = w.browser();
    let u = w.authorize(&mut b, "rp", &format!("&code_challenge={VERIFIER}&code_challenge_method=plain"));
    assert_eq!(error_of(&u), "invalid_request");
    let u = w.authorize(&mut b, "rp", &format!("&code_challenge={CHALLENGE}"));
    assert_eq!(error_of(&u), "invalid_request", "no method means plain");
}

#[test]
fn pkce_downgrade_is_refused() {
    let w = world();
    let mut b = w.browser();
    // A code issued without a challenge, redeemed with a verifier: the attacker's downgrade.
    let code = w.code(&mut b, "legacy", "");
    refused(&w.redeem("legacy", &code, Some(VERIFIER)));
    // A code issued with a challenge, redeemed without the verifier.
    let code = w.code(&mut b, "rp", &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"));
    refused(&w.redeem("rp", &code, None));
}

#[test]
fn code_redeemed_twice_revokes_what_the_first_issued() {
    let w = world();
    let mut b = w.browser();
    let code = w.code(&mut b, "rp", &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"));
    let (status, first) = w.redeem("rp", &code, Some(VERIFIER));
    assert_eq!(status, 200, "{first}");
    let at = first["access_token"].as_str().unwrap();
    assert_eq!(w.userinfo_status(at), 200);
    refused(&w.redeem("rp", &code, Some(VERIFIER)));
    assert_eq!(w.userinfo_status(at), 401, "the first redemption's access token still works");
    let rt = first["refresh_token"].as_str().unwrap();
    refused(&w.token("rp", &[("grant_type", "refresh_token"), ("refresh_token", rt)]));
}

#[test]
fn code_redeemed_by_another_client_is_refused() {
    let w = world();
    let mut b = w.browser();
    let code = w.code(&mut b, "rp", &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"));
    refused(&w.redeem("other", &code, Some(VERIFIER)));
}

#[test]
fn refresh_token_reused_revokes_the_family() {
    let w = world();
    let mut b = w.browser();
    let code = w.code(&mut b, "rp", &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"));
    let (_, first) = w.redeem("rp", &code, Some(VERIFIER));
    let rt1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = w.token("rp", &[("grant_type", "refresh_token"), ("refresh_token", rt1)]);
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap();
    refused(&w.token("rp", &[("grant_type", "refresh_token"), ("refresh_token", rt1)]));
    refused(&w.token("rp", &[("grant_type", "refresh_token"), ("refresh_token", rt2)]));
    assert_eq!(w.userinfo_status(second["access_token"].as_str().unwrap()), 401);
}

#[test]
fn prompt_none_without_a_session_answers_login_required() {
    let w = world();
    let mut b = Browser::new();
    let u = w.authorize(&mut b, "rp", &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256&prompt=none"));
    assert_eq!(error_of(&u), "login_required");
    assert_eq!(u.query_pairs().find(|(k, _)| k == "iss").unwrap().1, w.server.base.as_str());
}

/// The single-use and family checks on PostgreSQL too.
#[test]
fn replays_revoke_on_postgres() {
    let w = world_on(Some(TestDb::postgres()));
    let mut b = w.browser();
    let code = w.code(&mut b, "rp", &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"));
    let (status, first) = w.redeem("rp", &code, Some(VERIFIER));
    assert_eq!(status, 200, "{first}");
    let rt1 = first["refresh_token"].as_str().unwrap();
    let (status, second) = w.token("rp", &[("grant_type", "refresh_token"), ("refresh_token", rt1)]);
    assert_eq!(status, 200, "{second}");
    refused(&w.token("rp", &[("grant_type", "refresh_token"), ("refresh_token", rt1)]));
    assert_eq!(w.userinfo_status(second["access_token"].as_str().unwrap()), 401);
    let code = w.code(&mut b, "rp", &format!("&code_challenge={CHALLENGE}&code_challenge_method=S256"));
    let (status, first) = w.redeem("rp", &code, Some(VERIFIER));
    assert_eq!(status, 200, "{first}");
    refused(&w.redeem("rp", &code, Some(VERIFIER)));
    assert_eq!(w.userinfo_status(first["access_token"].as_str().unwrap()), 401);
}

#[test]
fn token_endpoint_answers_in_oauth_terms() {
    let w = world();
    let r = client()
        .post(w.server.url("/token"))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<serde_json::Value>().unwrap()["error"], "invalid_request");
    let (status, body) = w.token("rp", &[("grant_type", "password")]);
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));
    let (status, body) = w.token("rp", &[("grant_type", "client_credentials")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let r = client()
        .post(w.server.url("/token"))
        .basic_auth("rp", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    let r = client()
        .post(w.server.url("/revoke"))
        .basic_auth("rp", Some(RP_SECRET))
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(w.server.url("/introspect"))
        .basic_auth("rp", Some(RP_SECRET))
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().unwrap()["active"], false, "revoked");
}

impl World {
    fn jwks_kids(&self) -> Vec<String> {
        let jwks: serde_json::Value = client().get(self.server.url("/jwks")).send().unwrap().json().unwrap();
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    }

    fn rotate_signing(&self, extra: &[&str]) -> Vec<String> {
        let out = harness::run(
            harness::idp(self._dir.path())
                .args(["keys", "rotate-signing"])
                .args(extra)
                .envs(self.env.iter().map(|(k, v)| (k, v))),
        );
        assert!(out.status.success(), "{}", harness::text(&out));
        // "new ES256 signing key <kid> signs from ..."
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("new ").and_then(|l| l.split(' ').nth(3)).map(str::to_owned))
            .collect()
    }

    fn verify(&self, tokens: &[&serde_json::Value]) -> Vec<serde_json::Value> {
        let t = serde_json::to_string(tokens).unwrap();
        self.node("verify", &[("TOKENS", &t)]).as_array().unwrap().clone()
    }

    fn refresh(&self, last: &serde_json::Value) -> serde_json::Value {
        self.node("refresh", &[("REFRESH_TOKEN", last["refresh_token"].as_str().unwrap())])
    }
}

/// Polls `f` for up to `secs` seconds; the rotation's steps happen on the server's own timer.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

fn kid(v: &serde_json::Value, which: &str) -> String {
    assert_eq!(v[which]["ok"], true, "{v}");
    v[which]["kid"].as_str().unwrap().to_owned()
}

#[test]
fn jose_verifies_tokens_before_during_and_after_a_signing_key_rotation() {
    // Keys reload every second and JWKS is cached for two: a forced rotation publishes its key
    // 2 × (1 s + 2 s) = 6 s before it signs.
    let w = world_with(None, &[("IDP_TOKENS_SIGNING_KEY_RELOAD", "1s"), ("IDP_TOKENS_JWKS_MAX_AGE", "2s")]);
    let mut b = Browser::new();
    let (callback, start) = w.sign_in(&mut b);
    let t0 = w.node(
        "code",
        &[
            ("CALLBACK", &callback),
            ("VERIFIER", start["verifier"].as_str().unwrap()),
            ("STATE", start["state"].as_str().unwrap()),
            ("NONCE", start["nonce"].as_str().unwrap()),
        ],
    );
    let before = &w.verify(&[&t0])[0];
    let (old_id, old_access) = (kid(before, "id"), kid(before, "access"));
    assert_eq!((before["id"]["alg"].as_str(), before["access"]["alg"].as_str()), (Some("RS256"), Some("ES256")));

    let new = w.rotate_signing(&[]);
    assert_eq!(new.len(), 3, "one new key per algorithm (RS256, ES256, EdDSA): {new:?}");
    assert!(eventually(5, || { new.iter().all(|k| w.jwks_kids().contains(k)) }), "the new keys are published");
    // During: published, not yet signing.
    let t1 = w.refresh(&t0);
    let during = w.verify(&[&t0, &t1]);
    assert_eq!((kid(&during[1], "id"), kid(&during[1], "access")), (old_id.clone(), old_access.clone()));
    kid(&during[0], "id");

    // After: the new keys sign; tokens of the old ones still verify until they expire.
    let mut t2 = t1.clone();
    assert!(
        eventually(15, || {
            t2 = w.refresh(&t2);
            new.contains(&kid(&w.verify(&[&t2])[0], "access"))
        }),
        "the new key never took over"
    );
    let after = w.verify(&[&t0, &t1, &t2]);
    assert!(new.contains(&kid(&after[2], "id")) && new.contains(&kid(&after[2], "access")), "{after:?}");
    assert_eq!(kid(&after[0], "access"), old_access, "the old key's tokens still verify");
    assert!(w.jwks_kids().contains(&old_access));

    // A compromised key: --immediately distrusts it and everything it signed.
    let replacement = w.rotate_signing(&["--immediately"]);
    assert!(eventually(5, || !w.jwks_kids().iter().any(|k| new.contains(k))), "the compromised keys are gone");
    let t3 = w.refresh(&t2);
    let last = w.verify(&[&t2, &t3]);
    assert_eq!((last[0]["id"]["ok"].as_bool(), last[0]["access"]["ok"].as_bool()), (Some(false), Some(false)));
    assert!(replacement.contains(&kid(&last[1], "access")) && replacement.contains(&kid(&last[1], "id")));
}

fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn field(html: &str, marker: &str) -> String {
    let start = html.find(marker).unwrap_or_else(|| panic!("{marker} not in {html}")) + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    unescape(&html[start..end])
}

#[test]
fn a_third_party_client_gets_a_code_only_after_the_user_allows_it() {
    let w = world();
    let mut b = w.browser();
    let cb: String = url::form_urlencoded::byte_serialize(format!("{}/cb", w.rp).as_bytes()).collect();
    let u = w.server.url(&format!(
        "/authorize?response_type=code&client_id=partner&scope=openid%20email&state=s1&redirect_uri={cb}\
         &code_challenge={CHALLENGE}&code_challenge_method=S256"
    ));
    let page = b.open(&u);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Allow Partner App?") && page.body.contains("see your e-mail address"), "{}", page.body);
    let csrf = field(&page.body, "name=\"csrf_token\" value=\"");
    let query = field(&page.body, "name=\"query\" value=\"");
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let form =
        |decision: &str, csrf: &str| format!("csrf_token={}&query={}&decision={decision}", enc(csrf), enc(&query));

    // A forged form (no valid CSRF token) and a cross-site post change nothing.
    assert_eq!(b.post_form(&w.server.url("/authorize/consent"), &w.server.base, &form("allow", "forged")).0, 403);
    assert_eq!(b.post_form(&w.server.url("/authorize/consent"), "https://evil.example", &form("allow", &csrf)).0, 403);
    assert_eq!(b.open(&u).status, 200, "still asks");

    let (status, loc) = b.post_form(&w.server.url("/authorize/consent"), &w.server.base, &form("deny", &csrf));
    assert_eq!(status, 303);
    let denied = url::Url::parse(&loc.unwrap()).unwrap();
    assert!(denied.as_str().starts_with(&format!("{}/cb", w.rp)));
    assert_eq!(denied.query_pairs().find(|(k, _)| k == "error").unwrap().1, "access_denied");

    let (status, loc) = b.post_form(&w.server.url("/authorize/consent"), &w.server.base, &form("allow", &csrf));
    assert_eq!(status, 303);
    let code = url::Url::parse(&loc.unwrap()).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let (status, tokens) = w.redeem("partner", &code, Some(VERIFIER));
    assert_eq!(status, 200, "{tokens}");
    // Asked once: the same request now goes straight back with a code.
    assert!(b.open_until(&u, &w.rp).contains("code="));
}

/// A TOTP code from oathtool for the step `offset` seconds from now.
fn oathtool(secret: &str, offset: i64) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "-N", &format!("now {offset:+} seconds"), secret])
        .output()
        .expect("oathtool must be installed (scripts/test installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn form_field(html: &str, name: &str) -> String {
    field(html, &format!("name=\"{name}\" value=\""))
}

#[test]
fn openid_client_signs_in_through_the_upstream_and_a_second_factor_on_sqlite() {
    through_a_second_factor(None);
}

#[test]
fn openid_client_signs_in_through_the_upstream_and_a_second_factor_on_postgres() {
    through_a_second_factor(Some(TestDb::postgres()));
}

/// The downstream app's whole story: openid-client sends the user to idp asking for MFA, idp
/// federates to oidc-provider, asks for the TOTP code (from oathtool), and the app validates
/// the tokens offline (jose, JWKS) and online (introspection).
fn through_a_second_factor(db: Option<TestDb>) {
    let w = world_on(db);
    // Alice signs in once through the upstream and sets up TOTP.
    let mut b = w.browser();
    let page = b.open(&w.server.url("/account/mfa"));
    let csrf = form_field(&page.body, "csrf_token");
    let (status, body) =
        b.post_form_page(&w.server.url("/account/mfa/totp"), &w.server.base, &format!("csrf_token={csrf}&name=Phone"));
    assert_eq!(status, 200, "{body}");
    let i = body.find("class=\"secret\">").unwrap() + "class=\"secret\">".len();
    let secret = body[i..].split('<').next().unwrap().to_owned();
    let id = form_field(&body, "credential_id");
    let confirm = format!("csrf_token={csrf}&credential_id={id}&code={}", oathtool(&secret, 0));
    assert_eq!(b.post_form(&w.server.url("/account/mfa/totp/confirm"), &w.server.base, &confirm).0, 303);
    let csrf = form_field(&b.open(&w.server.url("/")).body, "csrf_token");
    assert_eq!(b.post_form(&w.server.url("/logout"), &w.server.base, &format!("csrf_token={csrf}")).0, 303);

    // The app sends her to idp asking for a second factor (acr_values=aal2).
    let start = w.node("start", &[]);
    let url = format!("{}&acr_values=aal2", start["url"].as_str().unwrap());
    let login = b.open(&url);
    let return_to =
        url::Url::parse(&login.url).unwrap().query_pairs().find(|(k, _)| k == "return_to").unwrap().1.into_owned();
    let enc: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let page = b.open(&w.server.url(&format!("/login/up?return_to={enc}")));
    assert!(page.url.ends_with("/login/mfa"), "asked for the second factor: {}", page.url);
    let csrf = form_field(&page.body, "csrf_token");
    // The confirmation spent the current step; the next one is accepted.
    let (status, next) = b.post_form(
        &w.server.url("/login/mfa"),
        &w.server.base,
        &format!("csrf_token={csrf}&code={}", oathtool(&secret, 30)),
    );
    assert_eq!(status, 303);
    let callback = b.open_until(&w.server.url(&next.unwrap()), &w.rp);
    let done = w.node(
        "code",
        &[
            ("CALLBACK", &callback),
            ("VERIFIER", start["verifier"].as_str().unwrap()),
            ("STATE", start["state"].as_str().unwrap()),
            ("NONCE", start["nonce"].as_str().unwrap()),
        ],
    );
    // Offline: jose verifies both tokens against idp's JWKS.
    let offline = &w.verify(&[&done])[0];
    assert_eq!(
        (offline["id"]["ok"].as_bool(), offline["access"]["ok"].as_bool()),
        (Some(true), Some(true)),
        "{offline}"
    );
    // Online validation agrees, and shows the second factor.
    let r: serde_json::Value = client()
        .post(w.server.url("/introspect"))
        .basic_auth("rp", Some(RP_SECRET))
        .form(&[("token", done["access_token"].as_str().unwrap())])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["active"], true, "{r}");
    assert_eq!(r["acr"], "aal2");
    let amr: Vec<&str> = r["amr"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(amr.contains(&"mfa") && amr.contains(&"otp") && amr.contains(&"fed"), "{amr:?}");
}

// ---- clients registered by an organisation's administrator through the API ----

impl World {
    fn cli(&self, args: &[&str]) -> String {
        let out =
            harness::run(harness::idp(self.server.dir.as_path()).args(args).envs(self.env.iter().map(|(k, v)| (k, v))));
        assert!(out.status.success(), "idp {args:?}: {}", harness::text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut r = client().request(method, self.server.url(path));
        if !bearer.is_empty() {
            r = r.bearer_auth(bearer);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    fn client_credentials(&self, id: &str, secret: &str) -> u16 {
        let r = client()
            .post(self.server.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("scope", "reports.read")])
            .send()
            .unwrap();
        r.status().as_u16()
    }
}

#[test]
fn an_admin_registers_a_client_through_the_api_and_openid_client_signs_in_with_it() {
    let w = world();
    let mut b = Browser::new();
    // Alice signs in once (through the file's client) so she exists; the ID token names her.
    let (callback, start) = w.sign_in(&mut b);
    let first = w.node(
        "finish",
        &[
            ("CALLBACK", &callback),
            ("VERIFIER", start["verifier"].as_str().unwrap()),
            ("STATE", start["state"].as_str().unwrap()),
            ("NONCE", start["nonce"].as_str().unwrap()),
        ],
    );
    let alice = first["sub"].as_str().unwrap().to_owned();
    w.cli(&["org", "create", "--name", "Acme", "--slug", "acme", "--owner", &alice]);
    w.cli(&["project", "create", "--org", "acme", "--name", "Billing", "--slug", "billing"]);
    w.cli(&["org", "create", "--name", "Globex", "--slug", "globex"]);
    w.cli(&["project", "create", "--org", "globex", "--name", "Ops", "--slug", "ops"]);
    let token = |scopes: &str| {
        let args = ["token", "create", "--kind", "personal", "--name", "ci", "--org", "acme", "--project", "billing"];
        let out = w.cli(&[&args[..], &["--user", &alice, "--scopes", scopes]].concat());
        out.trim().to_owned()
    };
    let admin = token("clients_manage");
    let reader = token("members_read");
    let clients = "/api/v1/organisations/acme/projects/billing/clients";
    let post = reqwest::Method::POST;
    let registration = serde_json::json!({
        "name": "Billing web", "redirect_uris": [format!("{}/cb", w.rp)],
        "post_logout_redirect_uris": [format!("{}/bye", w.rp)], "first_party": true,
        "scopes": ["openid", "email", "profile", "offline_access", "reports.read"],
        "id_token_signed_response_alg": "EdDSA",
    });

    // Refusals first: nobody, a token without clients_manage, another organisation, bad input.
    assert_eq!(w.api(post.clone(), clients, "", Some(registration.clone())).0, 401);
    assert_eq!(w.api(post.clone(), clients, &reader, Some(registration.clone())).0, 403);
    let other = "/api/v1/organisations/globex/projects/ops/clients";
    assert_eq!(w.api(post.clone(), other, &admin, Some(registration.clone())).0, 404, "existence must not leak");
    for bad in [
        serde_json::json!({"name": "x", "redirect_uris": ["http://evil.example/cb"]}),
        serde_json::json!({"name": "x", "redirect_uris": []}),
        serde_json::json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "client_secret": "mine"}),
        serde_json::json!({"name": "", "redirect_uris": ["https://a.example/cb"]}),
        serde_json::json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "public": true, "require_pkce": false}),
    ] {
        let (status, r) = w.api(post.clone(), clients, &admin, Some(bad.clone()));
        assert_eq!(status, 400, "{bad} -> {r}");
    }
    let (status, r) = w.api(reqwest::Method::GET, clients, &admin, None);
    assert_eq!((status, r["clients"].as_array().map(Vec::len)), (200, Some(0)), "a refusal wrote nothing: {r}");

    let (status, r) = w.api(post.clone(), clients, &admin, Some(registration));
    assert_eq!(status, 201, "{r}");
    let id = r["client"]["client_id"].as_str().unwrap().to_owned();
    let secret = r["client_secret"].as_str().unwrap().to_owned();
    assert!(id.parse::<uuid::Uuid>().is_ok() && secret.len() >= 43, "{r}");
    let (status, got) = w.api(reqwest::Method::GET, &format!("/api/v1/clients/{id}"), &admin, None);
    assert_eq!(status, 200);
    assert!(!got.to_string().contains(&secret), "the secret is shown once only: {got}");

    // openid-client signs in with the new client; the session is still there, so no login page.
    let env = [("CLIENT_ID", id.as_str()), ("CLIENT_SECRET", secret.as_str()), ("ID_TOKEN_ALG", "EdDSA")];
    let start = w.node("start", &env);
    let callback = b.open_until(start["url"].as_str().unwrap(), &w.rp);
    let done = w.node(
        "finish",
        &[
            env[0],
            env[1],
            env[2],
            ("CALLBACK", &callback),
            ("VERIFIER", start["verifier"].as_str().unwrap()),
            ("STATE", start["state"].as_str().unwrap()),
            ("NONCE", start["nonce"].as_str().unwrap()),
        ],
    );
    assert_eq!((done["sub"].as_str(), done["id_verified"].as_bool()), (Some(alice.as_str()), Some(true)), "{done}");
    assert_eq!((done["id_alg"].as_str(), done["refreshed"].as_bool()), (Some("EdDSA"), Some(true)), "{done}");
    assert_eq!(w.client_credentials(&id, &secret), 200);

    // A new secret works at once and the old one stops at once.
    let (status, r) = w.api(post.clone(), &format!("/api/v1/clients/{id}/secret"), &admin, None);
    assert_eq!(status, 200, "{r}");
    let rotated = r["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(w.client_credentials(&id, &secret), 401);
    assert_eq!(w.client_credentials(&id, &rotated), 200);

    // Deleted: refused at once on this instance (the others within oidc::clients::RELOAD).
    assert_eq!(w.api(reqwest::Method::DELETE, &format!("/api/v1/clients/{id}"), &reader, None).0, 403);
    assert_eq!(w.api(reqwest::Method::DELETE, &format!("/api/v1/clients/{id}"), &admin, None).0, 204);
    assert_eq!(w.client_credentials(&id, &rotated), 401);
    assert_eq!(w.api(reqwest::Method::GET, &format!("/api/v1/clients/{id}"), &admin, None).0, 404);
}
