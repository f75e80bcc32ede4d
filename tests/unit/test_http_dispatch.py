"""`shared.http.dispatch`: functions-framework's app hands over to the context's app after the
first request (decision 0060), its execution-id middleware still in front."""

from pathlib import Path

import functions_framework
from functions_framework.execution_id import WsgiMiddleware

MAIN = """
import flask
import functions_framework

from shared.http import dispatch

inner = flask.Flask("inner")
entries = []


@inner.route("/hello", methods=["GET", "POST"])
def hello():
    return {
        "entries": len(entries),
        "execution_id": flask.request.headers.get("Function-Execution-Id", ""),
        "body": flask.request.get_data(as_text=True),
    }


@functions_framework.http
def api(request):
    entries.append(1)
    return dispatch(inner, request)
"""


def test_later_requests_go_straight_to_the_context_app(tmp_path: Path):
    (tmp_path / "main.py").write_text(MAIN)
    outer = functions_framework.create_app(target="api", source=str(tmp_path / "main.py"))
    client = outer.test_client()
    answers = [client.get("/hello").get_json() for _ in range(3)]
    answers.append(client.post("/hello", data=b"payload").get_json())
    # the entry point ran for the first request only; every answer is the inner app's
    assert [a["entries"] for a in answers] == [1, 1, 1, 1]
    assert answers[-1]["body"] == "payload"
    # functions-framework's execution-id middleware still sets an id, a new one per request
    ids = [a["execution_id"] for a in answers]
    assert all(ids) and len(set(ids)) == len(ids)
    assert isinstance(outer.wsgi_app, WsgiMiddleware)
    inner = outer.wsgi_app.wsgi_app.__self__
    assert inner.name == "inner"
    # a path functions-framework answered itself is now the context app's to answer
    assert client.get("/favicon.ico").status_code == 404
