//! SAML 2.0 connections (Okta, OneLogin): SP metadata, AuthnRequests over HTTP-Redirect, and
//! responses over HTTP-POST at the ACS, turned into the same [`ExternalIdentity`] as OIDC.
//! See `verify` for the order of the checks and `checks` for the ones samael leaves to us.

pub mod checks;
pub mod request;
pub mod sp;
pub mod verify;
pub mod xml;
pub mod xmlenc;

use chrono::{DateTime, Utc};
use openssl::pkey::{PKey, Private};

pub use checks::{Accepted, Expected, SamlRejection};
pub use request::SpEndpoints;
pub use sp::SpKeys;

use super::{Authorization, ExternalIdentity, FlowSecrets, UpstreamError};
use crate::config::{ConnectorSettings, ConnectorSpec};
use crate::saml_config::SamlSettings;

const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// What the SAML side needs from the server to start a login: our address and our key.
#[derive(Debug, Clone, Copy)]
pub struct SpContext<'a> {
    pub base_url: &'a str,
    pub keys: &'a SpKeys,
    pub now: DateTime<Utc>,
}

#[derive(Debug)]
pub struct SamlConnector {
    spec: ConnectorSpec,
}

impl SamlConnector {
    pub fn new(spec: ConnectorSpec) -> Self {
        Self { spec }
    }

    pub fn spec(&self) -> &ConnectorSpec {
        &self.spec
    }

    fn settings(&self) -> Result<&SamlSettings, UpstreamError> {
        match &self.spec.settings {
            ConnectorSettings::Saml(s) => Ok(s),
            _ => Err(UpstreamError::Invalid("not a SAML connection".into())),
        }
    }

    pub fn allows_idp_initiated(&self) -> bool {
        self.settings().is_ok_and(|s| s.allow_idp_initiated)
    }

    pub fn endpoints(&self, base_url: &str) -> SpEndpoints {
        SpEndpoints::new(base_url, self.spec.id.as_str())
    }

    /// Our SP metadata for this connection, to give the IdP's administrator.
    pub fn metadata(&self, base_url: &str, keys: &SpKeys) -> Result<String, UpstreamError> {
        let s = self.settings()?;
        Ok(request::metadata(&self.endpoints(base_url), keys, s.sign_requests))
    }

    /// An AuthnRequest to the IdP; its id is kept in the sealed flow for InResponseTo.
    pub fn authorize(&self, sp: SpContext<'_>) -> Result<Authorization, UpstreamError> {
        let s = self.settings()?;
        let request_id = request::new_request_id();
        let relay_state = crate::crypto::tokens::random_token(32);
        let keys = s.sign_requests.then_some(sp.keys);
        let url =
            request::redirect_url(&s.sso_url, &self.endpoints(sp.base_url), keys, &request_id, &relay_state, sp.now)
                .map_err(|e| UpstreamError::Invalid(format!("signing the AuthnRequest: {e}")))?;
        Ok(Authorization {
            url,
            state: relay_state,
            secrets: FlowSecrets { nonce: None, pkce_verifier: None, saml_request_id: Some(request_id) },
        })
    }

    /// Verifies a posted SAMLResponse (base64) and reads the identity from the verified
    /// assertion only. `request_id` is this browser's AuthnRequest, `None` when IdP-initiated.
    pub fn finish(
        &self,
        encoded: &str,
        base_url: &str,
        keys: &SpKeys,
        request_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(ExternalIdentity, Accepted), SamlRejection> {
        let s = self.settings().map_err(|_| SamlRejection::Malformed("not a SAML connection"))?;
        let endpoints = self.endpoints(base_url);
        let expected = Expected {
            idp_entity_id: &s.idp_entity_id,
            sp_entity_id: &endpoints.entity_id,
            acs_url: &endpoints.acs_url,
            request_id,
            now,
        };
        // One SP key serves every connection (see `sp`): it decrypts what the IdP encrypted to
        // the certificate in our metadata.
        let decryption = Decryption { key: Some(&keys.key), required: s.require_encrypted_assertions };
        let accepted = verify_response(encoded, &s.idp_certificates, decryption, &expected)?;
        Ok((identity(self.spec.id.as_str(), s, &accepted), accepted))
    }
}

/// How a connection takes encrypted assertions: our SP key to decrypt them with (`None`: an
/// `EncryptedAssertion` is refused), and whether a plain assertion is refused.
#[derive(Debug, Clone, Copy)]
pub struct Decryption<'a> {
    pub key: Option<&'a PKey<Private>>,
    pub required: bool,
}

impl Decryption<'_> {
    /// No key: plain assertions only.
    pub const NONE: Decryption<'static> = Decryption { key: None, required: false };
}

/// The whole path from the posted value to an accepted assertion (no storage, no clock).
///
/// A plain assertion and an encrypted one end in the same checks. For an encrypted one:
/// 1. the document is checked as it came (size, DOCTYPE, pre-scan, Status);
/// 2. a Response signature, when there is one, is verified first, on the ciphertext, and the
///    Response's own checks run on what it signed; AES-CBC (no integrity of its own) is accepted
///    only under such a signature, so a changed ciphertext never reaches the decryption (no
///    padding oracle); AES-GCM carries its own tag;
/// 3. the assertion is decrypted with our key, its text refused if it holds a DOCTYPE (before
///    anything parses it) or is anything but one Assertion element, and put back in the place of
///    the `EncryptedAssertion`;
/// 4. the assertion's own signature by the pinned certificate is required, as for a plain one
///    (Okta and OneLogin sign the assertion inside the encryption), and only what it signed is
///    read by [`checks::assertion`].
pub fn verify_response(
    encoded: &str,
    certificates: &[Vec<u8>],
    decryption: Decryption<'_>,
    x: &Expected<'_>,
) -> Result<Accepted, SamlRejection> {
    let raw_xml = xml::from_post(encoded).map_err(|e| match e {
        xml::XmlError::Doctype => SamlRejection::Malformed("a DOCTYPE"),
        xml::XmlError::TooLarge => SamlRejection::Malformed("too large"),
        _ => SamlRejection::Malformed("not base64 UTF-8 XML"),
    })?;
    let shape = verify::prescan_unsigned_ok(&raw_xml)?;
    if shape.root != "Response" {
        return Err(SamlRejection::Malformed("not a Response"));
    }
    if shape.assertions + shape.encrypted_assertions > 1 {
        // Also what defeats wrapping across the encryption (a plain assertion beside the
        // encrypted one): refused before anything else reads the document.
        return Err(SamlRejection::Malformed("not exactly one assertion, plain or encrypted"));
    }
    // samael never sees an EncryptedAssertion: it is read by `xmlenc` alone, and cut out of
    // what samael parses.
    let cut = shape.encrypted_assertions == 1 && shape.assertions == 0;
    let raw = response_without_encrypted(&raw_xml, cut)?;
    // The IdP's refusal is usually unsigned: report it as such, trusting nothing else in it.
    checks::status(&raw)?;
    match (shape.assertions, shape.encrypted_assertions) {
        (1, 0) if decryption.required => {
            Err(SamlRejection::Encryption("a plain assertion where this connection requires encrypted ones"))
        }
        (1, 0) => plain(&raw_xml, &raw, &shape, certificates, x),
        (0, 1) => {
            let key = decryption.key.ok_or(SamlRejection::Encryption("an encrypted assertion and no key for it"))?;
            encrypted(&raw_xml, &raw, &shape, certificates, key, x)
        }
        (0, 0) => Err(SamlRejection::Malformed("no assertion")),
        _ => Err(SamlRejection::Malformed("not exactly one assertion, plain or encrypted")),
    }
}

/// samael's view of a Response, with its EncryptedAssertion (when `cut`) left out.
fn response_without_encrypted(xml: &str, cut: bool) -> Result<samael::schema::Response, SamlRejection> {
    let parsed = if cut {
        let found = xmlenc::locate(xml)?;
        xmlenc::splice(xml, &found, "")?.parse()
    } else {
        xml.parse()
    };
    parsed.map_err(|_| SamlRejection::Malformed("not a SAML Response"))
}

fn plain(
    raw_xml: &str,
    raw: &samael::schema::Response,
    shape: &verify::Shape,
    certificates: &[Vec<u8>],
    x: &Expected<'_>,
) -> Result<Accepted, SamlRejection> {
    verify::require_signed(shape)?;
    let verified = verify::verified_xml(raw_xml, certificates)?;
    let root = verify::prescan_unsigned_ok(&verified)?.root;
    let (assertion, signed_itself) = match root.as_str() {
        "Response" => {
            let r: samael::schema::Response =
                verified.parse().map_err(|_| SamlRejection::Malformed("the signed Response does not parse"))?;
            checks::status(&r)?;
            checks::response(&r, true, x)?;
            (r.assertion.ok_or(SamlRejection::Malformed("the signed Response holds no assertion"))?, false)
        }
        "Assertion" => {
            checks::response(raw, false, x)?;
            let a = verified.parse().map_err(|_| SamlRejection::Malformed("the signed Assertion does not parse"))?;
            (a, true)
        }
        _ => return Err(SamlRejection::Signature("the signature covers neither the Response nor the Assertion")),
    };
    checks::assertion(&assertion, signed_itself, x)
}

fn encrypted(
    raw_xml: &str,
    raw: &samael::schema::Response,
    shape: &verify::Shape,
    certificates: &[Vec<u8>],
    key: &PKey<Private>,
    x: &Expected<'_>,
) -> Result<Accepted, SamlRejection> {
    // Only the Response's signature can be seen while the assertion is encrypted.
    let (outer, response_signed) = match shape.signatures {
        0 => {
            checks::response(raw, false, x)?;
            (raw_xml.to_owned(), false)
        }
        1 => {
            let verified = verify::verified_xml(raw_xml, certificates)?;
            if verify::prescan_unsigned_ok(&verified)?.root != "Response" {
                return Err(SamlRejection::Signature("the signature does not cover the Response"));
            }
            let r = response_without_encrypted(&verified, true)?;
            checks::status(&r)?;
            checks::response(&r, true, x)?;
            (verified, true)
        }
        _ => return Err(SamlRejection::Signature("more than one signature outside the encrypted assertion")),
    };
    let found = xmlenc::parse(&outer)?;
    if !found.content.is_authenticated() && !response_signed {
        return Err(SamlRejection::Encryption(
            "AES-CBC in a Response that is not signed (use AES-GCM or sign the Response)",
        ));
    }
    let plain = xmlenc::decrypt(&found, key)?;
    let assertion_xml = xmlenc::plaintext_assertion(&plain)?;
    let spliced = xmlenc::splice(&outer, &found.range, assertion_xml)?;
    let inner = verify::prescan_unsigned_ok(&spliced)?;
    if inner.assertions != 1 || inner.encrypted_assertions != 0 {
        return Err(SamlRejection::Malformed("the decrypted content is not exactly one assertion"));
    }
    match inner.signatures {
        0 => return Err(SamlRejection::Signature("the decrypted assertion is not signed")),
        1 => {}
        _ => return Err(SamlRejection::Signature("more than one signature in the decrypted assertion")),
    }
    let verified = verify::verified_xml(&spliced, certificates)?;
    if verify::prescan_unsigned_ok(&verified)?.root != "Assertion" {
        return Err(SamlRejection::Signature("the decrypted assertion's signature does not cover it"));
    }
    let assertion: samael::schema::Assertion =
        verified.parse().map_err(|_| SamlRejection::Malformed("the signed Assertion does not parse"))?;
    checks::assertion(&assertion, true, x)
}

fn first<'a>(accepted: &'a Accepted, name: &str) -> Option<&'a str> {
    accepted.attributes.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.first()).map(String::as_str)
}

fn plausible_email(s: &str) -> bool {
    s.len() <= 254
        && s.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// The preset's attributes read from the verified assertion. The e-mail is the IdP's word
/// (an enterprise directory), so it counts as verified; the account is keyed on the NameID.
fn identity(connector_id: &str, s: &SamlSettings, a: &Accepted) -> ExternalIdentity {
    let names = &s.attributes;
    let email = first(a, &names.email)
        .map(str::to_owned)
        .or_else(|| (a.name_id_format.as_deref() == Some(EMAIL_FORMAT)).then(|| a.name_id.clone()))
        .filter(|e| plausible_email(e));
    let name = [first(a, &names.first_name), first(a, &names.last_name)]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let groups = a
        .attributes
        .iter()
        .filter(|(n, _)| n == &names.groups)
        .flat_map(|(_, v)| v.iter().filter(|g| !g.is_empty()).cloned())
        .collect();
    ExternalIdentity {
        connector_id: connector_id.to_owned(),
        subject: a.name_id.clone(),
        email_verified: email.is_some(),
        email,
        name: (!name.is_empty()).then_some(name),
        groups,
        amr: Vec::new(),
        acr: a.authn_context.clone(),
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_xmlenc;
