// The sign-in page: email and password to POST /session/login.

import { h } from '../dom.js';
import * as session from '../session.js';
import { busy, clearErrors, showError, submit } from '../ui.js';

export function loginPage({ message, error, onSignedIn }) {
  const slot = h('div', { id: 'login-problem' });
  const email = h('input', { class: 'form-control', type: 'email', name: 'email', id: 'email',
    autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { class: 'form-control', type: 'password', name: 'password',
    id: 'password', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'card-body', novalidate: false },
    h('h1', { class: 'h4 mb-3' }, 'Sign in'),
    message ? h('div', { class: 'alert alert-info py-2' }, message) : null,
    slot,
    h('div', { class: 'form-floating mb-3' }, email, h('label', { for: 'email' }, 'Email')),
    h('div', { class: 'form-floating mb-3' }, password,
      h('label', { for: 'password' }, 'Password')),
    h('div', { class: 'd-grid' }, submit('Sign in')));
  if (error) showError(slot, error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(slot, form);
    try {
      await busy(form, () => session.login(email.value.trim(), password.value));
    } catch (err) {
      password.value = '';
      showError(slot, err, form);
      return;
    }
    onSignedIn();
  });
  return h('div', { class: 'login-page d-flex align-items-center justify-content-center' },
    h('div', { class: 'login-box' },
      h('div', { class: 'text-center mb-4' },
        h('img', { src: document.querySelector('link[rel=icon]').href, alt: '', width: 48,
          height: 48, class: 'mb-2' }),
        h('div', { class: 'h5 mb-0' }, 'Switchyard console'),
        h('div', { class: 'text-secondary small' }, 'Maintenance, production and operations')),
      h('div', { class: 'card shadow-sm' }, form)));
}
