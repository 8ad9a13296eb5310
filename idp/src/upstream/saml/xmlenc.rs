//! Encrypted assertions (XML Encryption 1.0/1.1), decrypted with our SP key and nothing else.
//!
//! Accepted, and only these: key transport RSA-OAEP (`xmlenc#rsa-oaep-mgf1p`, or
//! `xmlenc11#rsa-oaep` with SHA-1/256/512 and MGF1 with SHA-1/256/512, no OAEP label), content
//! AES-128/256-GCM and AES-128/256-CBC. RSA PKCS#1 v1.5 key transport is refused before any RSA
//! operation (Bleichenbacher-class oracles), and so is everything else (3DES, key agreement,
//! CipherReference, a key by reference). What the walk in [`parse`] returns is only where the
//! `EncryptedAssertion` is and the bytes to decrypt; the plaintext is then put back in its place
//! and goes through the same checks as a plain assertion (see `super::verify_response`).
//!
//! Every cryptographic failure (wrong key, tampered ciphertext or tag, bad padding) is one and
//! the same rejection, and the user's page is the same as for any other refusal.

use openssl::md::{Md, MdRef};
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::symm::{Cipher, Crypter, Mode};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use zeroize::Zeroizing;

use super::checks::SamlRejection;
use super::xml::{MAX_XML, has_doctype};

const SAML_NS: &[u8] = b"urn:oasis:names:tc:SAML:2.0:assertion";
const XENC_NS: &[u8] = b"http://www.w3.org/2001/04/xmlenc#";
const XENC11_NS: &[u8] = b"http://www.w3.org/2009/xmlenc11#";
const DSIG_NS: &[u8] = b"http://www.w3.org/2000/09/xmldsig#";

const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
const RSA_OAEP_11: &str = "http://www.w3.org/2009/xmlenc11#rsa-oaep";
const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
const ELEMENT_TYPE: &str = "http://www.w3.org/2001/04/xmlenc#Element";

/// The one failure an attacker may learn nothing more from.
pub const UNDECRYPTABLE: SamlRejection =
    SamlRejection::Encryption("the encrypted assertion does not decrypt with our key");

/// Content encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Aes128Cbc,
    Aes256Cbc,
    Aes128Gcm,
    Aes256Gcm,
}

impl Content {
    fn from_uri(uri: &str) -> Result<Self, SamlRejection> {
        Ok(match uri {
            "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => Content::Aes128Cbc,
            "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => Content::Aes256Cbc,
            "http://www.w3.org/2009/xmlenc11#aes128-gcm" => Content::Aes128Gcm,
            "http://www.w3.org/2009/xmlenc11#aes256-gcm" => Content::Aes256Gcm,
            _ => return Err(SamlRejection::Encryption("a content encryption other than AES-GCM or AES-CBC")),
        })
    }

    fn key_len(self) -> usize {
        match self {
            Content::Aes128Cbc | Content::Aes128Gcm => 16,
            Content::Aes256Cbc | Content::Aes256Gcm => 32,
        }
    }

    /// CBC carries no integrity of its own: it is accepted only inside a signed Response.
    pub fn is_authenticated(self) -> bool {
        matches!(self, Content::Aes128Gcm | Content::Aes256Gcm)
    }
}

/// RSA-OAEP's two hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oaep {
    digest: Digest,
    mgf1: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha1,
    Sha256,
    Sha512,
}

impl Digest {
    fn md(self) -> &'static MdRef {
        match self {
            Digest::Sha1 => Md::sha1(),
            Digest::Sha256 => Md::sha256(),
            Digest::Sha512 => Md::sha512(),
        }
    }
}

/// An `EncryptedAssertion` as found: where it is and what to decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Byte range of the whole `EncryptedAssertion` element in the document.
    pub range: std::ops::Range<usize>,
    pub content: Content,
    pub oaep: Oaep,
    pub encrypted_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|b| *b == b':').next().unwrap_or(name)
}

fn b64(text: &str) -> Result<Vec<u8>, SamlRejection> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, compact)
        .map_err(|_| SamlRejection::Encryption("a CipherValue that is not base64"))
}

/// Where an element sits, by namespace and local name, from the EncryptedAssertion down.
type Path = Vec<(&'static str, Vec<u8>)>;

fn ns_tag(ns: &ResolveResult<'_>) -> &'static str {
    match ns {
        ResolveResult::Bound(n) if n.as_ref() == XENC_NS => "xenc",
        ResolveResult::Bound(n) if n.as_ref() == XENC11_NS => "xenc11",
        ResolveResult::Bound(n) if n.as_ref() == DSIG_NS => "ds",
        ResolveResult::Bound(n) if n.as_ref() == SAML_NS => "saml",
        _ => "other",
    }
}

fn is(path: &Path, want: &[(&str, &str)]) -> bool {
    path.len() == want.len()
        && path.iter().zip(want).all(|((ns, name), (wns, wname))| ns == wns && name == wname.as_bytes())
}

#[derive(Default)]
struct Parts {
    content_alg: Option<String>,
    key_alg: Option<String>,
    digest: Option<String>,
    mgf: Option<String>,
    key_cipher: Option<String>,
    data_cipher: Option<String>,
    encrypted_keys: usize,
    encrypted_data: usize,
}

fn set(slot: &mut Option<String>, value: String) -> Result<(), SamlRejection> {
    if slot.replace(value).is_some() {
        return Err(SamlRejection::Encryption("an encryption element given twice"));
    }
    Ok(())
}

/// Where the one `EncryptedAssertion` is (read as strictly as by [`parse`]).
pub fn locate(xml: &str) -> Result<std::ops::Range<usize>, SamlRejection> {
    parse(xml).map(|f| f.range)
}

/// Finds the one `EncryptedAssertion`, a child of the root, and reads it strictly: one
/// `EncryptedData` of type Element, one `EncryptedKey` (in its KeyInfo or beside it), their
/// algorithms and inline cipher values. Unknown xenc constructs are refused.
pub fn parse(xml: &str) -> Result<Found, SamlRejection> {
    let mut reader = quick_xml::NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut start = None;
    let mut end = None;
    let mut path: Path = Vec::new();
    let mut parts = Parts::default();
    let mut text: Option<String> = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let (ns, event) = reader.read_resolved_event().map_err(|_| SamlRejection::Malformed("not well-formed XML"))?;
        let (e, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if start.is_some() && end.is_none() {
                    if let Some(value) = text.take() {
                        let slot = if is(
                            &path,
                            &[
                                ("saml", "EncryptedAssertion"),
                                ("xenc", "EncryptedData"),
                                ("xenc", "CipherData"),
                                ("xenc", "CipherValue"),
                            ],
                        ) {
                            &mut parts.data_cipher
                        } else {
                            &mut parts.key_cipher
                        };
                        set(slot, value)?;
                    }
                    path.pop();
                    if path.is_empty() {
                        end = Some(usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX));
                    }
                }
                continue;
            }
            Event::GeneralRef(_) if text.is_some() => {
                return Err(SamlRejection::Encryption("a reference inside a CipherValue"));
            }
            Event::Text(t) if start.is_some() && end.is_none() => {
                if let Some(buf) = text.as_mut() {
                    buf.push_str(&t.decode().map_err(|_| SamlRejection::Malformed("not UTF-8"))?);
                }
                continue;
            }
            Event::DocType(_) => return Err(SamlRejection::Malformed("a DOCTYPE")),
            Event::Eof => break,
            _ => continue,
        };
        if !empty {
            depth += 1;
        }
        let tag = ns_tag(&ns);
        let name = local(e.name().as_ref()).to_vec();
        let in_assertion = start.is_some() && end.is_none();
        if text.is_some() {
            return Err(SamlRejection::Encryption("markup inside a CipherValue"));
        }
        if !in_assertion {
            if tag == "saml" && name == b"EncryptedAssertion" {
                if start.is_some() {
                    return Err(SamlRejection::Malformed("more than one EncryptedAssertion"));
                }
                if depth != 2 || empty {
                    return Err(SamlRejection::Malformed("an EncryptedAssertion that is not a child of the Response"));
                }
                start = Some(before);
                path.push((tag, name));
            }
            continue;
        }
        let attr = |key: &[u8]| -> Option<String> {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == key)
                .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
        };
        path.push((tag, name));
        let alg = attr(b"Algorithm").unwrap_or_default();
        const EA: (&str, &str) = ("saml", "EncryptedAssertion");
        const ED: (&str, &str) = ("xenc", "EncryptedData");
        const EK: (&str, &str) = ("xenc", "EncryptedKey");
        const KI: (&str, &str) = ("ds", "KeyInfo");
        const EM: (&str, &str) = ("xenc", "EncryptionMethod");
        const CD: (&str, &str) = ("xenc", "CipherData");
        const CV: (&str, &str) = ("xenc", "CipherValue");
        let key_at = |p: &Path, rest: &[(&str, &str)]| {
            let mut a = vec![EA, ED, KI, EK];
            a.extend_from_slice(rest);
            let mut b = vec![EA, EK];
            b.extend_from_slice(rest);
            is(p, &a) || is(p, &b)
        };
        match (tag, path.last().map(|(_, n)| n.as_slice()).unwrap_or_default()) {
            ("xenc", b"CipherReference") | ("xenc", b"AgreementMethod") | ("xenc", b"DerivedKey") => {
                return Err(SamlRejection::Encryption("a cipher reference or key agreement"));
            }
            ("xenc", b"OAEPparams") => return Err(SamlRejection::Encryption("an OAEP label")),
            _ => {}
        }
        if is(&path, &[EA, ED]) {
            parts.encrypted_data += 1;
            if attr(b"Type").is_some_and(|t| t != ELEMENT_TYPE) {
                return Err(SamlRejection::Encryption("EncryptedData that is not an element"));
            }
        } else if key_at(&path, &[]) {
            parts.encrypted_keys += 1;
        } else if is(&path, &[EA, ED, EM]) {
            set(&mut parts.content_alg, alg)?;
        } else if key_at(&path, &[EM]) {
            set(&mut parts.key_alg, alg)?;
        } else if key_at(&path, &[EM, ("ds", "DigestMethod")]) {
            set(&mut parts.digest, alg)?;
        } else if key_at(&path, &[EM, ("xenc11", "MGF")]) {
            set(&mut parts.mgf, alg)?;
        } else if is(&path, &[EA, ED, CD, CV]) || key_at(&path, &[CD, CV]) {
            if empty {
                return Err(SamlRejection::Encryption("an empty CipherValue"));
            }
            text = Some(String::new());
        } else if tag == "xenc" && name_is(&path, b"EncryptedData") {
            return Err(SamlRejection::Encryption("EncryptedData where it does not belong"));
        }
        if empty {
            path.pop();
        }
    }
    let range = match (start, end) {
        (Some(s), Some(e)) if s < e && e <= xml.len() => s..e,
        _ => return Err(SamlRejection::Malformed("no EncryptedAssertion")),
    };
    if parts.encrypted_data != 1 || parts.encrypted_keys != 1 {
        return Err(SamlRejection::Encryption("not exactly one EncryptedData and one EncryptedKey"));
    }
    let content = Content::from_uri(parts.content_alg.as_deref().unwrap_or_default())?;
    let oaep =
        key_transport(parts.key_alg.as_deref().unwrap_or_default(), parts.digest.as_deref(), parts.mgf.as_deref())?;
    let encrypted_key = b64(parts.key_cipher.as_deref().ok_or(SamlRejection::Encryption("no encrypted key"))?)?;
    let ciphertext = b64(parts.data_cipher.as_deref().ok_or(SamlRejection::Encryption("no ciphertext"))?)?;
    Ok(Found { range, content, oaep, encrypted_key, ciphertext })
}

fn name_is(path: &Path, name: &[u8]) -> bool {
    path.last().is_some_and(|(_, n)| n == name)
}

fn key_transport(alg: &str, digest: Option<&str>, mgf: Option<&str>) -> Result<Oaep, SamlRejection> {
    let digest = match digest {
        None | Some("http://www.w3.org/2000/09/xmldsig#sha1") => Digest::Sha1,
        Some("http://www.w3.org/2001/04/xmlenc#sha256") => Digest::Sha256,
        Some("http://www.w3.org/2001/04/xmlenc#sha512") => Digest::Sha512,
        Some(_) => return Err(SamlRejection::Encryption("an OAEP digest other than SHA-1, SHA-256 or SHA-512")),
    };
    match alg {
        RSA_1_5 => Err(SamlRejection::Encryption("RSA PKCS#1 v1.5 key transport is refused")),
        RSA_OAEP_MGF1P if mgf.is_none() => Ok(Oaep { digest, mgf1: Digest::Sha1 }),
        RSA_OAEP_11 => {
            let mgf1 = match mgf {
                None | Some("http://www.w3.org/2009/xmlenc11#mgf1sha1") => Digest::Sha1,
                Some("http://www.w3.org/2009/xmlenc11#mgf1sha256") => Digest::Sha256,
                Some("http://www.w3.org/2009/xmlenc11#mgf1sha512") => Digest::Sha512,
                Some(_) => {
                    return Err(SamlRejection::Encryption("an MGF other than MGF1 with SHA-1, SHA-256 or SHA-512"));
                }
            };
            Ok(Oaep { digest, mgf1 })
        }
        _ => Err(SamlRejection::Encryption("a key transport other than RSA-OAEP")),
    }
}

/// Unwraps the content key with our RSA key (OAEP only) and decrypts the content.
pub fn decrypt(found: &Found, key: &PKey<Private>) -> Result<Zeroizing<Vec<u8>>, SamlRejection> {
    let rsa_size = key.size();
    if key.id() != openssl::pkey::Id::RSA || found.encrypted_key.len() != rsa_size {
        return Err(UNDECRYPTABLE);
    }
    let unwrap = || -> Result<Zeroizing<Vec<u8>>, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(key)?;
        ctx.decrypt_init()?;
        ctx.set_rsa_padding(Padding::PKCS1_OAEP)?;
        ctx.set_rsa_oaep_md(found.oaep.digest.md())?;
        ctx.set_rsa_mgf1_md(found.oaep.mgf1.md())?;
        let mut out = Zeroizing::new(Vec::new());
        ctx.decrypt_to_vec(&found.encrypted_key, &mut out)?;
        Ok(out)
    };
    let content_key = unwrap().map_err(|_| UNDECRYPTABLE)?;
    if content_key.len() != found.content.key_len() {
        return Err(UNDECRYPTABLE);
    }
    let plain = match found.content {
        Content::Aes128Gcm | Content::Aes256Gcm => gcm(found.content, &content_key, &found.ciphertext),
        Content::Aes128Cbc | Content::Aes256Cbc => cbc(found.content, &content_key, &found.ciphertext),
    }
    .ok_or(UNDECRYPTABLE)?;
    if plain.len() > MAX_XML {
        return Err(SamlRejection::Malformed("too large"));
    }
    Ok(plain)
}

/// IV (12) || ciphertext || tag (16), as XML Encryption 1.1 lays it out.
fn gcm(content: Content, key: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = if content == Content::Aes128Gcm { Cipher::aes_128_gcm() } else { Cipher::aes_256_gcm() };
    let (iv, rest) = data.split_at_checked(12)?;
    let (body, tag) = rest.split_at_checked(rest.len().checked_sub(16)?)?;
    let mut c = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).ok()?;
    c.set_tag(tag).ok()?;
    let mut out = Zeroizing::new(vec![0u8; body.len() + cipher.block_size()]);
    let n = c.update(body, &mut out).ok()?;
    let m = c.finalize(out.get_mut(n..)?).ok()?;
    out.truncate(n + m);
    Some(out)
}

/// IV (16) || ciphertext, padded as XML Encryption says: the last byte is the padding length
/// (1 to 16), the other padding bytes are arbitrary.
fn cbc(content: Content, key: &[u8], data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let cipher = if content == Content::Aes128Cbc { Cipher::aes_128_cbc() } else { Cipher::aes_256_cbc() };
    let (iv, body) = data.split_at_checked(16)?;
    if body.is_empty() || body.len() % 16 != 0 {
        return None;
    }
    let mut c = Crypter::new(cipher, Mode::Decrypt, key, Some(iv)).ok()?;
    c.pad(false);
    let mut out = Zeroizing::new(vec![0u8; body.len() + cipher.block_size()]);
    let n = c.update(body, &mut out).ok()?;
    let m = c.finalize(out.get_mut(n..)?).ok()?;
    out.truncate(n + m);
    let pad = usize::from(*out.last()?);
    if pad == 0 || pad > 16 || pad > out.len() {
        return None;
    }
    let keep = out.len() - pad;
    out.truncate(keep);
    Some(out)
}

#[cfg(test)]
pub(super) fn cbc_for_tests(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    cbc(Content::Aes256Cbc, key, data).map(|p| p.to_vec())
}

/// The decrypted text as an assertion to put back in the document: UTF-8, no DOCTYPE (checked
/// before anything parses it), an optional XML declaration dropped, then exactly one element,
/// a SAML `Assertion`, with nothing around it but white space.
pub fn plaintext_assertion(plain: &[u8]) -> Result<&str, SamlRejection> {
    let text =
        std::str::from_utf8(plain).map_err(|_| SamlRejection::Malformed("a decrypted assertion that is not UTF-8"))?;
    if has_doctype(text) {
        return Err(SamlRejection::Malformed("a DOCTYPE"));
    }
    let mut body = text.trim_start_matches('\u{feff}').trim();
    if body.starts_with("<?xml") {
        let close = body.find("?>").ok_or(SamlRejection::Malformed("a broken XML declaration"))?;
        body = body.get(close + 2..).unwrap_or_default().trim_start();
    }
    let mut reader = quick_xml::Reader::from_str(body);
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let event =
            reader.read_event().map_err(|_| SamlRejection::Malformed("a decrypted assertion that is not XML"))?;
        let is_start = matches!(event, Event::Start(_));
        match event {
            Event::Start(e) | Event::Empty(e) if depth == 0 => {
                roots += 1;
                if local(e.name().as_ref()) != b"Assertion" || roots > 1 {
                    return Err(SamlRejection::Malformed("a decrypted element that is not one Assertion"));
                }
                if is_start {
                    depth += 1;
                }
            }
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && !t.decode().is_ok_and(|s| s.trim().is_empty()) => {
                return Err(SamlRejection::Malformed("text around the decrypted assertion"));
            }
            Event::DocType(_) => return Err(SamlRejection::Malformed("a DOCTYPE")),
            Event::Decl(_) | Event::PI(_) => {
                return Err(SamlRejection::Malformed("a processing instruction in the decrypted assertion"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if roots != 1 || depth != 0 {
        return Err(SamlRejection::Malformed("a decrypted element that is not one Assertion"));
    }
    Ok(body)
}

/// The document with the `EncryptedAssertion` replaced by its decrypted assertion.
pub fn splice(xml: &str, range: &std::ops::Range<usize>, assertion: &str) -> Result<String, SamlRejection> {
    let (head, tail) = (xml.get(..range.start), xml.get(range.end..));
    match (head, tail) {
        (Some(h), Some(t)) => Ok(format!("{h}{assertion}{t}")),
        _ => Err(SamlRejection::Malformed("no EncryptedAssertion")),
    }
}
