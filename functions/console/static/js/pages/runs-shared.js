// What the automation pages share: run/step status badges, durations, names for job and target
// ids (fetched once and kept for half a minute) and the role checks that decide which buttons
// are offered (the API decides; docs/decisions/0024).

import { all } from '../api.js';
import * as lookups from '../lookups.js';
import { h, label } from '../dom.js';
import * as session from '../session.js';

const TTL_MS = 30000;
const cached = (key, load) => lookups.cached(key, load, TTL_MS);

export { forget } from '../lookups.js';

export const jobs = () => cached('jobs', () => all('/api/jobs'));
export const targets = () => cached('targets', () => all('/api/targets'));
/** Credentials' metadata (managers and admins; others get an empty list). */
export const credentials = () => cached('credentials', () => (session.hasRole('manager')
  ? all('/api/credentials') : Promise.resolve([])));

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out'];
export const FINISHED = new Set(['succeeded', 'failed', 'cancelled', 'timed_out']);

const CLASS = {
  queued: 'text-bg-secondary',
  pending: 'text-bg-light border',
  running: 'text-bg-primary',
  succeeded: 'text-bg-success',
  failed: 'text-bg-danger',
  unreachable: 'text-bg-danger',
  cancelled: 'text-bg-warning',
  timed_out: 'text-bg-warning',
  skipped: 'text-bg-light border',
  enabled: 'text-bg-success',
  paused: 'text-bg-secondary',
};

export function statusBadge(value, extra = '') {
  return h('span', { class: `badge ${CLASS[value] || 'text-bg-light border'} ${extra}`,
    dataset: { value } }, label(value));
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  return m < 90 ? `${m} min ${s} s` : `${(seconds / 3600).toFixed(1)} h`;
}

/** How long a run, target or step took; while it runs, how long it has been running. */
export function took(item) {
  if (item.duration_s !== null && item.duration_s !== undefined) return fmtDuration(item.duration_s);
  if (item.started_at && !item.finished_at) {
    return `${fmtDuration(Math.max(0, (Date.now() - new Date(item.started_at).getTime()) / 1000))} so far`;
  }
  return '—';
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

/** Who started a run: a user (by name when the users list is readable) or a schedule. */
export function requester(value, usersById) {
  if (String(value).startsWith('schedule:')) {
    const id = String(value).slice('schedule:'.length);
    return h('a', { href: `#/schedules/${encodeURIComponent(id)}` }, `Schedule ${shortId(id)}`);
  }
  const u = usersById && usersById.get(value);
  return u ? (u.name || u.email) : `${shortId(value)}…`;
}

export const canManageTargets = () => session.hasRole('admin');
export const canTest = () => session.hasRole('operator', 'manager');
export const canEditJobs = () => session.hasRole('manager');
export const canRun = () => session.hasRole('operator', 'manager');
export const canEditSchedules = () => session.hasRole('manager');

/** The signed-in user's id (token subject). */
export function me() {
  return (session.claims() || {}).sub;
}

/** Operators cancel their own runs; managers (and admins) any. */
export function canCancel(run) {
  return session.hasRole('manager') || (session.hasRole('operator') && run.requested_by === me());
}

export function breadcrumb(parent, href, current) {
  return h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
    h('li', { class: 'breadcrumb-item' }, h('a', { href }, parent)),
    h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, current)));
}

/** "a, b, c" of tags as small badges. */
export function tagList(tags) {
  if (!tags || !tags.length) return h('span', { class: 'text-secondary' }, 'none');
  return h('span', { class: 'd-inline-flex flex-wrap gap-1' },
    tags.map((t) => h('span', { class: 'badge rounded-pill text-bg-light border' }, t)));
}

/** Comma or space separated tags typed by a person, as the API wants them. */
export function parseTags(text) {
  return String(text || '').split(/[\s,]+/).map((t) => t.trim().toLowerCase()).filter(Boolean);
}
