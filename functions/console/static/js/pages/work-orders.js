// Work orders: the filtered list, one order (edit, transitions, parts used), a new order.

import { get, post, put } from '../api.js';
import { fmtDate, fmtDateTime, h, label, replace } from '../dom.js';
import * as lookups from '../lookups.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  badge, busy, card, clearErrors, facts, field, input, pageHeader, problemAlert, scroller, select,
  showError, spinner, submit, table, textarea, toast,
} from '../ui.js';

export const STATUSES = ['open', 'assigned', 'in_progress', 'on_hold', 'completed', 'closed',
  'cancelled'];
export const PRIORITIES = ['low', 'medium', 'high', 'urgent'];
export const TYPES = ['corrective', 'preventive', 'inspection'];
// The lifecycle as the API enforces it (it answers 409 with `allowed` otherwise); the console
// only uses it to offer the plausible next moves.
const NEXT = {
  open: ['assigned', 'cancelled'],
  assigned: ['in_progress', 'open', 'cancelled'],
  in_progress: ['on_hold', 'completed', 'cancelled'],
  on_hold: ['in_progress', 'cancelled'],
  completed: ['closed', 'in_progress'],
  closed: [],
  cancelled: [],
};
const MOVE_TEXT = {
  assigned: 'Assign', in_progress: 'Start work', on_hold: 'Put on hold', completed: 'Complete',
  closed: 'Close', cancelled: 'Cancel', open: 'Hand back',
};
const ASSIGNABLE = ['operator', 'manager', 'admin'];
const FILTERS = ['q', 'status', 'priority', 'type', 'asset_id', 'assignee_id', 'overdue'];

export function woNumber(wo) {
  return wo.number !== undefined && wo.number !== null
    ? `WO-${String(wo.number).padStart(5, '0')}` : String(wo.id).slice(0, 8);
}

function dueCell(wo) {
  if (!wo.due_date) return '—';
  return h('span', { class: wo.overdue ? 'text-danger fw-semibold' : '' }, fmtDate(wo.due_date),
    wo.overdue ? h('span', { class: 'badge text-bg-danger ms-2' }, 'Overdue') : null);
}

export function workOrderRows(items) {
  return items.map((wo) => h('tr', { dataset: { id: wo.id } },
    h('td', { class: 'wo-number' }, h('a', { href: `#/work-orders/${encodeURIComponent(wo.id)}` },
      woNumber(wo))),
    h('td', {}, h('a', { href: `#/work-orders/${encodeURIComponent(wo.id)}`,
      class: 'link-body-emphasis text-decoration-none' }, wo.title)),
    h('td', {}, wo.asset_tag ? `${wo.asset_tag} · ${wo.asset_name || ''}` : '—'),
    h('td', {}, badge(wo.priority)),
    h('td', { class: 'wo-status' }, badge(wo.status)),
    h('td', {}, dueCell(wo)),
    h('td', {}, wo.assignee_id ? (wo.assignee_name || lookups.userText(null, wo.assignee_id))
      : h('span', { class: 'text-secondary' }, 'Unassigned'))));
}

export const WO_HEADERS = ['Number', 'Title', 'Asset', 'Priority', 'Status', 'Due', 'Assignee'];

function filterForm(query, assets) {
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'wo-filters' },
    h('div', { class: 'col-12 col-md-3' }, h('label', { class: 'form-label', for: 'f-q' }, 'Search'),
      input('q', { id: 'f-q', type: 'search', value: v('q'), placeholder: 'Title or description' })),
    h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label', for: 'f-status' }, 'Status'),
      select('status', STATUSES, { id: 'f-status', value: v('status'), empty: 'Any' })),
    h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label', for: 'f-priority' }, 'Priority'),
      select('priority', PRIORITIES, { id: 'f-priority', value: v('priority'), empty: 'Any' })),
    h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label', for: 'f-type' }, 'Type'),
      select('type', TYPES, { id: 'f-type', value: v('type'), empty: 'Any' })),
    h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label', for: 'f-asset' }, 'Asset'),
      select('asset_id', assets.map((a) => [a.id, lookups.assetText(a)]),
        { id: 'f-asset', value: v('asset_id'), empty: 'Any' })),
    h('div', { class: 'col-6 col-md-1' }, h('div', { class: 'form-check mb-2' },
      h('input', { class: 'form-check-input', type: 'checkbox', name: 'overdue', id: 'f-overdue',
        value: 'true', checked: v('overdue') === 'true' }),
      h('label', { class: 'form-check-label', for: 'f-overdue' }, 'Overdue'))),
    h('input', { type: 'hidden', name: 'assignee_id', value: v('assignee_id') }),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/work-orders' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const q = {};
    for (const key of FILTERS) q[key] = data.get(key) || '';
    navigate('/work-orders', q);
  });
  return form;
}

export async function workOrderList(ctx) {
  const { main, query } = ctx;
  replace(main, pageHeader('Work orders',
    h('a', { class: 'btn btn-outline-secondary', href: '#/work-orders?assignee_id=me' }, 'Assigned to me'),
    session.hasRole('manager') ? h('a', { class: 'btn btn-primary', href: '#/work-orders/new', id: 'new-work-order' }, 'New work order') : null),
  spinner());
  let assets;
  try {
    assets = await lookups.assets();
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Work orders'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const params = {};
  for (const key of FILTERS) if (query.get(key)) params[key] = query.get(key);
  const body = h('tbody', {});
  const slot = h('div', {});
  const more = h('button', { class: 'btn btn-outline-secondary d-none', type: 'button' }, 'Load more');
  const count = h('span', { class: 'text-secondary small' });
  const list = h('div', { class: 'card shadow-sm' },
    scroller('Work orders', h('table', { class: 'table table-hover align-middle mb-0', id: 'wo-table' },
      h('thead', {}, h('tr', {}, WO_HEADERS.map((t) => h('th', { scope: 'col' }, t)))), body)),
    h('div', { class: 'card-footer d-flex justify-content-between align-items-center' }, count, more));
  replace(main, main.firstChild, filterForm(query, assets), slot, list);
  let cursor = null;
  let shown = 0;
  async function load() {
    try {
      const page = await get('/api/work-orders', { ...params, limit: 25, cursor });
      if (!ctx.alive()) return;
      body.append(...workOrderRows(page.items));
      shown += page.items.length;
      cursor = page.next_cursor;
      more.classList.toggle('d-none', !cursor);
      count.textContent = shown ? `${shown} shown${cursor ? '' : ' (all)'}` : 'No work orders match.';
    } catch (err) {
      if (ctx.alive()) replace(slot, problemAlert(err));
    }
  }
  more.addEventListener('click', () => busy(list, load));
  await load();
}

function nullIfEmpty(value) {
  return value === '' || value === null ? null : value;
}

export async function workOrderNew(ctx) {
  const { main, query } = ctx;
  replace(main, pageHeader('New work order'), spinner());
  let assets;
  let users;
  try {
    [assets, users] = await Promise.all([lookups.assets(), lookups.users()]);
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('New work order'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const live = assets.filter((a) => a.status !== 'retired');
  const slot = h('div', {});
  const form = h('form', { id: 'wo-form', novalidate: true },
    field('title', 'Title', input('title', { required: true, maxlength: 200 })),
    field('description', 'Description', textarea('description', { rows: 4 })),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('asset_id', 'Asset', select('asset_id',
        live.map((a) => [a.id, lookups.assetText(a)]), { value: query.get('asset_id') || '', empty: 'Choose an asset…', required: true }),
      live.length ? null : h('span', {}, 'No assets yet: ', h('a', { href: '#/assets/new' }, 'create one first'), '.'))),
      h('div', { class: 'col-md-3' }, field('priority', 'Priority', select('priority', PRIORITIES, { value: 'medium' }))),
      h('div', { class: 'col-md-3' }, field('type', 'Type', select('type', TYPES, { value: 'corrective' })))),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('due_date', 'Due date', input('due_date', { type: 'date' }))),
      h('div', { class: 'col-md-6' }, field('assignee_id', 'Assignee', select('assignee_id', userOptions(users), { empty: 'Unassigned (open)' })))),
    h('div', { class: 'd-flex gap-2' }, submit('Create work order'),
      h('a', { class: 'btn btn-link', href: '#/work-orders' }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = {
      title: d.get('title'),
      description: nullIfEmpty(d.get('description')),
      asset_id: d.get('asset_id'),
      priority: d.get('priority'),
      type: d.get('type'),
      due_date: nullIfEmpty(d.get('due_date')),
      assignee_id: nullIfEmpty(d.get('assignee_id')),
    };
    for (const key of Object.keys(payload)) if (payload[key] === null) delete payload[key];
    try {
      const wo = await busy(form, () => post('/api/work-orders', payload));
      toast(`Work order ${woNumber(wo)} created.`);
      navigate(`/work-orders/${encodeURIComponent(wo.id)}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  replace(main, pageHeader('New work order'), slot, card(null, form));
}

function userOptions(users) {
  return users.filter((u) => (u.roles || []).some((r) => ASSIGNABLE.includes(r)))
    .map((u) => [u.id, `${u.name} (${u.email})`]);
}

function transitionCard(wo, users, reload) {
  const slot = h('div', {});
  const moves = Array.isArray(wo.allowed_transitions) ? wo.allowed_transitions : (NEXT[wo.status] || []);
  const reason = input('reason', { id: 'wo-reason', maxlength: 2000,
    placeholder: 'Reason (required to hold, cancel or reopen)' });
  const me = (session.claims() || {}).sub;
  const assignee = moves.includes('assigned') ? select('assignee_id', userOptions(users), {
    id: 'wo-assign-to', value: wo.assignee_id || '', empty: wo.assignee_id ? null : 'Choose who…' }) : null;
  const box = h('div', {});
  const buttons = moves.map((to) => h('button', {
    type: 'button',
    class: `btn ${to === 'cancelled' ? 'btn-outline-danger' : to === 'completed' ? 'btn-success' : 'btn-outline-primary'}`,
    dataset: { to },
    onclick: async () => {
      clearErrors(slot);
      const payload = { status: to };
      if (reason.value.trim()) payload.reason = reason.value.trim();
      if (to === 'assigned' && assignee && assignee.value) payload.assignee_id = assignee.value;
      try {
        await busy(box, () => post(`/api/work-orders/${encodeURIComponent(wo.id)}/transitions`, payload));
        toast(`Moved to ${label(to).toLowerCase()}.`);
        await reload();
      } catch (err) {
        showError(slot, err);
      }
    },
  }, MOVE_TEXT[to] || label(to)));
  replace(box,
    assignee ? h('div', { class: 'mb-2' }, h('label', { class: 'form-label small text-secondary', for: 'wo-assign-to' }, 'Assign to'), assignee) : null,
    h('div', { class: 'mb-2' }, reason),
    h('div', { class: 'd-flex flex-wrap gap-2', id: 'wo-moves' }, buttons));
  return card('Status',
    h('div', { class: 'mb-2' }, 'Now ', badge(wo.status, 'fs-6'),
      wo.overdue ? h('span', { class: 'badge text-bg-danger ms-2' }, 'Overdue') : null,
      wo.assignee_id === me ? h('span', { class: 'badge text-bg-light border ms-2' }, 'Yours') : null),
    slot,
    moves.length ? box : h('p', { class: 'text-secondary mb-0' }, 'This work order is finished; no further moves.'));
}

const NULLABLE = ['description', 'due_date', 'assignee_id', 'labour_notes'];
const EDITABLE = ['title', 'description', 'asset_id', 'priority', 'type', 'due_date', 'assignee_id', 'labour_notes'];

function editCard(wo, users, assets, reload) {
  const slot = h('div', {});
  const locked = ['closed', 'cancelled'].includes(wo.status);
  const assetOptions = assets.map((a) => [a.id, lookups.assetText(a)]);
  if (!assets.some((a) => a.id === wo.asset_id)) assetOptions.push([wo.asset_id, `${wo.asset_tag} · ${wo.asset_name}`]);
  const people = userOptions(users);
  if (wo.assignee_id && !people.some(([id]) => id === wo.assignee_id)) people.push([wo.assignee_id, wo.assignee_name || wo.assignee_id]);
  const form = h('form', { id: 'wo-edit', novalidate: true },
    field('title', 'Title', input('title', { value: wo.title, required: true, maxlength: 200 })),
    field('description', 'Description', textarea('description', { value: wo.description || '' })),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('asset_id', 'Asset', select('asset_id', assetOptions, { value: wo.asset_id }))),
      h('div', { class: 'col-md-6' }, field('assignee_id', 'Assignee', select('assignee_id', people, { value: wo.assignee_id || '', empty: 'Unassigned' })))),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-4' }, field('priority', 'Priority', select('priority', PRIORITIES, { value: wo.priority }))),
      h('div', { class: 'col-md-4' }, field('type', 'Type', select('type', TYPES, { value: wo.type }))),
      h('div', { class: 'col-md-4' }, field('due_date', 'Due date', input('due_date', { type: 'date', value: wo.due_date || '' })))),
    field('labour_notes', 'Labour notes', textarea('labour_notes', { value: wo.labour_notes || '', rows: 4 })),
    h('div', { class: 'd-flex gap-2' }, submit('Save changes')));
  if (locked) {
    for (const el of form.elements) el.disabled = true;
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    // Only what changed: the update is partial, and operators may change labour notes only.
    const payload = {};
    for (const key of EDITABLE) {
      // Emptying a nullable field clears it; a required one is sent as typed (the API says why).
      const value = NULLABLE.includes(key) ? nullIfEmpty(d.get(key)) : d.get(key);
      if (value !== (wo[key] ?? null)) payload[key] = value;
    }
    if (!Object.keys(payload).length) {
      toast('Nothing to save.', 'secondary');
      return;
    }
    try {
      await busy(form, () => put(`/api/work-orders/${encodeURIComponent(wo.id)}`, payload));
      toast('Saved.');
      await reload();
    } catch (err) {
      showError(slot, err, form);
    }
  });
  return card(locked ? 'Details (locked)' : 'Edit', slot, form);
}

function partsCard(wo, used, parts, reload) {
  const slot = h('div', {});
  const form = h('form', { class: 'row g-2 align-items-end', id: 'wo-parts', novalidate: true },
    h('div', { class: 'col-sm-7' }, h('label', { class: 'form-label', for: 'wo-part' }, 'Part'),
      select('part_id', parts.map((p) => [p.id, `${p.sku} · ${p.name} (${p.stock} ${p.unit} in stock)`]),
        { id: 'wo-part', empty: 'Choose a part…' })),
    h('div', { class: 'col-sm-2' }, h('label', { class: 'form-label', for: 'wo-qty' }, 'Quantity'),
      input('quantity', { id: 'wo-qty', type: 'number', min: 1, value: 1 })),
    h('div', { class: 'col-sm-3 d-grid' }, submit('Use part', 'btn-outline-primary')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    try {
      await busy(form, () => post(`/api/work-orders/${encodeURIComponent(wo.id)}/parts`, {
        part_id: d.get('part_id'), quantity: Number(d.get('quantity')) }));
      lookups.forget('parts');
      toast('Part recorded.');
      await reload();
    } catch (err) {
      showError(slot, err, form);
    }
  });
  const rows = used.map((m) => h('tr', {},
    h('td', {}, h('a', { href: `#/parts/${encodeURIComponent(m.part_id)}` }, `${m.sku || ''} · ${m.part_name || ''}`)),
    h('td', { class: 'num' }, String(m.quantity)),
    h('td', {}, fmtDateTime(m.created_at))));
  return card('Parts used', slot,
    h('div', { class: 'mb-3', id: 'wo-parts-used' }, table(['Part', 'Qty', 'When'], rows, 'No parts used yet.')),
    ['closed', 'cancelled'].includes(wo.status) ? null : form);
}

function historyCard(log, usersById) {
  if (!log.length) return null;
  return card('History', h('ul', { class: 'timeline', id: 'wo-history' }, log.map((e) => h('li', {},
    h('div', {}, e.from_status ? [badge(e.from_status), ' → '] : null, badge(e.to_status)),
    h('div', { class: 'small text-secondary' }, fmtDateTime(e.at), ' · ',
      lookups.userText(usersById.get(e.actor_id), e.actor_id)),
    e.reason ? h('div', { class: 'small' }, e.reason) : null))));
}

export async function workOrderDetail(ctx) {
  const { main, params } = ctx;
  const id = encodeURIComponent(params.id);
  replace(main, spinner());
  const reload = async () => {
    let wo;
    let log;
    let used;
    let assets;
    let users;
    let parts;
    try {
      [wo, log, used, assets, users, parts] = await Promise.all([
        get(`/api/work-orders/${id}`),
        get(`/api/work-orders/${id}/transitions`),
        get(`/api/work-orders/${id}/parts`, { limit: 100 }),
        lookups.assets(), lookups.users(), lookups.parts(),
      ]);
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader('Work order'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const usersById = new Map(users.map((u) => [u.id, u]));
    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/work-orders' }, 'Work orders')),
        h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, woNumber(wo)))),
      pageHeader(h('span', {}, h('span', { class: 'text-secondary me-2 wo-number' }, woNumber(wo)), wo.title),
        h('span', { id: 'wo-status' }, badge(wo.status, 'fs-6'))),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-5' },
          card('Summary', facts([
            ['Asset', h('a', { href: `#/assets/${encodeURIComponent(wo.asset_id)}` }, `${wo.asset_tag} · ${wo.asset_name}`)],
            ['Type', label(wo.type)],
            ['Priority', badge(wo.priority)],
            ['Due', dueCell(wo)],
            ['Assignee', wo.assignee_id ? (wo.assignee_name || lookups.userText(usersById.get(wo.assignee_id), wo.assignee_id)) : 'Unassigned'],
            ['Created', fmtDateTime(wo.created_at)],
            ['Updated', fmtDateTime(wo.updated_at)],
            wo.completed_at ? ['Completed', fmtDateTime(wo.completed_at)] : null,
            wo.closed_at ? ['Closed', fmtDateTime(wo.closed_at)] : null,
            wo.cancelled_at ? ['Cancelled', fmtDateTime(wo.cancelled_at)] : null,
          ].filter(Boolean)),
          wo.description ? h('p', { class: 'mt-3 mb-0 text-pre-wrap' }, wo.description) : null),
          transitionCard(wo, users, reload),
          historyCard(log.items || [], usersById)),
        h('div', { class: 'col-lg-7' }, editCard(wo, users, assets, reload), partsCard(wo, used.items || [], parts, reload))));
  };
  await reload();
}
