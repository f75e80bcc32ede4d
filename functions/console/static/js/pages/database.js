// Operations (admins): the database - each context schema's tables, rows and sizes,
// connections against the budget, every table (keyset pages, by schema), the backups with
// "Back up now", and the retention cleanup (a dry run first, then applied).

import { get, post } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  busy, card, facts, filterField, forbidden, pageHeader, pagedTable, problemAlert, select,
  spinner, submit, table, toast,
} from '../ui.js';

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString());
const BACKUP_CLASS = { done: 'text-bg-success', pending: 'text-bg-info', running: 'text-bg-info', failed: 'text-bg-danger' };

function days(keep) {
  // the API gives how long a rule keeps in days (a fraction under a day)
  const n = Number(keep);
  if (!Number.isFinite(n)) return String(keep);
  if (n === 0) return 'Until it expires';
  return n >= 1 ? `${Number.isInteger(n) ? n : n.toFixed(1)} day${n === 1 ? '' : 's'}` : `${Math.round(n * 24)} hours`;
}

function schemasCard(stats) {
  const c = stats.connections;
  return card('Context schemas', h('div', { id: 'db-schemas' },
    h('p', { class: 'small text-secondary' }, `${label(stats.dialect)}`,
      stats.unavailable.length ? ` · not kept by this database: ${stats.unavailable.join(', ')}` : ''),
    table(['Schema', 'Context', 'Tables', 'Rows', 'Size', 'Indexes', 'Dead tuples'],
      stats.schemas.map((s) => h('tr', { dataset: { schema: s.schema } },
        h('td', {}, h('a', { href: `#/ops/database?schema=${encodeURIComponent(s.schema)}` }, s.schema)),
        h('td', {}, s.context), h('td', { class: 'num' }, num(s.tables)), h('td', { class: 'num' }, num(s.rows)),
        h('td', { class: 'num' }, bytes(s.size_bytes)), h('td', { class: 'num' }, bytes(s.index_bytes)),
        h('td', { class: 'num' }, num(s.dead_tuples)))), 'No context schema.'),
    h('h3', { class: 'h6 mt-3' }, 'Connections'),
    facts([
      ['In use', c.in_use === null ? '—' : `${c.in_use}${c.by_state ? ` (${Object.entries(c.by_state).map(([k, n]) => `${n} ${k}`).join(', ')})` : ''}`],
      ['Server limit', c.max_connections === null ? '—' : `${c.max_connections}${c.reserved ? `, ${c.reserved} reserved` : ''}`],
      ['Deployments\u2019 budget', h('span', { class: c.max_connections !== null && c.budget > c.max_connections ? 'text-danger fw-semibold' : '' }, String(c.budget))],
    ])));
}

function backupRow(b) {
  return h('tr', { dataset: { id: b.id } },
    h('td', { class: 'text-nowrap' }, fmtDateTime(b.requested_at)),
    h('td', {}, h('span', { class: `badge ${BACKUP_CLASS[b.status] || 'text-bg-light border'} backup-status` }, label(b.status))),
    h('td', {}, label(b.method)),
    h('td', { class: 'small font-monospace backup-location', title: b.location || '' }, b.location),
    h('td', { class: 'num' }, bytes(b.size_bytes)),
    h('td', { class: 'text-nowrap' }, fmtDateTime(b.finished_at)),
    h('td', { class: 'text-danger small' }, b.error || ''));
}

function backupsCard(ctx) {
  const slot = h('div', {});
  const start = h('button', { class: 'btn btn-primary btn-sm', type: 'button', id: 'backup-start' }, 'Back up now');
  const list = h('div', {});
  const show = () => replace(list, pagedTable({
    id: 'backup-table', headers: ['Requested', 'Status', 'Method', 'Location', 'Size', 'Finished', 'Error'],
    row: backupRow, empty: 'No backup yet.',
    load: (cursor) => get('/api/ops/database/backups', { limit: 10, cursor }),
  }));
  start.addEventListener('click', async () => {
    slot.replaceChildren();
    try {
      const b = await busy(start.parentElement, () => post('/api/ops/database/backup', {}));
      toast(b.status === 'done' ? `Backup written (${bytes(b.size_bytes)}).` : `Backup ${label(b.status).toLowerCase()}.`);
      if (ctx.alive()) show();
    } catch (err) {
      replace(slot, problemAlert(err));
    }
  });
  show();
  return h('div', { class: 'card shadow-sm mb-3', id: 'db-backups' },
    h('div', { class: 'card-header fw-semibold d-flex justify-content-between align-items-center' },
      h('span', {}, 'Backups'), h('span', {}, start)),
    h('div', { class: 'card-body' }, slot, list));
}

function cleanupCard(rules) {
  const slot = h('div', {});
  const report = h('div', { id: 'cleanup-report' });
  const dry = h('button', { class: 'btn btn-outline-primary btn-sm', type: 'button', id: 'cleanup-dry-run' }, 'Dry run');
  const apply = h('button', { class: 'btn btn-outline-danger btn-sm', type: 'button', id: 'cleanup-apply', disabled: true,
    title: 'Run the dry run first' }, 'Remove what the dry run found');
  async function run(dryRun) {
    slot.replaceChildren();
    try {
      const out = await busy(dry.parentElement, () => post('/api/ops/database/cleanup', { dry_run: dryRun }));
      replace(report, h('p', { class: 'small mb-2' }, dryRun ? `Dry run: ${num(out.total)} would be removed.` : `Removed ${num(out.total)}.`),
        table(['Kind', 'Older than', dryRun ? 'Would remove' : 'Removed'], out.results.map((r) => h('tr', { dataset: { kind: r.kind } },
          h('td', {}, h('div', {}, h('code', {}, r.kind)), h('div', { class: 'small text-secondary' }, r.description)),
          h('td', { class: 'text-nowrap' }, fmtDateTime(r.cutoff)),
          h('td', { class: 'num' }, num(dryRun ? r.matched : r.removed))))));
      apply.disabled = !dryRun || !out.total;
    } catch (err) {
      replace(slot, problemAlert(err));
    }
  }
  dry.addEventListener('click', () => run(true));
  apply.addEventListener('click', () => {
    // eslint-disable-next-line no-alert
    if (window.confirm('Remove every row and document the retention rules match now?')) run(false);
  });
  return card('Retention cleanup', slot,
    table(['Kind', 'Store', 'Keeps', 'Declared by'], rules.map((r) => h('tr', {},
      h('td', {}, h('code', {}, r.kind), h('div', { class: 'small text-secondary' }, r.description)),
      h('td', {}, label(r.store), r.collection ? h('div', { class: 'small text-secondary' }, r.collection) : null),
      h('td', { class: 'text-nowrap' }, days(r.keep)), h('td', {}, r.context))), 'No retention rule.'),
    h('div', { class: 'd-flex flex-wrap gap-2 my-3' }, dry, apply), report);
}

export async function databasePage(ctx) {
  const { main, query } = ctx;
  if (!session.hasRole('admin')) return forbidden(main, 'Database', ['admin']);
  const schema = query.get('schema') || '';
  const header = pageHeader('Database',
    h('a', { class: 'btn btn-outline-secondary btn-sm', href: '#/ops' }, 'Operations'),
    h('button', { class: 'btn btn-outline-secondary btn-sm', type: 'button', id: 'db-refresh', onclick: () => navigate('/ops/database', { schema }) }, 'Refresh'));
  replace(main, header, spinner('Reading the database statistics…'));
  let stats;
  let rules;
  try {
    [stats, rules] = await Promise.all([get('/api/ops/database/statistics'), get('/api/ops/database/cleanup')]);
  } catch (err) {
    if (ctx.alive()) replace(main, header, problemAlert(err));
    return undefined;
  }
  if (!ctx.alive()) return undefined;
  const form = h('form', { class: 'row g-2 align-items-end filters mb-2', id: 'table-filters' },
    filterField('tf-schema', 'Schema', select('schema', stats.schemas.map((s) => [s.schema, s.schema]), { value: schema, empty: 'All' }), 'col-8 col-md-3'),
    h('div', { class: 'col-auto' }, submit('Show', 'btn-outline-primary')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate('/ops/database', { schema: new FormData(form).get('schema') || '' });
  });
  replace(main, header,
    schemasCard(stats), backupsCard(ctx),
    h('h2', { class: 'h5 mt-2' }, 'Tables'), form,
    pagedTable({
      id: 'db-tables', headers: ['Schema', 'Table', 'Rows', 'Total size', 'Data', 'Indexes', 'Dead tuples', 'Last vacuum', 'Last analyze'],
      row: (t) => h('tr', { dataset: { table: `${t.schema}.${t.name}` } },
        h('td', {}, t.schema), h('td', { class: 'font-monospace' }, t.name), h('td', { class: 'num' }, num(t.rows)),
        h('td', { class: 'num' }, bytes(t.size_bytes)), h('td', { class: 'num' }, bytes(t.table_bytes)),
        h('td', { class: 'num' }, bytes(t.index_bytes)), h('td', { class: 'num' }, num(t.dead_tuples)),
        h('td', { class: 'text-nowrap' }, fmtDateTime(t.last_vacuum)), h('td', { class: 'text-nowrap' }, fmtDateTime(t.last_analyze))),
      empty: 'No table in this schema.',
      load: (cursor) => get('/api/ops/database/tables', { schema, limit: 50, cursor }),
    }),
    cleanupCard(rules.items));
  return undefined;
}
