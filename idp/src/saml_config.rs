//! The SAML 2.0 part of a `[[connectors]]` table (`type = "saml"`): which product the IdP is
//! (`preset`, for its attribute names), its entity id, SSO URL and pinned signing
//! certificate(s), given one by one or read from its metadata.
//!
//! A connection without a certificate is refused here: samael verifies nothing when it has no
//! certificate to verify with, so an unsigned forged response would pass.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::Problem;
use crate::connector_config::{ConnectorConfig, http_url, problem};

/// The IdP products we know the attribute names of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SamlPreset {
    Okta,
    Onelogin,
}

/// Where in the assertion's attributes the profile is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub groups: String,
}

impl SamlPreset {
    /// The attribute statements our docs (docs/connectors/saml-*.md) ask to configure.
    pub fn attributes(self) -> AttributeNames {
        let (email, first_name, last_name, groups) = match self {
            SamlPreset::Okta => ("email", "firstName", "lastName", "groups"),
            SamlPreset::Onelogin => ("User.email", "User.FirstName", "User.LastName", "memberOf"),
        };
        AttributeNames {
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            groups: groups.into(),
        }
    }
}

/// A validated SAML connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlSettings {
    pub preset: SamlPreset,
    pub idp_entity_id: String,
    /// The IdP's HTTP-Redirect SSO endpoint.
    pub sso_url: Url,
    /// The pinned signing certificates, DER. Never empty.
    pub idp_certificates: Vec<Vec<u8>>,
    pub sign_requests: bool,
    pub allow_idp_initiated: bool,
    /// Refuse a plain (unencrypted) assertion.
    pub require_encrypted_assertions: bool,
    pub attributes: AttributeNames,
}

/// What the IdP's metadata says, when given.
#[derive(Debug, Default)]
struct FromMetadata {
    entity_id: Option<String>,
    sso_url: Option<String>,
    certificates: Vec<Vec<u8>>,
}

const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

fn read_metadata(xml: &str) -> Result<FromMetadata, String> {
    if crate::upstream::saml::xml::has_doctype(xml) {
        return Err("holds a DOCTYPE, which is refused".into());
    }
    let ed: samael::metadata::EntityDescriptor = xml.parse().map_err(|e| format!("is not SAML metadata: {e}"))?;
    let mut out = FromMetadata { entity_id: ed.entity_id.clone(), ..FromMetadata::default() };
    for idp in ed.idp_sso_descriptors.iter().flatten() {
        if out.sso_url.is_none() {
            out.sso_url =
                idp.single_sign_on_services.iter().find(|e| e.binding == REDIRECT_BINDING).map(|e| e.location.clone());
        }
        for kd in &idp.key_descriptors {
            if kd.key_use.as_deref().is_some_and(|u| u != "signing") {
                continue;
            }
            for cert in kd.key_info.x509_data.iter().flat_map(|d| d.certificates.iter()) {
                let b64: String = cert.chars().filter(|c| !c.is_whitespace()).collect();
                let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                    .map_err(|_| "has a certificate that is not base64".to_owned())?;
                out.certificates.push(der);
            }
        }
    }
    Ok(out)
}

/// Certificates from PEM text, each checked to parse and to hold a key of useful strength.
fn certificates_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let stack =
        openssl::x509::X509::stack_from_pem(pem.as_bytes()).map_err(|_| "is not PEM certificates".to_owned())?;
    stack.iter().map(|c| c.to_der().map_err(|e| e.to_string())).collect()
}

fn check_certificate(der: &[u8]) -> Result<(), String> {
    let cert = openssl::x509::X509::from_der(der).map_err(|_| "is not an X.509 certificate".to_owned())?;
    let key = cert.public_key().map_err(|_| "has no public key".to_owned())?;
    match key.id() {
        openssl::pkey::Id::RSA if key.bits() >= 2048 => Ok(()),
        openssl::pkey::Id::RSA => Err(format!("has a {}-bit RSA key (2048 at least)", key.bits())),
        openssl::pkey::Id::EC => Ok(()),
        _ => Err("has a key that is neither RSA nor EC".into()),
    }
}

fn text_or_file(
    inline: Option<&String>,
    file: Option<&std::path::PathBuf>,
    key: &str,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match (inline, file) {
        (Some(s), None) => Some(s.clone()),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(s) => Some(s),
            Err(e) => {
                problems.push(problem(
                    format!("{key}.{name}_file"),
                    format!("{}: {e}", path.display()),
                    "a readable file",
                ));
                None
            }
        },
        (Some(_), Some(_)) => {
            problems.push(problem(format!("{key}.{name}"), format!("give {name} or {name}_file, not both"), ""));
            None
        }
        (None, None) => None,
    }
}

/// Validates the SAML settings of connector `key`; problems are pushed, `None` then.
pub fn validate(c: &ConnectorConfig, key: &str, problems: &mut Vec<Problem>) -> Option<SamlSettings> {
    let before = problems.len();
    let metadata = text_or_file(c.idp_metadata.as_ref(), c.idp_metadata_file.as_ref(), key, "idp_metadata", problems)
        .and_then(|xml| {
            read_metadata(&xml)
                .map_err(|e| problems.push(problem(format!("{key}.idp_metadata"), e, "the IdP's SAML metadata XML")))
                .ok()
        })
        .unwrap_or_default();
    let Some(preset) = c.preset else {
        problems.push(problem(format!("{key}.preset"), "is missing", "\"okta\" or \"onelogin\""));
        return None;
    };
    let entity_id = c.idp_entity_id.clone().or(metadata.entity_id).filter(|e| !e.trim().is_empty());
    if entity_id.is_none() {
        problems.push(problem(format!("{key}.idp_entity_id"), "is missing", "the IdP's entity id (its Issuer)"));
    }
    let sso_raw = c.sso_url.clone().or(metadata.sso_url);
    let sso_url = match sso_raw.as_deref().map(|r| (r, http_url(r))) {
        None => {
            problems.push(problem(format!("{key}.sso_url"), "is missing", "the IdP's SSO URL (HTTP-Redirect binding)"));
            None
        }
        Some((raw, None)) => {
            problems.push(problem(
                format!("{key}.sso_url"),
                format!("{raw:?} is not an https URL"),
                "https://... (http only on loopback)",
            ));
            None
        }
        Some((_, Some(u))) => Some(u),
    };
    let pem =
        text_or_file(c.idp_certificate.as_ref(), c.idp_certificate_file.as_ref(), key, "idp_certificate", problems);
    let mut certificates = match pem.as_deref().map(certificates_from_pem) {
        Some(Ok(certs)) => certs,
        Some(Err(e)) => {
            problems.push(problem(format!("{key}.idp_certificate"), e, "the IdP's signing certificate, PEM"));
            Vec::new()
        }
        None => Vec::new(),
    };
    if pem.is_none() {
        certificates = metadata.certificates;
    }
    for der in &certificates {
        if let Err(e) = check_certificate(der) {
            problems.push(problem(format!("{key}.idp_certificate"), e, "an RSA (2048+) or EC certificate"));
        }
    }
    if certificates.is_empty() && problems.len() == before {
        problems.push(problem(
            format!("{key}.idp_certificate_file"),
            "is missing: a SAML connection needs the IdP's signing certificate",
            "idp_certificate_file, idp_certificate, or metadata with a signing certificate",
        ));
    }
    let mut attributes = preset.attributes();
    for (over, slot) in [
        (&c.email_attribute, &mut attributes.email),
        (&c.first_name_attribute, &mut attributes.first_name),
        (&c.last_name_attribute, &mut attributes.last_name),
        (&c.groups_attribute, &mut attributes.groups),
    ] {
        if let Some(name) = over.as_ref().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            *slot = name.to_owned();
        }
    }
    if problems.len() != before {
        return None;
    }
    Some(SamlSettings {
        preset,
        idp_entity_id: entity_id?,
        sso_url: sso_url?,
        idp_certificates: certificates,
        sign_requests: c.sign_requests.unwrap_or(true),
        allow_idp_initiated: c.allow_idp_initiated,
        require_encrypted_assertions: c.require_encrypted_assertions,
        attributes,
    })
}
