// Packages (logistics): the filtered list, a new package, one package with its scan timeline,
// the scan form, the manual lifecycle moves and its investigations, updated live from the
// package's stream.

import { all, del, get, post, put } from '../api.js';
import { fmtDateTime, fmtHours, h, label, replace } from '../dom.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  busy, card, clearErrors, facts, field, filterField, input, pageHeader, pagedTable,
  problemAlert, select, showError, spinner, submit, toast,
} from '../ui.js';
import { openStream, stateBadge } from './live-stream.js';

export const STATUSES = ['created', 'picked_up', 'in_transit', 'out_for_delivery', 'delivered',
  'exception', 'returned', 'cancelled'];
export const SERVICE_LEVELS = ['economy', 'standard', 'express', 'overnight'];
export const SCAN_KINDS = ['pickup', 'arrival', 'departure', 'out_for_delivery', 'delivery',
  'exception'];
// The lifecycle as the API enforces it (functions/logistics/model.py, decision 0018); the
// console only uses it to offer plausible moves and scans; the API answers 409 otherwise.
const MOVES = {
  created: ['picked_up', 'in_transit', 'exception', 'cancelled'],
  picked_up: ['in_transit', 'out_for_delivery', 'delivered', 'exception'],
  in_transit: ['out_for_delivery', 'delivered', 'exception', 'returned'],
  out_for_delivery: ['in_transit', 'delivered', 'exception', 'returned'],
  exception: ['picked_up', 'in_transit', 'out_for_delivery', 'delivered', 'returned'],
  delivered: [],
  returned: [],
  cancelled: [],
};
const SCAN_TARGET = {
  pickup: 'picked_up', arrival: 'in_transit', departure: 'in_transit',
  out_for_delivery: 'out_for_delivery', delivery: 'delivered', exception: 'exception',
};
const MANUAL = [
  ['exception', 'Flag an exception', 'btn-outline-danger'],
  ['in_transit', 'Clear the exception (back in transit)', 'btn-outline-primary'],
  ['returned', 'Return to sender', 'btn-outline-secondary'],
];
export const STATUS_COLORS = {
  created: '#6c757d', picked_up: '#0aa2c0', in_transit: '#0d6efd', out_for_delivery: '#6610f2',
  delivered: '#198754', exception: '#dc3545', returned: '#fd7e14', cancelled: '#adb5bd',
};
const STATUS_BADGE = {
  created: 'text-bg-secondary', picked_up: 'text-bg-info', in_transit: 'text-bg-primary',
  out_for_delivery: 'text-bg-primary', delivered: 'text-bg-success', exception: 'text-bg-danger',
  returned: 'text-bg-warning', cancelled: 'text-bg-light border',
};
// Hubs of the demo data, to fill a place or a scan's location in one click.
export const HUBS = [
  ['Berlin', 52.520, 13.405, 'DE-BE', 'Alexanderplatz 1, 10178 Berlin'],
  ['Hamburg', 53.551, 9.994, 'DE-HH', 'Jungfernstieg 7, 20354 Hamburg'],
  ['Munich', 48.137, 11.575, 'DE-BY', 'Marienplatz 8, 80331 Munich'],
  ['Frankfurt', 50.110, 8.682, 'DE-HE', 'Zeil 90, 60313 Frankfurt'],
  ['Paris', 48.857, 2.352, 'FR-IDF', '1 Rue de Rivoli, 75001 Paris'],
  ['Lyon', 45.764, 4.836, 'FR-ARA', '10 Place Bellecour, 69002 Lyon'],
  ['Madrid', 40.417, -3.704, 'ES-MD', 'Gran Via 28, 28013 Madrid'],
  ['Barcelona', 41.387, 2.170, 'ES-CT', 'La Rambla 91, 08001 Barcelona'],
  ['Milan', 45.464, 9.190, 'IT-LOM', 'Via Dante 2, 20121 Milan'],
  ['Rome', 41.903, 12.496, 'IT-LAZ', 'Via del Corso 18, 00186 Rome'],
  ['Amsterdam', 52.368, 4.904, 'NL-NH', 'Damrak 1, 1012 LG Amsterdam'],
  ['Warsaw', 52.230, 21.012, 'PL-MZ', 'Nowy Swiat 15, 00-029 Warsaw'],
  ['Vienna', 48.208, 16.373, 'AT-9', 'Graben 19, 1010 Vienna'],
];
const FILTERS = ['q', 'status', 'service_level', 'origin_region', 'destination_region',
  'promised_after', 'promised_before', 'late'];

export function statusBadge(status, extra = '') {
  if (!status) return h('span', { class: 'text-secondary' }, '—');
  return h('span', { class: `badge ${STATUS_BADGE[status] || 'text-bg-light border'} ${extra}`,
    dataset: { value: status } }, label(status));
}

export function lateBadge(pkg) {
  return pkg.late ? h('span', { class: 'badge text-bg-danger ms-1 late-badge' }, 'Late') : null;
}

function lane(pkg) {
  return `${pkg.origin.region} → ${pkg.destination.region}`;
}

const PKG_HEADERS = ['Tracking number', 'Recipient', 'Lane', 'Service', 'Status', 'Promised by',
  'Last scan'];

// On a phone the list keeps the tracking number, the status and the promise; the other
// columns come back on wider screens (the package's page has everything).
const PKG_COLUMN_CLASS = ['', 'd-none d-sm-table-cell', 'd-none d-md-table-cell',
  'd-none d-lg-table-cell', '', '', 'd-none d-lg-table-cell'];

export function hideColumns(el, classes) {
  el.querySelectorAll('thead th').forEach((th, i) => {
    if (classes[i]) th.className = classes[i];
  });
  return el;
}

function packageRow(p) {
  const href = `#/packages/${encodeURIComponent(p.id)}`;
  const c = PKG_COLUMN_CLASS;
  return h('tr', { dataset: { id: p.id } },
    h('td', { class: 'tracking' }, h('a', { href }, p.tracking_number)),
    h('td', { class: c[1] }, p.recipient),
    h('td', { class: `text-nowrap ${c[2]}` }, lane(p)),
    h('td', { class: c[3] }, label(p.service_level)),
    h('td', { class: 'pkg-status' }, statusBadge(p.status), lateBadge(p)),
    h('td', {}, fmtDateTime(p.promised_by)),
    h('td', { class: `text-nowrap ${c[6]}` }, fmtDateTime(p.last_scan_at)));
}

// <input type=date> gives a day; the API wants an instant: the start of that UTC day.
function dayToInstant(day) {
  return day ? `${day}T00:00:00Z` : '';
}

function filterForm(query) {
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'pkg-filters' },
    filterField('f-q', 'Tracking number or recipient',
      input('q', { type: 'search', value: v('q'), placeholder: 'SY123456785SW' }), 'col-12 col-md-3'),
    filterField('f-status', 'Status', select('status', STATUSES, { value: v('status'), empty: 'Any' })),
    filterField('f-service', 'Service level',
      select('service_level', SERVICE_LEVELS, { value: v('service_level'), empty: 'Any' })),
    filterField('f-origin', 'From region',
      input('origin_region', { value: v('origin_region'), placeholder: 'DE-BE' }), 'col-6 col-md-1'),
    filterField('f-destination', 'To region',
      input('destination_region', { value: v('destination_region'), placeholder: 'FR-IDF' }),
      'col-6 col-md-1'),
    filterField('f-after', 'Promised from',
      input('promised_after', { type: 'date', value: v('promised_after') }), 'col-6 col-md-2'),
    filterField('f-before', 'Promised before',
      input('promised_before', { type: 'date', value: v('promised_before') }), 'col-6 col-md-2'),
    h('div', { class: 'col-6 col-md-auto' }, h('div', { class: 'form-check mb-2' },
      h('input', { class: 'form-check-input', type: 'checkbox', name: 'late', id: 'f-late',
        value: 'true', checked: v('late') === 'true' }),
      h('label', { class: 'form-check-label', for: 'f-late' }, 'Late only'))),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/packages' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const q = {};
    for (const key of FILTERS) q[key] = (data.get(key) || '').trim();
    navigate('/packages', q);
  });
  return form;
}

export async function packageList(ctx) {
  const { main, query } = ctx;
  const params = {};
  for (const key of FILTERS) if (query.get(key)) params[key] = query.get(key);
  for (const key of ['promised_after', 'promised_before']) {
    if (params[key]) params[key] = dayToInstant(params[key]);
  }
  const canCreate = session.hasRole('operator', 'manager');
  replace(main,
    pageHeader('Packages',
      h('a', { class: 'btn btn-outline-secondary', href: '#/packages?late=true' }, 'Late packages'),
      canCreate ? h('a', { class: 'btn btn-primary', href: '#/packages/new', id: 'new-package' },
        'New package') : null),
    filterForm(query),
    hideColumns(pagedTable({
      id: 'pkg-table',
      headers: PKG_HEADERS,
      row: packageRow,
      load: (cursor) => get('/api/packages', { ...params, limit: 25, cursor }),
      empty: Object.keys(params).length ? 'No packages match these filters.'
        : 'No packages yet.',
    }), PKG_COLUMN_CLASS));
}

// --- a new package ---------------------------------------------------------------------------

function hubSelect(id, onPick) {
  const el = select('hub', HUBS.map(([name]) => [name, name]), { id, empty: 'Fill from a hub…' });
  el.name = '';
  el.addEventListener('change', () => {
    const hub = HUBS.find(([name]) => name === el.value);
    if (hub) onPick(hub);
  });
  return el;
}

function placeFields(prefix, title) {
  const address = input(`${prefix}.address`, { id: `f-${prefix}-address`, required: true, maxlength: 500 });
  const region = input(`${prefix}.region`, { id: `f-${prefix}-region`, required: true, maxlength: 40,
    placeholder: prefix === 'origin' ? 'DE-BE' : 'FR-IDF' });
  const lat = input(`${prefix}.lat`, { id: `f-${prefix}-lat`, type: 'number', step: 'any', min: -90, max: 90, required: true });
  const lon = input(`${prefix}.lon`, { id: `f-${prefix}-lon`, type: 'number', step: 'any', min: -180, max: 180, required: true });
  const hub = hubSelect(`f-${prefix}-hub`, ([, la, lo, reg, addr]) => {
    address.value = addr;
    region.value = reg;
    lat.value = la;
    lon.value = lo;
  });
  return h('fieldset', { class: 'col-md-6 mb-2' },
    h('legend', { class: 'h6' }, title),
    h('div', { class: 'mb-2' }, h('label', { class: 'visually-hidden', for: hub.id }, `${title}: fill from a hub`), hub),
    field(`${prefix}.address`, 'Address', address),
    h('div', { class: 'row' },
      h('div', { class: 'col-4' }, field(`${prefix}.region`, 'Region', region)),
      h('div', { class: 'col-4' }, field(`${prefix}.lat`, 'Latitude', lat)),
      h('div', { class: 'col-4' }, field(`${prefix}.lon`, 'Longitude', lon))));
}

// Field errors name nested fields ('origin.lat'): mark the input of that exact name (ui.js's
// showError marks by the last segment only, which is ambiguous between origin and destination).
function markNested(form, err) {
  for (const e of (err && err.errors) || []) {
    const name = String(e.field || '');
    if (!name.includes('.')) continue;
    const el = form.elements.namedItem(name);
    if (!(el instanceof HTMLElement) || el.classList.contains('is-invalid')) continue;
    el.classList.add('is-invalid');
    el.after(h('div', { class: 'invalid-feedback from-api' }, e.message || ''));
  }
}

function localToIso(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

function localNow() {
  const d = new Date();
  d.setSeconds(0, 0);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function num(value) {
  return value === '' || value === null ? null : Number(value);
}

export async function packageNew(ctx) {
  const { main } = ctx;
  if (!session.hasRole('operator', 'manager')) {
    replace(main, pageHeader('New package'), h('div', { class: 'alert alert-warning', id: 'forbidden' },
      'Creating packages needs the operator or manager role.'));
    return;
  }
  const slot = h('div', {});
  const form = h('form', { id: 'pkg-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('sender', 'Sender', input('sender', { required: true, maxlength: 200 }))),
      h('div', { class: 'col-md-6' }, field('recipient', 'Recipient', input('recipient', { required: true, maxlength: 200 })))),
    h('div', { class: 'row' }, placeFields('origin', 'Origin'), placeFields('destination', 'Destination')),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-3' }, field('service_level', 'Service level', select('service_level', SERVICE_LEVELS, { value: 'standard' }))),
      h('div', { class: 'col-md-3' }, field('weight_kg', 'Weight (kg)', input('weight_kg', { type: 'number', step: 'any', min: 0, required: true }))),
      h('div', { class: 'col-md-3' }, field('promised_by', 'Promised by', input('promised_by', { type: 'datetime-local' }))),
      h('div', { class: 'col-md-3' }, field('tracking_number', 'Tracking number', input('tracking_number', { maxlength: 40 }),
        'Leave empty to generate one.'))),
    h('div', { class: 'd-flex gap-2' }, submit('Create package'),
      h('a', { class: 'btn btn-link', href: '#/packages' }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const place = (p) => ({ address: d.get(`${p}.address`), region: d.get(`${p}.region`),
      lat: num(d.get(`${p}.lat`)), lon: num(d.get(`${p}.lon`)) });
    const payload = {
      sender: d.get('sender'),
      recipient: d.get('recipient'),
      origin: place('origin'),
      destination: place('destination'),
      service_level: d.get('service_level'),
      weight_kg: num(d.get('weight_kg')),
      promised_by: localToIso(d.get('promised_by')),
      tracking_number: (d.get('tracking_number') || '').trim() || null,
    };
    for (const key of ['promised_by', 'tracking_number']) if (payload[key] === null) delete payload[key];
    try {
      const pkg = await busy(form, () => post('/api/packages', payload));
      toast(`Package ${pkg.tracking_number} created.`);
      navigate(`/packages/${encodeURIComponent(pkg.id)}`);
    } catch (err) {
      showError(slot, err, form);
      markNested(form, err);
    }
  });
  replace(main, pageHeader('New package'), slot, card(null, form));
}

// --- one package -----------------------------------------------------------------------------

function timelineCard(scans) {
  if (!scans.length) {
    return card('Scan timeline', h('p', { class: 'text-secondary mb-0', id: 'pkg-timeline-empty' },
      'No scans yet: the package has not been picked up.'));
  }
  return card(`Scan timeline (${scans.length})`, h('ol', { class: 'timeline scan-timeline', id: 'pkg-timeline' },
    scans.map((s) => h('li', {
      class: s.kind === 'exception' ? 'scan-exception' : s.out_of_order ? 'scan-late' : '',
      dataset: { kind: s.kind, id: s.id },
    },
    h('div', { class: 'd-flex flex-wrap align-items-center gap-2' },
      h('strong', {}, label(s.kind)),
      h('span', {}, s.location),
      s.kind === 'exception' ? h('span', { class: 'badge text-bg-danger' }, 'Exception') : null,
      s.out_of_order ? h('span', { class: 'badge text-bg-warning', title: 'Recorded after a newer scan: kept, it did not move the status.' }, 'Arrived late') : null),
    h('div', { class: 'small text-secondary' }, fmtDateTime(s.occurred_at), ' · ',
      `${s.lat.toFixed(3)}, ${s.lon.toFixed(3)}`, ' · ',
      s.moved ? [label(s.status_from), ' → ', label(s.status_to)] : 'no status change'),
    s.note ? h('div', { class: 'small scan-note' }, s.note) : null))));
}

function allowedScanKinds(status) {
  if (status === 'cancelled') return [];
  return SCAN_KINDS.filter((k) => SCAN_TARGET[k] === status || (MOVES[status] || []).includes(SCAN_TARGET[k]));
}

// The scan form stays on the page while the rest of it is redrawn (a scan recorded elsewhere
// must not wipe what is being typed here); `update(pkg)` offers the kinds the status accepts.
function scanCard(pkgId, reload) {
  const slot = h('div', {});
  let key = crypto.randomUUID(); // kept until the scan is stored: a resend is stored once
  const kind = select('kind', [], { id: 'scan-kind' });
  const location = input('location', { id: 'scan-location', required: true, maxlength: 200 });
  const lat = input('lat', { id: 'scan-lat', type: 'number', step: 'any', min: -90, max: 90, required: true });
  const lon = input('lon', { id: 'scan-lon', type: 'number', step: 'any', min: -180, max: 180, required: true });
  const hub = hubSelect('scan-hub', ([name, la, lo]) => {
    location.value = `${name} hub`;
    lat.value = la;
    lon.value = lo;
  });
  const form = h('form', { id: 'scan-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', { class: 'col-sm-6' }, field('kind', 'Kind', kind)),
      h('div', { class: 'col-sm-6' }, field('occurred_at', 'When', input('occurred_at', { id: 'scan-when', type: 'datetime-local', value: localNow(), required: true })))),
    h('div', { class: 'mb-2' }, h('label', { class: 'form-label', for: 'scan-hub' }, 'Where'), hub),
    field('location', 'Location', location),
    h('div', { class: 'row' },
      h('div', { class: 'col-6' }, field('lat', 'Latitude', lat)),
      h('div', { class: 'col-6' }, field('lon', 'Longitude', lon))),
    field('note', 'Note', input('note', { id: 'scan-note', maxlength: 500, placeholder: 'Why, for an exception' })),
    submit('Record scan'));
  const closed = h('p', { class: 'text-secondary mb-0 d-none' });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = {
      kind: d.get('kind'),
      location: d.get('location'),
      lat: num(d.get('lat')),
      lon: num(d.get('lon')),
      occurred_at: localToIso(d.get('occurred_at')),
      idempotency_key: `console-${key}`,
    };
    if ((d.get('note') || '').trim()) payload.note = d.get('note').trim();
    try {
      const scan = await busy(form, () => post(`/api/packages/${encodeURIComponent(pkgId)}/events`, payload));
      key = crypto.randomUUID();
      form.elements.namedItem('note').value = '';
      toast(scan.moved ? `Scan recorded: now ${label(scan.package_status).toLowerCase()}.` : 'Scan recorded.');
      await reload();
    } catch (err) {
      if (err && err.status >= 400 && err.status < 500 && err.status !== 409) key = crypto.randomUUID();
      showError(slot, err, form);
      if (err && err.problem && Array.isArray(err.problem.allowed_kinds)) {
        slot.firstChild.append(h('div', { class: 'small' }, 'Scans it accepts now: ',
          err.problem.allowed_kinds.map(label).join(', ') || 'none'));
      }
    }
  });
  return {
    el: card('Record a scan', slot, closed, form),
    update(pkg) {
      const kinds = allowedScanKinds(pkg.status);
      form.classList.toggle('d-none', !kinds.length);
      closed.classList.toggle('d-none', kinds.length > 0);
      closed.textContent = `A ${label(pkg.status).toLowerCase()} package takes no more scans.`;
      const chosen = kind.value;
      kind.replaceChildren(...kinds.map((k) => h('option', { value: k, selected: k === chosen }, label(k))));
    },
  };
}

function movesCard(pkg, reload) {
  if (!session.hasRole('manager')) return null;
  const slot = h('div', {});
  const moves = MANUAL.filter(([to]) => (MOVES[pkg.status] || []).includes(to)
    && !(to === 'in_transit' && pkg.status !== 'exception'));
  const buttons = h('div', { class: 'd-flex flex-wrap gap-2', id: 'pkg-moves' },
    moves.map(([to, text, cls]) => h('button', { type: 'button', class: `btn ${cls}`, dataset: { to },
      onclick: async () => {
        clearErrors(slot);
        try {
          await busy(buttons, () => put(`/api/packages/${encodeURIComponent(pkg.id)}`, { status: to, version: pkg.version }));
          toast(`Now ${label(to).toLowerCase()}.`);
          await reload();
        } catch (err) {
          showError(slot, err);
        }
      } }, text)),
    pkg.status === 'created' ? h('button', { type: 'button', class: 'btn btn-outline-danger', dataset: { to: 'cancelled' },
      onclick: async () => {
        clearErrors(slot);
        try {
          await busy(buttons, () => del(`/api/packages/${encodeURIComponent(pkg.id)}`));
          toast('Package cancelled.');
          await reload();
        } catch (err) {
          showError(slot, err);
        }
      } }, 'Cancel package') : null);
  if (!buttons.children.length) return null;
  return card('Status', slot, buttons,
    h('p', { class: 'small text-secondary mt-2 mb-0' }, 'Pickup, out for delivery and delivery are recorded by scans.'));
}

function investigationsCard(pkg, investigations) {
  const canStart = session.hasRole('operator');
  const start = canStart ? h('div', { class: 'd-flex flex-wrap gap-2 mb-2', id: 'pkg-investigate' },
    ['anomaly', 'delay', 'eta'].map((kind) => h('a', { class: 'btn btn-sm btn-outline-primary',
      href: `#/logistics/investigations/new?kind=${kind}&package_id=${encodeURIComponent(pkg.id)}` },
    `Investigate ${kind === 'eta' ? 'ETA' : kind}`))) : null;
  const rows = investigations.map((i) => h('li', { class: 'list-group-item d-flex flex-wrap gap-2 align-items-center' },
    h('a', { href: `#/logistics/investigations/${encodeURIComponent(i.id)}` }, label(i.kind)),
    h('span', { class: 'badge text-bg-light border' }, label(i.status)),
    h('span', { class: 'small text-secondary' }, `${fmtDateTime(i.created_at)} · ${i.findings.length} finding${i.findings.length === 1 ? '' : 's'}`)));
  return card('Investigations', start,
    rows.length ? h('ul', { class: 'list-group list-group-flush' }, rows)
      : h('p', { class: 'text-secondary mb-0' }, 'No investigations yet.'));
}

function place(p) {
  return h('span', {}, p.address, h('br'), h('span', { class: 'small text-secondary' },
    `${p.region} · ${p.lat.toFixed(3)}, ${p.lon.toFixed(3)}`));
}

export async function packageDetail(ctx) {
  const { main, params } = ctx;
  const id = encodeURIComponent(params.id);
  const live = stateBadge('pkg-live');
  replace(main, spinner());
  let pending = null;
  let view = null; // the page's parts, built on the first load, redrawn by the next ones
  const reload = async () => {
    let pkg;
    let scans;
    let investigations;
    try {
      [pkg, scans, investigations] = await Promise.all([
        get(`/api/packages/${id}`),
        all(`/api/packages/${id}/events`, {}, 1000),
        get('/api/agents/investigations', { package_id: params.id, limit: 10 })
          .then((p) => p.items).catch(() => []),
      ]);
    } catch (err) {
      if (!ctx.alive()) return;
      if (view) replace(view.problem, problemAlert(err));
      else replace(main, pageHeader('Package'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    if (!view) {
      const scan = session.hasRole('operator', 'manager') ? scanCard(pkg.id, reload) : null;
      view = { problem: h('div', {}), header: h('div', {}), summary: h('div', {}), moves: h('div', {}),
        scan, timeline: h('div', {}), investigations: h('div', {}) };
      replace(main,
        h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
          h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/packages' }, 'Packages')),
          h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, pkg.tracking_number))),
        view.header, view.problem,
        h('div', { class: 'row' },
          h('div', { class: 'col-lg-5' }, view.summary, view.moves, scan ? scan.el : null),
          h('div', { class: 'col-lg-7' }, view.timeline, view.investigations)));
    }
    view.problem.replaceChildren();
    replace(view.header, pageHeader(h('span', { class: 'tracking' }, pkg.tracking_number),
      h('span', { id: 'pkg-status' }, statusBadge(pkg.status, 'fs-6'), lateBadge(pkg)), live.el));
    replace(view.summary, card('Summary', facts([
      ['Sender', pkg.sender],
      ['Recipient', pkg.recipient],
      ['From', place(pkg.origin)],
      ['To', place(pkg.destination)],
      ['Service level', label(pkg.service_level)],
      ['Weight', `${pkg.weight_kg} kg`],
      ['Promised by', pkg.promised_by ? h('span', { class: pkg.late ? 'text-danger fw-semibold' : '' }, fmtDateTime(pkg.promised_by)) : 'No promise'],
      ['Picked up', fmtDateTime(pkg.picked_up_at)],
      pkg.delivered_at ? ['Delivered', fmtDateTime(pkg.delivered_at)] : null,
      pkg.transit_seconds !== null ? ['Transit time', fmtHours(pkg.transit_seconds / 3600)] : null,
      ['Created', fmtDateTime(pkg.created_at)],
    ].filter(Boolean))));
    replace(view.moves, movesCard(pkg, reload));
    if (view.scan) view.scan.update(pkg);
    replace(view.timeline, timelineCard(scans));
    replace(view.investigations, investigationsCard(pkg, investigations));
  };
  await reload();
  if (!ctx.alive() || !view) return;
  // Scans and moves recorded elsewhere (a scanner, another operator) show up without a reload.
  const refresh = () => {
    clearTimeout(pending);
    pending = setTimeout(() => ctx.alive() && reload(), 500);
  };
  const on = {};
  for (const name of ['scan', 'status', 'delivered', 'exception', 'investigation']) on[name] = refresh;
  openStream('package', { packageId: params.id, on, onState: live.set });
}
