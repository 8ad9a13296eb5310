#!/usr/bin/env node
// Drives idp's real login pages in headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core; no browser download) and keeps screenshots as test artifacts.
//
//   node login.mjs --base http://127.0.0.1:PORT --connector up --expect alice@example.test --out DIR
//   node login.mjs --base http://127.0.0.1:PORT --signup --email e@x.test --password '...' --out DIR
//   node login.mjs --base http://127.0.0.1:PORT --connector up --expect alice@example.test --mfa --out DIR
//     (first login, set up TOTP on /account/mfa with oathtool's codes, sign out, sign in with a code)
//   node login.mjs ... --mfa --authorize '/authorize?...' --out DIR
//     (the same, forced: the application's project requires a second factor)
//
// Prints exactly one JSON line on stdout: {"ok":true,...} and exit 0, or {"ok":false,"error":...}
// and exit 1. Console errors, uncaught page errors and CSP violations on idp's own origin fail
// the run. See README.md.

import { chromium } from 'playwright-core';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const USAGE = `usage:
  node login.mjs --base URL --connector ID --expect EMAIL --out DIR [--name NAME]
  node login.mjs --base URL --signup --email EMAIL --password PASSWORD --out DIR
  node login.mjs --base URL --connector ID --expect EMAIL --mfa [--authorize PATH] --out DIR
options: --timeout MS (per step, default 15000)  --chromium PATH (default $CHROMIUM or /usr/bin/chromium)
         --type-delay MS (signup password keystroke delay, default 40)
         --rewrite-null-origin (DIAGNOSTIC ONLY: send the real Origin instead of "null" on
           same-origin form POSTs; reported as "rewrote_null_origin" in the JSON)`;

const FLAGS = new Set(['signup', 'help', 'rewrite-null-origin', 'mfa']);

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)}\n${USAGE}`);
    let key = a.slice(2);
    let val;
    const eq = key.indexOf('=');
    if (eq >= 0) { val = key.slice(eq + 1); key = key.slice(0, eq); }
    if (FLAGS.has(key)) { o[key] = true; continue; }
    if (val === undefined) {
      if (i + 1 >= argv.length) throw new Error(`--${key} needs a value\n${USAGE}`);
      val = argv[++i];
    }
    o[key] = val;
  }
  return o;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
  if (args.help) { process.stderr.write(USAGE + '\n'); process.exit(0); }
  for (const k of ['base', 'out']) if (!args[k]) throw new Error(`--${k} is required\n${USAGE}`);
  if (args.signup) {
    for (const k of ['email', 'password']) if (!args[k]) throw new Error(`--${k} is required with --signup\n${USAGE}`);
  } else {
    for (const k of ['connector', 'expect']) if (!args[k]) throw new Error(`--${k} is required\n${USAGE}`);
  }
} catch (e) {
  emit({ ok: false, error: e.message });
  process.exit(1);
}

const STEP_MS = Number(args.timeout ?? 15000);
const TYPE_DELAY = Number(args['type-delay'] ?? 40);
const EXECUTABLE = args.chromium ?? process.env.CHROMIUM ?? '/usr/bin/chromium';
const BASE = new URL(args.base);
const ORIGIN = BASE.origin;
const base = args.base.replace(/\/+$/, '');
const OUT = path.resolve(args.out);

const consoleErrors = []; // on idp's own origin: these fail the run
const foreignErrors = []; // anywhere else (reported, not fatal)
const httpErrors = []; // same-origin responses >= 400 (reported; the console error fails the run)
const navigations = []; // main-frame URLs, in order
let currentStep = 'start';
let browserContext = null;
let userDataDir = null;
let page = null;
let partial = {}; // what a flow has found so far; reported on failure too

function originOf(u) {
  try { return new URL(u).origin; } catch { return null; }
}

const ignoredErrors = []; // the browser's own favicon probe: not a page's doing
const rewrote = []; // form posts sent with the real Origin (--rewrite-null-origin)
let lastDocument = null; // { url, status } of the latest main-frame document response

function record(kind, text, url) {
  const own = originOf(url) === ORIGIN || (url === '' && page && originOf(page.url()) === ORIGIN);
  const entry = { kind, text, url, step: currentStep };
  if (kind === 'console' && own && new URL(url).pathname === '/favicon.ico') { ignoredErrors.push(entry); return; }
  (own ? consoleErrors : foreignErrors).push(entry);
}

// Click, then wait for the main frame to land on ORIGIN + pathname. On failure say where the
// browser is instead, with the HTTP status and the start of the page's text.
async function clickAndLand(locator, pathname, what, { formPost = false } = {}) {
  if (formPost && args['rewrite-null-origin']) {
    // Chromium sends "Origin: null" on a form POST from a page served with
    // "Referrer-Policy: no-referrer" (Fetch standard). DIAGNOSTIC ONLY: this sends the real
    // Origin for this one click, so the rest of a flow can be exercised against a server that
    // refuses "null". (A route can't change Origin; extra headers can.) Never make a test pass
    // with it.
    await page.setExtraHTTPHeaders({ origin: ORIGIN });
    rewrote.push(what);
  }
  try {
    await locator.click();
    await page.waitForLoadState('load');
  } finally {
    if (formPost && args['rewrite-null-origin']) await page.setExtraHTTPHeaders({});
  }
  try {
    await page.waitForURL((u) => isAt(u, pathname), { waitUntil: 'load', timeout: Math.max(1000, STEP_MS - 2000) });
  } catch (e) {
    let text = '';
    try { text = (await bodyText()).slice(0, 300); } catch { /* ignore */ }
    const status = lastDocument && lastDocument.url === page.url() ? ` (HTTP ${lastDocument.status})` : '';
    throw new Error(`${what}: expected ${ORIGIN}${pathname}, the browser is at ${page.url()}${status}: ${JSON.stringify(text)}`);
  }
}

// Run one step with its own deadline, so a hang names the step that hung.
async function step(name, fn) {
  currentStep = name;
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`step "${name}" timed out after ${STEP_MS} ms`)), STEP_MS);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function isAt(u, pathname) {
  const url = u instanceof URL ? u : new URL(u);
  return url.origin === ORIGIN && url.pathname === pathname;
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function bodyText() {
  return (await page.locator('body').innerText()).replace(/\s+/g, ' ').trim();
}

function checkNoErrors(where) {
  if (consoleErrors.length) {
    const first = consoleErrors[0];
    throw new Error(`${consoleErrors.length} console/CSP error(s) on idp's pages (first, during ${first.step} at ${first.url}: ${first.text}) [${where}]`);
  }
}

async function shot(name) {
  const file = path.join(OUT, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function launch() {
  userDataDir = await mkdtemp(path.join(tmpdir(), 'idp-browser-'));
  browserContext = await chromium.launchPersistentContext(userDataDir, {
    executablePath: EXECUTABLE,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1024, height: 768 },
    locale: 'en-US',
    timeout: STEP_MS,
  });
  browserContext.setDefaultTimeout(STEP_MS);
  browserContext.setDefaultNavigationTimeout(STEP_MS);

  // CSP violations, reported from inside the page. The init script and the binding are installed
  // over DevTools, so the page's own CSP does not block them.
  await browserContext.exposeBinding('__idpReportCsp', (source, v) => {
    record('csp', `CSP violation: ${v.directive} blocked ${v.blocked || '(inline)'}` +
      (v.sample ? ` sample=${JSON.stringify(v.sample)}` : '') +
      (v.source ? ` at ${v.source}:${v.line}` : ''), v.document || source.frame.url());
  });
  await browserContext.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      try {
        window.__idpReportCsp({
          directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI,
          sample: e.sample, source: e.sourceFile, line: e.lineNumber, document: e.documentURI,
        });
      } catch (_) { /* reporting must never break the page */ }
    });
  });

  page = browserContext.pages()[0] ?? await browserContext.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const loc = msg.location();
    record('console', msg.text(), (loc && loc.url) || page.url());
  });
  page.on('pageerror', (err) => record('pageerror', String(err && err.stack || err), page.url()));
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) navigations.push(frame.url()); });
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) lastDocument = { url: r.url(), status: r.status() };
    if (r.status() >= 400 && originOf(r.url()) === ORIGIN) {
      httpErrors.push({ status: r.status(), method: r.request().method(), url: r.url(), step: currentStep });
    }
  });
}

async function openPage(pathname, stepName) {
  return step(stepName, async () => {
    const resp = await page.goto(base + pathname, { waitUntil: 'load' });
    assert(resp, `no response for ${base + pathname}`);
    assert(resp.status() === 200, `GET ${pathname} answered ${resp.status()}`);
    assert(isAt(page.url(), pathname), `GET ${pathname} ended at ${page.url()}`);
  });
}

async function assertSignedIn(expectEmail, what) {
  const text = await bodyText();
  assert(text.includes('Signed in'), `${what}: page at ${page.url()} does not say "Signed in": ${text.slice(0, 400)}`);
  assert(text.includes(expectEmail), `${what}: page at ${page.url()} does not show ${expectEmail}: ${text.slice(0, 400)}`);
}

async function loginFlow() {
  const connector = args.connector;
  const result = Object.assign(partial, { mode: 'connector', connector });

  await openPage('/login', 'open /login');
  result.login = await step('screenshot login.png', () => shot('login.png'));

  const link = await step('find connector link', async () => {
    const css = `a[href="/login/${connector}"], a[href^="/login/${connector}?"]`;
    const l = page.locator(css);
    const n = await l.count();
    const all = await page.locator('a[href^="/login/"]').evaluateAll((as) =>
      as.map((a) => `${a.getAttribute('href')} "${a.textContent.trim()}"`));
    assert(n === 1, `expected one link to /login/${connector} on /login, found ${n}; links: ${JSON.stringify(all)}`);
    const label = (await l.innerText()).trim();
    const want = args.name ? `Continue with ${args.name}` : null;
    assert(want ? label === want : /^Continue with \S/.test(label),
      `connector link label is ${JSON.stringify(label)}, expected ${want ? JSON.stringify(want) : '"Continue with <name>"'}`);
    assert(await l.isVisible(), `connector link ${JSON.stringify(label)} is not visible`);
    result.link_text = label;
    return l;
  });

  await step(`click "${result.link_text}" and return to /`, async () => {
    await clickAndLand(link, '/', `after clicking "${result.link_text}"`);
  });
  await step('assert signed in', () => assertSignedIn(args.expect, 'after connector login'));
  result.home = await step('screenshot home.png', () => shot('home.png'));

  await step('sign out', async () => {
    const btn = page.locator('header form[action="/logout"]').getByRole('button', { name: 'Sign out' });
    assert(await btn.count() === 1, 'no "Sign out" button in a POST /logout form in the header');
    const method = await page.locator('header form[action="/logout"]').getAttribute('method');
    assert((method || '').toLowerCase() === 'post', `sign-out form method is ${method}, expected post`);
    await clickAndLand(btn, '/login', 'after clicking "Sign out"', { formPost: true });
    const text = await bodyText();
    assert(!text.includes('Sign out'), `still shows "Sign out" after signing out at ${page.url()}`);
  });
  result.signed_out_at = page.url();
  return result;
}

// A TOTP code from Debian's oathtool (never from idp's code), for the step `offset` s from now.
function oathtool(secret, offset) {
  const sign = offset < 0 ? '-' : '+';
  return execFileSync('oathtool', ['--totp', '-b', '-N', `now ${sign}${Math.abs(offset)} seconds`, secret],
    { encoding: 'utf8' }).trim();
}

// Connector login, TOTP set-up on /account/mfa, sign out, then the login with its second step.
// With --authorize, the set-up is forced: the application's /authorize (its project requires a
// second factor) sends the first login to /account/mfa, and the second login ends back at the
// application with a code.
async function mfaFlow() {
  const connector = args.connector;
  const forced = args.authorize;
  const result = Object.assign(partial, { mode: forced ? 'mfa-forced' : 'mfa', connector });
  const connectorLink = () => page.locator(`a[href="/login/${connector}"], a[href^="/login/${connector}?"]`);

  if (forced) {
    await step('open the application\'s /authorize', async () => {
      await page.goto(base + forced, { waitUntil: 'load' });
      assert(isAt(page.url(), '/login'), `authorize without a session ended at ${page.url()}`);
    });
    await step('first login, sent to enrol', async () => {
      await clickAndLand(connectorLink(), '/account/mfa', 'after the first login');
      const text = await bodyText();
      assert(text.includes('requires a second factor'), `no enrolment notice: ${text.slice(0, 400)}`);
      const back = new URL(page.url()).searchParams.get('return_to');
      assert(back && back.startsWith('/authorize?'), `no return_to: ${page.url()}`);
    });
  } else {
    await openPage('/login', 'open /login');
    await step('first login', () => clickAndLand(connectorLink(), '/', 'after the first login'));
    await step('assert signed in', () => assertSignedIn(args.expect, 'after the first login'));
    await openPage('/account/mfa', 'open /account/mfa');
  }
  result.account = await step('screenshot account-mfa.png', () => shot('account-mfa.png'));
  await step('start TOTP set-up', async () => {
    await page.locator('#totp-name').fill('Browser phone');
    const btn = page.getByRole('button', { name: 'Set up an authenticator app' });
    await clickAndLand(btn, '/account/mfa/totp', 'after starting the set-up', { formPost: true });
  });
  const secret = await step('read the QR code and key', async () => {
    const qr = page.locator('img.qr');
    assert(await qr.count() === 1, 'no QR code image');
    const loaded = await qr.evaluate((img) => img.complete && img.naturalWidth > 0);
    assert(loaded, 'the QR code image did not render (CSP img-src?)');
    return (await page.locator('code.secret').innerText()).trim();
  });
  result.enrol = await step('screenshot enrol.png', () => shot('enrol.png'));
  await step('activate with a code', async () => {
    await page.locator('#confirm-code').fill(oathtool(secret, 0));
    const btn = page.getByRole('button', { name: 'Activate' });
    await clickAndLand(btn, '/account/mfa', 'after activating', { formPost: true });
    const text = await bodyText();
    assert(text.includes('Set up: Browser phone'), `not activated: ${text.slice(0, 400)}`);
    if (forced) {
      const cont = page.getByRole('link', { name: 'Continue to the application' });
      assert(await cont.count() === 1, `no "Continue to the application" link: ${text.slice(0, 400)}`);
      const href = await cont.getAttribute('href');
      const [a, b] = [new URL(href, base), new URL(forced, base)];
      const same = a.pathname === b.pathname && a.searchParams.toString() === b.searchParams.toString();
      assert(same, `the link goes to ${href}, not back to ${forced}`);
    }
  });
  result.enrolled = await step('screenshot enrolled.png', () => shot('enrolled.png'));

  await step('sign out', async () => {
    const btn = page.locator('header form[action="/logout"]').getByRole('button', { name: 'Sign out' });
    await clickAndLand(btn, '/login', 'after clicking "Sign out"', { formPost: true });
  });
  if (forced) {
    await step('open the application\'s /authorize again', async () => {
      await page.goto(base + forced, { waitUntil: 'load' });
      assert(isAt(page.url(), '/login'), `authorize after signing out ended at ${page.url()}`);
    });
  }
  await step('second login asks for a code', () => clickAndLand(connectorLink(), '/login/mfa', 'after the second login'));
  result.code_page = await step('screenshot login-mfa.png', () => shot('login-mfa.png'));
  if (forced) {
    const redirect = new URL(new URL(base + forced).searchParams.get('redirect_uri'));
    result.code_redirect = await step('enter the code, back at the application', async () => {
      // The next step's code: the activation spent the current one.
      await page.locator('#code').fill(oathtool(secret, 30));
      await clickAndLand(page.getByRole('button', { name: 'Verify' }), redirect.pathname, 'after entering the code', { formPost: true });
      const u = new URL(page.url());
      assert(u.origin === redirect.origin && u.searchParams.get('code'), `no code at ${page.url()}`);
      return page.url();
    });
  } else {
    await step('enter the code', async () => {
      await page.locator('#code').fill(oathtool(secret, 30));
      await clickAndLand(page.getByRole('button', { name: 'Verify' }), '/', 'after entering the code', { formPost: true });
    });
    await step('assert signed in', () => assertSignedIn(args.expect, 'after the second factor'));
  }
  await openPage('/account/mfa', 'open /account/mfa again');
  result.amr = await step('read amr', async () => (await page.locator('.amr').innerText()).trim().split(/\s+/));
  result.signed_in = await step('screenshot signed-in.png', () => shot('signed-in.png'));
  return result;
}

async function signupFlow() {
  const { email, password } = args;
  const result = Object.assign(partial, { mode: 'signup', email });

  await openPage('/signup', 'open /signup');
  await step('type e-mail', () => page.locator('#email').pressSequentially(email, { delay: 10 }));

  await step('type password and wait for #strength', async () => {
    // The verdict for the whole password: the page debounces, so wait for the answer to the
    // request that carried all of it, then for the element to show it.
    const finalAnswer = page.waitForResponse((r) => {
      if (!r.url().endsWith('/signup/strength') || r.request().method() !== 'POST') return false;
      try { return JSON.parse(r.request().postData() || '{}').password === password; } catch { return false; }
    });
    await page.locator('#password').pressSequentially(password, { delay: TYPE_DELAY });
    const resp = await finalAnswer;
    assert(resp.ok(), `POST /signup/strength answered ${resp.status()}`);
    result.strength_response = await resp.json().catch(() => null);
    await page.waitForFunction(() => {
      const el = document.getElementById('strength');
      return el && el.textContent.trim() !== '' && el.dataset.score !== undefined;
    });
    const s = page.locator('#strength');
    result.strength = (await s.innerText()).trim();
    result.strength_score = Number(await s.getAttribute('data-score'));
    result.strength_acceptable = (await s.getAttribute('data-acceptable')) === 'true';
  });
  result.signup = await step('screenshot signup.png', () => shot('signup.png'));

  await step('submit and return to /', async () => {
    const submit = page.locator('form[action="/signup"]').getByRole('button', { name: 'Create account' });
    await clickAndLand(submit, '/', 'after submitting /signup', { formPost: true });
  });
  await step('assert signed in', () => assertSignedIn(email, 'after sign-up'));
  result.home = await step('screenshot home.png', () => shot('home.png'));
  return result;
}

async function cleanup() {
  try { if (browserContext) await browserContext.close(); } catch { /* ignore */ }
  browserContext = null;
  try { if (userDataDir) await rm(userDataDir, { recursive: true, force: true }); } catch { /* ignore */ }
  userDataDir = null;
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, async () => {
    emit({ ok: false, error: `killed by ${sig} during step "${currentStep}"` });
    await cleanup();
    process.exit(1);
  });
}

let exitCode = 0;
try {
  await mkdir(OUT, { recursive: true });
  await step('launch chromium', launch);
  const result = args.signup ? await signupFlow() : args.mfa ? await mfaFlow() : await loginFlow();
  // Let late console messages (e.g. a CSP report fired after load) arrive before judging.
  await new Promise((r) => setTimeout(r, 200));
  checkNoErrors('end of run');
  if (args['rewrite-null-origin']) result.rewrote_null_origin = rewrote;
  emit({ ok: true, ...result, console_errors: consoleErrors, foreign_console_errors: foreignErrors,
    ignored_console_errors: ignoredErrors, http_errors: httpErrors, navigations });
} catch (e) {
  exitCode = 1;
  let screenshot;
  try { if (page) screenshot = await shot('failure.png'); } catch { /* ignore */ }
  emit({ ok: false, error: e && e.message ? e.message : String(e), ...partial, step: currentStep,
    url: page ? page.url() : null, screenshot, console_errors: consoleErrors,
    foreign_console_errors: foreignErrors, ignored_console_errors: ignoredErrors, http_errors: httpErrors,
    navigations });
} finally {
  await cleanup();
}
process.exit(exitCode);
