// Self-check of upstream.mjs, driven as a relying party would drive it (openid-client + jose).
// Starts upstream.mjs on a free loopback port, runs code+PKCE flows for several users, every
// tamper kind, access_denied and a restart with the same KEY_FILE. `node selftest.mjs` exits 0
// when everything holds, 1 otherwise.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as client from 'openid-client';
import * as jose from 'jose';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_ID = 'selftest-client';
const CLIENT_SECRET = 'selftest-secret-0123456789';
const REDIRECT_URI = 'http://127.0.0.1:9/callback/oidc'; // never contacted: captured from Location
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'upstream-selftest-'));
const KEY_FILE = path.join(tmp, 'signing-key.json');

let passed = 0;
let failed = 0;
function check(name, cond, extra = '') {
  if (cond) { passed += 1; console.log(`ok   ${name}`); } else { failed += 1; console.log(`FAIL ${name} ${extra}`); }
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function startUpstream(port) {
  const child = spawn(process.execPath, [path.join(here, 'upstream.mjs')], {
    env: {
      ...process.env,
      PORT: String(port),
      KEY_FILE,
      CLIENTS: JSON.stringify([{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET, redirect_uris: [REDIRECT_URI] }]),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  child.stdout.on('data', (d) => log.push(d.toString()));
  child.stderr.on('data', (d) => log.push(d.toString()));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i += 1) {
    try {
      const r = await fetch(`${base}/__test/health`);
      if (r.status === 200 && (await r.text()) === 'ok') return { child, base, log };
    } catch { /* not up yet */ }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error(`upstream did not start:\n${log.join('')}`);
}

async function stopUpstream(up) {
  if (up.child.exitCode !== null) return;
  const done = new Promise((r) => up.child.once('exit', r));
  up.child.kill('SIGTERM');
  await done;
}

// A browser with a cookie jar that stops at the redirect_uri.
async function browse(startUrl, jar) {
  let url = new URL(startUrl);
  for (let hop = 0; hop < 15; hop += 1) {
    if (url.href.startsWith(REDIRECT_URI)) return url;
    const cookie = [...jar.entries()].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const sc of r.headers.getSetCookie()) {
      const [pair] = sc.split(';');
      const i = pair.indexOf('=');
      const k = pair.slice(0, i).trim();
      const v = pair.slice(i + 1).trim();
      if (v === '' || /expires=Thu, 01 Jan 1970/i.test(sc)) jar.delete(k); else jar.set(k, v);
    }
    const loc = r.headers.get('location');
    if (!loc) throw new Error(`no redirect from ${url.href}: ${r.status} ${await r.text()}`);
    url = new URL(loc, url); // the first Location is relative
  }
  throw new Error('too many redirects');
}

const up = await startUpstream(await freePort());
const ISSUER = up.base;
let exitCode = 0;
try {
  // ---- discovery
  const disco = await (await fetch(`${ISSUER}/.well-known/openid-configuration`)).json();
  check('discovery issuer', disco.issuer === ISSUER, disco.issuer);
  check('discovery S256', disco.code_challenge_methods_supported?.includes('S256'));
  const config = await client.discovery(new URL(ISSUER), CLIENT_ID, undefined,
    client.ClientSecretBasic(CLIENT_SECRET), { execute: [client.allowInsecureRequests] });
  const JWKS = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
  const jwks = await (await fetch(config.serverMetadata().jwks_uri)).json();
  check('jwks has one RS256 key test-rs256-1', jwks.keys.length === 1 && jwks.keys[0].kid === 'test-rs256-1' && !jwks.keys[0].d);

  async function authStart(extra = {}) {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: 'openid email profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extra,
    });
    return { url, verifier, state, nonce };
  }

  // Complete flow through openid-client, then an independent signature check with jose.
  async function login({ hint, jar = new Map() } = {}) {
    const a = await authStart(hint ? { login_hint: hint } : {});
    const cb = await browse(a.url, jar);
    const tokens = await client.authorizationCodeGrant(config, cb, {
      pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce, idTokenExpected: true,
    });
    const { payload, protectedHeader } = await jose.jwtVerify(tokens.id_token, JWKS, {
      issuer: ISSUER, audience: CLIENT_ID, algorithms: ['RS256'],
    });
    return { claims: payload, header: protectedHeader, cb, tokens };
  }

  // ---- alice (default user)
  const alice = await login();
  console.log('alice id_token claims:', JSON.stringify(alice.claims));
  check('alice: callback carries iss (RFC 9207)', alice.cb.searchParams.get('iss') === ISSUER);
  check('alice: sub', alice.claims.sub === 'alice');
  check('alice: email + verified + hd + name', alice.claims.email === 'alice@example.test'
    && alice.claims.email_verified === true && alice.claims.hd === 'example.test' && alice.claims.name === 'Alice Tester');
  check('alice: kid test-rs256-1', alice.header.kid === 'test-rs256-1' && alice.header.alg === 'RS256');

  // ---- carol via login_hint, same cookie jar as a previous alice login (user switch)
  const jar = new Map();
  await login({ hint: 'alice', jar });
  const carol = await login({ hint: 'carol', jar });
  console.log('carol id_token claims:', JSON.stringify(carol.claims));
  check('carol: sub after switching users in one cookie jar', carol.claims.sub === 'carol');
  check('carol: email/hd', carol.claims.email === 'carol@corp.test' && carol.claims.email_verified === true && carol.claims.hd === 'corp.test');
  check('carol: amr ["pwd","mfa"]', JSON.stringify(carol.claims.amr) === '["pwd","mfa"]', JSON.stringify(carol.claims.amr));
  check('carol: acr urn:test:mfa', carol.claims.acr === 'urn:test:mfa', carol.claims.acr);

  // ---- bob via sticky set-user
  await fetch(`${ISSUER}/__test/set-user?user=bob`);
  const bob = await login();
  check('bob (set-user): email_verified false', bob.claims.sub === 'bob' && bob.claims.email_verified === false);
  const bob2 = await login();
  check('set-user is sticky', bob2.claims.sub === 'bob');

  // ---- dave groups; login_hint wins over set-user
  const dave = await login({ hint: 'dave' });
  console.log('dave id_token claims:', JSON.stringify(dave.claims));
  check('dave (login_hint over set-user): groups', dave.claims.sub === 'dave'
    && JSON.stringify(dave.claims.groups) === '["engineering","admins"]');
  await fetch(`${ISSUER}/__test/set-user?user=alice`);

  // ---- __deny__
  {
    const a = await authStart({ login_hint: '__deny__' });
    const cb = await browse(a.url, new Map());
    check('__deny__: error=access_denied with state and iss', cb.searchParams.get('error') === 'access_denied'
      && cb.searchParams.get('state') === a.state && cb.searchParams.get('iss') === ISSUER && !cb.searchParams.get('code'));
  }

  // ---- tamper kinds: raw token request, then a strict validation must reject the token.
  async function rawTokenFlow() {
    const a = await authStart();
    const cb = await browse(a.url, new Map());
    const r = await fetch(config.serverMetadata().token_endpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: cb.searchParams.get('code'), redirect_uri: REDIRECT_URI, code_verifier: a.verifier,
      }),
    });
    const body = await r.json();
    if (r.status !== 200) throw new Error(`token endpoint ${r.status} ${JSON.stringify(body)}`);
    return { idToken: body.id_token, nonce: a.nonce };
  }
  async function strictlyValid(idToken, nonce) {
    try {
      const { payload } = await jose.jwtVerify(idToken, JWKS, { issuer: ISSUER, audience: CLIENT_ID, algorithms: ['RS256'] });
      return payload.nonce === nonce ? 'valid' : 'nonce mismatch';
    } catch (err) {
      return `${err.code || err.name}`;
    }
  }
  const baseline = await rawTokenFlow();
  check('untampered token is strictly valid', (await strictlyValid(baseline.idToken, baseline.nonce)) === 'valid');
  const now = Math.floor(Date.now() / 1000);
  const expectations = {
    'wrong-aud': (h, p) => p.aud === 'someone-else' && h.kid === 'test-rs256-1',
    expired: (h, p) => p.exp <= now - 7200 + 5 && p.iat <= now - 7200 + 5,
    'alg-none': (h, p, t) => h.alg === 'none' && t.endsWith('.') && p.sub === 'alice',
    'other-key': (h, p) => h.kid === 'test-rs256-1' && p.sub === 'alice',
    'unknown-kid': (h) => h.kid && h.kid !== 'test-rs256-1' && h.alg === 'RS256',
    nonce: (h, p, t, n) => p.nonce && p.nonce !== n,
    'wrong-iss': (h, p) => p.iss === 'http://evil.example',
    'bad-signature': (h, p) => h.kid === 'test-rs256-1' && p.iss === ISSUER,
  };
  for (const [kind, expect] of Object.entries(expectations)) {
    const r = await fetch(`${ISSUER}/__test/tamper?kind=${kind}`);
    check(`tamper ${kind}: armed`, r.status === 200);
    const { idToken, nonce } = await rawTokenFlow();
    const h = jose.decodeProtectedHeader(idToken);
    const p = jose.decodeJwt(idToken);
    const verdict = await strictlyValid(idToken, nonce);
    console.log(`     ${kind}: header=${JSON.stringify(h)} aud=${p.aud} iss=${p.iss} exp=${p.exp - now}s nonceOk=${p.nonce === nonce} -> ${verdict}`);
    check(`tamper ${kind}: token modified as described`, expect(h, p, idToken, nonce));
    check(`tamper ${kind}: strict validation rejects it`, verdict !== 'valid', verdict);
    // one-shot: the following response is genuine again
    const after = await rawTokenFlow();
    check(`tamper ${kind}: reset after one response`, (await strictlyValid(after.idToken, after.nonce)) === 'valid');
  }
  // openid-client itself rejects the claim-level tampering.
  for (const kind of ['wrong-aud', 'expired', 'nonce', 'wrong-iss', 'alg-none']) {
    await fetch(`${ISSUER}/__test/tamper?kind=${kind}`);
    let rejected = false;
    try { await login(); } catch { rejected = true; }
    check(`openid-client rejects ${kind}`, rejected);
  }
  const bogus = await fetch(`${ISSUER}/__test/tamper?kind=nope`);
  check('unknown tamper kind -> 400', bogus.status === 400);

  // ---- restart with the same KEY_FILE keeps the key
  await stopUpstream(up);
  const up2 = await startUpstream(await freePort());
  try {
    const jwks2 = await (await fetch(`${up2.base}/jwks`)).json();
    check('restart with KEY_FILE keeps kid and key', jwks2.keys[0].kid === jwks.keys[0].kid && jwks2.keys[0].n === jwks.keys[0].n);
    check('KEY_FILE written with mode 0600', (fs.statSync(KEY_FILE).mode & 0o777) === 0o600);
  } finally {
    await stopUpstream(up2);
  }
  check('one log line per request', up.log.join('').split('\n').some((l) => / GET \/__test\/health 200 /.test(l)));
} catch (err) {
  console.log(`FAIL unexpected error: ${err.stack || err}`);
  failed += 1;
} finally {
  await stopUpstream(up);
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
exitCode = failed === 0 ? 0 : 1;
process.exit(exitCode);
