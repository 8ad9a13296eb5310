//! Builds the application state (config, storage, keys, clock) and runs the server.

use std::path::Path;
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::audit::{Action, Actor, Auditor, Event};
use crate::auth::rate_limit::RateLimiter;
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::crypto::pseudonym::Pseudonymiser;
use crate::crypto::secretbox::{KeySource, Keyring, MasterKeys, OpenError};
use crate::crypto::signing;
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::settings::SettingsRepository;
use crate::storage::signing_keys::{SigningKeyRepository, StoredSigningKey};
use crate::storage::{DatabaseUrl, Db, DbConnection, StorageError};
use crate::upstream::Connectors;

/// Why the server refuses to start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::Problems),
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("cannot open the database {url}: {reason}")]
    Database { url: String, reason: String },
    #[error("{0}")]
    MasterKey(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("signing keys: {0}")]
    Signing(#[from] signing::SigningError),
    #[error("{0}")]
    WebAuthn(String),
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a request handler or a CLI command needs; passed explicitly, never global.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub keys: MasterKeys,
    pub clock: SharedClock,
    pub auditor: Auditor,
    pub limiter: RateLimiter,
    /// Key for CSRF tokens, shared by every instance through the database.
    pub csrf_key: Arc<Zeroizing<Vec<u8>>>,
    pub connectors: Connectors,
    pub passwords: Arc<crate::crypto::password::PasswordHasher>,
    /// Scheduled backups' failures and last success, for `/readyz`.
    pub backups: Arc<crate::backup::schedule::BackupStatus>,
    /// idp as an OpenID Provider: issuer, clients, the opened signing key.
    pub oidc: crate::oidc::Provider,
    /// API token validation, with its in-process cache.
    pub tokens: Arc<crate::tokens::Validator>,
    /// The WebAuthn relying party (RP id = the host of `public_url`); `None` when that host is
    /// an IP address, which cannot be an RP id: then passkeys and security keys are not offered.
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// Our SAML service-provider key and certificate, one for every connection.
    pub saml_sp: Arc<crate::upstream::saml::sp::LazySpKeys>,
}

/// Opens the database without migrating it (restore runs the migrations itself); creates the
/// data directory when the database lives in it.
pub fn connect_database(config: &Config) -> Result<Db, StartError> {
    if let DatabaseUrl::Sqlite(path) = &config.database {
        ensure_private_dir_for(path, &config.data_dir)?;
    }
    Db::open(&config.database, config.database_max_connections)
        .map_err(|e| StartError::Database { url: config.database.redacted(), reason: e.to_string() })
}

/// Opens the database and runs migrations; creates the data directory when the database lives in it.
pub fn open_database(config: &Config) -> Result<Db, StartError> {
    let db = connect_database(config)?;
    db.migrate().map_err(|e| StartError::Database { url: config.database.redacted(), reason: e.to_string() })?;
    Ok(db)
}

/// Loads the master keys, generating them only on a database that holds no sealed value yet:
/// a missing or wrong key over existing data is an error, never a reason to make a new one.
pub fn load_master_keys(config: &Config, conn: &mut DbConnection) -> Result<MasterKeys, StartError> {
    let source = config.master_key.clone();
    let sealed = conn.count_secrets()?;
    let keyring = if source.exists() {
        source.load().map_err(|e| StartError::MasterKey(e.to_string()))?
    } else if sealed > 0 {
        let KeySource::File(path) = &source else { unreachable_env() };
        return Err(StartError::MasterKey(format!(
            "master key file {} is missing, but the database holds {sealed} sealed secrets: restore the key file \
             (or set IDP_MASTER_KEY); idp will not generate a new key over data sealed with another",
            path.display()
        )));
    } else {
        if let KeySource::File(path) = &source {
            ensure_private_dir_for(path, &config.data_dir)?;
        }
        let k = Keyring::generate();
        source.store(&k).map_err(|e| StartError::MasterKey(e.to_string()))?;
        tracing::info!(key_id = %k.active_id(), "generated a new master key");
        k
    };
    let keys = MasterKeys::new(source, keyring);
    match conn.check_secrets_open(&keys) {
        Ok(()) => Ok(keys),
        Err(StorageError::Sealed(OpenError::UnknownKey(id))) => Err(StartError::MasterKey(format!(
            "wrong master key: the database's secrets are sealed under key {id}, which the configured master key ({}) does not hold",
            describe(keys.source())
        ))),
        Err(StorageError::Sealed(e)) => {
            Err(StartError::MasterKey(format!("a sealed secret does not open with the master key: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}

fn unreachable_env() -> ! {
    // KeySource::Env always "exists"; only a file can be missing.
    std::process::exit(2)
}

fn describe(source: &KeySource) -> String {
    match source {
        KeySource::File(p) => p.display().to_string(),
        KeySource::Env(_) => "IDP_MASTER_KEY".into(),
    }
}

/// A 32-byte server secret shared by all instances: created once, sealed, found by name.
fn server_secret(
    conn: &mut DbConnection,
    keys: &MasterKeys,
    name: &str,
    purpose: SecretPurpose,
    now: chrono::NaiveDateTime,
) -> Result<Zeroizing<Vec<u8>>, StartError> {
    let id = match conn.setting(name)? {
        Some(id) => id,
        None => {
            let fresh = Zeroizing::new(crate::crypto::tokens::random_token(32).into_bytes());
            let mine = conn.seal_secret(keys, purpose, &fresh, now)?.to_string();
            let stored = conn.setting_or_insert(name, &mine)?;
            if stored != mine {
                // Another instance won the race; use its secret.
                conn.delete_secret(crate::storage::parse_id(&mine)?)?;
            }
            stored
        }
    };
    Ok(conn.open_secret(keys, crate::storage::parse_id(&id)?, purpose)?)
}

/// Generates the token signing keys that are missing (on first start, or after an upgrade
/// that added an algorithm): RS256, the OIDC baseline, ES256 and EdDSA.
fn ensure_signing_keys(
    conn: &mut DbConnection,
    keys: &MasterKeys,
    auditor: &Auditor,
    now: chrono::NaiveDateTime,
) -> Result<(), StartError> {
    let existing = conn.signing_keys()?;
    for alg in crate::oidc::rotation::ALGORITHMS {
        if existing.iter().any(|k| k.algorithm == alg.as_str()) {
            continue;
        }
        let generated = signing::generate(alg)?;
        let secret_id = conn.seal_secret(keys, SecretPurpose::SigningKey, &generated.private_pkcs8, now)?;
        conn.insert_signing_key(&StoredSigningKey {
            kid: generated.kid.clone(),
            algorithm: alg.as_str().into(),
            public_jwk: generated.public_jwk,
            secret_id,
            created_at: now,
            signs_from: now,
            retires_at: None,
        })?;
        auditor.record(
            conn,
            now,
            Event::new(Actor::System, Action::SigningKeyCreated).target(&generated.kid).detail("alg", alg.as_str()),
        )?;
    }
    Ok(())
}

/// Opens everything the server needs, creating first-start material where there is none.
pub fn build_state(config: Config) -> Result<AppState, StartError> {
    let clock: SharedClock = Arc::new(SystemClock);
    let db = open_database(&config)?;
    let (keys, auditor, csrf_key, signer) = db.write(|conn| -> Result<_, StartError> {
        let now = clock.now_naive();
        let keys = load_master_keys(&config, conn)?;
        let first_start = conn.setting("initialised_at")?.is_none();
        let pseudonym_key =
            server_secret(conn, &keys, "audit_pseudonym_secret", SecretPurpose::AuditPseudonymKey, now)?;
        let auditor = Auditor::new(Pseudonymiser::new(pseudonym_key));
        let csrf_key = server_secret(conn, &keys, "csrf_secret", SecretPurpose::CsrfKey, now)?;
        ensure_signing_keys(conn, &keys, &auditor, now)?;
        if first_start && conn.setting_or_insert("initialised_at", &now.to_string())? == now.to_string() {
            auditor.record(
                conn,
                now,
                Event::new(Actor::System, Action::ServerInitialised).detail("backend", format!("{:?}", db.backend())),
            )?;
        }
        let signer = crate::oidc::keys::Signer::load(conn, &keys, now)?;
        Ok((keys, auditor, csrf_key, signer))
    })?;
    let oidc = crate::oidc::Provider::new(config.base_url(), config.clients.clone(), signer);
    oidc.clients.replace_stored(db.read(crate::admin::clients::load)?);
    let limiter = RateLimiter::new(config.rate_limit.clone(), auditor.pseudonymiser().clone());
    let connectors = Connectors::from_specs(&config.connectors);
    let hash_permits = match config.password.max_concurrent_hashes {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let validator = crate::tokens::Validator::new(config.tokens.cache_ttl, &oidc.issuer);
    let webauthn = crate::mfa::webauthn::relying_party(&config.public_url, &config.product_name)
        .map_err(StartError::WebAuthn)?
        .map(Arc::new);
    if webauthn.is_none() {
        tracing::warn!(public_url = %config.public_url, "public_url's host is an IP address: passkeys and security keys are not offered (use a host name, e.g. localhost)");
    }
    Ok(AppState {
        config: Arc::new(config),
        db,
        keys,
        clock,
        auditor,
        limiter,
        csrf_key: Arc::new(csrf_key),
        connectors,
        passwords: Arc::new(crate::crypto::password::PasswordHasher::new(hash_permits)),
        backups: Arc::default(),
        oidc,
        tokens: Arc::new(validator),
        webauthn,
        saml_sp: Arc::default(),
    })
}

/// Creates the directory holding `file` when it is the data directory, mode 0700, and tightens
/// an existing data directory that others can read.
fn ensure_private_dir_for(file: &Path, data_dir: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    let err = |source| StartError::DataDir { path: dir.display().to_string(), source };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
    }
    if dir == data_dir {
        let mode = std::fs::metadata(dir).map_err(err)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
            tracing::warn!(dir = %dir.display(), "data directory was readable by others; set to 0700");
        }
    }
    Ok(())
}

/// Runs the HTTP server until it is stopped.
pub async fn serve(state: AppState) -> Result<(), StartError> {
    crate::web::run(state).await.map_err(StartError::Io)
}
