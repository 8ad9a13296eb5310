//! Signing and verifying idp's own JWTs (RS256) with the active key from `signing_keys`,
//! opened once at start and held behind an `Arc`, so the hot path never unseals it again.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer as OsslSigner, Verifier};
use serde_json::{Value, json};

use crate::crypto::secretbox::MasterKeys;
use crate::crypto::signing::SigningAlgorithm;
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::signing_keys::{SigningKeyRepository, StoredSigningKey};
use crate::storage::{DbConnection, StorageError};

pub struct Signer {
    kid: String,
    /// The unsealed PKCS#8, parsed at first use: an idle server never starts OpenSSL (its
    /// initialisation is a few MiB of resident memory).
    der: zeroize::Zeroizing<Vec<u8>>,
    key: std::sync::OnceLock<Option<PKey<Private>>>,
    /// The public JWKs to publish.
    published: Vec<Value>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn active(keys: &[StoredSigningKey], now: NaiveDateTime) -> Option<&StoredSigningKey> {
    keys.iter()
        .filter(|k| k.algorithm == SigningAlgorithm::Rs256.as_str())
        .filter(|k| k.signs_from <= now && k.retires_at.is_none_or(|r| r > now))
        .max_by_key(|k| k.signs_from)
}

impl Signer {
    /// Opens the active RS256 key.
    pub fn load(conn: &mut DbConnection, keys: &MasterKeys, now: NaiveDateTime) -> Result<Self, StorageError> {
        let stored = conn.signing_keys()?;
        let key = active(&stored, now).ok_or_else(|| StorageError::Corrupt("no active RS256 signing key".into()))?;
        let der = conn.open_secret(keys, key.secret_id, SecretPurpose::SigningKey)?;
        let published =
            stored.iter().filter(|k| k.retires_at.is_none_or(|r| r > now)).map(|k| k.public_jwk.clone()).collect();
        Ok(Self { kid: key.kid.clone(), der, key: std::sync::OnceLock::new(), published })
    }

    #[cfg(test)]
    pub fn generate_for_tests() -> Self {
        let g = crate::crypto::signing::generate(SigningAlgorithm::Rs256).unwrap_or_else(|_| std::process::abort());
        Self { kid: g.kid, der: g.private_pkcs8, key: std::sync::OnceLock::new(), published: vec![g.public_jwk] }
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published })
    }

    fn key(&self) -> Option<&PKey<Private>> {
        self.key
            .get_or_init(|| match PKey::private_key_from_pkcs8(&self.der) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(error = %e, kid = %self.kid, "the signing key does not parse");
                    None
                }
            })
            .as_ref()
    }

    /// A compact JWS over `claims` with the given `typ`.
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, StorageError> {
        let header = json!({"alg": "RS256", "kid": self.kid, "typ": typ});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let fail = |e: openssl::error::ErrorStack| StorageError::Corrupt(format!("signing: {e}"));
        let key = self.key().ok_or_else(|| StorageError::Corrupt("the signing key does not parse".into()))?;
        let mut s = OsslSigner::new(MessageDigest::sha256(), key).map_err(fail)?;
        s.update(input.as_bytes()).map_err(fail)?;
        let sig = s.sign_to_vec().map_err(fail)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The claims of a JWT idp signed with `typ`, if its signature holds. Expiry is the caller's.
    pub fn verify(&self, jwt: &str, typ: &str) -> Option<Value> {
        let mut parts = jwt.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || jwt.len() > 16 * 1024 {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header.get("alg")? != "RS256" || header.get("kid")? != self.kid.as_str() || header.get("typ")? != typ {
            return None;
        }
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        let mut v = Verifier::new(MessageDigest::sha256(), self.key()?).ok()?;
        v.update(format!("{h}.{p}").as_bytes()).ok()?;
        if !v.verify(&sig).ok()? {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_tampering() {
        let s = Signer::generate_for_tests();
        let jwt = s.sign("at+jwt", &json!({"sub": "alice"})).unwrap();
        assert_eq!(s.verify(&jwt, "at+jwt").unwrap()["sub"], "alice");
        assert!(s.verify(&jwt, "JWT").is_none(), "typ is checked");
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(json!({"sub": "mallory"}).to_string());
        parts[1] = &evil;
        assert!(s.verify(&parts.join("."), "at+jwt").is_none());
        let other = Signer::generate_for_tests();
        assert!(other.verify(&jwt, "at+jwt").is_none());
    }
}
