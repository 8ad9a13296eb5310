//! What we send: the SP metadata of a connection, and AuthnRequests over the HTTP-Redirect
//! binding, signed (RSA-SHA256 over the query, as the binding specifies) when configured.

use chrono::{DateTime, SecondsFormat, Utc};
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use url::Url;
use url::form_urlencoded::byte_serialize;

use super::sp::SpKeys;
use super::xml::{deflate_base64, escape};

pub const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";

/// Our identity towards one connection.
#[derive(Debug, Clone)]
pub struct SpEndpoints {
    pub entity_id: String,
    pub acs_url: String,
}

impl SpEndpoints {
    /// `{public_url}/saml/{id}/metadata` is both the metadata's address and our entity id.
    pub fn new(base_url: &str, connector_id: &str) -> Self {
        let base = base_url.trim_end_matches('/');
        Self {
            entity_id: format!("{base}/saml/{connector_id}/metadata"),
            acs_url: format!("{base}/saml/{connector_id}/acs"),
        }
    }
}

/// The content and key-transport algorithms we accept, as published in our metadata.
pub const ENCRYPTION_METHODS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
];

pub fn metadata(sp: &SpEndpoints, keys: &SpKeys, sign_requests: bool) -> String {
    let cert = keys.certificate_base64();
    let key = |usage: &str, methods: &str| {
        format!(
            "<md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>{methods}</md:KeyDescriptor>"
        )
    };
    // What `xmlenc` decrypts, strongest first (SAML metadata 2.4.1.1).
    let methods: String =
        ENCRYPTION_METHODS.iter().map(|m| format!("<md:EncryptionMethod Algorithm=\"{m}\"/>")).collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{entity}\"><md:SPSSODescriptor AuthnRequestsSigned=\"{sign_requests}\" WantAssertionsSigned=\"true\" protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">{signing}{encryption}<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat><md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat><md:AssertionConsumerService Binding=\"{POST_BINDING}\" Location=\"{acs}\" index=\"0\" isDefault=\"true\"/></md:SPSSODescriptor></md:EntityDescriptor>\n",
        entity = escape(&sp.entity_id),
        acs = escape(&sp.acs_url),
        signing = key("signing", ""),
        encryption = key("encryption", &methods),
    )
}

/// A fresh request id: an NCName (starts with a letter or `_`), 160 random bits.
pub fn new_request_id() -> String {
    format!("_{}", crate::crypto::tokens::random_token(20).replace('-', "a").replace('_', "b"))
}

/// The browser's next stop: the IdP's SSO URL with the deflated request and `RelayState`.
pub fn redirect_url(
    sso_url: &Url,
    sp: &SpEndpoints,
    keys: Option<&SpKeys>,
    request_id: &str,
    relay_state: &str,
    now: DateTime<Utc>,
) -> Result<Url, openssl::error::ErrorStack> {
    let xml = format!(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\" AssertionConsumerServiceURL=\"{acs}\" ProtocolBinding=\"{POST_BINDING}\"><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy AllowCreate=\"true\"/></samlp:AuthnRequest>",
        id = escape(request_id),
        instant = now.to_rfc3339_opts(SecondsFormat::Secs, true),
        dest = escape(sso_url.as_str()),
        acs = escape(&sp.acs_url),
        issuer = escape(&sp.entity_id),
    );
    let enc = |v: &str| byte_serialize(v.as_bytes()).collect::<String>();
    let mut query = format!("SAMLRequest={}&RelayState={}", enc(&deflate_base64(&xml)), enc(relay_state));
    if let Some(keys) = keys {
        query.push_str(&format!("&SigAlg={}", enc(RSA_SHA256)));
        let mut signer = Signer::new(MessageDigest::sha256(), &keys.key)?;
        signer.update(query.as_bytes())?;
        let signature = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, signer.sign_to_vec()?);
        query.push_str(&format!("&Signature={}", enc(&signature)));
    }
    let mut url = sso_url.clone();
    let joined = match url.query() {
        Some(q) if !q.is_empty() => format!("{q}&{query}"),
        _ => query,
    };
    url.set_query(Some(&joined));
    Ok(url)
}
