// Automation runs: the list (by job and status), starting a run of a job, and one run followed
// live: its status per target and step, and its output lines as they come (the logs endpoint
// polled with its cursor: there is no realtime stream of run logs), stderr marked, scrolled
// along until the user scrolls up; cancel.

import { get, post } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import * as lookups from '../lookups.js';
import { navigate } from '../router.js';
import {
  card, facts, filterField, pageHeader, pagedTable, problemAlert, scroller, select, spinner,
  submit, toast,
} from '../ui.js';
import {
  FINISHED, RUN_STATUSES, breadcrumb, canCancel, canRun, jobs, requester, shortId,
  statusBadge, tagList, targets, took,
} from './runs-shared.js';
import { runCard } from './jobs.js';
import { confirmInline } from './targets.js';

const FILTERS = ['job_id', 'status'];
const LOG_POLL_MS = 750;
const STATUS_POLL_MS = 1500;
const LOG_PAGE = 500;

export async function runList(ctx) {
  const { main, query } = ctx;
  const v = (k) => query.get(k) || '';
  replace(main, pageHeader('Runs'), spinner());
  let allJobs;
  let users;
  try {
    [allJobs, users] = await Promise.all([jobs(), lookups.users()]);
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Runs'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const jobsById = new Map(allJobs.map((j) => [j.id, j]));
  const usersById = new Map(users.map((u) => [u.id, u]));
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'run-filters' },
    filterField('rf-job', 'Job', select('job_id', allJobs.map((j) => [j.id, j.name]), { value: v('job_id'), empty: 'Any' }), 'col-12 col-md-4'),
    filterField('rf-status', 'Status', select('status', RUN_STATUSES, { value: v('status'), empty: 'Any' }), 'col-6 col-md-2'),
    h('div', { class: 'col-6 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/runs' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/runs', Object.fromEntries(FILTERS.map((k) => [k, d.get(k) || ''])));
  });
  const params = Object.fromEntries(FILTERS.filter((k) => v(k)).map((k) => [k, v(k)]));
  const row = (r) => {
    const j = jobsById.get(r.job_id);
    return h('tr', { dataset: { id: r.id } },
      h('td', { class: 'font-monospace' }, h('a', { href: `#/runs/${encodeURIComponent(r.id)}` }, shortId(r.id))),
      h('td', {}, j ? h('a', { href: `#/jobs/${encodeURIComponent(j.id)}`, class: 'link-body-emphasis' }, j.name)
        : h('span', { class: 'text-secondary' }, 'Deleted job')),
      h('td', { class: 'run-status' }, statusBadge(r.status)),
      h('td', {}, `v${r.job_version}`),
      h('td', {}, requester(r.requested_by, usersById)),
      h('td', {}, fmtDateTime(r.created_at)),
      h('td', {}, took(r)));
  };
  replace(main,
    pageHeader('Runs',
      canRun() ? h('a', { class: 'btn btn-primary', href: v('job_id') ? `#/runs/new?job_id=${encodeURIComponent(v('job_id'))}` : '#/runs/new', id: 'new-run' }, 'Start a run') : null),
    form,
    pagedTable({ id: 'run-table', headers: ['Run', 'Job', 'Status', 'Version', 'By', 'Requested', 'Took'], row,
      empty: Object.keys(params).length ? 'No runs match.' : 'No runs yet.',
      load: (cursor) => get('/api/runs', { ...params, limit: 25, cursor }) }));
}

/** The targets a job would run on now (its ids, and the targets carrying all its tags). */
function resolveTargets(j, all) {
  return all.filter((t) => j.target_ids.includes(t.id)
    || (j.target_tags.length && j.target_tags.every((tag) => t.tags.includes(tag))));
}

export async function runNew(ctx) {
  const { main, query } = ctx;
  replace(main, pageHeader('Start a run'), spinner());
  let allJobs;
  let allTargets;
  try {
    [allJobs, allTargets] = await Promise.all([jobs(), targets()]);
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Start a run'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const jobId = query.get('job_id') || '';
  const picker = select('job_id', allJobs.map((j) => [j.id, j.name]), { value: jobId, empty: 'Choose a job…', id: 'run-job' });
  picker.addEventListener('change', () => navigate('/runs/new', { job_id: picker.value }));
  const j = allJobs.find((x) => x.id === jobId);
  let detail = null;
  if (j) {
    const on = resolveTargets(j, allTargets);
    detail = h('div', { class: 'row' },
      h('div', { class: 'col-lg-6' }, card(`Targets of ${j.name}`,
        on.length ? h('ul', { class: 'list-unstyled mb-0', id: 'run-targets' }, on.map((t) => h('li', { class: 'mb-1' },
          h('a', { href: `#/targets/${encodeURIComponent(t.id)}` }, t.name), ' ',
          h('span', { class: 'small text-secondary' }, `${label(t.kind)} · ${t.host}:${t.port} `), tagList(t.tags))))
          : h('p', { class: 'text-secondary mb-0' }, 'No target matches this job now; the API will refuse the run.'),
        j.target_tags.length ? h('p', { class: 'small text-secondary mt-2 mb-0' }, `Targets tagged ${j.target_tags.join(' + ')} are resolved when the run is requested.`) : null)),
      h('div', { class: 'col-lg-6' }, runCard(j)));
  }
  replace(main, breadcrumb('Runs', '#/runs', 'Start'), pageHeader('Start a run'),
    card(null, h('label', { class: 'form-label', for: 'run-job' }, 'Job'), picker,
      allJobs.length ? null : h('p', { class: 'text-secondary mt-2 mb-0' }, 'No jobs yet: ', h('a', { href: '#/jobs/new' }, 'create one'), '.')),
    detail);
}

// --- one run, live ------------------------------------------------------------------------

function targetsCard(run) {
  if (!run.targets || !run.targets.length) return h('p', { class: 'text-secondary mb-0' }, 'No targets.');
  return run.targets.map((t) => h('div', { class: 'mb-3 run-target', dataset: { target: t.target_id } },
    h('div', { class: 'd-flex flex-wrap align-items-center gap-2 mb-1' },
      h('a', { class: 'fw-semibold', href: `#/targets/${encodeURIComponent(t.target_id)}` }, t.target_name),
      statusBadge(t.status), h('span', { class: 'small text-secondary' }, took(t))),
    t.error ? h('div', { class: 'small text-danger mb-1 text-break' }, t.error) : null,
    scroller(`Steps on ${t.target_name}`, h('table', { class: 'table table-sm align-middle mb-0 run-steps' },
      h('caption', { class: 'visually-hidden' }, `Steps on ${t.target_name}`),
      h('thead', {}, h('tr', {}, ['#', 'Step', 'Status', 'Exit', 'Took'].map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, t.steps.map((s) => h('tr', { dataset: { step: s.index } },
        h('td', { class: 'num' }, String(s.index + 1)),
        h('td', {}, s.name, s.error ? h('div', { class: 'small text-danger text-break' }, s.error) : null),
        h('td', { class: 'step-status' }, statusBadge(s.status)),
        h('td', { class: 'num step-exit' }, s.exit_code === null ? '—' : String(s.exit_code)),
        h('td', {}, took(s)))))))));
}

/** The output pane: lines appended in order; follows the end until the user scrolls up, then
 * offers to jump back (and follows again from there). */
function logView(multi) {
  const pane = h('div', { class: 'run-log', id: 'run-log', role: 'log', tabindex: 0, 'aria-label': 'Run output' });
  const empty = h('div', { class: 'log-empty' }, 'No output yet.');
  pane.append(empty);
  const jump = h('button', { class: 'btn btn-sm btn-primary run-log-jump d-none', type: 'button', id: 'log-jump' }, 'Jump to latest');
  const state = h('span', { class: 'small text-secondary', id: 'log-state', role: 'status' });
  let follow = true;
  let unseen = 0;
  const atEnd = () => pane.scrollHeight - pane.scrollTop - pane.clientHeight < 8;
  const toEnd = () => {
    pane.scrollTop = pane.scrollHeight;
  };
  const showJump = () => {
    jump.classList.toggle('d-none', follow);
    jump.textContent = unseen ? `Jump to latest (${unseen} new)` : 'Jump to latest';
    pane.dataset.follow = String(follow);
  };
  pane.addEventListener('scroll', () => {
    const end = atEnd();
    if (end !== follow) {
      follow = end;
      if (follow) unseen = 0;
      showJump();
    }
  });
  jump.addEventListener('click', () => {
    follow = true;
    unseen = 0;
    toEnd();
    showJump();
    pane.focus();
  });
  showJump();
  const append = (lines) => {
    if (!lines.length) return;
    empty.remove();
    const frag = document.createDocumentFragment();
    for (const l of lines) {
      frag.append(h('div', { class: `log-line log-${l.stream}`, dataset: { seq: l.seq, stream: l.stream } },
        h('span', { class: 'log-time' }, new Date(l.at).toLocaleTimeString()),
        multi && l.target_name ? h('span', { class: 'log-target' }, l.target_name) : null,
        l.stream === 'stderr' ? h('span', { class: 'log-tag' }, 'stderr') : null,
        h('span', { class: 'log-text' }, l.text)));
    }
    pane.append(frag);
    if (follow) toEnd();
    else {
      unseen += lines.length;
      showJump();
    }
  };
  return {
    el: h('div', { class: 'run-log-box' }, pane, h('div', { class: 'd-flex justify-content-between align-items-center mt-2 gap-2' }, state, jump)),
    append,
    setState: (text) => { state.textContent = text; },
  };
}

function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

export async function runDetail(ctx) {
  const { main, params } = ctx;
  const id = encodeURIComponent(params.id);
  replace(main, spinner());
  let run;
  let job;
  let users;
  try {
    [run, users] = await Promise.all([get(`/api/runs/${id}`), lookups.users()]);
    job = await get(`/api/jobs/${encodeURIComponent(run.job_id)}`).catch(() => null);
  } catch (err) {
    if (ctx.alive()) replace(main, breadcrumb('Runs', '#/runs', 'Run'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const usersById = new Map(users.map((u) => [u.id, u]));
  const statusSlot = h('span', { id: 'run-status' });
  const actions = h('div', { class: 'd-flex flex-wrap align-items-center gap-2', id: 'run-actions' });
  const factsSlot = h('div', {});
  const targetsSlot = h('div', { id: 'run-targets' });
  const alertSlot = h('div', {});
  const log = logView((run.targets || []).length > 1);

  // Redrawn only when what it offers changes (not on every status poll: an open "Stop this
  // run?" question must survive the next poll).
  let offered = null;
  const drawActions = () => {
    const offer = FINISHED.has(run.status) ? 'none' : run.cancel_requested ? 'cancelling' : 'cancel';
    if (offer === offered) return;
    offered = offer;
    actions.replaceChildren();
    if (FINISHED.has(run.status)) return;
    if (run.cancel_requested) {
      actions.append(h('span', { class: 'text-secondary', id: 'cancelling' }, 'Cancelling…'));
      return;
    }
    if (!canCancel(run)) return;
    const cancel = h('button', { class: 'btn btn-outline-danger', type: 'button', id: 'cancel-run' }, 'Cancel run');
    cancel.addEventListener('click', () => confirmInline(cancel, 'Stop this run?', async () => {
      try {
        run = await post(`/api/runs/${id}/cancel`);
        toast('Cancel requested.');
        draw();
      } catch (err) {
        replace(alertSlot, problemAlert(err));
      }
    }, 'Stop it'));
    actions.append(cancel);
  };
  const draw = () => {
    replace(statusSlot, statusBadge(run.status, 'fs-6'));
    drawActions();
    const params = Object.entries(run.parameters || {});
    replace(factsSlot, facts([
      ['Job', job ? h('a', { href: `#/jobs/${encodeURIComponent(job.id)}?version=${run.job_version}` }, `${job.name} (version ${run.job_version})`)
        : `Deleted job, version ${run.job_version}`],
      ['Requested by', requester(run.requested_by, usersById)],
      run.due_at ? ['Due at', fmtDateTime(run.due_at)] : null,
      ['Parameters', params.length ? h('span', { class: 'font-monospace small text-break' }, params.map(([k, v]) => `${k}=${v}`).join(' ')) : 'None'],
      ['Requested', fmtDateTime(run.created_at)],
      ['Started', fmtDateTime(run.started_at)],
      ['Finished', fmtDateTime(run.finished_at)],
      ['Took', took(run)],
      run.error ? ['Error', h('span', { class: 'text-danger text-break' }, run.error)] : null,
    ].filter(Boolean)));
    replace(targetsSlot, targetsCard(run));
  };
  draw();
  replace(main, breadcrumb('Runs', '#/runs', shortId(run.id)),
    pageHeader(h('span', {}, h('span', { class: 'text-secondary me-2 font-monospace' }, shortId(run.id)), job ? job.name : 'Run'),
      statusSlot, actions),
    alertSlot,
    h('div', { class: 'row' },
      h('div', { class: 'col-xl-8 order-xl-2' }, card('Output', log.el)),
      h('div', { class: 'col-xl-4 order-xl-1' }, card('Run', factsSlot), card('Targets', targetsSlot))));

  // Status: re-read until the run is finished.
  const followStatus = async () => {
    while (ctx.alive() && !FINISHED.has(run.status)) {
      await sleep(STATUS_POLL_MS);
      if (!ctx.alive()) return;
      try {
        run = await get(`/api/runs/${id}`);
        if (ctx.alive()) draw();
      } catch (err) {
        if (ctx.alive()) replace(alertSlot, problemAlert(err));
      }
    }
  };
  // Lines: page after page from the cursor; poll again while the run may still write.
  const followLogs = async () => {
    let cursor = null;
    let failures = 0;
    log.setState('Following the output…');
    while (ctx.alive()) {
      let page;
      try {
        page = await get(`/api/runs/${id}/logs`, { cursor, limit: LOG_PAGE });
        failures = 0;
      } catch (err) {
        failures += 1;
        log.setState(`Could not read the output (${err.title || 'error'}); retrying…`);
        if (failures > 20) {
          replace(alertSlot, problemAlert(err));
          return;
        }
        await sleep(LOG_POLL_MS * failures);
        continue;
      }
      if (!ctx.alive()) return;
      log.append(page.items);
      cursor = page.next_cursor;
      if (page.finished) {
        log.setState('The run has finished; this is all of its output.');
        return;
      }
      if (page.items.length < LOG_PAGE) await sleep(LOG_POLL_MS);
    }
  };
  // Not awaited: the page is drawn; these end when the run ends or the route changes.
  followStatus();
  followLogs();
}
