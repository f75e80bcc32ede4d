// Source: GitHub webhook deliveries as source-webhook received them - the filtered list (event,
// delivery id, status, signature, received), one delivery with what the ingest made of it, and
// the delivery statistics. Only verified deliveries are ever stored (a bad or missing signature
// is refused with 401 and leaves no row), so every stored one carries a valid signature.

import { get } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import { navigate } from '../router.js';
import {
  card, facts, filterField, input, pageHeader, pagedTable, problemAlert, select, spinner,
  submit, table,
} from '../ui.js';
import { repoPath } from './repositories.js';

export const STATUSES = ['received', 'processed', 'ignored', 'failed'];
const EVENTS = ['push', 'pull_request', 'ping'];
const FILTERS = ['status', 'event', 'repository'];
const STATUS_CLASS = {
  received: 'text-bg-info', processed: 'text-bg-success', ignored: 'text-bg-light border',
  failed: 'text-bg-danger',
};

function statusBadge(status) {
  return h('span', { class: `badge ${STATUS_CLASS[status] || 'text-bg-light border'} delivery-status`,
    dataset: { value: status } }, label(status));
}

function signatureOk() {
  return h('span', { class: 'badge text-bg-success signature-ok', title: 'X-Hub-Signature-256 verified with the repository\u2019s secret' }, 'Verified');
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function deliveryRow(d) {
  return h('tr', { dataset: { id: d.id } },
    h('td', {}, h('code', {}, d.event), d.action ? h('span', { class: 'small text-secondary ms-1' }, d.action) : null),
    h('td', {}, h('a', { href: `#/deliveries/${encodeURIComponent(d.id)}`, class: 'font-monospace small text-break' }, d.id)),
    h('td', { class: 'text-break' }, d.repository || '—'),
    h('td', {}, statusBadge(d.status)),
    h('td', {}, signatureOk()),
    h('td', { class: 'num' }, String(d.commits_recorded)),
    h('td', { class: 'text-nowrap' }, fmtDateTime(d.received_at)));
}

function statisticsCard(s) {
  const latency = s.latency.avg_seconds === null ? '—'
    : `${s.latency.avg_seconds.toFixed(2)} s mean, ${(s.latency.max_seconds ?? 0).toFixed(2)} s max`;
  return card('All deliveries (every repository)', h('div', { id: 'delivery-stats' },
    h('div', { class: 'd-flex flex-wrap gap-3 mb-2' },
      STATUSES.map((st) => h('div', {}, statusBadge(st), h('span', { class: 'ms-1 fw-semibold' }, String(s.by_status[st] ?? 0))))),
    facts([
      ['Total', String(s.total)],
      ['Waiting for the ingest', `${s.unprocessed}${s.oldest_unprocessed_at ? ` (oldest ${fmtDateTime(s.oldest_unprocessed_at)})` : ''}`],
      ['Failures', String(s.failures)],
      ['Received to ingested', latency],
    ]),
    s.by_event.length ? table(['Event', 'Total', 'Processed', 'Ignored', 'Failed'], s.by_event.map((e) => h('tr', {},
      h('td', {}, h('code', {}, e.event)), h('td', { class: 'num' }, String(e.total)),
      h('td', { class: 'num' }, String(e.processed)), h('td', { class: 'num' }, String(e.ignored)),
      h('td', { class: 'num' }, String(e.failed))))) : null));
}

export async function deliveryList(ctx) {
  const { main, query } = ctx;
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'delivery-filters' },
    filterField('df-status', 'Status', select('status', STATUSES, { value: v('status'), empty: 'Any' })),
    filterField('df-event', 'Event', select('event', EVENTS.map((e) => [e, e]), { value: v('event'), empty: 'Any' })),
    filterField('df-repository', 'Repository', input('repository', { value: v('repository'), placeholder: 'owner/name' }), 'col-12 col-md-4'),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/deliveries' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/deliveries', Object.fromEntries(FILTERS.map((k) => [k, String(d.get(k) || '').trim()])));
  });
  const params = Object.fromEntries(FILTERS.filter((k) => v(k)).map((k) => [k, v(k)]));
  const stats = h('div', {}, spinner('Reading the delivery statistics…'));
  replace(main,
    pageHeader('Webhook deliveries',
      h('button', { class: 'btn btn-outline-secondary', type: 'button', id: 'deliveries-refresh', onclick: () => navigate('/deliveries', params) }, 'Refresh')),
    form,
    pagedTable({
      id: 'delivery-table',
      headers: ['Event', 'Delivery id', 'Repository', 'Status', 'Signature', 'Commits', 'Received'],
      row: deliveryRow,
      empty: Object.keys(params).length ? 'No delivery matches.'
        : 'No delivery received yet: add the webhook on GitHub (see a repository\u2019s setup steps).',
      load: (cursor) => get('/api/webhook/events', { ...params, limit: 25, cursor }),
    }),
    stats);
  try {
    const s = await get('/api/webhook/statistics');
    if (ctx.alive()) replace(stats, statisticsCard(s));
  } catch (err) {
    if (ctx.alive()) replace(stats, problemAlert(err));
  }
}

function summaryView(d) {
  const s = d.summary;
  if (!s) return h('p', { class: 'text-secondary mb-0' }, d.status === 'received' ? 'The ingest has not processed it yet.' : 'No summary.');
  const pairs = Object.entries(s).map(([k, val]) => [label(k),
    val !== null && typeof val === 'object' ? h('code', { class: 'small text-break' }, JSON.stringify(val)) : String(val)]);
  return facts(pairs);
}

export async function deliveryDetail(ctx) {
  const { main, params } = ctx;
  replace(main, spinner());
  let d;
  try {
    d = await get(`/api/webhook/events/${encodeURIComponent(params.id)}`);
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Delivery'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const crumbs = h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
    h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/deliveries' }, 'Webhook deliveries')),
    h('li', { class: 'breadcrumb-item active text-break', 'aria-current': 'page' }, params.id)));
  replace(main, crumbs,
    pageHeader(h('span', {}, h('code', { class: 'me-2' }, d.event), d.action || ''),
      h('span', { id: 'delivery-status' }, statusBadge(d.status))),
    h('div', { class: 'row' },
      h('div', { class: 'col-lg-6' }, card('Delivery', facts([
        ['Delivery id', h('code', { class: 'text-break' }, d.id)],
        ['Repository', d.repository ? h('a', { href: `#/repositories/${repoPath(d.repository)}` }, d.repository) : null],
        ['Signature', signatureOk()],
        ['Received', fmtDateTime(d.received_at)],
        ['Processed', fmtDateTime(d.processed_at)],
        ['Size', `${size(d.size_bytes)} (stored ${size(d.stored_bytes)} compressed in ${d.chunks || 1} document${d.chunks > 1 ? 's' : ''})`],
        ['Commits recorded', d.commits_recorded ? h('a', { href: `#/commits?repository=${encodeURIComponent(d.repository || '')}` }, String(d.commits_recorded)) : '0'],
        ['Ingest attempts', String(d.attempts)],
        ['Error', d.error ? h('span', { class: 'text-danger' }, d.error) : null],
      ]))),
      h('div', { class: 'col-lg-6' }, card('What the ingest made of it', h('div', { id: 'delivery-summary' }, summaryView(d))))));
}
