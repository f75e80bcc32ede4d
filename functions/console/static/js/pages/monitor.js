// Source: the monitor (the poller of GitHub's REST API for commits the webhook missed) - its
// schedule's state with start and stop, a poll now, the last run's figures, and each
// repository's polling (on/off, last polled, last seen commit). Managers and admins act; the
// API decides.

import { all, get, post, put } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import * as session from '../session.js';
import { busy, card, facts, pageHeader, problemAlert, spinner, table, toast } from '../ui.js';
import { repoPath } from './repositories.js';

const canRun = () => session.hasRole('manager');
const STATE_CLASS = { ENABLED: 'text-bg-success', PAUSED: 'text-bg-warning', UNKNOWN: 'text-bg-secondary' };
const STATE_TEXT = { ENABLED: 'Running on schedule', PAUSED: 'Paused', UNKNOWN: 'Unknown (scheduler unreachable)' };

function runFacts(run) {
  if (!run) return h('p', { class: 'text-secondary mb-0', id: 'no-run' }, 'The monitor has not run yet.');
  return facts([
    ['Trigger', label(run.trigger)],
    ['Started', fmtDateTime(run.started_at)],
    ['Finished', run.finished_at ? fmtDateTime(run.finished_at) : 'Still running'],
    ['Repositories checked', String(run.repositories_checked)],
    ['Commits found', String(run.commits_found)],
    ['GitHub requests', `${run.requests} (${run.not_modified} not modified)`],
    ['Rate limit left', run.rate_limit_remaining === null ? '—'
      : `${run.rate_limit_remaining}${run.rate_limit_reset ? `, resets ${fmtDateTime(run.rate_limit_reset)}` : ''}`],
    ['Stopped early', run.stopped_early ? 'Yes (rate limit)' : 'No'],
    ['Error', run.error ? h('span', { class: 'text-danger' }, run.error) : null],
  ]);
}

export async function monitorPage(ctx, notice = null) {
  const { main } = ctx;
  const header = pageHeader('Monitor',
    h('button', { class: 'btn btn-outline-secondary', type: 'button', id: 'monitor-refresh', onclick: () => monitorPage(ctx) }, 'Refresh'));
  replace(main, header, spinner('Reading the monitor\u2019s status…'));
  let status;
  let repos;
  try {
    [status, repos] = await Promise.all([get('/api/source/monitor/status'), all('/api/repositories', {}, 500)]);
  } catch (err) {
    if (ctx.alive()) replace(main, header, problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const slot = h('div', {}, notice ? h('div', { class: 'alert alert-success', role: 'status', id: 'monitor-result' }, notice) : null);
  async function act(button, path, done) {
    try {
      const out = await busy(button.closest('.card'), () => post(path, {}));
      await monitorPage(ctx, done(out));
    } catch (err) {
      replace(slot, problemAlert(err));
    }
  }
  const paused = status.state === 'PAUSED';
  const controls = canRun() ? h('div', { class: 'd-flex flex-wrap gap-2 mt-3', id: 'monitor-controls' },
    paused || status.state === 'UNKNOWN'
      ? h('button', { class: 'btn btn-success', type: 'button', id: 'monitor-start',
        onclick: (e) => act(e.currentTarget, '/api/source/monitor/start', (o) => `Monitor started: ${STATE_TEXT[o.state] || o.state}.`) }, 'Start')
      : null,
    !paused
      ? h('button', { class: 'btn btn-outline-warning text-body', type: 'button', id: 'monitor-stop',
        onclick: (e) => act(e.currentTarget, '/api/source/monitor/stop', (o) => `Monitor stopped: ${STATE_TEXT[o.state] || o.state}.`) }, 'Stop')
      : null,
    h('button', { class: 'btn btn-outline-primary', type: 'button', id: 'monitor-run-once',
      onclick: (e) => act(e.currentTarget, '/api/source/monitor/run-once', (o) => `Polled ${o.repositories_checked} repositories: ${o.commits_found} new commits.`) }, 'Poll now'))
    : h('p', { class: 'small text-secondary mt-3 mb-0' }, 'Managers and administrators start, stop and run the monitor.');
  const polled = repos.filter((r) => r.polling);
  async function togglePolling(r, button) {
    try {
      await busy(button.closest('tr'), () => put(`/api/repositories/${repoPath(r.full_name)}`, { polling: !r.polling, version: r.version }));
      toast(`Polling ${r.polling ? 'off' : 'on'} for ${r.full_name}.`);
      await monitorPage(ctx);
    } catch (err) {
      replace(slot, problemAlert(err));
    }
  }
  const rows = repos.map((r) => h('tr', { dataset: { repo: r.full_name } },
    h('td', { class: 'text-break' }, h('a', { href: `#/repositories/${repoPath(r.full_name)}` }, r.full_name)),
    h('td', {}, r.polling ? h('span', { class: 'badge text-bg-success' }, 'On') : h('span', { class: 'badge text-bg-light border' }, 'Off')),
    h('td', { class: 'text-nowrap' }, fmtDateTime(r.last_polled_at)),
    h('td', {}, r.last_seen_sha ? h('code', {}, r.last_seen_sha.slice(0, 10)) : '—'),
    h('td', { class: 'text-nowrap' }, fmtDateTime(r.last_seen_at)),
    canRun() ? h('td', {}, h('button', { class: 'btn btn-sm btn-outline-secondary', type: 'button',
      onclick: (e) => togglePolling(r, e.currentTarget) }, r.polling ? 'Turn polling off' : 'Turn polling on')) : null));
  replace(main, header, slot,
    h('div', { class: 'row' },
      h('div', { class: 'col-lg-5' }, card('Schedule', h('div', { id: 'monitor-status', dataset: { state: status.state } },
        h('div', { class: 'mb-2' }, h('span', { class: `badge fs-6 ${STATE_CLASS[status.state] || 'text-bg-secondary'}`, id: 'monitor-state' }, STATE_TEXT[status.state] || status.state)),
        facts([
          ['Next run', status.state === 'PAUSED' ? 'None while paused' : fmtDateTime(status.next_run)],
          ['Repositories polled', `${status.repositories_polled} of ${repos.length}`],
          ['Detail', status.detail],
        ]),
        controls))),
      h('div', { class: 'col-lg-7' }, card('Last run', h('div', { id: 'monitor-last-run' }, runFacts(status.last_run))))),
    card(`Repositories (${polled.length} polled)`, h('div', { id: 'monitor-repos' },
      table(['Repository', 'Polling', 'Last polled', 'Last seen commit', 'Last seen', ...(canRun() ? ['Change'] : [])], rows,
        'No repository is tracked yet.'))));
}
