// Users: the admin's list (search, role, active), a new user, one user (roles, deactivate);
// everyone's own profile and password change.

import { get, post, put } from '../api.js';
import { fmtDateTime, h, label, replace } from '../dom.js';
import * as lookups from '../lookups.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  busy, card, clearErrors, facts, field, filterField, forbidden, input, pageHeader, pagedTable,
  problemAlert, select, showError, spinner, submit, toast,
} from '../ui.js';

export const ROLES = ['admin', 'manager', 'operator', 'viewer'];

function roleBadges(roles) {
  return (roles || []).map((r) => h('span', { class: 'badge text-bg-light border me-1' }, label(r)));
}

function activeBadge(active) {
  return active ? h('span', { class: 'badge text-bg-success' }, 'Active')
    : h('span', { class: 'badge text-bg-secondary' }, 'Inactive');
}

function roleChecks(chosen, prefix) {
  return h('fieldset', { class: 'mb-3', id: `${prefix}-roles` },
    h('legend', { class: 'form-label fs-6' }, 'Roles'),
    ROLES.map((r) => h('div', { class: 'form-check form-check-inline' },
      h('input', { class: 'form-check-input', type: 'checkbox', name: 'roles', value: r,
        id: `${prefix}-role-${r}`, checked: chosen.includes(r) }),
      h('label', { class: 'form-check-label', for: `${prefix}-role-${r}` }, label(r)))));
}

export async function userList(ctx) {
  const { main, query } = ctx;
  if (!session.hasRole('admin')) return forbidden(main, 'Users', ['admin']);
  const v = (k) => query.get(k) || '';
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'user-filters' },
    filterField('uf-q', 'Search', input('q', { type: 'search', value: v('q'), placeholder: 'Name or email' }), 'col-12 col-md-4'),
    filterField('uf-role', 'Role', select('role', ROLES, { value: v('role'), empty: 'Any' })),
    filterField('uf-active', 'State', select('active', [['true', 'Active'], ['false', 'Inactive']], { value: v('active'), empty: 'Any' })),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Search', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/users' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/users', { q: d.get('q'), role: d.get('role'), active: d.get('active') });
  });
  const params = Object.fromEntries(['q', 'role', 'active'].filter((k) => v(k)).map((k) => [k, v(k)]));
  replace(main,
    pageHeader('Users', h('a', { class: 'btn btn-primary', href: '#/users/new', id: 'new-user' }, 'New user')),
    form,
    pagedTable({ id: 'user-table', headers: ['Name', 'Email', 'Roles', 'State', 'Created'],
      empty: 'No users match.',
      load: (cursor) => get('/api/users', { ...params, limit: 25, cursor }),
      row: (u) => h('tr', { dataset: { id: u.id } },
        h('td', {}, h('a', { href: `#/users/${encodeURIComponent(u.id)}` }, u.name)),
        h('td', {}, u.email), h('td', {}, roleBadges(u.roles)), h('td', {}, activeBadge(u.active)),
        h('td', {}, fmtDateTime(u.created_at))) }));
}

export async function userNew(ctx) {
  const { main } = ctx;
  if (!session.hasRole('admin')) return forbidden(main, 'New user', ['admin']);
  const slot = h('div', {});
  const form = h('form', { id: 'user-form', novalidate: true },
    field('name', 'Name', input('name', { required: true, maxlength: 200 })),
    field('email', 'Email', input('email', { type: 'email', required: true, maxlength: 320, autocomplete: 'off' })),
    roleChecks(['viewer'], 'nu'),
    field('password', 'Initial password', input('password', { type: 'password', autocomplete: 'new-password' }),
      'Optional: without one the user cannot sign in until an admin sets it.'),
    submit('Create user'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    const payload = { name: d.get('name'), email: d.get('email'), roles: d.getAll('roles') };
    if (d.get('password')) payload.password = d.get('password');
    try {
      const u = await busy(form, () => post('/api/users', payload));
      lookups.forget('users');
      toast('User created.');
      navigate(`/users/${u.id}`);
    } catch (err) {
      showError(slot, err, form);
    }
  });
  replace(main, pageHeader('New user'), card(null, slot, form));
}

export async function userDetail(ctx) {
  const { main, params } = ctx;
  if (!session.hasRole('admin')) return forbidden(main, 'User', ['admin']);
  replace(main, spinner());
  const reload = async () => {
    let u;
    try {
      u = await get(`/api/users/${encodeURIComponent(params.id)}`);
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader('User'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    const slot = h('div', {});
    const form = h('form', { id: 'user-edit', novalidate: true },
      field('name', 'Name', input('name', { value: u.name, required: true, maxlength: 200 })),
      field('email', 'Email', input('email', { type: 'email', value: u.email, required: true })),
      roleChecks(u.roles, 'eu'),
      h('div', { class: 'd-flex flex-wrap gap-2' }, submit('Save changes'),
        h('button', { class: `btn ${u.active ? 'btn-outline-danger' : 'btn-outline-success'}`, type: 'button',
          id: 'user-toggle-active', onclick: () => save({ active: !u.active }, u.active ? 'User deactivated.' : 'User reactivated.') },
        u.active ? 'Deactivate' : 'Reactivate')));
    async function save(payload, done) {
      clearErrors(slot, form);
      try {
        await busy(form, () => put(`/api/users/${encodeURIComponent(u.id)}`, payload));
        lookups.forget('users');
        toast(done);
        await reload();
      } catch (err) {
        showError(slot, err, form);
      }
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const d = new FormData(form);
      const payload = {};
      if (d.get('name') !== u.name) payload.name = d.get('name');
      if (d.get('email') !== u.email) payload.email = d.get('email');
      const roles = d.getAll('roles');
      if (roles.join() !== [...u.roles].sort((a, b) => ROLES.indexOf(a) - ROLES.indexOf(b)).join()) payload.roles = roles;
      if (!Object.keys(payload).length) {
        toast('Nothing to save.', 'secondary');
        return;
      }
      save(payload, 'Saved.');
    });
    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/users' }, 'Users')),
        h('li', { class: 'breadcrumb-item active', 'aria-current': 'page' }, u.name))),
      pageHeader(u.name, h('span', { id: 'user-active' }, activeBadge(u.active))),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-5' }, card('Summary', facts([
          ['Email', u.email], ['Roles', roleBadges(u.roles)], ['Created', fmtDateTime(u.created_at)],
          ['Updated', fmtDateTime(u.updated_at)], ['Version', String(u.version)]]))),
        h('div', { class: 'col-lg-7' }, card('Edit', slot, form))));
  };
  await reload();
}

export async function profile(ctx) {
  const { main } = ctx;
  replace(main, pageHeader('My profile'), spinner());
  let me;
  try {
    me = await get('/api/users/me');
  } catch (err) {
    if (ctx.alive()) replace(main, pageHeader('My profile'), problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const slot = h('div', { id: 'password-problem' });
  const form = h('form', { id: 'password-form', novalidate: true },
    field('old_password', 'Current password', input('old_password', { type: 'password', autocomplete: 'current-password', required: true })),
    field('new_password', 'New password', input('new_password', { type: 'password', autocomplete: 'new-password', required: true })),
    submit('Change password'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    const d = new FormData(form);
    try {
      await busy(form, () => post('/api/auth/password', { old_password: d.get('old_password'), new_password: d.get('new_password') }));
    } catch (err) {
      showError(slot, err, form);
      return;
    }
    // Every session of the user ends with a password change: sign in again with the new one.
    await session.logout().catch(() => {});
  });
  replace(main, pageHeader('My profile'),
    h('div', { class: 'row' },
      h('div', { class: 'col-lg-6' }, card('You', facts([
        ['Name', h('span', { id: 'me-name' }, me.name)], ['Email', me.email], ['Roles', roleBadges(me.roles)],
        ['Member since', fmtDateTime(me.created_at)]]))),
      h('div', { class: 'col-lg-6' }, card('Change password', slot, form,
        h('p', { class: 'form-text mb-0 mt-2' }, 'Changing it signs you out everywhere.')))));
}
