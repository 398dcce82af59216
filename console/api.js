// The admin API client of the console: every request goes to /api/v1 with the admin token
// from sessionStorage only (not local storage, not a cookie, not the URL).

const KEY = 'regauth.adminToken';

/** The admin token of this tab. */
export const session = {
  get: () => sessionStorage.getItem(KEY),
  set: (token) => sessionStorage.setItem(KEY, token),
  clear: () => sessionStorage.removeItem(KEY),
};

/** The API answered 401: the admin token is missing, wrong or no longer valid. */
export class Unauthorized extends Error {}

/** Any other failure, with the API's message (IONOS shape `{httpStatus, messages}`). */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Calls the admin API; returns the parsed JSON (null for 204). */
export async function api(method, path, body) {
  const token = session.get();
  if (!token) throw new Unauthorized('Sign in with the admin token.');
  const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    throw new ApiError(0, `regauth could not be reached (${e.message}).`);
  }
  if (resp.status === 401) {
    throw new Unauthorized('The admin token was not accepted (401 Unauthorized). Sign in again.');
  }
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const message = data?.messages?.[0]?.message ?? `HTTP ${resp.status}`;
    throw new ApiError(resp.status, message);
  }
  return data;
}

/** Path of a registry's token collection. */
export const tokensPath = (registry) => `/registries/${encodeURIComponent(registry)}/tokens`;

/** Path of one token. */
export const tokenPath = (registry, id) => `${tokensPath(registry)}/${encodeURIComponent(id)}`;
