// Names for ids (assets, parts, users) shown in lists, fetched once and kept for a minute.

import { all } from './api.js';

const TTL_MS = 60000;
const cache = new Map();

/** `load()`'s promise under `key`, kept for `ttl` ms (a failure is not kept). */
export function cached(key, load, ttl = TTL_MS) {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.at < ttl) return hit.promise;
  const promise = load().catch((err) => {
    cache.delete(key);
    throw err;
  });
  cache.set(key, { at: Date.now(), promise });
  return promise;
}

export function forget(key) {
  if (key) cache.delete(key);
  else cache.clear();
}

export const assets = () => cached('assets', () => all('/api/assets'));
export const parts = () => cached('parts', () => all('/api/parts'));
export const users = () => cached('users', () => all('/api/users', { active: true })
  .catch(() => []));

export async function byId(list) {
  return new Map((await list).map((x) => [x.id, x]));
}

export function assetText(asset) {
  return asset ? `${asset.tag} · ${asset.name}` : '—';
}

export function userText(user, id) {
  if (user) return user.name || user.email;
  return id ? `${String(id).slice(0, 8)}…` : 'Unassigned';
}
