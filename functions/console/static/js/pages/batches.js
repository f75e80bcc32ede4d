// Production batches: the filtered list, one batch (stage, history, transitions), a new batch,
// and the metrics as charts. The API decides; the console offers the moves its lifecycle
// allows (docs/decisions/0010) and shows the API's problem when one is refused.

import { get, post } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import { chartCard, countAxis, countBars, draw } from '../charts.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  badge, busy, card, clearErrors, facts, field, filterField, input, pageHeader, pagedTable,
  problemAlert, select, showError, spinner, submit, textarea, toast,
} from '../ui.js';

export const STATUSES = ['planned', 'in_progress', 'qa_hold', 'released', 'rejected', 'completed'];
export const STAGES = ['dispensing', 'granulation', 'compression', 'coating', 'packaging'];
const QA = ['qa_hold', 'released', 'rejected'];
const MOVE_TEXT = {
  in_progress: 'Start / resume production', qa_hold: 'Put on QA hold', released: 'Release (QA)',
  rejected: 'Reject (QA)', completed: 'Complete',
};
const FILTERS = ['q', 'status', 'stage', 'product'];

/** The transitions the lifecycle allows from (status, stage), as request bodies. */
export function allowedMoves(status, stage) {
  const i = STAGES.indexOf(stage);
  const following = i >= 0 && i + 1 < STAGES.length ? STAGES[i + 1] : null;
  if (status === 'planned') return [{ status: 'in_progress' }];
  if (status === 'in_progress') return [{ status: 'qa_hold' }, ...(following ? [{ stage: following }] : [])];
  if (status === 'qa_hold') {
    return [{ status: 'in_progress' }, { status: 'rejected' },
      ...(stage === 'packaging' ? [{ status: 'released' }] : [])];
  }
  if (status === 'released') return [{ status: 'completed' }];
  return [];
}

const canWrite = () => session.hasRole('operator', 'manager');
const qty = (n, unit) => (n === null || n === undefined ? '—' : `${Number(n).toLocaleString()} ${unit || ''}`);

function batchRow(b) {
  const href = `#/batches/${encodeURIComponent(b.id)}`;
  return h('tr', { dataset: { id: b.id } },
    h('td', { class: 'wo-number' }, h('a', { href }, b.batch_number)),
    h('td', {}, b.product),
    h('td', { class: 'batch-status' }, badge(b.status)),
    h('td', {}, label(b.stage)),
    h('td', { class: 'num' }, qty(b.planned_quantity, b.unit)),
    h('td', {}, fmtDateTime(b.created_at)));
}

export async function batchList(ctx) {
  const { main, query } = ctx;
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'batch-filters' },
    filterField('bf-q', 'Batch number', input('q', { type: 'search', value: v('q'), placeholder: 'Part of the number' }), 'col-12 col-md-3'),
    filterField('bf-status', 'Status', select('status', STATUSES, { value: v('status'), empty: 'Any' })),
    filterField('bf-stage', 'Stage', select('stage', STAGES, { value: v('stage'), empty: 'Any' })),
    filterField('bf-product', 'Product', input('product', { value: v('product'), placeholder: 'Exact name' }), 'col-12 col-md-3'),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/batches' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/batches', Object.fromEntries(FILTERS.map((k) => [k, d.get(k) || ''])));
  });
  const params = Object.fromEntries(FILTERS.filter((k) => v(k)).map((k) => [k, v(k)]));
  replace(main,
    pageHeader('Production batches',
      h('a', { class: 'btn btn-outline-secondary', href: '#/batches/metrics' }, 'Metrics'),
      canWrite() ? h('a', { class: 'btn btn-primary', href: '#/batches/new', id: 'new-batch' }, 'New batch') : null),
    form,
    pagedTable({ id: 'batch-table', headers: ['Batch', 'Product', 'Status', 'Stage', 'Planned', 'Created'],
      row: batchRow, empty: 'No batches match.',
      load: (cursor) => get('/api/batches', { ...params, limit: 25, cursor }) }));
}

export async function batchNew(ctx) {
  const { main } = ctx;
  const slot = h('div', {});
  const form = h('form', { id: 'batch-form', novalidate: true },
    field('batch_number', 'Batch number', input('batch_number', { required: true, maxlength: 40, placeholder: 'PCM-2026-0001' }),
      'Letters, digits and dashes; stored upper-case.'),
    field('product', 'Product', input('product', { required: true, maxlength: 200 })),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('planned_quantity', 'Planned quantity', input('planned_quantity', { type: 'number', min: 0, step: 'any', required: true }))),
      h('div', { class: 'col-md-6' }, field('unit', 'Unit', input('unit', { required: true, maxlength: 20, placeholder: 'tablets' })))),
    field('planned_start', 'Planned start', input('planned_start', { type: 'datetime-local' })),
    field('notes', 'Notes', textarea('notes', { maxlength: 4000 })),
    submit('Create batch'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = {
      batch_number: d.get('batch_number'), product: d.get('product'),
      planned_quantity: d.get('planned_quantity') === '' ? null : Number(d.get('planned_quantity')),
      unit: d.get('unit'),
    };
    if (d.get('notes')) payload.notes = d.get('notes');
    if (d.get('planned_start')) payload.planned_start = new Date(d.get('planned_start')).toISOString();
    try {
      const b = await busy(form, () => post('/api/batches', payload));
      toast('Batch created.');
      navigate(`/batches/${b.id}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  replace(main, pageHeader('New batch'), card(null, slot, form));
}

function stageStepper(b) {
  const at = STAGES.indexOf(b.stage);
  return h('ol', { class: 'stage-steps', id: 'batch-stages', 'aria-label': 'Manufacturing stages' },
    STAGES.map((s, i) => h('li', {
      class: i < at ? 'done' : i === at ? 'current' : '',
      'aria-current': i === at ? 'step' : null,
    }, label(s))));
}

function moveText(move) {
  return move.stage ? `Advance to ${label(move.stage)}` : MOVE_TEXT[move.status] || label(move.status);
}

function transitionCard(b, reload) {
  const moves = allowedMoves(b.status, b.stage);
  if (!moves.length) return card('Lifecycle', h('p', { class: 'text-secondary mb-0' }, `The batch is ${label(b.status).toLowerCase()}: nothing further.`));
  if (!canWrite()) return card('Lifecycle', h('p', { class: 'text-secondary mb-0' }, 'Operators and managers move batches.'));
  const slot = h('div', {});
  const reason = textarea('reason', { id: 'batch-reason', rows: 2, required: true, maxlength: 1000 });
  const completing = moves.some((m) => m.status === 'completed');
  const actual = completing ? input('actual_quantity', { id: 'batch-actual', type: 'number', min: 0, step: 'any', value: b.actual_quantity ?? '' }) : null;
  const buttons = moves.map((m) => {
    const qaOnly = m.status && QA.includes(m.status) && !session.hasRole('manager');
    return h('button', { class: `btn ${m.status === 'rejected' ? 'btn-outline-danger' : 'btn-outline-primary'}`, type: 'submit',
      dataset: { move: JSON.stringify(m), to: m.stage || m.status }, disabled: qaOnly,
      title: qaOnly ? 'A QA decision: managers only' : null }, moveText(m));
  });
  const form = h('form', { id: 'batch-moves', novalidate: true },
    field('reason', 'Reason (required for every move)', reason),
    actual ? field('actual_quantity', `Actual quantity (${b.unit})`, actual) : null,
    h('div', { class: 'd-flex flex-wrap gap-2' }, buttons));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const move = JSON.parse(event.submitter.dataset.move);
    const payload = { ...move, reason: reason.value, version: b.version };
    if (move.status === 'completed' && actual && actual.value !== '') payload.actual_quantity = Number(actual.value);
    try {
      await busy(form, () => post(`/api/batches/${encodeURIComponent(b.id)}/transitions`, payload));
      toast('Batch moved.');
      await reload();
    } catch (err) {
      showError(slot, err, form);
    }
  });
  return card('Lifecycle', slot, form);
}

function historyCard(items) {
  return card('Stage and status history', items.length ? h('ul', { class: 'timeline', id: 'batch-history' }, items.map((t) => h('li', {},
    h('div', {}, h('span', { class: 'small text-secondary me-1' }, t.kind === 'stage' ? 'Stage' : 'Status'),
      t.from ? [t.kind === 'status' ? badge(t.from) : label(t.from), ' → '] : null,
      t.kind === 'status' ? badge(t.to) : label(t.to)),
    h('div', { class: 'small text-secondary' }, fmtDateTime(t.at), ' · ', String(t.actor).slice(0, 8)),
    t.reason ? h('div', { class: 'small' }, t.reason) : null)))
    : h('p', { class: 'text-secondary mb-0' }, 'No history yet.'));
}

export async function batchDetail(ctx) {
  const { main, params } = ctx;
  const id = encodeURIComponent(params.id);
  replace(main, spinner());
  const reload = async () => {
    let b;
    let history;
    try {
      [b, history] = await Promise.all([get(`/api/batches/${id}`), get(`/api/batches/${id}/history`, { limit: 100 })]);
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader('Batch'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/batches' }, 'Batches')),
        h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, b.batch_number))),
      pageHeader(h('span', {}, h('span', { class: 'text-secondary me-2 wo-number' }, b.batch_number), b.product),
        h('span', { id: 'batch-status' }, badge(b.status, 'fs-6'))),
      stageStepper(b),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-5' }, card('Summary', facts([
          ['Stage', h('span', { id: 'batch-stage' }, label(b.stage))],
          ['Planned', qty(b.planned_quantity, b.unit)],
          ['Actual', qty(b.actual_quantity, b.unit)],
          ['Planned start', fmtDateTime(b.planned_start)],
          ['Started', fmtDateTime(b.started_at)],
          ['Completed', fmtDateTime(b.completed_at)],
          ['Notes', b.notes],
          ['Version', String(b.version)],
        ])), transitionCard(b, reload)),
        h('div', { class: 'col-lg-7' }, historyCard(history.items || []))));
  };
  await reload();
}

export async function batchMetrics(ctx) {
  const { main } = ctx;
  replace(main, pageHeader('Production metrics'), spinner());
  let m;
  try {
    m = await get('/api/batches/metrics');
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Production metrics'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const byStatus = chartCard('Batches by status', 'chart-batch-status');
  const byStage = chartCard('Batches in production by stage', 'chart-batch-stage');
  const through = chartCard(`Completed per day (${m.from} to ${m.to})`, 'chart-throughput');
  const yields = chartCard('Yield by product (actual / planned)', 'chart-yield');
  replace(main,
    pageHeader('Production metrics', h('a', { class: 'btn btn-outline-secondary', href: '#/batches' }, 'Batches')),
    h('p', { class: 'text-secondary', id: 'metrics-total' }, `${m.total} batches, ${m.completed_total} completed in the range.`),
    h('div', { class: 'row g-3' }, byStatus.el, byStage.el, through.el, yields.el));
  countBars(byStatus.canvas, m.by_status, { datasetLabel: 'Batches' });
  countBars(byStage.canvas, m.by_stage, { datasetLabel: 'Batches' });
  draw(through.canvas, {
    type: 'bar',
    data: { labels: m.throughput.map((d) => d.day),
      datasets: [{ label: 'Completed', data: m.throughput.map((d) => d.completed), backgroundColor: '#198754' }] },
    options: { scales: { y: countAxis() } },
  });
  if (m.yield_by_product.length) {
    draw(yields.canvas, {
      type: 'bar',
      data: { labels: m.yield_by_product.map((y) => y.product),
        datasets: [{ label: 'Mean yield (%)', data: m.yield_by_product.map((y) => Math.round(y.yield_avg * 1000) / 10), backgroundColor: '#0d6efd' }] },
      options: { indexAxis: 'y', scales: { x: { beginAtZero: true } } },
    });
  } else {
    yields.canvas.replaceWith(h('p', { class: 'text-secondary mb-0', id: 'no-yield' }, 'No batch completed in the range.'));
  }
}
