#!/usr/bin/env node
// Drives idp's WebAuthn pages in headless Chromium with a DevTools virtual authenticator
// (WebAuthn.enable / WebAuthn.addVirtualAuthenticator), under idp's real CSP:
//
//   node webauthn.mjs --base http://localhost:PORT --connector up --expect alice@example.test \
//       --authorize '/authorize?...' --out DIR
//
// 1. An application's /authorize (its project requires a second factor) sends the browser to
//    /login; the connector signs the user in; idp sends them to /account/mfa to enrol, where a
//    passkey is registered on an internal authenticator (user verification, resident keys).
// 2. Sign out; "Sign in with a passkey" on /login signs in with no user name; /authorize now
//    answers the application with a code; the session's amr is read from /account/mfa.
// 3. The internal authenticator is swapped for a USB one without user verification; a security
//    key is registered on it and the passkey removed; sign out, connector login, /login/mfa,
//    "Use security key or passkey"; the amr is read again.
//
// Prints one JSON line: {"ok":true,...} (exit 0) or {"ok":false,"error":...} (exit 1). Console
// errors and CSP violations on idp's origin fail the run.

import { chromium } from 'playwright-core';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad arguments at ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['base', 'connector', 'expect', 'authorize', 'out']) if (!o[k]) throw new Error(`--${k} is required`);
  return o;
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
let args;
try { args = parseArgs(process.argv.slice(2)); } catch (e) { emit({ ok: false, error: e.message }); process.exit(1); }

const STEP_MS = Number(args.timeout ?? 20000);
const BASE = args.base.replace(/\/+$/, '');
const ORIGIN = new URL(BASE).origin;
const OUT = path.resolve(args.out);
const EXECUTABLE = args.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';

const consoleErrors = [];
const navigations = [];
const result = {};
let currentStep = 'start';
let context = null;
let userDataDir = null;
let page = null;
let cdp = null;

function record(kind, text, url) {
  let own = false;
  try { own = new URL(url).origin === ORIGIN; } catch { own = page && page.url().startsWith(ORIGIN); }
  if (!own) return;
  if (kind === 'console' && new URL(url).pathname === '/favicon.ico') return;
  consoleErrors.push({ kind, text, url, step: currentStep });
}

async function step(name, fn) {
  currentStep = name;
  let timer;
  const deadline = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`step "${name}" timed out`)), STEP_MS); });
  try { return await Promise.race([fn(), deadline]); } finally { clearTimeout(timer); }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }
const bodyText = async () => (await page.locator('body').innerText()).replace(/\s+/g, ' ').trim();
const shot = async (name) => { const f = path.join(OUT, name); await page.screenshot({ path: f, fullPage: true }); return f; };

async function landOn(pathname, what) {
  try {
    await page.waitForURL((u) => u.origin === ORIGIN && u.pathname === pathname, { waitUntil: 'load', timeout: STEP_MS - 2000 });
  } catch {
    throw new Error(`${what}: expected ${pathname}, at ${page.url()}: ${(await bodyText()).slice(0, 300)}`);
  }
}

async function clickAndLand(locator, pathname, what) {
  assert(await locator.count() === 1, `${what}: expected one element, found ${await locator.count()}`);
  await locator.click();
  await landOn(pathname, what);
}

async function authenticator(options) {
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: Object.assign({ protocol: 'ctap2', automaticPresenceSimulation: true }, options),
  });
  return authenticatorId;
}

async function signOut() {
  const btn = page.locator('header form[action="/logout"]').getByRole('button', { name: 'Sign out' });
  await clickAndLand(btn, '/login', 'sign out');
}

async function amr() {
  await page.goto(BASE + '/account/mfa', { waitUntil: 'load' });
  return (await page.locator('.amr').innerText()).trim().split(/\s+/);
}

async function addCredential(kind, name, what) {
  await page.locator(`input[name="kind"][value="${kind}"]`).check();
  await page.locator('#webauthn-name').fill(name);
  const btn = page.getByRole('button', { name: 'Add a security key or passkey' });
  assert(await btn.isVisible(), `${what}: the add button is not visible (did /static/webauthn.js run?)`);
  await btn.click();
  await page.waitForURL((u) => u.pathname === '/account/mfa' && u.searchParams.get('done') === 'webauthn_added',
    { waitUntil: 'load', timeout: STEP_MS - 2000 }).catch(async () => {
    const status = await page.locator('[data-webauthn-status]').first().innerText().catch(() => '');
    throw new Error(`${what}: not registered, at ${page.url()}: ${status}`);
  });
  const text = await bodyText();
  assert(text.includes(name), `${what}: ${name} not listed: ${text.slice(0, 400)}`);
}

async function run() {
  await mkdir(OUT, { recursive: true });
  userDataDir = await mkdtemp(path.join(tmpdir(), 'idp-webauthn-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: EXECUTABLE, headless: true, viewport: { width: 1024, height: 768 }, locale: 'en-US',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  context.setDefaultTimeout(STEP_MS);
  await context.exposeBinding('__idpReportCsp', (source, v) =>
    record('csp', `CSP violation: ${v.directive} blocked ${v.blocked || '(inline)'}`, v.document || source.frame.url()));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      try { window.__idpReportCsp({ directive: e.effectiveDirective, blocked: e.blockedURI, document: e.documentURI }); } catch (_) { /* */ }
    });
  });
  page = context.pages()[0] ?? await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') record('console', m.text(), (m.location() && m.location().url) || page.url()); });
  page.on('pageerror', (err) => record('pageerror', String(err), page.url()));
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });

  cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  // A platform passkey that syncs (backup eligible and backed up, as in a cloud keychain): its
  // logins are `swk`; the USB security key's, later, `hwk`.
  const internal = await authenticator({ transport: 'internal', hasResidentKey: true, hasUserVerification: true,
    isUserVerified: true, defaultBackupEligibility: true, defaultBackupState: true });

  const connectorLink = () => page.locator(`a[href="/login/${args.connector}"], a[href^="/login/${args.connector}?"]`);

  // 1. The application's project requires a second factor the user does not have.
  await step('open the application\'s /authorize', async () => {
    await page.goto(BASE + args.authorize, { waitUntil: 'load' });
    await landOn('/login', 'authorize without a session');
  });
  await step('first login, sent to enrol', async () => {
    await clickAndLand(connectorLink(), '/account/mfa', 'after the first login');
    const text = await bodyText();
    assert(text.includes('requires a second factor'), `no enrolment notice: ${text.slice(0, 400)}`);
    assert(new URL(page.url()).searchParams.get('return_to')?.startsWith('/authorize?'), `no return_to: ${page.url()}`);
  });
  result.enrol_page = await shot('enrol.png');
  await step('register a passkey', () => addCredential('passkey', 'Laptop passkey', 'passkey registration'));
  result.passkey_added = await shot('passkey-added.png');
  result.passkey_listed_as = await page.locator('.webauthn-credentials li').first().innerText();
  result.resident = await step('the passkey is discoverable', async () => {
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId: internal });
    assert(credentials.length === 1, `expected one credential on the authenticator, found ${credentials.length}`);
    return credentials[0].isResidentCredential;
  });
  assert(result.resident === true, 'the passkey was not made resident');

  // 2. A passkey login, with no user name.
  await step('sign out', signOut);
  await step('sign in with the passkey', async () => {
    const btn = page.getByRole('button', { name: 'Sign in with a passkey' });
    assert(await btn.isVisible(), 'no visible "Sign in with a passkey" button');
    await btn.click();
    await landOn('/', 'after the passkey login');
    const text = await bodyText();
    assert(text.includes('Signed in') && text.includes(args.expect), `not signed in: ${text.slice(0, 300)}`);
  });
  result.passkey_home = await shot('passkey-home.png');
  result.code_redirect = await step('the application now gets a code', async () => {
    await page.goto(BASE + args.authorize, { waitUntil: 'load' });
    await landOn('/healthz', 'authorize after the passkey login');
    const u = new URL(page.url());
    assert(u.searchParams.get('code'), `no code in ${page.url()}`);
    return page.url();
  });
  result.amr_passkey = await step('read amr after the passkey login', amr);

  // 3. A security key (no user verification, not resident) as the second factor.
  await step('swap to a USB authenticator', async () => {
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: internal });
    await authenticator({ transport: 'usb', hasResidentKey: false, hasUserVerification: false });
  });
  await step('register a security key', () => addCredential('security_key', 'USB key', 'security key registration'));
  await step('remove the passkey', async () => {
    await clickAndLand(page.getByRole('button', { name: 'Remove Laptop passkey' }), '/account/mfa', 'after removing');
    const text = await bodyText();
    assert(text.includes('was removed') && !text.includes('Laptop passkey'), `not removed: ${text.slice(0, 400)}`);
  });
  result.keys = await shot('security-key.png');
  await step('sign out again', signOut);
  await step('connector login asks for the second step', () => clickAndLand(connectorLink(), '/login/mfa', 'after the connector login'));
  result.second_step = await shot('login-mfa.png');
  await step('use the security key', async () => {
    const btn = page.getByRole('button', { name: 'Use security key or passkey' });
    assert(await btn.isVisible(), 'no visible "Use security key or passkey" button');
    await btn.click();
    await landOn('/', 'after the security key');
  });
  result.amr_security_key = await step('read amr after the security key', amr);
  result.signed_in = await shot('signed-in.png');
  await new Promise((r) => setTimeout(r, 200));
  assert(consoleErrors.length === 0, `console/CSP errors on idp's pages: ${JSON.stringify(consoleErrors[0])}`);
}

let code = 0;
try {
  await run();
  emit({ ok: true, ...result, console_errors: consoleErrors, navigations });
} catch (e) {
  code = 1;
  let screenshot;
  try { if (page) screenshot = await shot('failure.png'); } catch { /* */ }
  emit({ ok: false, error: e && e.message ? e.message : String(e), step: currentStep, url: page && page.url(), screenshot,
    ...result, console_errors: consoleErrors, navigations });
} finally {
  try { if (context) await context.close(); } catch { /* */ }
  try { if (userDataDir) await rm(userDataDir, { recursive: true, force: true }); } catch { /* */ }
}
process.exit(code);
