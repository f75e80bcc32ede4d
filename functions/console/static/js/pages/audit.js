// The audit trail (managers and admins): every event the platform published, filtered by type,
// actor or source (the API combines at most one of them) and a time range; one event with its
// payload.

import { get } from '../api.js';
import { fmtDateTime, h, replace } from '../dom.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  card, facts, filterField, forbidden, input, pageHeader, pagedTable, problemAlert, select,
  spinner, submit,
} from '../ui.js';

const ROLES = ['manager', 'admin'];
const BY = [['event_type', 'Event type'], ['actor', 'Actor (user id or system)'], ['source', 'Source deployment']];

function localToIso(value) {
  return value ? new Date(`${value}Z`).toISOString() : '';
}

function isoToLocal(value) {
  return value ? value.replace(/(\.\d+)?Z$/, '').slice(0, 16) : '';
}

export async function auditList(ctx) {
  const { main, query } = ctx;
  if (!session.hasRole('manager')) return forbidden(main, 'Audit trail', ROLES);
  const by = BY.find(([k]) => query.get(k)) || BY[0];
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'audit-filters' },
    filterField('af-by', 'Filter by', select('by', BY, { value: by[0] }), 'col-6 col-md-2'),
    filterField('af-value', 'Value', input('value', { value: query.get(by[0]) || '', placeholder: 'e.g. user.created' }), 'col-6 col-md-3'),
    filterField('af-since', 'From (UTC)', input('since', { type: 'datetime-local', value: isoToLocal(query.get('since')) })),
    filterField('af-until', 'Until (UTC)', input('until', { type: 'datetime-local', value: isoToLocal(query.get('until')) })),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/audit' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/audit', { [d.get('by')]: d.get('value').trim(), since: localToIso(d.get('since')), until: localToIso(d.get('until')) });
  });
  const params = {};
  for (const key of ['event_type', 'actor', 'source', 'since', 'until']) if (query.get(key)) params[key] = query.get(key);
  replace(main, pageHeader('Audit trail'), form,
    pagedTable({ id: 'audit-table', headers: ['When', 'Event', 'Actor', 'Source'],
      empty: 'No events match.',
      load: (cursor) => get('/api/audit/events', { ...params, limit: 50, cursor }),
      row: (e) => h('tr', { dataset: { id: e.event_id } },
        h('td', {}, h('a', { href: `#/audit/${encodeURIComponent(e.event_id)}` }, fmtDateTime(e.occurred_at))),
        h('td', {}, h('code', {}, e.event_type)),
        h('td', {}, e.actor), h('td', {}, e.source)) }));
}

export async function auditDetail(ctx) {
  const { main, params } = ctx;
  if (!session.hasRole('manager')) return forbidden(main, 'Audit event', ROLES);
  replace(main, spinner());
  let e;
  try {
    e = await get(`/api/audit/events/${encodeURIComponent(params.id)}`);
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Audit event'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  replace(main,
    h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
      h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/audit' }, 'Audit trail')),
      h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, e.event_type))),
    pageHeader(h('code', {}, e.event_type)),
    h('div', { class: 'row' },
      h('div', { class: 'col-lg-5' }, card('Envelope', facts([
        ['Event id', e.event_id], ['Occurred', fmtDateTime(e.occurred_at)], ['Received', fmtDateTime(e.received_at)],
        ['Actor', h('a', { href: `#/audit?actor=${encodeURIComponent(e.actor)}` }, e.actor)],
        ['Source', e.source], ['Schema version', String(e.schema_version)], ['Request id', e.request_id],
        ['Delivery attempt', String(e.delivery_attempt)]]))),
      h('div', { class: 'col-lg-7' }, card('Payload', h('pre', { class: 'payload mb-0', id: 'audit-payload', tabindex: 0 },
        JSON.stringify(e.data, null, 2))))));
}
