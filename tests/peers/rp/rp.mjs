// Downstream relying party for idp's OpenID Provider tests: openid-client (OpenID Certified RP)
// does discovery, code + PKCE, userinfo, refresh and builds the RP-initiated logout URL; jose
// verifies the ID and access tokens against idp's JWKS. The Rust test plays the browser.
//
//   node rp.mjs start             -> {"url", "verifier", "state", "nonce"}
//   CALLBACK=... VERIFIER=... STATE=... NONCE=... node rp.mjs finish
//                                 -> {"sub", "email", "userinfo", "refresh_reuse_refused", "logout_url", ...}
//   CALLBACK=... (as finish)        node rp.mjs code    -> {"id_token", "access_token", "refresh_token"}
//   REFRESH_TOKEN=...               node rp.mjs refresh -> the same
//   TOKENS='[{"id_token","access_token"}, ...]' node rp.mjs verify
//                                 -> [{"id": {"ok", "kid", "alg"}, "access": {...}}, ...] (a fresh JWKS fetch)
// Env: ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI, and ID_TOKEN_ALG
// (the client's id_token_signed_response_alg; RS256 when unset).
import * as client from 'openid-client';
import * as jose from 'jose';

const { ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI } = process.env;
const ID_TOKEN_ALG = process.env.ID_TOKEN_ALG || 'RS256';

const config = await client.discovery(new URL(ISSUER), CLIENT_ID, { id_token_signed_response_alg: ID_TOKEN_ALG },
  client.ClientSecretBasic(CLIENT_SECRET), { execute: [client.allowInsecureRequests] });
const meta = config.serverMetadata();
const JWKS = jose.createRemoteJWKSet(new URL(meta.jwks_uri));

async function verifyId(jwt) {
  const { payload, protectedHeader } = await jose.jwtVerify(jwt, JWKS, { issuer: ISSUER, audience: CLIENT_ID, algorithms: [ID_TOKEN_ALG] });
  return { payload, protectedHeader };
}
async function verifyAccess(jwt) {
  // RFC 9068: typ at+jwt, aud the resource (idp itself by default).
  const { payload, protectedHeader } = await jose.jwtVerify(jwt, JWKS, { issuer: ISSUER, audience: ISSUER, typ: 'at+jwt', algorithms: ['ES256'] });
  return { payload, protectedHeader };
}

const mode = process.argv[2];
if (mode === 'start') {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI, scope: 'openid email profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    state, nonce, unknown_extension: 'ignored',
  });
  console.log(JSON.stringify({ url: url.href, verifier, state, nonce }));
} else if (mode === 'finish') {
  const out = {};
  const tokens = await client.authorizationCodeGrant(config, new URL(process.env.CALLBACK), {
    pkceCodeVerifier: process.env.VERIFIER, expectedState: process.env.STATE, expectedNonce: process.env.NONCE,
  });
  const claims = tokens.claims();
  out.sub = claims.sub;
  out.email = claims.email;
  out.sid = claims.sid;
  const id = await verifyId(tokens.id_token);
  out.id_verified = id.payload.sub === claims.sub;
  out.id_alg = id.protectedHeader.alg;
  const at = await verifyAccess(tokens.access_token);
  out.access_verified = at.payload.sub === claims.sub && at.protectedHeader.typ === 'at+jwt';
  out.access_token = tokens.access_token;
  out.userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  // Tampering is detected.
  const [h, , s] = tokens.id_token.split('.');
  const evil = Buffer.from(JSON.stringify({ ...claims, sub: 'mallory' })).toString('base64url');
  try { await verifyId(`${h}.${evil}.${s}`); out.tamper_refused = false; } catch { out.tamper_refused = true; }
  // Refresh with rotation; the old refresh token then no longer works.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  out.refreshed = refreshed.refresh_token !== tokens.refresh_token
    && (await verifyAccess(refreshed.access_token)).payload.sub === claims.sub
    && (await verifyId(refreshed.id_token)).payload.sub === claims.sub;
  out.refreshed_access_token = refreshed.access_token;
  try { await client.refreshTokenGrant(config, tokens.refresh_token); out.refresh_reuse_refused = false; }
  catch (e) { out.refresh_reuse_refused = e.error === 'invalid_grant'; }
  out.logout_url = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI, state: 'bye-state',
  }).href;
  console.log(JSON.stringify(out));
} else if (mode === 'code' || mode === 'refresh') {
  const tokens = mode === 'code'
    ? await client.authorizationCodeGrant(config, new URL(process.env.CALLBACK), {
      pkceCodeVerifier: process.env.VERIFIER, expectedState: process.env.STATE, expectedNonce: process.env.NONCE,
    })
    : await client.refreshTokenGrant(config, process.env.REFRESH_TOKEN);
  const { id_token, access_token, refresh_token } = tokens;
  console.log(JSON.stringify({ id_token, access_token, refresh_token }));
} else if (mode === 'verify') {
  const check = async (f, jwt) => {
    try { const { protectedHeader: h } = await f(jwt); return { ok: true, kid: h.kid, alg: h.alg }; }
    catch (e) { return { ok: false, error: String(e.code || e) }; }
  };
  const out = [];
  for (const t of JSON.parse(process.env.TOKENS)) {
    out.push({ id: await check(verifyId, t.id_token), access: await check(verifyAccess, t.access_token) });
  }
  console.log(JSON.stringify(out));
} else {
  console.error('usage: node rp.mjs start|finish|code|refresh|verify');
  process.exit(2);
}
