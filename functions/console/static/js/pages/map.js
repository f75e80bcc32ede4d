// The live package map: every package's last known position (the realtime map stream), drawn
// with Leaflet over Natural Earth's 1:110m country outlines that console-web serves itself
// (vendor/world-atlas, TopoJSON turned into GeoJSON by topojson-client). No tile server and
// nothing from the internet: the CSP allows 'self' only. Decision 0036.

import { fmtDateTime, h, label, replace } from '../dom.js';
import { navigate } from '../router.js';
import { pageHeader, problemAlert, scroller, spinner } from '../ui.js';
import { STATUSES, STATUS_COLORS, statusBadge } from './packages.js';
import { openStream, stateBadge } from './live-stream.js';

// Our files are served with the console's version (?v=...): the vendored ones get the same.
const VERSION = new URL(import.meta.url).search;
const vendor = (path) => new URL(`../../vendor/${path}`, import.meta.url).pathname + VERSION;

let libraries = null;

function stylesheet(href) {
  if (document.querySelector(`link[rel=stylesheet][href="${href}"]`)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const link = h('link', { rel: 'stylesheet', href });
    link.addEventListener('load', resolve);
    link.addEventListener('error', () => reject(new Error(`${href} did not load`)));
    document.head.append(link);
  });
}

/** Leaflet, topojson-client and the world outline as GeoJSON (loaded once per page load). */
function loadLibraries() {
  if (!libraries) {
    libraries = Promise.all([
      stylesheet(vendor('leaflet/leaflet.css')),
      import(vendor('leaflet/leaflet.js')),
      import(vendor('topojson-client/topojson-client.min.js')),
      fetch(vendor('world-atlas/countries-110m.json')).then((r) => {
        if (!r.ok) throw new Error(`The world outline did not load (${r.status}).`);
        return r.json();
      }),
    ]).then(([, , , world]) => {
      const L = window.L;
      const topojson = window.topojson;
      if (!L || !topojson) throw new Error('The map library did not load.');
      return { L, land: topojson.feature(world, world.objects.countries) };
    }).catch((err) => {
      libraries = null;
      throw err;
    });
  }
  return libraries;
}

function legend() {
  return h('ul', { class: 'map-legend list-inline small mb-2', 'aria-label': 'Legend' },
    STATUSES.map((s) => h('li', { class: 'list-inline-item text-nowrap' },
      h('span', { class: `legend-dot legend-${s}`, 'aria-hidden': 'true' }), label(s))));
}

const SAFE = /[^A-Za-z0-9_-]/g;

export async function packageMap(ctx) {
  const { main } = ctx;
  const live = stateBadge('map-state');
  const count = h('span', { class: 'text-secondary small', id: 'map-count' });
  const box = h('div', { class: 'map-box card shadow-sm mb-3', id: 'map', role: 'region',
    'aria-label': 'Map of package positions' });
  const body = h('tbody', {});
  const empty = h('p', { class: 'text-secondary py-3 mb-0 px-3', id: 'map-empty' },
    'No package positions yet: they appear as packages are scanned.');
  const list = h('div', { class: 'card shadow-sm' },
    h('div', { class: 'card-header fw-semibold' }, 'Last known positions'), empty,
    scroller('Package positions', h('table', { class: 'table table-hover align-middle mb-0 d-none', id: 'map-table' },
      h('caption', { class: 'visually-hidden' }, 'Package positions'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tracking number'),
        h('th', { scope: 'col' }, 'Status at the scan'), h('th', { scope: 'col' }, 'Last scan'),
        h('th', { scope: 'col', class: 'd-none d-md-table-cell' }, 'Position'))),
      body)));
  const slot = h('div', {});
  replace(main, pageHeader('Package map', count, live.el), slot, legend(), box, list);
  const loading = spinner('Loading the map…');
  box.append(loading);
  let L;
  let land;
  try {
    ({ L, land } = await loadLibraries());
  } catch (err) {
    loading.remove();
    if (ctx.alive()) replace(slot, problemAlert(err));
    return;
  }
  if (!ctx.alive()) return;
  loading.remove();
  const map = L.map(box, { minZoom: 1, maxZoom: 12, zoomSnap: 0.5, worldCopyJump: false,
    maxBounds: [[-85, -200], [85, 200]], preferCanvas: false });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution('Country outlines: Natural Earth');
  L.geoJSON(land, { interactive: false, style: { color: '#8c959f', weight: 0.7, fillColor: '#f8f9fa', fillOpacity: 1 } }).addTo(map);
  map.setView([50, 10], 4);
  const markers = new Map(); // package id -> { marker, row, doc }

  function rowOf(doc) {
    return h('tr', { dataset: { id: doc.package_id } },
      h('td', { class: 'tracking' }, h('a', { href: `#/packages/${encodeURIComponent(doc.package_id)}` }, doc.tracking_number || doc.package_id)),
      h('td', {}, statusBadge(doc.status)),
      h('td', { class: 'text-nowrap' }, fmtDateTime(doc.at)),
      h('td', { class: 'text-nowrap small d-none d-md-table-cell' }, `${Number(doc.lat).toFixed(3)}, ${Number(doc.lon).toFixed(3)}`));
  }

  function put(doc) {
    if (!doc || !doc.package_id || doc.lat === undefined || doc.lon === undefined) return;
    const color = STATUS_COLORS[doc.status] || '#6c757d';
    const had = markers.get(doc.package_id);
    if (had && String(had.doc.at || '') > String(doc.at || '')) return; // older than shown
    const text = `${doc.tracking_number || doc.package_id} · ${label(doc.status)}`;
    if (had) {
      had.marker.setLatLng([doc.lat, doc.lon]);
      had.marker.setStyle({ color, fillColor: color });
      had.marker.setTooltipContent(text);
      const row = rowOf(doc);
      had.row.replaceWith(row);
      had.row = row;
      had.doc = doc;
      body.prepend(row);
    } else {
      const marker = L.circleMarker([doc.lat, doc.lon], { radius: 7, weight: 2, color, fillColor: color,
        fillOpacity: 0.8, className: `pkg-marker pkg-${String(doc.package_id).replace(SAFE, '')}` })
        .bindTooltip(text)
        .on('click', () => navigate(`/packages/${encodeURIComponent(doc.package_id)}`))
        .addTo(map);
      const row = rowOf(doc);
      body.prepend(row);
      markers.set(doc.package_id, { marker, row, doc });
    }
    const path = markers.get(doc.package_id).marker.getElement();
    if (path) path.dataset.status = doc.status;
    body.closest('table').classList.toggle('d-none', !markers.size);
    empty.classList.toggle('d-none', markers.size > 0);
    count.textContent = `${markers.size} package${markers.size === 1 ? '' : 's'}`;
    box.dataset.markers = String(markers.size);
  }

  function reset(docs) {
    for (const { marker } of markers.values()) marker.remove();
    markers.clear();
    body.replaceChildren();
    const sorted = [...(docs || [])].sort((a, b) => String(a.at || '').localeCompare(String(b.at || '')));
    for (const doc of sorted) put(doc);
    box.dataset.markers = String(markers.size);
    count.textContent = `${markers.size} package${markers.size === 1 ? '' : 's'}`;
    if (markers.size) {
      const bounds = L.latLngBounds([...markers.values()].map(({ doc }) => [doc.lat, doc.lon]));
      map.fitBounds(bounds.pad(0.15), { maxZoom: 7 });
    }
  }

  openStream('map', {
    on: { snapshot: reset, position: put },
    onState: live.set,
  });
}
