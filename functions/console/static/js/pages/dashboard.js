// The dashboard: figures and charts from GET /api/maintenance/stats, and the overdue orders.

import { get } from '../api.js';
import { fmtDay, fmtHours, h, label, replace } from '../dom.js';
import { chartCard, countAxis, countBars, destroyCharts, doughnut, draw } from '../charts.js';
import { card, pageHeader, problemAlert, spinner, table } from '../ui.js';
import { WO_HEADERS, workOrderRows } from './work-orders.js';

function kpi(id, value, text, { alert = false, href = null } = {}) {
  const body = h('div', { class: 'card-body' },
    h('div', { class: 'kpi-value', id }, value),
    h('div', { class: 'kpi-label' }, text));
  return h('div', { class: 'col-6 col-md-4 col-xl-2' },
    h(href ? 'a' : 'div', { class: `card shadow-sm h-100 kpi text-decoration-none ${alert ? 'kpi-alert' : ''}`, href }, body));
}

export async function dashboard(ctx) {
  const { main } = ctx;
  destroyCharts();
  replace(main, pageHeader('Dashboard'), spinner());
  let stats;
  let overdue;
  try {
    [stats, overdue] = await Promise.all([
      get('/api/maintenance/stats'),
      get('/api/work-orders', { overdue: true, limit: 5 }),
    ]);
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Dashboard'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const byStatus = stats.work_orders_by_status || {};
  const byPriority = stats.work_orders_by_priority || {};
  const assetsBy = stats.assets_by_status || {};
  const trend = stats.trend || [];
  const lowParts = stats.low_stock_parts || [];

  const kpis = h('div', { class: 'row g-3 mb-3', id: 'kpis' },
    kpi('kpi-active', String(stats.work_orders_active ?? 0), 'Active work orders', { href: '#/work-orders' }),
    kpi('kpi-completed', String(byStatus.completed ?? 0), 'Completed, awaiting close', { href: '#/work-orders?status=completed' }),
    kpi('kpi-overdue', String(stats.overdue ?? 0), 'Overdue', { alert: stats.overdue > 0, href: '#/work-orders?overdue=true' }),
    kpi('kpi-mttr', fmtHours(stats.mttr_hours), `Mean time to repair${stats.mttr_sample ? ` (${stats.mttr_sample})` : ''}`),
    kpi('kpi-down', String(stats.assets_down ?? 0), 'Assets down', { alert: stats.assets_down > 0, href: '#/assets?status=down' }),
    kpi('kpi-low', String(stats.low_stock_count ?? 0), 'Parts at/below reorder point', { alert: stats.low_stock_count > 0, href: '#/parts?low_stock=true' }));

  const status = chartCard('Work orders by status', 'chart-status');
  const trendChart = chartCard(`Overdue trend (last ${trend.length} days)`, 'chart-trend');
  const assetChart = chartCard('Assets by status', 'chart-assets');
  const lowChart = chartCard('Low-stock parts (stock vs reorder point)', 'chart-low');

  const overdueTable = card(h('span', {}, 'Overdue work orders ',
    h('a', { class: 'small fw-normal ms-2', href: '#/work-orders?overdue=true' }, 'all')),
  table(WO_HEADERS, workOrderRows(overdue.items), 'Nothing is overdue.'));

  replace(main,
    pageHeader('Dashboard', h('span', { class: 'text-secondary small align-self-center' },
      `Updated ${new Date(stats.generated_at || Date.now()).toLocaleTimeString()}`),
    h('button', { class: 'btn btn-outline-secondary btn-sm', type: 'button', onclick: () => dashboard(ctx) }, 'Refresh')),
    kpis,
    h('div', { class: 'row g-3' }, status.el, trendChart.el, assetChart.el, lowChart.el),
    overdueTable);

  countBars(status.canvas, byStatus, { datasetLabel: 'Work orders' });
  draw(trendChart.canvas, {
    type: 'line',
    data: {
      labels: trend.map((d) => fmtDay(d.date)),
      datasets: [
        { label: 'Overdue', data: trend.map((d) => d.overdue), borderColor: '#dc3545',
          backgroundColor: 'rgba(220,53,69,0.15)', fill: true, tension: 0.25 },
        { label: 'Created', data: trend.map((d) => d.created), borderColor: '#0d6efd',
          backgroundColor: '#0d6efd', tension: 0.25 },
        { label: 'Completed', data: trend.map((d) => d.completed), borderColor: '#198754',
          backgroundColor: '#198754', tension: 0.25 },
      ],
    },
    options: { scales: { y: countAxis() }, interaction: { mode: 'index', intersect: false } },
  });
  doughnut(assetChart.canvas, assetsBy);
  if (lowParts.length) {
    draw(lowChart.canvas, {
      type: 'bar',
      data: {
        labels: lowParts.map((p) => p.sku),
        datasets: [
          { label: 'Stock', data: lowParts.map((p) => p.stock), backgroundColor: '#dc3545' },
          { label: 'Reorder point', data: lowParts.map((p) => p.reorder_point), backgroundColor: '#adb5bd' },
        ],
      },
      options: { indexAxis: 'y', scales: { x: countAxis() }, plugins: { legend: { display: true } } },
    });
  } else {
    lowChart.canvas.replaceWith(h('p', { class: 'text-secondary mb-0', id: 'no-low-stock' },
      'Every part is above its reorder point.'));
  }
  // Priority counts are in the stats too: show them under the status chart as badges.
  status.el.querySelector('.card-body').append(h('div', { class: 'd-flex flex-wrap gap-2 mt-2 small', id: 'by-priority' },
    'Active by priority:', Object.entries(byPriority).map(([p, n]) => h('span', { class: 'badge text-bg-light border' }, `${label(p)} ${n}`))));
}
