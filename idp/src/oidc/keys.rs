//! Signing and verifying idp's own JWTs with the keys in `signing_keys`. Every instance holds
//! the key set in memory and reloads it from the database on a timer (`Signer::refresh`), so a
//! rotation made by any instance or by `idp keys rotate-signing` reaches all of them before the
//! new key signs (`rotation`). Each key is unsealed once per load and parsed at first use.

use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::NaiveDateTime;
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::sign::{Signer as OsslSigner, Verifier};
use serde_json::{Value, json};

use crate::crypto::secretbox::MasterKeys;
use crate::crypto::signing::SigningAlgorithm;
use crate::storage::secrets::{SecretPurpose, SecretRepository};
use crate::storage::signing_keys::{SigningKeyRepository, StoredSigningKey};
use crate::storage::{DbConnection, StorageError};

/// ES256 signatures in a JWS are r || s, 32 bytes each (RFC 7518 §3.4).
const ES256_HALF: usize = 32;

struct LoadedKey {
    kid: String,
    alg: SigningAlgorithm,
    signs_from: NaiveDateTime,
    retires_at: Option<NaiveDateTime>,
    public_jwk: Value,
    /// The unsealed PKCS#8, parsed at first use: an idle server never starts OpenSSL (its
    /// initialisation is a few MiB of resident memory).
    der: zeroize::Zeroizing<Vec<u8>>,
    key: OnceLock<Option<PKey<Private>>>,
}

impl LoadedKey {
    fn live(&self, now: NaiveDateTime) -> bool {
        self.retires_at.is_none_or(|r| r > now)
    }

    fn key(&self) -> Option<&PKey<Private>> {
        self.key
            .get_or_init(|| match PKey::private_key_from_pkcs8(&self.der) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(error = %e, kid = %self.kid, "a signing key does not parse");
                    None
                }
            })
            .as_ref()
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let Some(key) = self.key() else { return Err(openssl::error::ErrorStack::get()) };
        if self.alg == SigningAlgorithm::EdDsa {
            // Ed25519 hashes internally: one shot, no digest.
            return OsslSigner::new_without_digest(key)?.sign_oneshot_to_vec(input);
        }
        let mut s = OsslSigner::new(MessageDigest::sha256(), key)?;
        s.update(input)?;
        let sig = s.sign_to_vec()?;
        Ok(match self.alg {
            SigningAlgorithm::Rs256 | SigningAlgorithm::EdDsa => sig,
            SigningAlgorithm::Es256 => {
                let sig = EcdsaSig::from_der(&sig)?;
                let mut out = sig.r().to_vec_padded(ES256_HALF as i32)?;
                out.extend(sig.s().to_vec_padded(ES256_HALF as i32)?);
                out
            }
        })
    }

    fn verify(&self, input: &[u8], sig: &[u8]) -> Option<bool> {
        if self.alg == SigningAlgorithm::EdDsa {
            return Verifier::new_without_digest(self.key()?).ok()?.verify_oneshot(sig, input).ok();
        }
        let der;
        let sig = match self.alg {
            SigningAlgorithm::Rs256 | SigningAlgorithm::EdDsa => sig,
            SigningAlgorithm::Es256 => {
                if sig.len() != 2 * ES256_HALF {
                    return Some(false);
                }
                let (r, s) = sig.split_at(ES256_HALF);
                let ecdsa =
                    EcdsaSig::from_private_components(BigNum::from_slice(r).ok()?, BigNum::from_slice(s).ok()?).ok()?;
                der = ecdsa.to_der().ok()?;
                &der
            }
        };
        let mut v = Verifier::new(MessageDigest::sha256(), self.key()?).ok()?;
        v.update(input).ok()?;
        v.verify(sig).ok()
    }
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Arc<LoadedKey>>,
}

impl KeySet {
    /// The key that signs with `alg` at `now`: the newest whose time has come.
    fn signing(&self, alg: SigningAlgorithm, now: NaiveDateTime) -> Option<&Arc<LoadedKey>> {
        self.keys.iter().filter(|k| k.alg == alg && k.signs_from <= now && k.live(now)).max_by_key(|k| k.signs_from)
    }
}

pub struct Signer {
    set: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = self.current().keys.iter().map(|k| k.kid.clone()).collect();
        f.debug_struct("Signer").field("kids", &kids).finish()
    }
}

impl Signer {
    /// Opens the keys that are still published.
    pub fn load(conn: &mut DbConnection, keys: &MasterKeys, now: NaiveDateTime) -> Result<Self, StorageError> {
        let s = Self { set: RwLock::new(Arc::default()) };
        s.refresh(conn, keys, now)?;
        Ok(s)
    }

    /// Reloads the key set: new keys are unsealed, known ones kept as they are, retired ones
    /// dropped.
    pub fn refresh(&self, conn: &mut DbConnection, keys: &MasterKeys, now: NaiveDateTime) -> Result<(), StorageError> {
        let old = self.current();
        let mut loaded = Vec::new();
        for k in conn.signing_keys()?.into_iter().filter(|k| k.retires_at.is_none_or(|r| r > now)) {
            match old.keys.iter().find(|o| o.kid == k.kid) {
                Some(o) if o.retires_at == k.retires_at && o.signs_from == k.signs_from => loaded.push(o.clone()),
                _ => loaded.push(Arc::new(open(conn, keys, k)?)),
            }
        }
        if let Ok(mut w) = self.set.write() {
            *w = Arc::new(KeySet { keys: loaded });
        }
        Ok(())
    }

    fn current(&self) -> Arc<KeySet> {
        self.set.read().map(|s| s.clone()).unwrap_or_default()
    }

    #[cfg(test)]
    pub fn generate_for_tests() -> Self {
        let now = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let keys = crate::oidc::rotation::ALGORITHMS
            .into_iter()
            .map(|alg| {
                let g = crate::crypto::signing::generate(alg).unwrap_or_else(|_| std::process::abort());
                Arc::new(LoadedKey {
                    kid: g.kid,
                    alg,
                    signs_from: now,
                    retires_at: None,
                    public_jwk: g.public_jwk,
                    der: g.private_pkcs8,
                    key: OnceLock::new(),
                })
            })
            .collect();
        Self { set: RwLock::new(Arc::new(KeySet { keys })) }
    }

    /// Every key a verifier may meet: those signing now, those about to, and retired ones
    /// whose tokens may still be alive.
    pub fn jwks(&self, now: NaiveDateTime) -> Value {
        let set = self.current();
        let keys: Vec<&Value> = set.keys.iter().filter(|k| k.live(now)).map(|k| &k.public_jwk).collect();
        json!({ "keys": keys })
    }

    /// The kid that signs with `alg` at `now`, if any.
    pub fn signing_kid(&self, alg: SigningAlgorithm, now: NaiveDateTime) -> Option<String> {
        self.current().signing(alg, now).map(|k| k.kid.clone())
    }

    /// A compact JWS over `claims` with the given `typ`, by the key that signs with `alg` now.
    pub fn sign(
        &self,
        alg: SigningAlgorithm,
        typ: &str,
        claims: &Value,
        now: NaiveDateTime,
    ) -> Result<String, StorageError> {
        let set = self.current();
        let key =
            set.signing(alg, now).ok_or_else(|| StorageError::Corrupt(format!("no {} signing key", alg.as_str())))?;
        let header = json!({"alg": alg.as_str(), "kid": key.kid, "typ": typ});
        let input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = key.sign(input.as_bytes()).map_err(|e| StorageError::Corrupt(format!("signing: {e}")))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }

    /// The claims of a JWT idp signed with `typ`, if its signature holds under a published key
    /// of the algorithm its header names. Expiry is the caller's.
    pub fn verify(&self, jwt: &str, typ: &str) -> Option<Value> {
        if jwt.len() > 16 * 1024 {
            return None;
        }
        let mut parts = jwt.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).ok()?).ok()?;
        if header.get("typ")? != typ {
            return None;
        }
        let alg = SigningAlgorithm::parse(header.get("alg")?.as_str()?)?;
        let kid = header.get("kid")?.as_str()?;
        let set = self.current();
        // The key is found by kid and must be of the header's algorithm: no algorithm confusion.
        let key = set.keys.iter().find(|k| k.kid == kid && k.alg == alg)?;
        let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
        if !key.verify(format!("{h}.{p}").as_bytes(), &sig)? {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
    }
}

fn open(conn: &mut DbConnection, keys: &MasterKeys, k: StoredSigningKey) -> Result<LoadedKey, StorageError> {
    let alg = SigningAlgorithm::parse(&k.algorithm)
        .ok_or_else(|| StorageError::Corrupt(format!("signing key {} has algorithm {}", k.kid, k.algorithm)))?;
    let der = conn.open_secret(keys, k.secret_id, SecretPurpose::SigningKey)?;
    Ok(LoadedKey {
        kid: k.kid,
        alg,
        signs_from: k.signs_from,
        retires_at: k.retires_at,
        public_jwk: k.public_jwk,
        der,
        key: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default().naive_utc()
    }

    #[test]
    fn signs_and_verifies_and_refuses_tampering() {
        let s = Signer::generate_for_tests();
        for alg in crate::oidc::rotation::ALGORITHMS {
            let jwt = s.sign(alg, "at+jwt", &json!({"sub": "alice"}), now()).unwrap();
            assert_eq!(s.verify(&jwt, "at+jwt").unwrap()["sub"], "alice", "{alg:?}");
            assert!(s.verify(&jwt, "JWT").is_none(), "typ is checked");
            let mut parts: Vec<&str> = jwt.split('.').collect();
            let evil = URL_SAFE_NO_PAD.encode(json!({"sub": "mallory"}).to_string());
            parts[1] = &evil;
            assert!(s.verify(&parts.join("."), "at+jwt").is_none());
            let other = Signer::generate_for_tests();
            assert!(other.verify(&jwt, "at+jwt").is_none());
        }
    }

    #[test]
    fn the_header_cannot_switch_algorithm_or_key() {
        let s = Signer::generate_for_tests();
        let jwt = s.sign(SigningAlgorithm::Es256, "at+jwt", &json!({"sub": "alice"}), now()).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let rs_kid = s.signing_kid(SigningAlgorithm::Rs256, now()).unwrap();
        let es_kid = s.signing_kid(SigningAlgorithm::Es256, now()).unwrap();
        for header in [
            json!({"alg": "RS256", "kid": es_kid, "typ": "at+jwt"}),
            json!({"alg": "ES256", "kid": rs_kid, "typ": "at+jwt"}),
            json!({"alg": "none", "kid": es_kid, "typ": "at+jwt"}),
            json!({"alg": "HS256", "kid": es_kid, "typ": "at+jwt"}),
            json!({"alg": "ES256", "typ": "at+jwt"}),
        ] {
            let forged = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), parts[1], parts[2]);
            assert!(s.verify(&forged, "at+jwt").is_none(), "{header}");
        }
        let unsigned = format!("{}.{}.", parts[0], parts[1]);
        assert!(s.verify(&unsigned, "at+jwt").is_none());
    }

    #[test]
    fn es256_signatures_are_raw_r_and_s() {
        let s = Signer::generate_for_tests();
        let jwt = s.sign(SigningAlgorithm::Es256, "JWT", &json!({}), now()).unwrap();
        let sig = URL_SAFE_NO_PAD.decode(jwt.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(sig.len(), 64);
    }
}
