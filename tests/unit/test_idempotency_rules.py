"""`Idempotency-Key` without I/O: the key's syntax, what makes two requests the same, and which
operations take the header (every POST that creates something, in every context's app, and
the OpenAPI document saying so)."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import flask
import pytest
import requests

from shared.errors import BadRequest
from shared.http import _idempotency as idem
from shared.http import create_app, describe
from shared.manifests import catalog
from shared.openapi import spec_for

ROOT = Path(__file__).resolve().parents[2]


# --- the key -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["a", "8e03978e-40d5-43e8-bc93-6894a57f9324", "x" * 255, '"quoted"', "!~#$%&()*+,/:;"]
)
def test_a_key_is_1_to_255_printable_ascii_characters(key):
    assert idem.parse_key(key) == key


@pytest.mark.parametrize("key", ["", " ", "a b", "x" * 256, "tab\there", "caf\u00e9", "nl\n"])
def test_anything_else_is_400(key):
    with pytest.raises(BadRequest) as err:
        idem.parse_key(key)
    assert err.value.errors[0]["field"] == "Idempotency-Key"


def test_the_documented_pattern_is_the_one_enforced():
    import re

    from shared.openapi import IDEMPOTENCY_PARAMETER

    schema = IDEMPOTENCY_PARAMETER["schema"]
    assert schema["pattern"] == idem.KEY_PATTERN
    assert schema["maxLength"] == idem.MAX_KEY_LENGTH and schema["minLength"] == 1
    for ch in map(chr, range(0, 256)):
        documented = re.fullmatch(schema["pattern"].strip("^$"), ch) is not None
        try:
            idem.parse_key(ch)
            taken = True
        except BadRequest:
            taken = False
        assert documented == taken, repr(ch)


# --- the request's fingerprint -----------------------------------------------------------


def test_the_body_is_compared_as_canonical_json():
    a = json.dumps({"title": "Leak", "asset_id": "1", "n": [1, 2]}).encode()
    b = b'{\n  "n": [1, 2],\n  "asset_id": "1",\n  "title": "Leak"\n}'
    assert idem.canonical_body(a) == idem.canonical_body(b)
    assert idem.fingerprint("POST", "/api/x", b"", a) == idem.fingerprint("post", "/api/x", b"", b)


@pytest.mark.parametrize(
    "other",
    [
        ("POST", "/api/x", b"", b'{"title":"Leak","n":[2,1]}'),  # order in a list matters
        ("POST", "/api/x", b"", b'{"title":"leak","n":[1,2]}'),
        ("POST", "/api/y", b"", b'{"title":"Leak","n":[1,2]}'),
        ("POST", "/api/x", b"a=1", b'{"title":"Leak","n":[1,2]}'),
        ("PUT", "/api/x", b"", b'{"title":"Leak","n":[1,2]}'),
        ("POST", "/api/x", b"", b""),
    ],
)
def test_any_other_request_has_another_fingerprint(other):
    base = idem.fingerprint("POST", "/api/x", b"", b'{"title":"Leak","n":[1,2]}')
    assert idem.fingerprint(*other) != base


def test_query_order_does_not_matter_and_parts_cannot_run_together():
    assert idem.fingerprint("POST", "/p", b"a=1&b=2", b"") == idem.fingerprint(
        "POST", "/p", b"b=2&a=1", b""
    )
    assert idem.fingerprint("POST", "/ab", b"", b"c") != idem.fingerprint("POST", "/a", b"", b"bc")


def test_a_body_that_is_not_json_is_compared_as_sent():
    assert idem.canonical_body(b"not json") == b"not json"
    assert idem.canonical_body(b"") == b""


def test_a_scope_is_user_deployment_route_and_key():
    base = idem.Scope("d", "u", "POST /r", "k")
    assert base.id == idem.Scope("d", "u", "POST /r", "k").id
    others = [
        idem.Scope("e", "u", "POST /r", "k"),
        idem.Scope("d", "v", "POST /r", "k"),
        idem.Scope("d", "u", "POST /s", "k"),
        idem.Scope("d", "u", "POST /r", "l"),
        idem.Scope("d", "uP", "OST /r", "k"),
    ]
    assert len({base.id, *(s.id for s in others)}) == 6


# --- which operations ----------------------------------------------------------------------


def _app_modules() -> list[str]:
    """Every module of a context that builds a Flask app with `create_app`."""
    found = []
    for path in sorted((ROOT / "functions").glob("*/*.py")):
        tree = ast.parse(path.read_text())
        calls = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "create_app"
        ]
        if calls:
            found.append(f"functions.{path.parent.name}.{path.stem}")
    return found


def _apps() -> list[tuple[str, flask.Flask]]:
    out = []
    for name in _app_modules():
        module = importlib.import_module(name)
        out.append((name.split(".")[1], module.app))
    return out


def _creating_posts() -> list[tuple[str, flask.Flask, object]]:
    found = []
    for context, app in _apps():
        for rule in app.url_map.iter_rules():
            if "POST" not in (rule.methods or ()):
                continue
            facts = idem.view_facts(app.view_functions[rule.endpoint])
            if facts.get("status") == 201 or facts.get("idempotent"):
                found.append((context, app, rule))
    return found


def test_every_app_of_every_context_is_found():
    modules = _app_modules()
    assert "functions.source.webhook" in modules and "functions.users.api" in modules
    assert len({m.split(".")[1] for m in modules}) == len(catalog().contexts)


def test_every_post_documented_201_takes_the_key_and_documents_it():
    posts = _creating_posts()
    assert len(posts) >= 18  # 2026-12-01: users, ops, maintenance 6, production, logistics 2, ...
    specs: dict[int, dict] = {}
    for context, app, rule in posts:
        view = app.view_functions[rule.endpoint]
        if idem.view_facts(view).get("idempotent") is False:
            continue  # an explicit opt-out (describe(idempotent=False))
        where = f"POST {rule.rule} ({context})"
        assert idem.covers(app, rule), f"{where} does not take {idem.HEADER}"
        spec = specs.get(id(app)) or specs.setdefault(id(app), spec_for(app, context))
        path = rule.rule
        for conv in ("<uuid:", "<int:", "<path:", "<"):
            while conv in path:
                start = path.index(conv)
                end = path.index(">", start)
                name = path[start:end].split(":")[-1].lstrip("<")
                path = path[:start] + "{" + name + "}" + path[end + 1 :]
        op = spec["paths"][path]["post"]
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]
        assert idem.HEADER in names, f"{where}: the header is not documented"
        assert {"400", "409", "422"} <= set(op["responses"]), where
        ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
        assert idem.REPLAYED in ok.get("headers", {}), where
        # and the deployment serving it has somewhere to keep keys
        dep = catalog().route(rule.rule.split("<")[0])
        assert dep is not None and idem.store_for(dep.name) is not None, where


def test_only_covered_operations_document_the_header():
    for context, app in _apps():
        spec = spec_for(app, context)
        covered = {rule.rule for rule in app.url_map.iter_rules() if idem.covers(app, rule, "POST")}
        for path, item in spec["paths"].items():
            for method, op in item.items():
                has = any(p["name"] == idem.HEADER for p in op.get("parameters", []))
                if has:
                    assert method == "post", (context, path, method)
        assert len(covered) == sum(
            1
            for item in spec["paths"].values()
            for method, op in item.items()
            if any(p["name"] == idem.HEADER for p in op.get("parameters", []))
        ), context


def test_public_posts_and_other_statuses_do_not_take_it():
    for _context, app in _apps():
        for rule in app.url_map.iter_rules():
            if "POST" in (rule.methods or ()) and catalog().is_public(rule.rule):
                assert not idem.covers(app, rule), rule.rule  # no subject to scope a key to
    from functions.production.api import app as production

    transitions = next(
        r for r in production.url_map.iter_rules() if r.rule.endswith("/transitions")
    )
    assert not idem.covers(production, transitions)


def test_a_view_can_opt_in_or_out(monkeypatch):
    monkeypatch.setenv("SWITCHYARD_ENV", "test")
    app = create_app("production")

    @app.post("/api/batches/_probe_out")
    @describe(status=201, idempotent=False)
    def _out() -> flask.Response:
        return flask.Response(status=201)

    @app.post("/api/batches/_probe_in")
    @describe(idempotent=True)
    def _in() -> flask.Response:
        return flask.Response()

    rules = {r.rule: r for r in app.url_map.iter_rules()}
    assert not idem.covers(app, rules["/api/batches/_probe_out"])
    assert idem.covers(app, rules["/api/batches/_probe_in"])


def test_the_fault_point_is_armed_by_tests_only(tmp_path):
    path = idem.arm_fault("users-api", "raise", tmp_path)
    assert path.read_text() == "raise"
    with pytest.raises(ValueError):
        idem.arm_fault("users-api", "explode", tmp_path)


# --- make seed ------------------------------------------------------------------------------


class _Recorder(requests.adapters.BaseAdapter):
    """A transport that answers 201 and remembers what it was sent (no network)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.sent.append(request)
        resp = requests.Response()
        resp.status_code = 201
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def test_make_seed_sends_the_same_key_for_the_same_request_only():
    from tools.seed import IDEMPOTENCY_KEY, IdempotentSession

    http = IdempotentSession()
    transport = _Recorder()
    http.mount("http://", transport)
    base = "http://seed.invalid"
    http.post(f"{base}/api/assets", json={"tag": "A-1", "name": "Pump"})
    http.post(f"{base}/api/assets", json={"name": "Pump", "tag": "A-1"})
    http.post(f"{base}/api/assets", json={"tag": "A-2", "name": "Pump"})
    http.post(f"{base}/api/parts", json={"tag": "A-1", "name": "Pump"})
    http.post(f"{base}/api/assets", json={"tag": "A-3"}, headers={IDEMPOTENCY_KEY: "mine"})
    http.get(f"{base}/api/assets")
    keys = [r.headers.get(IDEMPOTENCY_KEY) for r in transport.sent]
    assert keys[0] == keys[1]  # the same request (key order aside), the same key
    assert len({keys[0], keys[2], keys[3]}) == 3
    assert keys[4] == "mine" and keys[5] is None
    for key in keys[:4]:
        assert idem.parse_key(key) == key
