// The Tokens console: sign-in, the token table, and the dialogs that change tokens. Every
// change goes through the admin API (api.js); data from the API is rendered with
// textContent only.
import { api, session, tokenPath, tokensPath, ApiError, Unauthorized } from './api.js';
import { closeMenu, initDialogs, openDialog, returnFocusTo, showMenu } from './dialogs.js';
import { applyRole, resetRole } from './admins.js';
import {
  EXPIRY_RULE, MIN_LIFETIME_MS, WARN_DAYS, audiencesOf, claimsOf, dockerLogin, federatedLogin,
  fieldOf, formatStamp, fromLocalInput, nameRule, networksOf, relative, scopeText, statusText,
  toLocalInput,
} from './format.js';

const $ = (id) => document.getElementById(id);

/** What the table shows. No secrets live here. */
const view = {
  registries: [],
  registry: null,
  offset: 0,
  limit: 50,
  filter: '',
  expiring: false,
  total: 0,
  items: [],
  /** Token name -> time of its newest push among the registry's newest PUSHES_SEEN pushes. */
  lastPush: new Map(),
};

/** How many of the registry's newest pushes the "Last push" column looks at (one request). */
const PUSHES_SEEN = 1000;

// ---------- helpers ----------

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function say(text) {
  $('notice').textContent = text;
}

/** Every failure ends here: a 401 goes back to sign-in, the rest shows in `target`. */
function fail(e, target) {
  if (e instanceof Unauthorized) {
    showSignIn(e.message);
    return;
  }
  (target || $('load-error')).textContent = e.message;
}

function registryHost() {
  const r = view.registries.find((x) => x.id === view.registry);
  return r ? r.properties.hostname : '';
}

// ---------- sign in / out ----------

function showSignIn(message) {
  session.clear();
  resetRole();
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  closeMenu();
  view.items = [];
  $('rows').replaceChildren();
  $('tokens-view').hidden = true;
  $('sign-out').hidden = true;
  $('signin-view').hidden = false;
  $('signin-message').textContent = message || '';
  $('admin-token').value = '';
  $('admin-token').focus();
}

async function showTokens() {
  await applyRole();
  const list = await api('GET', '/registries');
  view.registries = list.items || [];
  const select = $('registry');
  select.replaceChildren(...view.registries.map((r) =>
    el('option', { value: r.id, text: `${r.id} (${r.properties.hostname})` })));
  if (!view.registries.some((r) => r.id === view.registry)) {
    view.registry = view.registries.length ? view.registries[0].id : null;
  }
  select.value = view.registry || '';
  $('signin-view').hidden = true;
  $('signin-message').textContent = '';
  $('tokens-view').hidden = false;
  $('sign-out').hidden = false;
  view.offset = 0;
  await loadTokens();
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = $('admin-token').value.trim();
  if (!token) {
    $('signin-message').textContent = 'Enter the admin token.';
    $('admin-token').focus();
    return;
  }
  session.set(token);
  $('admin-token').value = '';
  try {
    await showTokens();
    $('tokens-title').focus();
  } catch (err) {
    if (err instanceof Unauthorized) showSignIn('That admin token was not accepted (401 Unauthorized).');
    else showSignIn(err.message);
  }
});

$('sign-out').addEventListener('click', () => showSignIn('You are signed out.'));

// ---------- the table ----------

let loadSeq = 0;

async function loadTokens() {
  if (!view.registry) {
    $('empty').hidden = false;
    $('empty').textContent = 'No registries are configured.';
    return;
  }
  const seq = ++loadSeq;
  const q = new URLSearchParams({ offset: view.offset, limit: view.limit });
  if (view.filter) q.set('filter.name', view.filter);
  if (view.expiring) q.set('expiringWithin', `${WARN_DAYS}d`);
  const pushes = api('GET', `/registries/${encodeURIComponent(view.registry)}/activity?action=push&limit=${PUSHES_SEEN}`)
    .catch(() => null); // the column then says nothing; the table still loads
  const list = await api('GET', `${tokensPath(view.registry)}?${q}`);
  const recent = await pushes;
  if (seq !== loadSeq) return; // a newer request has been sent
  view.lastPush = new Map();
  for (const e of (recent && recent.items) || []) {
    if (e.actor && !view.lastPush.has(e.actor)) view.lastPush.set(e.actor, e.time);
  }
  // Past the end (after deletes): go to the last page that has items.
  if (list.items.length === 0 && list.total > 0 && view.offset > 0) {
    view.offset = Math.max(0, Math.floor((list.total - 1) / view.limit) * view.limit);
    await loadTokens();
    return;
  }
  $('load-error').textContent = '';
  view.items = list.items;
  view.total = list.total;
  render();
}

function reload() {
  return loadTokens().catch((e) => fail(e));
}

function expiryCell(token, now) {
  const td = el('td');
  const at = token.properties.expiryDate;
  if (!at) {
    td.textContent = 'No expiry';
    return td;
  }
  const date = new Date(at);
  td.append(el('time', { datetime: at, text: formatStamp(date) }));
  const left = date.getTime() - now.getTime();
  if (left <= 0) {
    td.append(el('span', { class: 'sub expired', text: 'Expired' }));
  } else {
    td.append(el('span', { class: 'sub', text: relative(date, now) }));
    if (left < WARN_DAYS * 86400e3) {
      td.classList.add('soon');
      td.append(el('span', { class: 'warn', text: '⚠ Expires soon' }));
    }
  }
  return td;
}

function lastUsedCell(token, now) {
  const td = el('td', { class: 'col-last-used' });
  const m = token.metadata || {};
  if (!m.lastUsedDate) {
    td.textContent = 'Never';
    return td;
  }
  const date = new Date(m.lastUsedDate);
  const grant = { password: 'the password', refresh_token: 'a refresh token' }[m.lastUsedGrantType];
  const where = [m.lastUsedFrom && `from ${m.lastUsedFrom}`, grant && `with ${grant}`]
    .filter(Boolean).join(' ');
  const t = el('time', {
    datetime: m.lastUsedDate, tabindex: '0', title: `${formatStamp(date)} ${where}`.trim(),
    'aria-describedby': `lu-${token.id}`, text: relative(date, now),
  });
  td.append(t, el('span', { id: `lu-${token.id}`, class: 'tip', text: `${formatStamp(date)} ${where}`.trim() }));
  return td;
}

function lastPushCell(token, now) {
  const at = view.lastPush.get(token.properties.name);
  if (!at) {
    return el('td', { class: 'col-last-push', title: `No push among the registry's newest ${PUSHES_SEEN}`, text: 'None' });
  }
  const date = new Date(at);
  return el('td', { class: 'col-last-push' },
    el('time', { datetime: at, title: formatStamp(date), text: relative(date, now) }));
}

function statusCell(token, status) {
  const td = el('td', {}, el('span', { class: `status status-${status.toLowerCase()}`, text: status }));
  const federation = token.properties.federation;
  if (federation) {
    // A federated token has no password: say so in words, with the issuer it trusts.
    td.append(el('span', { class: 'sub credential-oidc', title: federation.issuer, text: `CI identity (OIDC): ${issuerText(federation.issuer)}` }));
  }
  const until = token.properties.previousPasswordExpiryDate;
  if (until) {
    td.append(el('span', { class: 'sub', text: `Previous password works until ${formatStamp(new Date(until))}` }));
  }
  return td;
}

/** An issuer URL as the table shows it: its host (and path, if any). */
function issuerText(issuer) {
  try {
    const u = new URL(issuer);
    return `${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return String(issuer);
  }
}

function render() {
  const now = new Date();
  const rows = view.items.map((t) => {
    const p = t.properties;
    const status = statusText(p.status);
    const scopes = el('td', { class: 'scopes' });
    if (p.scopes.length === 0) scopes.textContent = 'No scopes';
    for (const s of p.scopes) scopes.append(el('div', { text: scopeText(s) }));
    const created = new Date(t.metadata.createdDate);
    const menuButton = el('button', {
      type: 'button', class: 'kebab', id: `menu-${t.id}`, 'aria-haspopup': 'menu',
      'aria-expanded': 'false', 'aria-label': `Actions for ${p.name}`, title: `Actions for ${p.name}`,
      text: '⋮',
    });
    menuButton.addEventListener('click', () => {
      if (menuButton.getAttribute('aria-expanded') === 'true') closeMenu(true);
      else openRowMenu(menuButton, t);
    });
    const cells = [
      el('td', { class: 'name', text: p.name }),
      statusCell(t, status),
      expiryCell(t, now),
      scopes,
      el('td', {}, el('time', { datetime: t.metadata.createdDate, text: formatStamp(created) })),
    ];
    cells.push(lastUsedCell(t, now));
    cells.push(lastPushCell(t, now));
    cells.push(el('td', { class: 'owner', text: p.owner || '—' }));
    cells.push(el('td', { class: 'row-actions' }, menuButton));
    return el('tr', { 'data-id': t.id }, ...cells);
  });
  // Re-rendering replaces the rows: keep focus on the same token's menu button.
  const focused = document.activeElement && document.activeElement.id;
  $('rows').replaceChildren(...rows);
  if (focused && focused.startsWith('menu-') && !document.querySelector('dialog[open]')) {
    const again = document.getElementById(focused);
    if (again) again.focus();
  }
  const first = view.total === 0 ? 0 : view.offset + 1;
  const last = view.offset + view.items.length;
  const n = view.total.toLocaleString('en');
  $('page-info').textContent = view.total === 0
    ? 'No tokens'
    : `${first.toLocaleString('en')}–${last.toLocaleString('en')} of ${n} tokens`;
  $('prev-page').disabled = view.offset === 0;
  $('next-page').disabled = last >= view.total;
  const empty = $('empty');
  empty.hidden = view.items.length > 0;
  empty.textContent = view.filter || view.expiring
    ? 'No tokens match the filter.'
    : 'This registry has no tokens yet. Add one with Add Token.';
}

function openRowMenu(button, token) {
  const items = [
    ['Edit', () => openEdit(token, button)],
    ['Manage Scope', () => openScopes(token, button)],
  ];
  // A federated token has no password to rotate.
  if (!token.properties.federation) items.push(['Rotate password', () => openRotate(token, button)]);
  items.push(['Activity', () => openActivity(token, button)]);
  items.push(['Delete', () => openDelete(token, button)]);
  showMenu(button, items);
}

$('registry').addEventListener('change', () => {
  view.registry = $('registry').value;
  view.offset = 0;
  reload();
});

let filterTimer = null;
$('filter').addEventListener('input', () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    view.filter = $('filter').value.trim().toLowerCase();
    view.offset = 0;
    reload();
  }, 250);
});

$('expiring').addEventListener('change', () => {
  view.expiring = $('expiring').checked;
  view.offset = 0;
  reload();
});

$('prev-page').addEventListener('click', () => {
  view.offset = Math.max(0, view.offset - view.limit);
  reload();
});
$('next-page').addEventListener('click', () => {
  view.offset += view.limit;
  reload();
});
$('page-size').addEventListener('change', () => {
  view.limit = Number($('page-size').value);
  view.offset = 0;
  reload();
});

// ---------- shared form pieces ----------

/** Push checks Pull; unchecking Pull unchecks Push. */
function coupleActions(prefix) {
  const push = $(`${prefix}-push`);
  const pull = $(`${prefix}-pull`);
  push.addEventListener('change', () => { if (push.checked) pull.checked = true; });
  pull.addEventListener('change', () => { if (!pull.checked) push.checked = false; });
}

function readScope(prefix) {
  const actions = [];
  if ($(`${prefix}-pull`).checked) actions.push('pull');
  if ($(`${prefix}-push`).checked) actions.push('push');
  if ($(`${prefix}-admin`).checked) actions.push('delete');
  return { type: $(`${prefix}-type`).value, name: $(`${prefix}-path`).value.trim(), actions };
}

function resetScope(prefix) {
  $(`${prefix}-type`).value = 'repository';
  $(`${prefix}-path`).value = '*';
  $(`${prefix}-admin`).checked = false;
  $(`${prefix}-push`).checked = false;
  $(`${prefix}-pull`).checked = true;
}

function statusToggle(prefix) {
  const box = $(`${prefix}-status`);
  const update = () => { $(`${prefix}-status-text`).textContent = box.checked ? 'Enabled' : 'Disabled'; };
  box.addEventListener('change', update);
  return update;
}

function expiryMode(prefix) {
  const update = () => {
    const on = $(`${prefix}-expire-on`).checked;
    const input = $(`${prefix}-expiry`);
    input.disabled = !on;
    input.min = toLocalInput(new Date(Date.now() + MIN_LIFETIME_MS));
    if (on && !input.value) input.value = toLocalInput(new Date(Date.now() + 30 * 86400e3));
  };
  $(`${prefix}-no-expiry`).addEventListener('change', update);
  $(`${prefix}-expire-on`).addEventListener('change', update);
  return update;
}

/** The expiry the form asks for (`null` = none), or an error shown at the field. */
function readExpiry(prefix) {
  const err = $(`${prefix}-expiry-error`);
  err.textContent = '';
  if (!$(`${prefix}-expire-on`).checked) return { value: null };
  const value = fromLocalInput($(`${prefix}-expiry`).value);
  if (!value) {
    err.textContent = 'Expiry Date: enter a date and time.';
    return { error: true };
  }
  if (new Date(value).getTime() < Date.now() + MIN_LIFETIME_MS) {
    err.textContent = `Expiry Date: ${EXPIRY_RULE}.`;
    return { error: true };
  }
  return { value };
}

/** Shows an API error in a dialog, naming the form's field, and focuses that field. */
function showApiError(e, box, fields) {
  if (e instanceof Unauthorized) {
    fail(e);
    return;
  }
  const { label, rule } = fieldOf(e.message);
  const conflict = e instanceof ApiError && e.status === 409 && fields.Name;
  const name = conflict ? 'Name' : label;
  box.textContent = name ? `${name}: ${conflict ? e.message : rule}` : e.message;
  const field = name && fields[name];
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

// ---------- Add Token ----------

const addStatus = statusToggle('add');
const addExpiry = expiryMode('add');
coupleActions('add');

function checkName() {
  const input = $('add-name');
  const rule = nameRule(input.value);
  $('add-name-error').textContent = rule ? `Name ${rule}.` : '';
  input.setAttribute('aria-invalid', rule ? 'true' : 'false');
  return rule;
}

$('add-name').addEventListener('input', checkName);

/** The issuers the server trusts when its configuration names none, offered in the Issuer field. */
const KNOWN_ISSUERS = [
  ['https://token.actions.githubusercontent.com', 'GitHub Actions'],
  ['https://gitlab.com', 'GitLab.com'],
];
$('add-issuers').replaceChildren(...KNOWN_ISSUERS.map(([value, text]) => el('option', { value, text })));

/** Whether the Add Token dialog makes a federated token ("CI identity (OIDC)"). */
const addFederated = () => $('add-credential-oidc').checked;

function credentialMode() {
  $('add-oidc').hidden = !addFederated();
}
$('add-credential-password').addEventListener('change', credentialMode);
$('add-credential-oidc').addEventListener('change', credentialMode);

/** Checks the "Claim conditions" box as it is typed; returns the claims or null (error shown). */
function checkClaims() {
  const box = $('add-claims');
  const { claims, error } = claimsOf(box.value);
  $('add-claims-error').textContent = error ? `Claim conditions: ${error}.` : '';
  box.setAttribute('aria-invalid', error ? 'true' : 'false');
  return error ? null : claims;
}
$('add-claims').addEventListener('input', checkClaims);

/** The federation the dialog describes, or null with the first problem shown and focused. */
function readFederation() {
  const problems = [
    ['issuer', (v) => (v === '' ? 'Issuer: enter the issuer URL of the CI system.' : '')],
    ['audience', (v) => (audiencesOf(v).length === 0 ? 'Audience: enter at least one audience.' : '')],
  ];
  for (const [f, rule] of problems) {
    const input = $(`add-${f}`);
    const message = rule(input.value.trim());
    $(`add-${f}-error`).textContent = message;
    input.setAttribute('aria-invalid', message ? 'true' : 'false');
    if (message) {
      input.focus();
      return null;
    }
  }
  const claims = checkClaims();
  if (!claims) {
    $('add-claims').focus();
    return null;
  }
  return {
    issuer: $('add-issuer').value.trim(),
    audiences: audiencesOf($('add-audience').value),
    claims,
  };
}

$('add-token').addEventListener('click', (e) => {
  $('add-form').reset();
  resetScope('add');
  $('add-error').textContent = '';
  $('add-name-error').textContent = '';
  $('add-expiry-error').textContent = '';
  $('add-name').removeAttribute('aria-invalid');
  $('add-expiry').value = '';
  for (const f of ['networks', 'owner', 'description', 'issuer', 'audience', 'claims']) {
    $(`add-${f}-error`).textContent = '';
    $(`add-${f}`).removeAttribute('aria-invalid');
  }
  credentialMode();
  addStatus();
  addExpiry();
  openDialog($('add-dialog'), e.currentTarget);
});

$('add-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('add-error').textContent = '';
  if (checkName()) {
    $('add-name').focus();
    return;
  }
  const expiry = readExpiry('add');
  if (expiry.error) {
    $('add-expiry').focus();
    return;
  }
  const federation = addFederated() ? readFederation() : null;
  if (addFederated() && !federation) return;
  const name = $('add-name').value;
  const body = {
    properties: {
      name,
      status: $('add-status').checked ? 'enabled' : 'disabled',
      expiryDate: expiry.value,
      scopes: [readScope('add')],
    },
  };
  const networks = networksOf($('add-networks').value);
  if (networks.length > 0) body.properties.allowedNetworks = networks;
  const owner = $('add-owner').value.trim();
  if (owner !== '') body.properties.owner = owner;
  const description = $('add-description').value.trim();
  if (description !== '') body.properties.description = description;
  if (federation) body.properties.federation = federation;
  const registry = view.registry;
  try {
    const created = await api('POST', tokensPath(registry), body);
    $('add-dialog').close();
    say(`Token ${name} created.`);
    if (created.properties.federation) showFederated(name, $('add-token'));
    else showResult('Token created', name, created.properties.credentials.password, $('add-token'));
    reload();
  } catch (err) {
    showApiError(err, $('add-error'), {
      Name: $('add-name'), 'Expiry Date': $('add-expiry'), Type: $('add-type'),
      Path: $('add-path'), Actions: $('add-pull'), Status: $('add-status'),
      'Allowed networks': $('add-networks'), Owner: $('add-owner'),
      Description: $('add-description'), Issuer: $('add-issuer'), Audience: $('add-audience'),
      'Claim conditions': $('add-claims'),
    });
  }
});

// ---------- the result panel ----------

/**
 * Shows a password once. It lives only in the panel's text while the panel is open: closing
 * the panel empties it, and no variable outside this call keeps it.
 */
/** `disabled` is the token's name when the token is disabled: the command cannot log in yet. */
function showResult(title, username, password, opener, disabled = null) {
  passwordMode(true);
  $('result-title').textContent = title;
  $('result-disabled').hidden = !disabled;
  $('result-disabled').textContent = disabled
    ? `${disabled} is disabled: this docker login command fails until you enable the token (Edit, Status).`
    : '';
  $('result-password').textContent = password;
  showCommand(dockerLogin(registryHost(), username, password));
  $('copy-status').textContent = '';
  openDialog($('result-dialog'), opener);
  $('copy-password').focus();
}

/**
 * The login command in the result panel: one nowrap span per word, so it wraps at its spaces
 * only, never at a hyphen in a name or host (its text, and so what is copied, is unchanged).
 */
function showCommand(command) {
  $('result-command').replaceChildren(...command.split(' ').flatMap((w, i) => [
    ...(i ? [document.createTextNode(' ')] : []), el('span', { class: 'word', text: w }),
  ]));
}

/** The result panel with a password (a created or rotated token) or without (federated). */
function passwordMode(withPassword) {
  $('result-warning').hidden = !withPassword;
  $('result-password-field').hidden = !withPassword;
  $('result-federated').hidden = withPassword;
  $('result-dialog').setAttribute('aria-describedby', withPassword ? 'result-warning' : 'result-federated');
}

/** The result panel of a federated token: no password, the login command with an ID token. */
function showFederated(username, opener) {
  passwordMode(false);
  $('result-title').textContent = 'Token created';
  $('result-disabled').hidden = true;
  $('result-disabled').textContent = '';
  $('result-password').textContent = '';
  showCommand(federatedLogin(registryHost(), username));
  $('copy-status').textContent = '';
  openDialog($('result-dialog'), opener);
  $('copy-command').focus();
}

$('result-dialog').addEventListener('close', () => {
  $('result-password').textContent = '';
  $('result-command').textContent = '';
  $('copy-status').textContent = '';
});

async function copyFrom(id, what) {
  const text = $(id).textContent;
  try {
    await navigator.clipboard.writeText(text);
    $('copy-status').textContent = `${what} copied to the clipboard.`;
  } catch {
    // No clipboard permission: select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents($(id));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    $('copy-status').textContent = `${what} selected: press Ctrl+C to copy it.`;
  }
}

$('copy-password').addEventListener('click', () => copyFrom('result-password', 'Password'));
$('copy-command').addEventListener('click', () => copyFrom('result-command', 'Command'));

// ---------- Edit ----------

const editStatus = statusToggle('edit');
const editExpiry = expiryMode('edit');
let editing = null;

function openEdit(token, opener) {
  editing = token;
  const p = token.properties;
  $('edit-title').textContent = `Edit ${p.name}`;
  $('edit-error').textContent = '';
  $('edit-expiry-error').textContent = '';
  $('edit-status').checked = p.status === 'enabled';
  $('edit-no-expiry').checked = !p.expiryDate;
  $('edit-expire-on').checked = Boolean(p.expiryDate);
  $('edit-expiry').value = p.expiryDate ? toLocalInput(new Date(p.expiryDate)) : '';
  $('edit-networks').value = (p.allowedNetworks || []).join('\n');
  $('edit-owner').value = p.owner || '';
  $('edit-description').value = p.description || '';
  for (const f of ['networks', 'owner', 'description']) {
    $(`edit-${f}-error`).textContent = '';
    $(`edit-${f}`).removeAttribute('aria-invalid');
  }
  editStatus();
  editExpiry();
  openDialog($('edit-dialog'), opener);
}

$('edit-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = editing;
  const p = token.properties;
  $('edit-error').textContent = '';
  const change = { status: $('edit-status').checked ? 'enabled' : 'disabled' };
  const keepsExpiry = $('edit-expire-on').checked && p.expiryDate &&
    $('edit-expiry').value === toLocalInput(new Date(p.expiryDate));
  if (!keepsExpiry) {
    const expiry = readExpiry('edit');
    if (expiry.error) {
      $('edit-expiry').focus();
      return;
    }
    change.expiryDate = expiry.value;
  }
  // Only what changed is sent, so the audit line says what the edit did.
  const networks = networksOf($('edit-networks').value);
  if (networks.join('\n') !== (p.allowedNetworks || []).join('\n')) {
    change.allowedNetworks = networks;
  }
  const owner = $('edit-owner').value.trim();
  if (owner !== (p.owner || '')) change.owner = owner === '' ? null : owner;
  const description = $('edit-description').value.trim();
  if (description !== (p.description || '')) {
    change.description = description === '' ? null : description;
  }
  try {
    await api('PATCH', tokenPath(view.registry, token.id), change);
    $('edit-dialog').close();
    say(`Token ${p.name} saved: ${statusText(change.status)}.`);
    reload();
  } catch (err) {
    showApiError(err, $('edit-error'), {
      'Expiry Date': $('edit-expiry'), Status: $('edit-status'),
      'Allowed networks': $('edit-networks'), Owner: $('edit-owner'),
      Description: $('edit-description'),
    });
  }
});

// ---------- Manage Scope ----------

let scoped = null;
coupleActions('scope');

function renderScopes() {
  const scopes = scoped.properties.scopes;
  const items = scopes.map((s, i) => {
    const text = scopeText(s);
    const remove = el('button', { type: 'button', class: 'small', 'aria-label': `Remove ${text}`, text: 'Remove' });
    remove.addEventListener('click', () =>
      changeScopes(scopes.filter((_, j) => j !== i), `Scope ${text} removed.`));
    return el('li', {}, el('span', { text }), remove);
  });
  $('scope-list').replaceChildren(...items);
  $('scope-empty').hidden = scopes.length > 0;
  $('remove-all-scopes').disabled = scopes.length === 0;
}

async function changeScopes(scopes, done) {
  $('scope-error').textContent = '';
  try {
    scoped = await api('PATCH', tokenPath(view.registry, scoped.id), { scopes });
    renderScopes();
    $('scope-notice').textContent = done;
    reload();
    return true;
  } catch (err) {
    showApiError(err, $('scope-error'), { Type: $('scope-type'), Path: $('scope-path'), Actions: $('scope-pull') });
    return false;
  }
}

async function openScopes(token, opener) {
  try {
    scoped = await api('GET', tokenPath(view.registry, token.id));
  } catch (err) {
    fail(err);
    return;
  }
  $('scope-title').textContent = `Manage Scope: ${scoped.properties.name}`;
  $('scope-error').textContent = '';
  $('scope-notice').textContent = '';
  resetScope('scope');
  renderScopes();
  openDialog($('scope-dialog'), opener);
}

$('remove-all-scopes').addEventListener('click', async () => {
  if (await changeScopes([], 'All scopes removed.')) $('scope-path').focus();
});

$('scope-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const scope = readScope('scope');
  if (await changeScopes([...scoped.properties.scopes, scope], `Scope ${scopeText(scope)} added.`)) {
    resetScope('scope');
  }
});

// ---------- Rotate password ----------

let rotating = null;

function openRotate(token, opener) {
  rotating = token;
  $('rotate-error').textContent = '';
  $('rotate-grace').value = '0';
  const name = token.properties.name;
  $('rotate-text').textContent = token.properties.status === 'disabled'
    ? `Give ${name} a new password. Its name, scopes and status stay: ${name} is disabled, so the new password works only once you enable it.`
    : `Give ${name} a new password. Its name, scopes and status stay.`;
  openDialog($('rotate-dialog'), opener);
}

$('rotate-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = rotating;
  const grace = Number($('rotate-grace').value);
  const body = grace > 0 ? { gracePeriodSeconds: grace } : {};
  try {
    const out = await api('POST', `${tokenPath(view.registry, token.id)}/credentials`, body);
    $('rotate-dialog').close();
    say(`Password of ${token.properties.name} rotated.`);
    const opener = document.getElementById(`menu-${token.id}`);
    const disabled = out.properties.status === 'disabled' ? token.properties.name : null;
    showResult('Password rotated', token.properties.name, out.properties.credentials.password, opener, disabled);
    reload();
  } catch (err) {
    showApiError(err, $('rotate-error'), {});
  }
});

// ---------- Activity ----------

/** The token's newest events (pushes, pulls, deletes its registry reported), as text. */
async function openActivity(token, opener) {
  const name = token.properties.name;
  $('activity-title').textContent = `Activity: ${name}`;
  $('activity-text').textContent = `Loading what ${name} did…`;
  $('activity-error').textContent = '';
  $('activity-rows').replaceChildren();
  openDialog($('activity-dialog'), opener);
  try {
    const page = await api('GET', `${tokenPath(view.registry, token.id)}/activity?limit=100`);
    const rows = page.items.map((e) => el('tr', {},
      el('td', {}, el('time', { datetime: e.time, text: formatStamp(new Date(e.time)) })),
      el('td', { text: e.action }),
      el('td', { text: e.repository }),
      el('td', { text: e.tag || '—' }),
      el('td', { class: 'digest', text: e.digest || '—', title: e.digest || '' }),
      el('td', { text: e.clientAddr || '—' })));
    $('activity-rows').replaceChildren(...rows);
    $('activity-text').textContent = page.total === 0
      ? `No events of ${name} yet: its registry reports pushes, pulls and deletes once its notifications block is set (regauth registry-config).`
      : `The newest ${page.items.length} of ${page.totalIsLowerBound ? 'at least ' : ''}${page.total} events of ${name}.`;
  } catch (err) {
    $('activity-text').textContent = '';
    $('activity-error').textContent = err.message;
  }
}

// ---------- Delete ----------

let deleting = null;

function openDelete(token, opener) {
  deleting = token;
  const name = token.properties.name;
  $('delete-title').textContent = `Delete ${name}?`;
  $('delete-text').textContent = `Deleting ${name} is irreversible: its password stops working at ` +
    'once, and the token cannot be restored.';
  $('delete-error').textContent = '';
  openDialog($('delete-dialog'), opener);
}

$('confirm-delete').addEventListener('click', async () => {
  const token = deleting;
  try {
    await api('DELETE', tokenPath(view.registry, token.id));
    returnFocusTo($('delete-dialog'), $('add-token'));
    $('delete-dialog').close();
    say(`Token ${token.properties.name} deleted.`);
    reload();
  } catch (err) {
    showApiError(err, $('delete-error'), {});
  }
});

// ---------- start ----------

initDialogs();
if (session.get()) {
  showTokens().catch((e) => {
    if (e instanceof Unauthorized) showSignIn(e.message);
    else showSignIn(e.message);
  });
} else {
  showSignIn('');
}
