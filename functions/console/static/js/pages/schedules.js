// Automation schedules: the list with each schedule's next fire time, a new schedule (a job, a
// cron expression read in a time zone, parameters, catch-up policy), one schedule with its next
// five fire times, pause and resume, changes and delete.

import { del, get, post, put } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import { navigate } from '../router.js';
import {
  busy, card, clearErrors, facts, field, filterField, input, pageHeader, pagedTable, problemAlert,
  select, showError, spinner, submit, toast,
} from '../ui.js';
import { breadcrumb, canEditSchedules, forget, jobs, statusBadge } from './runs-shared.js';
import { confirmInline } from './targets.js';

const CATCH_UP = [['once', 'Run once for missed slots'], ['skip', 'Skip missed slots']];

/** A fire time as the schedule's own clock reads it (the API answers UTC). */
export function inZone(iso, zone) {
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone: zone, weekday: 'short', day: 'numeric',
      month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' })
      .format(new Date(iso));
  } catch {
    return fmtDateTime(iso);
  }
}

function stateBadge(s) {
  return statusBadge(s.enabled ? 'enabled' : 'paused');
}

async function pauseOrResume(s) {
  const verb = s.enabled ? 'pause' : 'resume';
  const out = await post(`/api/schedules/${encodeURIComponent(s.id)}/${verb}`);
  toast(out.enabled ? 'Schedule resumed.' : 'Schedule paused.');
  return out;
}

function toggleButton(s, after, slot) {
  const b = h('button', { class: `btn btn-sm ${s.enabled ? 'btn-outline-secondary' : 'btn-outline-success'}`, type: 'button',
    dataset: { action: s.enabled ? 'pause' : 'resume' } }, s.enabled ? 'Pause' : 'Resume');
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await after(await pauseOrResume(s));
    } catch (err) {
      replace(slot, problemAlert(err));
      b.disabled = false;
    }
  });
  return b;
}

export async function scheduleList(ctx) {
  const { main, query } = ctx;
  replace(main, pageHeader('Schedules'), spinner());
  let allJobs;
  try {
    allJobs = await jobs();
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('Schedules'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const jobsById = new Map(allJobs.map((j) => [j.id, j]));
  const jobId = query.get('job_id') || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'schedule-filters' },
    filterField('sf-job', 'Job', select('job_id', allJobs.map((j) => [j.id, j.name]), { value: jobId, empty: 'Any' }), 'col-12 col-md-4'),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/schedules' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate('/schedules', { job_id: new FormData(form).get('job_id') || '' });
  });
  const slot = h('div', {});
  const row = (s) => {
    const j = jobsById.get(s.job_id);
    const tr = h('tr', { dataset: { id: s.id } });
    const fill = (x) => {
      replace(tr,
        h('td', {}, h('a', { href: `#/schedules/${encodeURIComponent(x.id)}`, class: 'fw-semibold' }, j ? j.name : 'Deleted job')),
        h('td', {}, h('code', {}, x.cron), h('div', { class: 'small text-secondary' }, x.time_zone)),
        h('td', { class: 'schedule-state' }, stateBadge(x)),
        h('td', { class: 'schedule-next' }, x.next_fire_times.length ? inZone(x.next_fire_times[0], x.time_zone)
          : h('span', { class: 'text-secondary' }, 'Paused: none')),
        h('td', {}, x.last_due_at ? fmtDateTime(x.last_due_at) : h('span', { class: 'text-secondary' }, 'Never')),
        canEditSchedules() ? h('td', { class: 'text-end' }, toggleButton(x, async (out) => fill(out), slot)) : null);
    };
    fill(s);
    return tr;
  };
  const headers = ['Job', 'Cron', 'State', 'Next fire time', 'Handled up to'];
  if (canEditSchedules()) headers.push('Action');
  replace(main,
    pageHeader('Schedules',
      canEditSchedules() ? h('a', { class: 'btn btn-primary', href: jobId ? `#/schedules/new?job_id=${encodeURIComponent(jobId)}` : '#/schedules/new', id: 'new-schedule' }, 'New schedule') : null),
    h('p', { class: 'text-secondary' }, 'Cron schedules start runs of a job, once per due time. Times are shown in each schedule\u2019s time zone.'),
    form, slot,
    pagedTable({ id: 'schedule-table', headers, row,
      empty: jobId ? 'This job has no schedules.' : 'No schedules yet.',
      load: (cursor) => get('/api/schedules', { job_id: jobId, limit: 25, cursor }) }));
}

function zones() {
  const list = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  return h('datalist', { id: 'time-zones' }, ['Etc/UTC', ...list].map((z) => h('option', { value: z })));
}

function paramFields(j, values = {}) {
  if (!j || !j.parameters.length) return h('p', { class: 'text-secondary small' }, j ? 'The job has no parameters.' : '');
  return j.parameters.map((p) => field(p.name, p.required ? `${p.name} (required)` : p.name,
    input(p.name, { value: values[p.name] ?? '', placeholder: p.default ?? '', id: `sp-${p.name}`, dataset: { param: '1' } }),
    p.default ? `Empty: the job's default (${p.default}).` : p.description));
}

function readParams(form) {
  const out = {};
  for (const el of form.querySelectorAll('[data-param]')) if (el.value !== '') out[el.name] = el.value;
  return out;
}

export async function scheduleNew(ctx) {
  const { main, query } = ctx;
  replace(main, pageHeader('New schedule'), spinner());
  if (!canEditSchedules()) {
    replace(main, pageHeader('New schedule'), h('div', { class: 'alert alert-warning', role: 'alert', id: 'forbidden' },
      'Managers and administrators schedule jobs.'));
    return;
  }
  let allJobs;
  try {
    allJobs = await jobs();
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('New schedule'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const slot = h('div', {});
  const job = select('job_id', allJobs.map((j) => [j.id, j.name]), { value: query.get('job_id') || '', empty: 'Choose a job…', required: true });
  const paramsBox = h('div', { id: 'schedule-params' });
  const showParams = () => replace(paramsBox, paramFields(allJobs.find((j) => j.id === job.value)));
  job.addEventListener('change', showParams);
  showParams();
  const form = h('form', { id: 'schedule-form', novalidate: true },
    field('job_id', 'Job', job, allJobs.length ? null : h('span', {}, 'No jobs yet: ', h('a', { href: '#/jobs/new' }, 'create one'), '.')),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('cron', 'Cron expression', input('cron', { required: true, placeholder: '*/15 * * * *', spellcheck: 'false', class: 'form-control font-monospace' }),
        'Five fields: minute, hour, day of month, month, day of week. E.g. 0 3 * * 1-5 is 03:00 on weekdays.')),
      h('div', { class: 'col-md-6' }, field('time_zone', 'Time zone', input('time_zone', { value: 'Etc/UTC', list: 'time-zones', required: true, spellcheck: 'false' }), 'The zone the cron is read in (IANA name).'), zones())),
    h('fieldset', { class: 'mb-3' }, h('legend', { class: 'form-label fs-6' }, 'Parameters'), paramsBox),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('catch_up', 'After missed slots', select('catch_up', CATCH_UP, { value: 'once' }), 'When the scheduler was down.')),
      h('div', { class: 'col-md-6 d-flex align-items-end' }, h('div', { class: 'form-check mb-3' },
        h('input', { class: 'form-check-input', type: 'checkbox', name: 'enabled', id: 'f-enabled', checked: true }),
        h('label', { class: 'form-check-label', for: 'f-enabled' }, 'Enabled')))),
    h('div', { class: 'd-flex gap-2' }, submit('Create schedule'), h('a', { class: 'btn btn-link', href: '#/schedules' }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = {
      job_id: d.get('job_id') || null,
      cron: String(d.get('cron') || '').trim(),
      time_zone: String(d.get('time_zone') || '').trim(),
      parameters: readParams(form),
      catch_up: d.get('catch_up'),
      enabled: d.get('enabled') === 'on',
    };
    try {
      const s = await busy(form, () => post('/api/schedules', payload));
      toast('Schedule created.');
      navigate(`/schedules/${encodeURIComponent(s.id)}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  replace(main, breadcrumb('Schedules', '#/schedules', 'New'), pageHeader('New schedule'), card(null, slot, form));
}

function editCard(s, j, reload) {
  const slot = h('div', {});
  const form = h('form', { id: 'schedule-edit', novalidate: true },
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('cron', 'Cron expression', input('cron', { value: s.cron, class: 'form-control font-monospace', spellcheck: 'false' }))),
      h('div', { class: 'col-md-6' }, field('time_zone', 'Time zone', input('time_zone', { value: s.time_zone, list: 'time-zones', spellcheck: 'false' })), zones())),
    paramFields(j, s.parameters),
    field('catch_up', 'After missed slots', select('catch_up', CATCH_UP, { value: s.catch_up })),
    submit('Save changes'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    try {
      await busy(form, () => put(`/api/schedules/${encodeURIComponent(s.id)}`, {
        cron: String(d.get('cron') || '').trim(), time_zone: String(d.get('time_zone') || '').trim(),
        parameters: readParams(form), catch_up: d.get('catch_up'), version: s.version }));
      toast('Saved.');
      await reload();
    } catch (err) {
      showError(slot, err, form);
    }
  });
  return card('Edit', slot, form);
}

export async function scheduleDetail(ctx) {
  const { main, params } = ctx;
  const id = encodeURIComponent(params.id);
  replace(main, spinner());
  const reload = async () => {
    let s;
    let j;
    try {
      s = await get(`/api/schedules/${id}`);
      j = await get(`/api/jobs/${encodeURIComponent(s.job_id)}`).catch(() => null);
    } catch (err) {
      if (ctx.alive()) replace(main, breadcrumb('Schedules', '#/schedules', 'Schedule'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const slot = h('div', {});
    const name = j ? j.name : 'Deleted job';
    const next = s.next_fire_times.length
      ? h('ol', { class: 'list-group list-group-numbered', id: 'schedule-next' }, s.next_fire_times.map((t) => h('li', { class: 'list-group-item' },
        inZone(t, s.time_zone), h('div', { class: 'small text-secondary' }, `${new Date(t).toISOString().replace('T', ' ').slice(0, 16)} UTC`))))
      : h('p', { class: 'text-secondary mb-0', id: 'schedule-next' }, 'Paused: no runs will start until it is resumed. Slots missed while paused are not started.');
    let remove = null;
    if (canEditSchedules()) {
      remove = h('button', { class: 'btn btn-outline-danger', type: 'button', id: 'delete-schedule' }, 'Delete');
      remove.addEventListener('click', () => confirmInline(remove, 'Delete this schedule?', async () => {
        try {
          await del(`/api/schedules/${id}`);
          forget('jobs');
          toast('Schedule deleted.');
          navigate('/schedules');
        } catch (err) {
          replace(slot, problemAlert(err));
        }
      }));
    }
    replace(main, breadcrumb('Schedules', '#/schedules', name),
      pageHeader(h('span', {}, name, ' ', h('span', { class: 'font-monospace fs-5 ms-1 text-secondary' }, s.cron)),
        h('span', { id: 'schedule-state' }, stateBadge(s)),
        canEditSchedules() ? toggleButton(s, reload, slot) : null, remove),
      slot,
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-6' },
          card('Next five fire times', next),
          card('Schedule', facts([
            ['Job', j ? h('a', { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.name) : name],
            ['Cron', h('code', {}, s.cron)],
            ['Time zone', s.time_zone],
            ['Parameters', Object.keys(s.parameters).length ? h('span', { class: 'font-monospace small' }, Object.entries(s.parameters).map(([k, v]) => `${k}=${v}`).join(' ')) : 'Job defaults'],
            ['After missed slots', label(CATCH_UP.find(([v]) => v === s.catch_up)?.[1] || s.catch_up)],
            ['Slots handled up to', s.last_due_at ? fmtDateTime(s.last_due_at) : 'None yet'],
            ['Runs', j ? h('a', { href: `#/runs?job_id=${encodeURIComponent(j.id)}` }, 'Runs of this job') : '—'],
            ['Updated', fmtDateTime(s.updated_at)],
          ]))),
        h('div', { class: 'col-lg-6' }, canEditSchedules() ? editCard(s, j, reload)
          : card('Edit', h('p', { class: 'text-secondary mb-0' }, 'Managers and administrators change schedules.')))));
  };
  await reload();
}
