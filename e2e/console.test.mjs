// The console in a real browser: headless Chromium (the distribution's
// package, /usr/bin/chromium or $CHROMIUM) driven by playwright-core,
// against a real `kiln serve` ($KILN_BIN, default target/debug/kiln) on a
// fresh data directory and a free port, signed in with the key the server
// printed on first start. Every run of the offline model is deterministic:
// a message with a ```js fenced block runs that block as its code.
//
//   cargo build -p kiln-cli && (cd e2e && npm ci && npm test)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const KILN = process.env.KILN_BIN || join(here, '..', 'target', 'debug', 'kiln');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Where screenshots of the main pages go (the README shows them).
const SHOTS = process.env.KILN_CONSOLE_SCREENSHOTS;
const WAIT = 20_000;

let server;
let dataDir;
let base;
let key;
let browser;

/** Starts `kiln serve` and reads its URL and first key from the banner. */
function startServer() {
  dataDir = mkdtempSync(join(tmpdir(), 'kiln-console-'));
  server = spawn(KILN, ['serve', '--data-dir', dataDir, '--addr', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'warn,kiln=info' },
  });
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`kiln did not start:\n${seen}`)), 30_000);
    const read = (chunk) => {
      seen += chunk.toString();
      const url = seen.match(/Console: (http:\/\/127\.0\.0\.1:\d+)\/console/);
      const printed = seen.match(/\b(kiln_[A-Za-z0-9]+)\b/);
      if (url && printed) {
        clearTimeout(timer);
        base = url[1];
        key = printed[1];
        resolve();
      }
    };
    server.stdout.on('data', read);
    server.stderr.on('data', read);
    server.on('exit', (code) => reject(new Error(`kiln exited (${code}):\n${seen}`)));
  });
}

/** The API, directly, as the console's own calls would make it. */
async function api(method, path, body) {
  const res = await fetch(`${base}/api/sdk${path}`, {
    method,
    headers: { 'X-API-Key': key, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

before(async () => {
  assert.ok(existsSync(KILN), `no kiln binary at ${KILN}: cargo build -p kiln-cli`);
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: apt-get install chromium`);
  await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((resolve) => server.once('exit', resolve));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A fresh tab, signed in; any script error in it fails the test. */
async function signedIn(t, { width = 1280 } = {}) {
  const context = await browser.newContext({ viewport: { width, height: 900 }, timezoneId: 'Asia/Kolkata' });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'script errors in the page');
  });
  await page.goto(`${base}/`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  return page;
}

/** No error on show and no `null` or `undefined` leaked into the page. */
async function clean(page) {
  assert.deepEqual(await page.getByRole('alert').allInnerTexts(), []);
  assert.doesNotMatch(await page.locator('main').innerText(), /\b(null|undefined|NaN)\b|\[object Object\]/);
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

async function go(page, nav, heading) {
  await page.getByRole('navigation').getByRole('link', { name: nav, exact: true }).click();
  await page.getByRole('heading', { name: heading || nav, level: 1 }).waitFor();
}

test('a wrong key shows the API error message and no console', async (t) => {
  const expected = await (await fetch(`${base}/api/sdk/project`, { headers: { 'X-API-Key': 'kiln_wrong' } })).json();
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  await page.getByLabel('API key').fill('kiln_wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').innerText(), new RegExp(expected.message));
  assert.equal(await page.getByRole('navigation').count(), 0);
  // The key is kept for the tab only, and not kept when it failed.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('kiln.apiKey')), null);
});

test('the console is served with a strict policy and every page is in the navigation', async (t) => {
  const res = await fetch(`${base}/console`);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self';/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
  const root = await fetch(`${base}/`, { redirect: 'manual' });
  assert.equal(root.headers.get('location'), '/console');

  const page = await signedIn(t);
  const names = await page.getByRole('navigation').getByRole('listitem').allInnerTexts();
  assert.deepEqual(names, ['Overview', 'Agents', 'Sessions', 'Indexes', 'Vaults', 'Templates', 'Audit log']);
  // Every page opens without a script error (checked when the tab closes).
  for (const [nav, heading] of [['Agents'], ['Sessions'], ['Indexes'], ['Vaults'], ['Templates'], ['Audit log'], ['Overview']]) {
    await go(page, nav, heading);
  }
  // The key stays in this tab only.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('kiln.apiKey')), key);
  assert.equal(await page.evaluate(() => localStorage.length), 0);
});

test('upload a document, watch it become ready, and search it three ways', async (t) => {
  const page = await signedIn(t);
  await go(page, 'Indexes');
  await page.getByLabel('Name').fill('handbook');
  await page.getByRole('button', { name: 'Create index' }).click();
  await page.getByRole('heading', { name: 'handbook', level: 1 }).waitFor();

  await page.getByLabel('File').setInputFiles({
    name: 'leave.md',
    mimeType: 'text/markdown',
    buffer: Buffer.from('# Annual leave\n\nStaff take twenty-five days of annual leave, and three more in winter.\n'),
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  const row = page.getByRole('row').filter({ hasText: 'leave.md' });
  await row.getByText('ready', { exact: true }).waitFor();
  assert.match(await row.innerText(), /\b1\b/, 'one chunk');

  await page.getByLabel('Query').fill('how many days of annual leave');
  await page.getByRole('button', { name: 'Search' }).click();
  for (const label of ['Hybrid', 'BM25', 'Vector']) {
    const column = page.getByLabel(`${label} results`);
    await column.getByText('leave.md').waitFor();
    assert.match(await column.innerText(), /twenty-five days/);
    assert.match(await column.innerText(), /score \d\.\d{4}/);
  }
  await clean(page);
  await shot(page, 'indexes');
});

test('a named document keeps its versions, listed from the page', async (t) => {
  const page = await signedIn(t);
  await go(page, 'Indexes');
  await page.getByLabel('Name').fill('policies');
  await page.getByRole('button', { name: 'Create index' }).click();
  await page.getByRole('heading', { name: 'policies', level: 1 }).waitFor();
  for (const [n, text] of [[1, 'Refunds take 14 days.'], [2, 'Refunds take 7 days.']]) {
    await page.getByLabel('File').setInputFiles({ name: `refunds-v${n}.md`, mimeType: 'text/markdown', buffer: Buffer.from(`# Refunds\n\n${text}\n`) });
    await page.getByLabel('Document name').fill('refunds');
    await page.getByRole('button', { name: 'Upload' }).click();
    await page.getByRole('row').filter({ hasText: `refunds-v${n}.md` }).getByText('ready', { exact: true }).waitFor();
  }
  await page.getByRole('button', { name: 'refunds' }).first().click();
  const versions = page.locator('section', { has: page.getByRole('heading', { name: 'Versions of refunds' }) });
  await versions.getByText('refunds-v2.md').waitFor();
  const rows = await versions.getByRole('row').allInnerTexts();
  assert.equal(rows.length, 3, rows.join('\n'));
  assert.match(rows.find((r) => r.includes('refunds-v2.md')), /\b2\b[^]*yes/);
  await clean(page);
});

test('sessions are filtered by status and text', async (t) => {
  await api('POST', '/agents', { title: 'needle-session' });
  const page = await signedIn(t);
  await go(page, 'Sessions');
  const list = page.locator('section', { has: page.getByRole('heading', { name: 'All sessions' }) });
  await list.getByRole('link', { name: 'needle-session' }).waitFor();
  await page.getByLabel('Find').fill('needle');
  assert.deepEqual(await list.getByRole('link').allInnerTexts(), ['needle-session']);
  await page.getByLabel('Status').selectOption('awaiting_input');
  await list.getByText('No session matches these filters.').waitFor();
  await page.getByLabel('Status').selectOption('active');
  await list.getByRole('link', { name: 'needle-session' }).waitFor();
});

test('a session shows its steps while it runs, takes an answer from the page, and finishes', async (t) => {
  const page = await signedIn(t);
  await go(page, 'Sessions');
  await page.getByText('New session').click();
  await page.getByLabel('First message').fill(
    "Ask me.\n```js\nconst name = await input({ message: 'What is your name?' });\nreturn 'Hello, ' + name;\n```");
  await page.getByRole('button', { name: 'Start session' }).click();
  await page.getByRole('heading', { name: 'Session', level: 1 }).waitFor();

  // While the turn runs: the message, the model's words, the code, and the
  // question, with a Cancel button for the running turn.
  const trace = page.getByRole('list', { name: 'Trace' });
  await trace.getByText('Running your code.').waitFor();
  await trace.locator('pre.code', { hasText: "await input({ message: 'What is your name?' })" }).waitFor();
  await trace.getByText('What is your name?', { exact: true }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).waitFor();
  await shot(page, 'session-input');

  await page.getByLabel('Your answer').fill('Ada');
  await page.getByRole('button', { name: 'Send answer' }).click();
  await trace.getByText('Turn done').waitFor();
  assert.match(await trace.innerText(), /Message\n[^]*Ask me\.[^]*Result[^]*Hello, Ada/);
  await page.locator('.trace-head .badge', { hasText: /^active$/ }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Cancel' }).count(), 0);
  // Each step carries its timing and tokens.
  assert.match(await trace.innerText(), /#\d+ · \d+ ms/);
  assert.match(await trace.innerText(), /\d+ \+ \d+ tokens/);
  await clean(page);
  await shot(page, 'session');

  // Replayed from its first step, the turn runs again in a new session,
  // which the page opens and follows: it asks again.
  const original = page.url();
  await trace.getByRole('button', { name: 'Replay from here' }).first().click();
  await page.waitForURL((url) => url.href !== original && url.hash.startsWith('#/sessions/'));
  const replayed = page.getByRole('list', { name: 'Trace' });
  await replayed.getByText('What is your name?', { exact: true }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await replayed.getByText('Turn ended: cancelled').waitFor();
});

test('the keyboard alone signs in and moves between pages', async (t) => {
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(`${base}/console`);
  // The key field has the focus; Enter submits.
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  // Tab reaches the navigation in order; Enter follows a link.
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Overview');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Agents', level: 1 }).waitFor();
});

test('a running turn is cancelled from the page and the trace says so', async (t) => {
  const page = await signedIn(t);
  const created = await api('POST', '/agents', { title: 'spinner' });
  assert.equal(created.status, 201);
  await page.goto(`${base}/console#/sessions/${created.body.id}`);
  await page.getByRole('heading', { name: 'spinner', level: 1 }).waitFor();
  await page.getByLabel('Message').fill('Spin.\n```js\nwhile (true) {}\n```');
  await page.getByRole('button', { name: 'Send' }).click();
  const trace = page.getByRole('list', { name: 'Trace' });
  await trace.locator('pre.code', { hasText: 'while (true) {}' }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  await trace.getByText('Turn ended: cancelled').waitFor();
  assert.match(await trace.innerText(), /cancelled/);
  // The button goes once the page has read the session's new status.
  await page.getByRole('button', { name: 'Cancel' }).waitFor({ state: 'hidden', timeout: 5000 });
  await clean(page);
  const after = await api('GET', `/agents/${created.body.id}`);
  assert.notEqual(after.body.session.status, 'running');
});

/** Syncs and deploys agent `support` with `persona`, as `kiln deploy` does. */
async function deploy(persona) {
  const files = [
    ['agent.jsonc', '{ "id": "support", "model": "kiln/offline" }'],
    ['persona.md', persona],
  ].map(([path, content]) => ({
    path,
    hash: `sha256:${createHash('sha256').update(content).digest('hex')}`,
    size: Buffer.byteLength(content),
    content,
  }));
  const manifest = { project: 'acme', sourceHash: `sha256:${persona.length}`, agents: [{ id: 'support', sourceHash: 'sha256:x', files }] };
  const synced = await api('PUT', '/source-sync', manifest);
  assert.equal(synced.status, 200, JSON.stringify(synced.body));
  const deployed = await api('POST', '/source-deploy', { project: 'acme' });
  assert.equal(deployed.status, 200, JSON.stringify(deployed.body));
  return deployed.body;
}

test('an agent shows its versions with what changed and its deploy history', async (t) => {
  await deploy('You help customers.');
  await deploy('You help customers politely.\nYou never guess.');
  const page = await signedIn(t);
  await go(page, 'Agents');
  await page.getByRole('link', { name: 'support' }).click();
  await page.getByRole('heading', { name: 'support', level: 1 }).waitFor();
  const versions = page.locator('section', { has: page.getByRole('heading', { name: 'Versions' }) });
  await versions.getByText('Changed: persona').waitFor();
  const diff = await versions.locator('pre.diff').innerText();
  assert.match(diff, /^- You help customers\.$/m);
  assert.match(diff, /^\+ You help customers politely\.$/m);
  assert.match(diff, /^\+ You never guess\.$/m);
  await versions.getByText('First version').waitFor();
  const deploys = page.locator('section', { has: page.getByRole('heading', { name: 'Deploy history' }) });
  await deploys.getByText('agent.deploy').first().waitFor();
  assert.equal(await deploys.getByText('agent.deploy', { exact: true }).count(), 2);
  await clean(page);
  await shot(page, 'agent');
});

test('the audit log shows actions as recorded and filters them', async (t) => {
  await api('POST', '/indexes', { name: 'audited' });
  await api('POST', '/prompt-templates', { name: 'greeting', content: 'Hello {{name}}' });
  const page = await signedIn(t);
  await go(page, 'Audit log');
  const entries = page.locator('section', { has: page.getByRole('heading', { name: 'Entries' }) });
  await entries.getByText('prompt_template.create', { exact: true }).first().waitFor();
  await page.getByLabel('Action').fill('index.create');
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await entries.getByRole('row').nth(1).waitFor();
  await page.waitForFunction(() => !document.body.innerText.includes('prompt_template.create'));
  const actions = await entries.locator('code.action').allInnerTexts();
  assert.ok(actions.length >= 1);
  assert.ok(actions.every((a) => a === 'index.create'), actions.join(', '));
  await clean(page);
  await shot(page, 'audit');
  // The export holds what the filters select.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  assert.equal(download.suggestedFilename(), 'kiln-audit.csv');
  const csv = readFileSync(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  assert.match(lines[0], /action/);
  assert.ok(lines.length >= 2);
  assert.ok(lines.slice(1).every((l) => l.includes('index.create')), csv);
});

test('vault secrets are set and deleted without their values ever shown', async (t) => {
  const page = await signedIn(t);
  await go(page, 'Vaults');
  await page.getByLabel('Name').fill('llm-keys');
  await page.getByRole('button', { name: 'Create vault' }).click();
  const vault = page.locator('section', { has: page.getByRole('heading', { name: 'llm-keys' }) });
  await vault.getByRole('button', { name: 'Use for provider keys' }).click();
  // Not `getByText('Designated')`: that also matches the "Not designated."
  // the card shows until it is drawn again, whose form would then be lost.
  await vault.getByText("Designated: supplies this project's provider keys.").waitFor();
  await vault.getByLabel('Secret name').fill('openai_api_key');
  await vault.getByLabel('Value').fill('sk-console-secret-value');
  await vault.getByRole('button', { name: 'Set secret' }).click();
  await vault.getByText('openai_api_key', { exact: true }).waitFor();
  assert.doesNotMatch(await page.content(), /sk-console-secret-value/);
  assert.equal((await api('GET', '/project')).body.vault_id !== null, true);
  await vault.getByRole('button', { name: 'Delete secret openai_api_key' }).click();
  await vault.getByText('No secrets in this vault yet.').waitFor();
  await clean(page);
});

test('templates are created and edited; errors show the API message', async (t) => {
  const page = await signedIn(t);
  await go(page, 'Templates');
  await page.getByLabel('Name').fill('welcome');
  await page.getByLabel('Content').fill('Welcome, {{user}}!');
  await page.getByRole('button', { name: 'Create template' }).click();
  const row = page.getByRole('row').filter({ hasText: 'welcome' });
  await row.getByText('user', { exact: true }).waitFor();
  // A second template with the same name: the API refuses, the page says why.
  const expected = await api('POST', '/prompt-templates', { name: 'welcome', content: 'again' });
  assert.ok(expected.status >= 400 && expected.status < 500);
  await page.getByLabel('Name').fill('welcome');
  await page.getByLabel('Content').fill('again');
  await page.getByRole('button', { name: 'Create template' }).click();
  await page.getByRole('alert').filter({ hasText: expected.body.message }).waitFor();
});

test('pages keep their layout at 1024 px and show times in the viewer\'s zone', async (t) => {
  const page = await signedIn(t, { width: 1024 });
  for (const nav of ['Audit log', 'Sessions', 'Indexes', 'Overview']) {
    await go(page, nav);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `${nav} is ${overflow} px wider than the window`);
  }
  await shot(page, 'overview');
  // The tab runs in Asia/Kolkata (UTC+05:30): times the API gives in UTC
  // are shown there.
  await go(page, 'Audit log');
  const first = page.locator('time').first();
  const iso = await first.getAttribute('datetime');
  const language = await page.evaluate(() => navigator.language);
  const expected = new Date(iso).toLocaleString(language, { timeZone: 'Asia/Kolkata' });
  assert.equal(await first.innerText(), expected);
  assert.notEqual(expected, new Date(iso).toLocaleString(language, { timeZone: 'UTC' }));
});
