// Bootstrap building blocks: page headers, problem alerts, field errors, badges, tables.

import { h, label, replace } from './dom.js';
import { ApiError } from './errors.js';

export function pageHeader(title, ...actions) {
  return h('div', { class: 'd-flex flex-wrap align-items-center justify-content-between gap-2 mb-3' },
    h('h1', { class: 'h3 mb-0' }, title),
    h('div', { class: 'd-flex flex-wrap align-items-center gap-2' }, actions));
}

export function spinner(text = 'Loading…') {
  return h('div', { class: 'd-flex align-items-center gap-2 text-secondary py-4', role: 'status' },
    h('div', { class: 'spinner-border spinner-border-sm', 'aria-hidden': 'true' }), text);
}

/** The API's problem as the user sees it: title, detail, field errors, allowed moves. */
export function problemAlert(err) {
  const e = err instanceof ApiError ? err : new ApiError(0, {
    title: 'Something went wrong', detail: err && err.message ? err.message : String(err),
  });
  const p = e.problem;
  const body = [h('strong', {}, e.title)];
  if (e.detail) body.push(' ', h('span', { class: 'problem-detail' }, e.detail));
  if (e.errors.length) {
    body.push(h('ul', { class: 'mb-0 mt-1 problem-errors' }, e.errors.map((x) => h('li', {},
      x.field ? h('code', {}, x.field) : null, x.field ? ': ' : null, x.message || x.type || ''))));
  }
  if (Array.isArray(p.allowed)) {
    // maintenance sends statuses, production sends request bodies ({status} or {stage})
    const text = (a) => (a && typeof a === 'object'
      ? Object.entries(a).map(([k, v]) => `${k} ${label(v)}`).join(' ') : label(a));
    body.push(h('div', { class: 'mt-1 small' }, 'Allowed next: ',
      p.allowed.length ? p.allowed.map(text).join(', ') : 'none (terminal)'));
  }
  if (p.request_id) {
    body.push(h('div', { class: 'small text-body-secondary mt-1' }, `Request id ${p.request_id}`));
  }
  return h('div', { class: 'alert alert-danger', role: 'alert' }, body);
}

/** Show `err` in `slot` and mark the form's fields named in its `errors`. */
export function showError(slot, err, form) {
  replace(slot, problemAlert(err));
  if (form) markFields(form, err);
}

export function clearErrors(slot, form) {
  if (slot) slot.replaceChildren();
  if (!form) return;
  for (const el of form.querySelectorAll('.is-invalid')) el.classList.remove('is-invalid');
  for (const el of form.querySelectorAll('.invalid-feedback.from-api')) el.remove();
}

function markFields(form, err) {
  clearErrors(null, form);
  const errors = err instanceof ApiError ? err.errors : [];
  for (const e of errors) {
    const name = String(e.field || '').split('.').pop();
    const input = name && form.elements.namedItem(name);
    if (!input || !(input instanceof HTMLElement)) continue;
    input.classList.add('is-invalid');
    input.after(h('div', { class: 'invalid-feedback from-api' }, e.message || ''));
  }
}

const STATUS_CLASS = {
  open: 'text-bg-primary',
  assigned: 'text-bg-info',
  in_progress: 'text-bg-warning',
  on_hold: 'text-bg-secondary',
  completed: 'text-bg-success',
  closed: 'text-bg-dark',
  cancelled: 'text-bg-light border',
  operational: 'text-bg-success',
  degraded: 'text-bg-warning',
  down: 'text-bg-danger',
  retired: 'text-bg-secondary',
  low: 'text-bg-light border',
  medium: 'text-bg-info',
  high: 'text-bg-warning',
  urgent: 'text-bg-danger',
  critical: 'text-bg-danger',
};

export function badge(value, extra = '') {
  if (value === null || value === undefined) return h('span', { class: 'text-secondary' }, '—');
  return h('span', { class: `badge ${STATUS_CLASS[value] || 'text-bg-light border'} ${extra}`,
    dataset: { value } }, label(value));
}

/** The wrapper that lets a wide table scroll sideways; it takes the keyboard focus (a region
 * named `name`), so the arrow keys scroll it where there is no pointer (WCAG 2.1.1). */
export function scroller(name, content) {
  return h('div', { class: 'table-responsive', tabindex: '0', role: 'region', 'aria-label': name }, content);
}

export function table(headers, rows, empty = 'Nothing here yet.') {
  if (!rows.length) return h('p', { class: 'text-secondary py-3 mb-0' }, empty);
  return scroller(headers.join(', '),
    h('table', { class: 'table table-hover align-middle mb-0' },
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows)));
}

export function card(title, ...body) {
  return h('div', { class: 'card shadow-sm mb-3' },
    title ? h('div', { class: 'card-header fw-semibold' }, title) : null,
    h('div', { class: 'card-body' }, body));
}

export function field(name, text, input, help) {
  input.id = input.id || `f-${name}`;
  if (!input.name) input.name = name;
  return h('div', { class: 'mb-3' },
    h('label', { class: 'form-label', for: input.id }, text),
    input,
    help ? h('div', { class: 'form-text' }, help) : null);
}

export function input(name, props = {}) {
  return h('input', { class: 'form-control', name, type: 'text', ...props });
}

export function textarea(name, props = {}) {
  return h('textarea', { class: 'form-control', name, rows: 3, ...props });
}

/** A <select>; options are values or [value, text] pairs; `empty` adds a blank first option. */
export function select(name, options, { value = '', empty = null, ...props } = {}) {
  const opts = [];
  if (empty !== null) opts.push(h('option', { value: '' }, empty));
  for (const o of options) {
    const [v, t] = Array.isArray(o) ? o : [o, label(o)];
    opts.push(h('option', { value: v, selected: String(v) === String(value ?? '') }, t));
  }
  return h('select', { class: 'form-select', name, ...props }, opts);
}

export function submit(text, cls = 'btn-primary') {
  return h('button', { class: `btn ${cls}`, type: 'submit' }, text);
}

/** Disable a form's buttons while `fn` runs. */
export async function busy(form, fn) {
  const buttons = [...form.querySelectorAll('button')];
  for (const b of buttons) b.disabled = true;
  try {
    return await fn();
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

/** A definition list of [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'row mb-0 facts' }, pairs.map(([k, v]) => [
    h('dt', { class: 'col-sm-4 text-secondary fw-normal' }, k),
    h('dd', { class: 'col-sm-8' }, v === null || v === undefined || v === '' ? '—' : v),
  ]));
}

export function toast(text, kind = 'success') {
  let host = document.getElementById('toasts');
  if (!host) {
    host = h('div', { id: 'toasts', class: 'toast-container position-fixed bottom-0 end-0 p-3' });
    document.body.append(host);
  }
  const el = h('div', { class: `toast align-items-center text-bg-${kind} border-0`, role: 'status',
    'aria-live': 'polite', 'aria-atomic': 'true' },
  h('div', { class: 'd-flex' }, h('div', { class: 'toast-body' }, text),
    h('button', { type: 'button', class: 'btn-close btn-close-white me-2 m-auto',
      'data-bs-dismiss': 'toast', 'aria-label': 'Close' })));
  host.append(el);
  while (host.children.length > 3) host.firstElementChild.remove();
  if (window.bootstrap) {
    const t = window.bootstrap.Toast.getOrCreateInstance(el, { delay: 3000 });
    el.addEventListener('hidden.bs.toast', () => el.remove());
    t.show();
  } else {
    setTimeout(() => el.remove(), 3000);
  }
}

/** What a signed-in user without the role sees instead of a page. */
export function forbidden(main, title, roles) {
  replace(main, pageHeader(title), h('div', { class: 'alert alert-warning', role: 'alert', id: 'forbidden' },
    h('strong', {}, 'You cannot open this page. '),
    `It needs the ${roles.join(' or ')} role; ask an administrator if you need it.`));
}

/** A keyset-paged table: loading row, empty state, "Load more", the API's problem on error.
 * `load(cursor)` answers {items, next_cursor}; `row(item)` makes a <tr>. */
export function pagedTable({ id, headers, row, load, empty = 'Nothing here yet.' }) {
  const body = h('tbody', {});
  const slot = h('div', {});
  const more = h('button', { class: 'btn btn-outline-secondary d-none', type: 'button' }, 'Load more');
  const count = h('span', { class: 'text-secondary small', role: 'status' });
  const table = h('table', { class: 'table table-hover align-middle mb-0', id },
    h('caption', { class: 'visually-hidden' }, headers.join(', ')),
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))), body);
  const el = h('div', { class: 'card shadow-sm mb-3' }, slot,
    scroller(headers.join(', '), table),
    h('div', { class: 'card-footer d-flex justify-content-between align-items-center' }, count, more));
  let cursor = null;
  let shown = 0;
  async function next() {
    const loading = h('tr', { class: 'loading-row' }, h('td', { colspan: headers.length },
      spinner()));
    body.append(loading);
    try {
      const page = await load(cursor);
      loading.remove();
      body.append(...page.items.map(row));
      shown += page.items.length;
      cursor = page.next_cursor;
      more.classList.toggle('d-none', !cursor);
      count.textContent = shown ? `${shown} shown${cursor ? '' : ' (all)'}` : '';
      if (!shown) {
        body.append(h('tr', { class: 'empty-row' }, h('td', { colspan: headers.length,
          class: 'text-secondary py-3' }, empty)));
      }
    } catch (err) {
      loading.remove();
      replace(slot, problemAlert(err));
    }
  }
  more.addEventListener('click', () => busy(el, next));
  next();
  return el;
}

/** A labelled filter control in a filters row. */
export function filterField(id, text, control, cols = 'col-6 col-md-2') {
  control.id = id;
  return h('div', { class: cols }, h('label', { class: 'form-label', for: id }, text), control);
}
