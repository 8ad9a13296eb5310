//! Token signing keys: generated here, private halves sealed by the caller, public halves as JWK.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::bn::BigNumContext;
use openssl::ec::{EcGroup, EcKey, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    Rs256,
    Es256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl SigningAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(SigningAlgorithm::Rs256),
            "ES256" => Some(SigningAlgorithm::Es256),
            "EdDSA" => Some(SigningAlgorithm::EdDsa),
            _ => None,
        }
    }
}

/// A freshly generated key pair.
pub struct GeneratedKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub public_jwk: serde_json::Value,
    /// PKCS#8 DER; seal it before storing.
    pub private_pkcs8: Zeroizing<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
#[error("signing key generation failed: {0}")]
pub struct SigningError(#[from] openssl::error::ErrorStack);

pub fn generate(algorithm: SigningAlgorithm) -> Result<GeneratedKey, SigningError> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let (pkey, members) = match algorithm {
        SigningAlgorithm::Rs256 => {
            let rsa = Rsa::generate(2048)?;
            let members = json!({"e": b64(&rsa.e().to_vec()), "kty": "RSA", "n": b64(&rsa.n().to_vec())});
            (PKey::from_rsa(rsa)?, members)
        }
        SigningAlgorithm::Es256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let ec = EcKey::generate(&group)?;
            let mut ctx = BigNumContext::new()?;
            let point = ec.public_key().to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)?;
            let (x, y) = point.get(1..).unwrap_or_default().split_at(32.min(point.len().saturating_sub(1)));
            let members = json!({"crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y)});
            (PKey::from_ec_key(ec)?, members)
        }
        SigningAlgorithm::EdDsa => {
            let pkey = PKey::generate_ed25519()?;
            let members = json!({"crv": "Ed25519", "kty": "OKP", "x": b64(&pkey.raw_public_key()?)});
            (pkey, members)
        }
    };
    let kid = thumbprint(&members);
    let mut public_jwk = members;
    if let Some(map) = public_jwk.as_object_mut() {
        map.insert("kid".into(), kid.clone().into());
        map.insert("alg".into(), algorithm.as_str().into());
        map.insert("use".into(), "sig".into());
    }
    Ok(GeneratedKey { kid, algorithm, public_jwk, private_pkcs8: Zeroizing::new(pkey.private_key_to_pkcs8()?) })
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order.
/// `serde_json` without `preserve_order` keeps object keys sorted, which is exactly that order.
fn thumbprint(required_members: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(required_members.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_both_kinds() {
        for alg in [SigningAlgorithm::Es256, SigningAlgorithm::Rs256, SigningAlgorithm::EdDsa] {
            let k = generate(alg).unwrap();
            assert_eq!(k.public_jwk["kid"], k.kid.as_str());
            assert_eq!(k.public_jwk["alg"], alg.as_str());
            assert!(PKey::private_key_from_pkcs8(&k.private_pkcs8).is_ok());
            assert!(k.public_jwk.get("d").is_none(), "no private member in the public JWK");
        }
    }

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        let jwk = json!({
            "e": "AQAB", "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(thumbprint(&jwk), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
