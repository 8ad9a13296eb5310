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
            (_, KeyKind::List) => toml::Value::Array(vec![]),
            (k, KeyKind::Text) if k.ends_with("timeout") || k.ends_with("window") => toml::Value::String("1m".into()),
            (&"log.format", _) => toml::Value::String("json".into()),
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
        assert!(listed.contains(leaf), "{leaf} is a config field missing from KEYS");
    }
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
    for key in &listed {
        assert!(docs.contains(&format!("`{key}`")), "docs/configuration.md does not document `{key}`");
        assert!(docs.contains(&env_name(key)), "docs/configuration.md does not name {}", env_name(key));
    }
}
