"""Every path reaches a Flask app served in functions-framework's ASGI mode (`shared.asgi`),
newlines included, so its problem+json 404 answers it rather than Starlette's text/plain one."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from functions_framework.aio import create_asgi_app

from tests.asgi_server import AsgiServer

ENTRY = """
import flask
import functions_framework.aio

from shared import asgi

app = flask.Flask("paths")


@app.get("/api/things/<thing>")
def thing(thing):
    return {"thing": thing}


@app.errorhandler(404)
def missing(exc):
    return flask.Response('{"status": 404}', 404, mimetype="application/problem+json")


@functions_framework.aio.http
async def entry(request):
    return asgi.answer(app)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    source = Path(tmp_path_factory.mktemp("asgi")) / "main.py"
    source.write_text(ENTRY)
    srv = AsgiServer(create_asgi_app("entry", str(source), "http"))
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    "path", ["/api/things/ab%0Acd/more", "/api/th%0Aings", "/a%0D%0Ab", "/api/things/x/%0A"]
)
def test_a_path_with_a_newline_gets_the_apps_404(server, path):
    resp = requests.get(server.url + path, timeout=10)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/problem+json"


def test_a_newline_inside_a_parameter_reaches_the_view(server):
    resp = requests.get(server.url + "/api/things/ab%0Acd", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"thing": "ab\ncd"}
