//! Our side of SAML: one RSA key and self-signed certificate for the whole server, generated
//! at first start, sealed at rest (the `secrets` table, purpose `saml_private_key`) and found
//! through the `saml_sp_key` setting, so every instance signs with the same key. Published in
//! each connection's SP metadata for signing and encryption.

use chrono::NaiveDateTime;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::secretbox::MasterKeys;
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::settings::SettingsRepository;
use crate::storage::{StorageError, parse_id};

const SETTING: &str = "saml_sp_key";
const VALID_DAYS: u32 = 3650;

/// The SP key pair. `Debug` never prints the key.
#[derive(Clone)]
pub struct SpKeys {
    pub key: PKey<Private>,
    pub certificate: X509,
}

impl std::fmt::Debug for SpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpKeys(***)")
    }
}

/// The SP key pair, read (or created) at first use rather than at start: opening it touches
/// OpenSSL, which costs every server resident memory, SAML or not.
#[derive(Debug, Default)]
pub struct LazySpKeys(std::sync::OnceLock<std::sync::Arc<SpKeys>>);

impl LazySpKeys {
    pub fn loaded(&self) -> Option<std::sync::Arc<SpKeys>> {
        self.0.get().cloned()
    }

    /// Blocking: reads the database the first time.
    pub fn get(
        &self,
        db: &crate::storage::Db,
        keys: &MasterKeys,
        now: NaiveDateTime,
    ) -> Result<std::sync::Arc<SpKeys>, StorageError> {
        if let Some(k) = self.loaded() {
            return Ok(k);
        }
        let opened = std::sync::Arc::new(db.write(|conn| load_or_create(conn, keys, now))?);
        Ok(self.0.get_or_init(|| opened).clone())
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    key_pem: String,
    certificate_pem: String,
}

impl SpKeys {
    pub fn generate() -> Result<Self, openssl::error::ErrorStack> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_text("CN", "idp SAML service provider")?;
        let name = name.build();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let mut serial = BigNum::new()?;
        serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&key)?;
        let from = Asn1Time::days_from_now(0)?;
        b.set_not_before(&from)?;
        let until = Asn1Time::days_from_now(VALID_DAYS)?;
        b.set_not_after(&until)?;
        b.sign(&key, MessageDigest::sha256())?;
        Ok(Self { key, certificate: b.build() })
    }

    /// The certificate as base64 DER, as metadata and KeyInfo carry it.
    pub fn certificate_base64(&self) -> String {
        let der = self.certificate.to_der().unwrap_or_default();
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
    }

    fn seal(&self) -> Result<Zeroizing<Vec<u8>>, StorageError> {
        let pem = self.key.private_key_to_pem_pkcs8().map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let cert = self.certificate.to_pem().map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let sealed = Sealed {
            key_pem: String::from_utf8_lossy(&pem).into_owned(),
            certificate_pem: String::from_utf8_lossy(&cert).into_owned(),
        };
        let json = serde_json::to_vec(&sealed).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok(Zeroizing::new(json))
    }

    fn open(plain: &[u8]) -> Result<Self, StorageError> {
        let sealed: Sealed = serde_json::from_slice(plain).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let key = Zeroizing::new(sealed.key_pem);
        let key = PKey::private_key_from_pem(key.as_bytes()).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        let certificate =
            X509::from_pem(sealed.certificate_pem.as_bytes()).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        Ok(Self { key, certificate })
    }
}

/// The server's SP keys: opened, or generated and sealed on first start. Two instances starting
/// at once agree on the first one stored.
pub fn load_or_create(
    conn: &mut (impl SettingsRepository + SecretRepository),
    keys: &MasterKeys,
    now: NaiveDateTime,
) -> Result<SpKeys, StorageError> {
    let id = match conn.setting(SETTING)? {
        Some(id) => id,
        None => {
            let fresh = SpKeys::generate().map_err(|e| StorageError::Corrupt(format!("SAML key: {e}")))?;
            let mine = conn.seal_secret(keys, SecretPurpose::SamlPrivateKey, &fresh.seal()?, now)?.to_string();
            let stored = conn.setting_or_insert(SETTING, &mine)?;
            if stored != mine {
                conn.delete_secret(parse_id(&mine)?)?;
            }
            stored
        }
    };
    let plain = conn.open_secret(keys, parse_id(&id)?, SecretPurpose::SamlPrivateKey)?;
    SpKeys::open(&plain)
}
