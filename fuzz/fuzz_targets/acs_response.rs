//! The ACS path, from the posted `SAMLResponse` to an accepted assertion, on arbitrary input:
//! `idp::upstream::saml::verify_response` is exactly what `SamlConnector::finish` calls (base64
//! decode, size and DOCTYPE guards, the pre-scan of signature constructs, samael parsing, xmlsec
//! verification against the pinned certificate, then our checks), here with the committed
//! fixture's certificate, connection and clock.
//!
//! The input is used twice: base64-encoded (so the mutations reach the XML layers) and, when it
//! is UTF-8, as the posted value itself (so they reach the decoding layer). Besides panics and
//! crashes, the target fails if anything is accepted with another identity than the fixture's.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use chrono::{TimeZone, Utc};
use idp::upstream::saml::{Decryption, Expected, verify_response};
use libfuzzer_sys::fuzz_target;

const CERT: &str = include_str!("../../idp/src/upstream/saml/testdata/idp-cert.pem");

fn certs() -> &'static [Vec<u8>] {
    static CERTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CERTS.get_or_init(|| {
        let der = openssl::x509::X509::from_pem(CERT.as_bytes()).and_then(|c| c.to_der());
        vec![der.unwrap_or_default()]
    })
}

fn check(encoded: &str) {
    let Some(now) = Utc.with_ymd_and_hms(2026, 12, 3, 13, 44, 30).single() else { return };
    let x = Expected {
        idp_entity_id: "http://www.okta.com/exk1",
        sp_entity_id: "https://id.example.com/saml/okta/metadata",
        acs_url: "https://id.example.com/saml/okta/acs",
        request_id: Some("_req1"),
        now,
    };
    if let Ok(accepted) = verify_response(encoded, certs(), Decryption::NONE, &x) {
        assert_eq!(accepted.name_id, "alice@example.com", "an edited response was accepted as someone else");
    }
}

fuzz_target!(|data: &[u8]| {
    check(&base64::engine::general_purpose::STANDARD.encode(data));
    if let Ok(s) = std::str::from_utf8(data) {
        check(s);
    }
});
