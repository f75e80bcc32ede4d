// The realtime streams (Server-Sent Events) for the logistics pages: a ticket, an EventSource,
// reconnection, and the connection state shown to the user. Decisions 0028, 0029 and 0036.
//
// EventSource cannot send Authorization, so each connection first buys a 60 s ticket for its
// one stream (POST /api/realtime/tickets, an ordinary API call with the access token). While
// the ticket is valid, EventSource reconnects by itself after a drop and sends Last-Event-ID:
// the server replays what was missed. Once the ticket is spent (a refused reconnect closes the
// EventSource) or the stream ends with `expired` (the token that bought it expired), a new
// ticket is bought and the stream opened again with `?last_event_id=` (a new EventSource
// cannot send the header): the server resumes right after the last event this page saw, so
// nothing between the old stream's end and the new one's start is lost or repeated (decision
// 0047). Only when the feed no longer holds that point does the stream start again with a
// `snapshot` (the whole current state), which the page redraws from, as on its first open.
// Every stream is closed when the page is left.

import { post } from '../api.js';
import { h } from '../dom.js';
import { onRender } from '../router.js';
import * as session from '../session.js';

const open = new Set();

export function closeStreams() {
  for (const s of [...open]) s.close();
}

onRender(closeStreams); // the streams of a page left behind
session.subscribe((event) => {
  if (event === 'ended' || event === 'signed-out') closeStreams();
});

const STATE_TEXT = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};
const STATE_CLASS = {
  connecting: 'text-bg-secondary',
  live: 'text-bg-success',
  reconnecting: 'text-bg-warning',
  offline: 'text-bg-danger',
};

/** A badge showing a stream's state; pass its `set` as `onState`. */
export function stateBadge(id) {
  const el = h('span', { class: 'badge text-bg-secondary live-state', id, role: 'status',
    'aria-live': 'polite', dataset: { state: 'connecting' } }, STATE_TEXT.connecting);
  return {
    el,
    set(state, detail) {
      el.dataset.state = state;
      el.className = `badge live-state ${STATE_CLASS[state]}`;
      el.textContent = STATE_TEXT[state];
      el.title = detail || '';
    },
  };
}

/**
 * Open a stream: `stream` is 'dashboard', 'map', 'agents' or 'package' (with `packageId`);
 * `on` maps SSE event names ('snapshot', 'counts', 'position', ...) to fn(data, id);
 * `onState(state, detail)` hears 'connecting', 'live', 'reconnecting' and 'offline'.
 * Answers { close() }.
 */
export function openStream(stream, { packageId = null, on = {}, onState = () => {} } = {}) {
  let source = null;
  let closed = false;
  let timer = null;
  let failures = 0;
  let lastId = ''; // the newest event id this page was handed: where a new stream resumes
  const handle = { close };
  open.add(handle);

  function close() {
    closed = true;
    open.delete(handle);
    clearTimeout(timer);
    if (source) source.close();
    source = null;
  }

  function retryLater(detail) {
    if (source) source.close();
    source = null;
    if (closed) return;
    failures += 1;
    // 1, 2, 4 ... 30 s; a page that cannot reach the server says so but keeps trying
    const wait = Math.min(30000, 1000 * 2 ** Math.min(failures - 1, 5));
    onState(failures > 3 ? 'offline' : 'reconnecting', detail);
    timer = setTimeout(connect, wait);
  }

  async function connect() {
    if (closed) return;
    onState(failures ? 'reconnecting' : 'connecting');
    let ticket;
    try {
      ticket = await post('/api/realtime/tickets',
        packageId ? { stream, package_id: packageId } : { stream });
    } catch (err) {
      retryLater(err && err.message);
      return;
    }
    if (closed) return;
    const resume = lastId ? `&last_event_id=${encodeURIComponent(lastId)}` : '';
    const es = new EventSource(
      `${ticket.url}?ticket=${encodeURIComponent(ticket.ticket)}${resume}`);
    source = es;
    es.onopen = () => {
      failures = 0;
      onState('live');
    };
    es.onerror = () => {
      if (closed || source !== es) return;
      // CONNECTING: EventSource retries by itself with Last-Event-ID (the ticket still opens
      // the stream for its 60 s); CLOSED: it was refused (ticket spent): buy a new one.
      if (es.readyState === EventSource.CLOSED) retryLater('The stream was refused; retrying.');
      else onState('reconnecting', 'The connection dropped; resuming.');
    };
    es.addEventListener('expired', () => {
      if (source !== es) return;
      es.close();
      source = null;
      connect(); // the token that bought the ticket expired: a fresh ticket, a fresh stream
    });
    const handlers = { snapshot: () => {}, ...on };
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (event) => {
        if (closed || source !== es) return;
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        // Events this page does not listen to are not seen here: a resume may send them
        // again, never one it was handed.
        if (event.lastEventId) lastId = event.lastEventId;
        fn(data, event.lastEventId);
      });
    }
  }

  connect();
  return handle;
}
