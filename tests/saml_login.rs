//! SAML 2.0 login end to end: idp as the SP, samlify (tests/peers/saml/mint.js) as the IdP
//! minting good and deliberately broken responses, on SQLite and PostgreSQL. Every refusal
//! asserts: a 4xx page without internals, no session, no user created or changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod harness;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::peers::Browser;
use harness::{Server, TestDb, free_port, idp, run, text};

use serde_json::{Value, json};

const IDP_ENTITY: &str = "urn:test:samlify-idp";

fn peer_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/saml")
}

struct World {
    dir: tempfile::TempDir,
    server: Server,
    env: Vec<(String, String)>,
}

fn world(db: &TestDb) -> World {
    assert!(
        peer_dir().join("node_modules/samlify").exists(),
        "tests/peers/saml is not installed: run ./scripts/test (or npm ci --prefix tests/peers/saml)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cert = peer_dir().join("certs/idp-cert.pem");
    let common = format!(
        "type = \"saml\"\npreset = \"okta\"\nidp_entity_id = \"{IDP_ENTITY}\"\nsso_url = \"http://127.0.0.1:9/sso\"\nidp_certificate_file = \"{}\"\n",
        cert.display()
    );
    let toml = format!(
        "signup = \"open\"\n\n[[connectors]]\nid = \"okta\"\nname = \"Okta\"\n{common}role_mappings = [{{ group = \"admins\", organisation = \"acme\", role = \"admin\" }}]\n\n[[connectors]]\nid = \"dash\"\nname = \"Okta dashboard\"\nallow_idp_initiated = true\n{common}\n[[connectors]]\nid = \"enc\"\nname = \"Okta, encrypted\"\nrequire_encrypted_assertions = true\n{common}"
    );
    let config = dir.path().join("idp.toml");
    std::fs::write(&config, toml).unwrap();
    let mut env = vec![("IDP_CONFIG".to_owned(), config.display().to_string())];
    if db.is_postgres() {
        env.push(("IDP_DATABASE_URL".to_owned(), db.url()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_at(dir.path(), port, &refs);
    World { dir, server, env }
}

impl World {
    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = idp(self.dir.path());
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn database_url(&self) -> String {
        match self.env.iter().find(|(k, _)| k == "IDP_DATABASE_URL") {
            Some((_, url)) => url.clone(),
            None => format!("sqlite://{}", self.dir.path().join("idp-data/idp.sqlite").display()),
        }
    }

    fn users(&self) -> String {
        self.cli(&["user", "list"])
    }

    fn acs(&self, connector: &str) -> String {
        self.server.url(&format!("/saml/{connector}/acs"))
    }

    fn sp(&self, connector: &str) -> String {
        self.server.url(&format!("/saml/{connector}/metadata"))
    }

    /// Options for a good response to `request_id` at connector `okta`.
    fn good(&self, request_id: Option<&str>, name_id: &str) -> Value {
        let mut o = json!({
            "acs": self.acs("okta"), "sp": self.sp("okta"), "issuer": IDP_ENTITY, "nameId": name_id,
            "attributes": { "email": [name_id], "firstName": ["Alice"], "lastName": ["Liddell"], "groups": ["admins", "staff"] },
        });
        if let Some(r) = request_id {
            o["inResponseTo"] = json!(r);
        }
        o
    }

    /// Our SP certificate (PEM) from the encryption KeyDescriptor of our metadata, as an IdP
    /// administrator takes it to turn on assertion encryption.
    fn sp_cert_pem(&self) -> String {
        let md = Browser::new().open(&self.sp("okta")).body;
        let enc = md.split("<md:KeyDescriptor use=\"encryption\">").nth(1).expect("an encryption KeyDescriptor");
        let b64 = enc.split("<ds:X509Certificate>").nth(1).unwrap().split('<').next().unwrap();
        let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
        String::from_utf8(openssl::x509::X509::from_der(&der).unwrap().to_pem().unwrap()).unwrap()
    }

    fn signed_in(&self, b: &mut Browser) -> bool {
        let page = b.open(&self.server.url("/"));
        page.status == 200 && page.body.contains("Signed in")
    }
}

fn mint(options: &Value) -> String {
    let out = Command::new("node").arg(peer_dir().join("mint.js")).arg(options.to_string()).output().unwrap();
    assert!(out.status.success(), "mint.js: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts a login at `/login/{connector}`: (AuthnRequest id, RelayState, the redirect URL).
fn start(w: &World, b: &mut Browser, connector: &str) -> (String, String, url::Url) {
    let to = b.open_until(&w.server.url(&format!("/login/{connector}")), "127.0.0.1:9/sso");
    let url = url::Url::parse(&to).unwrap();
    let q = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    let relay = q("RelayState").expect("RelayState");
    let deflated =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, q("SAMLRequest").unwrap()).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice()).read_to_string(&mut xml).unwrap();
    let id = xml.split("ID=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (id, relay, url)
}

fn form(saml_response: &str, relay: Option<&str>) -> String {
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    match relay {
        Some(r) => format!("SAMLResponse={}&RelayState={}", enc(saml_response), enc(r)),
        None => format!("SAMLResponse={}", enc(saml_response)),
    }
}

/// Posts to the ACS as the IdP's auto-submitting form does (from the IdP's origin).
fn post(b: &mut Browser, acs: &str, body: &str) -> (u16, String) {
    b.post_form_page(acs, "http://127.0.0.1:9", body)
}

fn assert_refused(w: &World, b: &mut Browser, (status, page): (u16, String), users_before: &str) {
    assert!((400..500).contains(&status), "want a 4xx, got {status}: {page}");
    assert!(
        !page.contains("diesel") && !page.contains("xmlsec") && !page.contains("samael"),
        "internals leaked: {page}"
    );
    assert!(!w.signed_in(b), "a session was created");
    assert_eq!(w.users(), users_before, "a user was created or changed");
}

/// A fresh SP-initiated login whose response is minted from `good` options changed by `edit`,
/// and expected to be refused for `reason` (as logged).
fn refused_with(db: &TestDb, reason: &str, edit: impl FnOnce(&World, &mut Value)) {
    refused_at(db, "okta", reason, edit)
}

/// [`refused_with`] at another connection.
fn refused_at(db: &TestDb, connector: &str, reason: &str, edit: impl FnOnce(&World, &mut Value)) {
    let w = world(db);
    let before = w.users();
    let mut b = Browser::new();
    let (id, relay, _) = start(&w, &mut b, connector);
    let mut o = w.good(Some(&id), "mallory@example.test");
    o["acs"] = json!(w.acs(connector));
    o["sp"] = json!(w.sp(connector));
    edit(&w, &mut o);
    let r = post(&mut b, &w.acs(connector), &form(&mint(&o), Some(&relay)));
    assert_refused(&w, &mut b, r, &before);
    let port = w.server.base.rsplit(':').next().unwrap().to_owned();
    let log =
        w.server.stderr() + &std::fs::read_to_string(w.dir.path().join(format!("idp-{port}.log"))).unwrap_or_default();
    assert!(log.contains(reason), "refused, but not because of {reason:?}:\n{log}");
}

fn good_login_creates_the_user_with_groups_and_a_session(db: &TestDb) {
    let w = world(db);
    w.cli(&["org", "create", "--name", "Acme", "--slug", "acme"]);
    let md = Browser::new().open(&w.sp("okta"));
    assert_eq!(md.status, 200);
    assert!(
        md.body.contains("EntityDescriptor") && md.body.contains(&w.acs("okta")) && md.body.contains("X509Certificate")
    );
    let mut b = Browser::new();
    let (id, relay, url) = start(&w, &mut b, "okta");
    // The AuthnRequest is signed (HTTP-Redirect binding: RSA-SHA256 over the query as sent) with
    // the key whose certificate our metadata publishes.
    let query = url.query().unwrap();
    let (signed, signature) = query.split_once("&Signature=").expect("a signed AuthnRequest");
    assert!(signed.contains("&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"), "{signed}");
    let signature: String =
        url::form_urlencoded::parse(format!("s={signature}").as_bytes()).next().unwrap().1.into_owned();
    let cert_b64 = md.body.split("<ds:X509Certificate>").nth(1).unwrap().split('<').next().unwrap();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, cert_b64).unwrap();
    let key = openssl::x509::X509::from_der(&der).unwrap().public_key().unwrap();
    let mut verifier = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
    verifier.update(signed.as_bytes()).unwrap();
    let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, signature).unwrap();
    assert!(verifier.verify(&raw).unwrap(), "the AuthnRequest signature verifies with our metadata's certificate");
    let (status, page) = b.post_form_page(
        &w.acs("okta"),
        "http://127.0.0.1:9",
        &form(&mint(&w.good(Some(&id), "alice@example.test")), Some(&relay)),
    );
    assert_eq!(status, 303, "{page}");
    assert!(w.signed_in(&mut b));
    let users = w.users();
    assert!(users.contains("alice@example.test"), "{users}");
    assert_eq!(users.lines().count(), 1);
    // The groups attribute gave the admin role in acme; a login without the group takes it away.
    let members = || {
        use idp::storage::organisations::OrganisationRepository;
        let db = idp::storage::Db::open(&idp::storage::DatabaseUrl::parse(&w.database_url()).unwrap(), 1).unwrap();
        let org = db.read(|c| c.find_organisation_by_slug("acme")).unwrap().unwrap();
        db.read(|c| c.organisation_members(org.id)).unwrap()
    };
    let m = members();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].role, idp::domain::role::RoleRef::Builtin(idp::domain::role::BuiltinRole::Admin));
    assert_eq!(m[0].source.as_deref(), Some("connector:okta"));
    let mut b3 = Browser::new();
    let (id3, relay3, _) = start(&w, &mut b3, "okta");
    let mut o = w.good(Some(&id3), "alice@example.test");
    o["attributes"]["groups"] = json!(["staff"]);
    assert_eq!(post(&mut b3, &w.acs("okta"), &form(&mint(&o), Some(&relay3))).0, 303);
    assert!(members().is_empty(), "the mapped role is removed with the group");
    let users = w.users();
    // The relay state was consumed: the same response again is refused.
    let mut b2 = Browser::new();
    let again = post(&mut b2, &w.acs("okta"), &form(&mint(&w.good(Some(&id), "alice@example.test")), Some(&relay)));
    assert_refused(&w, &mut b2, again, &users);
}

/// A connection an organisation adds with `idp connector create`: the certificate is stored
/// (not its path), the running server picks it up, and a login through it works.
fn an_organisation_adds_its_own_saml_connection(db: &TestDb) {
    let w = world(db);
    w.cli(&["org", "create", "--name", "Acme", "--slug", "acme"]);
    let cert = w.dir.path().join("acme-idp.pem");
    std::fs::copy(peer_dir().join("certs/idp-cert.pem"), &cert).unwrap();
    let file = w.dir.path().join("acme.toml");
    std::fs::write(
        &file,
        format!(
            "id = \"acme-okta\"\ntype = \"saml\"\nname = \"Acme Okta\"\npreset = \"okta\"\nidp_entity_id = \"{IDP_ENTITY}\"\nsso_url = \"http://127.0.0.1:9/sso\"\nidp_certificate_file = \"{}\"\n",
            cert.display()
        ),
    )
    .unwrap();
    w.cli(&["connector", "create", "--org", "acme", "--file", &file.display().to_string()]);
    std::fs::remove_file(&cert).unwrap();
    let mut b = Browser::new();
    let (id, relay, _) = start(&w, &mut b, "acme-okta");
    let mut o = w.good(Some(&id), "carol@example.test");
    o["acs"] = json!(w.acs("acme-okta"));
    o["sp"] = json!(w.sp("acme-okta"));
    let (status, page) = post(&mut b, &w.acs("acme-okta"), &form(&mint(&o), Some(&relay)));
    assert_eq!(status, 303, "{page}");
    assert!(w.signed_in(&mut b));
    assert!(w.users().contains("carol@example.test"));
}

fn replay_is_refused(db: &TestDb) {
    let w = world(db);
    let mut o = w.good(None, "alice@example.test");
    o["acs"] = json!(w.acs("dash"));
    o["sp"] = json!(w.sp("dash"));
    let response = mint(&o);
    let mut b = Browser::new();
    let (status, page) = b.post_form_page(&w.acs("dash"), "http://127.0.0.1:9", &form(&response, None));
    assert_eq!(status, 303, "IdP-initiated login where allowed: {page}");
    let users = w.users();
    let mut b2 = Browser::new();
    let r = post(&mut b2, &w.acs("dash"), &form(&response, None));
    assert_refused(&w, &mut b2, r, &users);
}

fn unsolicited_is_refused_while_idp_initiated_is_off(db: &TestDb) {
    let w = world(db);
    let before = w.users();
    let mut b = Browser::new();
    let r = post(&mut b, &w.acs("okta"), &form(&mint(&w.good(None, "mallory@example.test")), None));
    assert_refused(&w, &mut b, r, &before);
}

fn unknown_in_response_to(db: &TestDb) {
    refused_with(db, "InResponseTo: does not match", |_, o| o["inResponseTo"] = json!("_not-our-request"));
}

fn another_browsers_request(db: &TestDb) {
    let w = world(db);
    let before = w.users();
    let mut victim = Browser::new();
    let (victim_id, _, _) = start(&w, &mut victim, "okta");
    let mut attacker = Browser::new();
    let (_, attacker_relay, _) = start(&w, &mut attacker, "okta");
    // The victim's request id with the attacker's flow.
    let r = post(
        &mut attacker,
        &w.acs("okta"),
        &form(&mint(&w.good(Some(&victim_id), "mallory@example.test")), Some(&attacker_relay)),
    );
    assert_refused(&w, &mut attacker, r, &before);
    // And the attacker's RelayState from the victim's browser (no flow cookie of that flow).
    let (attacker_id, attacker_relay, _) = start(&w, &mut attacker, "okta");
    let r = post(
        &mut victim,
        &w.acs("okta"),
        &form(&mint(&w.good(Some(&attacker_id), "mallory@example.test")), Some(&attacker_relay)),
    );
    assert_refused(&w, &mut victim, r, &before);
}

fn signed_by_another_key(db: &TestDb) {
    refused_with(db, "not signed by the pinned certificate", |_, o| o["key"] = json!("other"));
}
fn signatures_removed(db: &TestDb) {
    refused_with(db, "signature: unsigned", |_, o| o["tamper"] = json!("strip-signatures"));
}
fn signature_values_emptied(db: &TestDb) {
    refused_with(db, "not signed by the pinned certificate", |_, o| o["tamper"] = json!("strip-signature-values"));
}
fn unsigned_assertion_in_signed_response(db: &TestDb) {
    refused_with(db, "the assertion itself is not signed", |_, o| o["signAssertion"] = json!(false));
}
fn assertion_signature_removed_from_signed_response(db: &TestDb) {
    refused_with(db, "not signed by the pinned certificate", |_, o| o["tamper"] = json!("strip-assertion-signature"));
}
fn sha1_signature(db: &TestDb) {
    refused_with(db, "SHA-256 or stronger", |_, o| o["sha1"] = json!(true));
}
fn xslt_transform(db: &TestDb) {
    refused_with(db, "a transform other than", |_, o| o["tamper"] = json!("xslt"));
}
fn doctype_xxe(db: &TestDb) {
    refused_with(db, "a DOCTYPE", |_, o| o["tamper"] = json!("doctype"));
}
fn billion_laughs(db: &TestDb) {
    refused_with(db, "a DOCTYPE", |_, o| o["tamper"] = json!("billion-laughs"));
}
fn wrong_audience(db: &TestDb) {
    refused_with(db, "we are not the audience", |_, o| o["audience"] = json!("https://another-sp.example/metadata"));
}
fn missing_audience(db: &TestDb) {
    refused_with(db, "no AudienceRestriction", |_, o| o["audience"] = Value::Null);
}
fn wrong_recipient(db: &TestDb) {
    refused_with(db, "Recipient is not our ACS", |w, o| o["recipient"] = json!(w.acs("dash")));
}
fn wrong_destination(db: &TestDb) {
    refused_with(db, "Destination is not our ACS", |w, o| o["destination"] = json!(w.acs("dash")));
}
fn wrong_issuer(db: &TestDb) {
    refused_with(db, "the Response's Issuer", |_, o| o["issuer"] = json!("urn:test:another-idp"));
}
fn wrong_assertion_issuer(db: &TestDb) {
    refused_with(db, "the assertion's Issuer", |_, o| o["assertionIssuer"] = json!("urn:test:another-idp"));
}
fn expired(db: &TestDb) {
    refused_with(db, "expired (", |_, o| {
        o["notOnOrAfter"] = json!(-600);
        o["issueInstant"] = json!(-200);
    });
}
fn not_yet_valid(db: &TestDb) {
    refused_with(db, "not yet valid", |_, o| o["notBefore"] = json!(600));
}
fn stale_issue_instant(db: &TestDb) {
    refused_with(db, "IssueInstant too old", |_, o| o["issueInstant"] = json!(-3600));
}
fn future_issue_instant(db: &TestDb) {
    refused_with(db, "IssueInstant in the future", |_, o| o["issueInstant"] = json!(3600));
}

fn failed_status_is_a_clear_refusal(db: &TestDb) {
    let w = world(db);
    let before = w.users();
    let mut b = Browser::new();
    let (id, relay, _) = start(&w, &mut b, "okta");
    let mut o = w.good(Some(&id), "alice@example.test");
    o["status"] = json!("urn:oasis:names:tc:SAML:2.0:status:Responder");
    o["noAssertion"] = json!(true);
    o["signAssertion"] = json!(false);
    let r = post(&mut b, &w.acs("okta"), &form(&mint(&o), Some(&relay)));
    assert_eq!(r.0, 403, "{}", r.1);
    assert!(r.1.contains("refused"), "{}", r.1);
    assert_refused(&w, &mut b, r, &before);
}

fn xsw(db: &TestDb, variant: &str) {
    refused_with(db, "SAML response refused", |_, o| {
        o["tamper"] = json!(variant);
        o["evilNameId"] = json!("victim@example.test");
    });
}
fn xsw1(db: &TestDb) {
    xsw(db, "xsw1")
}
fn xsw2(db: &TestDb) {
    xsw(db, "xsw2")
}
fn xsw3(db: &TestDb) {
    xsw(db, "xsw3")
}
fn xsw4(db: &TestDb) {
    xsw(db, "xsw4")
}
fn xsw5(db: &TestDb) {
    xsw(db, "xsw5")
}
fn xsw6(db: &TestDb) {
    xsw(db, "xsw6")
}
fn xsw7(db: &TestDb) {
    xsw(db, "xsw7")
}
fn xsw8(db: &TestDb) {
    xsw(db, "xsw8")
}

/// `user@evil.com<!---->.victim.com`: the comment is outside the signed (c14n) bytes, and the
/// NameID is read whole from what was verified, never cut at the comment.
fn nameid_comment_is_read_whole(db: &TestDb) {
    let w = world(db);
    let mut b = Browser::new();
    let (id, relay, _) = start(&w, &mut b, "okta");
    let mut o = w.good(Some(&id), "user@evil.com.victim.com");
    o["tamper"] = json!("nameid-comment");
    o["attributes"] = json!({});
    let (status, page) = b.post_form_page(&w.acs("okta"), "http://127.0.0.1:9", &form(&mint(&o), Some(&relay)));
    let users = w.users();
    assert!(!users.lines().any(|l| l.contains("user@evil.com ") || l.trim_end().ends_with("user@evil.com")), "{users}");
    if status == 303 {
        assert!(users.contains("user@evil.com.victim.com"), "{users}");
    } else {
        assert!((400..500).contains(&status), "{status}: {page}");
        assert_eq!(users, "");
    }
}

fn oversized_response_is_refused(db: &TestDb) {
    let w = world(db);
    let before = w.users();
    let mut b = Browser::new();
    let (_, relay, _) = start(&w, &mut b, "okta");
    let huge = "A".repeat(100 * 1024);
    let r = post(&mut b, &w.acs("okta"), &form(&huge, Some(&relay)));
    assert_refused(&w, &mut b, r, &before);
}

/// A plain response whose only signature is the assertion's (Okta's "Response: Unsigned").
fn plain_assertion_signed_alone_logs_in(db: &TestDb) {
    let w = world(db);
    let mut b = Browser::new();
    let (id, relay, _) = start(&w, &mut b, "okta");
    let mut o = w.good(Some(&id), "frank@example.test");
    o["signResponse"] = json!(false);
    let (status, page) = post(&mut b, &w.acs("okta"), &form(&mint(&o), Some(&relay)));
    assert_eq!(status, 303, "{page}\n{}", w.server.stderr());
    assert!(w.signed_in(&mut b));
    assert!(w.users().contains("frank@example.test"));
}

const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";

/// A good response encrypted by samlify to the certificate of our metadata logs in at
/// `connector`, with `edit` choosing the algorithms.
fn encrypted_login(db: &TestDb, connector: &str, edit: impl FnOnce(&mut Value)) {
    let w = world(db);
    let md = Browser::new().open(&w.sp(connector)).body;
    assert!(md.contains("<md:KeyDescriptor use=\"encryption\">") && md.contains(AES256_GCM), "{md}");
    let mut b = Browser::new();
    let (id, relay, _) = start(&w, &mut b, connector);
    let mut o = w.good(Some(&id), "erin@example.test");
    o["acs"] = json!(w.acs(connector));
    o["sp"] = json!(w.sp(connector));
    o["encryptCert"] = json!(w.sp_cert_pem());
    edit(&mut o);
    let response = mint(&o);
    let xml = String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &response).unwrap())
        .unwrap();
    assert!(xml.contains("EncryptedAssertion") && !xml.contains("erin@example.test"), "not encrypted: {xml}");
    let (status, page) = post(&mut b, &w.acs(connector), &form(&response, Some(&relay)));
    assert_eq!(status, 303, "{page}\n{}", w.server.stderr());
    assert!(w.signed_in(&mut b));
    let users = w.users();
    assert!(users.contains("erin@example.test"), "{users}");
    assert_eq!(users.lines().count(), 1);
}

/// samlify's defaults, as Okta's and OneLogin's: AES-256-CBC, RSA-OAEP, the Response signed
/// over the ciphertext and the assertion signed inside it.
fn encrypted_assertion_cbc_in_a_signed_response_logs_in(db: &TestDb) {
    encrypted_login(db, "okta", |_| {})
}
/// AES-256-GCM with only the assertion signed, where encryption is required.
fn encrypted_assertion_gcm_logs_in_where_required(db: &TestDb) {
    encrypted_login(db, "enc", |o| {
        o["dataEncryption"] = json!(AES256_GCM);
        o["signResponse"] = json!(false);
    })
}
fn encrypted_to_another_key(db: &TestDb) {
    let other = std::fs::read_to_string(peer_dir().join("certs/other-cert.pem")).unwrap();
    refused_with(db, "does not decrypt with our key", |_, o| {
        o["encryptCert"] = json!(other);
        o["dataEncryption"] = json!(AES256_GCM);
    });
}
fn encrypted_ciphertext_tampered(db: &TestDb) {
    refused_with(db, "does not decrypt with our key", |w, o| {
        o["encryptCert"] = json!(w.sp_cert_pem());
        o["dataEncryption"] = json!(AES256_GCM);
        o["signResponse"] = json!(false);
        o["encTamper"] = json!("ciphertext");
    });
}
/// Under a Response signature a changed ciphertext is refused before any decryption.
fn encrypted_cbc_ciphertext_tampered_under_a_signed_response(db: &TestDb) {
    refused_with(db, "not signed by the pinned certificate", |w, o| {
        o["encryptCert"] = json!(w.sp_cert_pem());
        o["encTamper"] = json!("ciphertext");
    });
}
fn encrypted_cbc_in_an_unsigned_response(db: &TestDb) {
    refused_with(db, "AES-CBC in a Response that is not signed", |w, o| {
        o["encryptCert"] = json!(w.sp_cert_pem());
        o["signResponse"] = json!(false);
    });
}
fn encrypted_key_transport_pkcs1_v1_5(db: &TestDb) {
    refused_with(db, "RSA PKCS#1 v1.5 key transport is refused", |w, o| {
        o["encryptCert"] = json!(w.sp_cert_pem());
        o["keyEncryption"] = json!("http://www.w3.org/2001/04/xmlenc#rsa-1_5");
    });
}
fn encrypted_assertion_unsigned_inside(db: &TestDb) {
    refused_with(db, "the decrypted assertion is not signed", |w, o| {
        o["encryptCert"] = json!(w.sp_cert_pem());
        o["signAssertion"] = json!(false);
    });
}
fn encrypted_and_plain_assertion_wrapped(db: &TestDb) {
    refused_with(db, "not exactly one assertion, plain or encrypted", |w, o| {
        o["encryptCert"] = json!(w.sp_cert_pem());
        o["encTamper"] = json!("plain-too");
        o["evilNameId"] = json!("victim@example.test");
    });
}
fn encrypted_doctype_inside(db: &TestDb) {
    refused_with(db, "a DOCTYPE", |w, o| {
        o["encryptCert"] = json!(w.sp_cert_pem());
        o["signResponse"] = json!(false);
        o["encTamper"] = json!("manual-doctype");
    });
}
fn plain_assertion_where_encryption_is_required(db: &TestDb) {
    refused_at(db, "enc", "a plain assertion where this connection requires encrypted ones", |_, _| {});
}

/// pysaml2 as the IdP, with metadata exchanged both ways: idp reads the IdP's metadata
/// (`idp_metadata_file`), pysaml2 trusts idp's SP metadata and so checks our AuthnRequest's
/// signature and ACS; then its signed response signs the user in.
fn pysaml2_login_with_metadata_exchanged_both_ways(db: &TestDb) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/pysaml2");
    let python = dir.join(".venv/bin/python");
    assert!(python.exists(), "tests/peers/pysaml2 is not installed: run ./scripts/test");
    let port = free_port();
    let certs = peer_dir().join("certs");
    let mut child = Command::new(&python)
        .arg(dir.join("idp.py"))
        .env("PORT", port.to_string())
        .env("CERT", certs.join("idp-cert.pem"))
        .env("KEY", certs.join("idp-key.pem"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let peer = format!("http://127.0.0.1:{port}");
    let mut md = None;
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pysaml2 exited with {status}");
        }
        if let Ok(r) = harness::client().get(format!("{peer}/metadata")).send() {
            if r.status() == 200 {
                md = Some(r.text().unwrap());
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _peer = Kill(child);
    let dir = tempfile::tempdir().unwrap();
    let md_file = dir.path().join("pysaml2.xml");
    std::fs::write(&md_file, md.expect("pysaml2 metadata")).unwrap();
    let config = dir.path().join("idp.toml");
    std::fs::write(
        &config,
        format!(
            "signup = \"open\"\n\n[[connectors]]\nid = \"py\"\ntype = \"saml\"\nname = \"pysaml2\"\npreset = \"okta\"\nidp_metadata_file = \"{}\"\n",
            md_file.display()
        ),
    )
    .unwrap();
    let mut env = vec![("IDP_CONFIG".to_owned(), config.display().to_string())];
    if db.is_postgres() {
        env.push(("IDP_DATABASE_URL".to_owned(), db.url()));
    }
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start(dir.path(), &refs);
    let sp_md = format!("{}/saml/py/metadata", server.base);
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let r = harness::client().get(format!("{peer}/__test/load-sp?url={}", enc(&sp_md))).send().unwrap();
    assert_eq!(r.status(), 200, "pysaml2 did not take our metadata");
    let mut b = Browser::new();
    let page = b.open(&format!("{}/login/py", server.base));
    assert_eq!(page.status, 200, "pysaml2 refused our AuthnRequest: {}", page.body);
    assert!(page.url.starts_with(&format!("{peer}/sso")), "{}", page.url);
    let field = |name: &str| {
        let at = page.body.find(&format!("name=\"{name}\" value=\"")).unwrap() + name.len() + 15;
        page.body[at..].split('"').next().unwrap().replace("&amp;", "&")
    };
    let body = form(&field("SAMLResponse"), Some(&field("RelayState")));
    let (status, text) = b.post_form_page(&format!("{}/saml/py/acs", server.base), &peer, &body);
    assert_eq!(status, 303, "{text}\n{}", server.stderr());
    let home = b.open(&format!("{}/", server.base));
    assert!(home.body.contains("Signed in"), "{}", home.body);
    // A request signed with another key is refused by pysaml2: it checks our signature.
    let to = Browser::new().open_until(&format!("{}/login/py", server.base), "/sso");
    let forged = to.replace("Signature=", "Signature=AAAA");
    assert_eq!(harness::client().get(forged).send().unwrap().status(), 400);
}

on_both_backends!(
    pysaml2_login_with_metadata_exchanged_both_ways,
    good_login_creates_the_user_with_groups_and_a_session,
    an_organisation_adds_its_own_saml_connection,
    replay_is_refused,
    unsolicited_is_refused_while_idp_initiated_is_off,
    unknown_in_response_to,
    another_browsers_request,
    signed_by_another_key,
    signatures_removed,
    signature_values_emptied,
    unsigned_assertion_in_signed_response,
    assertion_signature_removed_from_signed_response,
    sha1_signature,
    xslt_transform,
    doctype_xxe,
    billion_laughs,
    wrong_audience,
    missing_audience,
    wrong_recipient,
    wrong_destination,
    wrong_issuer,
    wrong_assertion_issuer,
    expired,
    not_yet_valid,
    stale_issue_instant,
    future_issue_instant,
    failed_status_is_a_clear_refusal,
    xsw1,
    xsw2,
    xsw3,
    xsw4,
    xsw5,
    xsw6,
    xsw7,
    xsw8,
    nameid_comment_is_read_whole,
    oversized_response_is_refused,
    encrypted_assertion_cbc_in_a_signed_response_logs_in,
    encrypted_assertion_gcm_logs_in_where_required,
    encrypted_to_another_key,
    encrypted_ciphertext_tampered,
    encrypted_cbc_ciphertext_tampered_under_a_signed_response,
    encrypted_cbc_in_an_unsigned_response,
    encrypted_key_transport_pkcs1_v1_5,
    encrypted_assertion_unsigned_inside,
    encrypted_and_plain_assertion_wrapped,
    encrypted_doctype_inside,
    plain_assertion_where_encryption_is_required,
    plain_assertion_signed_alone_logs_in,
);
