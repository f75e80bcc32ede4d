// Automation jobs: the list, one job (any of its versions, a run form, its recent runs) and the
// editor: name, targets (ids or tags), limits, parameters and the ordered steps (add, remove,
// move up and down; command or HTTP fields per step). Saving an existing job makes its next
// version; runs record the version they ran.

import { del, get, post, put } from '../api.js';
import { ApiError } from '../errors.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import * as lookups from '../lookups.js';
import { navigate } from '../router.js';
import {
  busy, card, clearErrors, facts, field, input, pageHeader, pagedTable, problemAlert, select,
  showError, spinner, submit, table, textarea, toast,
} from '../ui.js';
import {
  breadcrumb, canEditJobs, canEditSchedules, canRun, fmtDuration, forget, parseTags,
  requester, shortId, statusBadge, tagList, targets,
} from './runs-shared.js';
import { confirmInline } from './targets.js';

const MAX_TIMEOUT_S = 540; // the API's limit (docs/decisions/0022)
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

function targetsText(j, byId) {
  const parts = [];
  if (j.target_ids.length) {
    parts.push(j.target_ids.map((id) => (byId.get(id) ? byId.get(id).name : `${shortId(id)}…`)).join(', '));
  }
  if (j.target_tags.length) parts.push(`tagged ${j.target_tags.join(' + ')}`);
  return parts.join('; ') || '—';
}

export async function jobList(ctx) {
  const { main } = ctx;
  replace(main, pageHeader('Jobs'), spinner());
  let byId;
  try {
    byId = new Map((await targets()).map((t) => [t.id, t]));
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Jobs'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const row = (j) => h('tr', { dataset: { id: j.id } },
    h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(j.id)}`, class: 'fw-semibold' }, j.name),
      j.description ? h('div', { class: 'small text-secondary text-truncate job-description' }, j.description) : null),
    h('td', { class: 'num' }, String(j.steps.length)),
    h('td', {}, targetsText(j, byId)),
    h('td', { class: 'num' }, `v${j.version}`),
    h('td', {}, fmtDateTime(j.updated_at)));
  replace(main,
    pageHeader('Jobs',
      canEditJobs() ? h('a', { class: 'btn btn-primary', href: '#/jobs/new', id: 'new-job' }, 'New job') : null),
    h('p', { class: 'text-secondary' }, 'Ordered steps (commands over SSH or WinRM, HTTP requests) run on a set of targets.'),
    pagedTable({ id: 'job-table', headers: ['Job', 'Steps', 'Targets', 'Version', 'Updated'], row,
      empty: 'No jobs yet.', load: (cursor) => get('/api/jobs', { limit: 25, cursor }) }));
}

// --- the editor ----------------------------------------------------------------------------

let uid = 0;
function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

/** A labelled control inside a repeated row: no `name` (the form's own fields keep theirs),
 * found again by data-field. */
function sub(text, control, { help = null, cols = 'col-12' } = {}) {
  control.id = nextId('sf');
  return h('div', { class: `${cols} mb-2` }, h('label', { class: 'form-label small mb-1', for: control.id }, text), control,
    help ? h('div', { class: 'form-text' }, help) : null);
}

function ctl(tag, fieldName, props = {}, ...children) {
  const cls = tag === 'select' ? 'form-select form-select-sm' : 'form-control form-control-sm';
  return h(tag, { class: cls, ...props, dataset: { field: fieldName } }, ...children);
}

function check(fieldName, text, checked) {
  const id = nextId('sf');
  return h('div', { class: 'form-check mb-2' },
    h('input', { class: 'form-check-input', type: 'checkbox', id, checked: Boolean(checked), dataset: { field: fieldName } }),
    h('label', { class: 'form-check-label small', for: id }, text));
}

function headersText(headers) {
  return Object.entries(headers || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
}

function stepBody(kind, s = {}) {
  if (kind === 'http') {
    return h('div', { class: 'row g-2' },
      sub('Method', ctl('select', 'method', {}, METHODS.map((m) => h('option', { value: m, selected: (s.method || 'GET') === m }, m))), { cols: 'col-4 col-md-2' }),
      sub('URL', ctl('input', 'url', { value: s.url || '', placeholder: 'https://api.example.com/health or /path on an HTTP target', spellcheck: 'false' }), { cols: 'col-8 col-md-10' }),
      sub('Headers', ctl('textarea', 'headers', { rows: 2, class: 'form-control form-control-sm font-monospace', value: headersText(s.headers), placeholder: 'Accept: application/json' }), { help: 'One "Name: value" per line.', cols: 'col-md-6' }),
      sub('Body', ctl('textarea', 'body', { rows: 2, class: 'form-control form-control-sm font-monospace', value: s.body || '' }), { cols: 'col-md-6' }),
      sub('Expected status', ctl('input', 'expected_status', { value: (s.expected_status || [200]).join(', '), inputmode: 'numeric' }), { cols: 'col-6 col-md-3' }),
      sub('Timeout (s)', ctl('input', 'timeout_s', { type: 'number', min: 1, max: MAX_TIMEOUT_S, value: s.timeout_s ?? 30 }), { cols: 'col-6 col-md-3' }),
      h('div', { class: 'col-md-6 d-flex align-items-end' }, check('continue_on_error', 'Continue with the next step if this one fails', s.continue_on_error)));
  }
  return h('div', { class: 'row g-2' },
    sub('Command', ctl('textarea', 'command', { rows: 3, class: 'form-control form-control-sm font-monospace', value: s.command || '', spellcheck: 'false', placeholder: 'systemctl restart nginx' }),
      { help: 'Run by /bin/sh (SSH) or PowerShell (WinRM). Parameters are environment variables ($NAME); {{NAME}} is replaced by the quoted value.' }),
    sub('Timeout (s)', ctl('input', 'timeout_s', { type: 'number', min: 1, max: MAX_TIMEOUT_S, value: s.timeout_s ?? 60 }), { cols: 'col-6 col-md-3' }),
    h('div', { class: 'col-md-9 d-flex align-items-end' }, check('continue_on_error', 'Continue with the next step if this one fails', s.continue_on_error)));
}

function stepsEditor(initial) {
  const list = h('ol', { class: 'list-unstyled mb-2 step-list', id: 'step-list' });
  const renumber = () => {
    const items = [...list.children];
    items.forEach((li, i) => {
      li.querySelector('.step-number').textContent = `Step ${i + 1}`;
      li.querySelector('[data-move=up]').disabled = i === 0;
      li.querySelector('[data-move=down]').disabled = i === items.length - 1;
      li.querySelector('[data-move=remove]').disabled = items.length === 1;
      for (const b of li.querySelectorAll('[data-move]')) {
        b.setAttribute('aria-label', `${b.title} (step ${i + 1})`);
      }
    });
  };
  const add = (s = { kind: 'command' }) => {
    const kind = ctl('select', 'kind', { 'aria-label': 'Step kind' },
      h('option', { value: 'command', selected: s.kind !== 'http' }, 'Command'),
      h('option', { value: 'http', selected: s.kind === 'http' }, 'HTTP request'));
    const bodyBox = h('div', { class: 'step-body' }, stepBody(kind.value, s));
    kind.addEventListener('change', () => replace(bodyBox, stepBody(kind.value, { name: undefined })));
    const button = (move, text, title) => h('button', { class: 'btn btn-sm btn-outline-secondary', type: 'button', title, dataset: { move } }, text);
    const li = h('li', { class: 'card mb-2 step-item' },
      h('div', { class: 'card-header d-flex flex-wrap align-items-center gap-2 py-2' },
        h('span', { class: 'fw-semibold step-number me-auto' }),
        h('div', { class: 'step-kind' }, kind),
        h('div', { class: 'btn-group', role: 'group', 'aria-label': 'Move or remove' },
          button('up', '\u2191', 'Move up'), button('down', '\u2193', 'Move down'), button('remove', '\u2715', 'Remove'))),
      h('div', { class: 'card-body py-2' },
        h('div', { class: 'row g-2' }, sub('Name', ctl('input', 'name', { value: s.name || '', maxlength: 100, placeholder: 'e.g. restart' }), { cols: 'col-md-6' })),
        bodyBox));
    li.addEventListener('click', (event) => {
      const b = event.target.closest('[data-move]');
      if (!b) return;
      const move = b.dataset.move;
      if (move === 'up' && li.previousElementSibling) list.insertBefore(li, li.previousElementSibling);
      else if (move === 'down' && li.nextElementSibling) list.insertBefore(li.nextElementSibling, li);
      else if (move === 'remove') {
        const focus = li.nextElementSibling || li.previousElementSibling;
        li.remove();
        renumber();
        if (focus) focus.querySelector('[data-field=name]').focus();
        return;
      }
      renumber();
      (b.disabled ? li.querySelector('[data-move]:not([disabled])') : b)?.focus();
    });
    list.append(li);
    renumber();
    return li;
  };
  for (const s of initial.length ? initial : [{ kind: 'command' }]) add(s);
  const addButton = h('button', { class: 'btn btn-outline-primary btn-sm', type: 'button', id: 'add-step' }, 'Add step');
  addButton.addEventListener('click', () => add().querySelector('[data-field=name]').focus());
  const read = () => [...list.children].map((li) => {
    const v = (f) => {
      const el = li.querySelector(`[data-field=${f}]`);
      if (!el) return undefined;
      return el.type === 'checkbox' ? el.checked : el.value;
    };
    const kind = v('kind');
    const step = { kind, name: v('name').trim(), timeout_s: Number(v('timeout_s')), continue_on_error: v('continue_on_error') };
    if (kind === 'command') step.command = v('command');
    else {
      step.method = v('method');
      step.url = v('url').trim();
      step.headers = Object.fromEntries(v('headers').split('\n').map((l) => l.trim()).filter(Boolean)
        .map((l) => {
          const at = l.indexOf(':');
          return at === -1 ? [l, ''] : [l.slice(0, at).trim(), l.slice(at + 1).trim()];
        }));
      const b = v('body');
      if (b) step.body = b;
      step.expected_status = v('expected_status').split(/[\s,]+/).filter(Boolean).map(Number);
    }
    return step;
  });
  return { el: h('div', {}, list, addButton), read, list };
}

function paramsEditor(initial) {
  const list = h('div', { id: 'param-list' });
  const empty = h('p', { class: 'text-secondary small mb-2' }, 'No parameters. Commands see each parameter as an environment variable.');
  const sync = () => empty.classList.toggle('d-none', list.children.length > 0);
  const add = (p = {}) => {
    const row = h('div', { class: 'row g-2 align-items-end param-item mb-1' },
      sub('Name', ctl('input', 'name', { value: p.name || '', placeholder: 'VERSION', spellcheck: 'false' }), { cols: 'col-6 col-md-3' }),
      sub('Default', ctl('input', 'default', { value: p.default ?? '' }), { cols: 'col-6 col-md-3' }),
      sub('Description', ctl('input', 'description', { value: p.description || '' }), { cols: 'col-12 col-md-4' }),
      h('div', { class: 'col-8 col-md-1' }, check('required', 'Required', p.required)),
      h('div', { class: 'col-4 col-md-1 text-end mb-2' }, h('button', { class: 'btn btn-sm btn-outline-secondary', type: 'button', 'aria-label': 'Remove parameter',
        onclick: () => { row.remove(); sync(); } }, '\u2715')));
    list.append(row);
    sync();
    return row;
  };
  for (const p of initial) add(p);
  sync();
  const addButton = h('button', { class: 'btn btn-outline-primary btn-sm', type: 'button', id: 'add-param' }, 'Add parameter');
  addButton.addEventListener('click', () => add().querySelector('[data-field=name]').focus());
  const read = () => [...list.children].map((row) => {
    const v = (f) => row.querySelector(`[data-field=${f}]`);
    const p = { name: v('name').value.trim(), required: v('required').checked };
    if (v('default').value !== '') p.default = v('default').value;
    if (v('description').value.trim()) p.description = v('description').value.trim();
    return p;
  });
  return { el: h('div', {}, empty, list, addButton), read, list };
}

/** Field errors of repeated rows (`steps.2.command.command`, `parameters.0.name`) next to the
 * control in that row; ui.js marks the form's own named fields. */
function markRows(err, editors) {
  if (!(err instanceof ApiError)) return;
  for (const e of err.errors) {
    const path = String(e.field || '').split('.');
    const editor = editors[path[0]];
    const index = Number(path[1]);
    if (!editor || !Number.isInteger(index)) continue;
    const row = editor.list.children[index];
    if (!row) continue;
    const name = path[path.length - 1];
    const el = row.querySelector(`[data-field="${CSS.escape(name)}"]`) || row.querySelector('[data-field=name]');
    el.classList.add('is-invalid');
    el.after(h('div', { class: 'invalid-feedback from-api' }, e.message || ''));
  }
}

function jobEditor({ j = null, allTargets, onSave }) {
  const slot = h('div', {});
  const steps = stepsEditor(j ? j.steps : []);
  const params = paramsEditor(j ? j.parameters : []);
  const chosen = new Set(j ? j.target_ids : []);
  const targetChecks = allTargets.length
    ? h('div', { class: 'target-checks border rounded p-2 mb-2', id: 'target-checks' }, allTargets.map((t) => {
      const id = `jt-${t.id}`;
      return h('div', { class: 'form-check' },
        h('input', { class: 'form-check-input', type: 'checkbox', name: 'target_ids', value: t.id, id, checked: chosen.has(t.id) }),
        h('label', { class: 'form-check-label', for: id }, `${t.name} `, h('span', { class: 'small text-secondary' }, `${label(t.kind)} · ${t.host}:${t.port}`)));
    }))
    : h('p', { class: 'text-secondary small' }, 'No targets yet: ', h('a', { href: '#/targets/new' }, 'add one'), ', or select by tag.');
  const form = h('form', { id: 'job-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('name', 'Name', input('name', { value: j ? j.name : '', required: true, maxlength: 100 }))),
      h('div', { class: 'col-6 col-md-3' }, field('max_concurrency', 'Max concurrency', input('max_concurrency', { type: 'number', min: 1, max: 50, value: j ? j.max_concurrency : 10 }), 'Targets at once.')),
      h('div', { class: 'col-6 col-md-3' }, field('timeout_s', 'Overall timeout (s)', input('timeout_s', { type: 'number', min: 1, max: MAX_TIMEOUT_S, value: j ? j.timeout_s : 300 }), `At most ${MAX_TIMEOUT_S} s.`))),
    field('description', 'Description', textarea('description', { rows: 2, maxlength: 2000, value: j ? j.description || '' : '' })),
    h('fieldset', { class: 'mb-3' }, h('legend', { class: 'form-label fs-6' }, 'Targets'),
      targetChecks,
      field('target_tags', 'And every target carrying all of these tags', input('target_tags', { value: j ? j.target_tags.join(', ') : '', placeholder: 'web, prod' }))),
    h('fieldset', { class: 'mb-3' }, h('legend', { class: 'form-label fs-6' }, 'Parameters'), params.el),
    h('fieldset', { class: 'mb-3' }, h('legend', { class: 'form-label fs-6' }, 'Steps (run in this order on each target)'), steps.el),
    h('div', { class: 'd-flex gap-2' }, submit(j ? `Save as version ${j.version + 1}` : 'Create job'),
      h('a', { class: 'btn btn-link', href: j ? `#/jobs/${encodeURIComponent(j.id)}` : '#/jobs' }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = {
      name: String(d.get('name') || '').trim(),
      steps: steps.read(),
      parameters: params.read(),
      target_ids: d.getAll('target_ids'),
      target_tags: parseTags(d.get('target_tags')),
      max_concurrency: Number(d.get('max_concurrency')),
      timeout_s: Number(d.get('timeout_s')),
    };
    if (String(d.get('description') || '').trim()) payload.description = String(d.get('description')).trim();
    try {
      await busy(form, () => onSave(payload));
    } catch (err) {
      showError(slot, err, form);
      markRows(err, { steps, parameters: params });
    }
  });
  return [slot, form];
}

async function editorPage(ctx, j) {
  const { main } = ctx;
  const title = j ? `Edit ${j.name}` : 'New job';
  if (!canEditJobs()) {
    replace(main, pageHeader(title), h('div', { class: 'alert alert-warning', role: 'alert', id: 'forbidden' },
      'Managers and administrators edit jobs.'));
    return;
  }
  let allTargets;
  try {
    allTargets = await targets();
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader(title), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const editor = jobEditor({
    j, allTargets,
    onSave: async (payload) => {
      const saved = j
        ? await put(`/api/jobs/${encodeURIComponent(j.id)}`, { ...payload, version: j.version })
        : await post('/api/jobs', payload);
      forget('jobs');
      toast(j ? `Saved as version ${saved.version}.` : `Job ${saved.name} created.`);
      navigate(`/jobs/${encodeURIComponent(saved.id)}`);
    },
  });
  replace(main, breadcrumb('Jobs', '#/jobs', j ? j.name : 'New'), pageHeader(title), card(null, editor));
}

export async function jobNew(ctx) {
  replace(ctx.main, pageHeader('New job'), spinner());
  await editorPage(ctx, null);
}

export async function jobEdit(ctx) {
  replace(ctx.main, pageHeader('Edit job'), spinner());
  let j;
  try {
    j = await get(`/api/jobs/${encodeURIComponent(ctx.params.id)}`);
  } catch (err) {
    if (ctx.alive()) replace(ctx.main, breadcrumb('Jobs', '#/jobs', 'Job'), problemAlert(err));
    return;
  }
  if (ctx.alive()) await editorPage(ctx, j);
}

// --- one job ------------------------------------------------------------------------------

function stepsView(j) {
  return h('ol', { class: 'list-group list-group-numbered', id: 'job-steps' }, j.steps.map((s) => h('li', { class: 'list-group-item' },
    h('span', { class: 'fw-semibold' }, s.name), ' ',
    h('span', { class: 'badge text-bg-light border' }, s.kind === 'http' ? 'HTTP' : 'Command'),
    h('span', { class: 'small text-secondary ms-2' }, `timeout ${s.timeout_s} s${s.continue_on_error ? ' · continues on error' : ''}`),
    s.kind === 'http'
      ? h('div', { class: 'small font-monospace text-break mt-1' }, `${s.method} ${s.url}`, h('span', { class: 'text-secondary' }, ` \u2192 ${s.expected_status.join(', ')}`))
      : h('pre', { class: 'payload small mt-1 mb-0' }, s.command))));
}

/** The form that starts a run of the job's current version with its parameters. */
export function runCard(j) {
  if (!canRun()) return card('Run', h('p', { class: 'text-secondary mb-0' }, 'Operators and managers start runs.'));
  const slot = h('div', {});
  const form = h('form', { id: 'run-form', novalidate: true },
    j.parameters.map((p) => field(p.name, p.required ? `${p.name} (required)` : p.name,
      input(p.name, { value: p.default ?? '', required: p.required, id: `rp-${p.name}` }), p.description)),
    j.parameters.length ? null : h('p', { class: 'text-secondary small' }, 'This job has no parameters.'),
    submit('Start run'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    // An empty field leaves the parameter out: the job's default applies (or the API says it
    // is required).
    const parameters = Object.fromEntries(j.parameters.map((p) => [p.name, String(d.get(p.name) ?? '')])
      .filter(([, value]) => value !== ''));
    try {
      const accepted = await busy(form, () => post(`/api/jobs/${encodeURIComponent(j.id)}/runs`, { parameters }));
      toast('Run queued.');
      navigate(`/runs/${encodeURIComponent(accepted.run_id)}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  return card(`Run version ${j.version}`, slot, form);
}

async function recentRuns(j, box) {
  try {
    const [page, users] = await Promise.all([
      get('/api/runs', { job_id: j.id, limit: 10 }), lookups.users()]);
    const usersById = new Map(users.map((u) => [u.id, u]));
    replace(box, table(['Run', 'Status', 'Version', 'By', 'Started', 'Took'], page.items.map((r) => h('tr', { dataset: { id: r.id } },
      h('td', { class: 'font-monospace' }, h('a', { href: `#/runs/${encodeURIComponent(r.id)}` }, shortId(r.id))),
      h('td', {}, statusBadge(r.status)),
      h('td', {}, `v${r.job_version}`),
      h('td', {}, requester(r.requested_by, usersById)),
      h('td', {}, fmtDateTime(r.started_at || r.created_at)),
      h('td', {}, fmtDuration(r.duration_s)))), 'No runs yet.'),
    h('a', { class: 'btn btn-link px-0', href: `#/runs?job_id=${encodeURIComponent(j.id)}` }, 'All runs of this job'));
  } catch (err) {
    replace(box, problemAlert(err));
  }
}

export async function jobDetail(ctx) {
  const { main, params, query } = ctx;
  const id = encodeURIComponent(params.id);
  replace(main, spinner());
  let current;
  let shown;
  let byId;
  try {
    current = await get(`/api/jobs/${id}`);
    const want = Number(query.get('version'));
    [shown, byId] = await Promise.all([
      want && want !== current.version ? get(`/api/jobs/${id}/versions/${want}`) : current,
      targets().then((ts) => new Map(ts.map((t) => [t.id, t]))),
    ]);
  } catch (err) {
    if (ctx.alive()) replace(main, breadcrumb('Jobs', '#/jobs', 'Job'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const old = shown.version !== current.version;
  const versions = select('version', Array.from({ length: current.version }, (_, i) => current.version - i)
    .map((n) => [n, n === current.version ? `Version ${n} (current)` : `Version ${n}`]), { value: shown.version, id: 'job-version', class: 'form-select form-select-sm w-auto' });
  versions.addEventListener('change', () => navigate(`/jobs/${params.id}`,
    { version: Number(versions.value) === current.version ? '' : versions.value }));
  const delSlot = h('div', {});
  const remove = canEditJobs() ? h('button', { class: 'btn btn-outline-danger', type: 'button', id: 'delete-job' }, 'Delete') : null;
  if (remove) {
    remove.addEventListener('click', () => confirmInline(remove, 'Delete this job? Its runs stay readable.', async () => {
      try {
        await del(`/api/jobs/${id}`);
        forget('jobs');
        toast('Job deleted.');
        navigate('/jobs');
      } catch (err) {
        replace(delSlot, problemAlert(err));
      }
    }));
  }
  const runs = h('div', { id: 'job-runs' }, spinner());
  replace(main, breadcrumb('Jobs', '#/jobs', current.name),
    pageHeader(shown.name,
      h('label', { class: 'visually-hidden', for: 'job-version' }, 'Version'), versions,
      canEditJobs() ? h('a', { class: 'btn btn-outline-primary', href: `#/jobs/${id}/edit`, id: 'edit-job' }, 'Edit') : null,
      canEditSchedules() ? h('a', { class: 'btn btn-outline-secondary', href: `#/schedules/new?job_id=${id}` }, 'Schedule') : null,
      remove),
    delSlot,
    old ? h('div', { class: 'alert alert-info', role: 'status', id: 'old-version' },
      `You are looking at version ${shown.version}; the current one is ${current.version}. Runs always start the current version.`) : null,
    h('div', { class: 'row' },
      h('div', { class: 'col-lg-7' },
        card('Definition', facts([
          shown.description ? ['Description', h('span', { class: 'text-pre-wrap' }, shown.description)] : null,
          ['Targets', targetsText(shown, byId)],
          shown.target_tags.length ? ['Target tags', tagList(shown.target_tags)] : null,
          ['Max concurrency', String(shown.max_concurrency)],
          ['Overall timeout', `${shown.timeout_s} s`],
          ['Parameters', shown.parameters.length ? shown.parameters.map((p) => `${p.name}${p.default ? ` = ${p.default}` : ''}${p.required ? ' (required)' : ''}`).join(', ') : 'None'],
          ['Updated', fmtDateTime(current.updated_at)],
        ].filter(Boolean))),
        card('Steps', stepsView(shown))),
      h('div', { class: 'col-lg-5' }, runCard(current), card('Recent runs', runs))));
  recentRuns(current, runs);
}

