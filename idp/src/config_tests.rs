use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn defaults_need_no_configuration() {
    let c = Config::load_with(None, &[]).unwrap();
    assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(c.database, DatabaseUrl::Sqlite("./idp-data/idp.sqlite".into()));
    assert_eq!(c.master_key, KeySource::File("./idp-data/master.key".into()));
    assert_eq!(c.session.idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(43200));
}

#[test]
fn environment_overrides_the_file() {
    let f = file("bind = \"127.0.0.1:9000\"\n[session]\nidle_timeout = \"10m\"\n");
    let c = Config::load_with(
        Some(f.path()),
        &env(&[
            ("IDP_BIND", "127.0.0.1:9100"),
            ("IDP_SESSION_ABSOLUTE_TIMEOUT", "2h"),
            ("IDP_RATE_LIMIT_PER_IP", "5"),
            ("IDP_HTTP_TRUSTED_PROXIES", "10.0.0.1, 10.0.0.2"),
            ("IDP_DATABASE_URL", "postgres://u@localhost/db"),
        ]),
    )
    .unwrap();
    assert_eq!(c.bind.to_string(), "127.0.0.1:9100");
    assert_eq!(c.session.idle_timeout, Duration::from_secs(600));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(7200));
    assert_eq!(c.rate_limit.per_ip, 5);
    assert_eq!(c.trusted_proxies.len(), 2);
    assert_eq!(c.database.backend(), crate::storage::Backend::Postgres);
}

#[test]
fn master_key_from_environment() {
    let c = Config::load_with(None, &env(&[("IDP_MASTER_KEY", "idp-master-v1:...")])).unwrap();
    assert!(matches!(c.master_key, KeySource::Env(_)));
}

#[test]
fn unknown_key_is_named() {
    let f = file("bind = \"127.0.0.1:1\"\nno_such_key = 1\n");
    let e = Config::load_with(Some(f.path()), &[]).unwrap_err().to_string();
    assert!(e.contains("no_such_key") && e.contains("line 2"), "{e}");
    let f = file("[session]\nidle_timeot = \"1m\"\n");
    let e = Config::load_with(Some(f.path()), &[]).unwrap_err().to_string();
    assert!(e.contains("idle_timeot"), "{e}");
}

#[test]
fn malformed_toml_and_wrong_types_are_refused() {
    for text in ["bind = ", "bind = 5", "[session]\nidle_timeout = 30", "database_max_connections = \"many\"", "\u{0}"]
    {
        let f = file(text);
        assert!(Config::load_with(Some(f.path()), &[]).is_err(), "{text:?}");
    }
    let e = Config::load_with(Some(Path::new("/nonexistent/idp.toml")), &[]).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn every_problem_is_reported_on_its_own_line() {
    let f = file(
        r#"
bind = "nowhere"
public_url = "ftp://x"
database_url = "mysql://x"
security_contact = "alice"
[session]
idle_timeout = "1s"
[audit]
retention_days = 0
"#,
    );
    let e = Config::load_with(Some(f.path()), &[]).unwrap_err();
    let keys: Vec<&str> = e.0.iter().map(|p| p.key.as_str()).collect();
    for want in
        ["bind", "public_url", "database_url", "security_contact", "session.idle_timeout", "audit.retention_days"]
    {
        assert!(keys.contains(&want), "{want} missing from {keys:?}");
    }
    assert_eq!(e.to_string().lines().count(), e.0.len());
    assert!(e.to_string().lines().all(|l| l.starts_with("config: ")));
}

#[test]
fn plain_http_is_refused_off_loopback() {
    assert!(Config::load_with(None, &env(&[("IDP_PUBLIC_URL", "http://id.example.com")])).is_err());
    assert!(Config::load_with(None, &env(&[("IDP_PUBLIC_URL", "https://id.example.com")])).is_ok());
    assert!(Config::load_with(None, &env(&[("IDP_PUBLIC_URL", "http://localhost:8080")])).is_ok());
    assert!(Config::load_with(None, &env(&[("IDP_PUBLIC_URL", "https://id.example.com/?x=1")])).is_err());
}

#[test]
fn bad_environment_values_name_the_variable() {
    let e = Config::load_with(None, &env(&[("IDP_RATE_LIMIT_PER_IP", "lots")])).unwrap_err().to_string();
    assert!(e.contains("IDP_RATE_LIMIT_PER_IP"), "{e}");
    let c = Config::load_with(None, &env(&[("IDP_NOT_A_KEY", "1")])).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("IDP_NOT_A_KEY")));
}

/// KEYS, the struct and docs/configuration.md describe the same keys.
#[test]
fn key_list_matches_struct_and_docs() {
    let mut table = toml::Table::new();
    for (key, kind) in KEYS {
        let sample = match (key, kind) {
            (_, KeyKind::Integer) => toml::Value::Integer(1),
            (_, KeyKind::Bool) => toml::Value::Boolean(true),
            (_, KeyKind::List) => toml::Value::Array(vec![]),
            (k, KeyKind::Text)
                if ["timeout", "window", "ttl", "rotation", "reload", "max_age"].iter().any(|s| k.ends_with(s)) =>
            {
                toml::Value::String("1m".into())
            }
            (&"log.format", _) => toml::Value::String("json".into()),
            (&"signup", _) => toml::Value::String("open".into()),
            _ => toml::Value::String("x".into()),
        };
        set_path(&mut table, key, sample);
    }
    // Every listed key exists (deny_unknown_fields would refuse it otherwise) ...
    let parsed: ConfigFile = toml::Value::Table(table).try_into().unwrap();
    // ... and every field of the struct is listed.
    let back = toml::Value::try_from(&parsed).unwrap();
    let mut leaves = Vec::new();
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => t
                .iter()
                .for_each(|(k, v)| walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out)),
            _ => out.push(prefix.to_owned()),
        }
    }
    walk("", &back, &mut leaves);
    let listed: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
    for leaf in &leaves {
        assert!(
            listed.contains(leaf) || FILE_ONLY_KEYS.contains(&leaf.as_str()),
            "{leaf} is a config field missing from KEYS"
        );
    }
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
    for key in FILE_ONLY_KEYS {
        assert!(docs.contains(&format!("`{key}`")), "docs/configuration.md does not document `{key}`");
    }
    for key in &listed {
        assert!(docs.contains(&format!("`{key}`")), "docs/configuration.md does not document `{key}`");
        assert!(docs.contains(&env_name(key)), "docs/configuration.md does not name {}", env_name(key));
    }
}

#[test]
fn connectors_are_validated() {
    let f = file(
        r#"
signup = "open"
[[connectors]]
id = "up"
type = "oidc"
name = "Upstream"
issuer = "http://127.0.0.1:9000"
client_id = "c"
client_secret_env = "UP_SECRET"

[[connectors]]
id = "gh"
type = "github"
name = "GitHub"
client_id = "c"
client_secret = "s"
orgs = ["Acme"]
"#,
    );
    let c = Config::load_with(Some(f.path()), &env(&[("UP_SECRET", "shh")])).unwrap();
    assert_eq!(c.connectors.len(), 2);
    assert_eq!(c.connectors[0].client_secret.expose(), "shh");
    assert!(!format!("{:?}", c.connectors[0]).contains("shh"), "a secret in Debug output");
    match &c.connectors[1].settings {
        ConnectorSettings::Github { api_url, orgs, .. } => {
            assert_eq!(api_url.as_str(), "https://api.github.com/");
            assert_eq!(orgs, &vec!["acme".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    let e = Config::load_with(Some(f.path()), &[]).unwrap_err().to_string();
    assert!(e.contains("connectors[0].client_secret_env") && e.contains("UP_SECRET"), "{e}");

    for (bad, key) in [
        (
            "id = \"Bad Id\"\ntype = \"oidc\"\nname = \"x\"\nissuer = \"https://i\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "connectors[0].id",
        ),
        ("id = \"a\"\ntype = \"oidc\"\nname = \"x\"\nclient_id = \"c\"\nclient_secret = \"s\"", "connectors[0].issuer"),
        (
            "id = \"a\"\ntype = \"oidc\"\nname = \"x\"\nissuer = \"http://evil.example\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "connectors[0].issuer",
        ),
        (
            "id = \"a\"\ntype = \"oidc\"\nname = \"x\"\nissuer = \"https://i\"\nclient_id = \"c\"",
            "connectors[0].client_secret",
        ),
        (
            "id = \"a\"\ntype = \"github\"\nname = \"x\"\nclient_id = \"c\"\nclient_secret = \"s\"\nhosted_domains = [\"x\"]",
            "connectors[0].hosted_domains",
        ),
        ("id = \"a\"\ntype = \"saml2\"\nname = \"x\"\nclient_id = \"c\"\nclient_secret = \"s\"", "saml2"),
        (
            "id = \"a\"\ntype = \"oidc\"\nname = \"x\"\nissuer = \"https://i\"\nclient_id = \"c\"\nclient_secret = \"s\"\nsurprise = 1",
            "surprise",
        ),
    ] {
        let f = file(&format!("[[connectors]]\n{bad}\n"));
        let e = Config::load_with(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn signup_policy() {
    assert_eq!(Config::load_with(None, &[]).unwrap().signup, Signup::Invite, "closed by default");
    let c = Config::load_with(None, &env(&[("IDP_SIGNUP", "domains"), ("IDP_SIGNUP_DOMAINS", "Example.com")])).unwrap();
    assert_eq!(c.signup, Signup::Domains(vec!["example.com".into()]));
    assert!(Config::load_with(None, &env(&[("IDP_SIGNUP", "domains")])).is_err());
    assert!(Config::load_with(None, &env(&[("IDP_SIGNUP", "everyone")])).is_err());
}

#[test]
fn passwords_with_domain_signup_are_refused() {
    let e = Config::load_with(
        None,
        &env(&[("IDP_PASSWORD_LOGIN", "true"), ("IDP_SIGNUP", "domains"), ("IDP_SIGNUP_DOMAINS", "corp.example")]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("password_login"), "{e}");
    assert!(Config::load_with(None, &env(&[("IDP_PASSWORD_LOGIN", "maybe")])).is_err());
    assert!(Config::load_with(None, &env(&[("IDP_PASSWORD_LOGIN", "yes")])).unwrap().password_login);
}

#[test]
fn clients_are_validated() {
    let f = file(
        r#"
[[clients]]
client_id = "app"
client_secret_env = "APP_SECRET"
redirect_uris = ["https://app.example.com/cb"]
post_logout_redirect_uris = ["https://app.example.com/bye"]
project = "acme/billing"
require_pkce = false

[[clients]]
client_id = "spa"
redirect_uris = ["http://127.0.0.1:3000/cb"]
first_party = false
"#,
    );
    let secret = "a-client-secret-of-forty-characters-long";
    let c = Config::load_with(Some(f.path()), &env(&[("APP_SECRET", secret)])).unwrap();
    assert_eq!(c.clients.len(), 2);
    let app = &c.clients[0];
    assert_eq!(app.auth_method, TokenEndpointAuthMethod::ClientSecretBasic);
    assert!(app.secret.as_ref().unwrap().matches(secret));
    assert!(!app.secret.as_ref().unwrap().matches("a-client-secret-of-forty-characters-lonG"));
    assert!(!format!("{app:?}").contains(secret), "a secret in Debug output");
    assert!(!app.require_pkce, "a confidential client may go without PKCE");
    assert_eq!(app.scopes, vec!["openid", "email", "profile", "offline_access"]);
    let spa = &c.clients[1];
    assert!(spa.is_public() && spa.require_pkce && !spa.first_party);
    assert_eq!(spa.auth_method, TokenEndpointAuthMethod::None);

    for (bad, key) in [
        ("client_id = \"a b\"\nredirect_uris = [\"https://a/cb\"]", "clients[0].client_id"),
        ("client_id = \"a\"", "clients[0].redirect_uris"),
        ("client_id = \"a\"\nredirect_uris = [\"http://evil.example/cb\"]", "clients[0].redirect_uris"),
        ("client_id = \"a\"\nredirect_uris = [\"https://a/cb#x\"]", "clients[0].redirect_uris"),
        ("client_id = \"a\"\nredirect_uris = [\"https://a/cb\"]\nrequire_pkce = false", "clients[0].require_pkce"),
        (
            "client_id = \"a\"\nredirect_uris = [\"https://a/cb\"]\nclient_secret = \"short\"",
            "clients[0].client_secret",
        ),
        (
            "client_id = \"a\"\nredirect_uris = [\"https://a/cb\"]\ntoken_endpoint_auth_method = \"client_secret_post\"",
            "clients[0].token_endpoint_auth_method",
        ),
        ("client_id = \"a\"\nredirect_uris = [\"https://a/cb\"]\nscopes = [\"email\"]", "clients[0].scopes"),
        (
            "client_id = \"a\"\nredirect_uris = [\"https://a/cb\"]\nscopes = [\"openid\", \"two words\"]",
            "clients[0].scopes",
        ),
        ("client_id = \"a\"\nredirect_uris = [\"https://a/cb\"]\nsurprise = 1", "surprise"),
    ] {
        let f = file(&format!("[[clients]]\n{bad}\n"));
        let e = Config::load_with(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
    // Two problems, two lines; a duplicate id is named.
    let f = file("[[clients]]\nclient_id = \"a\"\n[[clients]]\nclient_id = \"a\"\nredirect_uris = [\"ftp://x\"]\n");
    let e = Config::load_with(Some(f.path()), &[]).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 3, "{e}");
    assert!(e.contains("clients[1].client_id") && e.contains("used by another client"), "{e}");
}

#[test]
fn saml_connections_need_a_pinned_certificate() {
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Test IdP").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap()).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256()).unwrap();
    let pem = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    let cert = file(&pem);
    let base = "id = \"okta\"\ntype = \"saml\"\nname = \"Okta\"\npreset = \"okta\"\nidp_entity_id = \"urn:idp\"\nsso_url = \"https://idp.example/sso\"";
    let ok = file(&format!("[[connectors]]\n{base}\nidp_certificate_file = \"{}\"\n", cert.path().display()));
    let c = Config::load_with(Some(ok.path()), &[]).unwrap();
    match &c.connectors[0].settings {
        ConnectorSettings::Saml(s) => {
            assert_eq!(s.idp_certificates.len(), 1);
            assert!(s.sign_requests && !s.allow_idp_initiated);
            assert_eq!(s.attributes.groups, "groups");
        }
        other => panic!("{other:?}"),
    }
    // The same from metadata.
    let der = openssl::x509::X509::from_pem(pem.as_bytes()).unwrap().to_der().unwrap();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let md = file(&format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"urn:idp:md\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"https://idp.example/md-sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>"
    ));
    let f = file(&format!(
        "[[connectors]]\nid = \"one\"\ntype = \"saml\"\nname = \"One\"\npreset = \"onelogin\"\nidp_metadata_file = \"{}\"\n",
        md.path().display()
    ));
    let c = Config::load_with(Some(f.path()), &[]).unwrap();
    match &c.connectors[0].settings {
        ConnectorSettings::Saml(s) => {
            assert_eq!(s.idp_entity_id, "urn:idp:md");
            assert_eq!(s.sso_url.as_str(), "https://idp.example/md-sso");
            assert_eq!(s.idp_certificates, vec![der_of(&pem)]);
            assert_eq!(s.attributes.email, "User.email");
        }
        other => panic!("{other:?}"),
    }
    for (bad, key) in [
        (base.to_owned(), "idp_certificate"),
        (format!("{base}\nidp_certificate = \"not a pem\""), "idp_certificate"),
        (format!("{base}\nidp_certificate_file = \"{}\"\nclient_id = \"x\"", cert.path().display()), "client_id"),
        (base.replace("preset = \"okta\"\n", ""), "preset"),
        (base.replace("https://idp.example/sso", "http://idp.example/sso"), "sso_url"),
        (
            "id = \"a\"\ntype = \"oidc\"\nname = \"x\"\nissuer = \"https://i\"\nclient_id = \"c\"\nclient_secret = \"s\"\npreset = \"okta\"".to_owned(),
            "preset",
        ),
    ] {
        let f = file(&format!("[[connectors]]\n{bad}\n"));
        let e = Config::load_with(Some(f.path()), &[]).unwrap_err().to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    openssl::x509::X509::from_pem(pem.as_bytes()).unwrap().to_der().unwrap()
}
