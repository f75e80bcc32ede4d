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

async function send(method, url, body) {
  await session.ensureFresh();
  const headers = { Accept: 'application/json' };
  const bearer = session.token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
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
  let resp = await send(method, url, body);
  if (resp.status === 401 && session.signedIn()) {
    // Expired or revoked: renew once from the cookie and try again (a 401 was refused before
    // anything happened, so repeating the request is safe).
    try {
      await session.refresh();
    } catch {
      throw await ApiError.from(resp);
    }
    resp = await send(method, url, body);
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
