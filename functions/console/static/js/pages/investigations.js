// Investigations (agents): the list (live from the agents stream), starting one (anomaly,
// delay or ETA of a package, or a route over stops), and one investigation watched until it
// completes, with its findings explained.

import { get, post } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  busy, card, clearErrors, facts, field, filterField, input, pageHeader, pagedTable,
  problemAlert, select, showError, spinner, submit, table, textarea, toast,
} from '../ui.js';
import { openStream, stateBadge } from './live-stream.js';
import { hideColumns } from './packages.js';

const KINDS = [['anomaly', 'Anomaly'], ['delay', 'Delay'], ['eta', 'ETA'], ['route', 'Route']];
const KIND_HELP = {
  anomaly: 'Scans out of order, impossible speeds, long stalls, detours and repeated exceptions.',
  delay: 'Whether the package will miss its promise, from its lane’s history, and where it lost time.',
  eta: 'When the package is expected, with an 80% interval from its lane’s history.',
  route: 'The shortest order to visit a set of stops (the first is where the vehicle starts).',
};
const DONE = ['completed', 'failed'];
const STATUS_BADGE = {
  queued: 'text-bg-secondary', running: 'text-bg-info', completed: 'text-bg-success',
  failed: 'text-bg-danger',
};
const SEVERITY_BADGE = { info: 'text-bg-light border', warning: 'text-bg-warning', critical: 'text-bg-danger' };
const POLL_MS = 2000;

function kindText(kind) {
  return (KINDS.find(([k]) => k === kind) || [kind, label(kind)])[1];
}

export function invStatusBadge(status, extra = '') {
  return h('span', { class: `badge ${STATUS_BADGE[status] || 'text-bg-light border'} ${extra}`,
    dataset: { value: status } }, label(status));
}

function severityBadge(severity) {
  return h('span', { class: `badge ${SEVERITY_BADGE[severity] || 'text-bg-light border'}`,
    dataset: { value: severity } }, label(severity));
}

function worst(findings) {
  const rank = { info: 0, warning: 1, critical: 2 };
  return findings.reduce((w, f) => (w === null || rank[f.severity] > rank[w] ? f.severity : w), null);
}

// Tracking numbers of the packages investigated, read once per page load (the investigation
// names the package by id only).
const trackingNumbers = new Map();

function trackingNumber(id) {
  if (!trackingNumbers.has(id)) {
    trackingNumbers.set(id, get(`/api/packages/${encodeURIComponent(id)}`)
      .then((p) => p.tracking_number)
      .catch(() => { trackingNumbers.delete(id); return null; }));
  }
  return trackingNumbers.get(id);
}

function packageLink(id) {
  const a = h('a', { href: `#/packages/${encodeURIComponent(id)}`, class: 'tracking' }, `${id.slice(0, 8)}…`);
  trackingNumber(id).then((tn) => { if (tn) a.textContent = tn; });
  return a;
}

function subject(inv) {
  if (inv.kind === 'route') return `${inv.stops.length} stops`;
  return inv.package_id ? packageLink(inv.package_id) : '—';
}

// Phones keep kind, subject, status and findings; the summary and time come back on wider screens.
const INV_COLUMN_CLASS = ['', '', '', '', 'd-none d-md-table-cell', 'd-none d-lg-table-cell'];

function invRow(inv) {
  const top = worst(inv.findings || []);
  const c = INV_COLUMN_CLASS;
  return h('tr', { dataset: { id: inv.id, status: inv.status } },
    h('td', {}, h('a', { href: `#/logistics/investigations/${encodeURIComponent(inv.id)}` }, kindText(inv.kind))),
    h('td', {}, subject(inv)),
    h('td', { class: 'inv-status' }, invStatusBadge(inv.status)),
    h('td', { class: 'text-nowrap' }, inv.status === 'completed' ? [String(inv.findings.length), top && top !== 'info' ? [' ', severityBadge(top)] : null] : '—'),
    h('td', { class: `small ${c[4]}` }, inv.summary || inv.error || ''),
    h('td', { class: `text-nowrap ${c[5]}` }, fmtDateTime(inv.created_at)));
}

export async function investigationList(ctx) {
  const { main, query } = ctx;
  const live = stateBadge('inv-live');
  const params = {};
  for (const key of ['kind', 'package_id']) if (query.get(key)) params[key] = query.get(key);
  const packageFilter = input('package', { placeholder: 'SY123456785SW' });
  if (params.package_id) {
    packageFilter.value = params.package_id;
    trackingNumber(params.package_id).then((tn) => { if (tn) packageFilter.value = tn; });
  }
  const filters = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'inv-filters' },
    filterField('f-kind', 'Kind', select('kind', KINDS, { value: params.kind || '', empty: 'Any' })),
    filterField('f-package', 'Package (tracking number)', packageFilter, 'col-12 col-md-4'),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/logistics/investigations' }, 'Clear')));
  filters.addEventListener('submit', async (event) => {
    event.preventDefault();
    const d = new FormData(filters);
    const text = (d.get('package') || '').trim();
    clearErrors(null, filters);
    let id = '';
    if (text) {
      try {
        id = await findPackage(text);
      } catch (err) {
        replace(tableSlot, problemAlert(err));
        return;
      }
      if (!id) {
        packageFilter.classList.add('is-invalid');
        packageFilter.after(h('div', { class: 'invalid-feedback from-api' }, 'No package has this tracking number.'));
        return;
      }
    }
    navigate('/logistics/investigations', { kind: d.get('kind'), package_id: id });
  });
  const tableSlot = h('div', {});
  const showTable = () => replace(tableSlot, hideColumns(pagedTable({
    id: 'inv-table',
    headers: ['Kind', 'Subject', 'Status', 'Findings', 'Summary', 'Started'],
    row: invRow,
    load: (cursor) => get('/api/agents/investigations', { ...params, limit: 25, cursor }),
    empty: 'No investigations yet: start one from a package, or here.',
  }), INV_COLUMN_CLASS));
  replace(main,
    pageHeader('Investigations', live.el,
      session.hasRole('operator') ? h('a', { class: 'btn btn-primary', id: 'new-investigation',
        href: `#/logistics/investigations/new${params.package_id ? `?package_id=${encodeURIComponent(params.package_id)}` : ''}` },
      'New investigation') : null),
    filters, tableSlot);
  showTable();
  // A finished investigation (anyone's) shows up at once: the list is read again.
  let pending = null;
  openStream('agents', {
    on: {
      investigation: () => {
        clearTimeout(pending);
        pending = setTimeout(() => ctx.alive() && showTable(), 300);
      },
    },
    onState: live.set,
  });
}

// --- starting one ----------------------------------------------------------------------------

// "name, lat, lon" per line, optionally ", window start, window end" (RFC 3339) and
// ", service minutes".
function parseStops(text) {
  const stops = [];
  const errors = [];
  text.split('\n').map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
    const parts = line.split(',').map((p) => p.trim());
    const [name, lat, lon, start, end, minutes] = parts;
    if (parts.length < 3 || !name || Number.isNaN(Number(lat)) || Number.isNaN(Number(lon)) || lat === '' || lon === '') {
      errors.push(`Line ${i + 1}: write "name, latitude, longitude".`);
      return;
    }
    const stop = { name, lat: Number(lat), lon: Number(lon) };
    if (start) stop.window_start = start;
    if (end) stop.window_end = end;
    if (minutes) stop.service_minutes = Number(minutes);
    stops.push(stop);
  });
  return { stops, errors };
}

const EXAMPLE_STOPS = ['Depot Berlin, 52.520, 13.405', 'Potsdam, 52.391, 13.064',
  'Spandau, 52.535, 13.200', 'Köpenick, 52.445, 13.575', 'Oranienburg, 52.754, 13.237'].join('\n');

async function findPackage(text) {
  const value = text.trim();
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) return value;
  const found = await get('/api/packages', { q: value, limit: 2 });
  const exact = found.items.find((p) => p.tracking_number === value.toUpperCase());
  return exact ? exact.id : null;
}

export async function investigationNew(ctx) {
  const { main, query } = ctx;
  if (!session.hasRole('operator')) {
    replace(main, pageHeader('New investigation'), h('div', { class: 'alert alert-warning', id: 'forbidden' },
      'Starting investigations needs the operator role.'));
    return;
  }
  let preset = '';
  if (query.get('package_id')) {
    try {
      const pkg = await get(`/api/packages/${encodeURIComponent(query.get('package_id'))}`);
      preset = pkg.tracking_number;
    } catch {
      preset = query.get('package_id');
    }
    if (!ctx.alive()) return;
  }
  const slot = h('div', {});
  const kind = select('kind', KINDS, { id: 'inv-kind', value: query.get('kind') || 'anomaly' });
  const help = h('div', { class: 'form-text', id: 'inv-kind-help' });
  const packageBox = h('div', {},
    field('package', 'Package (tracking number)', input('package', { id: 'inv-package', value: preset, placeholder: 'SY123456785SW', required: true })));
  const routeBox = h('div', {},
    field('stops', 'Stops', textarea('stops', { id: 'inv-stops', rows: 6, value: EXAMPLE_STOPS }),
      'One stop per line: name, latitude, longitude; optionally a time window (RFC 3339 start, end) and service minutes. The first stop is where the vehicle starts.'),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('departure_at', 'Departure', input('departure_at', { id: 'inv-departure', type: 'datetime-local' }), 'Empty: now.')),
      h('div', { class: 'col-md-6 d-flex align-items-center' }, h('div', { class: 'form-check' },
        h('input', { class: 'form-check-input', type: 'checkbox', name: 'return_to_start', id: 'inv-return', value: 'true' }),
        h('label', { class: 'form-check-label', for: 'inv-return' }, 'Return to the start')))));
  const sync = () => {
    const route = kind.value === 'route';
    packageBox.classList.toggle('d-none', route);
    routeBox.classList.toggle('d-none', !route);
    help.textContent = KIND_HELP[kind.value];
  };
  kind.addEventListener('change', sync);
  const form = h('form', { id: 'inv-form', novalidate: true },
    h('div', { class: 'mb-3' }, h('label', { class: 'form-label', for: 'inv-kind' }, 'Kind'), kind, help),
    packageBox, routeBox,
    h('div', { class: 'd-flex gap-2' }, submit('Start investigation'),
      h('a', { class: 'btn btn-link', href: '#/logistics/investigations' }, 'Cancel')));
  sync();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = { kind: d.get('kind') };
    try {
      await busy(form, async () => {
        if (payload.kind === 'route') {
          const { stops, errors } = parseStops(d.get('stops') || '');
          if (errors.length) {
            const el = form.elements.namedItem('stops');
            el.classList.add('is-invalid');
            el.after(h('div', { class: 'invalid-feedback from-api' }, errors.join(' ')));
            return;
          }
          payload.stops = stops;
          if (d.get('departure_at')) payload.departure_at = new Date(d.get('departure_at')).toISOString();
          if (d.get('return_to_start')) payload.return_to_start = true;
        } else {
          const text = d.get('package') || '';
          const id = text.trim() ? await findPackage(text) : null;
          if (!id) {
            const el = form.elements.namedItem('package');
            el.classList.add('is-invalid');
            el.after(h('div', { class: 'invalid-feedback from-api' },
              text.trim() ? 'No package has this tracking number.' : 'Give the package’s tracking number.'));
            return;
          }
          payload.package_id = id;
        }
        const inv = await post('/api/agents/investigations', payload);
        toast(`${kindText(inv.kind)} investigation started.`);
        navigate(`/logistics/investigations/${encodeURIComponent(inv.id)}`);
      });
    } catch (err) {
      showError(slot, err, form);
      // A package logistics has but the agents do not know yet: 422 naming package_id,
      // which this form asks for as `package`.
      const unknown = ((err && err.errors) || []).find((e) => e.field === 'package_id');
      const el = form.elements.namedItem('package');
      if (unknown && el instanceof HTMLElement && !el.classList.contains('is-invalid')) {
        el.classList.add('is-invalid');
        el.after(h('div', { class: 'invalid-feedback from-api' },
          'The agents do not know this package yet: its events may still be on the way. Try again in a moment.'));
      }
    }
  });
  replace(main, pageHeader('New investigation'), slot, card(null, form));
}

// --- one investigation -----------------------------------------------------------------------

function evidence(ev) {
  const entries = Object.entries(ev || {}).filter(([, v]) => v !== null && typeof v !== 'object');
  if (!entries.length) return null;
  return h('dl', { class: 'row small mb-0 mt-1 evidence' }, entries.map(([k, v]) => [
    h('dt', { class: 'col-sm-4 text-secondary fw-normal' }, label(k)),
    h('dd', { class: 'col-sm-8 mb-0 text-break' }, String(v)),
  ]));
}

function findingsCard(inv) {
  if (!DONE.includes(inv.status)) return null;
  if (inv.status === 'failed') {
    return card('Findings', h('div', { class: 'alert alert-danger mb-0' }, h('strong', {}, 'The investigation failed. '), inv.error || ''));
  }
  const items = inv.findings.map((f) => h('li', { class: `list-group-item finding finding-${f.severity}`, dataset: { code: f.code, severity: f.severity } },
    h('div', { class: 'd-flex flex-wrap align-items-center gap-2 mb-1' }, severityBadge(f.severity),
      h('span', { class: 'fw-semibold' }, label(f.code))),
    h('div', { class: 'finding-message' }, f.message),
    evidence(f.evidence)));
  return card(`Findings (${inv.findings.length})`,
    inv.summary ? h('p', { class: 'fw-semibold', id: 'inv-summary' }, inv.summary) : null,
    items.length ? h('ul', { class: 'list-group list-group-flush', id: 'inv-findings' }, items)
      : h('p', { class: 'text-secondary mb-0' }, 'Nothing to report.'));
}

// The optional narrative (a hosted model's retelling of the findings): shown only when the
// agents have a narrative model configured; the findings above never depend on it.
function narrativeCard(inv) {
  const n = inv.narrative;
  if (!n || inv.status !== 'completed') return null;
  const body = n.status === 'written'
    ? h('p', { class: 'mb-1', id: 'inv-narrative-text' }, n.text)
    : h('p', { class: 'text-secondary mb-1', id: 'inv-narrative-reason' }, `No narrative: ${n.reason || 'the model did not answer.'}`);
  return h('div', { id: 'inv-narrative', dataset: { status: n.status } }, card('Narrative', body,
    h('div', { class: 'form-text' }, `Written by ${n.model} from the findings above; check them before acting.`)));
}

function routeCard(inv) {
  const stops = (inv.result && inv.result.stops) || [];
  if (inv.kind !== 'route' || !stops.length) return null;
  return card('Route', table(['#', 'Stop', 'Arrival', 'Late'], stops.map((s, i) => h('tr', {},
    h('td', { class: 'num' }, String(i + 1)),
    h('td', {}, s.name),
    h('td', { class: 'text-nowrap' }, fmtDateTime(s.arrival)),
    h('td', {}, s.late_minutes > 0 ? h('span', { class: 'text-danger' }, `${s.late_minutes} min`) : '—')))));
}

function resultFacts(inv) {
  const skip = new Set(['stops', 'order']);
  return Object.entries(inv.result || {}).filter(([k, v]) => !skip.has(k) && v !== null && typeof v !== 'object')
    .map(([k, v]) => [label(k), typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v) ? fmtDateTime(v) : String(v)]);
}

export async function investigationDetail(ctx) {
  const { main, params } = ctx;
  const id = encodeURIComponent(params.id);
  const live = stateBadge('inv-live');
  let timer = null;
  let stream = null;
  replace(main, spinner());
  const load = async () => {
    clearTimeout(timer);
    let inv;
    try {
      inv = await get(`/api/agents/investigations/${id}`);
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader('Investigation'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const done = DONE.includes(inv.status);
    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/logistics/investigations' }, 'Investigations')),
        h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, `${kindText(inv.kind)} investigation`))),
      pageHeader(`${kindText(inv.kind)} investigation`,
        h('span', { id: 'inv-status', dataset: { status: inv.status } }, invStatusBadge(inv.status, 'fs-6')),
        done ? null : live.el),
      done ? null : h('div', { class: 'alert alert-info d-flex align-items-center gap-2', id: 'inv-waiting', role: 'status' },
        h('div', { class: 'spinner-border spinner-border-sm', 'aria-hidden': 'true' }),
        inv.status === 'queued' ? 'Queued: an agent will pick it up in a moment. This page updates by itself.'
          : 'Running: this page updates by itself when it is done.'),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-4' }, card('About', facts([
          ['Kind', kindText(inv.kind)],
          inv.package_id ? ['Package', h('a', { href: `#/packages/${encodeURIComponent(inv.package_id)}` }, 'Open the package')] : null,
          inv.kind === 'route' ? ['Stops', String(inv.stops.length)] : null,
          ['Status', invStatusBadge(inv.status)],
          ['Requested', fmtDateTime(inv.created_at)],
          inv.started_at ? ['Started', fmtDateTime(inv.started_at)] : null,
          inv.finished_at ? ['Finished', fmtDateTime(inv.finished_at)] : null,
          ...resultFacts(inv),
        ].filter(Boolean)))),
        h('div', { class: 'col-lg-8' }, findingsCard(inv), narrativeCard(inv), routeCard(inv))));
    if (done) {
      if (stream) stream.close();
      stream = null;
      return;
    }
    // The agents stream says when it is done; polling covers the time before the stream is
    // open and a stream that cannot be opened.
    timer = setTimeout(() => ctx.alive() && load(), POLL_MS);
  };
  await load();
  if (!ctx.alive() || DONE.includes((main.querySelector('#inv-status') || { dataset: {} }).dataset.status)) return;
  stream = openStream('agents', {
    on: {
      investigation: (doc) => {
        if (doc && doc.investigation_id === params.id) load();
      },
    },
    onState: live.set,
  });
}
