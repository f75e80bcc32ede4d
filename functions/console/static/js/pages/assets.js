// Assets: the list, one asset (edit, retire, its work-order history), a new asset.

import { del, get, post, put } from '../api.js';
import { fmtDateTime, h, replace } from '../dom.js';
import * as lookups from '../lookups.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  badge, busy, card, clearErrors, facts, field, input, pageHeader, problemAlert, scroller, select,
  showError, spinner, submit, table, toast,
} from '../ui.js';
import { WO_HEADERS, workOrderRows } from './work-orders.js';

export const ASSET_STATUSES = ['operational', 'degraded', 'down', 'retired'];
export const CRITICALITIES = ['low', 'medium', 'high', 'critical'];
const FILTERS = ['q', 'status', 'criticality', 'category', 'location'];

function assetRows(items, byId) {
  return items.map((a) => h('tr', { dataset: { id: a.id } },
    h('td', {}, h('a', { href: `#/assets/${encodeURIComponent(a.id)}`, class: 'fw-semibold' }, a.tag)),
    h('td', {}, a.name),
    h('td', {}, a.category || '—'),
    h('td', {}, a.location || '—'),
    h('td', {}, a.parent_id ? (byId.get(a.parent_id)?.tag || '—') : '—'),
    h('td', {}, badge(a.criticality)),
    h('td', {}, badge(a.status))));
}

export async function assetList(ctx) {
  const { main, query } = ctx;
  const header = pageHeader('Assets',
    session.hasRole('manager') ? h('a', { class: 'btn btn-primary', href: '#/assets/new', id: 'new-asset' }, 'New asset') : null);
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'asset-filters' },
    h('div', { class: 'col-12 col-md-4' }, h('label', { class: 'form-label', for: 'a-q' }, 'Search'),
      input('q', { id: 'a-q', type: 'search', value: v('q'), placeholder: 'Tag or name' })),
    h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label', for: 'a-status' }, 'Status'),
      select('status', ASSET_STATUSES, { id: 'a-status', value: v('status'), empty: 'In service' })),
    h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label', for: 'a-crit' }, 'Criticality'),
      select('criticality', CRITICALITIES, { id: 'a-crit', value: v('criticality'), empty: 'Any' })),
    h('div', { class: 'col-6 col-md-2' }, h('label', { class: 'form-label', for: 'a-cat' }, 'Category'),
      input('category', { id: 'a-cat', value: v('category') })),
    h('input', { type: 'hidden', name: 'location', value: v('location') }),
    h('div', { class: 'col-6 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/assets' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/assets', Object.fromEntries(FILTERS.map((k) => [k, d.get(k) || ''])));
  });
  const slot = h('div', {});
  const body = h('tbody', {});
  const more = h('button', { class: 'btn btn-outline-secondary d-none', type: 'button' }, 'Load more');
  const count = h('span', { class: 'text-secondary small' });
  const list = h('div', { class: 'card shadow-sm' },
    scroller('Assets', h('table', { class: 'table table-hover align-middle mb-0', id: 'asset-table' },
      h('thead', {}, h('tr', {}, ['Tag', 'Name', 'Category', 'Location', 'Parent', 'Criticality', 'Status']
        .map((t) => h('th', { scope: 'col' }, t)))), body)),
    h('div', { class: 'card-footer d-flex justify-content-between align-items-center' }, count, more));
  replace(main, header, form, slot, list);
  const params = {};
  for (const key of FILTERS) if (query.get(key)) params[key] = query.get(key);
  let byId = new Map();
  try {
    byId = await lookups.byId(lookups.assets());
  } catch {
    // parent tags are a nicety
  }
  let cursor = null;
  let shown = 0;
  async function load() {
    try {
      const page = await get('/api/assets', { ...params, limit: 50, cursor });
      if (!ctx.alive()) return;
      body.append(...assetRows(page.items, byId));
      shown += page.items.length;
      cursor = page.next_cursor;
      more.classList.toggle('d-none', !cursor);
      count.textContent = shown ? `${shown} shown${cursor ? '' : ' (all)'}` : 'No assets match.';
    } catch (err) {
      if (ctx.alive()) replace(slot, problemAlert(err));
    }
  }
  more.addEventListener('click', () => busy(list, load));
  await load();
}

function assetForm(asset, assets, id) {
  const parents = assets.filter((a) => !asset || a.id !== asset.id);
  return h('form', { id, novalidate: true },
    h('div', { class: 'row' },
      h('div', { class: 'col-md-4' }, field('tag', 'Tag', input('tag', { value: asset?.tag || '', required: true, maxlength: 64 }))),
      h('div', { class: 'col-md-8' }, field('name', 'Name', input('name', { value: asset?.name || '', required: true, maxlength: 200 })))),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('category', 'Category', input('category', { value: asset?.category || '', maxlength: 100 }))),
      h('div', { class: 'col-md-6' }, field('location', 'Location', input('location', { value: asset?.location || '', maxlength: 200 })))),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-4' }, field('parent_id', 'Parent', select('parent_id',
        parents.map((a) => [a.id, lookups.assetText(a)]), { value: asset?.parent_id || '', empty: 'None (top level)' }))),
      h('div', { class: 'col-md-4' }, field('status', 'Status', select('status', ASSET_STATUSES, { value: asset?.status || 'operational' }))),
      h('div', { class: 'col-md-4' }, field('criticality', 'Criticality', select('criticality', CRITICALITIES, { value: asset?.criticality || 'medium' })))));
}

function assetPayload(form) {
  const d = new FormData(form);
  const out = {};
  for (const key of ['tag', 'name', 'category', 'location', 'parent_id', 'status', 'criticality']) {
    const value = d.get(key);
    // Emptying a nullable field clears it; a required one is sent as typed (the API says why).
    out[key] = value === '' && ['category', 'location', 'parent_id'].includes(key) ? null : value;
  }
  return out;
}

/** The fields whose value differs from `before` (updates are partial). */
export function changed(before, after) {
  return Object.fromEntries(Object.entries(after).filter(([k, v]) => v !== (before[k] ?? null)));
}

export async function assetNew(ctx) {
  const { main } = ctx;
  replace(main, pageHeader('New asset'), spinner());
  let assets = [];
  try {
    assets = await lookups.assets();
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('New asset'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const slot = h('div', {});
  const form = assetForm(null, assets, 'asset-form');
  form.append(h('div', { class: 'd-flex gap-2' }, submit('Create asset'),
    h('a', { class: 'btn btn-link', href: '#/assets' }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const payload = assetPayload(form);
    for (const key of Object.keys(payload)) if (payload[key] === null) delete payload[key];
    try {
      const asset = await busy(form, () => post('/api/assets', payload));
      lookups.forget('assets');
      toast(`Asset ${asset.tag} created.`);
      navigate(`/assets/${encodeURIComponent(asset.id)}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  replace(main, pageHeader('New asset'), slot, card(null, form));
}

export async function assetDetail(ctx) {
  const { main, params } = ctx;
  replace(main, spinner());
  const reload = async () => {
    let asset;
    let assets;
    let history;
    try {
      [asset, assets, history] = await Promise.all([
        get(`/api/assets/${encodeURIComponent(params.id)}`),
        lookups.assets(),
        get(`/api/assets/${encodeURIComponent(params.id)}/history`, { limit: 50 }),
      ]);
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader('Asset'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const byId = new Map(assets.map((a) => [a.id, a]));
    const parent = asset.parent_id ? byId.get(asset.parent_id) : null;
    const children = assets.filter((a) => a.parent_id === asset.id);
    const slot = h('div', {});
    const form = assetForm(asset, assets, 'asset-edit');
    form.append(h('div', { class: 'd-flex gap-2' }, submit('Save changes'),
      asset.status === 'retired' ? null : h('button', { class: 'btn btn-outline-danger ms-auto', type: 'button',
        onclick: async () => {
          if (!window.confirm(`Retire ${asset.tag}? It stays in the history.`)) return;
          clearErrors(slot, form);
          try {
            await busy(form, () => del(`/api/assets/${encodeURIComponent(asset.id)}`));
            lookups.forget('assets');
            toast(`${asset.tag} retired.`);
            await reload();
          } catch (err) {
            showError(slot, err);
          }
        } }, 'Retire')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(slot, form);
      try {
        const payload = changed(asset, assetPayload(form));
        if (!Object.keys(payload).length) {
          toast('Nothing to save.', 'secondary');
          return;
        }
        await busy(form, () => put(`/api/assets/${encodeURIComponent(asset.id)}`, payload));
        lookups.forget('assets');
        toast('Saved.');
        await reload();
      } catch (err) {
        showError(slot, err, form);
      }
    });
    const items = history.items || [];
    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/assets' }, 'Assets')),
        h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, asset.tag))),
      pageHeader(h('span', {}, h('span', { class: 'text-secondary me-2' }, asset.tag), asset.name),
        badge(asset.status, 'fs-6'),
        asset.status === 'retired' ? null : h('a', { class: 'btn btn-primary',
          href: `#/work-orders/new?asset_id=${encodeURIComponent(asset.id)}` }, 'New work order')),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-5' },
          card('Summary', facts([
            ['Category', asset.category],
            ['Location', asset.location],
            ['Criticality', badge(asset.criticality)],
            ['Parent', parent ? h('a', { href: `#/assets/${encodeURIComponent(parent.id)}` }, lookups.assetText(parent)) : null],
            ['Children', children.length ? children.map((c, i) => [i ? ', ' : '',
              h('a', { href: `#/assets/${encodeURIComponent(c.id)}` }, c.tag)]) : null],
            ['Created', fmtDateTime(asset.created_at)],
            ['Updated', fmtDateTime(asset.updated_at)],
            asset.retired_at ? ['Retired', fmtDateTime(asset.retired_at)] : null,
          ].filter(Boolean)))),
        h('div', { class: 'col-lg-7' }, card('Edit', slot, form))),
      card(h('span', {}, 'Work-order history ',
        h('a', { class: 'small fw-normal ms-2', href: `#/work-orders?asset_id=${encodeURIComponent(asset.id)}` }, 'filter the list')),
      h('div', { id: 'asset-history' }, table(WO_HEADERS, workOrderRows(items), 'No work orders for this asset yet.'))));
  };
  await reload();
}
