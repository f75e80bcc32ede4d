// Charts (Chart.js, vendored, window.Chart) for every page that draws some.
//
// Why the options below: Chart.js lays a chart out again whenever its box changes size, and a
// box can pass through zero width (a window shrunk to nothing, a full-page capture, a card
// hidden and shown again, a canvas detached and re-attached). Chart.js then lays the chart out
// at width 0 and, when the box is back, updates in its 'attach' mode, which has no transition
// of its own and so runs the full data animation starting from the collapsed geometry: for
// 400 ms (or for as long as the tab cannot animate) the bars stand squeezed over the first
// label, the doughnut is a few pixels wide and horizontal bars have no length. Layout changes
// ('resize', 'attach') are therefore never animated; only the data's first appearance is, and
// not at all for users who ask for reduced motion.

import { h, label } from './dom.js';
import { onRender } from './router.js';
import { card } from './ui.js';

export const COLORS = {
  open: '#0d6efd', assigned: '#0dcaf0', in_progress: '#ffc107', on_hold: '#6c757d',
  completed: '#198754', closed: '#212529', cancelled: '#adb5bd',
  operational: '#198754', degraded: '#ffc107', down: '#dc3545', retired: '#adb5bd',
  low: '#adb5bd', medium: '#0dcaf0', high: '#fd7e14', urgent: '#dc3545',
  planned: '#0d6efd', qa_hold: '#fd7e14', released: '#0dcaf0', rejected: '#dc3545',
  dispensing: '#6610f2', granulation: '#6f42c1', compression: '#d63384', coating: '#fd7e14',
  packaging: '#20c997',
};

let charts = [];

export function destroyCharts() {
  for (const c of charts) c.destroy();
  charts = [];
}

onRender(destroyCharts); // the charts of a page left behind

const NO_LAYOUT_ANIMATION = {
  resize: { animation: { duration: 0 } },
  attach: { animation: { duration: 0 } },
};

/** Draw `config` on `canvas` (already in the document, inside a sized `.chart-box`). */
export function draw(canvas, config) {
  const Chart = window.Chart;
  if (!Chart) return null;
  const reduced = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  const options = config.options || {};
  const chart = new Chart(canvas, {
    ...config,
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: reduced ? false : { duration: 400 },
      transitions: NO_LAYOUT_ANIMATION,
      ...options,
      plugins: { legend: { display: config.type !== 'bar' }, ...(options.plugins || {}) },
    },
  });
  charts.push(chart);
  return chart;
}

/** A card holding a chart: {canvas, el}; `cols` are the grid column classes. */
export function chartCard(title, id, cols = 'col-12 col-lg-6') {
  const canvas = h('canvas', { id, role: 'img', 'aria-label': title });
  return { canvas, el: h('div', { class: cols }, card(title, h('div', { class: 'chart-box' }, canvas))) };
}

export function countAxis() {
  return { beginAtZero: true, ticks: { precision: 0 } };
}

/** One bar per key of `counts` ({key: n}), each over its own label, coloured by key. */
export function countBars(canvas, counts, { datasetLabel = 'Count', keys = null } = {}) {
  const order = keys || Object.keys(counts);
  return draw(canvas, {
    type: 'bar',
    data: {
      labels: order.map(label),
      datasets: [{ label: datasetLabel, data: order.map((k) => Number(counts[k] ?? 0)),
        backgroundColor: order.map((k) => COLORS[k] || '#6c757d') }],
    },
    options: { scales: { y: countAxis() } },
  });
}

// The legend beside a doughnut on a wide card, under it on a narrow one (a phone), so the
// doughnut keeps most of the card.
function legendPlace(width) {
  return width < 520 ? 'bottom' : 'right';
}

/** A doughnut of `counts` ({key: n}). */
export function doughnut(canvas, counts) {
  const keys = Object.keys(counts);
  const width = canvas.parentElement ? canvas.parentElement.clientWidth : 600;
  return draw(canvas, {
    type: 'doughnut',
    data: {
      labels: keys.map(label),
      datasets: [{ data: keys.map((k) => Number(counts[k] ?? 0)),
        backgroundColor: keys.map((k) => COLORS[k] || '#6c757d') }],
    },
    options: {
      plugins: { legend: { position: legendPlace(width) } },
      onResize: (chart, size) => {
        chart.options.plugins.legend.position = legendPlace(size.width);
      },
    },
  });
}
