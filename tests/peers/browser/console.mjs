#!/usr/bin/env node
// Walks idp's admin console in headless Chromium, as a company's admin onboarding alone:
//
//   node console.mjs --base http://127.0.0.1:PORT --connector up --saml-cert FILE --out DIR
//
// Sign in through the connector; create an organisation; create a project; invite a member;
// require a second factor in the project (and be sent to enrol there); create a SAML connection (Okta preset) and read our
// SP metadata from the link the page gives; generate a SCIM token; read the audit log; then
// require a second factor for the whole organisation and watch the console send its own admin
// (who has none yet) to enrolment. Screenshots of each step go to DIR.
//
// Prints one JSON line: {"ok":true,...} (exit 0) or {"ok":false,"error":...} (exit 1). Console
// errors and CSP violations on idp's origin fail the run.

import { chromium } from 'playwright-core';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) throw new Error(`bad arguments at ${argv[i]}`);
    o[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['base', 'connector', 'saml-cert', 'dns-port', 'out']) if (!o[k]) throw new Error(`--${k} is required`);
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
const result = { shots: {} };
let currentStep = 'start';
let context = null;
let userDataDir = null;
let page = null;
let dns = null;

// Debian's dnsmasq on the loopback port idp's dns_resolver names, serving one TXT record.
async function startDns(port, name, value) {
  const bin = ['/usr/sbin/dnsmasq', '/usr/bin/dnsmasq'].find((p) => { try { return statSync(p).isFile(); } catch { return false; } });
  assert(bin, 'dnsmasq is not installed');
  dns = spawn(bin, ['--no-daemon', '--conf-file=/dev/null', '--pid-file', '--no-resolv', '--no-hosts',
    '--listen-address=127.0.0.1', '--bind-interfaces', '--local=/test/', `--port=${port}`, `--txt-record=${name},${value}`],
  { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const taken = await new Promise((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => resolve(true));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (taken) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`dnsmasq did not bind 127.0.0.1:${port}`);
}

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
const shot = async (name) => { const f = path.join(OUT, name); await page.screenshot({ path: f, fullPage: true }); result.shots[name] = f; return f; };

async function landOn(pathname, what, done) {
  try {
    await page.waitForURL((u) => u.origin === ORIGIN && u.pathname === pathname && (!done || u.searchParams.get('done') === done),
      { waitUntil: 'load', timeout: STEP_MS - 2000 });
  } catch {
    throw new Error(`${what}: expected ${pathname}${done ? `?done=${done}` : ''}, at ${page.url()}: ${(await bodyText()).slice(0, 400)}`);
  }
}

async function submit(form, button, pathname, what, done) {
  const btn = form.getByRole('button', { name: button });
  assert(await btn.count() === 1, `${what}: expected one "${button}" button, found ${await btn.count()}`);
  await btn.click();
  await landOn(pathname, what, done);
}

async function run() {
  await mkdir(OUT, { recursive: true });
  const cert = (await readFile(args['saml-cert'], 'utf8')).trim();
  userDataDir = await mkdtemp(path.join(tmpdir(), 'idp-console-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: EXECUTABLE, headless: true, viewport: { width: 1100, height: 800 }, locale: 'en-US',
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

  await step('open /admin, sent to sign in', async () => {
    await page.goto(BASE + '/admin', { waitUntil: 'load' });
    await landOn('/login', 'the console without a session');
  });
  await step('sign in through the connector, back at /admin', async () => {
    const link = page.locator(`a[href^="/login/${args.connector}"]`);
    assert(await link.count() === 1, 'no connector link on /login');
    await link.click();
    await landOn('/admin', 'after signing in');
    assert((await bodyText()).includes('You belong to no organisation yet'), 'a new user already has organisations');
  });
  await shot('01-organisations.png');

  await step('create the organisation', async () => {
    const form = page.locator('form[action="/admin/organisations"]');
    await form.locator('#org-name').fill('Acme Corporation');
    await form.locator('#org-slug').fill('acme');
    await submit(form, 'Create organisation', '/admin/o/acme', 'after creating the organisation', 'created');
    assert((await page.locator('h1').innerText()).trim() === 'Acme Corporation', 'not on the new organisation');
  });
  await shot('02-organisation.png');

  await step('create a project', async () => {
    const form = page.locator('form[action="/admin/o/acme/projects"]');
    await form.locator('#project-name').fill('Billing');
    await form.locator('#project-slug').fill('billing');
    await submit(form, 'Create project', '/admin/o/acme', 'after creating the project', 'project_created');
    assert(await page.locator('ul.projects a[href="/admin/o/acme/p/billing"]').count() === 1, 'the project is not listed');
  });

  result.invitation = await step('invite a member', async () => {
    const form = page.locator('form[action="/admin/o/acme/invitations"]');
    if (await form.count() === 0) return null;
    await form.locator('#invite-email').fill('bob@example.test');
    await form.locator('#invite-role').selectOption('member');
    await submit(form, 'Invite', '/admin/o/acme/invitations', 'after inviting');
    const url = (await page.locator('code.invitation-url').innerText()).trim();
    assert(url.startsWith(BASE + '/invitations/'), `no invitation URL shown: ${url}`);
    return url;
  });
  if (result.invitation) await shot('03-invitation.png');

  await step('require a second factor in the project; the console holds its admin to it there', async () => {
    await page.locator('ul.projects a[href="/admin/o/acme/p/billing"]').click();
    await landOn('/admin/o/acme/p/billing', 'the project page');
    const form = page.locator('form[action="/admin/o/acme/p/billing/mfa-policy"]');
    await form.locator('input[name="requirement"][value="required"]').check();
    await form.locator('input[name="method_totp"]').check();
    await form.getByRole('button', { name: 'Save project policy' }).click();
    // Saved; the project's page now wants the second factor its admin has not set up yet.
    await landOn('/account/mfa', 'after saving the project policy');
    const back = new URL(page.url()).searchParams.get('return_to');
    assert(back === '/admin/o/acme/p/billing', `return_to is ${back}`);
  });
  await shot('04-project-enrol.png');
  await step('the organisation page shows the project\'s policy', async () => {
    await page.goto(BASE + '/admin/o/acme#policy', { waitUntil: 'load' });
    const row = page.locator('table.project-policies tbody tr', { hasText: 'billing' });
    const cells = await row.locator('td').allInnerTexts();
    assert(cells[1] === 'required (totp)' && cells[2] === 'required (totp)', `billing's policy reads ${JSON.stringify(cells)}`);
  });
  await shot('05-policies.png');

  result.sp_metadata = await step('create a SAML connection (Okta)', async () => {
    await page.goto(BASE + '/admin/o/acme', { waitUntil: 'load' });
    const form = page.locator('form.saml-connection');
    await form.locator('#saml-id').fill('acme-okta');
    await form.locator('#saml-name').fill('Acme Okta');
    await form.locator('#saml-preset').selectOption('okta');
    await form.locator('#saml-entity').fill('http://www.okta.com/exk1acme');
    await form.locator('#saml-sso').fill('https://acme.okta.example/app/idp/exk1acme/sso/saml');
    await form.locator('#saml-cert').fill(cert);
    await form.locator('#saml-mappings').fill('Engineering = member\nBilling admins = billing/admin');
    await submit(form, 'Create SAML connection', '/admin/o/acme', 'after creating the SAML connection', 'connector_created');
    const mappings = (await page.locator('.connections .mappings').innerText()).trim();
    assert(mappings === 'Engineering → member; Billing admins → billing/admin', `the mappings read ${mappings}`);
    const link = page.locator('a.sp-metadata');
    assert(await link.count() === 1, 'no SP metadata link for the connection');
    const href = await link.getAttribute('href');
    assert(href === `${BASE}/saml/acme-okta/metadata`, `the metadata link is ${href}`);
    const acs = (await page.locator('code.acs-url').innerText()).trim();
    assert(acs === `${BASE}/saml/acme-okta/acs`, `the ACS URL reads ${acs}`);
    const resp = await page.request.get(href);
    assert(resp.status() === 200, `the SP metadata answered ${resp.status()}`);
    const xml = await resp.text();
    assert(xml.includes('EntityDescriptor') && xml.includes(acs), 'the SP metadata does not carry our ACS URL');
    return { url: href, acs };
  });
  await shot('06-saml-connection.png');

  result.discovery = await step('verify the domain by DNS and route it to the SAML connection', async () => {
    const form = page.locator('form[action="/admin/o/acme/domains"]');
    await form.locator('#domain-name').fill('acme.test');
    await submit(form, 'Add domain', '/admin/o/acme', 'after adding the domain', 'domain_claimed');
    const name = (await page.locator('code.txt-name').innerText()).trim();
    const value = (await page.locator('code.txt-value').innerText()).trim();
    assert(name === '_idp-challenge.acme.test' && /^idp-verify=[0-9a-f]{32}$/.test(value), `the TXT record reads ${name} = ${value}`);
    await startDns(Number(args['dns-port']), name, value);
    await page.getByRole('button', { name: 'Verify acme.test' }).click();
    await landOn('/admin/o/acme', 'after verifying', 'domain_verified');
    assert(await page.locator('table.domains .verified').count() === 1, 'the domain is not shown verified');
    await page.locator('select[aria-label="Sign-in for acme.test"]').selectOption('acme-okta');
    await page.getByRole('button', { name: 'Route acme.test' }).click();
    await landOn('/admin/o/acme', 'after routing', 'domain_routed');
    // The login page now sends acme.test's people to the SAML connection.
    const r = await page.request.get(BASE + '/login/discover?email=jo%40acme.test', { maxRedirects: 0 });
    const location = r.headers()['location'] || '';
    assert(r.status() === 303 && location.startsWith('/login/acme-okta'), `discovery answered ${r.status()} ${location}`);
    return location;
  });
  await shot('06b-domain.png');

  result.scim_token = await step('generate a SCIM token', async () => {
    const form = page.locator('form[action="/admin/o/acme/scim-token"]');
    await form.locator('#scim-name').fill('Okta provisioning');
    await submit(form, 'Generate SCIM token', '/admin/o/acme/scim-token', 'after generating the token');
    const secret = (await page.locator('code.scim-secret').innerText()).trim();
    assert(/^idp_oat_/.test(secret), `the token shown is ${secret.slice(0, 12)}...`);
    const url = (await page.locator('code.scim-url').innerText()).trim();
    assert(url === `${BASE}/scim/v2`, `the SCIM URL reads ${url}`);
    return secret;
  });
  await shot('07-scim-token.png');

  result.audit_actions = await step('read the audit log', async () => {
    await page.locator('a[href="/admin/o/acme/audit"]').click();
    await landOn('/admin/o/acme/audit', 'the audit log');
    return page.locator('table.audit tbody tr td:nth-child(2)').allInnerTexts();
  });
  await shot('08-audit.png');

  await step('require a second factor in the organisation; the console holds its own admin to it', async () => {
    await page.goto(BASE + '/admin/o/acme#policy', { waitUntil: 'load' });
    const form = page.locator('form[action="/admin/o/acme/mfa-policy"]');
    await form.locator('input[name="requirement"][value="required"]').check();
    await form.getByRole('button', { name: 'Save organisation policy' }).click();
    // Saved, then sent back to the organisation's page, which now wants a second factor the
    // admin has not set up: enrolment, with the way back.
    await landOn('/account/mfa', 'after requiring a second factor');
    const back = new URL(page.url()).searchParams.get('return_to');
    assert(back === '/admin/o/acme', `return_to is ${back}`);
    assert((await bodyText()).includes('requires a second factor'), 'no enrolment notice');
  });
  await shot('09-enrol-to-continue.png');
  await new Promise((r) => setTimeout(r, 200));
  assert(consoleErrors.length === 0, `console/CSP errors on idp's pages: ${JSON.stringify(consoleErrors[0])}`);
}

let code = 0;
try {
  await run();
  emit({ ok: true, ...result, console_errors: consoleErrors });
} catch (e) {
  code = 1;
  let screenshot;
  try { if (page) screenshot = await shot('failure.png'); } catch { /* */ }
  emit({ ok: false, error: e && e.message ? e.message : String(e), step: currentStep, url: page && page.url(), screenshot,
    ...result, console_errors: consoleErrors });
} finally {
  try { if (dns) dns.kill(); } catch { /* */ }
  try { if (context) await context.close(); } catch { /* */ }
  try { if (userDataDir) await rm(userDataDir, { recursive: true, force: true }); } catch { /* */ }
}
process.exit(code);
