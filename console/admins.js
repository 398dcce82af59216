// Who is signed in, and the Admins tab. The signed-in admin's role (GET /api/v1/admins/me)
// is set on <body data-role>, so admins.css hides write controls from a viewer; the Admins
// tab (owners only) lists, creates, rotates and deletes named admins through /api/v1/admins.
// Data from the API is rendered with textContent only.
import { api, ApiError, Unauthorized } from './api.js';

const $ = (id) => document.getElementById(id);

/** The signed-in admin ({name, role, registries}), or null. */
export const me = { current: null };

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

/** Asks who is signed in and shows only what that role may do. */
export async function applyRole() {
  const who = await api('GET', '/admins/me');
  me.current = who;
  document.body.dataset.role = who.role;
  $('signed-in-as').textContent = `${who.name} (${who.role})`;
  $('signed-in-as').hidden = false;
  $('admins-tab').hidden = who.role !== 'owner';
  $('add-token').hidden = who.role === 'viewer';
}

/** Forgets who was signed in (sign-out, 401). */
export function resetRole() {
  me.current = null;
  delete document.body.dataset.role;
  $('signed-in-as').hidden = true;
  $('admins-tab').hidden = true;
  $('admins-view').hidden = true;
}

function select(tab) {
  for (const a of document.querySelectorAll('.topbar nav a')) {
    if (a.getAttribute('href') === `#${tab}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function showError(e) {
  if (e instanceof Unauthorized) {
    location.hash = '#tokens';
    return;
  }
  $('admins-error').textContent = e instanceof ApiError ? e.message : String(e);
}

async function showAdmins() {
  if (!me.current || me.current.role !== 'owner') return;
  $('tokens-view').hidden = true;
  $('admins-view').hidden = false;
  select('admins');
  await loadAdmins();
}

async function loadAdmins() {
  $('admins-error').textContent = '';
  try {
    // Every page of the list (a collection like the token list), until its total.
    const items = [];
    for (let total = 1; items.length < total;) {
      const page = await api('GET', `/admins?offset=${items.length}&limit=1000`);
      if (page.items.length === 0) break;
      items.push(...page.items);
      total = page.total;
    }
    const rows = items.map((a) => {
      const rotate = el('button', { type: 'button', text: 'Rotate secret' });
      rotate.addEventListener('click', () => change('POST', a.name, 'credentials'));
      const del = el('button', { type: 'button', class: 'danger', text: 'Delete' });
      del.addEventListener('click', () => {
        if (window.confirm(`Delete admin ${a.name}? Its secret stops working at once.`)) {
          change('DELETE', a.name, '');
        }
      });
      return el('tr', {},
        el('td', { class: 'name', text: a.name }),
        el('td', { text: a.role }),
        el('td', { text: a.registries.length ? a.registries.join(', ') : 'all' }),
        el('td', { text: a.createdBy || '' }),
        el('td', {}, rotate, del));
    });
    $('admin-rows').replaceChildren(...rows);
    $('admins-empty').hidden = rows.length > 0;
  } catch (e) {
    showError(e);
  }
}

function showSecret(a) {
  $('admin-secret-name').textContent = a.name;
  $('admin-secret').textContent = a.secret;
  $('admin-secret-box').hidden = false;
}

async function change(method, name, tail) {
  $('admin-secret-box').hidden = true;
  try {
    const path = `/admins/${encodeURIComponent(name)}${tail ? `/${tail}` : ''}`;
    const a = await api(method, path);
    if (a && a.secret) showSecret(a);
    await loadAdmins();
  } catch (e) {
    showError(e);
  }
}

$('admin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('admin-secret-box').hidden = true;
  const registries = $('admin-registries').value.split(',').map((s) => s.trim()).filter(Boolean);
  try {
    const a = await api('POST', '/admins', {
      name: $('admin-name').value.trim(), role: $('admin-role').value, registries,
    });
    $('admin-name').value = '';
    $('admin-registries').value = '';
    showSecret(a);
    await loadAdmins();
  } catch (err) {
    showError(err);
  }
});

window.addEventListener('hashchange', () => {
  if (location.hash === '#admins') {
    showAdmins().catch(showError);
  } else if (me.current) {
    $('admins-view').hidden = true;
    $('tokens-view').hidden = false;
    select('tokens');
  }
});
