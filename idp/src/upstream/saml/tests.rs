//! The checks on verified content, with the time injected (no signatures here: those are
//! exercised end to end in tests/saml_login.rs against samlify).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::checks::{self, CLOCK_SKEW_SECS, Expected, MAX_AGE_SECS, SamlRejection};
use super::verify;

const ACS: &str = "https://id.example.com/saml/okta/acs";
const SP: &str = "https://id.example.com/saml/okta/metadata";
const IDP: &str = "http://www.okta.com/exk1";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const SIGNATURE: &str = r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#_a1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>AAAA</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>"##;

/// An assertion as minted at `t0`, valid 5 minutes; `edit` rewrites the text.
fn assertion_xml(in_response_to: Option<&str>, edit: impl Fn(String) -> String) -> String {
    let irt = in_response_to.map(|r| format!(" InResponseTo=\"{r}\"")).unwrap_or_default();
    let (now, later) = (iso(t0()), iso(t0() + Duration::minutes(5)));
    edit(format!(
        "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a1\" Version=\"2.0\" IssueInstant=\"{now}\"><saml:Issuer>{IDP}</saml:Issuer>{SIGNATURE}<saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">alice@example.com</saml:NameID><saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData NotOnOrAfter=\"{later}\" Recipient=\"{ACS}\"{irt}/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore=\"{now}\" NotOnOrAfter=\"{later}\"><saml:AudienceRestriction><saml:Audience>{SP}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant=\"{now}\"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name=\"groups\"><saml:AttributeValue>admins</saml:AttributeValue><saml:AttributeValue>staff</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>"
    ))
}

fn expected(request_id: Option<&str>, now: DateTime<Utc>) -> Expected<'_> {
    Expected { idp_entity_id: IDP, sp_entity_id: SP, acs_url: ACS, request_id, now }
}

fn check(xml: &str, request_id: Option<&str>, now: DateTime<Utc>) -> Result<checks::Accepted, SamlRejection> {
    let a: samael::schema::Assertion = xml.parse().expect("the test assertion parses");
    checks::assertion(&a, false, &expected(request_id, now))
}

#[test]
fn a_good_assertion_is_accepted_within_its_window_and_skew() {
    let xml = assertion_xml(Some("_req"), |s| s);
    let ok = check(&xml, Some("_req"), t0()).unwrap();
    assert_eq!(ok.name_id, "alice@example.com");
    assert_eq!(ok.assertion_id, "_a1");
    assert_eq!(ok.attributes, vec![("groups".to_owned(), vec!["admins".to_owned(), "staff".to_owned()])]);
    assert_eq!(ok.remember_until, t0() + Duration::minutes(5) + Duration::seconds(CLOCK_SKEW_SECS));
    let skew = Duration::seconds(CLOCK_SKEW_SECS);
    assert!(check(&xml, Some("_req"), t0() + Duration::minutes(5) + skew - Duration::seconds(1)).is_ok());
    assert!(check(&xml, Some("_req"), t0() - skew).is_ok(), "a clock slightly behind the IdP's");
}

#[test]
fn expired_is_refused() {
    let xml = assertion_xml(Some("_req"), |s| s);
    let late = t0() + Duration::minutes(5) + Duration::seconds(CLOCK_SKEW_SECS);
    assert!(matches!(check(&xml, Some("_req"), late), Err(SamlRejection::Time(_))));
}

#[test]
fn not_yet_valid_is_refused() {
    let xml = assertion_xml(Some("_req"), |s| s);
    let early = t0() - Duration::seconds(CLOCK_SKEW_SECS + 1);
    assert_eq!(check(&xml, Some("_req"), early), Err(SamlRejection::Time("IssueInstant in the future")));
    // NotBefore alone in the future (IssueInstant fine).
    let nb = iso(t0() + Duration::minutes(10));
    let xml = assertion_xml(Some("_req"), |s| {
        s.replacen(&format!("NotBefore=\"{}\"", iso(t0())), &format!("NotBefore=\"{nb}\""), 1)
    });
    assert_eq!(check(&xml, Some("_req"), t0()), Err(SamlRejection::Time("not yet valid (Conditions NotBefore)")));
}

#[test]
fn a_stale_issue_instant_is_refused_even_when_the_conditions_run_long() {
    let far = iso(t0() + Duration::hours(2));
    let xml = assertion_xml(Some("_req"), |s| s.replace(&iso(t0() + Duration::minutes(5)), &far));
    let now = t0() + Duration::seconds(MAX_AGE_SECS + CLOCK_SKEW_SECS + 1);
    assert_eq!(check(&xml, Some("_req"), now), Err(SamlRejection::Time("IssueInstant too old")));
}

#[test]
fn audience_must_name_us_in_every_restriction() {
    let wrong =
        assertion_xml(Some("_req"), |s| s.replace(&format!("<saml:Audience>{SP}"), "<saml:Audience>https://other/sp"));
    assert_eq!(check(&wrong, Some("_req"), t0()), Err(SamlRejection::Audience("we are not the audience")));
    let two = assertion_xml(Some("_req"), |s| {
        s.replace("</saml:Conditions>", "<saml:AudienceRestriction><saml:Audience>https://other/sp</saml:Audience></saml:AudienceRestriction></saml:Conditions>")
    });
    assert_eq!(check(&two, Some("_req"), t0()), Err(SamlRejection::Audience("we are not the audience")));
    let none = assertion_xml(Some("_req"), |s| {
        let a = s.find("<saml:AudienceRestriction>").unwrap();
        let b = s.find("</saml:AudienceRestriction>").unwrap() + "</saml:AudienceRestriction>".len();
        format!("{}{}", &s[..a], &s[b..])
    });
    assert_eq!(check(&none, Some("_req"), t0()), Err(SamlRejection::Audience("no AudienceRestriction")));
}

#[test]
fn recipient_issuer_and_in_response_to() {
    let xml =
        assertion_xml(Some("_req"), |s| s.replace(&format!("Recipient=\"{ACS}\""), "Recipient=\"https://evil/acs\""));
    assert_eq!(check(&xml, Some("_req"), t0()), Err(SamlRejection::Destination("Recipient is not our ACS")));
    let xml = assertion_xml(Some("_req"), |s| s.replace(&format!("<saml:Issuer>{IDP}"), "<saml:Issuer>urn:other"));
    assert!(matches!(check(&xml, Some("_req"), t0()), Err(SamlRejection::Issuer(_))));
    let xml = assertion_xml(Some("_req"), |s| s);
    assert!(matches!(check(&xml, Some("_other"), t0()), Err(SamlRejection::InResponseTo(_))));
    assert!(matches!(check(&xml, None, t0()), Err(SamlRejection::InResponseTo(_))), "unsolicited naming a request");
    let unsolicited = assertion_xml(None, |s| s);
    assert!(matches!(check(&unsolicited, Some("_req"), t0()), Err(SamlRejection::InResponseTo(_))));
    assert!(check(&unsolicited, None, t0()).is_ok(), "IdP-initiated, where allowed");
}

#[test]
fn an_assertion_without_its_own_signature_is_refused() {
    let xml = assertion_xml(Some("_req"), |s| s.replace(SIGNATURE, ""));
    assert_eq!(check(&xml, Some("_req"), t0()), Err(SamlRejection::Signature("the assertion itself is not signed")));
}

#[test]
fn a_failed_status_is_the_idps_refusal() {
    let xml = format!(
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ID=\"_r\" Version=\"2.0\" IssueInstant=\"{}\"><samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Requester\"/></samlp:Status></samlp:Response>",
        iso(t0())
    );
    let r: samael::schema::Response = xml.parse().unwrap();
    assert_eq!(checks::status(&r), Err(SamlRejection::Status("urn:oasis:names:tc:SAML:2.0:status:Requester".into())));
}

#[test]
fn prescan_refuses_weak_or_foreign_signature_constructs() {
    let ok = assertion_xml(None, |s| s);
    assert_eq!(verify::prescan_unsigned_ok(&ok).unwrap().signatures, 1);
    for (from, to) in [
        ("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1"),
        ("xmlenc#sha256\"", "xmldsig#sha1\""),
        ("xml-exc-c14n#\"/></ds:Transforms>", "xml-exc-c14n#WithComments\"/></ds:Transforms>"),
        ("URI=\"#_a1\"", "URI=\"https://evil.example/a.xml\""),
        ("URI=\"#_a1\"", "URI=\"\""),
        ("URI=\"#_a1\"", "URI=\"#xpointer(/)\""),
        ("URI=\"#_a1\"", "URI=\"#xpointer(id('_a1'))\""),
        ("URI=\"#_a1\"", "URI=\"#\""),
        ("URI=\"#_a1\"", "URI=\"#1abc\""),
        (
            "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
            "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/>",
        ),
    ] {
        let bad = ok.replacen(from, to, 1);
        assert_ne!(bad, ok, "{from}");
        assert!(matches!(verify::prescan_unsigned_ok(&bad), Err(SamlRejection::Signature(_))), "{to}");
    }
}

#[test]
fn without_a_pinned_certificate_nothing_verifies() {
    let ok = assertion_xml(None, |s| s);
    assert!(matches!(verify::verified_xml(&ok, &[]), Err(SamlRejection::Signature(_))));
}

/// A response samlify signed (testdata/, minted by tests/peers/saml/mint.js at 13:44:16Z), to
/// run the whole verification path in-process.
const FIXTURE: &str = include_str!("testdata/response.b64");
const FIXTURE_CERT: &str = include_str!("testdata/idp-cert.pem");

fn fixture_expected() -> Expected<'static> {
    Expected {
        idp_entity_id: IDP,
        sp_entity_id: SP,
        acs_url: ACS,
        request_id: Some("_req1"),
        now: Utc.with_ymd_and_hms(2026, 12, 3, 13, 44, 30).unwrap(),
    }
}

fn fixture_certs() -> Vec<Vec<u8>> {
    vec![openssl::x509::X509::from_pem(FIXTURE_CERT.as_bytes()).unwrap().to_der().unwrap()]
}

#[test]
fn the_fixture_verifies_and_only_at_its_time() {
    let ok =
        super::verify_response(FIXTURE.trim(), &fixture_certs(), super::Decryption::NONE, &fixture_expected()).unwrap();
    assert_eq!(ok.name_id, "alice@example.com");
    let mut later = fixture_expected();
    later.now += Duration::hours(1);
    assert!(matches!(
        super::verify_response(FIXTURE.trim(), &fixture_certs(), super::Decryption::NONE, &later),
        Err(SamlRejection::Time(_))
    ));
    let mut other = fixture_expected();
    other.request_id = Some("_req2");
    assert!(super::verify_response(FIXTURE.trim(), &fixture_certs(), super::Decryption::NONE, &other).is_err());
}

/// Fuzzing in the small: thousands of random byte edits of a genuinely signed response go
/// through the whole ACS path without a panic, and none is accepted with another identity.
#[test]
fn mutated_responses_never_panic_nor_change_the_identity() {
    use base64::Engine;
    use rand::{Rng, SeedableRng};
    let xml = base64::engine::general_purpose::STANDARD.decode(FIXTURE.trim()).unwrap();
    let certs = fixture_certs();
    let x = fixture_expected();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5a41);
    for _ in 0..1500 {
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
        let encoded = base64::engine::general_purpose::STANDARD.encode(&m);
        if let Ok(accepted) = super::verify_response(&encoded, &certs, super::Decryption::NONE, &x) {
            assert_eq!(accepted.name_id, "alice@example.com", "a mutation changed who signs in");
        }
    }
}
