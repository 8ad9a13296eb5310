//! Configuration: a TOML file, every key overridable by an `IDP_<KEY>` environment variable
//! (dots become underscores: `session.idle_timeout` is `IDP_SESSION_IDLE_TIMEOUT`). Unknown
//! keys are refused; everything is validated at once, one line per problem. No globals: the
//! validated [`Config`] is passed to whoever needs it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;
use zeroize::Zeroizing;

use crate::backup::schedule::Schedule;
pub use crate::client_config::{ClientConfig, ClientSpec, TokenEndpointAuthMethod};
pub use crate::connector_config::{ClientSecret, ConnectorConfig, ConnectorKind, ConnectorSettings, ConnectorSpec};
use crate::crypto::backup_key::BackupKeySource;
use crate::crypto::secretbox::KeySource;
use crate::storage::DatabaseUrl;

/// The file's shape, before validation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    pub public_url: Option<String>,
    pub bind: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    pub master_key_file: Option<PathBuf>,
    pub security_contact: Option<String>,
    pub security_policy_url: Option<String>,
    pub templates_dir: Option<PathBuf>,
    pub product_name: String,
    pub branding: BrandingConfig,
    pub password_login: bool,
    pub password: PasswordConfig,
    pub signup: SignupMode,
    pub signup_domains: Vec<String>,
    /// The nameserver domain verification asks (`IP:PORT`); the system's when unset.
    pub dns_resolver: Option<String>,
    pub session: SessionConfig,
    pub tokens: TokensConfig,
    pub audit: AuditConfig,
    pub rate_limit: RateLimitConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<ConnectorConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientConfig>,
    pub backup: BackupConfig,
}

/// The look of the pages: a logo and an accent colour beside `product_name`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BrandingConfig {
    pub logo_file: Option<PathBuf>,
    pub accent_colour: Option<String>,
}

/// Password rules, when `password_login` is on.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    pub composition_rule: bool,
    pub max_concurrent_hashes: usize,
}

/// Who may get an account at first login.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Anyone an upstream vouches for (with a verified e-mail).
    Open,
    /// Only people invited by an administrator.
    Invite,
    /// People whose verified e-mail is in `signup_domains`.
    Domains,
}

/// The validated sign-up policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signup {
    Open,
    Invite,
    Domains(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    pub key_file: Option<PathBuf>,
    pub dir: Option<PathBuf>,
    pub schedule: Option<String>,
    pub keep_days: u32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self { key_file: None, dir: None, schedule: None, keep_days: 7 }
    }
}

/// Backups, validated: where the key and the files are, and when scheduled backups run.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub key: BackupKeySource,
    pub dir: PathBuf,
    pub schedule: Option<Schedule>,
    pub keep_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub absolute_timeout: Duration,
}

/// API tokens and idp's own signing keys.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// How long a validated API token is remembered in process; bounds how long another
    /// instance's revocation can go unseen (this instance's own revocations are seen at once).
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// How often a new signing key takes over.
    #[serde(with = "humantime_serde")]
    pub signing_key_rotation: Duration,
    /// How often each instance reloads the signing keys from the database.
    #[serde(with = "humantime_serde")]
    pub signing_key_reload: Duration,
    /// The `max-age` of JWKS responses: how long apps may cache idp's keys.
    #[serde(with = "humantime_serde")]
    pub jwks_max_age: Duration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            cache_ttl: Duration::from_secs(2),
            signing_key_rotation: Duration::from_secs(30 * 24 * 3600),
            signing_key_reload: Duration::from_secs(60),
            jwks_max_age: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub per_ip: u32,
    pub per_account: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub trusted_proxies: Vec<String>,
    pub workers: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when standard error is not a terminal, text when it is.
    Auto,
    Json,
    Text,
}

impl Default for ConfigFile {
    fn default() -> Self {
        Self {
            public_url: None,
            bind: "127.0.0.1:8080".into(),
            data_dir: "./idp-data".into(),
            database_url: None,
            database_max_connections: 8,
            master_key_file: None,
            security_contact: None,
            security_policy_url: None,
            templates_dir: None,
            product_name: "idp".into(),
            branding: BrandingConfig::default(),
            password_login: false,
            password: PasswordConfig::default(),
            signup: SignupMode::Invite,
            signup_domains: Vec::new(),
            dns_resolver: None,
            connectors: Vec::new(),
            clients: Vec::new(),
            session: SessionConfig::default(),
            tokens: TokensConfig::default(),
            audit: AuditConfig::default(),
            rate_limit: RateLimitConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            backup: BackupConfig::default(),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { idle_timeout: Duration::from_secs(30 * 60), absolute_timeout: Duration::from_secs(12 * 3600) }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { retention_days: 400 }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { window: Duration::from_secs(60), per_ip: 60, per_account: 10 }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { max_body_bytes: 64 * 1024, trusted_proxies: Vec::new(), workers: 0 }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Auto }
    }
}

/// How an environment variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Text,
    Integer,
    Bool,
    List,
}

/// Every key the file accepts, with how its environment override is read. A test checks this
/// list against the struct above and against docs/configuration.md.
pub const KEYS: &[(&str, KeyKind)] = &[
    ("public_url", KeyKind::Text),
    ("bind", KeyKind::Text),
    ("data_dir", KeyKind::Text),
    ("database_url", KeyKind::Text),
    ("database_max_connections", KeyKind::Integer),
    ("master_key_file", KeyKind::Text),
    ("security_contact", KeyKind::Text),
    ("security_policy_url", KeyKind::Text),
    ("templates_dir", KeyKind::Text),
    ("product_name", KeyKind::Text),
    ("branding.logo_file", KeyKind::Text),
    ("branding.accent_colour", KeyKind::Text),
    ("password_login", KeyKind::Bool),
    ("password.composition_rule", KeyKind::Bool),
    ("password.max_concurrent_hashes", KeyKind::Integer),
    ("signup", KeyKind::Text),
    ("signup_domains", KeyKind::List),
    ("dns_resolver", KeyKind::Text),
    ("session.idle_timeout", KeyKind::Text),
    ("session.absolute_timeout", KeyKind::Text),
    ("tokens.cache_ttl", KeyKind::Text),
    ("tokens.signing_key_rotation", KeyKind::Text),
    ("tokens.signing_key_reload", KeyKind::Text),
    ("tokens.jwks_max_age", KeyKind::Text),
    ("audit.retention_days", KeyKind::Integer),
    ("rate_limit.window", KeyKind::Text),
    ("rate_limit.per_ip", KeyKind::Integer),
    ("rate_limit.per_account", KeyKind::Integer),
    ("http.max_body_bytes", KeyKind::Integer),
    ("http.trusted_proxies", KeyKind::List),
    ("http.workers", KeyKind::Integer),
    ("log.level", KeyKind::Text),
    ("log.format", KeyKind::Text),
    ("backup.key_file", KeyKind::Text),
    ("backup.dir", KeyKind::Text),
    ("backup.schedule", KeyKind::Text),
    ("backup.keep_days", KeyKind::Integer),
];

/// Keys that only the file can set (arrays of tables).
pub const FILE_ONLY_KEYS: &[&str] = &["connectors", "clients"];

/// Environment variables idp reads that are not config keys.
pub const ENV_CONFIG: &str = "IDP_CONFIG";
pub const ENV_MASTER_KEY: &str = "IDP_MASTER_KEY";
pub const ENV_BACKUP_KEY: &str = "IDP_BACKUP_KEY";

pub fn env_name(key: &str) -> String {
    format!("IDP_{}", key.replace('.', "_").to_uppercase())
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub problem: String,
    pub expected: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.expected.is_empty() {
            write!(f, "config: {}: {}", self.key, self.problem)
        } else {
            write!(f, "config: {}: {}; expected {}", self.key, self.problem, self.expected)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(Problem::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl std::error::Error for Problems {}

fn problem(key: &str, problem: impl Into<String>, expected: impl Into<String>) -> Problem {
    Problem { key: key.into(), problem: problem.into(), expected: expected.into() }
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub public_url: Url,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub database_max_connections: u32,
    pub master_key: KeySource,
    pub security_contact: Option<String>,
    pub security_policy_url: Option<String>,
    pub templates_dir: Option<PathBuf>,
    pub product_name: String,
    /// The logo's bytes and content type, read at start.
    pub logo: Option<(Vec<u8>, &'static str)>,
    pub accent_colour: String,
    pub password_login: bool,
    pub password: PasswordConfig,
    pub signup: Signup,
    /// The nameserver domain verification asks; `None`: the system's (/etc/resolv.conf).
    pub dns_resolver: Option<SocketAddr>,
    pub connectors: Vec<ConnectorSpec>,
    /// The relying parties idp serves as an OpenID Provider.
    pub clients: Vec<ClientSpec>,
    pub session: SessionConfig,
    pub tokens: TokensConfig,
    pub audit: AuditConfig,
    pub rate_limit: RateLimitConfig,
    pub max_body_bytes: usize,
    pub trusted_proxies: Vec<IpAddr>,
    pub workers: usize,
    pub log: LogConfig,
    pub backup: BackupSettings,
    /// Things worth telling the operator that do not stop the start.
    pub warnings: Vec<String>,
}

impl Config {
    /// Whether cookies and HSTS can rely on TLS.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// `public_url` without a trailing slash, for building absolute URLs.
    pub fn base_url(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    /// Loads from the file (if any) and the process environment.
    pub fn load(path: Option<&Path>) -> Result<Config, Problems> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with(path, &vars)
    }

    /// Loads from the file (if any) and the given environment (`IDP_*` overrides, and the
    /// variables that `client_secret_env` names).
    pub fn load_with(path: Option<&Path>, env: &[(String, String)]) -> Result<Config, Problems> {
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut table = match path {
            None => toml::Table::new(),
            Some(path) => read_file(path)?,
        };
        for (key, kind) in KEYS {
            if let Some(value) = lookup(&env_name(key)) {
                let value = env_value(key, *kind, &value)?;
                set_path(&mut table, key, value);
            }
        }
        let file: ConfigFile = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Problems(vec![problem("environment", e.message().to_owned(), "")]))?;
        let mut warnings: Vec<String> = env
            .iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("IDP_"))
            .filter(|k| {
                *k != ENV_CONFIG
                    && *k != ENV_MASTER_KEY
                    && *k != ENV_BACKUP_KEY
                    && !KEYS.iter().any(|(key, _)| env_name(key) == **k)
            })
            .map(|k| format!("environment variable {k} is not a configuration key; ignored"))
            .collect();
        let master_key = lookup(ENV_MASTER_KEY).map(Zeroizing::new);
        let backup_key = lookup(ENV_BACKUP_KEY).map(Zeroizing::new);
        let config = validate(file, master_key, backup_key, &lookup)?;
        warnings.extend(config.warnings.iter().cloned());
        Ok(Config { warnings, ..config })
    }
}

fn read_file(path: &Path) -> Result<toml::Table, Problems> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Problems(vec![problem(&shown, format!("cannot read the file: {e}"), "a readable TOML file")]))?;
    // Deserialising the text directly gives errors with the line and the key's name.
    if let Err(e) = toml::from_str::<ConfigFile>(&text) {
        let line = e.span().map(|s| text.get(..s.start).unwrap_or_default().matches('\n').count() + 1);
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        return Err(Problems(vec![problem(&format!("{shown}{at}"), e.message().trim().to_owned(), "")]));
    }
    text.parse::<toml::Table>().map_err(|e| Problems(vec![problem(&shown, e.message().to_owned(), "")]))
}

fn env_value(key: &str, kind: KeyKind, raw: &str) -> Result<toml::Value, Problems> {
    let name = env_name(key);
    Ok(match kind {
        KeyKind::Text => toml::Value::String(raw.to_owned()),
        KeyKind::Integer => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| Problems(vec![problem(&name, format!("{raw:?} is not a whole number"), "an integer")]))?,
        KeyKind::Bool => match raw.trim() {
            "true" | "1" | "yes" | "on" => toml::Value::Boolean(true),
            "false" | "0" | "no" | "off" => toml::Value::Boolean(false),
            _ => return Err(Problems(vec![problem(&name, format!("{raw:?} is not a yes/no value"), "true or false")])),
        },
        KeyKind::List => toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_owned()))
                .collect(),
        ),
    })
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut t = table;
    for p in parts {
        let entry = t.entry(p.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(inner) = entry else { return };
        t = inner;
    }
    t.insert(last.to_owned(), value);
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check_public_url(raw: &str, warnings: &mut Vec<String>) -> Result<Url, Problem> {
    let key = "public_url";
    let u = Url::parse(raw)
        .map_err(|_| problem(key, format!("{raw:?} is not a URL"), "an absolute URL such as https://id.example.com"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(problem(key, format!("{raw:?} is not an http(s) URL with a host"), "https://HOST[:PORT][/PATH]"));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err(problem(
            key,
            "has a query, fragment or credentials",
            "https://HOST[:PORT][/PATH] and nothing else",
        ));
    }
    if u.scheme() == "http" {
        if !is_loopback_host(&u) {
            return Err(problem(
                key,
                format!(
                    "{raw:?} is plain http on a non-loopback host: cookies and tokens would cross the network in clear"
                ),
                "https:// (terminate TLS in front of idp), or http:// only on localhost/127.0.0.1",
            ));
        }
        warnings
            .push(format!("public_url {u} is plain http: fine on loopback for trying idp out, never for production"));
    }
    Ok(u)
}

fn validate(
    f: ConfigFile,
    master_key_env: Option<Zeroizing<String>>,
    backup_key_env: Option<Zeroizing<String>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Problems> {
    let mut p = Vec::new();
    let mut warnings = Vec::new();

    let bind = f.bind.parse::<SocketAddr>().map_err(|_| {
        p.push(problem("bind", format!("{:?} is not an address", f.bind), "IP:PORT such as 127.0.0.1:8080"))
    });

    let public_raw = f.public_url.clone().unwrap_or_else(|| format!("http://{}", f.bind));
    let public_url = check_public_url(&public_raw, &mut warnings).map_err(|pr| p.push(pr));

    let database_raw =
        f.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", f.data_dir.join("idp.sqlite").display()));
    let database = DatabaseUrl::parse(&database_raw)
        .map_err(|why| p.push(problem("database_url", why, "postgres://USER@HOST:PORT/DB or sqlite://PATH")));

    if !(1..=256).contains(&f.database_max_connections) {
        p.push(problem(
            "database_max_connections",
            format!("{} is out of range", f.database_max_connections),
            "1 to 256",
        ));
    }

    let master_key = match master_key_env {
        Some(text) => KeySource::Env(text),
        None => KeySource::File(f.master_key_file.clone().unwrap_or_else(|| f.data_dir.join("master.key"))),
    };

    for (key, value) in [("security_contact", &f.security_contact), ("security_policy_url", &f.security_policy_url)] {
        if let Some(v) = value {
            let ok = Url::parse(v).map(|u| matches!(u.scheme(), "mailto" | "https" | "tel")).unwrap_or(false);
            if !ok {
                p.push(problem(
                    key,
                    format!("{v:?} is not a mailto:, https: or tel: URI"),
                    "e.g. mailto:security@example.com (RFC 9116)",
                ));
            }
        }
    }
    if f.security_contact.is_none() {
        warnings.push("security_contact is not set: /.well-known/security.txt answers 404 until it is".into());
    }

    let s = &f.session;
    if s.idle_timeout < Duration::from_secs(60) {
        p.push(problem(
            "session.idle_timeout",
            format!("{} is too short", humantime::format_duration(s.idle_timeout)),
            "at least 1m, such as 30m",
        ));
    }
    if s.absolute_timeout < s.idle_timeout {
        p.push(problem(
            "session.absolute_timeout",
            "is shorter than session.idle_timeout",
            "a duration at least as long as the idle timeout, such as 12h",
        ));
    }
    if f.tokens.cache_ttl > Duration::from_secs(60) {
        p.push(problem("tokens.cache_ttl", "is longer than a minute", "0s (no cache) to 60s, such as 2s"));
    }
    if f.tokens.signing_key_rotation < Duration::from_secs(3600) {
        p.push(problem("tokens.signing_key_rotation", "is shorter than an hour", "a duration such as 30d"));
    }
    if !(Duration::from_secs(1)..=Duration::from_secs(600)).contains(&f.tokens.signing_key_reload) {
        p.push(problem("tokens.signing_key_reload", "is out of range", "1s to 10m, such as 60s"));
    }
    if f.tokens.jwks_max_age > Duration::from_secs(86_400) {
        p.push(problem("tokens.jwks_max_age", "is longer than a day", "0s to 1d, such as 5m"));
    }
    if f.audit.retention_days == 0 {
        p.push(problem("audit.retention_days", "0 would delete every event at once", "a number of days, at least 1"));
    }
    let r = &f.rate_limit;
    if r.window < Duration::from_secs(1) {
        p.push(problem("rate_limit.window", "is shorter than a second", "a duration such as 1m"));
    }
    if r.per_ip == 0 {
        p.push(problem(
            "rate_limit.per_ip",
            "0 would refuse every request",
            "a positive number of requests per window",
        ));
    }
    if r.per_account == 0 {
        p.push(problem(
            "rate_limit.per_account",
            "0 would refuse every attempt",
            "a positive number of attempts per window",
        ));
    }
    if !(1024..=16 * 1024 * 1024).contains(&f.http.max_body_bytes) {
        p.push(problem(
            "http.max_body_bytes",
            format!("{} is out of range", f.http.max_body_bytes),
            "1024 to 16777216",
        ));
    }
    if f.http.workers > 256 {
        p.push(problem("http.workers", format!("{} is too many", f.http.workers), "0 (one per core) to 256"));
    }
    let mut trusted_proxies = Vec::new();
    for tp in &f.http.trusted_proxies {
        match tp.parse::<IpAddr>() {
            Ok(ip) => trusted_proxies.push(ip),
            Err(_) => p.push(problem(
                "http.trusted_proxies",
                format!("{tp:?} is not an IP address"),
                "a list of proxy IP addresses",
            )),
        }
    }
    if tracing_subscriber::EnvFilter::try_new(&f.log.level).is_err() {
        p.push(problem(
            "log.level",
            format!("{:?} is not a log filter", f.log.level),
            "error, warn, info, debug, trace or a filter such as idp=debug",
        ));
    }
    if let Some(dir) = &f.templates_dir {
        if !dir.is_dir() {
            p.push(problem(
                "templates_dir",
                format!("{} is not a directory", dir.display()),
                "a directory of template overrides",
            ));
        }
    }
    let b = &f.backup;
    let backup = BackupSettings {
        key: match backup_key_env {
            Some(text) => BackupKeySource::Env(text),
            None => BackupKeySource::File(b.key_file.clone().unwrap_or_else(|| f.data_dir.join("backup.key"))),
        },
        dir: b.dir.clone().unwrap_or_else(|| f.data_dir.join("backups")),
        schedule: match &b.schedule {
            None => None,
            Some(text) => Schedule::parse(text)
                .map_err(|why| p.push(problem("backup.schedule", why, "an interval such as 24h, or daily HH:MM (UTC)")))
                .ok(),
        },
        keep_days: b.keep_days,
    };
    if b.keep_days == 0 {
        p.push(problem(
            "backup.keep_days",
            "0 would delete each backup as soon as it is taken",
            "a number of days, at least 1",
        ));
    }
    if f.product_name.trim().is_empty() || f.product_name.len() > 64 {
        p.push(problem("product_name", "is empty or longer than 64 characters", "a short name shown on pages"));
    }

    let logo = match &f.branding.logo_file {
        None => None,
        Some(path) => {
            let kind = match path.extension().and_then(|e| e.to_str()).map(str::to_lowercase).as_deref() {
                Some("png") => Some("image/png"),
                Some("svg") => Some("image/svg+xml"),
                Some("jpg" | "jpeg") => Some("image/jpeg"),
                Some("webp") => Some("image/webp"),
                _ => None,
            };
            match (kind, std::fs::read(path)) {
                (None, _) => {
                    p.push(problem(
                        "branding.logo_file",
                        format!("{} is not .png, .svg, .jpg or .webp", path.display()),
                        "an image file",
                    ));
                    None
                }
                (_, Err(e)) => {
                    p.push(problem("branding.logo_file", format!("{}: {e}", path.display()), "a readable image file"));
                    None
                }
                (Some(_), Ok(bytes)) if bytes.len() > 512 * 1024 => {
                    p.push(problem("branding.logo_file", "is larger than 512 KiB", "a small image"));
                    None
                }
                (Some(kind), Ok(bytes)) => Some((bytes, kind)),
            }
        }
    };
    let accent_colour = f.branding.accent_colour.clone().unwrap_or_else(|| "#2451b3".into());
    let hex_colour = accent_colour.len() == 7
        && accent_colour.starts_with('#')
        && accent_colour.bytes().skip(1).all(|b| b.is_ascii_hexdigit());
    if !hex_colour {
        p.push(problem(
            "branding.accent_colour",
            format!("{accent_colour:?} is not a colour"),
            "#rrggbb, such as #2451b3",
        ));
    }
    let signup = match f.signup {
        SignupMode::Open => Signup::Open,
        SignupMode::Invite => Signup::Invite,
        SignupMode::Domains if f.signup_domains.is_empty() => {
            p.push(problem(
                "signup_domains",
                "is empty while signup = \"domains\"",
                "the e-mail domains that may sign up",
            ));
            Signup::Invite
        }
        SignupMode::Domains => Signup::Domains(f.signup_domains.iter().map(|d| d.trim().to_lowercase()).collect()),
    };
    if f.signup != SignupMode::Domains && !f.signup_domains.is_empty() {
        p.push(problem(
            "signup_domains",
            "is set but signup is not \"domains\"",
            "signup = \"domains\", or no signup_domains",
        ));
    }
    let connectors = crate::connector_config::validate_connectors(&f.connectors, env, &mut p);
    if f.password_login && f.signup == SignupMode::Domains {
        // A typed address proves nothing: anyone could claim one at the domain.
        p.push(problem(
            "password_login",
            "cannot be combined with signup = \"domains\" (the typed address is not verified)",
            "signup = \"open\" or \"invite\" with passwords, or domains with connectors only",
        ));
    }
    if f.signup == SignupMode::Domains {
        for c in connectors.iter().filter(|c| c.kind == ConnectorKind::Google) {
            if matches!(&c.settings, ConnectorSettings::Oidc { hosted_domains, .. } if hosted_domains.is_empty()) {
                warnings.push(format!(
                    "connector {}: Google without hosted_domains under signup = \"domains\" admits consumer accounts whose verified e-mail is at the domain",
                    c.id
                ));
            }
        }
    }
    let clients = crate::client_config::validate_clients(&f.clients, env, &mut p);
    let dns_resolver = match f.dns_resolver.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => match raw.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                p.push(problem("dns_resolver", format!("{raw:?} is not an address"), "IP:PORT such as 127.0.0.1:53"));
                None
            }
        },
    };

    match (bind, public_url, database) {
        (Ok(bind), Ok(public_url), Ok(database)) if p.is_empty() => Ok(Config {
            public_url,
            bind,
            data_dir: f.data_dir,
            database,
            database_max_connections: f.database_max_connections,
            master_key,
            security_contact: f.security_contact,
            security_policy_url: f.security_policy_url,
            templates_dir: f.templates_dir,
            product_name: f.product_name,
            logo,
            accent_colour,
            password_login: f.password_login,
            password: f.password,
            signup,
            dns_resolver,
            connectors,
            clients,
            session: f.session,
            tokens: f.tokens,
            audit: f.audit,
            rate_limit: f.rate_limit,
            max_body_bytes: f.http.max_body_bytes,
            trusted_proxies,
            workers: f.http.workers,
            log: f.log,
            backup,
            warnings,
        }),
        _ => Err(Problems(p)),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
