// The browser session. The refresh token lives only in an HttpOnly cookie scoped to /session
// (JavaScript never sees it); the access token lives only in this module's memory, never in
// localStorage or sessionStorage. It is renewed from the cookie on page load and before it
// expires. Refreshes are serialized: one in flight per tab, and one at a time across tabs
// (Web Locks), because auth rotates the refresh token on each use and treats a second use of
// the same token as theft (the whole session is revoked). See docs/decisions/0012.

import { ApiError } from './errors.js';

const CSRF_HEADER = 'X-Switchyard-CSRF';
const LOCK = 'switchyard-session';
const RENEW_MARGIN_S = 60;

let current = null; // { token, expiresAt (ms), claims }
let inflight = null;
let timer = null;
const listeners = new Set();
const channel = 'BroadcastChannel' in window ? new BroadcastChannel(LOCK) : null;

export function token() {
  return current ? current.token : null;
}

export function claims() {
  return current ? current.claims : null;
}

/** Whether the token names one of `roles` (admin always passes). Only to hide what the API
 * would refuse: the API decides. */
export function hasRole(...roles) {
  const mine = (current && current.claims.roles) || [];
  return mine.includes('admin') || roles.some((r) => mine.includes(r));
}

export function signedIn() {
  return current !== null;
}

/** fn(event) on 'ended' (refresh refused), 'signed-out' (here or in another tab) and
 * 'signed-in-elsewhere'. */
export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(event) {
  for (const fn of listeners) fn(event);
}

function exclusive(fn) {
  return navigator.locks ? navigator.locks.request(LOCK, fn) : fn();
}

async function post(path, { json, bearer } = {}) {
  const headers = { [CSRF_HEADER]: '1', Accept: 'application/json' };
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  let resp;
  try {
    resp = await fetch(path, {
      method: 'POST',
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (err) {
    throw ApiError.network(err);
  }
  if (!resp.ok) throw await ApiError.from(resp);
  return resp.status === 204 ? null : resp.json();
}

function decode(jwt) {
  try {
    const part = jwt.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    const padded = part + '='.repeat((4 - (part.length % 4)) % 4);
    return JSON.parse(atob(padded));
  } catch {
    return {};
  }
}

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    refresh().catch(() => {});
  }, ms);
}

function accept(data) {
  const lifetime = Number(data.expires_in) || 900;
  current = { token: data.access_token, expiresAt: Date.now() + lifetime * 1000,
    claims: decode(data.access_token) };
  // Renew a minute before expiry (at 80% of a short lifetime), never sooner than in 5 s.
  schedule(Math.max(5000, Math.min(lifetime * 800, (lifetime - RENEW_MARGIN_S) * 1000)));
}

function end(event, broadcast) {
  clearTimeout(timer);
  current = null;
  if (broadcast && channel) channel.postMessage(event);
  emit(event);
}

/** Renew the access token from the cookie (the one refresh in flight is shared). */
export function refresh() {
  if (!inflight) {
    inflight = exclusive(() => post('/session/refresh'))
      .then((data) => {
        accept(data);
        return current;
      }, (err) => {
        if (err.status === 401) {
          if (current) end('ended', false);
        } else if (current) {
          schedule(15000); // the server is unwell: try again while the token still lasts
        }
        throw err;
      })
      .finally(() => {
        inflight = null;
      });
  }
  return inflight;
}

/** On page load: true when the cookie still holds a session. */
export async function restore() {
  try {
    await refresh();
    return true;
  } catch (err) {
    if (err.status === 401) return false;
    throw err;
  }
}

/** Before a request: renew first when the token is (nearly) expired, e.g. after a sleep. */
export async function ensureFresh() {
  if (inflight) {
    await inflight.catch(() => {});
    return;
  }
  if (current && current.expiresAt - Date.now() < 30000) {
    await refresh().catch(() => {});
  }
}

export async function login(email, password) {
  const data = await exclusive(() => post('/session/login', { json: { email, password } }));
  accept(data);
  if (channel) channel.postMessage('signed-in-elsewhere');
}

export async function logout() {
  const bearer = token();
  try {
    await exclusive(() => post('/session/logout', { bearer }));
  } finally {
    end('signed-out', true);
  }
}

if (channel) {
  channel.addEventListener('message', (msg) => {
    if (msg.data === 'signed-out' && current) end('signed-out', false);
    else if (msg.data === 'signed-in-elsewhere' && !current) emit('signed-in-elsewhere');
  });
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') ensureFresh();
});
