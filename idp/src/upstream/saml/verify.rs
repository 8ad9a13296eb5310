//! Turning a posted SAMLResponse into a trusted assertion, in this order:
//! 1. [`super::xml`]: size, encoding, no DOCTYPE;
//! 2. [`prescan`]: the signatures' shape (at most two, same-document references, only the
//!    enveloped-signature and exclusive-c14n transforms: no XSLT, no XPath, no comments kept);
//! 3. the unverified Status: a refusal from the IdP is reported as one;
//! 4. samael/xmlsec: every signature verified with the pinned certificates only (KeyInfo
//!    ignored), RSA/ECDSA with SHA-256 or stronger, and only the signed bytes kept (pre-digest);
//! 5. [`super::checks`] on what was verified, with the time passed in.

use quick_xml::events::Event;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};

use super::checks::SamlRejection;

const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

const TRANSFORMS: &[&str] =
    &["http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"];

/// RSA and ECDSA with SHA-256 or stronger; SHA-1 (and SHA-224) refused.
pub const ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// What the unverified document says about itself, for the checks that need no trust.
#[derive(Debug, Default)]
pub struct Shape {
    pub root: String,
    pub signatures: usize,
    pub assertions: usize,
    pub encrypted_assertions: usize,
}

fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|b| *b == b':').next().unwrap_or(name)
}

/// Walks a document once (quick-xml, no DTD, no entity expansion beyond the five
/// predefined) and refuses signature constructs we never accept.
pub fn prescan_unsigned_ok(xml: &str) -> Result<Shape, SamlRejection> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut shape = Shape::default();
    let mut depth = 0usize;
    // Local names of the open elements: a DigestMethod inside an xenc EncryptionMethod is the
    // RSA-OAEP digest (checked in `super::xmlenc`), not a signature's.
    let mut open: Vec<Vec<u8>> = Vec::new();
    loop {
        let event = reader.read_resolved_event().map_err(|_| SamlRejection::Malformed("not well-formed XML"))?;
        let (ns, e, empty) = match event {
            (ns, Event::Start(e)) => (ns, e, false),
            (ns, Event::Empty(e)) => (ns, e, true),
            (_, Event::End(_)) => {
                depth = depth.saturating_sub(1);
                open.pop();
                continue;
            }
            (_, Event::DocType(_)) => return Err(SamlRejection::Malformed("a DOCTYPE")),
            (_, Event::Eof) => break,
            _ => continue,
        };
        if !empty {
            depth += 1;
        }
        if depth > 64 {
            return Err(SamlRejection::Malformed("nested too deep"));
        }
        let name = e.name();
        let local_name = local(name.as_ref());
        let parent = open.last().map(Vec::as_slice).unwrap_or_default();
        let oaep_digest = local_name == b"DigestMethod" && parent == b"EncryptionMethod";
        if !empty {
            open.push(local_name.to_vec());
        }
        if shape.root.is_empty() {
            shape.root = String::from_utf8_lossy(local_name).into_owned();
        }
        let in_dsig = matches!(ns, quick_xml::name::ResolveResult::Bound(n) if n.as_ref() == DSIG_NS);
        let attr = |key: &[u8]| -> Option<String> {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == key)
                .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
        };
        match local_name {
            b"Assertion" => shape.assertions += 1,
            b"EncryptedAssertion" => shape.encrypted_assertions += 1,
            b"Signature" if in_dsig => shape.signatures += 1,
            b"Transform" | b"CanonicalizationMethod" if in_dsig => {
                let alg = attr(b"Algorithm").unwrap_or_default();
                if !TRANSFORMS.contains(&alg.as_str()) {
                    return Err(SamlRejection::Signature("a transform other than enveloped-signature and exc-c14n"));
                }
            }
            b"SignatureMethod" | b"DigestMethod" if in_dsig && !oaep_digest => {
                let alg = attr(b"Algorithm").unwrap_or_default();
                let known = ALGORITHMS.iter().any(|a| a.signature_uri() == alg || a.digest_uri() == alg);
                if !known {
                    return Err(SamlRejection::Signature(
                        "an algorithm other than RSA or ECDSA with SHA-256 or stronger",
                    ));
                }
            }
            b"Reference" if in_dsig => {
                // A bare name (`#` and an XML id) only: xmlsec also takes `#xpointer(...)`, which
                // selects by expression (the fuzzer reached its XPointer engine).
                let uri = attr(b"URI").unwrap_or_default();
                if !bare_name(&uri) {
                    return Err(SamlRejection::Signature(
                        "a reference that is not to an element of this document by its id",
                    ));
                }
            }
            b"XPath" | b"XSLT" | b"RetrievalMethod" => {
                return Err(SamlRejection::Signature("XPath, XSLT or RetrievalMethod in a signature"));
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// `#` and an id, as SAML's IdPs write them (`_8f0c...`, `id123...`, `pfx...`): an NCName's
/// ASCII subset, nothing XPointer could read as an expression.
fn bare_name(uri: &str) -> bool {
    let Some(id) = uri.strip_prefix('#') else { return false };
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// One signature (the assertion's) or two (the Response's and the assertion's), no more.
pub fn require_signed(shape: &Shape) -> Result<(), SamlRejection> {
    match shape.signatures {
        0 => Err(SamlRejection::Signature("unsigned")),
        1 | 2 => Ok(()),
        _ => Err(SamlRejection::Signature("more than two signatures")),
    }
}

/// Verifies every signature against the pinned certificates and returns the verified
/// pre-digest XML: the signed Response (its assertion inside), or the signed Assertion alone.
pub fn verified_xml(xml: &str, certificates: &[Vec<u8>]) -> Result<String, SamlRejection> {
    if certificates.is_empty() {
        // samael verifies nothing without a certificate: never let that through.
        return Err(SamlRejection::Signature("no pinned certificate"));
    }
    let certs: Vec<CertificateDer> = certificates.iter().cloned().map(CertificateDer::from).collect();
    Crypto::reduce_xml_to_signed_with_allowed_algorithms(xml, &certs, ReduceMode::PreDigest, Some(ALGORITHMS)).map_err(
        |e| {
            tracing::info!(error = %e, "SAML signature verification failed");
            SamlRejection::Signature("not signed by the pinned certificate")
        },
    )
}
