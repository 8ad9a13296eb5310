// Mints one SAML Response (base64 on stdout) with samlify, from a JSON options object (argv[2]):
//   acs, sp (our entity id), issuer, nameId           required
//   inResponseTo (omit for IdP-initiated), key ("idp" | "other": another key, its cert in KeyInfo)
//   audience, recipient, destination, assertionIssuer override the matching values
//   notBefore, notOnOrAfter, issueInstant             offsets in seconds from now
//   status, attributes {name: [values]}, signAssertion, signResponse (default both true)
//   sha1 (sign with RSA-SHA1), tamper (see TAMPERS below), evilNameId (the attacker's NameID in XSW)
//   encryptCert (PEM: encrypt the assertion to it, as samlify's isAssertionEncrypted does, then
//     sign the Response over the ciphertext), dataEncryption / keyEncryption (algorithm URIs,
//     default AES-256-CBC and RSA-OAEP-MGF1P), encTamper (see ENC_TAMPERS below)
const fs = require('fs');
const saml = require('samlify');
const { DOMParser, XMLSerializer } = require('@xmldom/xmldom');
const xmlenc = require('@authenio/xml-encryption');

const o = JSON.parse(process.argv[2] || '{}');
const key = o.key || 'idp';
const at = (secs) => new Date(Date.now() + secs * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const rid = () => '_' + require('crypto').randomBytes(16).toString('hex');

const idp = saml.IdentityProvider({
  entityID: o.issuer,
  privateKey: fs.readFileSync(`${__dirname}/certs/${key}-key.pem`),
  signingCert: fs.readFileSync(`${__dirname}/certs/${key}-cert.pem`),
  requestSignatureAlgorithm: o.sha1 ? 'http://www.w3.org/2000/09/xmldsig#rsa-sha1' : 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  singleSignOnService: [{ Binding: saml.Constants.namespace.binding.redirect, Location: 'http://127.0.0.1:9/sso' }],
  isAssertionEncrypted: Boolean(o.encryptCert) && !o.encTamper?.startsWith('manual'),
  dataEncryptionAlgorithm: o.dataEncryption || 'http://www.w3.org/2001/04/xmlenc#aes256-cbc',
  keyEncryptionAlgorithm: o.keyEncryption || 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
});
const sp = saml.ServiceProvider({
  entityID: o.sp,
  wantAssertionsSigned: o.signAssertion !== false,
  wantMessageSigned: o.signResponse !== false,
  ...(o.encryptCert ? { encryptCert: o.encryptCert } : {}),
  assertionConsumerService: [{ Binding: saml.Constants.namespace.binding.post, Location: o.acs }],
});

function template() {
  const irt = o.inResponseTo ? ` InResponseTo="${esc(o.inResponseTo)}"` : '';
  const attrs = Object.entries(o.attributes || {}).map(([n, vs]) =>
    `<saml:Attribute Name="${esc(n)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic">` +
    vs.map((v) => `<saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">${esc(v)}</saml:AttributeValue>`).join('') +
    '</saml:Attribute>').join('');
  const status = o.status || 'urn:oasis:names:tc:SAML:2.0:status:Success';
  const instant = at(o.issueInstant || 0);
  const destination = o.destination === null ? '' : ` Destination="${esc(o.destination || o.acs)}"`;
  return `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="${rid()}" Version="2.0" IssueInstant="${instant}"${destination}${irt}>` +
    `<saml:Issuer>${esc(o.issuer)}</saml:Issuer><samlp:Status><samlp:StatusCode Value="${esc(status)}"/></samlp:Status>` +
    (o.noAssertion ? '' :
    `<saml:Assertion ID="${rid()}" Version="2.0" IssueInstant="${instant}"><saml:Issuer>${esc(o.assertionIssuer || o.issuer)}</saml:Issuer>` +
    `<saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">${esc(o.nameId)}</saml:NameID>` +
    `<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData NotOnOrAfter="${at(o.notOnOrAfter ?? 300)}" Recipient="${esc(o.recipient || o.acs)}"${irt}/></saml:SubjectConfirmation></saml:Subject>` +
    `<saml:Conditions NotBefore="${at(o.notBefore ?? -5)}" NotOnOrAfter="${at(o.notOnOrAfter ?? 300)}">` +
    (o.audience === null ? '' : `<saml:AudienceRestriction><saml:Audience>${esc(o.audience || o.sp)}</saml:Audience></saml:AudienceRestriction>`) +
    `</saml:Conditions><saml:AuthnStatement AuthnInstant="${instant}" SessionIndex="${rid()}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>` +
    (attrs ? `<saml:AttributeStatement>${attrs}</saml:AttributeStatement>` : '') +
    '</saml:Assertion>') + '</samlp:Response>';
}

const DS = 'http://www.w3.org/2000/09/xmldsig#';
const byLocal = (node, name) => Array.from(node.getElementsByTagName('*')).filter((e) => e.localName === name);
const child = (node, name) => Array.from(node.childNodes).find((e) => e.localName === name);
const setNameId = (assertion, v) => { const n = byLocal(assertion, 'NameID')[0]; n.textContent = v; };
const evilCopy = (el, doc) => { const c = el.cloneNode(true); setNameId(c, o.evilNameId || 'victim@example.test'); return c; };

// Each takes the signed document and rewrites it; see the XSW catalogue of SAML Raider.
const TAMPERS = {
  'strip-signatures': (doc) => byLocal(doc, 'Signature').forEach((s) => s.parentNode.removeChild(s)),
  'strip-signature-values': (doc) => byLocal(doc, 'SignatureValue').forEach((v) => { v.textContent = ''; }),
  'strip-assertion-signature': (doc) => { const a = byLocal(doc, 'Assertion')[0]; const s = child(a, 'Signature'); a.removeChild(s); },
  'nameid-comment': (doc) => {
    const n = byLocal(doc, 'NameID')[0]; const v = n.textContent; const i = v.indexOf('.', v.indexOf('@') + 1);
    const cut = v.indexOf('.', i + 1) > 0 ? v.indexOf('.', i + 1) : v.length;
    while (n.firstChild) n.removeChild(n.firstChild);
    n.appendChild(doc.createTextNode(v.slice(0, cut))); n.appendChild(doc.createComment('')); n.appendChild(doc.createTextNode(v.slice(cut)));
  },
  'xslt': (doc) => {
    const t = byLocal(doc, 'Transforms')[0]; const x = doc.createElementNS(DS, 'ds:Transform');
    x.setAttribute('Algorithm', 'http://www.w3.org/TR/1999/REC-xslt-19991116'); t.appendChild(x);
  },
  // XSW1: an evil Response around the original one, kept inside the evil one's Signature.
  xsw1: (doc) => {
    const r = doc.documentElement; const evil = evilCopy(r, doc); const sig = child(evil, 'Signature');
    sig.appendChild(r.cloneNode(true)); evil.setAttribute('ID', rid()); doc.replaceChild(evil, r);
  },
  // XSW2: the same, the original as a detached sibling before the Signature.
  xsw2: (doc) => {
    const r = doc.documentElement; const evil = evilCopy(r, doc); const sig = child(evil, 'Signature');
    evil.insertBefore(r.cloneNode(true), sig); evil.setAttribute('ID', rid()); doc.replaceChild(evil, r);
  },
  // XSW3: an evil assertion before the signed one.
  xsw3: (doc) => {
    const r = doc.documentElement; const a = byLocal(r, 'Assertion')[0]; const evil = evilCopy(a, doc);
    evil.setAttribute('ID', rid()); const s = child(evil, 'Signature'); if (s) evil.removeChild(s); r.insertBefore(evil, a);
  },
  // XSW4: the signed assertion moved inside an evil one.
  xsw4: (doc) => {
    const r = doc.documentElement; const a = byLocal(r, 'Assertion')[0]; const evil = evilCopy(a, doc);
    evil.setAttribute('ID', rid()); const s = child(evil, 'Signature'); if (s) evil.removeChild(s);
    r.replaceChild(evil, a); evil.appendChild(a);
  },
  // XSW5: the evil assertion keeps the signature, the original (unsigned copy) appended.
  xsw5: (doc) => {
    const r = doc.documentElement; const a = byLocal(r, 'Assertion')[0]; const evil = evilCopy(a, doc);
    const copy = a.cloneNode(true); const s = child(copy, 'Signature'); if (s) copy.removeChild(s);
    r.replaceChild(evil, a); r.appendChild(copy);
  },
  // XSW6: the evil assertion with the signature, the original inside that signature.
  xsw6: (doc) => {
    const r = doc.documentElement; const a = byLocal(r, 'Assertion')[0]; const evil = evilCopy(a, doc);
    const copy = a.cloneNode(true); const s = child(copy, 'Signature'); if (s) copy.removeChild(s);
    child(evil, 'Signature').appendChild(copy); r.replaceChild(evil, a);
  },
  // XSW7: the original inside an Extensions element, an evil unsigned assertion in its place.
  xsw7: (doc) => {
    const r = doc.documentElement; const a = byLocal(r, 'Assertion')[0]; const evil = evilCopy(a, doc);
    const s = child(evil, 'Signature'); if (s) evil.removeChild(s);
    const ext = doc.createElementNS('urn:oasis:names:tc:SAML:2.0:protocol', 'samlp:Extensions');
    r.insertBefore(ext, child(r, 'Status')); ext.appendChild(a.cloneNode(true)); r.replaceChild(evil, a);
  },
  // XSW8: the evil assertion's signature holds an Object with the original (its signature removed).
  xsw8: (doc) => {
    const r = doc.documentElement; const a = byLocal(r, 'Assertion')[0]; const evil = evilCopy(a, doc);
    const copy = a.cloneNode(true); const s = child(copy, 'Signature'); if (s) copy.removeChild(s);
    const obj = doc.createElementNS(DS, 'ds:Object'); obj.appendChild(copy); child(evil, 'Signature').appendChild(obj);
    r.replaceChild(evil, a);
  },
};

// Rewrites of an encrypted response (the Response signature, if any, is left as it is).
const ENC_TAMPERS = {
  // One bit of the content's ciphertext flipped (the last CipherValue is the content's).
  ciphertext: (doc) => {
    const cv = byLocal(doc, 'CipherValue'); const v = cv[cv.length - 1];
    const b = Buffer.from(v.textContent.replace(/\s/g, ''), 'base64'); b[b.length >> 1] ^= 1;
    v.textContent = b.toString('base64');
  },
  // XSW across encryption: an unsigned evil assertion next to the encrypted genuine one.
  'plain-too': (doc) => {
    const tpl = new DOMParser().parseFromString(template(), 'text/xml');
    const evil = byLocal(tpl, 'Assertion')[0]; setNameId(evil, o.evilNameId || 'victim@example.test');
    const enc = byLocal(doc, 'EncryptedAssertion')[0]; enc.parentNode.insertBefore(doc.importNode(evil, true), enc);
  },
};

// The assertion encrypted here rather than by samlify, with `prefix` before it in the plaintext.
function encryptManually(xml, prefix) {
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const a = byLocal(doc, 'Assertion')[0];
  const plain = prefix + new XMLSerializer().serializeToString(a);
  const pem = o.encryptCert;
  const pub = require('crypto').createPublicKey(pem).export({ type: 'spki', format: 'pem' });
  return new Promise((resolve, reject) => xmlenc.encrypt(plain, {
    rsa_pub: Buffer.from(pub), pem: Buffer.from(pem),
    encryptionAlgorithm: o.dataEncryption || 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
    keyEncryptionAlgorithm: o.keyEncryption || 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p',
  }, (err, res) => {
    if (err) return reject(err);
    const wrapped = new DOMParser().parseFromString(
      `<saml:EncryptedAssertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">${res}</saml:EncryptedAssertion>`, 'text/xml');
    a.parentNode.replaceChild(doc.importNode(wrapped.documentElement, true), a);
    resolve(new XMLSerializer().serializeToString(doc));
  }));
}
const MANUAL = { 'manual-doctype': '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' };

const PREFIXES = {
  doctype: '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
  'billion-laughs': '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>',
};

// encryptThenSign: the Response signature covers the EncryptedAssertion, as Okta and OneLogin do.
idp.createLoginResponse(sp, { extract: { request: { id: o.inResponseTo || '' } } }, 'post', { email: o.nameId },
  () => ({ id: '', context: template() }), true)
  .then(async ({ context }) => {
    let xml = Buffer.from(context, 'base64').toString('utf8');
    if (o.encTamper in MANUAL) {
      xml = await encryptManually(xml, MANUAL[o.encTamper]);
    } else if (ENC_TAMPERS[o.encTamper]) {
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      ENC_TAMPERS[o.encTamper](doc);
      xml = new XMLSerializer().serializeToString(doc);
    } else if (o.encTamper) {
      throw new Error(`unknown encTamper ${o.encTamper}`);
    }
    if (TAMPERS[o.tamper]) {
      const doc = new DOMParser().parseFromString(xml, 'text/xml');
      TAMPERS[o.tamper](doc);
      xml = new XMLSerializer().serializeToString(doc);
    } else if (PREFIXES[o.tamper]) {
      xml = PREFIXES[o.tamper] + xml.replace(/^<\?xml[^>]*>/, '');
    } else if (o.tamper) {
      throw new Error(`unknown tamper ${o.tamper}`);
    }
    process.stdout.write(Buffer.from(xml, 'utf8').toString('base64') + '\n');
  })
  .catch((e) => { console.error(e); process.exit(1); });
