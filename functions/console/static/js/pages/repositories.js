// Source: tracked GitHub repositories - the list, registering one (its webhook secret given or
// generated: a generated secret is shown once, in the answer to the request that made it, and
// never again), one repository with its webhook URL, setup steps, settings and latest commits.

import { del, get, post, put } from '../api.js';
import { fmtDateTime, h, replace } from '../dom.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  busy, card, clearErrors, facts, field, filterField, input, pageHeader, pagedTable,
  problemAlert, select, showError, spinner, submit, toast,
} from '../ui.js';
import { commitRows, COMMIT_HEADERS } from './commits.js';

// Managers (and admins) register, change and delete repositories; everyone signed in reads.
export const canManage = () => session.hasRole('manager');

export function repoPath(full) {
  const [owner, name] = String(full).split('/');
  return `${encodeURIComponent(owner)}/${encodeURIComponent(name)}`;
}

export function webhookUrl() {
  return `${window.location.origin}/api/webhook/github`;
}

function yesNo(value, yes = 'On', no = 'Off') {
  return h('span', { class: `badge ${value ? 'text-bg-success' : 'text-bg-light border'}` },
    value ? yes : no);
}

function repoRow(r) {
  return h('tr', { dataset: { repo: r.full_name } },
    h('td', {}, h('a', { href: `#/repositories/${repoPath(r.full_name)}` }, r.full_name)),
    h('td', {}, r.default_branch),
    h('td', {}, yesNo(r.has_webhook_secret, 'Set', 'None')),
    h('td', {}, yesNo(r.polling)),
    h('td', {}, r.last_seen_sha ? h('code', {}, r.last_seen_sha.slice(0, 10)) : '—'),
    h('td', {}, fmtDateTime(r.last_seen_at)));
}

export async function repositoryList(ctx) {
  const { main, query } = ctx;
  const polling = query.get('polling') || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'repo-filters' },
    filterField('rf-polling', 'Polling', select('polling', [['true', 'On'], ['false', 'Off']],
      { value: polling, empty: 'Any' })),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/repositories' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate('/repositories', { polling: new FormData(form).get('polling') || '' });
  });
  replace(main,
    pageHeader('Repositories',
      canManage() ? h('a', { class: 'btn btn-primary', href: '#/repositories/new', id: 'new-repo' },
        'Register repository') : null),
    form,
    pagedTable({
      id: 'repo-table',
      headers: ['Repository', 'Default branch', 'Webhook secret', 'Polling', 'Last seen commit',
        'Last seen'],
      row: repoRow,
      empty: polling ? 'No repository matches.' : 'No repository is tracked yet.',
      load: (cursor) => get('/api/repositories', { polling, limit: 25, cursor }),
    }));
}

/** The one-time view of a generated secret: shown in the page, never stored by the console. */
function secretOnce(secret) {
  const code = h('code', { id: 'webhook-secret', class: 'd-block text-break user-select-all p-2 bg-body-tertiary border rounded' }, secret);
  const copy = h('button', { class: 'btn btn-sm btn-outline-secondary mt-2', type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(secret);
      toast('Secret copied.');
    } catch {
      toast('Select the secret and copy it by hand.', 'warning');
    }
  });
  return h('div', { class: 'alert alert-warning', role: 'alert', id: 'secret-once' },
    h('strong', {}, 'The webhook secret - shown this once. '),
    'Paste it into GitHub now; the console cannot show it again (rotate it to get a new one).',
    h('div', { class: 'mt-2' }, code, copy));
}

function setupSteps(r) {
  const url = webhookUrl();
  return h('ol', { class: 'mb-0 setup-steps', id: 'webhook-setup' },
    h('li', {}, 'On GitHub, open ', h('strong', {}, `${r.full_name} → Settings → Webhooks → Add webhook`), '.'),
    h('li', {}, 'Payload URL: ', h('code', { class: 'text-break', id: 'webhook-url' }, url)),
    h('li', {}, 'Content type: ', h('code', {}, 'application/json'), '.'),
    h('li', {}, 'Secret: ', r.has_webhook_secret
      ? 'the secret given (or generated) when the repository was registered or last rotated.'
      : h('span', { class: 'text-danger' }, 'none is set - rotate one below, or deliveries are refused (401).')),
    h('li', {}, 'Events: ', h('em', {}, 'Let me select individual events'), ' → ',
      h('strong', {}, 'Pushes'), ' and ', h('strong', {}, 'Pull requests'), '; keep ',
      h('em', {}, 'Active'), ' ticked and add the webhook.'),
    h('li', {}, 'GitHub sends a ', h('code', {}, 'ping'), ' at once: it appears under ',
      h('a', { href: `#/deliveries?repository=${encodeURIComponent(r.full_name)}` }, 'Webhook deliveries'), '.'));
}

export async function repositoryNew(ctx) {
  const { main } = ctx;
  if (!canManage()) {
    replace(main, pageHeader('Register repository'), h('div', { class: 'alert alert-warning', role: 'alert', id: 'forbidden' },
      'Managers and administrators register repositories.'));
    return;
  }
  const slot = h('div', {});
  const secretMode = select('secret_mode', [['generate', 'Generate one (shown once)'],
    ['given', 'I have one'], ['none', 'None yet (no webhook)']], { value: 'generate', id: 'f-secret_mode' });
  const secret = input('webhook_secret', { type: 'password', autocomplete: 'new-password', minlength: 16, maxlength: 256 });
  const secretField = field('webhook_secret', 'Webhook secret', secret, '16 to 256 characters; the same one goes into GitHub.');
  secretField.classList.add('d-none');
  secretMode.addEventListener('change', () => secretField.classList.toggle('d-none', secretMode.value !== 'given'));
  const form = h('form', { id: 'repo-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', { class: 'col-md-6' }, field('owner', 'Owner', input('owner', { required: true, maxlength: 39, placeholder: 'octo-org', autocomplete: 'off' }),
        'The GitHub user or organisation.')),
      h('div', { class: 'col-md-6' }, field('name', 'Name', input('name', { required: true, maxlength: 100, placeholder: 'hello-world', autocomplete: 'off' })))),
    field('default_branch', 'Default branch', input('default_branch', { value: 'main', maxlength: 255 })),
    h('div', { class: 'form-check mb-3' },
      h('input', { class: 'form-check-input', type: 'checkbox', name: 'polling', id: 'f-polling' }),
      h('label', { class: 'form-check-label', for: 'f-polling' }, 'Poll GitHub for commits the webhook missed (default branch)')),
    field('secret_mode', 'Webhook secret', secretMode),
    secretField,
    submit('Register'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = {
      owner: String(d.get('owner') || '').trim(), name: String(d.get('name') || '').trim(),
      default_branch: String(d.get('default_branch') || '').trim() || 'main',
      polling: d.get('polling') === 'on',
    };
    if (secretMode.value === 'generate') payload.generate_webhook_secret = true;
    if (secretMode.value === 'given') payload.webhook_secret = String(d.get('webhook_secret') || '');
    try {
      const r = await busy(form, () => post('/api/repositories', payload));
      toast('Repository registered.');
      secret.value = '';
      // The secret, if generated, goes to the detail view in memory only (not in the URL).
      await repositoryDetail({ ...ctx, params: { owner: r.owner, name: r.name } }, r.webhook_secret || null);
      window.history.replaceState(null, '', `#/repositories/${repoPath(r.full_name)}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  replace(main,
    h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
      h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/repositories' }, 'Repositories')),
      h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, 'Register'))),
    pageHeader('Register repository'), card(null, slot, form));
}

function settingsCard(r, reload) {
  if (!canManage()) return null;
  const slot = h('div', {});
  const form = h('form', { id: 'repo-settings', novalidate: true },
    field('default_branch', 'Default branch', input('default_branch', { value: r.default_branch, maxlength: 255, id: 'rs-branch' })),
    h('div', { class: 'form-check mb-3' },
      h('input', { class: 'form-check-input', type: 'checkbox', name: 'polling', id: 'rs-polling', checked: r.polling }),
      h('label', { class: 'form-check-label', for: 'rs-polling' }, 'Polling on')),
    h('div', { class: 'd-flex flex-wrap gap-2' },
      h('button', { class: 'btn btn-primary', type: 'submit', dataset: { act: 'save' } }, 'Save'),
      h('button', { class: 'btn btn-outline-secondary', type: 'submit', dataset: { act: 'rotate' }, id: 'rotate-secret' }, 'Rotate webhook secret'),
      r.has_webhook_secret ? h('button', { class: 'btn btn-outline-secondary', type: 'submit', dataset: { act: 'remove' } }, 'Remove secret') : null,
      h('button', { class: 'btn btn-outline-danger ms-auto', type: 'submit', dataset: { act: 'delete' }, id: 'delete-repo' }, 'Stop tracking')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const act = event.submitter.dataset.act;
    const path = `/api/repositories/${repoPath(r.full_name)}`;
    try {
      if (act === 'delete') {
        // eslint-disable-next-line no-alert
        if (!window.confirm(`Stop tracking ${r.full_name}? Its commits are deleted; deliveries are kept.`)) return;
        await busy(form, () => del(path));
        toast('Repository no longer tracked.');
        navigate('/repositories');
        return;
      }
      const d = new FormData(form);
      const body = { version: r.version };
      if (act === 'save') {
        body.default_branch = String(d.get('default_branch') || '').trim();
        body.polling = d.get('polling') === 'on';
      } else if (act === 'rotate') body.generate_webhook_secret = true;
      else if (act === 'remove') body.remove_webhook_secret = true;
      const out = await busy(form, () => put(path, body));
      toast(act === 'save' ? 'Saved.' : act === 'rotate' ? 'Secret rotated.' : 'Secret removed.');
      await reload(out.webhook_secret || null);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  return card('Settings', slot, form);
}

export async function repositoryDetail(ctx, secretShownOnce = null) {
  const { main, params } = ctx;
  const full = `${params.owner}/${params.name}`;
  const path = `/api/repositories/${repoPath(full)}`;
  replace(main, spinner());
  const reload = async (secret = null) => {
    let r;
    try {
      r = await get(path);
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader(full), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const commits = pagedTable({
      id: 'repo-commits', headers: COMMIT_HEADERS.filter((x) => x !== 'Repository'),
      row: (c) => commitRows(c, { repository: false }),
      empty: 'No commit recorded yet: push to the repository, or let the monitor poll it.',
      load: (cursor) => get(`${path}/commits`, { limit: 10, cursor }),
    });
    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/repositories' }, 'Repositories')),
        h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, r.full_name))),
      pageHeader(h('span', { id: 'repo-name', class: 'text-break' }, r.full_name),
        h('button', { class: 'btn btn-outline-secondary', type: 'button', id: 'repo-refresh', onclick: () => reload() }, 'Refresh'),
        h('a', { class: 'btn btn-outline-secondary', href: `#/commits?repository=${encodeURIComponent(r.full_name)}` }, 'All commits')),
      secret ? secretOnce(secret) : null,
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-5' }, card('Repository', facts([
          ['Provider', 'GitHub'],
          ['Default branch', r.default_branch],
          ['Webhook secret', r.has_webhook_secret ? h('span', {}, 'Set ', h('code', { class: 'small' }, r.webhook_secret_ref || '')) : 'None'],
          ['Polling', yesNo(r.polling)],
          ['Last seen commit', r.last_seen_sha ? h('a', { href: `#/commits/${r.last_seen_sha}?repository=${encodeURIComponent(r.full_name)}` }, h('code', {}, r.last_seen_sha.slice(0, 12))) : null],
          ['Last seen', fmtDateTime(r.last_seen_at)],
          ['Last polled', fmtDateTime(r.last_polled_at)],
          ['Registered', fmtDateTime(r.created_at)],
        ])), settingsCard(r, reload)),
        h('div', { class: 'col-lg-7' }, card('Webhook setup', setupSteps(r)),
          h('h2', { class: 'h5 mt-3' }, 'Latest commits'), commits)));
  };
  await reload(secretShownOnce);
}
