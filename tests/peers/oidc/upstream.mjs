// Upstream OIDC provider for idp's federated-login end-to-end tests.
// Built on panva's oidc-provider (OpenID Certified); derived from shared/peers/oidc/idp.mjs.
//
//   PORT=9400 CLIENTS='[{"client_id":"idp","client_secret":"s3cret","redirect_uris":["http://127.0.0.1:8080/callback/oidc"]}]' \
//     KEY_FILE=/tmp/upstream-key.json node upstream.mjs
//
// See README.md for every variable, the users, the /__test/* endpoints and the tamper kinds.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Provider from 'oidc-provider';
import {
  generateKeyPair, exportJWK, importJWK, CompactSign, decodeJwt, decodeProtectedHeader,
} from 'jose';

const HOST = '127.0.0.1';
const PORT = Number(process.env.PORT || 9400);
const ISSUER = process.env.ISSUER || `http://${HOST}:${PORT}`;
const MODE = process.env.MODE || 'auto';
const KID = process.env.KID || 'test-rs256-1';
const KEY_FILE = process.env.KEY_FILE || '';
let stickyUser = process.env.AUTO_USER || 'alice';

// ---------------------------------------------------------------- clients
function loadClients() {
  let list;
  if (process.env.CLIENTS) {
    try {
      list = JSON.parse(process.env.CLIENTS);
    } catch (err) {
      console.error(`CLIENTS is not valid JSON: ${err.message}`);
      process.exit(2);
    }
    if (!Array.isArray(list) || list.length === 0) {
      console.error('CLIENTS must be a non-empty JSON array of {client_id, client_secret, redirect_uris}');
      process.exit(2);
    }
  } else {
    list = [{
      client_id: process.env.CLIENT_ID || 'test-client',
      client_secret: process.env.CLIENT_SECRET || 'test-secret-0123456789abcdef',
      redirect_uris: [process.env.REDIRECT_URI || 'http://127.0.0.1:9401/callback'],
    }];
  }
  return list.map((c) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
    redirect_uris: Array.isArray(c.redirect_uris) ? c.redirect_uris : [c.redirect_uris],
  }));
}
const clients = loadClients();

// ---------------------------------------------------------------- users
// Claims returned by findAccount; with conformIdTokenClaims:false they go into the ID token.
// `login` (amr/acr) is handed to interactionFinished: oidc-provider puts amr/acr of the session
// into the ID token itself.
const accounts = {
  alice: {
    claims: {
      email: 'alice@example.test', email_verified: true, name: 'Alice Tester',
      given_name: 'Alice', family_name: 'Tester', hd: 'example.test',
    },
    login: { amr: ['pwd'], acr: 'urn:test:pwd' },
  },
  bob: {
    claims: {
      email: 'bob@example.test', email_verified: false, name: 'Bob Tester',
      given_name: 'Bob', family_name: 'Tester',
    },
    login: { amr: ['pwd'], acr: 'urn:test:pwd' },
  },
  carol: {
    claims: {
      email: 'carol@corp.test', email_verified: true, name: 'Carol Tester',
      given_name: 'Carol', family_name: 'Tester', hd: 'corp.test',
    },
    login: { amr: ['pwd', 'mfa'], acr: 'urn:test:mfa' },
  },
  dave: {
    claims: {
      email: 'dave@example.test', email_verified: true, name: 'Dave Tester',
      given_name: 'Dave', family_name: 'Tester', groups: ['engineering', 'admins'],
    },
    login: { amr: ['pwd'], acr: 'urn:test:pwd' },
  },
};
const DENY = '__deny__';

// ---------------------------------------------------------------- signing key
async function loadOrCreateKey() {
  if (KEY_FILE && fs.existsSync(KEY_FILE)) {
    const jwk = JSON.parse(fs.readFileSync(KEY_FILE, 'utf8'));
    if (!jwk.d || jwk.kty !== 'RSA') throw new Error(`${KEY_FILE}: not a private RSA JWK`);
    return { ...jwk, use: 'sig', alg: 'RS256', kid: jwk.kid || KID };
  }
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: KID, use: 'sig', alg: 'RS256' };
  if (KEY_FILE) {
    fs.mkdirSync(path.dirname(path.resolve(KEY_FILE)), { recursive: true });
    fs.writeFileSync(KEY_FILE, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
  }
  return jwk;
}
const signingJwk = await loadOrCreateKey();
const signingKey = await importJWK(signingJwk, 'RS256');

// ---------------------------------------------------------------- tamper switch
const TAMPER_KINDS = ['wrong-aud', 'expired', 'alg-none', 'other-key', 'unknown-kid', 'nonce', 'wrong-iss', 'bad-signature'];
let pendingTamper = null;

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function resign(header, payload, key) {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

async function tamper(kind, idToken) {
  const header = decodeProtectedHeader(idToken);
  const payload = decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  switch (kind) {
    case 'wrong-aud':
      return resign(header, { ...payload, aud: 'someone-else' }, signingKey);
    case 'expired': {
      const iat = now - 2 * 3600 - 600;
      const exp = now - 2 * 3600;
      const p = { ...payload, iat, exp };
      if (typeof p.auth_time === 'number' && p.auth_time > iat) p.auth_time = iat;
      return resign(header, p, signingKey);
    }
    case 'alg-none':
      return `${b64u({ alg: 'none' })}.${b64u(payload)}.`;
    case 'other-key': {
      const { privateKey } = await generateKeyPair('RS256');
      return resign({ ...header, kid: header.kid }, payload, privateKey);
    }
    case 'unknown-kid': {
      const { privateKey } = await generateKeyPair('RS256');
      return resign({ ...header, kid: `unknown-${Date.now().toString(36)}` }, payload, privateKey);
    }
    case 'nonce':
      return resign(header, { ...payload, nonce: `tampered-${payload.nonce ?? 'none'}` }, signingKey);
    case 'wrong-iss':
      return resign(header, { ...payload, iss: 'http://evil.example' }, signingKey);
    case 'bad-signature': { // genuine header and payload, one signature byte flipped
      const [h, p, s] = idToken.split('.');
      const sig = Buffer.from(s, 'base64url');
      sig[0] ^= 0x01;
      return `${h}.${p}.${sig.toString('base64url')}`;
    }
    default:
      throw new Error(`unknown tamper kind ${kind}`);
  }
}

// ---------------------------------------------------------------- provider
// A login_hint may be an account id or, as a broker's home-realm discovery sends it, an e-mail.
function hintedUser(hint) {
  if (!hint) return undefined;
  if (!hint.includes('@')) return hint;
  return Object.keys(accounts).find((id) => accounts[id].claims.email === hint) || hint;
}

function chosenUser(params) {
  return hintedUser(params?.login_hint) || stickyUser;
}

const configuration = {
  clients,
  jwks: { keys: [signingJwk] },
  cookies: { keys: ['idp-tests-upstream-cookie-key'] },
  claims: {
    // acr/amr come from the login result (see accounts[*].login); listing them under `openid`
    // lets them through the scope filter into the ID token.
    openid: ['sub', 'acr', 'amr'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'hd', 'groups'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  acrValues: ['urn:test:pwd', 'urn:test:mfa'],
  // Google-style: email/profile claims in the ID token, not only at /me.
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const a = accounts[id];
    if (!a) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...a.claims }; } };
  },
  features: { devInteractions: { enabled: MODE === 'dev' } },
  interactions: {},
  ttl: {
    Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60,
  },
};

if (MODE === 'auto') {
  configuration.interactions.url = (ctx, interaction) => `/interaction/${interaction.uid}`;
  // No consent step: grant whatever supported scopes were requested.
  configuration.loadExistingGrant = async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) {
      grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    }
    grant.addOIDCScope(String(ctx.oidc.params.scope || 'openid'));
    if (ctx.oidc.params.claims) {
      try {
        const c = JSON.parse(ctx.oidc.params.claims);
        grant.addOIDCClaims([...Object.keys(c.id_token || {}), ...Object.keys(c.userinfo || {})]);
      } catch { /* invalid claims param is rejected by the provider itself */ }
    }
    await grant.save();
    return grant;
  };
}

const provider = new Provider(ISSUER, configuration);
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.use(async (ctx, next) => {
  await next();
  const isToken = ctx.oidc?.route === 'token' || ctx.path === '/token';
  if (!isToken || !pendingTamper || ctx.status !== 200) return;
  const body = ctx.body;
  if (!body || typeof body !== 'object' || typeof body.id_token !== 'string') return;
  const kind = pendingTamper;
  pendingTamper = null;
  ctx.body = { ...body, id_token: await tamper(kind, body.id_token) };
  console.log(`TAMPER applied kind=${kind}`);
});

const oidcCallback = provider.callback();

function text(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(body);
}

async function autoInteraction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  if (prompt.name === 'login') {
    const user = chosenUser(params);
    const a = accounts[user];
    const result = (user === DENY || !a)
      ? { error: 'access_denied', error_description: `test upstream refused user ${user}` }
      : { login: { accountId: user, remember: true, ...a.login } };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    return;
  }
  // consent: only reached if loadExistingGrant left something missing.
  const { grantId, session } = details;
  const grant = grantId ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details || {};
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scope] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
  }
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

// Switching users within one cookie jar. oidc-provider would reuse the upstream session of
// the previous user, or answer the resume step with its logout-confirmation form. Instead:
// on a new authorization request (GET /auth) for another user than the session's, and on the
// resume step (GET /auth/:uid) whose login result is another user than the session's, the
// session cookie is dropped from the request, so a fresh session is used.
function sessionCookieFrom(req) {
  const cookies = (req.headers.cookie || '').split(';').map((c) => c.trim()).filter(Boolean);
  const c = cookies.find((x) => x.startsWith('_session='));
  return { cookies, id: c ? decodeURIComponent(c.slice('_session='.length)) : undefined };
}
async function dropSessionOnUserSwitch(req, url) {
  if (MODE !== 'auto' || req.method !== 'GET') return;
  const resume = url.pathname.match(/^\/auth\/([^/]+)$/);
  if (url.pathname !== '/auth' && !resume) return;
  const { cookies, id } = sessionCookieFrom(req);
  if (!id) return;
  const session = await provider.Session.find(id);
  if (!session?.accountId) return;
  let wanted;
  if (resume) {
    const interaction = await provider.Interaction.find(resume[1]);
    wanted = interaction?.result?.login?.accountId;
  } else {
    wanted = hintedUser(url.searchParams.get('login_hint')) || stickyUser;
  }
  if (wanted && wanted !== session.accountId) {
    req.headers.cookie = cookies.filter((c) => !/^_session(\.sig)?=/.test(c)).join('; ');
  }
}

const server = http.createServer(async (req, res) => {
  const started = process.hrtime.bigint();
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`${new Date().toISOString()} ${req.method} ${req.url} ${res.statusCode} ${ms.toFixed(1)}ms`);
  });
  const url = new URL(req.url, ISSUER);
  try {
    if (url.pathname === '/__test/health') return text(res, 200, 'ok');
    if (url.pathname === '/__test/set-user') {
      stickyUser = url.searchParams.get('user') || 'alice';
      return text(res, 200, `user: ${stickyUser}\n`);
    }
    if (url.pathname === '/__test/tamper') {
      const kind = url.searchParams.get('kind') || '';
      if (kind === '' || kind === 'off' || kind === 'none') {
        pendingTamper = null;
        return text(res, 200, 'tamper: off\n');
      }
      if (!TAMPER_KINDS.includes(kind)) {
        return text(res, 400, `unknown tamper kind ${JSON.stringify(kind)}; one of ${TAMPER_KINDS.join(', ')}\n`);
      }
      pendingTamper = kind;
      return text(res, 200, `tamper: ${kind} (next token response)\n`);
    }
    const m = url.pathname.match(/^\/interaction\/([^/]+)$/);
    if (MODE === 'auto' && m) return await autoInteraction(req, res);
    await dropSessionOnUserSwitch(req, url);
  } catch (err) {
    return text(res, 400, `interaction error: ${err.message}\n`);
  }
  return oidcCallback(req, res);
});

server.listen(PORT, HOST, () => {
  console.log(`READY upstream-oidc mode=${MODE} issuer=${ISSUER} kid=${signingJwk.kid} clients=${clients.map((c) => c.client_id).join(',')} pid=${process.pid}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
