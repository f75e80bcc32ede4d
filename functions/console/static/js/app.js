// The console: sign-in, then the layout (navbar + pages by hash route).

import { get } from './api.js';
import { h, replace } from './dom.js';
import * as router from './router.js';
import * as session from './session.js';
import { problemAlert } from './ui.js';
import { loginPage } from './pages/login.js';
import { dashboard } from './pages/dashboard.js';
import { workOrderList, workOrderNew, workOrderDetail } from './pages/work-orders.js';
import { assetList, assetNew, assetDetail } from './pages/assets.js';
import { partList, partNew, partDetail } from './pages/parts.js';
import { batchDetail, batchList, batchMetrics, batchNew } from './pages/batches.js';
import { profile, userDetail, userList, userNew } from './pages/users.js';
import { auditDetail, auditList } from './pages/audit.js';
import { operations } from './pages/ops.js';

const root = document.getElementById('app');

router.route('/', dashboard);
router.route('/work-orders', workOrderList);
router.route('/work-orders/new', workOrderNew);
router.route('/work-orders/:id', workOrderDetail);
router.route('/assets', assetList);
router.route('/assets/new', assetNew);
router.route('/assets/:id', assetDetail);
router.route('/parts', partList);
router.route('/parts/new', partNew);
router.route('/parts/:id', partDetail);
router.route('/batches', batchList);
router.route('/batches/new', batchNew);
router.route('/batches/metrics', batchMetrics);
router.route('/batches/:id', batchDetail);
router.route('/users', userList);
router.route('/users/new', userNew);
router.route('/users/:id', userDetail);
router.route('/profile', profile);
router.route('/audit', auditList);
router.route('/audit/:id', auditDetail);
router.route('/ops', operations);

// [path, text, roles that may open it (null: everyone signed in)]. Only to hide what the API
// would refuse: the API decides, and a page opened anyway says who may use it.
const NAV = [
  ['/', 'Dashboard', null],
  ['/work-orders', 'Work orders', null],
  ['/assets', 'Assets', null],
  ['/parts', 'Parts', null],
  ['/batches', 'Batches', null],
  ['/audit', 'Audit', ['manager']],
  ['/users', 'Users', ['admin']],
  ['/ops', 'Operations', ['admin']],
];

function notFound(ctx) {
  replace(ctx.main, h('div', { class: 'py-5 text-center' },
    h('h1', { class: 'h4' }, 'Page not found'),
    h('p', { class: 'text-secondary' }, `Nothing lives at ${ctx.path}.`),
    h('a', { class: 'btn btn-primary', href: '#/' }, 'Back to the dashboard')));
}

function navbar() {
  const links = NAV.filter(([, , roles]) => !roles || session.hasRole(...roles))
    .map(([path, text]) => h('li', { class: 'nav-item' },
      h('a', { class: 'nav-link', href: `#${path}`, dataset: { path } }, text)));
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

function highlight(path) {
  const section = `/${path.split('/')[1] || ''}`;
  for (const a of document.querySelectorAll('#nav .nav-link, #whoami')) {
    const active = a.dataset.path === section;
    a.classList.toggle('active', active);
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
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
