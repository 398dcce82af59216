// Browser flows of the console, run in Debian's headless chromium through playwright-core.
// tests/e2e/console.rs starts regauth (and the registry and dockerd where needed), then runs
// `node tests/browser/console.mjs FLOW` with the servers in the environment:
//   REGAUTH_URL    http://127.0.0.1:PORT of a running regauth
//   ADMIN_TOKEN    its admin token
//   REGISTRY_HOST  the hostname configured for the registry `default`
//   TOKEN_NAME     the token a phase of the docker flow works on
//   SHOT_DIR       where the screenshots flow writes its PNGs
// A flow prints `RESULT <json>` lines for the Rust side and exits non-zero on failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const URL_BASE = need('REGAUTH_URL');
const ADMIN = need('ADMIN_TOKEN');
const TIMEOUT = 30000;

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (tests/e2e/console.rs sets it)`);
  return v;
}

function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

function equal(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/**
 * WCAG AA contrast of every visible text on the page: 4.5:1, or 3:1 for large text (24 px, or
 * 18.66 px bold). The background is the first opaque one up the tree (the page is flat: no
 * text over images). Returns the failures as readable lines.
 */
async function contrastFailures(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = c.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return { r, g, b, a };
    };
    const lum = ({ r, g, b }) => {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const blend = (fg, bg) => ({
      r: fg.r * fg.a + bg.r * (1 - fg.a),
      g: fg.g * fg.a + bg.g * (1 - fg.a),
      b: fg.b * fg.a + bg.b * (1 - fg.a),
      a: 1,
    });
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) return c.a === 1 ? c : blend(c, { r: 255, g: 255, b: 255, a: 1 });
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const failures = [];
    for (const el of document.querySelectorAll('body *')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own || el.closest('[hidden], [inert]') || el.disabled) continue;
      const style = getComputedStyle(el);
      if (style.visibility !== 'visible' || el.getClientRects().length === 0) continue;
      const bg = background(el);
      const fg = blend(parse(style.color), bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        failures.push(`${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 40)}": ${ratio.toFixed(2)}:1`);
      }
    }
    return failures;
  });
}

/** Polls `probe` until it returns a truthy value (returned) or fails after TIMEOUT. */
async function eventually(probe, what, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function result(obj) {
  console.log(`RESULT ${JSON.stringify(obj)}`);
}

// ---------- the admin API, for set-up and for checking what the console did ----------

async function adminApi(method, path, body) {
  const init = { method, headers: { Authorization: `Bearer ${ADMIN}` } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(`${URL_BASE}/api/v1${path}`, init);
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: text ? JSON.parse(text) : null };
}

async function createToken(name, scopes = [{ type: 'repository', name: 'team/*', actions: ['pull', 'push'] }], extra = {}) {
  const r = await adminApi('POST', '/registries/default/tokens', { properties: { name, scopes, ...extra } });
  equal(r.status, 201, `create ${name}: ${JSON.stringify(r.json)}`);
  return r.json;
}

async function tokenNamed(name, registry = 'default') {
  const r = await adminApi('GET', `/registries/${registry}/tokens?limit=1000&filter.name=${name}`);
  return r.json.items.find((t) => t.properties.name === name) || null;
}

async function tokenCount(registry = 'default') {
  return (await adminApi('GET', `/registries/${registry}/tokens?limit=1`)).json.total;
}

// ---------- the browser ----------

async function withBrowser(fn) {
  const profile = mkdtempSync(join(tmpdir(), 'rgb-'));
  // A persistent context on a fresh, empty profile directory: chromium runs with exactly
  // that --user-data-dir, removed afterwards.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
    timeout: 60000,
    viewport: { width: 1280, height: 800 },
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    page.setDefaultNavigationTimeout(60000); // a loaded machine (parallel builds) is slow
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('response', (r) => { if (r.status() === 404) problems.push(`404 for ${r.url()}`); });
    // Chromium logs every 4xx answer; the flows provoke 400, 401 and 409 from the API on
    // purpose (and check what the page makes of them). Anything else is a problem.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of (400|401|409) /.test(m.text())) problems.push(`console error: ${m.text()}`);
    });
    try {
      await fn({ page, context, problems });
    } catch (e) {
      // Show what the page showed, for the failure message.
      const shown = await page.evaluate(() => {
        const open = [...document.querySelectorAll('dialog[open]')].map((d) => `[dialog ${d.id}] ${d.innerText}`);
        return [...open, `[page] ${document.body.innerText}`].join('\n').slice(0, 4000);
      }).catch(() => '(page gone)');
      e.message += `\n--- the page showed:\n${shown}`;
      throw e;
    }
    check(problems.length === 0, `the page reported errors:\n${problems.join('\n')}`);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function signIn(page) {
  await page.goto(`${URL_BASE}/`);
  await page.getByLabel('Admin token').fill(ADMIN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Add Token' }).waitFor();
  await page.locator('#page-info').filter({ hasText: /tokens?$/ }).waitFor();
}

const row = (page, name) => page.getByRole('row').filter({ has: page.getByRole('cell', { name, exact: true }) });

async function openMenuItem(page, name, item) {
  await page.getByRole('button', { name: `Actions for ${name}` }).click();
  await page.getByRole('menuitem', { name: item }).click();
}

/** `YYYY-MM-DDTHH:MM` for the datetime-local inputs (the browser runs in UTC). */
function localInput(date) {
  return date.toISOString().slice(0, 16);
}

// ---------- flows ----------

const flows = {};

/** Sign in (a wrong token is refused with a message), where the token is kept, sign out. */
flows['sign-in'] = () => withBrowser(async ({ page, context }) => {
  const resp = await page.goto(`${URL_BASE}/`);
  equal(new URL(page.url()).pathname, '/console/', 'the root redirects to the console');
  equal(resp.status(), 200, 'console status');
  await page.getByLabel('Admin token').fill('not-the-admin-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();
  check(await page.getByLabel('Admin token').isVisible(), 'still on the sign-in screen');
  equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');

  await page.getByLabel('Admin token').fill(ADMIN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Tokens' }).waitFor();
  await page.getByRole('button', { name: 'Add Token' }).waitFor();
  const storage = await page.evaluate(() => ({
    session: Object.fromEntries(Object.entries(sessionStorage)),
    local: Object.keys(localStorage),
    cookie: document.cookie,
    url: location.href,
  }));
  equal(Object.values(storage.session), [ADMIN], 'the admin token is in sessionStorage');
  equal(storage.local, [], 'nothing in localStorage');
  equal(storage.cookie, '', 'no cookie');
  check(!storage.url.includes(ADMIN), 'the admin token is not in the URL');
  equal((await context.cookies()).length, 0, 'no cookies at all');

  // A reload keeps the session (sessionStorage survives it).
  await page.reload();
  await page.getByRole('button', { name: 'Add Token' }).waitFor();

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Admin token').waitFor();
  await page.getByText('You are signed out.').waitFor();
  equal(await page.evaluate(() => sessionStorage.length), 0, 'sign out forgets the token');
  check(!(await page.getByRole('button', { name: 'Add Token' }).isVisible()), 'the table is gone');
  equal(await page.locator('#rows tr').count(), 0, 'no token rows left in the page');
});

/** A 401 from the API in the middle of a session returns to sign-in with a message. */
flows.unauthorized = () => withBrowser(async ({ page }) => {
  await createToken('ci-bot');
  await signIn(page);
  await row(page, 'ci-bot').waitFor();
  // The admin token changes on the server side (as after `regauth admin-token rotate`):
  // this tab's token is now refused.
  await page.evaluate(() => {
    for (const k of Object.keys(sessionStorage)) sessionStorage.setItem(k, 'an-outdated-admin-token');
  });
  await page.getByLabel('Filter by name').fill('ci');
  await page.getByLabel('Admin token').waitFor();
  await page.getByRole('alert').filter({ hasText: '401' }).waitFor();
  equal(await page.evaluate(() => sessionStorage.length), 0, 'the refused token is dropped');
  equal(await page.locator('#rows tr').count(), 0, 'the table is emptied');
  // Signing in again works.
  await page.getByLabel('Admin token').fill(ADMIN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await row(page, 'ci-bot').waitFor();
});

/** Add Token, the table row, the result panel; the password leaves page and memory. */
flows['add-token'] = () => withBrowser(async ({ page, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL_BASE });
  await signIn(page);
  await page.getByRole('button', { name: 'Add Token' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add Token' });
  await dialog.waitFor();
  check(await dialog.getByLabel('Status').isChecked(), 'Status is on by default');
  equal(await dialog.getByLabel('Path').inputValue(), '*', 'Path defaults to *');
  check(await dialog.getByLabel('No expiry').isChecked(), 'No expiry is the default');
  check(await dialog.getByLabel('Expiry Date').isDisabled(), 'no date without Expire on');
  equal(await dialog.getByLabel('Type').locator('option').allTextContents(), ['Repository', 'Registry'], 'Type options');

  // Push checks Pull; unchecking Pull unchecks Push.
  await dialog.getByLabel('Pull').uncheck();
  await dialog.getByRole('checkbox', { name: 'Push' }).check();
  check(await dialog.getByLabel('Pull').isChecked(), 'Push checked Pull');
  await dialog.getByLabel('Pull').uncheck();
  check(!(await dialog.getByRole('checkbox', { name: 'Push' }).isChecked()), 'unchecking Pull unchecked Push');

  await dialog.getByLabel('Name').fill('ci-bot');
  await dialog.getByLabel('Expire on').check();
  const expiry = new Date(Date.now() + 3 * 86400e3 + 3600e3);
  await dialog.getByLabel('Expiry Date').fill(localInput(expiry));
  await dialog.getByLabel('Path').fill('team/*');
  await dialog.getByRole('checkbox', { name: 'Push' }).check();
  await dialog.getByRole('button', { name: 'Add Token' }).click();

  const panel = page.getByRole('dialog', { name: 'Token created' });
  await panel.waitFor();
  await panel.getByText('cannot be shown again').waitFor();
  const password = (await panel.locator('#result-password').textContent()).trim();
  check(/^rga_[A-Za-z0-9_]+$/.test(password), `a password is shown: ${password.slice(0, 4)}…`);
  const command = (await panel.locator('#result-command').textContent()).trim();
  equal(command, `echo '${password}' | docker login '${process.env.REGISTRY_HOST}' --username 'ci-bot' --password-stdin`, 'docker login command');
  await panel.getByRole('button', { name: 'Copy password' }).click();
  await panel.getByText('Password copied').waitFor();
  equal(await page.evaluate(() => navigator.clipboard.readText()), password, 'the clipboard holds the password');
  // Clear the clipboard so the heap check below only sees what the page holds.
  await page.evaluate(() => navigator.clipboard.writeText('cleared'));

  // The API has it as asked.
  const t = await tokenNamed('ci-bot');
  equal(t.properties.status, 'enabled', 'status');
  equal(t.properties.scopes, [{ type: 'repository', name: 'team/*', actions: ['pull', 'push'] }], 'scopes');
  equal(t.properties.expiryDate, `${localInput(expiry)}:00Z`, 'expiry');

  await panel.getByRole('button', { name: 'Close' }).click();
  await panel.waitFor({ state: 'hidden' });
  await eventually(async () => !(await page.content()).includes(password), 'the password to leave the page');
  check(!(await page.evaluate(() => document.body.innerText)).includes(password), 'not in the text either');
  // ...and from the page's memory: no string in the JS heap holds it after a GC.
  const cdp = await context.newCDPSession(page);
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  let snapshot = '';
  cdp.on('HeapProfiler.addHeapSnapshotChunk', (c) => { snapshot += c.chunk; });
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  check(snapshot.length > 100000, 'took a heap snapshot');
  check(!snapshot.includes(password), 'the password is not in the JS heap after the panel closed');
  check(!snapshot.includes(password.slice(4)), 'no part of the command holds it either');

  // The row: name, status in words, expiry with a warning, scopes, created.
  const r = row(page, 'ci-bot');
  await r.waitFor();
  const cells = await r.getByRole('cell').allInnerTexts();
  equal(cells[0], 'ci-bot', 'Name');
  check(/Enabled/.test(cells[1]), `Status in words: ${cells[1]}`);
  check(cells[2].includes('in 3 days') && cells[2].includes('Expires soon'), `Expiry with a warning: ${cells[2]}`);
  check(cells[2].includes(localInput(expiry).replace('T', ' ')), `Expiry date: ${cells[2]}`);
  equal(cells[3], 'team/*: Pull, Push', 'Scopes');
  check(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/.test(cells[4]), `Created with its time zone: ${cells[4]}`);
  const headers = await page.getByRole('columnheader').allInnerTexts();
  for (const h of ['Name', 'Status', 'Expiry', 'Scopes', 'Created']) check(headers.includes(h), `column ${h}`);
  // A token without expiry says so.
  await createToken('no-expiry-bot');
  await page.getByLabel('Filter by name').fill('no-expiry');
  await row(page, 'no-expiry-bot').getByRole('cell', { name: 'No expiry' }).waitFor();
  equal(await row(page, 'no-expiry-bot').getByText('Expires soon').count(), 0, 'no warning without expiry');
  result({ password_len: password.length });
});

/** Invalid input: live name rules in the API's words, nothing created, API errors named. */
flows.validation = () => withBrowser(async ({ page }) => {
  await signIn(page);
  await page.getByRole('button', { name: 'Add Token' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add Token' });
  const name = dialog.getByLabel('Name');
  for (const [input, rule] of [
    ['ab', 'must be 3 to 63 characters, got 2'],
    ['Bad_Name', "may contain only lowercase letters a-z, digits and '-'"],
    ['1abc', 'must begin with a letter a-z'],
    ['abc-', 'must end with a letter or digit'],
  ]) {
    await name.fill(input);
    await dialog.getByText(`Name ${rule}.`).waitFor();
    equal(await name.getAttribute('aria-invalid'), 'true', `${input} is marked invalid`);
    // The API says the same words for the same name.
    const api = await adminApi('POST', '/registries/default/tokens', { properties: { name: input } });
    equal(api.status, 400, `API status for ${input}`);
    check(api.json.messages[0].message.endsWith(rule), `the API's rule for ${input}: ${api.json.messages[0].message}`);
  }
  await name.fill('Bad_Name');
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  check(await dialog.isVisible(), 'the dialog stays open');
  await dialog.getByText("Name may contain only lowercase letters a-z, digits and '-'.").waitFor();
  equal(await tokenCount(), 0, 'an invalid name creates nothing');

  // An expiry less than an hour ahead is refused before it is sent.
  await name.fill('soon-bot');
  await dialog.getByLabel('Expire on').check();
  await dialog.getByLabel('Expiry Date').fill(localInput(new Date(Date.now() + 10 * 60e3)));
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  await dialog.getByText('Expiry Date: must be at least one hour in the future.').waitFor();
  equal(await tokenCount(), 0, 'a too-early expiry creates nothing');
  await dialog.getByLabel('No expiry').check();

  // The API's own errors show in the dialog, naming the field.
  await dialog.getByLabel('Type').selectOption({ label: 'Registry' });
  await dialog.getByLabel('Path').fill('team');
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  await dialog.getByText("Path: a registry scope's name must be 'catalog' or '*'").waitFor();
  equal(await page.evaluate(() => document.activeElement.id), 'add-path', 'focus on the named field');
  equal(await tokenCount(), 0, 'nothing created');

  await createToken('taken-bot');
  await dialog.getByLabel('Type').selectOption({ label: 'Repository' });
  await dialog.getByLabel('Path').fill('*');
  await name.fill('taken-bot');
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  await dialog.getByText('Name: a token named "taken-bot" already exists in this registry').waitFor();
  equal(await tokenCount(), 1, 'the duplicate was not created');

  // Escape closes the dialog, and focus returns to Add Token.
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  equal(await page.evaluate(() => document.activeElement.textContent), 'Add Token', 'focus back on Add Token');
});

/** Keyboard only: sign in, create a token, read the result, use the row menu. */
flows.keyboard = () => withBrowser(async ({ page }) => {
  await page.goto(`${URL_BASE}/console/`);
  const focused = () => page.evaluate(() => {
    const e = document.activeElement;
    return e ? (e.getAttribute('aria-label') || e.labels?.[0]?.textContent || e.textContent || '').trim() : '';
  });
  const tabTo = async (name, max = 40) => {
    for (let i = 0; i < max; i++) {
      if ((await focused()) === name) return;
      await page.keyboard.press('Tab');
    }
    throw new Error(`Tab never reached ${name}`);
  };
  equal(await focused(), 'Admin token', 'the sign-in field has focus');
  await page.keyboard.type(ADMIN);
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Add Token' }).waitFor();

  await tabTo('Add Token');
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Add Token' });
  await dialog.waitFor();
  equal(await focused(), 'Name', 'focus starts in Name');
  // Focus is trapped: Tab cycles inside the dialog.
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.closest('dialog')?.id === 'add-dialog'),
      `Tab ${i + 1} stays in the dialog`);
  }
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  equal(await focused(), 'Add Token', 'Escape returns focus to Add Token');

  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await page.keyboard.type('kbd-bot');
  await tabTo('Status');
  await page.keyboard.press('Space'); // off
  check(!(await dialog.getByLabel('Status').isChecked()), 'Space turned Status off');
  await dialog.getByText('Disabled', { exact: true }).waitFor();
  await page.keyboard.press('Space'); // on again
  await tabTo('Path');
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.type('kbd/*');
  await tabTo('Push');
  await page.keyboard.press('Space');
  await page.keyboard.press('Enter'); // submits the form
  const panel = page.getByRole('dialog', { name: 'Token created' });
  await panel.waitFor();
  equal(await focused(), 'Copy password', 'focus on Copy password');
  await tabTo('Close');
  await page.keyboard.press('Enter');
  await panel.waitFor({ state: 'hidden' });
  const t = await tokenNamed('kbd-bot');
  equal(t.properties.scopes, [{ type: 'repository', name: 'kbd/*', actions: ['pull', 'push'] }], 'created by keyboard');
  equal(t.properties.status, 'enabled', 'enabled');

  // The row menu: Enter opens it on Edit, arrows move, Escape closes it.
  await row(page, 'kbd-bot').waitFor();
  await tabTo('Actions for kbd-bot');
  await page.keyboard.press('Enter');
  await page.getByRole('menu').waitFor();
  equal(await focused(), 'Edit', 'the menu opens on its first item');
  await page.keyboard.press('ArrowDown');
  equal(await focused(), 'Manage Scope', 'ArrowDown moves');
  await page.keyboard.press('End');
  equal(await focused(), 'Delete', 'End jumps to the last item');
  await page.keyboard.press('Escape');
  await page.getByRole('menu').waitFor({ state: 'detached' });
  equal(await focused(), 'Actions for kbd-bot', 'Escape returns to the menu button');
  // Edit by keyboard: disable the token.
  await page.keyboard.press('Enter');
  await page.keyboard.press('Enter'); // Edit
  const edit = page.getByRole('dialog', { name: 'Edit kbd-bot' });
  await edit.waitFor();
  await tabTo('Status');
  await page.keyboard.press('Space');
  await tabTo('Save');
  await page.keyboard.press('Enter');
  await edit.waitFor({ state: 'hidden' });
  await row(page, 'kbd-bot').getByText('Disabled').waitFor();
  equal(await focused(), 'Actions for kbd-bot', 'focus back on the row menu button');
});

/** Edit: status and expiry. */
flows.edit = () => withBrowser(async ({ page }) => {
  await createToken('edit-bot');
  await signIn(page);
  await openMenuItem(page, 'edit-bot', 'Edit');
  const dialog = page.getByRole('dialog', { name: 'Edit edit-bot' });
  await dialog.waitFor();
  check(await dialog.getByLabel('Status').isChecked(), 'Status shows enabled');
  check(await dialog.getByLabel('No expiry').isChecked(), 'No expiry shown');
  await dialog.getByLabel('Status').uncheck();
  await dialog.getByLabel('Expire on').check();
  const expiry = new Date(Date.now() + 10 * 86400e3);
  await dialog.getByLabel('Expiry Date').fill(localInput(expiry));
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden' });
  const r = row(page, 'edit-bot');
  await r.getByText('Disabled').waitFor();
  await r.getByText('in 10 days').waitFor();
  equal(await r.getByText('Expires soon').count(), 0, 'no warning at 10 days');
  let t = await tokenNamed('edit-bot');
  equal([t.properties.status, t.properties.expiryDate], ['disabled', `${localInput(expiry)}:00Z`], 'saved');

  await openMenuItem(page, 'edit-bot', 'Edit');
  await dialog.waitFor();
  check(!(await dialog.getByLabel('Status').isChecked()), 'Status shows disabled');
  equal(await dialog.getByLabel('Expiry Date').inputValue(), localInput(expiry), 'the expiry is shown');
  await dialog.getByLabel('Status').check();
  await dialog.getByLabel('No expiry').check();
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await r.getByText('Enabled').waitFor();
  await r.getByRole('cell', { name: 'No expiry' }).waitFor();
  t = await tokenNamed('edit-bot');
  equal([t.properties.status, t.properties.expiryDate], ['enabled', null], 'saved again');

  // An API error shows in the dialog.
  await openMenuItem(page, 'edit-bot', 'Edit');
  await dialog.getByLabel('Expire on').check();
  await dialog.getByLabel('Expiry Date').fill(localInput(new Date(Date.now() + 5 * 60e3)));
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.getByText('Expiry Date: must be at least one hour in the future.').waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  t = await tokenNamed('edit-bot');
  equal(t.properties.expiryDate, null, 'nothing saved');
});

/** Manage Scope: list, Remove, Add Scope, Remove all. */
flows.scopes = () => withBrowser(async ({ page }) => {
  await createToken('scope-bot', [
    { type: 'repository', name: 'team/*', actions: ['pull', 'push'] },
    { type: 'repository', name: 'base/*', actions: ['pull'] },
  ]);
  await signIn(page);
  await openMenuItem(page, 'scope-bot', 'Manage Scope');
  const dialog = page.getByRole('dialog', { name: 'Manage Scope: scope-bot' });
  await dialog.waitFor();
  const list = dialog.getByRole('list', { name: 'Scopes' });
  equal(await list.getByRole('listitem').allInnerTexts().then((x) => x.map((s) => s.replace(/\s*Remove$/, ''))),
    ['team/*: Pull, Push', 'base/*: Pull'], 'the scopes are listed');

  await dialog.getByRole('button', { name: 'Remove base/*: Pull' }).click();
  await dialog.getByText('Scope base/*: Pull removed.').waitFor();
  equal(await list.getByRole('listitem').count(), 1, 'one left');
  let t = await tokenNamed('scope-bot');
  equal(t.properties.scopes, [{ type: 'repository', name: 'team/*', actions: ['pull', 'push'] }], 'removed in the API');

  await dialog.getByLabel('Type').selectOption({ label: 'Registry' });
  await dialog.getByLabel('Path').fill('catalog');
  await dialog.getByRole('button', { name: 'Add Scope' }).click();
  await dialog.getByText('Scope Registry catalog: Pull added.').waitFor();
  await dialog.getByLabel('Path').fill('apps/web');
  await dialog.getByRole('checkbox', { name: 'Admin' }).check();
  await dialog.getByRole('checkbox', { name: 'Push' }).check();
  check(await dialog.getByRole('checkbox', { name: 'Pull' }).isChecked(), 'Push checked Pull here too');
  await dialog.getByRole('button', { name: 'Add Scope' }).click();
  await dialog.getByText('Scope apps/web: Pull, Push, Admin added.').waitFor();
  t = await tokenNamed('scope-bot');
  equal(t.properties.scopes, [
    { type: 'repository', name: 'team/*', actions: ['pull', 'push'] },
    { type: 'registry', name: 'catalog', actions: ['pull'] },
    { type: 'repository', name: 'apps/web', actions: ['pull', 'push', 'delete'] },
  ], 'added in the API');

  // A scope the API refuses: the error names the field.
  await dialog.getByLabel('Path').fill('team/*');
  await dialog.getByRole('button', { name: 'Add Scope' }).click();
  await dialog.getByText(/^Scope: duplicate scope for type "repository" and name "team\/\*"/).waitFor();

  await dialog.getByRole('button', { name: 'Remove all' }).click();
  await dialog.getByText('All scopes removed.').waitFor();
  equal(await list.getByRole('listitem').count(), 0, 'the list is empty');
  t = await tokenNamed('scope-bot');
  equal(t.properties.scopes, [], 'no scopes in the API');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await row(page, 'scope-bot').getByRole('cell', { name: 'No scopes' }).waitFor();
});

/** Delete: an alertdialog that says "irreversible"; Cancel keeps the token. */
flows.delete = () => withBrowser(async ({ page }) => {
  await createToken('doomed-bot');
  await createToken('other-bot');
  await signIn(page);
  await openMenuItem(page, 'doomed-bot', 'Delete');
  const confirm = page.getByRole('alertdialog', { name: 'Delete doomed-bot?' });
  await confirm.waitFor();
  await confirm.getByText('irreversible').waitFor();
  equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel', 'Cancel has focus');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'hidden' });
  check(await tokenNamed('doomed-bot'), 'Cancel deletes nothing');

  await openMenuItem(page, 'doomed-bot', 'Delete');
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await confirm.waitFor({ state: 'hidden' });
  await row(page, 'doomed-bot').waitFor({ state: 'detached' });
  await page.getByText('Token doomed-bot deleted.').waitFor();
  equal(await tokenNamed('doomed-bot'), null, 'deleted in the API');
  check(await tokenNamed('other-bot'), 'the other token stays');
});

/** Filter by name and page through the server's pages. */
/** Issue 21: Allowed networks, Owner and Description in Add Token and Edit; the table shows the
 * owner; API data is shown as text; a bad network is refused naming the field. */
flows.policy = () => withBrowser(async ({ page }) => {
  await signIn(page);
  await page.getByRole('button', { name: 'Add Token' }).click();
  const add = page.getByRole('dialog', { name: 'Add Token' });
  await add.waitFor();
  await add.getByLabel('Name').fill('bad-net');
  await add.getByLabel('Allowed networks').fill('10.0.0.1/8');
  await add.getByRole('button', { name: 'Add Token' }).click();
  await add.getByText(/^Allowed networks: .*host bits are set/).waitFor();
  equal(await add.getByLabel('Allowed networks').getAttribute('aria-invalid'), 'true', 'the field is marked');
  equal(await tokenNamed('bad-net'), null, 'nothing created');

  await add.getByLabel('Name').fill('net-bot');
  await add.getByLabel('Allowed networks').fill('10.0.0.0/8\n2001:db8::/32');
  await add.getByLabel('Owner').fill('<b>alice</b>@example.com');
  await add.getByLabel('Description').fill('CI pushes');
  await add.getByRole('button', { name: 'Add Token' }).click();
  const panel = page.getByRole('dialog', { name: 'Token created' });
  await panel.waitFor();
  await panel.getByRole('button', { name: 'Close' }).click();
  let t = await tokenNamed('net-bot');
  equal(t.properties.allowedNetworks, ['10.0.0.0/8', '2001:db8::/32'], 'networks saved');
  equal([t.properties.owner, t.properties.description], ['<b>alice</b>@example.com', 'CI pushes'], 'owner and description saved');
  const r = row(page, 'net-bot');
  await r.getByRole('cell', { name: '<b>alice</b>@example.com', exact: true }).waitFor();
  equal(await r.locator('td.owner b').count(), 0, 'the owner is text, not HTML');

  await openMenuItem(page, 'net-bot', 'Edit');
  const edit = page.getByRole('dialog', { name: 'Edit net-bot' });
  await edit.waitFor();
  equal(await edit.getByLabel('Allowed networks').inputValue(), '10.0.0.0/8\n2001:db8::/32', 'networks shown');
  equal(await edit.getByLabel('Owner').inputValue(), '<b>alice</b>@example.com', 'owner shown');
  equal(await edit.getByLabel('Description').inputValue(), 'CI pushes', 'description shown');
  await edit.getByLabel('Allowed networks').fill('');
  await edit.getByLabel('Owner').fill('bob');
  await edit.getByLabel('Description').fill('');
  await edit.getByRole('button', { name: 'Save' }).click();
  await edit.waitFor({ state: 'hidden' });
  await r.getByRole('cell', { name: 'bob', exact: true }).waitFor();
  t = await tokenNamed('net-bot');
  equal(t.properties.allowedNetworks, undefined, 'anywhere again');
  equal([t.properties.owner, t.properties.description], ['bob', undefined], 'owner changed, description removed');
});

flows['filter-paging'] = () => withBrowser(async ({ page }) => {
  const count = Number(process.env.SEEDED || 0);
  check(count > 100, 'the Rust side seeded more than a page of tokens');
  await signIn(page);
  const info = page.locator('#page-info');
  await info.filter({ hasText: `1–50 of ${count} tokens` }).waitFor();
  equal(await page.locator('#rows tr').count(), 50, 'one page of 50 rows');
  const firstNames = async () => (await page.locator('#rows td.name').allInnerTexts());
  const page1 = await firstNames();
  check(await page.getByRole('button', { name: 'Previous' }).isDisabled(), 'no previous page on page 1');
  await page.getByRole('button', { name: 'Next' }).click();
  await info.filter({ hasText: `51–100 of ${count} tokens` }).waitFor();
  const page2 = await firstNames();
  check(page2[0] > page1[49], `page 2 follows page 1 (${page1[49]} < ${page2[0]})`);
  // The last page.
  await page.getByLabel('Rows per page').selectOption('100');
  await info.filter({ hasText: `1–100 of ${count} tokens` }).waitFor();
  await page.getByRole('button', { name: 'Next' }).click();
  await info.filter({ hasText: `101–${count} of ${count} tokens` }).waitFor();
  check(await page.getByRole('button', { name: 'Next' }).isDisabled(), 'no next page at the end');
  await page.getByRole('button', { name: 'Previous' }).click();
  await info.filter({ hasText: `1–100 of ${count} tokens` }).waitFor();

  // The filter asks the server (filter.name), and starts at the first page.
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.getByLabel('Filter by name').fill('ci-');
  await info.filter({ hasText: '1–3 of 3 tokens' }).waitFor();
  equal(await firstNames(), ['ci-build', 'ci-deploy', 'ci-test'], 'only matching names');
  check(requests.some((u) => u.includes('filter.name=ci-')), `the filter went to the server: ${requests}`);
  await page.getByLabel('Filter by name').fill('no-such-name');
  await page.getByText('No tokens match the filter.').waitFor();
  await page.getByLabel('Filter by name').fill('');
  await info.filter({ hasText: `1–100 of ${count} tokens` }).waitFor();

  // The registry selector switches registries.
  await page.getByLabel('Registry').selectOption({ label: 'second (second.example.com:5000)' });
  await info.filter({ hasText: '1–1 of 1 tokens' }).waitFor();
  equal(await firstNames(), ['second-bot'], 'the other registry\'s tokens');
});

/**
 * What a person sees of an opened row menu, measured in the page (Playwright does not scroll
 * anything into view here): every item's box inside the window, and the item itself is what is
 * drawn at its centre (not clipped by the table's scroll box, not covered).
 */
async function menuVisibility(page, name) {
  return page.evaluate((name) => {
    const button = [...document.querySelectorAll('button.kebab')]
      .find((b) => b.getAttribute('aria-label') === `Actions for ${name}`);
    const menu = document.getElementById(button.getAttribute('aria-controls'));
    const problems = [];
    const items = [...menu.querySelectorAll('[role=menuitem]')];
    for (const item of items) {
      const r = item.getBoundingClientRect();
      const label = item.textContent;
      if (r.width === 0 || r.height === 0) problems.push(`${label}: no size`);
      if (r.left < 0 || r.top < 0 || r.right > window.innerWidth || r.bottom > window.innerHeight) {
        problems.push(`${label}: outside the window (${r.left},${r.top})-(${r.right},${r.bottom})`);
      }
      const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
      if (hit !== item && !item.contains(hit)) problems.push(`${label}: covered by ${hit?.outerHTML.slice(0, 80)}`);
    }
    const b = button.getBoundingClientRect();
    if (b.bottom < 0 || b.top > window.innerHeight) problems.push('the row scrolled out of sight');
    return { items: items.map((i) => i.textContent), problems };
  }, name);
}

async function expectMenuVisible(page, name) {
  await page.getByRole('button', { name: `Actions for ${name}` }).click();
  await page.getByRole('menu').waitFor();
  const seen = await menuVisibility(page, name);
  equal(seen.items, ['Edit', 'Manage Scope', 'Rotate password', 'Activity', 'Delete'], `the menu of ${name}`);
  check(seen.problems.length === 0, `the menu of ${name} is visible:\n${seen.problems.join('\n')}`);
  await page.keyboard.press('Escape');
  await page.getByRole('menu').waitFor({ state: 'hidden' });
}

/** The row menu is drawn outside the table's scroll box: with one token, and with fifty. */
flows['menu-visible'] = () => withBrowser(async ({ page }) => {
  await createToken('only-bot');
  await signIn(page);
  await expectMenuVisible(page, 'only-bot');
  for (let i = 1; i < 50; i += 1) await createToken(`bot-${String(i).padStart(2, '0')}`);
  await page.reload(); // still signed in (session storage)
  await page.locator('#page-info').filter({ hasText: /of 50 tokens/ }).waitFor();
  for (const name of ['bot-01', 'bot-25', 'only-bot']) await expectMenuVisible(page, name);
});

/** Security headers as the browser sees them, and a CSP that stops inline script. */
flows.headers = () => withBrowser(async ({ page, problems }) => {
  const resp = await page.goto(`${URL_BASE}/console/`);
  const h = resp.headers();
  check(h['content-security-policy'].includes("frame-ancestors 'none'"), 'frame-ancestors');
  check(!h['content-security-policy'].includes('unsafe-inline'), 'no unsafe-inline');
  equal(h['x-content-type-options'], 'nosniff', 'nosniff');
  const apiResp = page.waitForResponse((r) => r.url().includes('/api/v1/registries/default/tokens'));
  await signIn(page);
  const api = (await apiResp).headers();
  equal(api['cache-control'], 'no-store', 'API no-store');
  equal(api['x-content-type-options'], 'nosniff', 'API nosniff');
  check(api['content-security-policy'].includes("frame-ancestors 'none'"), 'API frame-ancestors');
  // An injected inline script does not run, and the browser reports the violation.
  const outcome = await page.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve({ blocked: e.violatedDirective, ran: window.injected === true }));
    const s = document.createElement('script');
    s.textContent = 'window.injected = true';
    document.body.append(s);
    setTimeout(() => resolve({ blocked: null, ran: window.injected === true }), 2000);
  }));
  equal(outcome.ran, false, 'inline script did not run');
  check(outcome.blocked && outcome.blocked.startsWith('script-src'), `violation reported: ${outcome.blocked}`);
  // Framing is refused.
  const framed = await page.evaluate((src) => new Promise((resolve) => {
    const f = document.createElement('iframe');
    f.src = src;
    f.onload = () => {
      let readable = false;
      try { readable = Boolean(f.contentDocument && f.contentDocument.getElementById('add-token')); } catch { readable = false; }
      resolve(readable);
    };
    document.body.append(f);
    setTimeout(() => resolve(false), 3000);
  }), `${URL_BASE}/console/`);
  equal(framed, false, 'the console does not render inside a frame');
  // Those two refusals are what this flow provoked; nothing else may be reported.
  const provoked = (p) => p.includes('Content Security Policy');
  check(problems.filter(provoked).length >= 2, `the browser reported both refusals: ${problems}`);
  problems.splice(0, problems.length, ...problems.filter((p) => !provoked(p)));
});

/** Token lifecycle: Last used, Expiring soon, Rotate password with a grace period. */
flows.lifecycle = () => withBrowser(async ({ page }) => {
  const iso = (ms) => new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const used = await createToken('used-bot');
  await createToken('soon-bot', undefined, { expiryDate: iso(2 * 86400e3) });
  await createToken('later-bot', undefined, { expiryDate: iso(30 * 86400e3) });
  const auth = (name, password) => fetch(`${URL_BASE}/auth?service=registry.local&scope=repository:team/app:pull`, {
    headers: { Authorization: `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}` },
  }).then((r) => r.status);
  const first = used.properties.credentials.password;
  equal(await auth('used-bot', first), 200, 'the token authenticates');

  await signIn(page);
  const headers = await page.getByRole('columnheader').allInnerTexts();
  check(headers.includes('Last used'), `a Last used column: ${headers}`);
  const lastUsed = row(page, 'used-bot').locator('td.col-last-used time');
  await lastUsed.filter({ hasText: 'just now' }).waitFor();
  await lastUsed.focus();
  const tip = row(page, 'used-bot').locator('.tip');
  check(await tip.isVisible(), 'the address shows on focus');
  check((await tip.innerText()).includes('from 127.0.0.1 with the password'), `tip: ${await tip.innerText()}`);
  await row(page, 'later-bot').locator('td.col-last-used').filter({ hasText: 'Never' }).waitFor();

  // Expiring soon: only what expires within 7 days, asked of the server.
  const asked = page.waitForRequest((r) => r.url().includes('expiringWithin=7d'));
  await page.getByLabel('Expiring soon').check();
  await asked;
  await page.locator('#page-info').filter({ hasText: '1–1 of 1 tokens' }).waitFor();
  equal(await page.locator('#rows td.name').allInnerTexts(), ['soon-bot'], 'only the token expiring soon');
  await page.getByLabel('Expiring soon').uncheck();
  await page.locator('#page-info').filter({ hasText: '1–3 of 3 tokens' }).waitFor();

  // Rotate with a grace period: a new password, shown once; the old one still works.
  await openMenuItem(page, 'used-bot', 'Rotate password');
  const dialog = page.getByRole('dialog', { name: 'Rotate password' });
  await dialog.getByLabel('Grace period').selectOption({ label: '1 hour' });
  await dialog.getByRole('button', { name: 'Rotate password' }).click();
  const panel = page.getByRole('dialog', { name: 'Password rotated' });
  await panel.waitFor();
  await panel.getByText('cannot be shown again').waitFor();
  const second = (await panel.locator('#result-password').textContent()).trim();
  check(second.startsWith('rga_') && second !== first, 'a new password');
  check((await panel.locator('#result-command').textContent()).includes("--username 'used-bot'"), 'its docker login');
  await panel.getByRole('button', { name: 'Close' }).click();
  await panel.waitFor({ state: 'hidden' });
  await eventually(async () => !(await page.content()).includes(second), 'the new password to leave the page');
  equal(await auth('used-bot', second), 200, 'the new password works');
  equal(await auth('used-bot', first), 200, 'the old one works during the grace period');
  await row(page, 'used-bot').getByText('Previous password works until').waitFor();

  // Rotating again without grace ends the old passwords at once.
  await openMenuItem(page, 'used-bot', 'Rotate password');
  await dialog.getByRole('button', { name: 'Rotate password' }).click();
  await panel.waitFor();
  const third = (await panel.locator('#result-password').textContent()).trim();
  await panel.getByRole('button', { name: 'Close' }).click();
  equal(await auth('used-bot', third), 200, 'the newest password works');
  equal(await auth('used-bot', second), 401, 'the previous one stopped');
  equal(await auth('used-bot', first), 401, 'the first one stopped');
  equal(await row(page, 'used-bot').getByText('Previous password works until').count(), 0, 'no grace shown');
});

/** Rotating a disabled token says so: the docker login shown cannot work until it is enabled. */
flows['rotate-disabled'] = () => withBrowser(async ({ page }) => {
  await createToken('off-bot', undefined, { status: 'disabled' });
  await createToken('on-bot');
  await signIn(page);
  await openMenuItem(page, 'off-bot', 'Rotate password');
  const dialog = page.getByRole('dialog', { name: 'Rotate password' });
  check(await dialog.getByText('off-bot is disabled').isVisible(), 'the rotate dialog says off-bot is disabled');
  await dialog.getByRole('button', { name: 'Rotate password' }).click();
  const panel = page.getByRole('dialog', { name: 'Password rotated' });
  await panel.waitFor();
  const note = panel.getByText('off-bot is disabled: this docker login command fails until you enable');
  check(await note.isVisible(), 'the result says the token is disabled');
  await panel.getByRole('button', { name: 'Close' }).click();
  await panel.waitFor({ state: 'hidden' });

  await openMenuItem(page, 'on-bot', 'Rotate password');
  check(!(await dialog.getByText('is disabled').isVisible()), 'nothing said of an enabled token');
  await dialog.getByRole('button', { name: 'Rotate password' }).click();
  await panel.waitFor();
  check(!(await panel.getByText('is disabled').isVisible()), 'no disabled note for an enabled token');
});

/**
 * The docker login command wraps only at spaces (no word drawn on two lines), and times carry
 * their time zone.
 */
flows['text-layout'] = () => withBrowser(async ({ page }) => {
  const name = `a${'-long-name'.repeat(6)}-x`.slice(0, 63);
  await createToken(name);
  await signIn(page);
  const created = (await row(page, name).locator('td').allInnerTexts()).join(' | ');
  check(/\d{2}:\d{2} UTC/.test(created), `times show a time zone: ${created}`);
  for (const width of [1280, 420]) {
    await page.setViewportSize({ width, height: 800 });
    await openMenuItem(page, name, 'Rotate password');
    const dialog = page.getByRole('dialog', { name: 'Rotate password' });
    await dialog.getByRole('button', { name: 'Rotate password' }).click();
    const panel = page.getByRole('dialog', { name: 'Password rotated' });
    await panel.waitFor();
    const broken = await page.evaluate(() => {
      const code = document.getElementById('result-command');
      // The command's text nodes, to find a character offset of the whole text in them.
      const nodes = [];
      const walk = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
      for (let n = walk.nextNode(), start = 0; n; start += n.length, n = walk.nextNode()) nodes.push({ n, start });
      const point = (at, end) => {
        const hit = nodes.find(({ n, start }) => at >= start && (end ? at <= start + n.length : at < start + n.length));
        return [hit.n, at - hit.start];
      };
      const cut = [];
      let at = 0;
      for (const word of code.textContent.split(' ')) {
        const range = document.createRange();
        range.setStart(...point(at, false));
        range.setEnd(...point(at + word.length, true));
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) cut.push(word.slice(0, 12));
        at += word.length + 1;
      }
      return cut;
    });
    check(broken.length === 0, `at ${width} px no word of the command is cut: ${broken}`);
    await panel.getByRole('button', { name: 'Close' }).click();
    await panel.waitFor({ state: 'hidden' });
  }
});

/** Screenshots of the Tokens tab and of the result panel, for the README. */
flows.screenshots = () => withBrowser(async ({ page }) => {
  const dir = need('SHOT_DIR');
  const soon = new Date(Date.now() + 3 * 86400e3 + 7200e3).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const later = new Date(Date.now() + 90 * 86400e3).toISOString().replace(/\.\d{3}Z$/, 'Z');
  await createToken('ci-build', [{ type: 'repository', name: 'team/*', actions: ['pull', 'push'] }], { expiryDate: later });
  await createToken('deploy-prod', [{ type: 'repository', name: 'apps/*', actions: ['pull'] }], { expiryDate: soon });
  await createToken('mirror-sync', [
    { type: 'repository', name: '*', actions: ['pull'] },
    { type: 'registry', name: 'catalog', actions: ['pull'] },
  ]);
  await createToken('old-laptop', [{ type: 'repository', name: 'team/*', actions: ['pull'] }], { status: 'disabled' });
  await createToken('release-bot', [{ type: 'repository', name: 'releases/*', actions: ['pull', 'push', 'delete'] }]);
  await signIn(page);
  await row(page, 'release-bot').waitFor();
  await page.screenshot({ path: join(dir, 'console-tokens.png') });
  equal(await contrastFailures(page), [], 'WCAG AA contrast of the Tokens tab');
  await page.getByRole('button', { name: 'Add Token' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add Token' });
  await dialog.getByLabel('Name').fill('nightly-build');
  await dialog.getByLabel('Path').fill('team/*');
  await dialog.getByRole('checkbox', { name: 'Push' }).check();
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  await page.getByRole('dialog', { name: 'Token created' }).waitFor();
  await page.screenshot({ path: join(dir, 'console-result.png') });
  equal(await contrastFailures(page), [], 'WCAG AA contrast of the result panel');
});

/**
 * What a person sees of a control, measured in the page without scrolling anything: its box
 * inside the window, and the control itself drawn at its centre (not covered, not clipped).
 */
async function seenInWindow(page, selector) {
  return page.evaluate((selector) => {
    const el = document.querySelector(selector);
    if (!el) return `${selector}: missing`;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return `${selector}: no size`;
    if (r.left < 0 || r.top < 0 || r.right > window.innerWidth || r.bottom > window.innerHeight) {
      return `${selector}: outside the ${window.innerWidth}×${window.innerHeight} window at (${Math.round(r.left)},${Math.round(r.top)})-(${Math.round(r.right)},${Math.round(r.bottom)})`;
    }
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (hit !== el && !el.contains(hit)) return `${selector}: covered by ${hit?.outerHTML.slice(0, 80)}`;
    return null;
  }, selector);
}

/** What sticks out of the window sideways (the page's scrollWidth and the boxes that cause it). */
async function sidewaysOverflow(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
      if (el.closest('[hidden]')) continue;
      const r = el.getBoundingClientRect();
      // For the failure message: a box inside the table's scroll box is clipped there, unless
      // it is positioned (it may escape the box, as the visually hidden column label did).
      const positioned = ['absolute', 'fixed'].includes(getComputedStyle(el).position);
      const clipped = Boolean(el.parentElement.closest('.table-wrap')) && !positioned;
      if (r.right > width + 0.5 && !clipped) out.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).replace(/ /g, '.')}` : ''} ends at ${Math.round(r.right)}`);
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, out };
  });
}

/**
 * Layout at 1280×800 and 420×800: the page never scrolls sideways (the table scrolls inside
 * its box), the Tokens tab's controls are in the window, and the Add Token dialog fits: its
 * submit button is in the window and on top without scrolling, the body scrolls inside.
 * Full-page screenshots of both, and of the open dialog, go to SHOT_DIR for the Rust side.
 */
flows.layout = () => withBrowser(async ({ page }) => {
  const dir = need('SHOT_DIR');
  await createToken('ci-build');
  await createToken('mirror-sync', [
    { type: 'repository', name: 'mirror/very-long-repository-path/*', actions: ['pull'] },
    { type: 'registry', name: 'catalog', actions: ['pull'] },
  ], { owner: 'platform-team@example.com', description: 'Mirrors images' });
  const vera = await adminApi('POST', '/admins', { name: 'vera', role: 'viewer', registries: ['default'] });
  equal(vera.status, 201, `create an admin: ${JSON.stringify(vera.json)}`);
  await signIn(page);
  await row(page, 'mirror-sync').waitFor();
  const seen = [];
  for (const width of [1280, 420]) {
    await page.setViewportSize({ width, height: 800 });
    const over = await sidewaysOverflow(page);
    check(over.scrollWidth <= over.innerWidth,
      `at ${width} px the page does not scroll sideways: scrollWidth ${over.scrollWidth} > ${over.innerWidth}; ${over.out.join('; ')}`);
    for (const control of ['#add-token', '#filter', '#registry', '#sign-out', '#tokens-title']) {
      const problem = await seenInWindow(page, control);
      check(problem === null, `at ${width} px: ${problem}`);
    }
    // The top bar's tabs and button are side by side, never drawn over each other.
    const overlaps = await page.evaluate(() => {
      const boxes = [...document.querySelectorAll('.topbar a, .topbar button, .topbar .brand, .topbar .signed-in-as')]
        .filter((e) => e.getClientRects().length > 0)
        .map((e) => ({ what: e.textContent.trim(), r: e.getBoundingClientRect() }));
      const out = [];
      for (const [i, a] of boxes.entries()) {
        for (const b of boxes.slice(i + 1)) {
          if (a.r.left < b.r.right && b.r.left < a.r.right && a.r.top < b.r.bottom && b.r.top < a.r.bottom) out.push(`${a.what} / ${b.what}`);
        }
      }
      return out;
    });
    equal(overlaps, [], `at ${width} px the top bar's items drawn over each other`);
    // The table may be wider than the window: it scrolls inside its own box.
    const wrap = await page.locator('#tokens-view .table-wrap').evaluate((w) => ({ right: w.getBoundingClientRect().right, scroll: w.scrollWidth, client: w.clientWidth }));
    check(wrap.right <= width, `at ${width} px the table's box ends inside the window (${wrap.right})`);
    await page.screenshot({ path: join(dir, `layout-tokens-${width}.png`), fullPage: true });

    await page.getByRole('button', { name: 'Add Token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Add Token' });
    await dialog.waitFor();
    // Opened again (at 420 px, after the 1280 px round scrolled it down), it starts at its top.
    const submit = '#add-dialog button[type=submit]';
    for (const control of [submit, '#add-dialog [data-close]', '#add-title', '#add-name']) {
      const problem = await seenInWindow(page, control);
      check(problem === null, `at ${width}×800 with the dialog open: ${problem}`);
    }
    const body = await page.locator('#add-dialog .dialog-body').evaluate((b) => ({ scroll: b.scrollHeight, client: b.clientHeight }));
    await page.screenshot({ path: join(dir, `layout-add-${width}.png`) });
    // The last field scrolled into view inside the body: the buttons are still there.
    await page.locator('#add-pull').scrollIntoViewIfNeeded();
    check((await seenInWindow(page, submit)) === null, `at ${width} px the submit button stays in view while the form scrolls`);
    check((await page.evaluate(() => window.scrollY)) === 0, 'the page itself did not scroll');
    await dialog.getByLabel('Name').fill(`layout-${width}`);
    // A real click at the button's place, without Playwright scrolling it into view.
    const box = await page.locator(submit).boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    const panel = page.getByRole('dialog', { name: 'Token created' });
    await panel.waitFor();
    check(await tokenNamed(`layout-${width}`) !== null, `the dialog's submit button created layout-${width}`);
    const overPanel = await sidewaysOverflow(page);
    check(overPanel.scrollWidth <= overPanel.innerWidth, `at ${width} px the result panel does not scroll the page sideways: ${overPanel.out.join('; ')}`);
    await panel.getByRole('button', { name: 'Close' }).click();
    await panel.waitFor({ state: 'hidden' });
    // The Edit dialog (the other long form) fits the same way.
    await openMenuItem(page, 'mirror-sync', 'Edit');
    const edit = page.getByRole('dialog', { name: 'Edit mirror-sync' });
    await edit.waitFor();
    for (const control of ['#edit-dialog button[type=submit]', '#edit-dialog [data-close]']) {
      const problem = await seenInWindow(page, control);
      check(problem === null, `at ${width}×800 with the Edit dialog open: ${problem}`);
    }
    await edit.getByRole('button', { name: 'Cancel' }).click();
    await edit.waitFor({ state: 'hidden' });
    // The Admins tab (an owner's) does not scroll the page sideways either.
    await page.getByRole('link', { name: 'Admins' }).click();
    await row(page, 'vera').waitFor();
    const overAdmins = await sidewaysOverflow(page);
    check(overAdmins.scrollWidth <= overAdmins.innerWidth, `at ${width} px the Admins tab does not scroll sideways: ${overAdmins.scrollWidth}; ${overAdmins.out.join('; ')}`);
    check((await seenInWindow(page, '#admin-create')) === null, `at ${width} px: ${await seenInWindow(page, '#admin-create')}`);
    await page.getByRole('link', { name: 'Tokens' }).click();
    await row(page, 'mirror-sync').waitFor();
    seen.push({ width, scrollWidth: over.scrollWidth, tableScrollWidth: wrap.scroll, tableClientWidth: wrap.client, dialogBodyScroll: body.scroll, dialogBodyClient: body.client });
  }
  result({ seen });
});

/**
 * A federated token ("CI identity (OIDC)"): the Credential choice and its fields, claim
 * conditions checked as typed, the API's pinning rule shown at the field, a result panel with
 * no password, the table's mark, no "Rotate password"; a password token afterwards still gets
 * its password.
 */
flows.oidc = () => withBrowser(async ({ page }) => {
  const GITHUB = 'https://token.actions.githubusercontent.com';
  const AUDIENCE = 'https://registry.example.com';
  await createToken('pw-bot');
  await signIn(page);
  await page.getByRole('button', { name: 'Add Token' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add Token' });
  await dialog.waitFor();
  const credential = dialog.getByRole('group', { name: 'Credential' });
  check(await credential.getByRole('radio', { name: 'Password' }).isChecked(), 'Password is the default credential');
  check(!(await dialog.getByLabel('Issuer').isVisible()), 'no Issuer field for a password token');
  await credential.getByRole('radio', { name: 'CI identity (OIDC)' }).check();
  for (const field of ['Issuer', 'Audience', 'Claim conditions']) {
    check(await dialog.getByLabel(field).isVisible(), `${field} is shown for a CI identity`);
  }

  await dialog.getByLabel('Name').fill('gha-acme');
  await dialog.getByLabel('Path').fill('acme/*');
  await dialog.getByRole('checkbox', { name: 'Push' }).check();
  // Nothing is sent without an issuer and an audience.
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  await dialog.getByText('Issuer: enter the issuer URL of the CI system.').waitFor();
  equal(await page.evaluate(() => document.activeElement.id), 'add-issuer', 'focus on Issuer');
  await dialog.getByLabel('Issuer').fill(GITHUB);
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  await dialog.getByText('Audience: enter at least one audience.').waitFor();
  await dialog.getByLabel('Audience').fill(AUDIENCE);

  // A line that is not claim=pattern is named as it is typed, and blocks the submit.
  const claims = dialog.getByLabel('Claim conditions');
  await claims.fill('repository_owner_id=1234567\nref refs/heads/main');
  await dialog.getByText('Claim conditions: line 2: "ref refs/heads/main" is not claim=pattern.').waitFor();
  equal(await claims.getAttribute('aria-invalid'), 'true', 'the claims box is marked invalid');
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  equal(await page.evaluate(() => document.activeElement.id), 'add-claims', 'focus on Claim conditions');
  await claims.fill('ref=refs/heads/main\nref=refs/heads/dev');
  await dialog.getByText('Claim conditions: line 2: the claim "ref" is given twice.').waitFor();
  equal(await tokenCount(), 1, 'nothing created from bad claim lines');

  // Without a pinned identity the API refuses, and the dialog names the field and the rule.
  await claims.fill('repository=acme/*\nref=refs/heads/main');
  equal(await dialog.locator('#add-claims-error').textContent(), '', 'well-formed lines clear the error');
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  const refused = dialog.locator('#add-error').filter({ hasText: 'repository_owner_id' });
  await refused.waitFor();
  check((await refused.textContent()).startsWith('Claim conditions: '), `the pinning rule names the field: ${await refused.textContent()}`);
  equal(await page.evaluate(() => document.activeElement.id), 'add-claims', 'focus on Claim conditions after the API refused');
  equal(await tokenCount(), 1, 'an unpinned federation creates nothing');

  await claims.fill('repository_owner_id=1234567\n repository = acme/*\n\nref=refs/heads/main');
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  const panel = page.getByRole('dialog', { name: 'Token created' });
  await panel.waitFor();
  await panel.getByText('This token has no password').waitFor();
  check(!(await panel.getByText('Copy the password now').isVisible()), 'no password warning');
  check(!(await panel.getByRole('button', { name: 'Copy password' }).isVisible()), 'no password to copy');
  equal(await panel.locator('#result-password').textContent(), '', 'no password in the panel');
  equal((await panel.locator('#result-command').textContent()).trim(),
    `echo "$ID_TOKEN" | docker login '${process.env.REGISTRY_HOST}' --username 'gha-acme' --password-stdin`,
    'the login command takes the ID token');

  const t = await tokenNamed('gha-acme');
  check(t !== null, 'gha-acme was created');
  equal(t.properties.credentials.password, undefined, 'the API holds no password for it');
  equal(t.properties.federation.issuer, GITHUB, 'issuer');
  equal(t.properties.federation.audiences, [AUDIENCE], 'audiences');
  equal(t.properties.federation.claims, { ref: 'refs/heads/main', repository: 'acme/*', repository_owner_id: '1234567' }, 'claims');
  equal(t.properties.scopes, [{ type: 'repository', name: 'acme/*', actions: ['pull', 'push'] }], 'scopes');
  await panel.getByRole('button', { name: 'Close' }).click();
  await panel.waitFor({ state: 'hidden' });

  // The table marks it, in words; the password token is not marked.
  const mark = row(page, 'gha-acme').getByText('CI identity (OIDC): token.actions.githubusercontent.com');
  await mark.waitFor();
  equal(await row(page, 'pw-bot').getByText('CI identity').count(), 0, 'a password token is not marked');
  // No "Rotate password" for it; a password token keeps the item.
  await page.getByRole('button', { name: 'Actions for gha-acme' }).click();
  await page.getByRole('menuitem', { name: 'Edit' }).waitFor();
  equal(await page.getByRole('menuitem', { name: 'Rotate password' }).count(), 0, 'no Rotate password for a federated token');
  await page.keyboard.press('Escape');
  await page.getByRole('button', { name: 'Actions for pw-bot' }).click();
  await page.getByRole('menuitem', { name: 'Rotate password' }).waitFor();
  await page.keyboard.press('Escape');

  // The next Add Token starts as a password token again, and its panel shows the password.
  await page.getByRole('button', { name: 'Add Token' }).click();
  await dialog.waitFor();
  check(await credential.getByRole('radio', { name: 'Password' }).isChecked(), 'Password again by default');
  check(!(await dialog.getByLabel('Issuer').isVisible()), 'the CI identity fields are hidden again');
  await dialog.getByLabel('Name').fill('after-bot');
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  await panel.waitFor();
  check(await panel.getByText('Copy the password now').isVisible(), 'the password warning is back');
  check(/^rga_/.test((await panel.locator('#result-password').textContent()).trim()), 'a password is shown');
  check(!(await panel.getByText('This token has no password').isVisible()), 'no federated note for a password token');
  equal((await tokenNamed('after-bot')).properties.federation, undefined, 'a password token has no federation');
});

// The end-to-end flow with docker, in phases: the Rust side runs docker between them.

/** Phase 1: create a push token; print the page's docker login command. */
flows['docker-create'] = () => withBrowser(async ({ page }) => {
  const name = need('TOKEN_NAME');
  await signIn(page);
  await page.getByRole('button', { name: 'Add Token' }).click();
  const dialog = page.getByRole('dialog', { name: 'Add Token' });
  await dialog.getByLabel('Name').fill(name);
  await dialog.getByLabel('Path').fill('team/*');
  await dialog.getByRole('checkbox', { name: 'Push' }).check();
  await dialog.getByRole('button', { name: 'Add Token' }).click();
  const panel = page.getByRole('dialog', { name: 'Token created' });
  await panel.waitFor();
  result({ command: (await panel.locator('#result-command').textContent()).trim() });
  await panel.getByRole('button', { name: 'Close' }).click();
});

/** Phase 2: disable the token in Edit. */
flows['docker-disable'] = () => withBrowser(async ({ page }) => {
  const name = need('TOKEN_NAME');
  await signIn(page);
  await openMenuItem(page, name, 'Edit');
  const dialog = page.getByRole('dialog', { name: `Edit ${name}` });
  await dialog.getByLabel('Status').uncheck();
  await dialog.getByRole('button', { name: 'Save' }).click();
  await row(page, name).getByText('Disabled').waitFor();
});

/** Phase 3: delete the token. */
flows['docker-delete'] = () => withBrowser(async ({ page }) => {
  const name = need('TOKEN_NAME');
  await signIn(page);
  await openMenuItem(page, name, 'Delete');
  await page.getByRole('alertdialog').getByRole('button', { name: 'Delete' }).click();
  await row(page, name).waitFor({ state: 'detached' });
});

/** How the page behaves with many tokens: times of the first render and a page change. */
flows.measure = () => withBrowser(async ({ page }) => {
  const t0 = Date.now();
  await signIn(page);
  const firstRender = Date.now() - t0;
  const t1 = Date.now();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('#page-info').filter({ hasText: /^51–100 / }).waitFor();
  const pageChange = Date.now() - t1;
  const t2 = Date.now();
  await page.getByLabel('Filter by name').fill('load-0999');
  await page.locator('#page-info').filter({ hasText: /of 1[0-9]? tokens?$/ }).waitFor();
  const filter = Date.now() - t2;
  const info = await page.locator('#page-info').innerText();
  result({ firstRenderMs: firstRender, pageChangeMs: pageChange, filterMs: filter, info });
});

/** Roles: a viewer sees no write controls and no Admins tab; an owner manages admins there. */
flows.roles = () => withBrowser(async ({ page }) => {
  await createToken('ci-bot');
  const viewer = await adminApi('POST', '/admins', { name: 'vera', role: 'viewer' });
  equal(viewer.status, 201, `create viewer: ${JSON.stringify(viewer.json)}`);
  await page.goto(`${URL_BASE}/`);
  await page.getByLabel('Admin token').fill(viewer.json.secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await row(page, 'ci-bot').waitFor();
  await page.getByText('vera (viewer)').waitFor();
  check(!(await page.getByRole('button', { name: 'Add Token' }).isVisible()), 'a viewer sees no Add Token');
  check(!(await page.getByRole('button', { name: 'Actions for ci-bot' }).isVisible()), 'a viewer sees no row menu (Edit, Rotate, Delete)');
  check(!(await page.getByRole('link', { name: 'Admins' }).isVisible()), 'a viewer sees no Admins tab');
  await page.getByRole('button', { name: 'Sign out' }).click();

  await signIn(page);
  await page.getByText('bootstrap (owner)').waitFor();
  check(await page.getByRole('button', { name: 'Actions for ci-bot' }).isVisible(), 'an owner sees the row menu');
  await page.getByRole('link', { name: 'Admins' }).click();
  await page.getByRole('heading', { name: 'Admins' }).waitFor();
  await row(page, 'vera').waitFor();
  await page.getByLabel('Admin name').fill('eddie');
  await page.getByLabel('Role').selectOption('editor');
  await page.getByRole('button', { name: 'Add Admin' }).click();
  await row(page, 'eddie').waitFor();
  const secret = await page.locator('#admin-secret').innerText();
  check(secret.startsWith('rgadm_'), `the new secret is shown once: ${secret}`);
  const created = (await adminApi('GET', '/admins')).json.items.find((a) => a.name === 'eddie');
  equal(created.role, 'editor', 'the console created an editor');
  page.once('dialog', (d) => d.accept());
  await row(page, 'eddie').getByRole('button', { name: 'Delete' }).click();
  await eventually(async () => !(await adminApi('GET', '/admins')).json.items.some((a) => a.name === 'eddie'), 'eddie deleted');
  await page.getByRole('link', { name: 'Tokens' }).click();
  await row(page, 'ci-bot').waitFor();
});

/** Activity: the events the registry reported for a token, in a dialog table. */
flows.activity = () => withBrowser(async ({ page }) => {
  await createToken('ci-bot');
  await createToken('idle-bot');
  const registry = await adminApi('GET', '/registries/default');
  const secret = registry.json.properties.notifications.secret;
  const digest = `sha256:${'ab'.repeat(32)}`;
  const events = [
    { id: 'e1', timestamp: '2026-06-01T12:00:00Z', action: 'push', actor: { name: 'ci-bot' },
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository: 'team/app', tag: 'v1', digest },
      request: { addr: '10.0.0.7:51234', useragent: 'docker/27' } },
    { id: 'e2', timestamp: '2026-06-01T13:00:00Z', action: 'pull', actor: { name: 'ci-bot' },
      target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', repository: 'team/app', digest },
      request: { addr: '10.0.0.8:40000' } },
  ];
  const r = await fetch(`${URL_BASE}/events/default`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/vnd.docker.distribution.events.v1+json' },
    body: JSON.stringify({ events }),
  });
  equal(r.status, 200, 'the events are stored');
  await signIn(page);
  const headersOfTable = await page.getByRole('columnheader').allInnerTexts();
  check(headersOfTable.includes('Last push'), `a Last push column: ${headersOfTable}`);
  const pushed = row(page, 'ci-bot').locator('td.col-last-push time');
  equal(await pushed.getAttribute('datetime'), '2026-06-01T12:00:00Z', 'the last push of ci-bot (not its newer pull)');
  equal(await row(page, 'idle-bot').locator('td.col-last-push').innerText(), 'None', 'a token that never pushed');
  await openMenuItem(page, 'ci-bot', 'Activity');
  const dialog = page.getByRole('dialog', { name: 'Activity: ci-bot' });
  await dialog.getByText('The newest 2 of 2 events of ci-bot.').waitFor();
  const headers = await dialog.getByRole('columnheader').allTextContents();
  equal(headers, ['When', 'Action', 'Repository', 'Tag', 'Digest', 'From'], 'the columns');
  const rows = await dialog.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  equal(rows.map((c) => c.slice(1)), [
    ['pull', 'team/app', '—', digest, '10.0.0.8:40000'],
    ['push', 'team/app', 'v1', digest, '10.0.0.7:51234'],
  ], 'newest first, as text');
  // Every column in view, not behind a sideways scroll: the digest is cut to its start (its
  // whole text stays, and is the cell's title).
  const wrap = await dialog.locator('.table-wrap').boundingBox();
  const from = await dialog.getByRole('columnheader', { name: 'From' }).boundingBox();
  check(from.x + from.width <= wrap.x + wrap.width + 1, `the From column in view: ${JSON.stringify({ from, wrap })}`);
  equal(await dialog.locator('td.digest').first().getAttribute('title'), digest, 'the whole digest as the title');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await dialog.waitFor({ state: 'hidden' });
  // A store that stopped counting (PostgreSQL past 1 000 matches) says so; the console says
  // "at least". The server's real reply, with only its total marked as a lower bound.
  const activityUrl = /\/tokens\/[^/]+\/activity\?limit=100$/;
  await page.route(activityUrl, async (route) => {
    const response = await route.fetch();
    const json = { ...(await response.json()), total: 1100, totalIsLowerBound: true };
    await route.fulfill({ response, json });
  });
  await openMenuItem(page, 'ci-bot', 'Activity');
  await dialog.getByText('The newest 2 of at least 1100 events of ci-bot.').waitFor();
  await page.unroute(activityUrl);
  await dialog.getByRole('button', { name: 'Close' }).click();
  await dialog.waitFor({ state: 'hidden' });
  await openMenuItem(page, 'idle-bot', 'Activity');
  await page.getByRole('dialog', { name: 'Activity: idle-bot' }).getByText(/No events of idle-bot yet/).waitFor();
});

const flow = flows[process.argv[2]];
if (!flow) {
  console.error(`unknown flow ${process.argv[2]}; flows: ${Object.keys(flows).join(', ')}`);
  process.exit(2);
}
flow().then(() => {
  console.log(`flow ${process.argv[2]}: ok`);
}, (e) => {
  console.error(`flow ${process.argv[2]} failed: ${e.message}\n${e.stack || ''}`);
  process.exit(1);
});
