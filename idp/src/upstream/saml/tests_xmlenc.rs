//! Encrypted assertions through the whole in-process path: the committed samlify fixture's
//! signed assertion encrypted here (openssl) to a fresh SP key, good and broken. End to end with
//! samlify encrypting, see tests/saml_login.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};

use super::checks::{Expected, SamlRejection};
use super::sp::SpKeys;
use super::{Decryption, verify_response, xmlenc};

const FIXTURE: &str = include_str!("testdata/response.b64");
const FIXTURE_CERT: &str = include_str!("testdata/idp-cert.pem");

fn expected() -> Expected<'static> {
    Expected {
        idp_entity_id: "http://www.okta.com/exk1",
        sp_entity_id: "https://id.example.com/saml/okta/metadata",
        acs_url: "https://id.example.com/saml/okta/acs",
        request_id: Some("_req1"),
        now: Utc.with_ymd_and_hms(2026, 12, 3, 13, 44, 30).unwrap(),
    }
}

fn certs() -> Vec<Vec<u8>> {
    vec![openssl::x509::X509::from_pem(FIXTURE_CERT.as_bytes()).unwrap().to_der().unwrap()]
}

fn keys() -> &'static SpKeys {
    static KEYS: std::sync::OnceLock<SpKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| SpKeys::generate().unwrap())
}

fn fixture_xml() -> String {
    String::from_utf8(STANDARD.decode(FIXTURE.trim()).unwrap()).unwrap()
}

/// (the Response without its own signature, the signed assertion) of the fixture.
fn parts() -> (String, String) {
    let xml = fixture_xml();
    let a = xml.find("<saml:Assertion").unwrap();
    let b = xml.find("</saml:Assertion>").unwrap() + "</saml:Assertion>".len();
    let assertion = xml[a..b].to_owned();
    let s = xml.find("<ds:Signature").unwrap();
    let e = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    assert!(e < a, "the Response's signature comes first");
    let response = format!("{}{}{}", &xml[..s], &xml[e..a], &xml[a..]);
    (response, assertion)
}

#[derive(Clone, Copy)]
struct How {
    data: &'static str,
    key: &'static str,
}

const GCM256: How =
    How { data: "http://www.w3.org/2009/xmlenc11#aes256-gcm", key: "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" };

fn public(k: &PKey<Private>) -> PKey<Public> {
    PKey::public_key_from_pem(&k.public_key_to_pem().unwrap()).unwrap()
}

/// XML Encryption of `plain` to `to`, as an IdP does it.
fn encrypt(plain: &[u8], to: &PKey<Public>, how: How) -> String {
    let (cipher, key_len, iv_len) = match how.data {
        "http://www.w3.org/2009/xmlenc11#aes256-gcm" => (Cipher::aes_256_gcm(), 32, 12),
        "http://www.w3.org/2009/xmlenc11#aes128-gcm" => (Cipher::aes_128_gcm(), 16, 12),
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => (Cipher::aes_256_cbc(), 32, 16),
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => (Cipher::aes_128_cbc(), 16, 16),
        // Anything else (3DES...) is encrypted as AES-256-CBC but labelled as asked.
        _ => (Cipher::aes_256_cbc(), 32, 16),
    };
    let mut key = vec![0u8; key_len];
    openssl::rand::rand_bytes(&mut key).unwrap();
    let mut iv = vec![0u8; iv_len];
    openssl::rand::rand_bytes(&mut iv).unwrap();
    let gcm = iv_len == 12;
    let mut body = plain.to_vec();
    if !gcm {
        let pad = 16 - body.len() % 16;
        body.extend(std::iter::repeat_n(0x5a, pad - 1));
        body.push(u8::try_from(pad).unwrap());
    }
    let mut c = Crypter::new(cipher, Mode::Encrypt, &key, Some(&iv)).unwrap();
    c.pad(false);
    let mut out = vec![0u8; body.len() + 32];
    let n = c.update(&body, &mut out).unwrap();
    let m = c.finalize(&mut out[n..]).unwrap();
    out.truncate(n + m);
    let mut data = iv.clone();
    data.extend(&out);
    if gcm {
        let mut tag = [0u8; 16];
        c.get_tag(&mut tag).unwrap();
        data.extend(tag);
    }
    let rsa = to.rsa().unwrap();
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let padding = if how.key.ends_with("rsa-1_5") { Padding::PKCS1 } else { Padding::PKCS1_OAEP };
    let n = rsa.public_encrypt(&key, &mut wrapped, padding).unwrap();
    wrapped.truncate(n);
    format!(
        "<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\"><xenc:EncryptionMethod Algorithm=\"{}\"/><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"{}\"><ds:DigestMethod Algorithm=\"http://www.w3.org/2000/09/xmldsig#sha1\"/></xenc:EncryptionMethod><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>",
        how.data,
        how.key,
        STANDARD.encode(wrapped),
        STANDARD.encode(data)
    )
}

/// The fixture with its assertion replaced by `encrypted`; `keep_plain` keeps the plain one too.
fn response_with(encrypted: &str, keep_plain: bool) -> String {
    let (response, assertion) = parts();
    let replaced = if keep_plain {
        response.replacen(&assertion, &format!("{encrypted}{assertion}"), 1)
    } else {
        response.replacen(&assertion, encrypted, 1)
    };
    STANDARD.encode(replaced)
}

fn run(encoded: &str, required: bool) -> Result<super::Accepted, SamlRejection> {
    verify_response(encoded, &certs(), Decryption { key: Some(&keys().key), required }, &expected())
}

fn good(how: How) -> String {
    let (_, assertion) = parts();
    response_with(&encrypt(assertion.as_bytes(), &public(&keys().key), how), false)
}

#[test]
fn an_encrypted_signed_assertion_is_accepted_with_gcm() {
    for data in ["http://www.w3.org/2009/xmlenc11#aes256-gcm", "http://www.w3.org/2009/xmlenc11#aes128-gcm"] {
        let ok = run(&good(How { data, key: GCM256.key }), true).unwrap();
        assert_eq!(ok.name_id, "alice@example.com", "{data}");
    }
}

#[test]
fn the_same_checks_run_after_decryption() {
    let mut late = expected();
    late.now += chrono::Duration::hours(1);
    let r = verify_response(&good(GCM256), &certs(), Decryption { key: Some(&keys().key), required: false }, &late);
    assert!(matches!(r, Err(SamlRejection::Time(_))), "{r:?}");
    let mut other = expected();
    other.request_id = Some("_req2");
    let r = verify_response(&good(GCM256), &certs(), Decryption { key: Some(&keys().key), required: false }, &other);
    assert!(matches!(r, Err(SamlRejection::InResponseTo(_))), "{r:?}");
}

#[test]
fn encrypted_to_another_key_does_not_decrypt() {
    let (_, assertion) = parts();
    let other = SpKeys::generate().unwrap();
    let enc = encrypt(assertion.as_bytes(), &public(&other.key), GCM256);
    assert_eq!(run(&response_with(&enc, false), false), Err(xmlenc::UNDECRYPTABLE));
}

#[test]
fn a_tampered_ciphertext_does_not_decrypt() {
    let (_, assertion) = parts();
    let enc = encrypt(assertion.as_bytes(), &public(&keys().key), GCM256);
    // The content's CipherValue is the last one: flip a bit in the middle of its ciphertext.
    let at = enc.rfind("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
    let end = at + enc[at..].find('<').unwrap();
    let mut data = STANDARD.decode(&enc[at..end]).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    let tampered = format!("{}{}{}", &enc[..at], STANDARD.encode(&data), &enc[end..]);
    assert_eq!(run(&response_with(&tampered, false), false), Err(xmlenc::UNDECRYPTABLE));
}

#[test]
fn pkcs1_v1_5_key_transport_is_refused() {
    let (_, assertion) = parts();
    let how = How { data: GCM256.data, key: "http://www.w3.org/2001/04/xmlenc#rsa-1_5" };
    let enc = encrypt(assertion.as_bytes(), &public(&keys().key), how);
    assert_eq!(
        run(&response_with(&enc, false), false),
        Err(SamlRejection::Encryption("RSA PKCS#1 v1.5 key transport is refused"))
    );
}

#[test]
fn triple_des_is_refused() {
    let (_, assertion) = parts();
    let how = How { data: "http://www.w3.org/2001/04/xmlenc#tripledes-cbc", key: GCM256.key };
    let enc = encrypt(assertion.as_bytes(), &public(&keys().key), how);
    assert_eq!(
        run(&response_with(&enc, false), false),
        Err(SamlRejection::Encryption("a content encryption other than AES-GCM or AES-CBC"))
    );
}

#[test]
fn cbc_is_refused_in_an_unsigned_response() {
    let (_, assertion) = parts();
    let how = How { data: "http://www.w3.org/2001/04/xmlenc#aes256-cbc", key: GCM256.key };
    let enc = encrypt(assertion.as_bytes(), &public(&keys().key), how);
    assert!(
        matches!(run(&response_with(&enc, false), false), Err(SamlRejection::Encryption(m)) if m.starts_with("AES-CBC"))
    );
}

#[test]
fn cbc_padding_is_removed_as_xml_encryption_lays_it_out() {
    let key = [7u8; 32];
    let iv = [9u8; 16];
    for len in [1usize, 15, 16, 17, 40] {
        let plain = vec![b'a'; len];
        // The layout of `encrypt`, with a fixed key, through the content decryption alone.
        let pad = 16 - len % 16;
        let mut body = plain.clone();
        body.extend(std::iter::repeat_n(0u8, pad - 1));
        body.push(u8::try_from(pad).unwrap());
        let mut c = Crypter::new(Cipher::aes_256_cbc(), Mode::Encrypt, &key, Some(&iv)).unwrap();
        c.pad(false);
        let mut out = vec![0u8; body.len() + 16];
        let n = c.update(&body, &mut out).unwrap();
        out.truncate(n);
        let mut data = iv.to_vec();
        data.extend(&out);
        assert_eq!(xmlenc::cbc_for_tests(&key, &data).unwrap(), plain, "{len}");
    }
}

#[test]
fn an_unsigned_decrypted_assertion_is_refused() {
    let (_, assertion) = parts();
    let s = assertion.find("<ds:Signature").unwrap();
    let e = assertion.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &assertion[..s], &assertion[e..]);
    let enc = encrypt(unsigned.as_bytes(), &public(&keys().key), GCM256);
    assert_eq!(
        run(&response_with(&enc, false), false),
        Err(SamlRejection::Signature("the decrypted assertion is not signed"))
    );
}

#[test]
fn an_encrypted_and_a_plain_assertion_together_are_refused() {
    let (_, assertion) = parts();
    let enc = encrypt(assertion.as_bytes(), &public(&keys().key), GCM256);
    assert_eq!(
        run(&response_with(&enc, true), false),
        Err(SamlRejection::Malformed("not exactly one assertion, plain or encrypted"))
    );
}

#[test]
fn a_doctype_in_the_decrypted_text_is_refused_before_parsing() {
    let (_, assertion) = parts();
    for prefix in [
        "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
        "<?xml version=\"1.0\"?><!doctype lolz [<!ENTITY lol \"lol\">]>",
    ] {
        let enc = encrypt(format!("{prefix}{assertion}").as_bytes(), &public(&keys().key), GCM256);
        assert_eq!(run(&response_with(&enc, false), false), Err(SamlRejection::Malformed("a DOCTYPE")), "{prefix}");
    }
}

#[test]
fn decrypted_text_must_be_one_assertion() {
    let (_, assertion) = parts();
    for plain in [
        format!("{assertion}{assertion}"),
        format!("{assertion}</samlp:Response><samlp:Response>"),
        "<saml:Issuer>x</saml:Issuer>".to_owned(),
        format!("junk{assertion}"),
    ] {
        let enc = encrypt(plain.as_bytes(), &public(&keys().key), GCM256);
        assert!(matches!(run(&response_with(&enc, false), false), Err(SamlRejection::Malformed(_))), "{plain:.60}");
    }
}

#[test]
fn require_encrypted_assertions_refuses_a_plain_one() {
    assert_eq!(
        run(FIXTURE.trim(), true),
        Err(SamlRejection::Encryption("a plain assertion where this connection requires encrypted ones"))
    );
    assert_eq!(run(FIXTURE.trim(), false).unwrap().name_id, "alice@example.com");
}

#[test]
fn without_a_key_an_encrypted_assertion_is_refused() {
    let r = verify_response(&good(GCM256), &certs(), Decryption::NONE, &expected());
    assert_eq!(r, Err(SamlRejection::Encryption("an encrypted assertion and no key for it")));
}

/// Random byte edits of a good encrypted response never panic and never change who signs in.
#[test]
fn mutated_encrypted_responses_never_panic_nor_change_the_identity() {
    use rand::{Rng, SeedableRng};
    let xml = STANDARD.decode(good(GCM256)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x454e43);
    for _ in 0..600 {
        let mut m = xml.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..m.len());
            match rng.gen_range(0..3) {
                0 => m[i] = rng.r#gen(),
                1 => {
                    m.remove(i);
                }
                _ => m.insert(i, b"<>\"'&=/ !-x"[rng.gen_range(0..11)]),
            }
        }
        if let Ok(accepted) = run(&STANDARD.encode(&m), false) {
            assert_eq!(accepted.name_id, "alice@example.com", "a mutation changed who signs in");
        }
    }
}
