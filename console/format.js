// Pure helpers of the console: the API's validation rules and words, and how values are
// shown (dates, relative times, scopes). No DOM, no network.

/** The token name rules of the API (src/domain/name.rs), in its words; null when valid. */
export function nameRule(name) {
  const len = [...name].length;
  if (len < 3 || len > 63) return `must be 3 to 63 characters, got ${len}`;
  if (!/^[a-z0-9-]*$/.test(name)) return "may contain only lowercase letters a-z, digits and '-'";
  if (!/^[a-z]/.test(name)) return 'must begin with a letter a-z';
  if (name.endsWith('-')) return 'must end with a letter or digit';
  return null;
}

/** The API's minimum lifetime of an expiry set by a create or an edit. */
export const MIN_LIFETIME_MS = 60 * 60 * 1000;
export const EXPIRY_RULE = 'must be at least one hour in the future';

/** Days left below which the table warns that a token expires soon. */
export const WARN_DAYS = 7;

const pad = (n) => String(n).padStart(2, '0');

/** `2026-12-05 10:00` in local time. */
export function formatDate(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** `2026-12-05 10:00 UTC`: local time with its zone's short name, for display. */
export function formatStamp(date) {
  const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' })
    .formatToParts(date).find((p) => p.type === 'timeZoneName');
  return zone ? `${formatDate(date)} ${zone.value}` : formatDate(date);
}

/** The value of a `datetime-local` input for a date (local time, minutes). */
export function toLocalInput(date) {
  return formatDate(date).replace(' ', 'T');
}

/** An RFC 3339 UTC timestamp (seconds) from a `datetime-local` value, or null. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return null;
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** "in 3 days", "in 5 hours", "2 minutes ago", "just now". */
export function relative(date, now = new Date()) {
  const diff = date.getTime() - now.getTime();
  const abs = Math.abs(diff);
  const units = [
    ['year', 365 * 86400e3], ['month', 30 * 86400e3], ['day', 86400e3],
    ['hour', 3600e3], ['minute', 60e3],
  ];
  for (const [unit, ms] of units) {
    if (abs >= ms) {
      const n = Math.round(abs / ms);
      const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
      return diff >= 0 ? `in ${text}` : `${text} ago`;
    }
  }
  return diff >= 0 ? 'in less than a minute' : 'just now';
}

const ACTION_WORDS = { pull: 'Pull', push: 'Push', delete: 'Admin' };
const ACTION_ORDER = ['pull', 'push', 'delete'];

/** `team/*: Pull, Push`; a registry scope reads `Registry catalog: Pull`. */
export function scopeText(scope) {
  const actions = ACTION_ORDER.filter((a) => scope.actions.includes(a))
    .map((a) => ACTION_WORDS[a]).join(', ');
  const target = scope.type === 'registry' ? `Registry ${scope.name}` : scope.name;
  return `${target}: ${actions}`;
}

/** The status as a word: "Enabled", "Disabled", or the API's word capitalised. */
export function statusText(status) {
  const s = String(status || '');
  return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
}

const FIELD_LABELS = [
  [/(^|\.)federation\.issuer$/, 'Issuer'],
  [/(^|\.)federation\.audiences(\[\d+\])?$/, 'Audience'],
  [/(^|\.)federation(\.claims.*)?$/, 'Claim conditions'],
  [/scopes\[\d+\]\.type$/, 'Type'],
  [/scopes\[\d+\]\.name$/, 'Path'],
  [/scopes\[\d+\]\.actions$/, 'Actions'],
  [/scopes(\[\d+\])?$/, 'Scope'],
  [/(^|\.)name$/, 'Name'],
  [/(^|\.)status$/, 'Status'],
  [/(^|\.)expiryDate$/, 'Expiry Date'],
  [/(^|\.)allowedNetworks(\[\d+\])?$/, 'Allowed networks'],
  [/(^|\.)owner$/, 'Owner'],
  [/(^|\.)description$/, 'Description'],
];

/** The networks typed into an "Allowed networks" box: one per line (or separated by commas
 * or spaces), empty entries dropped. */
export function networksOf(text) {
  return String(text || '').split(/[\s,]+/).filter((n) => n !== '');
}

/** The audiences typed into the "Audience" box: separated by spaces, commas or lines. */
export function audiencesOf(text) {
  return networksOf(text);
}

/**
 * The "Claim conditions" box: one `claim=pattern` per line (blank lines skipped; spaces
 * around the name and the pattern ignored). Returns `{ claims }` (an object, claim name to
 * pattern) or `{ error }` naming the line and what is wrong with it.
 */
export function claimsOf(text) {
  const claims = {};
  const lines = String(text || '').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const at = `line ${i + 1}`;
    const eq = line.indexOf('=');
    if (eq < 0) return { error: `${at}: "${line}" is not claim=pattern` };
    const claim = line.slice(0, eq).trim();
    const pattern = line.slice(eq + 1).trim();
    if (claim === '') return { error: `${at}: the claim name before '=' is missing` };
    if (/\s/.test(claim)) return { error: `${at}: the claim name "${claim}" contains a space` };
    if (pattern === '') return { error: `${at}: the pattern after "${claim}=" is missing` };
    if (Object.hasOwn(claims, claim)) return { error: `${at}: the claim "${claim}" is given twice` };
    claims[claim] = pattern;
  }
  return { claims };
}

/** The `docker login` command of a federated token: the job's ID token is the password. */
export function federatedLogin(hostname, username) {
  return `echo "$ID_TOKEN" | docker login ${shellQuote(hostname)} ` +
    `--username ${shellQuote(username)} --password-stdin`;
}

/**
 * Splits an API message `properties.scopes[0].name: rule` into the form's label (`Path`),
 * the field path and the rule. Messages without a field come back with `label: null`.
 */
export function fieldOf(message) {
  const m = /^([A-Za-z][A-Za-z0-9_.[\]]*): (.*)$/s.exec(message || '');
  if (!m) return { label: null, field: null, rule: message };
  const found = FIELD_LABELS.find(([re]) => re.test(m[1]));
  return { label: found ? found[1] : m[1], field: m[1], rule: m[2] };
}

/** A single-quoted shell word. */
export function shellQuote(s) {
  return `'${String(s).replaceAll("'", "'\\''")}'`;
}

/** The complete `docker login` command for a registry host, a user and a password. */
export function dockerLogin(hostname, username, password) {
  return `echo ${shellQuote(password)} | docker login ${shellQuote(hostname)} ` +
    `--username ${shellQuote(username)} --password-stdin`;
}
