//! The API token format: `idp_<kind>_<secret>_<checksum>`. The secret is 43 base62 characters
//! (256 bits); the checksum, six base62 characters of SHA-256 over the rest, lets secret
//! scanners recognise a token and lets idp refuse a mistyped one before any lookup.

use rand::Rng;
use sha2::{Digest, Sha256};

use super::TokenKind;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const SECRET_LEN: usize = 43;
pub const CHECKSUM_LEN: usize = 6;
/// `idp_` + kind + `_` + secret + `_` + checksum.
pub const TOKEN_LEN: usize = 4 + 3 + 1 + SECRET_LEN + 1 + CHECKSUM_LEN;

fn base62_char(n: usize) -> char {
    ALPHABET.get(n % 62).copied().map(char::from).unwrap_or('0')
}

fn checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let mut n = digest.iter().take(6).fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let mut out = String::with_capacity(CHECKSUM_LEN);
    for _ in 0..CHECKSUM_LEN {
        out.push(base62_char((n % 62) as usize));
        n /= 62;
    }
    out
}

/// A fresh token of `kind`. 43 base62 characters carry 256.03 bits.
pub fn generate(kind: TokenKind) -> String {
    let mut rng = rand::rngs::OsRng;
    let secret: String = (0..SECRET_LEN).map(|_| base62_char(rng.gen_range(0..62))).collect();
    let body = format!("idp_{}_{}", kind.prefix(), secret);
    let sum = checksum(&body);
    format!("{body}_{sum}")
}

/// The kind of a well-formed token; `None` for anything else, without touching storage.
pub fn parse(presented: &str) -> Option<TokenKind> {
    if presented.len() != TOKEN_LEN || !presented.is_ascii() {
        return None;
    }
    let mut parts = presented.split('_');
    let (Some("idp"), Some(kind), Some(secret), Some(sum), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let kind = TokenKind::from_prefix(kind)?;
    if secret.len() != SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let body_len = presented.len() - CHECKSUM_LEN - 1;
    let expected = checksum(presented.get(..body_len)?);
    crate::crypto::tokens::ct_eq(expected.as_bytes(), sum.as_bytes()).then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        for kind in [TokenKind::Personal, TokenKind::Service, TokenKind::Organisation] {
            let t = generate(kind);
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(t.starts_with(&format!("idp_{}_", kind.prefix())));
            assert_eq!(parse(&t), Some(kind));
            assert_ne!(t, generate(kind));
        }
    }

    #[test]
    fn a_mistyped_token_is_refused_by_its_checksum() {
        let t = generate(TokenKind::Personal);
        let mut chars: Vec<char> = t.chars().collect();
        let i = 20;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert_eq!(parse(&typo), None);
        // two characters swapped
        let mut swapped: Vec<char> = t.chars().collect();
        swapped.swap(10, 11);
        let swapped: String = swapped.into_iter().collect();
        assert!(swapped == t || parse(&swapped).is_none());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = generate(TokenKind::Service);
        for bad in [
            "",
            "idp_pat_garbage",
            &t[..t.len() - 1],
            &format!("{t}x"),
            &t.replacen("idp_", "ipd_", 1),
            &t.replacen("_sat_", "_xyz_", 1),
            &t.replacen("_sat_", "_pat_", 1),
            &format!("{}é", &t[..t.len() - 2]),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
