// The live logistics dashboard: the realtime dashboard stream's counters (packages by status,
// scans, exceptions, deliveries, investigations) redrawn as they change, scans per minute
// since the page was opened, and the on-time figures of GET /api/logistics/stats, refreshed
// when the counters move (at most every 15 s).

import { get } from '../api.js';
import { fmtDay, h, label, replace } from '../dom.js';
import { chartCard, countAxis, draw } from '../charts.js';
import { pageHeader, problemAlert } from '../ui.js';
import { STATUSES, STATUS_COLORS } from './packages.js';
import { openStream, stateBadge } from './live-stream.js';

const MINUTES = 15;
const STATS_EVERY_MS = 15000;

function kpi(id, text, href) {
  const value = h('div', { class: 'kpi-value', id }, '—');
  const body = h('div', { class: 'card-body' }, value, h('div', { class: 'kpi-label' }, text));
  const box = h(href ? 'a' : 'div', { class: 'card shadow-sm h-100 kpi text-decoration-none', href }, body);
  return { value, box, el: h('div', { class: 'col-6 col-md-4 col-xl-2' }, box) };
}

function minuteLabel(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

export async function liveDashboard(ctx) {
  const { main } = ctx;
  const live = stateBadge('live-state');
  const updated = h('span', { class: 'text-secondary small', id: 'live-updated' }, 'Waiting for the first update…');
  const kpis = {
    packages: kpi('kpi-packages', 'Packages', '#/packages'),
    late: kpi('kpi-late', 'Late, still on their way', '#/packages?late=true'),
    scans: kpi('kpi-scans', 'Scans recorded'),
    exceptions: kpi('kpi-exceptions', 'Exceptions raised', '#/packages?status=exception'),
    onTime: kpi('kpi-on-time', 'On time (last 30 days)'),
    investigations: kpi('kpi-investigations', 'Investigations completed', '#/logistics/investigations'),
  };
  const statusChart = chartCard('Packages by status (live)', 'chart-live-status');
  const scanChart = chartCard(`Scans per minute (last ${MINUTES} minutes)`, 'chart-live-scans');
  const exceptionChart = chartCard('Exceptions per day (last 30 days)', 'chart-live-exceptions', 'col-12');
  const statsSlot = h('div', {});
  replace(main,
    pageHeader('Live dashboard', updated, live.el),
    h('p', { class: 'text-secondary small' },
      'Counts come from the live feed as packages and scans are recorded; the page updates by itself.'),
    h('div', { class: 'row g-3 mb-3', id: 'live-kpis' }, Object.values(kpis).map((k) => k.el)),
    statsSlot,
    h('div', { class: 'row' }, statusChart.el, scanChart.el, exceptionChart.el));
  if (!ctx.alive()) return;

  const status = draw(statusChart.canvas, {
    type: 'bar',
    data: { labels: STATUSES.map(label), datasets: [{ label: 'Packages', data: STATUSES.map(() => 0),
      backgroundColor: STATUSES.map((s) => STATUS_COLORS[s]) }] },
    options: { scales: { y: countAxis() } },
  });
  // Scans per minute: the rise of the stream's `scans` counter, per wall-clock minute.
  const buckets = new Map();
  const now = () => Math.floor(Date.now() / 60000) * 60000;
  const minutes = () => Array.from({ length: MINUTES }, (_, i) => now() - (MINUTES - 1 - i) * 60000);
  const scans = draw(scanChart.canvas, {
    type: 'bar',
    data: { labels: minutes().map(minuteLabel), datasets: [{ label: 'Scans', data: minutes().map(() => 0),
      backgroundColor: '#0d6efd' }] },
    options: { scales: { y: countAxis() } },
  });
  const exceptions = draw(exceptionChart.canvas, {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'Exceptions', data: [], backgroundColor: '#dc3545' }] },
    options: { scales: { y: countAxis() } },
  });

  let lastScans = null;
  function drawScans() {
    if (!scans) return;
    const ms = minutes();
    scans.data.labels = ms.map(minuteLabel);
    scans.data.datasets[0].data = ms.map((m) => buckets.get(m) || 0);
    scans.update();
  }

  function show(counters, first) {
    const by = counters.by_status || {};
    kpis.packages.value.textContent = String(counters.packages ?? STATUSES.reduce((n, s) => n + (by[s] || 0), 0));
    kpis.scans.value.textContent = String(counters.scans ?? 0);
    kpis.exceptions.value.textContent = String(counters.exceptions ?? 0);
    kpis.investigations.value.textContent = String(counters.investigations_completed ?? 0);
    if (status) {
      status.data.datasets[0].data = STATUSES.map((s) => Math.max(0, by[s] || 0));
      status.update();
    }
    const total = Number(counters.scans ?? 0);
    if (!first && lastScans !== null && total > lastScans) {
      buckets.set(now(), (buckets.get(now()) || 0) + total - lastScans);
    }
    lastScans = total;
    drawScans();
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  let statsAt = 0;
  let statsTimer = null;
  async function loadStats() {
    statsAt = Date.now();
    try {
      const stats = await get('/api/logistics/stats');
      if (!ctx.alive()) return;
      statsSlot.replaceChildren();
      kpis.late.value.textContent = String(stats.late_open ?? 0);
      kpis.late.box.classList.toggle('kpi-alert', stats.late_open > 0);
      kpis.onTime.value.textContent = stats.on_time_rate === null ? '—'
        : `${Math.round(stats.on_time_rate * 100)}%`;
      if (exceptions) {
        const days = stats.exceptions_per_day || [];
        exceptions.data.labels = days.map((d) => fmtDay(d.day));
        exceptions.data.datasets[0].data = days.map((d) => d.exceptions);
        exceptions.update();
      }
    } catch (err) {
      if (ctx.alive()) replace(statsSlot, problemAlert(err));
    }
  }
  function statsSoon() {
    if (statsTimer) return;
    statsTimer = setTimeout(() => {
      statsTimer = null;
      if (ctx.alive()) loadStats();
    }, Math.max(0, statsAt + STATS_EVERY_MS - Date.now()));
  }
  const tick = setInterval(() => {
    if (!ctx.alive()) clearInterval(tick);
    else drawScans(); // the minutes move on even when nothing happens
  }, 30000);

  loadStats();
  openStream('dashboard', {
    on: {
      snapshot: (counters) => show(counters || {}, true),
      counts: (counters) => {
        show(counters || {}, false);
        statsSoon();
      },
    },
    onState: live.set,
  });
}
