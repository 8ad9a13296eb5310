//! The grant logic against a real SQLite database, with a fixed clock. Each RFC 9700 negative
//! is its own test and checks that nothing was issued.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::authorize::{AuthorizeParams, Decision, authorize};
use super::errors::ErrorCode;
use super::keys::Signer;
use super::token::{ClientCredentials, TokenParams, TokenResponse, exchange, verify_access_token};
use super::*;
use crate::client_config::{ClientConfig, validate_clients};
use crate::clock::{Clock, FixedClock};
use crate::domain::SessionId;
use crate::domain::session::Session;
use crate::domain::user::NewUser;
use crate::storage::users::UserRepository;
use crate::storage::{DatabaseUrl, Db, StorageError};

const SECRET: &str = "confidential-client-secret-0123456789";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CB: &str = "https://app.example.com/cb";

struct World {
    _dir: tempfile::TempDir,
    db: Db,
    provider: Provider,
    clock: FixedClock,
    session: Session,
}

pub(super) fn client(id: &str, secret: bool, extra: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
    let mut c = ClientConfig {
        client_id: id.into(),
        name: None,
        client_secret: secret.then(|| SECRET.into()),
        client_secret_env: None,
        client_secret_file: None,
        redirect_uris: vec![CB.into()],
        post_logout_redirect_uris: vec![],
        scopes: None,
        project: None,
        first_party: true,
        require_pkce: true,
        token_endpoint_auth_method: None,
        id_token_signed_response_alg: None,
    };
    extra(&mut c);
    c
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("t.sqlite")), 2).unwrap();
    db.migrate().unwrap();
    let clock = FixedClock::at_unix(1_800_000_000);
    let now = clock.now_naive();
    let user = db
        .write(|c| {
            c.create_user(
                &NewUser { email: Some("alice@example.com".into()), email_verified: true, display_name: None },
                now,
            )
        })
        .unwrap();
    let mut problems = Vec::new();
    let clients = validate_clients(
        &[
            client("app", true, |_| {}),
            client("other", true, |_| {}),
            client("spa", false, |_| {}),
            client("legacy", true, |c| c.require_pkce = false),
            client("third", true, |c| c.first_party = false),
            client("billing", true, |c| c.project = Some("acme/billing".into())),
        ],
        &|_| None,
        &mut problems,
    );
    assert!(problems.is_empty(), "{problems:?}");
    let provider = Provider::new("https://id.example.com/", clients, Signer::generate_for_tests());
    let session = Session {
        id: SessionId::new(),
        user_id: user.id,
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::hours(1),
        amr: vec!["fed".into()],
        acr: None,
        source: None,
        user_agent: None,
    };
    World { _dir: dir, db, provider, clock, session }
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

fn params(client_id: &str) -> AuthorizeParams {
    AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some(client_id.into()),
        redirect_uri: Some(CB.into()),
        scope: Some("openid email offline_access".into()),
        state: Some("st".into()),
        nonce: Some("n-1".into()),
        code_challenge: Some(challenge()),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    }
}

fn query(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

impl World {
    fn authorize(&self, p: &AuthorizeParams) -> Decision {
        let now = self.clock.now_naive();
        self.db.write(|c| authorize(c, &self.provider, now, p, "", Some(&self.session))).unwrap()
    }

    fn code(&self, p: &AuthorizeParams) -> String {
        match self.authorize(p) {
            Decision::Redirect(url) => {
                assert_eq!(query(&url, "iss").as_deref(), Some("https://id.example.com"), "RFC 9207 iss");
                assert_eq!(query(&url, "state").as_deref(), Some("st"));
                query(&url, "code").unwrap_or_else(|| panic!("no code in {url}"))
            }
            other => panic!("{other:?}"),
        }
    }

    fn token(&self, client_id: &str, p: TokenParams) -> Result<TokenResponse, ErrorCode> {
        let creds = if client_id == "spa" {
            ClientCredentials { form_id: Some("spa".into()), ..Default::default() }
        } else {
            ClientCredentials { basic: Some((client_id.into(), SECRET.into())), ..Default::default() }
        };
        let now = self.clock.now_naive();
        self.db.write(|c| exchange(c, &self.provider, now, &creds, &p)).unwrap().map_err(|e| e.code)
    }

    fn redeem(&self, client_id: &str, code: &str, verifier: Option<&str>) -> Result<TokenResponse, ErrorCode> {
        self.token(
            client_id,
            TokenParams {
                grant_type: Some("authorization_code".into()),
                code: Some(code.into()),
                redirect_uri: Some(CB.into()),
                code_verifier: verifier.map(str::to_owned),
                ..Default::default()
            },
        )
    }

    fn refresh(&self, rt: &str) -> Result<TokenResponse, ErrorCode> {
        self.token(
            "app",
            TokenParams {
                grant_type: Some("refresh_token".into()),
                refresh_token: Some(rt.into()),
                ..Default::default()
            },
        )
    }

    fn access_ok(&self, at: &str) -> bool {
        let now = self.clock.now_naive();
        self.db.read(|c| Ok::<_, StorageError>(verify_access_token(c, &self.provider, now, at)?.is_some())).unwrap()
    }

    fn error_of(&self, p: &AuthorizeParams) -> String {
        match self.authorize(p) {
            Decision::Redirect(url) => {
                assert!(query(&url, "code").is_none(), "a code was issued: {url}");
                query(&url, "error").unwrap()
            }
            other => panic!("{other:?}"),
        }
    }
}

fn claims(jwt: &str) -> serde_json::Value {
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

#[test]
fn code_flow_issues_id_access_and_refresh_tokens() {
    let w = world();
    let t = w.redeem("app", &w.code(&params("app")), Some(VERIFIER)).unwrap();
    let id = claims(t.id_token.as_deref().unwrap());
    assert_eq!(id["iss"], "https://id.example.com");
    assert_eq!(id["aud"], "app");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["sub"], w.session.user_id.to_string());
    assert_eq!(id["sid"], w.session.id.to_string());
    assert_eq!(id["email"], "alice@example.com");
    assert_eq!(id["amr"], serde_json::json!(["fed"]));
    assert!(id["auth_time"].is_i64());
    let at = claims(&t.access_token);
    assert_eq!(at["client_id"], "app");
    assert_eq!(at["aud"], "https://id.example.com");
    assert!(w.access_ok(&t.access_token));
    assert!(t.refresh_token.is_some());
}

#[test]
fn code_expires_after_60_seconds() {
    let w = world();
    let code = w.code(&params("app"));
    w.clock.advance(61);
    assert_eq!(w.redeem("app", &code, Some(VERIFIER)), Err(ErrorCode::InvalidGrant));
    let code = w.code(&params("app"));
    w.clock.advance(59);
    assert!(w.redeem("app", &code, Some(VERIFIER)).is_ok());
}

#[test]
fn code_redeemed_twice_revokes_what_the_first_issued() {
    let w = world();
    let code = w.code(&params("app"));
    let first = w.redeem("app", &code, Some(VERIFIER)).unwrap();
    assert_eq!(w.redeem("app", &code, Some(VERIFIER)), Err(ErrorCode::InvalidGrant));
    assert!(!w.access_ok(&first.access_token), "the first access token still works");
    assert_eq!(w.refresh(first.refresh_token.as_deref().unwrap()), Err(ErrorCode::InvalidGrant));
}

#[test]
fn code_redeemed_by_another_client_is_refused() {
    let w = world();
    let code = w.code(&params("app"));
    assert_eq!(w.redeem("other", &code, Some(VERIFIER)), Err(ErrorCode::InvalidGrant));
    assert_eq!(w.redeem("app", &code, Some(VERIFIER)), Err(ErrorCode::InvalidGrant), "the leaked code is dead");
}

#[test]
fn code_with_another_redirect_uri_is_refused() {
    let w = world();
    let code = w.code(&params("app"));
    let r = w.token(
        "app",
        TokenParams {
            grant_type: Some("authorization_code".into()),
            code: Some(code),
            redirect_uri: Some(format!("{CB}/")),
            code_verifier: Some(VERIFIER.into()),
            ..Default::default()
        },
    );
    assert_eq!(r, Err(ErrorCode::InvalidGrant));
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let w = world();
    let t = w.redeem("app", &w.code(&params("app")), Some(VERIFIER)).unwrap();
    let rt1 = t.refresh_token.unwrap();
    let t2 = w.refresh(&rt1).unwrap();
    let rt2 = t2.refresh_token.clone().unwrap();
    assert_ne!(rt1, rt2);
    assert!(w.access_ok(&t2.access_token));
    assert_eq!(w.refresh(&rt1), Err(ErrorCode::InvalidGrant), "reuse");
    assert_eq!(w.refresh(&rt2), Err(ErrorCode::InvalidGrant), "the family is revoked");
    assert!(!w.access_ok(&t2.access_token));
}

#[test]
fn redirect_uri_variants_are_refused_without_redirecting() {
    let w = world();
    for bad in [
        "https://app.example.com/cb/../evil",
        "https://app.example.com/cb?x=1",
        "https://evil.example.com/cb",
        "http://app.example.com/cb",
        "https://app.example.com:8443/cb",
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
    ] {
        let p = AuthorizeParams { redirect_uri: Some(bad.into()), ..params("app") };
        assert!(matches!(w.authorize(&p), Decision::Refuse(_)), "{bad}");
    }
    let p = AuthorizeParams { redirect_uri: None, ..params("app") };
    assert!(matches!(w.authorize(&p), Decision::Refuse(_)));
    let p = AuthorizeParams { client_id: Some("nobody".into()), ..params("app") };
    assert!(matches!(w.authorize(&p), Decision::Refuse(_)));
}

#[test]
fn pkce_missing_is_refused() {
    let w = world();
    for client in ["app", "spa"] {
        let p = AuthorizeParams { code_challenge: None, code_challenge_method: None, ..params(client) };
        assert_eq!(w.error_of(&p), "invalid_request", "{client}");
    }
}

#[test]
fn pkce_plain_is_refused() {
    let w = world();
    let p = AuthorizeParams {
        code_challenge: Some(VERIFIER.into()),
        code_challenge_method: Some("plain".into()),
        ..params("app")
    };
    assert_eq!(w.error_of(&p), "invalid_request");
    let p = AuthorizeParams { code_challenge_method: None, ..params("app") };
    assert_eq!(w.error_of(&p), "invalid_request", "a missing method means plain");
}

#[test]
fn pkce_downgrade_and_wrong_verifier_are_refused() {
    let w = world();
    // A verifier at the token endpoint for a code issued without a challenge.
    let p = AuthorizeParams { code_challenge: None, code_challenge_method: None, ..params("legacy") };
    let code = w.code(&p);
    assert_eq!(w.redeem("legacy", &code, Some(VERIFIER)), Err(ErrorCode::InvalidGrant));
    // A code issued with a challenge, redeemed without the verifier or with another one.
    let code = w.code(&params("app"));
    assert_eq!(w.redeem("app", &code, None), Err(ErrorCode::InvalidGrant));
    let code = w.code(&params("app"));
    let other = "x".repeat(43);
    assert_eq!(w.redeem("app", &code, Some(&other)), Err(ErrorCode::InvalidGrant));
    // The confidential client that may go without PKCE still works without it.
    let code = w.code(&AuthorizeParams { code_challenge: None, code_challenge_method: None, ..params("legacy") });
    assert!(w.redeem("legacy", &code, None).is_ok());
}

#[test]
fn public_client_uses_pkce_and_no_secret() {
    let w = world();
    let t = w.redeem("spa", &w.code(&params("spa")), Some(VERIFIER)).unwrap();
    assert!(w.access_ok(&t.access_token));
    let wrong = ClientCredentials { basic: Some(("app".into(), "wrong-secret".into())), ..Default::default() };
    let now = w.clock.now_naive();
    let r = w.db.write(|c| exchange(c, &w.provider, now, &wrong, &TokenParams::default())).unwrap();
    assert_eq!(r.unwrap_err().code, ErrorCode::InvalidClient);
}

#[test]
fn client_credentials_for_confidential_clients_only() {
    let w = world();
    let p = || TokenParams { grant_type: Some("client_credentials".into()), ..Default::default() };
    let t = w.token("app", p()).unwrap();
    assert!(t.id_token.is_none() && t.refresh_token.is_none());
    assert_eq!(claims(&t.access_token)["sub"], "app");
    assert_eq!(w.token("spa", p()), Err(ErrorCode::UnauthorizedClient));
}

#[test]
fn prompt_none_max_age_and_consent() {
    let w = world();
    let now = w.clock.now_naive();
    let p = AuthorizeParams { prompt: Some("none".into()), ..params("app") };
    let d = w.db.write(|c| authorize(c, &w.provider, now, &p, "", None)).unwrap();
    let Decision::Redirect(url) = d else { panic!("{d:?}") };
    assert_eq!(query(&url, "error").as_deref(), Some("login_required"));
    let d =
        w.db.write(|c| authorize(c, &w.provider, now, &params("app"), "client_id=app&prompt=login&max_age=5", None))
            .unwrap();
    assert_eq!(d, Decision::Login { return_to: "/authorize?client_id=app".into(), login_hint: None });
    let p = AuthorizeParams { login_hint: Some("bob@example.org".into()), ..params("app") };
    let d = w.db.write(|c| authorize(c, &w.provider, now, &p, "client_id=app", None)).unwrap();
    assert_eq!(
        d,
        Decision::Login { return_to: "/authorize?client_id=app".into(), login_hint: Some("bob@example.org".into()) }
    );
    w.clock.advance(100);
    let p = AuthorizeParams { max_age: Some("10".into()), ..params("app") };
    assert!(matches!(w.authorize(&p), Decision::Login { .. }), "session older than max_age");
    let p = AuthorizeParams { max_age: Some("1000".into()), ..params("app") };
    assert!(matches!(w.authorize(&p), Decision::Redirect(_)));
    let p = AuthorizeParams { prompt: Some("none".into()), ..params("third") };
    assert_eq!(w.error_of(&p), "consent_required", "prompt=none cannot show the consent page");
    let p = AuthorizeParams { scope: Some("openid admin".into()), ..params("app") };
    assert_eq!(w.error_of(&p), "invalid_scope");
}

#[test]
fn purge_keeps_live_grants_and_removes_spent_ones() {
    let w = world();
    let t = w.redeem("app", &w.code(&params("app")), Some(VERIFIER)).unwrap();
    let cc =
        w.token("app", TokenParams { grant_type: Some("client_credentials".into()), ..Default::default() }).unwrap();
    w.clock.advance(3600);
    let now = w.clock.now_naive();
    let purged = w.db.write(|c| purge(c, now)).unwrap();
    assert_eq!(purged, 1, "the spent code (client_credentials keeps no grant)");
    assert!(w.refresh(t.refresh_token.as_deref().unwrap()).is_ok(), "the refresh family lives on");
    assert!(!w.access_ok(&cc.access_token));
    w.clock.advance(REFRESH_TOKEN_TTL_SECS + 3600);
    let now = w.clock.now_naive();
    assert!(w.db.write(|c| purge(c, now)).unwrap() >= 3, "refresh tokens and their grant");
}

#[test]
fn client_credentials_write_nothing_and_are_revoked_by_jti() {
    let w = world();
    let cc = || w.token("app", TokenParams { grant_type: Some("client_credentials".into()), ..Default::default() });
    let (a, b) = (cc().unwrap(), cc().unwrap());
    let grants: i64 =
        w.db.read(|c| {
            use diesel::prelude::*;
            crate::storage::schema::oauth_grants::table.count().get_result(c).map_err(StorageError::from)
        })
        .unwrap();
    assert_eq!(grants, 0, "no row per grant");
    assert!(w.access_ok(&a.access_token) && w.access_ok(&b.access_token));
    let now = w.clock.now_naive();
    let revoke = |client: &str, token: &str| {
        let creds = ClientCredentials { basic: Some((client.into(), SECRET.into())), ..Default::default() };
        w.db.write(|c| super::revocation::revoke(c, &w.provider, now, &creds, token)).unwrap().unwrap();
    };
    revoke("other", &a.access_token);
    assert!(w.access_ok(&a.access_token), "another client cannot revoke it");
    revoke("app", &a.access_token);
    revoke("app", &a.access_token);
    assert!(!w.access_ok(&a.access_token), "revoked");
    assert!(w.access_ok(&b.access_token), "alone: its siblings live on");
}

#[test]
fn tokens_for_a_project_client_carry_the_users_role_there() {
    let w = world();
    let now = w.clock.now_naive();
    let auditor =
        crate::audit::Auditor::new(crate::crypto::pseudonym::Pseudonymiser::new(zeroize::Zeroizing::new(vec![3; 32])));
    // Before the project exists: no project claims.
    let t = w.redeem("billing", &w.code(&params("billing")), Some(VERIFIER)).unwrap();
    let id = w.provider.signer.verify(t.id_token.as_deref().unwrap(), "JWT").unwrap();
    assert!(id.get("roles").is_none());
    w.db.write(|c| {
        use crate::admin::organisations as o;
        o::create_organisation(c, &auditor, now, crate::audit::Actor::Cli, "Acme", Some("acme"), &[])?;
        o::create_project(c, &auditor, now, crate::audit::Actor::Cli, "acme", "Billing", Some("billing"))
    })
    .unwrap();
    let t = w.redeem("billing", &w.code(&params("billing")), Some(VERIFIER)).unwrap();
    let id = w.provider.signer.verify(t.id_token.as_deref().unwrap(), "JWT").unwrap();
    assert_eq!(id["roles"], serde_json::json!([]), "not a member: no role");
    let project = id["project_id"].as_str().unwrap().parse().unwrap();
    w.db.write(|c| {
        use crate::storage::organisations::OrganisationRepository;
        c.set_project_member(
            project,
            w.session.user_id,
            crate::domain::role::RoleRef::Builtin(crate::domain::role::BuiltinRole::Admin),
            now,
        )
    })
    .unwrap();
    let t = w.redeem("billing", &w.code(&params("billing")), Some(VERIFIER)).unwrap();
    let id = w.provider.signer.verify(t.id_token.as_deref().unwrap(), "JWT").unwrap();
    let at = w.provider.signer.verify(&t.access_token, "at+jwt").unwrap();
    assert_eq!(id["roles"], serde_json::json!(["admin"]));
    assert_eq!(at["roles"], serde_json::json!(["admin"]));
    assert_eq!(at["project_id"], id["project_id"]);
    assert_eq!(id["groups"], serde_json::json!([]), "in no SCIM group yet");
    let other = w.redeem("app", &w.code(&params("app")), Some(VERIFIER)).unwrap();
    let at = w.provider.signer.verify(&other.access_token, "at+jwt").unwrap();
    assert!(at.get("roles").is_none(), "a client without a project gets no roles");

    // Groups the organisation's identity provider put the user in over SCIM; another
    // organisation's groups never show.
    let org = w.db.read(|c| crate::tokens::resolve_project(c, "acme/billing")).unwrap().unwrap().0;
    let globex =
        w.db.write(|c| {
            crate::admin::organisations::create_organisation(
                c,
                &auditor,
                now,
                crate::audit::Actor::Cli,
                "Globex",
                Some("globex"),
                &[],
            )
        })
        .unwrap()
        .id;
    w.db.write(|c| {
        use crate::storage::scim::{ScimRepository, ScimResourceRow};
        let row = |id: &str,
                   org: crate::domain::OrganisationId,
                   kind: &str,
                   user: Option<String>,
                   attrs: serde_json::Value| {
            ScimResourceRow {
                id: id.into(),
                organisation_id: org.to_string(),
                kind: kind.into(),
                unique_name: id.into(),
                user_id: user,
                external_id: None,
                attributes: attrs.to_string(),
                version: 1,
                created_at: now,
                updated_at: now,
            }
        };
        let me = Some(w.session.user_id.to_string());
        c.insert_scim_resource(&row("u-acme", org, "User", me.clone(), serde_json::json!({"userName": "a"})))?;
        c.insert_scim_resource(&row("u-globex", globex, "User", me, serde_json::json!({"userName": "a"})))?;
        for (id, o, name) in [("g1", org, "Engineers"), ("g2", org, "Billing admins"), ("g3", globex, "Globex staff")] {
            c.insert_scim_resource(&row(id, o, "Group", None, serde_json::json!({"displayName": name})))?;
        }
        c.set_scim_group_members("g1", &["u-acme".into()])?;
        c.set_scim_group_members("g2", &["u-acme".into()])?;
        c.set_scim_group_members("g3", &["u-globex".into()])
    })
    .unwrap();
    let t = w.redeem("billing", &w.code(&params("billing")), Some(VERIFIER)).unwrap();
    let id = w.provider.signer.verify(t.id_token.as_deref().unwrap(), "JWT").unwrap();
    let at = w.provider.signer.verify(&t.access_token, "at+jwt").unwrap();
    assert_eq!(id["groups"], serde_json::json!(["Billing admins", "Engineers"]));
    assert_eq!(at["groups"], id["groups"]);
}

impl World {
    fn answer(&self, p: &AuthorizeParams, allow: bool) -> Decision {
        let now = self.clock.now_naive();
        self.db
            .write(|c| super::authorize::answer_consent(c, &self.provider, now, p, "", &self.session, allow))
            .unwrap()
    }

    fn consents(&self) -> i64 {
        use diesel::prelude::*;
        self.db
            .read(|c| crate::storage::schema::oauth_consents::table.count().get_result(c).map_err(StorageError::from))
            .unwrap()
    }
}

#[test]
fn a_third_party_client_is_asked_for_once_per_scope_set() {
    let w = world();
    match w.authorize(&params("third")) {
        Decision::Consent { client_id, scopes, .. } => {
            assert_eq!(client_id, "third");
            assert_eq!(scopes, ["openid", "email", "offline_access"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(w.authorize(&params("app")), Decision::Redirect(_)), "first-party clients are never asked");
    let code = match w.answer(&params("third"), true) {
        Decision::Redirect(url) => query(&url, "code").unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(w.redeem("third", &code, Some(VERIFIER)).is_ok());
    w.code(&params("third"));
    let fewer = AuthorizeParams { scope: Some("openid".into()), ..params("third") };
    w.code(&fewer);
    let p = AuthorizeParams { prompt: Some("consent".into()), ..params("third") };
    assert!(matches!(w.authorize(&p), Decision::Consent { .. }), "prompt=consent asks again");
    let p = AuthorizeParams { prompt: Some("none".into()), ..params("third") };
    w.code(&p);
}

#[test]
fn asking_a_third_party_client_for_more_asks_again() {
    let w = world();
    let narrow = AuthorizeParams { scope: Some("openid".into()), ..params("third") };
    assert!(matches!(w.answer(&narrow, true), Decision::Redirect(_)));
    assert!(matches!(w.authorize(&params("third")), Decision::Consent { .. }));
}

#[test]
fn a_denied_consent_tells_the_client_and_stores_nothing() {
    let w = world();
    match w.answer(&params("third"), false) {
        Decision::Redirect(url) => {
            assert_eq!(query(&url, "error").as_deref(), Some("access_denied"));
            assert!(query(&url, "code").is_none());
            assert_eq!(query(&url, "state").as_deref(), Some("st"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.consents(), 0);
    assert!(matches!(w.authorize(&params("third")), Decision::Consent { .. }));
}

#[test]
fn a_consent_answer_for_a_tampered_request_is_refused_and_stores_nothing() {
    let w = world();
    let p = AuthorizeParams { redirect_uri: Some("https://evil.example/cb".into()), ..params("third") };
    assert!(matches!(w.answer(&p, true), Decision::Refuse(_)));
    let p = AuthorizeParams { scope: Some("openid admin".into()), ..params("third") };
    match w.answer(&p, true) {
        Decision::Redirect(url) => assert_eq!(query(&url, "error").as_deref(), Some("invalid_scope")),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.consents(), 0);
}

#[test]
fn a_project_that_requires_a_second_factor_gets_codes_only_from_an_mfa_session() {
    let mut w = world();
    let now = w.clock.now_naive();
    let auditor =
        crate::audit::Auditor::new(crate::crypto::pseudonym::Pseudonymiser::new(zeroize::Zeroizing::new(vec![3; 32])));
    w.db.write(|c| {
        use crate::admin::organisations as o;
        o::create_organisation(c, &auditor, now, crate::audit::Actor::Cli, "Acme", Some("acme"), &[])?;
        o::create_project(c, &auditor, now, crate::audit::Actor::Cli, "acme", "Billing", Some("billing"))?;
        let change = crate::admin::mfa_policy::PolicyChange { required: true, methods: &[], grace_days: None };
        crate::admin::mfa_policy::set_project_policy(
            c,
            &auditor,
            now,
            crate::admin::tokens::Caller::Operator,
            "acme",
            "billing",
            change,
        )
        .map(|_| ())
    })
    .unwrap();
    // No second factor at all: enrol first, no code.
    assert!(matches!(w.authorize(&params("billing")), Decision::Enrol { .. }));
    let p = AuthorizeParams { prompt: Some("none".into()), ..params("billing") };
    assert_eq!(w.error_of(&p), "interaction_required");
    assert!(matches!(w.authorize(&params("app")), Decision::Redirect(_)), "other clients are not affected");
    // acr_values asking for MFA is honoured for any client.
    let p = AuthorizeParams { acr_values: Some("aal2".into()), ..params("app") };
    assert!(matches!(w.authorize(&p), Decision::Enrol { .. }));
    // A session that did a second factor gets its code, with amr to show it.
    w.session.amr = vec!["fed".into(), "otp".into(), "mfa".into()];
    w.session.acr = Some("aal2".into());
    let t = w.redeem("billing", &w.code(&params("billing")), Some(VERIFIER)).unwrap();
    let id = w.provider.signer.verify(t.id_token.as_deref().unwrap(), "JWT").unwrap();
    assert_eq!(id["amr"], serde_json::json!(["fed", "otp", "mfa"]));
    assert_eq!(id["acr"], "aal2");
    let p = AuthorizeParams { acr_values: Some("aal2".into()), ..params("app") };
    assert!(matches!(w.authorize(&p), Decision::Redirect(_)));
}
