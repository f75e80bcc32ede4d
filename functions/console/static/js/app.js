// The console: sign-in, then the layout (navbar + pages by hash route).

import { get } from './api.js';
import { h, replace } from './dom.js';
import * as router from './router.js';
import * as session from './session.js';
import { problemAlert } from './ui.js';
import { loginPage } from './pages/login.js';
import { dashboard } from './pages/dashboard.js';
import { profile } from './pages/users.js';

const root = document.getElementById('app');

// One module per system under js/sections/ (the shell lists them in a meta tag): { title, order, menu:
// [[path, text, roles that may open it (null: everyone signed in)]], routes: [[pattern, view]] }.
// Menus only hide what the API would refuse: the API decides, and a page opened anyway says
// who may use it.
const sections = (await Promise.all(
  JSON.parse(document.querySelector('meta[name=console-sections]').content).map((url) => import(url)),
)).map((module) => module.default).sort((a, b) => a.order - b.order);

router.route('/', dashboard);
router.route('/profile', profile);
for (const section of sections) {
  for (const [pattern, view] of section.routes) router.route(pattern, view);
}

function notFound(ctx) {
  replace(ctx.main, h('div', { class: 'py-5 text-center' },
    h('h1', { class: 'h4' }, 'Page not found'),
    h('p', { class: 'text-secondary' }, `Nothing lives at ${ctx.path}.`),
    h('a', { class: 'btn btn-primary', href: '#/' }, 'Back to the dashboard')));
}

function menuLink(path, text, cls) {
  return h('a', { class: cls, href: `#${path}`, dataset: { path } }, text);
}

// Dashboard, then a menu per system (only the pages this user's roles may open; a system
// with none is left out).
function navItems() {
  const items = [h('li', { class: 'nav-item' }, menuLink('/', 'Dashboard', 'nav-link'))];
  for (const section of sections) {
    const pages = section.menu.filter(([, , roles]) => !roles || session.hasRole(...roles));
    if (!pages.length) continue;
    const id = `menu-${section.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
    items.push(h('li', { class: 'nav-item dropdown' },
      h('a', { class: 'nav-link dropdown-toggle', href: '#', role: 'button', id,
        'data-bs-toggle': 'dropdown', 'aria-expanded': 'false',
        dataset: { section: pages.map(([path]) => path).join(' ') } }, section.title),
      h('ul', { class: 'dropdown-menu', 'aria-labelledby': id },
        pages.map(([path, text]) => h('li', {}, menuLink(path, text, 'dropdown-item'))))));
  }
  return items;
}

function navbar() {
  const links = navItems();
  links.push(h('li', { class: 'nav-item' }, h('a', { class: 'nav-link', href: '/api/docs' }, 'API docs')));
  const who = h('a', { class: 'navbar-text me-3 small link-light', id: 'whoami', href: '#/profile',
    dataset: { path: '/profile' }, title: 'My profile' });
  const signOut = h('button', { class: 'btn btn-outline-light btn-sm', type: 'button',
    id: 'sign-out', onclick: onSignOut }, 'Sign out');
  return h('nav', { class: 'navbar navbar-expand-lg navbar-dark bg-dark mb-4', 'aria-label': 'Main' },
    h('div', { class: 'container-fluid' },
      h('a', { class: 'navbar-brand fw-semibold', href: '#/' },
        h('img', { src: document.querySelector('link[rel=icon]').href, alt: '', width: 24,
          height: 24, class: 'me-2 align-text-top' }), 'Switchyard'),
      h('button', { class: 'navbar-toggler', type: 'button', 'data-bs-toggle': 'collapse',
        'data-bs-target': '#nav', 'aria-controls': 'nav', 'aria-expanded': 'false',
        'aria-label': 'Toggle navigation' }, h('span', { class: 'navbar-toggler-icon' })),
      h('div', { class: 'collapse navbar-collapse', id: 'nav' },
        h('ul', { class: 'navbar-nav me-auto' }, links),
        h('div', { class: 'd-flex align-items-center' }, who, signOut))));
}

// The menu entry of the page shown is marked current, and so is its system's menu; the
// longest matching entry wins ('/batches/metrics' over '/batches').
function highlight(path) {
  const links = [...document.querySelectorAll('#nav [data-path], #whoami')];
  const matches = (p) => p === '/' ? path === '/' : path === p || path.startsWith(`${p}/`);
  const best = links.map((a) => a.dataset.path).filter(matches)
    .sort((a, b) => b.length - a.length)[0];
  for (const a of links) {
    const active = a.dataset.path === best;
    a.classList.toggle('active', active);
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  for (const toggle of document.querySelectorAll('#nav .dropdown-toggle')) {
    toggle.classList.toggle('active', toggle.dataset.section.split(' ').includes(best));
  }
}
router.onRender(highlight);

async function showWho() {
  const el = document.getElementById('whoami');
  const claims = session.claims() || {};
  if (!el) return;
  el.textContent = (claims.roles || []).join(', ');
  try {
    const me = await get('/api/users/me');
    el.textContent = `${me.name} (${(me.roles || []).join(', ')})`;
  } catch {
    // The name is a nicety; the roles from the token stay.
  }
}

async function onSignOut() {
  try {
    await session.logout();
  } catch (err) {
    // Signed out here either way; say that the server side may have failed.
    showLogin({ error: err });
  }
}

function showConsole() {
  const main = h('main', { class: 'container-fluid pb-5', id: 'main', tabindex: -1 });
  const skip = h('a', { class: 'visually-hidden-focusable skip-link', href: '#main',
    onclick: (event) => { event.preventDefault(); main.focus(); } }, 'Skip to content');
  replace(root, skip, navbar(), main);
  showWho();
  return router.start(main, notFound);
}

function showLogin({ message = null, error = null } = {}) {
  router.stop();
  replace(root, loginPage({ message, error, onSignedIn: showConsole }));
}

session.subscribe((event) => {
  if (event === 'ended') showLogin({ message: 'Your session has ended; sign in again.' });
  else if (event === 'signed-out') showLogin({ message: 'You are signed out.' });
  else if (event === 'signed-in-elsewhere') {
    session.restore().then((ok) => ok && showConsole()).catch(() => {});
  }
});

async function boot() {
  try {
    if (await session.restore()) showConsole();
    else showLogin();
  } catch (err) {
    replace(root, h('div', { class: 'container py-5' }, problemAlert(err),
      h('button', { class: 'btn btn-primary', type: 'button', onclick: boot }, 'Try again')));
  }
}

boot();
