"""The console's session endpoints through the gateway, against the real auth-api (the stack):
the refresh token only ever travels in an HttpOnly cookie, rotation, reuse and logout."""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def web(stack):
    return stack.gateway_url


def same_origin(base: str) -> dict[str, str]:
    return {"X-Switchyard-CSRF": "1", "Origin": base, "Sec-Fetch-Site": "same-origin"}


def set_cookie(resp: requests.Response) -> str:
    (value,) = [v for k, v in resp.raw.headers.items() if k.lower() == "set-cookie"]
    return value


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def login(web: str, stack) -> requests.Response:
    resp = requests.post(
        f"{web}/session/login",
        headers=same_origin(web),
        timeout=30,
        json={"email": stack.admin_email, "password": stack.admin_password},
    )
    assert resp.status_code == 200, resp.text
    return resp


def refresh(web: str, token: str) -> requests.Response:
    return requests.post(
        f"{web}/session/refresh",
        timeout=30,
        headers={**same_origin(web), "Cookie": f"sy_refresh={token}"},
    )


def test_login_puts_the_refresh_token_only_in_an_httponly_cookie(web, stack):
    resp = login(web, stack)
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["expires_in"] > 60
    header = set_cookie(resp)
    attrs = [a.strip().lower() for a in header.split(";")]
    assert header.startswith("sy_refresh=") and len(cookie_value(header)) > 20
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/session" in attrs
    assert "secure" not in attrs  # local stack over http; Secure outside local
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    # the access token works on the API
    me = requests.get(
        f"{web}/api/users/me",
        timeout=30,
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert me.status_code == 200 and me.json()["email"] == stack.admin_email


def test_refresh_rotates_the_cookie_and_reuse_ends_the_session(web, stack):
    first = cookie_value(set_cookie(login(web, stack)))
    resp = refresh(web, first)
    assert resp.status_code == 200, resp.text
    second = cookie_value(set_cookie(resp))
    assert second != first and resp.json()["access_token"]
    # the used cookie again: auth sees token theft and revokes the family; the console
    # answers 401 and clears the cookie
    stolen = refresh(web, first)
    assert stolen.status_code == 401
    assert stolen.headers["Content-Type"].startswith("application/problem+json")
    assert "Max-Age=0" in set_cookie(stolen) or "1970" in set_cookie(stolen)
    assert refresh(web, second).status_code == 401


def test_logout_revokes_the_session_and_clears_the_cookie(web, stack):
    resp = login(web, stack)
    token, rt = resp.json()["access_token"], cookie_value(set_cookie(resp))
    out = requests.post(
        f"{web}/session/logout",
        timeout=30,
        headers={
            **same_origin(web),
            "Cookie": f"sy_refresh={rt}",
            "Authorization": f"Bearer {token}",
        },
    )
    assert out.status_code == 204, out.text
    assert "Max-Age=0" in set_cookie(out) or "1970" in set_cookie(out)
    assert refresh(web, rt).status_code == 401
    deadline = time.monotonic() + 10
    while (
        requests.get(
            f"{web}/api/users/me", timeout=30, headers={"Authorization": f"Bearer {token}"}
        ).status_code
        != 401
    ):
        assert time.monotonic() < deadline, "the access token still works after logout"
        time.sleep(0.3)


def test_logout_without_an_access_token_still_revokes(web, stack):
    rt = cookie_value(set_cookie(login(web, stack)))
    out = requests.post(
        f"{web}/session/logout",
        timeout=30,
        headers={**same_origin(web), "Cookie": f"sy_refresh={rt}"},
    )
    assert out.status_code == 204, out.text
    assert refresh(web, rt).status_code == 401


def test_auth_problems_are_passed_through(web):
    resp = requests.post(
        f"{web}/session/login",
        headers=same_origin(web),
        timeout=30,
        json={
            "email": f"nobody-{uuid.uuid4().hex[:8]}@example.com",
            "password": "not-the-password",
        },
    )
    assert resp.status_code == 401
    problem = resp.json()
    assert problem["status"] == 401 and problem["detail"] and problem["request_id"]
    assert "set-cookie" not in {k.lower() for k in resp.headers}


def test_cross_site_session_posts_are_refused_at_the_gateway(web, stack):
    resp = requests.post(
        f"{web}/session/login",
        timeout=30,
        headers={"X-Switchyard-CSRF": "1", "Origin": "https://evil.example"},
        json={"email": stack.admin_email, "password": stack.admin_password},
    )
    assert resp.status_code == 403
    assert "set-cookie" not in {k.lower() for k in resp.headers}


def test_console_is_served_at_the_root_but_never_for_api_paths(web):
    shell = requests.get(f"{web}/work-orders", timeout=30)
    assert shell.status_code == 200 and shell.headers["Content-Type"].startswith("text/html")
    assert shell.headers["Cache-Control"] == "no-store"
    assert shell.headers["X-Frame-Options"] == "DENY"
    api = requests.get(f"{web}/api/nothing-here", timeout=30)
    assert api.status_code in (401, 404)
    assert api.headers["Content-Type"].startswith("application/problem+json")
    assert requests.get(f"{web}/_app/missing.js", timeout=30).status_code == 404
    version = re.search(r"/_app/js/app\.js\?v=([0-9a-f]+)", shell.text)[1]
    asset = requests.get(f"{web}/_app/js/app.js?v={version}", timeout=30)
    assert asset.status_code == 200
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert asset.headers["Content-Security-Policy"] == shell.headers["Content-Security-Policy"]
