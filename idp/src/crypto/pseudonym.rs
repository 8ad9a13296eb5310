//! Keyed pseudonyms for personal data in the audit log: the same input always maps to the same
//! pseudonym, so events can be correlated, but the table holds nothing readable.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct Pseudonymiser {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymiser(***)")
    }
}

/// What kind of personal datum is pseudonymised; part of the hash, so an e-mail and an IP
/// address that happen to be equal strings never share a pseudonym.
#[derive(Debug, Clone, Copy)]
pub enum Datum {
    Email,
    IpAddress,
    Name,
}

impl Pseudonymiser {
    pub fn new(key: Zeroizing<Vec<u8>>) -> Self {
        Self { key }
    }

    pub fn pseudonymise(&self, datum: Datum, value: &str) -> String {
        let normalised = match datum {
            Datum::Email => value.trim().to_lowercase(),
            Datum::IpAddress | Datum::Name => value.trim().to_owned(),
        };
        let tag = match datum {
            Datum::Email => "email",
            Datum::IpAddress => "ip",
            Datum::Name => "name",
        };
        // HMAC accepts keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::from("ps_invalid");
        };
        mac.update(tag.as_bytes());
        mac.update(&[0]);
        mac.update(normalised.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("ps_{tag}_{}", hex::encode(digest.get(..16).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_keyed_and_unreadable() {
        let p = Pseudonymiser::new(Zeroizing::new(vec![7; 32]));
        let q = Pseudonymiser::new(Zeroizing::new(vec![8; 32]));
        let a = p.pseudonymise(Datum::Email, "Alice@Example.com");
        assert_eq!(a, p.pseudonymise(Datum::Email, "alice@example.com "));
        assert_ne!(a, q.pseudonymise(Datum::Email, "alice@example.com"));
        assert_ne!(a, p.pseudonymise(Datum::Name, "alice@example.com"));
        assert!(!a.contains("alice"));
    }
}
