// Parts: the stock list, one part (edit, stock movements), a new part.

import { get, post, put } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import * as lookups from '../lookups.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import { changed } from './assets.js';
import {
  busy, card, clearErrors, facts, field, input, pageHeader, problemAlert, scroller, select,
  showError, spinner, submit, table, textarea, toast,
} from '../ui.js';

const KINDS = ['receive', 'consume', 'adjust'];
const KIND_HELP = {
  receive: 'Stock received: adds the quantity.',
  consume: 'Stock used outside a work order: removes the quantity.',
  adjust: 'A stock count correction: the quantity is signed (+/-).',
};

function isLow(p) {
  return p.low_stock ?? p.stock <= p.reorder_point;
}

function stockCell(p) {
  return h('td', { class: 'num' }, String(p.stock),
    isLow(p) ? h('span', { class: 'badge text-bg-danger ms-2' }, 'Low') : null);
}

export async function partList(ctx) {
  const { main, query } = ctx;
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'part-filters' },
    h('div', { class: 'col-12 col-md-4' }, h('label', { class: 'form-label', for: 'p-q' }, 'Search'),
      input('q', { id: 'p-q', type: 'search', value: v('q'), placeholder: 'SKU or name' })),
    h('div', { class: 'col-6 col-md-2' }, h('div', { class: 'form-check mb-2' },
      h('input', { class: 'form-check-input', type: 'checkbox', name: 'low_stock', id: 'p-low',
        value: 'true', checked: v('low_stock') === 'true' }),
      h('label', { class: 'form-check-label', for: 'p-low' }, 'Low stock only'))),
    h('div', { class: 'col-6 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/parts' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/parts', { q: d.get('q') || '', low_stock: d.get('low_stock') || '' });
  });
  const slot = h('div', {});
  const body = h('tbody', {});
  const more = h('button', { class: 'btn btn-outline-secondary d-none', type: 'button' }, 'Load more');
  const count = h('span', { class: 'text-secondary small' });
  const list = h('div', { class: 'card shadow-sm' },
    scroller('Parts', h('table', { class: 'table table-hover align-middle mb-0', id: 'part-table' },
      h('thead', {}, h('tr', {}, h('th', {}, 'SKU'), h('th', {}, 'Name'), h('th', { class: 'num' }, 'Stock'),
        h('th', { class: 'num' }, 'Reorder point'), h('th', {}, 'Unit'), h('th', {}, 'Location'))), body)),
    h('div', { class: 'card-footer d-flex justify-content-between align-items-center' }, count, more));
  replace(main, pageHeader('Parts',
    session.hasRole('manager') ? h('a', { class: 'btn btn-primary', href: '#/parts/new', id: 'new-part' }, 'New part') : null), form, slot, list);
  const params = { q: v('q'), low_stock: v('low_stock') };
  let cursor = null;
  let shown = 0;
  async function load() {
    try {
      const page = await get('/api/parts', { ...params, limit: 50, cursor });
      if (!ctx.alive()) return;
      body.append(...page.items.map((p) => h('tr', { class: isLow(p) ? 'low-stock' : '', dataset: { id: p.id } },
        h('td', {}, h('a', { href: `#/parts/${encodeURIComponent(p.id)}`, class: 'fw-semibold' }, p.sku)),
        h('td', {}, p.name), stockCell(p), h('td', { class: 'num' }, String(p.reorder_point)),
        h('td', {}, p.unit), h('td', {}, p.location || '—'))));
      shown += page.items.length;
      cursor = page.next_cursor;
      more.classList.toggle('d-none', !cursor);
      count.textContent = shown ? `${shown} shown${cursor ? '' : ' (all)'}` : 'No parts match.';
    } catch (err) {
      if (ctx.alive()) replace(slot, problemAlert(err));
    }
  }
  more.addEventListener('click', () => busy(list, load));
  await load();
}

function partFields(part, { creating }) {
  return [
    h('div', { class: 'row' },
      h('div', { class: 'col-md-4' }, field('sku', 'SKU', input('sku', { value: part?.sku || '', required: true, maxlength: 64 }))),
      h('div', { class: 'col-md-8' }, field('name', 'Name', input('name', { value: part?.name || '', required: true, maxlength: 200 })))),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-3' }, field('unit', 'Unit', input('unit', { value: part?.unit || 'pcs', required: true, maxlength: 20 }))),
      creating ? h('div', { class: 'col-md-3' }, field('stock', 'Initial stock', input('stock', { type: 'number', min: 0, value: 0 }))) : null,
      h('div', { class: 'col-md-3' }, field('reorder_point', 'Reorder point', input('reorder_point', { type: 'number', min: 0, value: part?.reorder_point ?? 0 }))),
      h('div', { class: creating ? 'col-md-3' : 'col-md-6' }, field('location', 'Location', input('location', { value: part?.location || '', maxlength: 200 })))),
  ];
}

function partPayload(form, { creating }) {
  const d = new FormData(form);
  const out = {
    sku: d.get('sku'),
    name: d.get('name'),
    unit: d.get('unit'),
    reorder_point: Number(d.get('reorder_point') || 0),
    location: d.get('location') || null,
  };
  if (creating) out.stock = Number(d.get('stock') || 0);
  return out;
}

export async function partNew(ctx) {
  const { main } = ctx;
  const slot = h('div', {});
  const form = h('form', { id: 'part-form', novalidate: true }, partFields(null, { creating: true }),
    h('div', { class: 'd-flex gap-2' }, submit('Create part'),
      h('a', { class: 'btn btn-link', href: '#/parts' }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const payload = partPayload(form, { creating: true });
    if (payload.location === null) delete payload.location;
    try {
      const part = await busy(form, () => post('/api/parts', payload));
      lookups.forget('parts');
      toast(`Part ${part.sku} created.`);
      navigate(`/parts/${encodeURIComponent(part.id)}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  replace(main, pageHeader('New part'), slot, card(null, form));
}

export async function partDetail(ctx) {
  const { main, params } = ctx;
  replace(main, spinner());
  const reload = async () => {
    let part;
    let movements;
    try {
      [part, movements] = await Promise.all([
        get(`/api/parts/${encodeURIComponent(params.id)}`),
        get(`/api/parts/${encodeURIComponent(params.id)}/movements`, { limit: 50 }),
      ]);
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader('Part'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const items = movements.items || [];

    const editSlot = h('div', {});
    const edit = h('form', { id: 'part-edit', novalidate: true }, partFields(part, { creating: false }),
      submit('Save changes'));
    edit.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(editSlot, edit);
      try {
        const payload = changed(part, partPayload(edit, { creating: false }));
        if (!Object.keys(payload).length) {
          toast('Nothing to save.', 'secondary');
          return;
        }
        await busy(edit, () => put(`/api/parts/${encodeURIComponent(part.id)}`, payload));
        lookups.forget('parts');
        toast('Saved.');
        await reload();
      } catch (err) {
        showError(editSlot, err, edit);
      }
    });

    const moveSlot = h('div', {});
    const help = h('div', { class: 'form-text' }, KIND_HELP.receive);
    const kind = select('kind', KINDS, { value: 'receive', id: 'm-kind' });
    kind.addEventListener('change', () => {
      help.textContent = KIND_HELP[kind.value];
    });
    const move = h('form', { class: 'row g-2 align-items-start', id: 'movement-form', novalidate: true },
      h('div', { class: 'col-sm-3' }, h('label', { class: 'form-label', for: 'm-kind' }, 'Kind'), kind),
      h('div', { class: 'col-sm-3' }, h('label', { class: 'form-label', for: 'm-qty' }, 'Quantity'),
        input('quantity', { id: 'm-qty', type: 'number', value: 1 })),
      h('div', { class: 'col-sm-6' }, h('label', { class: 'form-label', for: 'm-note' }, 'Note'),
        textarea('note', { id: 'm-note', rows: 1, maxlength: 1000 })),
      h('div', { class: 'col-12' }, help),
      h('div', { class: 'col-12' }, submit('Record movement')));
    move.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(moveSlot, move);
      const d = new FormData(move);
      const payload = { kind: d.get('kind'), quantity: Number(d.get('quantity')) };
      if (d.get('note')) payload.note = d.get('note');
      try {
        await busy(move, () => post(`/api/parts/${encodeURIComponent(part.id)}/movements`, payload));
        lookups.forget('parts');
        toast('Movement recorded.');
        await reload();
      } catch (err) {
        showError(moveSlot, err, move);
      }
    });

    const rows = items.map((m) => h('tr', {},
      h('td', {}, fmtDateTime(m.created_at)),
      h('td', {}, label(m.kind)),
      h('td', { class: `num ${m.delta < 0 ? 'text-danger' : 'text-success'}` },
        m.delta === undefined ? String(m.quantity) : `${m.delta > 0 ? '+' : ''}${m.delta}`),
      h('td', { class: 'num' }, m.stock_after === undefined ? '—' : String(m.stock_after)),
      h('td', {}, m.work_order_id ? h('a', { href: `#/work-orders/${encodeURIComponent(m.work_order_id)}` }, 'work order') : null,
        m.note ? h('span', { class: 'text-pre-wrap' }, m.work_order_id ? ` · ${m.note}` : m.note) : null)));

    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/parts' }, 'Parts')),
        h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, part.sku))),
      pageHeader(h('span', {}, h('span', { class: 'text-secondary me-2' }, part.sku), part.name),
        isLow(part) ? h('span', { class: 'badge text-bg-danger fs-6' }, 'At/below reorder point') : null),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-5' },
          card('Stock', facts([
            ['In stock', h('span', { id: 'part-stock', class: 'fs-5 fw-semibold' }, `${part.stock} ${part.unit}`)],
            ['Reorder point', `${part.reorder_point} ${part.unit}`],
            ['Location', part.location],
            ['Updated', fmtDateTime(part.updated_at)],
          ])),
          card('Record a movement', moveSlot, move)),
        h('div', { class: 'col-lg-7' }, card('Edit', editSlot, edit))),
      card('Movements', h('div', { id: 'movements' }, table(['When', 'Kind', 'Change', 'Stock after', 'Work order / note'], rows, 'No movements yet.'))));
  };
  await reload();
}
