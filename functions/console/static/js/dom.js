// Building DOM without innerHTML: text is always text (API data never becomes markup), and
// nothing here sets inline styles (the Content-Security-Policy forbids them).

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, ...children);
  return el;
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, ...children);
}

export function fmtDateTime(value) {
  if (!value) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

export function fmtDate(value) {
  if (!value) return '—';
  const d = new Date(value.length === 10 ? `${value}T00:00:00` : value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleDateString();
}

export function fmtDay(value) {
  const d = new Date(`${value}T00:00:00`);
  return Number.isNaN(d.getTime()) ? String(value)
    : d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
}

// Words an API value spells in lower case that people write otherwise ('qa_hold' -> 'QA hold').
const WORDS = {
  qa: 'QA', eta: 'ETA', sla: 'SLA', ssh: 'SSH', http: 'HTTP', https: 'HTTPS', winrm: 'WinRM',
  url: 'URL', id: 'ID', api: 'API', sql: 'SQL', pm: 'PM',
};

// A unit an API name ends with ('speed_kmh'), shown as people write it: 'Speed (km/h)'.
const UNITS = { kmh: 'km/h', km: 'km', kg: 'kg', ms: 'ms', pct: '%' };

// An API value shown to people: underscores to spaces, the first letter upper-case, the
// WORDS above as they are written, and a trailing unit in parentheses.
export function label(value) {
  if (value === null || value === undefined || value === '') return '—';
  const words = String(value).split('_');
  const unit = words.length > 1 ? UNITS[words[words.length - 1]] : undefined;
  if (unit) words.pop();
  const s = words.map((w) => WORDS[w] || w).join(' ') + (unit ? ` (${unit})` : '');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function fmtHours(hours) {
  if (hours === null || hours === undefined) return '—';
  if (hours < 1) return `${Math.round(hours * 60)} min`;
  if (hours < 48) return `${hours.toFixed(1)} h`;
  return `${(hours / 24).toFixed(1)} d`;
}
