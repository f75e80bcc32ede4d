// Source: recorded commits - the filtered list (repository, author, branch, dates, message
// words, Conventional Commits type, the analysis' risk and secrets) with the agents' analysis
// inline, one commit with its findings, and the statistics as charts. A secret is only ever
// named by its detector type, file and line: the API never has its value to show.

import { all, get, post } from '../api.js';
import { fmtDateTime, fmtDay, h, label, replace } from '../dom.js';
import { chartCard, countAxis, draw } from '../charts.js';
import { navigate } from '../router.js';
import * as session from '../session.js';
import {
  badge, card, facts, filterField, input, pageHeader, pagedTable, problemAlert, select, spinner,
  submit, table, toast,
} from '../ui.js';

export const TYPES = ['feat', 'fix', 'docs', 'style', 'refactor', 'perf', 'test', 'build', 'ci',
  'chore', 'revert', 'none'];
export const RISKS = [['high', 'High'], ['medium', 'Medium'], ['low', 'Low'], ['none', 'Not analysed']];
const FILTERS = ['repository', 'author', 'branch', 'since', 'until', 'q', 'type', 'risk', 'secrets'];
const ANALYSIS_WAIT_MS = 60000;

export const COMMIT_HEADERS = ['Commit', 'Message', 'Repository', 'Author', 'Committed', 'Type',
  'Risk', 'Secrets'];

export function commitHref(c) {
  return `#/commits/${encodeURIComponent(c.sha)}?repository=${encodeURIComponent(c.repository)}`;
}

function headline(message) {
  const first = String(message || '').split('\n', 1)[0];
  return first.length > 90 ? `${first.slice(0, 89)}…` : first;
}

function typeCell(c) {
  const t = (c.analysis && c.analysis.type) || c.conventional_type;
  if (!t) return h('span', { class: 'text-secondary' }, 'None');
  return h('span', { class: 'badge text-bg-light border commit-type', dataset: { value: t } },
    t, c.breaking ? h('span', { class: 'text-danger ms-1', title: 'Breaking change' }, '!') : null);
}

/** The analysis headline as a badge: risk level and score, or that it is still to come. */
export function riskCell(c) {
  const a = c.analysis;
  if (!a) return h('span', { class: 'text-secondary small analysis-pending' }, 'Pending');
  if (a.status !== 'completed') return h('span', { class: 'badge text-bg-secondary analysis-failed', title: a.summary || '' }, 'Failed');
  return h('span', { class: 'commit-risk', title: a.summary || '' }, badge(a.risk_level),
    h('span', { class: 'small text-secondary ms-1' }, `${a.risk_score}`));
}

function secretsCell(c) {
  const a = c.analysis;
  if (!a || a.secrets === null || a.secrets === undefined) return h('span', { class: 'text-secondary' }, '—');
  if (!a.secrets) return h('span', { class: 'text-secondary commit-secrets', dataset: { count: '0' } }, 'None');
  return h('span', { class: 'badge text-bg-danger commit-secrets', dataset: { count: String(a.secrets) } },
    `${a.secrets} found`);
}

export function commitRows(c, { repository = true } = {}) {
  return h('tr', { dataset: { sha: c.sha, repo: c.repository } },
    h('td', {}, h('a', { href: commitHref(c), class: 'font-monospace' }, c.sha.slice(0, 8))),
    h('td', { class: 'commit-message text-break' }, headline(c.message)),
    repository ? h('td', { class: 'text-break' }, c.repository) : null,
    h('td', {}, c.author_login || c.author_name),
    h('td', { class: 'text-nowrap' }, fmtDateTime(c.committed_at)),
    h('td', {}, typeCell(c)),
    h('td', { class: 'text-nowrap' }, riskCell(c)),
    h('td', {}, secretsCell(c)));
}

// Dates in the hash are days (YYYY-MM-DD, UTC); the API wants instants: `until` is inclusive
// for the user, so it becomes the start of the next day.
function dayStart(day) {
  return day ? `${day}T00:00:00Z` : '';
}

function dayAfter(day) {
  if (!day) return '';
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().replace('.000Z', 'Z');
}

function apiFilters(v) {
  return {
    repository: v('repository'), author: v('author'), branch: v('branch'), q: v('q'),
    type: v('type'), risk: v('risk'), secrets: v('secrets'),
    since: dayStart(v('since')), until: dayAfter(v('until')),
  };
}

async function repositoryOptions() {
  try {
    return (await all('/api/repositories', {}, 300)).map((r) => r.full_name);
  } catch {
    return [];
  }
}

export async function commitList(ctx) {
  const { main, query } = ctx;
  const v = (k) => query.get(k) || '';
  const repos = await repositoryOptions();
  if (!ctx.alive()) return;
  if (v('repository') && !repos.includes(v('repository'))) repos.push(v('repository'));
  const repoOptions = repos.map((r) => [r, r]);
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'commit-filters' },
    filterField('cf-repository', 'Repository', select('repository', repoOptions, { value: v('repository'), empty: 'Any' }), 'col-12 col-md-4 col-xl-3'),
    filterField('cf-author', 'Author', input('author', { value: v('author'), placeholder: 'E-mail or login' }), 'col-6 col-md-4 col-xl-2'),
    filterField('cf-branch', 'Branch', input('branch', { value: v('branch'), placeholder: 'main' }), 'col-6 col-md-4 col-xl-2'),
    filterField('cf-q', 'Message', input('q', { type: 'search', value: v('q'), placeholder: 'Words in the message' }), 'col-12 col-md-4 col-xl-3'),
    filterField('cf-since', 'From', input('since', { type: 'date', value: v('since') }), 'col-6 col-md-4 col-xl-2'),
    filterField('cf-until', 'To', input('until', { type: 'date', value: v('until') }), 'col-6 col-md-4 col-xl-2'),
    filterField('cf-type', 'Type', select('type', TYPES.map((t) => [t, t === 'none' ? 'No type' : t]), { value: v('type'), empty: 'Any' }), 'col-6 col-md-4 col-xl-2'),
    filterField('cf-risk', 'Risk', select('risk', RISKS, { value: v('risk'), empty: 'Any' }), 'col-6 col-md-4 col-xl-2'),
    filterField('cf-secrets', 'Secrets', select('secrets', [['true', 'Found'], ['false', 'None found']], { value: v('secrets'), empty: 'Any' }), 'col-6 col-md-4 col-xl-2'),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Filter', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/commits' }, 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/commits', Object.fromEntries(FILTERS.map((k) => [k, String(d.get(k) || '').trim()])));
  });
  const params = apiFilters(v);
  const current = Object.fromEntries(FILTERS.filter((k) => v(k)).map((k) => [k, v(k)]));
  replace(main,
    pageHeader('Commits',
      h('button', { class: 'btn btn-outline-secondary', type: 'button', id: 'commits-refresh', onclick: () => navigate('/commits', current) }, 'Refresh'),
      h('a', { class: 'btn btn-outline-secondary', href: `#/commits/statistics${v('repository') ? `?repository=${encodeURIComponent(v('repository'))}` : ''}` }, 'Statistics')),
    form,
    pagedTable({
      id: 'commit-table', headers: COMMIT_HEADERS, row: (c) => commitRows(c),
      empty: Object.keys(current).length ? 'No commit matches.' : 'No commit recorded yet.',
      load: (cursor) => get('/api/commits', { ...params, limit: 25, cursor }),
    }));
}

function fileList(title, paths, cls) {
  if (!paths.length) return null;
  return h('div', { class: 'mb-2' }, h('div', { class: 'small text-secondary' }, `${title} (${paths.length})`),
    h('ul', { class: `list-unstyled mb-0 small font-monospace text-break ${cls}` }, paths.slice(0, 200).map((p) => h('li', {}, p))),
    paths.length > 200 ? h('div', { class: 'small text-secondary' }, `and ${paths.length - 200} more`) : null);
}

const SEVERITY_CLASS = { info: 'text-bg-light border', warning: 'text-bg-warning', critical: 'text-bg-danger' };

function findingItem(f) {
  const e = f.evidence || {};
  // secret_detected: the detector's name, the file and the line - never the value
  const extra = f.code === 'secret_detected'
    ? h('div', { class: 'small secret-name' }, h('strong', {}, e.secret_type || 'Secret'),
      ' in ', h('code', {}, e.file || '?'), e.line ? ` line ${e.line}` : '')
    : null;
  return h('li', { class: 'list-group-item finding', dataset: { code: f.code } },
    h('div', { class: 'd-flex gap-2 align-items-start' },
      h('span', { class: `badge ${SEVERITY_CLASS[f.severity] || 'text-bg-light border'}` }, label(f.severity)),
      h('div', {}, h('div', { class: 'fw-semibold small' }, label(f.code)), h('div', {}, f.message), extra)));
}

async function analysisCard(c, ctx, reload, waiting) {
  const a = c.analysis;
  const canAnalyse = session.hasRole('operator', 'manager');
  const again = canAnalyse ? h('button', { class: 'btn btn-sm btn-outline-primary', type: 'button', id: 'analyse-again' }, 'Analyse again') : null;
  const slot = h('div', {});
  if (again) {
    again.addEventListener('click', async () => {
      again.disabled = true;
      try {
        await post('/api/agents/analyze/commit', { repository: c.repository, sha: c.sha });
        toast('Analysis queued: the findings appear here when it finishes.');
        reload({ replacing: a ? a.analyzed_at : null });
      } catch (err) {
        replace(slot, problemAlert(err));
        again.disabled = false;
      }
    });
  }
  if (!a) {
    return card('Analysis', slot, h('div', { id: 'analysis', class: 'd-flex flex-wrap gap-2 align-items-center' },
      waiting ? h('span', { class: 'spinner-border spinner-border-sm', 'aria-hidden': 'true' }) : null,
      h('span', { role: 'status' }, waiting ? 'Waiting for the agents\u2019 analysis of this commit…'
        : 'No analysis has come back yet; refresh later.'), again));
  }
  let findings = [];
  try {
    const full = await get(`/api/agents/analyses/${encodeURIComponent(a.id)}`);
    findings = full.findings || [];
  } catch (err) {
    replace(slot, problemAlert(err));
  }
  if (!ctx.alive()) return null;
  const secrets = findings.filter((f) => f.code === 'secret_detected');
  return card('Analysis', slot, h('div', { id: 'analysis', dataset: { status: a.status } },
    h('div', { class: 'd-flex flex-wrap gap-2 align-items-center mb-2' },
      a.status === 'completed' ? h('span', { id: 'analysis-risk' }, badge(a.risk_level, 'fs-6')) : badge('failed'),
      a.risk_score !== null ? h('span', {}, `Risk ${a.risk_score}/100`) : null,
      h('span', { class: 'ms-auto' }, again)),
    facts([
      ['Summary', a.summary],
      ['Type', a.type],
      ['Secrets found', h('span', { id: 'analysis-secrets' }, a.secrets ? `${a.secrets}: ${[...new Set(secrets.map((f) => f.evidence && f.evidence.secret_type).filter(Boolean))].join(', ') || 'see findings'}` : 'None')],
      ['Findings', String(a.findings ?? findings.length)],
      ['Analysed', fmtDateTime(a.analyzed_at)],
    ]),
    findings.length ? h('ul', { class: 'list-group list-group-flush mt-2', id: 'findings' }, findings.map(findingItem)) : null));
}

export async function commitDetail(ctx) {
  const { main, params, query } = ctx;
  const repository = query.get('repository') || '';
  replace(main, spinner());
  let deadline = Date.now() + ANALYSIS_WAIT_MS;
  let timer = null;
  let older; // after "Analyse again": the analysis time to see replaced (null: none yet)
  const reload = async (opts = {}) => {
    if (timer) clearTimeout(timer);
    let c;
    try {
      c = await get(`/api/commits/${encodeURIComponent(params.sha)}`, { repository });
    } catch (err) {
      if (ctx.alive()) replace(main, pageHeader('Commit'), problemAlert(err));
      return;
    }
    if (!ctx.alive()) return;
    if ('replacing' in opts) {
      older = opts.replacing;
      deadline = Date.now() + ANALYSIS_WAIT_MS;
    }
    if (older !== undefined && c.analysis && c.analysis.analyzed_at !== older) older = undefined;
    const waiting = (!c.analysis || older !== undefined) && Date.now() < deadline;
    const analysed = await analysisCard(c, ctx, reload, waiting);
    if (!ctx.alive()) return;
    const lines = String(c.message).split('\n');
    replace(main,
      h('nav', { 'aria-label': 'breadcrumb' }, h('ol', { class: 'breadcrumb' },
        h('li', { class: 'breadcrumb-item' }, h('a', { href: '#/commits' }, 'Commits')),
        h('li', { class: 'breadcrumb-item' }, h('a', { href: `#/repositories/${c.repository.split('/').map(encodeURIComponent).join('/')}` }, c.repository)),
        h('li', { class: 'breadcrumb-item active font-monospace', 'aria-current': 'page' }, c.sha.slice(0, 8)))),
      pageHeader(h('span', { class: 'text-break', id: 'commit-title' }, lines[0]),
        h('button', { class: 'btn btn-outline-secondary', type: 'button', id: 'commit-refresh', onclick: () => reload() }, 'Refresh'),
        c.url ? h('a', { class: 'btn btn-outline-secondary', href: c.url, rel: 'noopener noreferrer', target: '_blank' }, 'On GitHub') : null),
      h('div', { class: 'row' },
        h('div', { class: 'col-lg-6' }, card('Commit', facts([
          ['SHA', h('code', { class: 'text-break', id: 'commit-sha' }, c.sha)],
          ['Repository', c.repository],
          ['Author', `${c.author_name}${c.author_email ? ` <${c.author_email}>` : ''}${c.author_login ? ` (@${c.author_login})` : ''}`],
          ['Committed', fmtDateTime(c.committed_at)],
          ['Recorded', `${fmtDateTime(c.recorded_at)} · ${label(c.source)}`],
          ['Branches', c.branches.length ? c.branches.join(', ') : c.branch],
          ['Conventional type', c.conventional_type ? `${c.conventional_type}${c.conventional_scope ? `(${c.conventional_scope})` : ''}${c.breaking ? ' - breaking' : ''}` : 'None'],
          ['Changes', `${c.files_changed ?? '?'} file(s), +${c.additions ?? '?'} −${c.deletions ?? '?'}`],
        ])),
        lines.length > 1 ? card('Message', h('pre', { class: 'commit-body small mb-0', tabindex: 0 }, c.message)) : null,
        card('Files', fileList('Added', c.added, 'files-added'), fileList('Modified', c.modified, 'files-modified'),
          fileList('Removed', c.removed, 'files-removed'),
          !c.added.length && !c.modified.length && !c.removed.length ? h('p', { class: 'text-secondary mb-0' }, 'The source listed no files.') : null)),
        h('div', { class: 'col-lg-6' }, analysed)));
    // The analysis comes back by events a moment after the commit (and after "Analyse
    // again"): look again every 2 s until it is there, for a minute at most.
    if (waiting) timer = setTimeout(() => { if (ctx.alive()) reload(); }, 2000);
  };
  await reload();
}

// --- statistics -------------------------------------------------------------------------

const TYPE_COLORS = { feat: '#0d6efd', fix: '#dc3545', docs: '#20c997', refactor: '#6f42c1',
  perf: '#fd7e14', test: '#198754', chore: '#6c757d', ci: '#0dcaf0', build: '#6610f2',
  style: '#d63384', revert: '#ffc107', none: '#adb5bd' };

export async function commitStatistics(ctx) {
  const { main, query } = ctx;
  const v = (k) => query.get(k) || '';
  const repos = await repositoryOptions();
  if (!ctx.alive()) return;
  const form = h('form', { class: 'row g-2 align-items-end filters mb-3', id: 'stats-filters' },
    filterField('sf-repository', 'Repository', select('repository', repos.map((r) => [r, r]), { value: v('repository'), empty: 'All' }), 'col-12 col-md-4'),
    filterField('sf-since', 'From', input('since', { type: 'date', value: v('since') }), 'col-6 col-md-2'),
    filterField('sf-until', 'To', input('until', { type: 'date', value: v('until') }), 'col-6 col-md-2'),
    h('div', { class: 'col-12 col-md-auto d-flex gap-2' }, submit('Show', 'btn-outline-primary'),
      h('a', { class: 'btn btn-link', href: '#/commits/statistics' }, 'Last 90 days')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const d = new FormData(form);
    navigate('/commits/statistics', Object.fromEntries(['repository', 'since', 'until'].map((k) => [k, String(d.get(k) || '')])));
  });
  const header = pageHeader('Commit statistics', h('a', { class: 'btn btn-outline-secondary', href: '#/commits' }, 'Commits'));
  replace(main, header, form, spinner());
  let s;
  try {
    s = await get('/api/commits/statistics', {
      repository: v('repository'), since: dayStart(v('since')), until: dayAfter(v('until')),
    });
  } catch (err) {
    if (ctx.alive()) replace(main, header, form, problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  const range = `${s.since ? fmtDateTime(s.since) : 'the beginning'} to ${s.until ? fmtDateTime(s.until) : 'now'}`;
  const total = h('p', { class: 'text-secondary', id: 'stats-total' },
    `${s.total.commits.toLocaleString()} commits, +${s.total.additions.toLocaleString()} −${s.total.deletions.toLocaleString()} lines, ${s.total.files_changed.toLocaleString()} files touched, ${range}.`);
  if (!s.total.commits) {
    replace(main, header, form, total, h('p', { class: 'text-secondary', id: 'stats-empty' }, 'No commit in this range.'));
    return;
  }
  const perDay = chartCard('Commits per day (UTC)', 'chart-commits-day', 'col-12');
  const byType = chartCard('By Conventional Commits type', 'chart-commits-type');
  const byAuthor = chartCard('Top authors', 'chart-commits-author');
  replace(main, header, form, total,
    h('div', { class: 'row g-3' }, perDay.el, byType.el, byAuthor.el),
    card('By repository', table(['Repository', 'Commits', 'Additions', 'Deletions', 'Files'],
      s.by_repository.map((r) => h('tr', {}, h('td', { class: 'text-break' }, r.repository || '—'),
        h('td', { class: 'num' }, r.commits.toLocaleString()), h('td', { class: 'num' }, r.additions.toLocaleString()),
        h('td', { class: 'num' }, r.deletions.toLocaleString()), h('td', { class: 'num' }, r.files_changed.toLocaleString()))))));
  draw(perDay.canvas, {
    type: 'bar',
    data: { labels: s.by_day.map((d) => fmtDay(d.day)),
      datasets: [{ label: 'Commits', data: s.by_day.map((d) => d.commits), backgroundColor: '#0d6efd' }] },
    options: { scales: { y: countAxis() } },
  });
  draw(byType.canvas, {
    type: 'bar',
    data: { labels: s.by_type.map((t) => t.type),
      datasets: [{ label: 'Commits', data: s.by_type.map((t) => t.commits),
        backgroundColor: s.by_type.map((t) => TYPE_COLORS[t.type] || '#6c757d') }] },
    options: { scales: { y: countAxis() } },
  });
  draw(byAuthor.canvas, {
    type: 'bar',
    data: { labels: s.by_author.map((a) => a.author),
      datasets: [{ label: 'Commits', data: s.by_author.map((a) => a.commits), backgroundColor: '#6f42c1' }] },
    options: { indexAxis: 'y', scales: { x: countAxis() } },
  });
}
