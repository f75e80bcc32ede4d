// The public API through the gateway (same origin, /api/...), with the in-memory access token.
// Errors come back as ApiError carrying the problem+json the API sent.

import { ApiError } from './errors.js';
import * as session from './session.js';

function queryString(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value === null || value === undefined || value === '' || value === false) continue;
    params.set(key, String(value));
  }
  const qs = params.toString();
  return qs ? `?${qs}` : '';
}

// Idempotency-Key (decision 0045): one key per user action, the same key when the same
// submission is sent again (a retry after a network error, a 5xx, a 409 while the first is
// still running, or a second click), so the server does it once and answers the first answer
// again. A submission is its method, URL and body; once it got a definitive answer its key is
// forgotten, and the next identical submission is a new action.
const KEY_TTL_MS = 60 * 60 * 1000;
const pendingKeys = new Map(); // submission -> { key, at }

function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // not a secure context (plain http)
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function idempotencyKey(submission) {
  const now = Date.now();
  for (const [s, entry] of pendingKeys) if (now - entry.at > KEY_TTL_MS) pendingKeys.delete(s);
  let entry = pendingKeys.get(submission);
  if (!entry) {
    entry = { key: newKey(), at: now };
    pendingKeys.set(submission, entry);
  }
  return entry.key;
}

function settled(submission, status) {
  // Worth the same key again: no answer (network), a server error, still running (409), or
  // rate limited (429). Anything else is the action's answer.
  if (status !== null && status < 500 && status !== 409 && status !== 429) {
    pendingKeys.delete(submission);
  }
}

async function send(method, url, body, key) {
  await session.ensureFresh();
  const headers = { Accept: 'application/json' };
  const bearer = session.token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (key) headers['Idempotency-Key'] = key;
  try {
    return await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (err) {
    throw ApiError.network(err);
  }
}

export async function api(method, path, { body, query } = {}) {
  const url = path + queryString(query);
  const submission = method === 'POST' ? `${url}\n${JSON.stringify(body ?? null)}` : null;
  const key = submission ? idempotencyKey(submission) : null;
  let resp;
  try {
    resp = await send(method, url, body, key);
    if (resp.status === 401 && session.signedIn()) {
      // Expired or revoked: renew once from the cookie and try again (a 401 was refused before
      // anything happened, so repeating the request is safe).
      try {
        await session.refresh();
      } catch {
        throw await ApiError.from(resp);
      }
      resp = await send(method, url, body, key);
    }
  } finally {
    if (submission) settled(submission, resp ? resp.status : null);
  }
  if (!resp.ok) throw await ApiError.from(resp);
  if (resp.status === 204) return null;
  const type = resp.headers.get('Content-Type') || '';
  return type.includes('json') ? resp.json() : resp.text();
}

export const get = (path, query) => api('GET', path, { query });
export const post = (path, body) => api('POST', path, { body });
export const put = (path, body) => api('PUT', path, { body });
export const del = (path) => api('DELETE', path);

/** Every item of a keyset-paged list, up to `max` items. */
export async function all(path, query = {}, max = 500) {
  const items = [];
  let cursor = null;
  do {
    const page = await get(path, { ...query, limit: 100, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
