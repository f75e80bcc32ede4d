// The dev dashboard of `make dev` (emulators/_dashboard.py). Polls its JSON API; every value is
// put into the page as text (never as HTML).
"use strict";

const TOKEN = document.querySelector('meta[name="dev-token"]').content;
const state = { tab: "deployments", selected: null, query: "", traceQuery: "", traceId: null, spanId: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function badge(text, kind) {
  return el("span", { class: `badge text-bg-${kind}`, text });
}

function time(stamp) {
  if (!stamp) return "";
  const d = new Date(stamp);
  return Number.isNaN(d.getTime()) ? stamp : d.toISOString().replace("T", " ").slice(0, 23);
}

async function api(path, method = "GET") {
  const options = { method, headers: { Accept: "application/json" } };
  if (method !== "GET") options.headers["X-Dev-Token"] = TOKEN;
  const resp = await fetch(`/_dev/api/${path}`, options);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.detail || `${resp.status} ${resp.statusText}`);
  return body;
}

function notice(text, kind = "success") {
  const box = document.getElementById("notice");
  box.className = `alert alert-${kind}`;
  box.textContent = text;
}

function healthBadge(d) {
  if (d.gave_up) return badge("stopped: crashed 5×", "danger");
  if (d.health === 200) return badge("healthy", "success");
  if (d.health && d.health < 500) return badge(`up (${d.health})`, "warning");
  return badge(d.health ? `unhealthy (${d.health})` : "down", "danger");
}

function renderDeployments(data) {
  const up = data.deployments.filter((d) => d.health && d.health < 500).length;
  const reload = data.last_reload && data.last_reload.reloaded
    ? ` · last reload: ${data.last_reload.reloaded.join(", ") || "none"}` : "";
  document.getElementById("summary").textContent =
    `${data.project} · ${up}/${data.deployments.length} deployments up${reload}`;
  const rows = data.deployments.map((d) => {
    const tr = el("tr", { "data-name": d.name, tabindex: "0",
      onclick: () => select(d.name), onkeydown: (e) => { if (e.key === "Enter") select(d.name); } },
      el("th", { scope: "row", text: d.name }),
      el("td", { text: d.trigger }),
      el("td", { class: "mono", text: String(d.port ?? "") }),
      el("td", {}, healthBadge(d)),
      el("td", { class: "mono", text: String(d.pid ?? "–") }),
      el("td", { text: String(d.crashes) }),
      el("td", { text: String(d.requests.length) }),
      el("td", {}, d.errors.length ? badge(String(d.errors.length), "danger") : document.createTextNode("0")));
    if (d.name === state.selected) tr.classList.add("selected");
    return tr;
  });
  document.getElementById("deployment-rows").replaceChildren(...rows);
  const chosen = data.deployments.find((d) => d.name === state.selected);
  const detail = document.getElementById("deployment-detail");
  detail.classList.toggle("d-none", !chosen);
  if (!chosen) return;
  document.getElementById("detail-title").textContent = `${chosen.name} · ${chosen.url}`;
  document.getElementById("detail-requests").replaceChildren(...(chosen.requests.length
    ? chosen.requests.map((r) => el("tr", {},
        el("td", { class: "mono", text: time(r.time) }), el("td", { text: r.method || "" }),
        el("td", { class: "mono", text: r.path || "" }),
        el("td", {}, badge(String(r.status), r.status >= 500 ? "danger" : r.status >= 400 ? "warning" : "success")),
        el("td", { class: "mono", text: r.latency || "" }),
        el("td", { class: "mono" }, r.trace_id ? traceLink(r.request_id || r.trace_id, r.request_id || r.trace_id, "request") : document.createTextNode(r.request_id || ""))))
    : [el("tr", {}, el("td", { colspan: "6", class: "text-body-secondary", text: "No request logged yet." }))]));
  document.getElementById("detail-errors").replaceChildren(...(chosen.errors.length
    ? chosen.errors.map((e) => el("div", { class: "mb-2" },
        el("div", { class: "small" }, el("span", { class: "mono", text: time(e.time) }), document.createTextNode(" "), el("strong", { text: e.message })),
        e.stack_trace ? el("pre", { class: "trace", text: e.stack_trace }) : document.createTextNode("")))
    : [el("p", { class: "text-body-secondary", text: "No error logged." })]));
}

// A link that opens the trace view on `query` (a trace id, request id or event_id).
function traceLink(query, text, what) {
  const params = new URLSearchParams({ tab: "traces", q: query });
  return el("a", { href: `?${params}`, class: "trace-link", "data-trace-link": query,
    "aria-label": `Trace of ${what} ${query}`, text,
    onclick: (e) => { e.preventDefault(); openTrace(query); } });
}

function openTrace(query) {
  state.traceQuery = query;
  state.traceId = null;
  state.spanId = null;
  document.getElementById("trace-q").value = query;
  show("traces");
}

function select(name) {
  state.selected = state.selected === name ? null : name;
  refresh();
}

function renderEvents(data) {
  document.getElementById("event-count").textContent = `${data.items.length} event(s)`;
  const rows = data.items.map((e) => {
    const consumers = Object.entries(e.consumers || {}).map(([name, c]) => {
      const kind = c.status === "processed" ? "success" : c.status === "failed" ? "danger" : "secondary";
      const latency = c.latency_ms !== undefined ? `, ${c.latency_ms} ms` : "";
      return el("span", { class: `badge text-bg-${kind} consumer`, "data-consumer": name,
        text: `${name} · ${c.status} · ${c.attempts} attempt${c.attempts === 1 ? "" : "s"}${latency}` });
    });
    return el("tr", { "data-event-id": e.event_id },
      el("td", { class: "mono", text: time(e.published_at) }),
      el("td", { text: e.type || "" }), el("td", { class: "text-nowrap", text: e.source || "" }),
      el("td", { class: "mono", text: e.event_id }), el("td", { class: "mono", text: e.request_id || "" }),
      el("td", {}, ...(consumers.length ? consumers : [el("span", { class: "text-body-secondary", text: "none yet" })])),
      el("td", {}, e.traceparent ? traceLink(e.event_id, "trace", "event") : document.createTextNode("")));
  });
  document.getElementById("event-rows").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", class: "text-body-secondary", text: "No event seen yet." }))]));
}

function ms(value) {
  return value >= 100 ? `${Math.round(value)} ms` : `${value.toFixed(value >= 10 ? 1 : 2)} ms`;
}

function renderTraces(data) {
  document.getElementById("trace-count").textContent = `${data.items.length} trace(s)`;
  if (!state.traceId && state.traceQuery && data.items.length === 1) state.traceId = data.items[0].trace_id;
  const rows = data.items.map((t) => {
    const tr = el("tr", { "data-trace-id": t.trace_id, tabindex: "0",
      onclick: () => chooseTrace(t.trace_id), onkeydown: (e) => { if (e.key === "Enter") chooseTrace(t.trace_id); } },
      el("td", { class: "mono", text: time(t.started) }),
      el("td", {}, el("span", { class: "fw-semibold", text: t.root_deployment }), document.createTextNode(` ${t.root}`)),
      el("td", { class: "small", text: t.deployments.join(", ") }),
      el("td", {}, document.createTextNode(String(t.spans)), t.errors ? badge(`${t.errors} error${t.errors === 1 ? "" : "s"}`, "danger") : document.createTextNode("")),
      el("td", { class: "mono", text: ms(t.duration_ms) }),
      el("td", { class: "mono", text: t.trace_id }));
    if (t.trace_id === state.traceId) tr.classList.add("selected");
    return tr;
  });
  document.getElementById("trace-rows").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "6", class: "text-body-secondary",
        text: state.traceQuery ? "No trace found (yet): spans arrive as each hop finishes." : "No trace seen yet." }))]));
}

function chooseTrace(id) {
  state.traceId = state.traceId === id ? null : id;
  state.spanId = null;
  refresh();
}

function renderWaterfall(data) {
  const detail = document.getElementById("trace-detail");
  detail.classList.toggle("d-none", !data);
  if (!data) return;
  document.getElementById("trace-title").textContent = `${data.root_deployment} · ${data.root}`;
  const colour = Object.fromEntries(data.deployments.map((d, i) => [d, `dep-${i % 9}`]));
  document.getElementById("trace-meta").replaceChildren(
    document.createTextNode(`trace ${data.trace_id} · ${data.spans} spans · ${ms(data.total_ms)}`),
    ...data.deployments.flatMap((d) => [el("span", { class: `legend-dot ${colour[d]}` }), document.createTextNode(d)]));
  const total = data.total_ms || 1;
  const rows = data.items.map((s) => {
    const left = (s.offset_ms / total) * 100;
    const width = (s.duration_ms / total) * 100;
    const bar = el("div", { class: `span-bar ${colour[s.deployment] || "dep-8"}${s.status === "error" ? " error" : ""}` });
    bar.style.left = `${left}%`;
    bar.style.width = `${width}%`;
    const label = el("span", { class: "span-time", text: ms(s.duration_ms) });
    if (left + width > 82) label.style.right = `calc(${100 - left}% + .3rem)`;
    else label.style.left = `calc(${left + width}% + .3rem)`;
    const name = el("div", { class: "span-label", title: `${s.deployment} · ${s.name} (${s.kind})` },
      el("span", { class: "dep", text: s.deployment }), document.createTextNode(s.name));
    name.style.paddingLeft = `${s.depth * 0.9}rem`;
    const row = el("div", { class: "span-row", role: "listitem", tabindex: "0", "data-span-id": s.span_id,
      "data-deployment": s.deployment, "data-name": s.name, "data-kind": s.kind,
      onclick: () => chooseSpan(s.span_id), onkeydown: (e) => { if (e.key === "Enter") chooseSpan(s.span_id); } },
      name, el("div", { class: "span-track" }, bar, label));
    if (s.span_id === state.spanId) row.classList.add("chosen");
    return row;
  });
  document.getElementById("trace-waterfall").replaceChildren(...rows);
  const chosen = data.items.find((s) => s.span_id === state.spanId);
  const box = document.getElementById("span-detail");
  box.classList.toggle("d-none", !chosen);
  if (chosen) {
    box.textContent = JSON.stringify({ name: chosen.name, deployment: chosen.deployment, kind: chosen.kind,
      status: chosen.status, span_id: chosen.span_id, parent_id: chosen.parent_id,
      start_ms: chosen.offset_ms, duration_ms: chosen.duration_ms, attributes: chosen.attributes }, null, 2);
  }
}

function chooseSpan(id) {
  state.spanId = state.spanId === id ? null : id;
  refresh();
}

async function loadTraces() {
  const data = await api(`traces?q=${encodeURIComponent(state.traceQuery)}`);
  renderTraces(data);
  if (!state.traceId) return renderWaterfall(null);
  try {
    renderWaterfall(await api(`traces/${encodeURIComponent(state.traceId)}`));
  } catch (err) {
    renderWaterfall(null);
  }
}

function renderDeadLetters(data) {
  const counts = data.counts || {};
  const byTopic = {};
  for (const item of data.items || []) (byTopic[item.topic] ||= []).push(item);
  const topics = Object.keys(counts).sort((a, b) => (counts[b] - counts[a]) || a.localeCompare(b));
  const rows = topics.map((topic) => {
    const redrive = el("button", { class: "btn btn-sm btn-outline-primary", type: "button",
      "aria-label": `Redrive the dead letters of ${topic}`,
      onclick: () => act(`dead-letters/${encodeURIComponent(topic)}/redrive`, `redrove ${topic}`) }, "Redrive");
    redrive.disabled = !counts[topic];
    return el("tr", { "data-topic": topic },
      el("th", { scope: "row", class: "mono", text: topic }),
      el("td", {}, counts[topic] ? badge(String(counts[topic]), "danger") : document.createTextNode("0")),
      el("td", { class: "mono small", text: (byTopic[topic] || []).map((x) => x.event_id).join(" ") }),
      el("td", {}, redrive));
  });
  document.getElementById("dead-rows").replaceChildren(...rows);
}

function renderJobs(data) {
  const rows = data.items.map((j) => el("tr", { "data-job": j.name },
    el("th", { scope: "row", text: j.name }),
    el("td", { class: "mono", text: `${j.schedule} (${j.time_zone})` }),
    el("td", {}, badge(j.state, j.state === "PAUSED" ? "warning" : "success")),
    el("td", { class: "mono", text: j.next_run ? time(j.next_run) : "–" }),
    el("td", { class: "mono", text: j.last_run ? time(j.last_run) : "never" }),
    el("td", { class: "mono", text: j.last_status || "–" }),
    el("td", { class: "text-nowrap" },
      el("button", { class: "btn btn-sm btn-outline-primary me-1", type: "button", "aria-label": `Run ${j.name} now`,
        onclick: () => act(`jobs/${encodeURIComponent(j.name)}/run`, `${j.name} started`) }, "Run now"),
      j.state === "PAUSED"
        ? el("button", { class: "btn btn-sm btn-outline-success", type: "button", "aria-label": `Resume ${j.name}`,
            onclick: () => act(`jobs/${encodeURIComponent(j.name)}/resume`, `${j.name} resumed`) }, "Resume")
        : el("button", { class: "btn btn-sm btn-outline-secondary", type: "button", "aria-label": `Pause ${j.name}`,
            onclick: () => act(`jobs/${encodeURIComponent(j.name)}/pause`, `${j.name} paused`) }, "Pause"))));
  document.getElementById("job-rows").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "7", class: "text-body-secondary", text: "No schedule deployment runs in this stack." }))]));
}

async function act(path, done) {
  try {
    await api(path, "POST");
    notice(done);
  } catch (err) {
    notice(`Failed: ${err.message}`, "danger");
  }
  refresh();
}

const LOADERS = {
  deployments: () => api("deployments").then(renderDeployments),
  events: () => api(`events?q=${encodeURIComponent(state.query)}`).then(renderEvents),
  traces: loadTraces,
  "dead-letters": () => api("dead-letters").then(renderDeadLetters),
  scheduler: () => api("jobs").then(renderJobs),
};

let busy = false;
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    await LOADERS[state.tab]();
    if (state.tab !== "deployments") await api("deployments").then(renderDeployments);
  } catch (err) {
    document.getElementById("summary").textContent = `not answering: ${err.message}`;
  } finally {
    busy = false;
  }
}

function show(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[data-tab]")) {
    const active = button.dataset.tab === tab;
    button.classList.toggle("active", active);
    button.setAttribute("aria-selected", String(active));
    document.getElementById(button.dataset.tab).hidden = !active;
  }
  refresh();
}

for (const button of document.querySelectorAll("[data-tab]")) {
  button.addEventListener("click", () => show(button.dataset.tab));
}
document.getElementById("event-search").addEventListener("submit", (e) => e.preventDefault());
document.getElementById("event-q").addEventListener("input", (e) => {
  state.query = e.target.value;
  refresh();
});
document.getElementById("trace-search").addEventListener("submit", (e) => e.preventDefault());
document.getElementById("trace-q").addEventListener("input", (e) => {
  state.traceQuery = e.target.value.trim();
  state.traceId = null;
  state.spanId = null;
  refresh();
});
const params = new URLSearchParams(location.search);
const initial = params.get("tab");
if (params.get("q")) {
  state.traceQuery = params.get("q");
  document.getElementById("trace-q").value = state.traceQuery;
}
show(LOADERS[initial] ? initial : "deployments");
setInterval(refresh, 2000);
