// Hash routing: '#/work-orders/42?status=open' -> the view registered for '/work-orders/:id'.
// A view renders into the outlet; if the route changes while it awaits the API, its late
// result is discarded (ctx.alive() turns false).

const routes = [];
let outlet = null;
let fallback = null;
let generation = 0;
const afterRender = new Set();

export function route(pattern, view) {
  const keys = [];
  const source = pattern.replace(/:([a-z_]+)/g, (_, key) => {
    keys.push(key);
    return '([^/]+)';
  });
  routes.push({ regex: new RegExp(`^${source}/?$`), keys, view });
}

export function current() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const at = raw.indexOf('?');
  const path = at === -1 ? raw : raw.slice(0, at);
  const query = new URLSearchParams(at === -1 ? '' : raw.slice(at + 1));
  return { path: path.startsWith('/') ? path : `/${path}`, query };
}

export function href(path, query) {
  const qs = query ? new URLSearchParams(
    Object.entries(query).filter(([, v]) => v !== '' && v !== null && v !== undefined && v !== false),
  ).toString() : '';
  return `#${path}${qs ? `?${qs}` : ''}`;
}

export function navigate(path, query) {
  const target = href(path, query);
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

export function onRender(fn) {
  afterRender.add(fn);
}

export async function render() {
  if (!outlet) return;
  const mine = ++generation;
  const { path, query } = current();
  let found = null;
  let params = {};
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (m) {
      found = r;
      params = Object.fromEntries(r.keys.map((k, i) => [k, decodeURIComponent(m[i + 1])]));
      break;
    }
  }
  for (const fn of afterRender) fn(path);
  const ctx = { path, params, query, main: outlet, alive: () => mine === generation };
  outlet.replaceChildren();
  window.scrollTo(0, 0);
  await (found ? found.view(ctx) : fallback(ctx));
}

export function start(target, notFound) {
  outlet = target;
  fallback = notFound;
  window.addEventListener('hashchange', render);
  return render();
}

export function stop() {
  window.removeEventListener('hashchange', render);
  outlet = null;
}
