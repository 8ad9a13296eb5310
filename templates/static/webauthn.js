// WebAuthn ceremonies for idp's pages: registering a passkey or security key (/account/mfa),
// a security key or passkey as the second step (/login/mfa), and a passkey login (/login).
//
// A form marked data-webauthn="register" | "authenticate" carries data-start and data-finish
// URLs and its hidden fields (csrf_token, and kind, name, return_to where they apply). On submit
// the script posts the fields as JSON to data-start, hands the options to
// navigator.credentials.create() or get() (binary values are base64url on the wire), posts the
// answer with the ceremony id to data-finish, and goes where the server says ({"redirect": URL}).
// A refusal ({"error": "..."}) is shown in the form's [data-webauthn-status] element.
(function () {
  'use strict';

  function fromB64u(s) {
    const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64u(buf) {
    if (!buf) return null;
    const bytes = new Uint8Array(buf);
    let bin = '';
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function creationOptions(o) {
    const pk = Object.assign({}, o.publicKey);
    pk.challenge = fromB64u(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromB64u(pk.user.id) });
    pk.excludeCredentials = (pk.excludeCredentials || []).map((c) => Object.assign({}, c, { id: fromB64u(c.id) }));
    return { publicKey: pk };
  }

  function requestOptions(o) {
    const pk = Object.assign({}, o.publicKey);
    pk.challenge = fromB64u(pk.challenge);
    pk.allowCredentials = (pk.allowCredentials || []).map((c) => Object.assign({}, c, { id: fromB64u(c.id) }));
    return { publicKey: pk };
  }

  function registration(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64u(r.attestationObject),
        clientDataJSON: toB64u(r.clientDataJSON),
        transports: typeof r.getTransports === 'function' ? r.getTransports() : undefined,
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function assertion(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64u(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64u(r.authenticatorData),
        clientDataJSON: toB64u(r.clientDataJSON),
        signature: toB64u(r.signature),
        userHandle: toB64u(r.userHandle),
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  async function post(url, body) {
    const r = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await r.json(); } catch (_) { /* an HTML error page */ }
    if (!r.ok || !data) {
      throw new Error((data && data.error) || 'The request was refused (HTTP ' + r.status + '). Please reload the page and try again.');
    }
    return data;
  }

  function fields(form) {
    const out = {};
    for (const el of form.querySelectorAll('input[name], select[name]')) {
      if ((el.type === 'radio' || el.type === 'checkbox') && !el.checked) continue;
      out[el.name] = el.value;
    }
    return out;
  }

  async function run(form) {
    const status = form.querySelector('[data-webauthn-status]');
    const button = form.querySelector('button[type=submit]');
    const say = (text) => { if (status) status.textContent = text; };
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say('This browser does not support security keys or passkeys.');
      return;
    }
    const register = form.dataset.webauthn === 'register';
    const body = fields(form);
    if (button) button.disabled = true;
    say('');
    try {
      const started = await post(form.dataset.start, body);
      let cred;
      try {
        cred = register
          ? await navigator.credentials.create(creationOptions(started.options))
          : await navigator.credentials.get(requestOptions(started.options));
      } catch (e) {
        throw new Error(e && e.name === 'InvalidStateError'
          ? 'This security key or passkey is registered already.'
          : 'The security key or passkey did not answer (or the request was cancelled). Please try again.');
      }
      if (!cred) throw new Error('The security key or passkey did not answer. Please try again.');
      const done = await post(form.dataset.finish, Object.assign({}, body, {
        ceremony: started.ceremony,
        credential: register ? registration(cred) : assertion(cred),
      }));
      if (typeof done.redirect === 'string' && done.redirect.startsWith('/') && !done.redirect.startsWith('//')) {
        window.location.assign(done.redirect);
        return;
      }
      throw new Error('Unexpected answer from the server.');
    } catch (e) {
      say(e.message || String(e));
      if (button) button.disabled = false;
    }
  }

  for (const form of document.querySelectorAll('form[data-webauthn]')) {
    form.hidden = false;
    form.addEventListener('submit', (ev) => { ev.preventDefault(); run(form); });
  }
})();
