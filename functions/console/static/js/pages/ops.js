// Operations (admins): dead letters kept per topic, with redrive, and the outbox report.

import { get, post } from '../api.js';
import { fmtDateTime, h, replace } from '../dom.js';
import * as session from '../session.js';
import { busy, card, forbidden, pageHeader, problemAlert, spinner, table } from '../ui.js';

export async function operations(ctx, notice = null) {
  const { main } = ctx;
  if (!session.hasRole('admin')) return forbidden(main, 'Operations', ['admin']);
  const header = pageHeader('Operations',
    h('button', { class: 'btn btn-outline-secondary btn-sm', type: 'button', onclick: () => operations(ctx) }, 'Refresh'));
  replace(main, header, spinner('Reading dead letters and outboxes…'));
  let letters;
  let outbox;
  try {
    [letters, outbox] = await Promise.all([get('/api/ops/dead-letters'), get('/api/ops/outbox')]);
  } catch (err) {
    if (ctx.alive()) replace(main, header, problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const slot = h('div', {}, notice ? h('div', { class: 'alert alert-success', role: 'status', id: 'redrive-result' }, notice) : null);
  const kept = Object.entries(letters.counts).filter(([, n]) => n > 0);
  const byTopic = (topic) => letters.items.filter((x) => x.topic === topic);
  async function redrive(topic, button) {
    try {
      const out = await busy(button.closest('section'), () => post(`/api/ops/dead-letters/${encodeURIComponent(topic)}/redrive`, {}));
      const failed = Array.isArray(out && out.failed) ? out.failed.length : 0;
      await operations(ctx, `${(out && out.redriven) || 0} redriven to ${topic}${failed ? `, ${failed} failed` : ''}.`);
    } catch (err) {
      replace(slot, problemAlert(err));
    }
  }
  const topics = kept.length ? kept.map(([topic, n]) => h('section', { class: 'mb-3 dead-topic', dataset: { topic } },
    h('div', { class: 'd-flex justify-content-between align-items-center mb-2' },
      h('h3', { class: 'h6 mb-0' }, h('code', {}, topic), ` · ${n} kept`),
      h('button', { class: 'btn btn-sm btn-outline-primary', type: 'button', dataset: { topic },
        onclick: (event) => redrive(topic, event.currentTarget) }, `Redrive ${topic}`)),
    table(['Event id', 'Type', 'Published', 'Attempts', 'Payload'], byTopic(topic).map((x) => h('tr', { dataset: { id: x.event_id } },
      h('td', {}, h('code', {}, x.event_id)), h('td', {}, x.event_type), h('td', {}, fmtDateTime(x.publish_time)),
      h('td', { class: 'num' }, String(x.delivery_attempt ?? '—')),
      h('td', {}, h('pre', { class: 'payload small mb-0', tabindex: 0 }, JSON.stringify(x.data))))))))
    : [h('p', { class: 'text-secondary mb-0', id: 'no-dead-letters' }, `No dead letters kept on any of ${Object.keys(letters.counts).length} topics.`)];
  replace(main, header, slot,
    card('Dead letters', h('div', { id: 'dead-letters' }, topics)),
    card('Outbox of each context', h('div', { id: 'outbox' }, table(['Schema', 'Pending', 'Oldest pending', 'Failing', 'Published'],
      outbox.items.map((o) => h('tr', { dataset: { schema: o.schema } },
        h('td', {}, o.schema), h('td', { class: 'num' }, String(o.pending)),
        h('td', {}, fmtDateTime(o.oldest_pending_at)), h('td', { class: `num ${o.failing ? 'text-danger fw-semibold' : ''}` }, String(o.failing)),
        h('td', { class: 'num' }, String(o.published)))), 'No context has an outbox.'))));
}
