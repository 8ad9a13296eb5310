//! What is checked of a SAML message before any XML parser sees it: its size (encoded, decoded
//! and inflated), its encoding, and that it holds no DOCTYPE (so no entity, external or
//! expanding, can reach libxml2 or quick-xml).

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The largest base64 SAMLResponse accepted (the form limit, `http.max_body_bytes`, applies too).
pub const MAX_ENCODED: usize = 256 * 1024;
/// The largest XML accepted once decoded or inflated.
pub const MAX_XML: usize = 192 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the message is larger than allowed")]
    TooLarge,
    #[error("the message is not base64")]
    NotBase64,
    #[error("the message does not inflate")]
    NotDeflate,
    #[error("the message is not UTF-8")]
    NotUtf8,
    #[error("the message holds a DOCTYPE or an entity declaration")]
    Doctype,
}

/// Whether the text declares a document type or entities (refused in SAML).
pub fn has_doctype(xml: &str) -> bool {
    let lower = xml.to_ascii_lowercase();
    lower.contains("<!doctype")
        || lower.contains("<!entity")
        || lower.contains("<!element")
        || lower.contains("<!attlist")
}

fn checked(bytes: Vec<u8>) -> Result<String, XmlError> {
    if bytes.len() > MAX_XML {
        return Err(XmlError::TooLarge);
    }
    let xml = String::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    if has_doctype(&xml) {
        return Err(XmlError::Doctype);
    }
    Ok(xml)
}

fn decode(encoded: &str) -> Result<Vec<u8>, XmlError> {
    if encoded.len() > MAX_ENCODED {
        return Err(XmlError::TooLarge);
    }
    let compact: String = encoded.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| XmlError::NotBase64)
}

/// HTTP-POST binding: base64 of the XML.
pub fn from_post(encoded: &str) -> Result<String, XmlError> {
    checked(decode(encoded)?)
}

/// HTTP-Redirect binding: base64 of the raw-DEFLATEd XML; inflation stops past [`MAX_XML`].
pub fn from_redirect(encoded: &str) -> Result<String, XmlError> {
    let deflated = decode(encoded)?;
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_XML).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| XmlError::NotDeflate)?;
    checked(out)
}

/// Raw DEFLATE then base64, for our AuthnRequests.
pub fn deflate_base64(xml: &str) -> String {
    use std::io::Write;
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let done = enc.write_all(xml.as_bytes()).and_then(|()| enc.finish());
    STANDARD.encode(done.unwrap_or_default())
}

/// Escapes text for an XML attribute value or text node.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn doctype_and_entities_are_refused_before_parsing() {
        for bad in [
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>",
            "<?xml version=\"1.0\"?><!doctype lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]><r>&lol2;</r>",
        ] {
            assert_eq!(from_post(&STANDARD.encode(bad)), Err(XmlError::Doctype));
        }
        assert!(from_post(&STANDARD.encode("<r/>")).is_ok());
    }

    #[test]
    fn sizes_are_capped() {
        assert_eq!(from_post(&"A".repeat(MAX_ENCODED + 4)), Err(XmlError::TooLarge));
        // A deflate bomb: a few KiB that inflate to megabytes.
        let bomb = deflate_base64(&format!("<r>{}</r>", " ".repeat(8 * 1024 * 1024)));
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(from_redirect(&bomb), Err(XmlError::TooLarge));
        let ok = deflate_base64("<r>fine</r>");
        assert_eq!(from_redirect(&ok).unwrap(), "<r>fine</r>");
        assert_eq!(from_post("!!!"), Err(XmlError::NotBase64));
    }
}
