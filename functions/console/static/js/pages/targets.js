// Automation targets: the list (by tag and kind), a new target with its credential (the secret
// is typed once, sent once and never shown again), one target with "Test connection" (which
// stage failed, in plain words: DNS, TCP, host key, auth) and its settings.

import { del, get, post, put } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import { navigate } from '../router.js';
import {
  busy, card, clearErrors, facts, field, filterField, input, pageHeader, pagedTable, problemAlert,
  select, showError, spinner, submit, textarea, toast,
} from '../ui.js';
import {
  breadcrumb, canManageTargets, canTest, credentials, forget, parseTags, tagList,
} from './runs-shared.js';

const KINDS = ['ssh', 'winrm', 'http'];
const FILTERS = ['tag', 'kind'];
const STAGE_TEXT = {
  dns: 'DNS', tcp: 'TCP', host_key: 'Host key', auth: 'Authentication', protocol: 'Protocol',
  http: 'HTTP', policy: 'Outbound policy',
};
const DEFAULT_PORT = { ssh: 22, winrm: 5986, http: 443 };

function targetRow(t) {
  const href = `#/targets/${encodeURIComponent(t.id)}`;
  return h('tr', { dataset: { id: t.id } },
    h('td', {}, h('a', { href, class: 'fw-semibold' }, t.name)),
    h('td', {}, label(t.kind)),
    h('td', { class: 'text-nowrap' }, `${t.host}:${t.port}`),
    h('td', {}, tagList(t.tags)),
    h('td', {}, t.credential_id ? 'Yes' : h('span', { class: 'text-secondary' }, 'None')),
    h('td', {}, fmtDateTime(t.updated_at)));
}

export async function targetList(ctx) {
  const { main, query } = ctx;
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'target-filters' },
    filterField('tf-tag', 'Tag', input('tag', { value: v('tag'), placeholder: 'e.g. web' }), 'col-6 col-md-3'),
    filterField('tf-kind', 'Kind', select('kind', KINDS, { value: v('kind'), empty: 'Any' })),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/targets' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/targets', Object.fromEntries(FILTERS.map((k) => [k, String(d.get(k) || '').trim()])));
  });
  const params = Object.fromEntries(FILTERS.filter((k) => v(k)).map((k) => [k, v(k)]));
  replace(main,
    pageHeader('Targets',
      canManageTargets() ? h('a', { class: 'btn btn-primary', href: '#/targets/new', id: 'new-target' }, 'New target') : null),
    h('p', { class: 'text-secondary' }, 'Machines and endpoints jobs run on. Tags select groups of targets for jobs and for operators\u2019 permissions.'),
    form,
    pagedTable({ id: 'target-table', headers: ['Name', 'Kind', 'Address', 'Tags', 'Credential', 'Updated'],
      row: targetRow, empty: Object.keys(params).length ? 'No targets match.' : 'No targets yet.',
      load: (cursor) => get('/api/targets', { ...params, limit: 25, cursor }) }));
}

// --- the form (new and edit) ---------------------------------------------------------------

function optionFields(kind, options = {}) {
  const o = (k) => options[k] ?? '';
  if (kind === 'ssh') {
    return [
      h('div', { class: 'col-md-4' }, field('user', 'SSH user', input('user', { value: o('user'), required: true, maxlength: 64, autocomplete: 'off' }))),
      h('div', { class: 'col-md-8' }, field('host_key', 'Host key fingerprint', input('host_key', { value: o('host_key'), placeholder: 'SHA256:…', autocomplete: 'off', spellcheck: 'false' }),
        'As ssh-keygen -lf prints it. Without it connections are refused; "Test connection" shows the key the server presents.')),
    ];
  }
  if (kind === 'winrm') {
    return [
      h('div', { class: 'col-md-4' }, field('user', 'User', input('user', { value: o('user'), maxlength: 64, autocomplete: 'off' }))),
      h('div', { class: 'col-md-3' }, field('transport', 'Transport', select('transport', ['ntlm', 'basic', 'kerberos', 'credssp', 'ssl'].map((t) => [t, t.toUpperCase()]), { value: o('transport') || 'ntlm' }))),
      h('div', { class: 'col-md-2' }, field('scheme', 'Scheme', select('scheme', ['https', 'http'], { value: o('scheme') || 'https' }))),
      h('div', { class: 'col-md-3 d-flex align-items-end' }, h('div', { class: 'form-check mb-3' },
        h('input', { class: 'form-check-input', type: 'checkbox', name: 'verify_tls', id: 'f-verify_tls', checked: options.verify_tls !== false }),
        h('label', { class: 'form-check-label', for: 'f-verify_tls' }, 'Verify the certificate'))),
    ];
  }
  return [h('div', { class: 'col-md-3' }, field('scheme', 'Scheme', select('scheme', ['https', 'http'], { value: o('scheme') || 'https' })))];
}

function credentialOptions(creds) {
  return creds.map((c) => [c.id, `${c.name} (${label(c.kind).toLowerCase()}${c.username ? `, ${c.username}` : ''})`]);
}

function targetForm({ id, t = null, creds, onSubmit, submitText }) {
  const kind = select('kind', KINDS, { value: t ? t.kind : 'ssh', id: 'f-kind' });
  const opts = h('div', { class: 'row', id: 'target-options' });
  const port = input('port', { type: 'number', min: 1, max: 65535, value: t ? t.port : '', placeholder: String(DEFAULT_PORT[t ? t.kind : 'ssh']) });
  const credential = select('credential_id', credentialOptions(creds), { value: t ? t.credential_id || '' : '', empty: 'None', id: 'f-credential_id' });
  const showOptions = () => {
    replace(opts, optionFields(kind.value, t && t.kind === kind.value ? t.options : {}));
    port.placeholder = String(DEFAULT_PORT[kind.value]);
  };
  kind.addEventListener('change', showOptions);
  showOptions();
  const form = h('form', { id, novalidate: true },
    h('div', { class: 'row' },
      h('div', { class: 'col-md-5' }, field('name', 'Name', input('name', { value: t ? t.name : '', required: true, maxlength: 100 }))),
      h('div', { class: 'col-md-3' }, field('kind', 'Kind', kind))),
    h('div', { class: 'row' },
      h('div', { class: 'col-md-8' }, field('host', 'Host', input('host', { value: t ? t.host : '', required: true, maxlength: 253, placeholder: 'db1.example.internal or 10.0.0.5', spellcheck: 'false' }))),
      h('div', { class: 'col-md-4' }, field('port', 'Port', port, 'Empty: the kind\u2019s default.'))),
    field('tags', 'Tags', input('tags', { value: t ? t.tags.join(', ') : '', placeholder: 'web, prod' }), 'Comma separated; lower case letters, digits and . _ : -'),
    opts,
    field('credential_id', 'Credential', credential, 'Stored credentials are listed by name only.'),
    h('div', { class: 'form-check mb-3' },
      h('input', { class: 'form-check-input', type: 'checkbox', name: 'internal', id: 'f-internal', checked: Boolean(t && t.internal) }),
      h('label', { class: 'form-check-label', for: 'f-internal' }, 'Internal: HTTP steps may reach its private address')),
    h('div', { class: 'd-flex gap-2' }, submit(submitText),
      h('a', { class: 'btn btn-link', href: t ? `#/targets/${encodeURIComponent(t.id)}` : '#/targets' }, 'Cancel')));
  const slot = h('div', {});
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const options = {};
    for (const key of ['user', 'host_key', 'transport', 'scheme']) {
      const value = String(d.get(key) || '').trim();
      if (value) options[key] = value;
    }
    if (kind.value === 'winrm') options.verify_tls = d.get('verify_tls') === 'on';
    const payload = {
      name: String(d.get('name') || '').trim(),
      kind: kind.value,
      host: String(d.get('host') || '').trim(),
      tags: parseTags(d.get('tags')),
      options,
      internal: d.get('internal') === 'on',
    };
    if (d.get('port')) payload.port = Number(d.get('port'));
    if (d.get('credential_id')) payload.credential_id = d.get('credential_id');
    else if (t && t.credential_id) payload.credential_id = null;
    try {
      await busy(form, () => onSubmit(payload));
    } catch (err) {
      showError(slot, err, form);
    }
  });
  return { form, slot, credential };
}

/** Store a credential: the secret is sent once; the answer (and every later read) is
 * metadata. The new credential is chosen in `select`. */
function credentialCard(select) {
  const slot = h('div', {});
  const kind = h('select', { class: 'form-select', name: 'kind', id: 'c-kind' },
    h('option', { value: 'private_key' }, 'Private key'), h('option', { value: 'password' }, 'Password'));
  const secret = textarea('secret', { id: 'c-secret', rows: 5, required: true, autocomplete: 'off', spellcheck: 'false',
    class: 'form-control font-monospace small', placeholder: '-----BEGIN OPENSSH PRIVATE KEY-----' });
  const password = input('secret', { id: 'c-password', type: 'password', autocomplete: 'new-password', disabled: true });
  const secretBox = h('div', {});
  const showSecret = () => {
    const isKey = kind.value === 'private_key';
    secret.disabled = !isKey;
    password.disabled = isKey;
    replace(secretBox, isKey
      ? field('secret', 'Private key', secret, 'PEM or OpenSSH. Stored in the secret store; it is never shown again.')
      : field('secret', 'Password', password, 'Stored in the secret store; it is never shown again.'));
  };
  kind.addEventListener('change', showSecret);
  showSecret();
  const form = h('form', { id: 'credential-form', novalidate: true },
    field('name', 'Name', input('name', { id: 'c-name', required: true, maxlength: 100, placeholder: 'deploy-key' })),
    h('div', { class: 'row' },
      h('div', { class: 'col-sm-6' }, field('kind', 'Kind', kind)),
      h('div', { class: 'col-sm-6' }, field('username', 'Username', input('username', { id: 'c-username', maxlength: 200, autocomplete: 'off' }), 'Optional.'))),
    secretBox,
    submit('Store credential', 'btn-outline-primary'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = { name: String(d.get('name') || '').trim(), kind: kind.value, secret: d.get('secret') || '' };
    if (String(d.get('username') || '').trim()) payload.username = String(d.get('username')).trim();
    try {
      const c = await busy(form, () => post('/api/credentials', payload));
      forget('credentials');
      form.reset();
      showSecret();
      select.append(h('option', { value: c.id }, credentialOptions([c])[0][1]));
      select.value = c.id;
      replace(slot, h('div', { class: 'alert alert-success', role: 'status', id: 'credential-stored' },
        `Credential \u201c${c.name}\u201d stored and chosen for this target. Its secret will not be shown again.`));
    } catch (err) {
      showError(slot, err, form);
    }
  });
  return card('New credential', slot, form);
}

export async function targetNew(ctx) {
  const { main } = ctx;
  replace(main, pageHeader('New target'), spinner());
  if (!canManageTargets()) {
    replace(main, pageHeader('New target'), h('div', { class: 'alert alert-warning', role: 'alert', id: 'forbidden' },
      'Only administrators add targets.'));
    return;
  }
  let creds;
  try {
    creds = await credentials();
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('New target'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const { form, slot, credential } = targetForm({
    id: 'target-form', creds, submitText: 'Create target',
    onSubmit: async (payload) => {
      const t = await post('/api/targets', payload);
      forget('targets');
      toast(`Target ${t.name} created.`);
      navigate(`/targets/${encodeURIComponent(t.id)}`);
    },
  });
  replace(main, breadcrumb('Targets', '#/targets', 'New'), pageHeader('New target'),
    h('div', { class: 'row' },
      h('div', { class: 'col-lg-7' }, card(null, slot, form)),
      h('div', { class: 'col-lg-5' }, credentialCard(credential))));
}

// --- one target ----------------------------------------------------------------------------

function testCard(t, reload) {
  const out = h('div', { id: 'test-result', 'aria-live': 'polite' });
  const button = h('button', { class: 'btn btn-primary', type: 'button', id: 'test-connection' }, 'Test connection');
  button.addEventListener('click', async () => {
    replace(out, spinner('Connecting…'));
    try {
      const result = await busy(box, () => post(`/api/targets/${encodeURIComponent(t.id)}/test`));
      replace(out, testResult(t, result, reload));
    } catch (err) {
      replace(out, problemAlert(err));
    }
  });
  const box = h('div', {}, canTest() ? button
    : h('p', { class: 'text-secondary mb-0' }, 'Operators and managers test connections.'), out);
  return card('Connection', box);
}

function testResult(t, result, reload) {
  const items = result.steps.map((s) => h('li', {
    class: `list-group-item d-flex gap-2 align-items-start ${s.ok ? '' : 'list-group-item-danger'}`,
    dataset: { stage: s.stage, ok: String(s.ok) } },
  h('span', { class: `badge ${s.ok ? 'text-bg-success' : 'text-bg-danger'} mt-1` }, s.ok ? 'OK' : 'Failed'),
  h('div', {}, h('div', { class: 'fw-semibold' }, STAGE_TEXT[s.stage] || label(s.stage)),
    h('div', { class: 'small text-break' }, s.message))));
  const summary = result.ok
    ? h('div', { class: 'alert alert-success mt-3 mb-2', role: 'status', id: 'test-summary' }, 'Connected: the target is reachable and the credential works.')
    : h('div', { class: 'alert alert-danger mt-3 mb-2', role: 'alert', id: 'test-summary' },
      `Failed at ${(STAGE_TEXT[(result.steps.find((s) => !s.ok) || {}).stage] || 'an unknown stage').toLowerCase()}.`);
  let pin = null;
  if (result.presented_host_key) {
    pin = h('div', { class: 'mt-2 small' }, 'The server presents ',
      h('code', { class: 'text-break', id: 'presented-key' }, result.presented_host_key), '. ',
      canManageTargets() ? h('button', { class: 'btn btn-sm btn-outline-primary ms-1', type: 'button', id: 'pin-key',
        onclick: async (event) => {
          try {
            await put(`/api/targets/${encodeURIComponent(t.id)}`, { options: { ...t.options, host_key: result.presented_host_key }, version: t.version });
            toast('Host key pinned.');
            await reload();
          } catch (err) {
            event.target.after(problemAlert(err));
          }
        } }, 'Pin this key') : 'Check it with the machine\u2019s owner before an administrator pins it.');
  }
  return [summary, h('ul', { class: 'list-group', id: 'test-steps' }, items), pin];
}

export async function targetDetail(ctx) {
  const { main, params } = ctx;
  const id = encodeURIComponent(params.id);
  replace(main, spinner());
  const reload = async () => {
    let t;
    let creds;
    try {
      [t, creds] = await Promise.all([get(`/api/targets/${id}`), credentials().catch(() => [])]);
    } catch (err) {
      if (ctx.alive()) replace(main, breadcrumb('Targets', '#/targets', 'Target'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const cred = creds.find((c) => c.id === t.credential_id);
    const o = t.options || {};
    const summary = card('Summary', facts([
      ['Kind', label(t.kind)],
      ['Address', h('span', { class: 'text-break' }, `${t.host}:${t.port}`)],
      ['Tags', tagList(t.tags)],
      o.user ? ['User', o.user] : null,
      t.kind === 'ssh' ? ['Host key', o.host_key ? h('code', { class: 'text-break' }, o.host_key) : h('span', { class: 'text-danger' }, 'Not pinned (connections are refused)')] : null,
      o.transport ? ['Transport', o.transport.toUpperCase()] : null,
      o.scheme ? ['Scheme', o.scheme] : null,
      ['Credential', t.credential_id ? (cred ? cred.name : 'Stored (metadata for managers)') : 'None'],
      ['Internal', t.internal ? 'Yes' : 'No'],
      ['Updated', fmtDateTime(t.updated_at)],
      ['Version', String(t.version)],
    ].filter(Boolean)));
    let edit = null;
    if (canManageTargets()) {
      const { form, slot } = targetForm({
        id: 'target-edit', t, creds, submitText: 'Save changes',
        onSubmit: async (payload) => {
          await put(`/api/targets/${id}`, { ...payload, version: t.version });
          forget('targets');
          toast('Saved.');
          await reload();
        },
      });
      const delSlot = h('div', {});
      const remove = h('button', { class: 'btn btn-outline-danger', type: 'button', id: 'delete-target' }, 'Delete target');
      remove.addEventListener('click', () => confirmInline(remove, 'Delete this target?', async () => {
        try {
          await del(`/api/targets/${id}`);
          forget('targets');
          toast('Target deleted.');
          navigate('/targets');
        } catch (err) {
          replace(delSlot, problemAlert(err));
        }
      }));
      edit = [card('Edit', slot, form), card('Danger zone', delSlot, remove)];
    }
    replace(main, breadcrumb('Targets', '#/targets', t.name),
      pageHeader(t.name, h('span', { class: 'badge text-bg-light border fs-6' }, label(t.kind))),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-5' }, summary, testCard(t, reload)),
        h('div', { class: 'col-lg-7' }, edit || card('Edit', h('p', { class: 'text-secondary mb-0' }, 'Administrators change targets.')))));
  };
  await reload();
}

/** Replace `button` by "question  [Yes] [No]" until one is chosen (no browser dialogs). */
export function confirmInline(button, question, action, yes = 'Yes') {
  const box = h('span', { class: 'd-inline-flex flex-wrap align-items-center gap-2 confirm-inline' },
    h('span', {}, question));
  const ok = h('button', { class: 'btn btn-danger btn-sm', type: 'button', dataset: { confirm: 'yes' } }, yes);
  const no = h('button', { class: 'btn btn-outline-secondary btn-sm', type: 'button' }, 'No');
  box.append(ok, no);
  button.replaceWith(box);
  ok.focus();
  no.addEventListener('click', () => box.replaceWith(button));
  ok.addEventListener('click', async () => {
    ok.disabled = true;
    no.disabled = true;
    await action();
    if (box.isConnected) box.replaceWith(button);
  });
}
