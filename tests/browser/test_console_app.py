"""console-web without the stack (Flask test client): headers, the shell, static files, and the
session endpoints' CSRF guard, which answers before auth-api is ever called."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from functions.console import shell
from functions.console.api import CSP, app, cookie_name

STATIC = Path(shell.STATIC)
SAME = {"X-Switchyard-CSRF": "1", "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def client():
    return app.test_client()


def assert_guarded(resp) -> None:
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_shell_is_served_for_every_page_path_with_no_store(client):
    version = shell.bundle().version
    for path in ("/", "/work-orders", "/deep/link/page"):
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert resp.mimetype == "text/html"
        assert resp.headers["Cache-Control"] == "no-store"
        assert_guarded(resp)
        html = resp.get_data(as_text=True)
        assert f"/_app/js/app.js?v={version}" in html
        assert "{{" not in html


def test_shell_has_no_inline_script_or_style():
    html = shell.bundle().shell.decode()
    assert "<style" not in html and " style=" not in html
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert re.findall(r"<script\b[^>]*>([^<]*)</script>", html) == [""] * html.count("<script")


def test_our_scripts_never_write_markup_or_inline_styles():
    for path in (STATIC / "js").rglob("*.js"):
        source = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
        source = re.sub(r"(^|\s)//.*$", "", source, flags=re.M)  # comments may name them
        for banned in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "setAttribute('style'",
            'setAttribute("style"',
            "localStorage",
            "sessionStorage",
            "eval(",
        ):
            assert banned not in source, f"{path.name} uses {banned}"


def test_static_files_are_immutable_with_the_current_version(client):
    version = shell.bundle().version
    resp = client.get(f"/_app/js/app.js?v={version}")
    assert resp.status_code == 200
    assert resp.content_type == "text/javascript; charset=utf-8"
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert_guarded(resp)
    body = resp.get_data(as_text=True)
    # relative module imports carry the version too, so the module graph is one version
    assert f"from './session.js?v={version}'" in body
    assert "from './session.js'" not in body
    etag = resp.headers["ETag"]
    again = client.get(f"/_app/js/app.js?v={version}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    stale = client.get("/_app/js/app.js?v=old")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"
    css = client.get(f"/_app/vendor/bootstrap/bootstrap.min.css?v={version}")
    assert css.status_code == 200 and css.mimetype == "text/css"


@pytest.mark.parametrize(
    "path",
    [
        "/_app/nope.js",
        "/_app/js/../../api.py",
        "/_app/vendor/bootstrap/LICENSE",
        "/_app/",
        "/static/js/app.js",
        "/session/login",
        "/session/other",
    ],
)
def test_misses_are_404_problems_not_the_shell(client, path):
    resp = client.get(path)
    assert resp.status_code == 404, path
    assert resp.mimetype == "application/problem+json"
    assert_guarded(resp)


def test_api_paths_are_never_the_shell(client):
    # the gateway never routes /api here; called directly, they are not public either
    resp = client.get("/api/work-orders")
    assert resp.status_code == 401 and resp.mimetype == "application/problem+json"
    assert_guarded(resp)


def test_pages_only_answer_get(client):
    resp = client.post("/work-orders")
    assert resp.status_code == 405
    assert_guarded(resp)


def test_vendored_assets_come_with_their_licenses():
    for folder in ("bootstrap", "chartjs"):
        names = {p.name for p in (STATIC / "vendor" / folder).iterdir()}
        assert any(n.startswith("LICENSE") for n in names), folder
    assert (STATIC / "vendor" / "chartjs" / "chart.umd.min.js").exists()
    assert (STATIC / "vendor" / "bootstrap" / "bootstrap.bundle.min.js").exists()


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no custom header: a plain form post from anywhere
        {"X-Switchyard-CSRF": "1"},  # neither Origin nor Sec-Fetch-Site
        {"X-Switchyard-CSRF": "1", "Origin": "https://evil.example"},
        {"X-Switchyard-CSRF": "1", "Origin": "null"},
        {"X-Switchyard-CSRF": "1", "Sec-Fetch-Site": "cross-site"},
        {"X-Switchyard-CSRF": "1", "Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
        {"X-Switchyard-CSRF": "0", "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    ],
)
@pytest.mark.parametrize("path", ["/session/login", "/session/refresh", "/session/logout"])
def test_session_posts_need_the_header_and_the_same_origin(client, path, headers):
    client.set_cookie(cookie_name(), "some-refresh-token", path="/session")
    resp = client.post(path, json={"email": "a@b.c", "password": "x"}, headers=headers)
    assert resp.status_code == 403, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["detail"]
    assert_guarded(resp)


def test_origin_is_checked_against_the_gateway_forwarded_host(client):
    behind = {
        "X-Switchyard-CSRF": "1",
        "Origin": "https://console.example",
        "X-Forwarded-Host": "console.example",
        "X-Forwarded-Proto": "https",
    }
    # passes the guard (then needs a session cookie: 401, not 403)
    assert client.post("/session/refresh", headers=behind).status_code == 401
    wrong = {**behind, "X-Forwarded-Proto": "http"}
    assert client.post("/session/refresh", headers=wrong).status_code == 403


def test_session_endpoints_without_a_cookie(client):
    resp = client.post("/session/refresh", headers=SAME)
    assert resp.status_code == 401
    assert resp.get_json()["detail"] == "You are not signed in."
    out = client.post("/session/logout", headers=SAME)
    assert out.status_code == 204
    cleared = out.headers["Set-Cookie"]
    assert cleared.startswith(f"{cookie_name()}=;") and "Path=/session" in cleared
    assert "Max-Age=0" in cleared or "Expires=Thu, 01 Jan 1970" in cleared


def test_login_body_is_validated_after_the_guard(client):
    resp = client.post("/session/login", json={"email": "a@b.c"}, headers=SAME)
    assert resp.status_code == 422
    assert any(e["field"] == "password" for e in resp.get_json()["errors"])
    resp = client.post("/session/login", data="x", headers=SAME)
    assert resp.status_code == 415
