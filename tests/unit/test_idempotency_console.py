"""The console's `api()` (functions/console/static/js/api.js) and `Idempotency-Key`: one key per
submission, the same key when the same submission is sent again after a failure, a new one once
it was answered. Run under Node with the real api.js and errors.js, a fake session module and a
scripted `fetch` (no browser, no network); skipped where Node is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "functions" / "console" / "static" / "js"
NODE = shutil.which("node")

SESSION = """
export async function ensureFresh() {}
export function token() { return 'tok'; }
export function signedIn() { return true; }
export async function refresh() {}
"""

DRIVER = """
import { api, post, get } from './api.js';

const answers = [];
const seen = [];
globalThis.fetch = async (url, init) => {
  seen.push({ url, method: init.method, key: init.headers['Idempotency-Key'] ?? null });
  const next = answers.shift();
  if (next === 'network') throw new TypeError('offline');
  return new Response(next.body ?? '{}', {
    status: next.status,
    headers: { 'Content-Type': 'application/json' },
  });
};
async function attempt(fn) {
  try { await fn(); return 'ok'; } catch (err) { return err.status; }
}
const out = {};
const body = { title: 'Leak', asset_id: 'a' };
answers.push('network', { status: 201 });
out.retry = [await attempt(() => post('/api/work-orders', body)),
             await attempt(() => post('/api/work-orders', body))];
answers.push({ status: 201 });
out.again = await attempt(() => post('/api/work-orders', body));
answers.push({ status: 502 }, { status: 409 }, { status: 201 });
out.server = [await attempt(() => post('/api/work-orders', { ...body, title: 'Other' })),
              await attempt(() => post('/api/work-orders', { ...body, title: 'Other' })),
              await attempt(() => post('/api/work-orders', { ...body, title: 'Other' }))];
answers.push({ status: 422 }, { status: 201 });
out.refused = [await attempt(() => post('/api/parts', { sku: 'x' })),
               await attempt(() => post('/api/parts', { sku: 'x' }))];
answers.push({ status: 401 }, { status: 201 });
out.renewed = await attempt(() => post('/api/parts', { sku: 'y' }));
answers.push({ status: 200 });
out.get = await attempt(() => get('/api/parts'));
out.seen = seen;
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    if NODE is None:
        pytest.skip("node is not installed")
    folder = tmp_path_factory.mktemp("console-js")
    shutil.copy(JS / "api.js", folder / "api.js")
    shutil.copy(JS / "errors.js", folder / "errors.js")
    (folder / "session.js").write_text(SESSION)
    (folder / "driver.mjs").write_text(DRIVER)
    (folder / "package.json").write_text('{"type": "module"}')
    done = subprocess.run(
        [NODE, "driver.mjs"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_retried_submission_sends_its_key_again(run):
    seen = run["seen"]
    assert run["retry"] == [0, "ok"]  # a network error, then the same submission again
    assert seen[0]["key"] and seen[0]["key"] == seen[1]["key"]


def test_an_answered_submission_gets_a_new_key_next_time(run):
    seen = run["seen"]
    assert run["again"] == "ok"
    assert seen[2]["key"] and seen[2]["key"] != seen[1]["key"]


def test_server_errors_and_in_flight_keep_the_key_until_answered(run):
    seen = run["seen"]
    assert run["server"] == [502, 409, "ok"]
    assert seen[3]["key"] == seen[4]["key"] == seen[5]["key"]
    assert seen[3]["key"] not in (seen[0]["key"], seen[2]["key"])


def test_a_refusal_is_an_answer(run):
    seen = run["seen"]
    assert run["refused"] == [422, "ok"]
    assert seen[6]["key"] != seen[7]["key"]


def test_the_401_renewal_repeats_the_request_with_its_key(run):
    seen = run["seen"]
    assert run["renewed"] == "ok"
    assert seen[8]["key"] == seen[9]["key"]


def test_only_posts_carry_a_key(run):
    seen = run["seen"]
    assert seen[10]["method"] == "GET" and seen[10]["key"] is None
    assert all(s["key"] for s in seen if s["method"] == "POST")
