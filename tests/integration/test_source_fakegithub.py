"""A local fake of GitHub's REST API for the source monitor's tests (integration, e2e, bench),
and the tests that it speaks the documented shapes.

`FakeGitHub` serves `GET /repos/{owner}/{repo}/commits` (`sha`, `since`, `per_page`, `page`;
newest first; `Link: <...>; rel="next"` pagination; a weak `ETag` per answer and 304 for a
matching `If-None-Match`, which costs no rate limit, as GitHub documents) and
`GET /repos/{owner}/{repo}/commits/{sha}` (with `stats` and `files`), with
`X-RateLimit-Limit/Remaining/Reset/Used` on every answer and 403 with remaining 0 once the
budget is spent. It records every request (path, query, headers) for assertions.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests


def rest_commit(
    sha: str,
    message: str,
    when: datetime,
    *,
    login: str = "mona",
    name: str = "Mona Lisa",
    email: str = "mona@example.com",
    files: list[tuple[str, str, int, int]] | None = None,
    owner: str = "octo-org",
    repo: str = "hello-world",
) -> dict[str, Any]:
    """A commit as GitHub's REST API shows it; `files` = [(path, status, additions,
    deletions)] for the single-commit answer."""
    date = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    person = {"name": name, "email": email, "date": date}
    user = {"login": login, "id": 1, "type": "User", "site_admin": False}
    base = f"https://api.github.com/repos/{owner}/{repo}"
    out: dict[str, Any] = {
        "sha": sha,
        "node_id": "C_" + sha[:10],
        "commit": {
            "author": person,
            "committer": person,
            "message": message,
            "tree": {
                "sha": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
                "url": base + "/git/trees/x",
            },
            "url": f"{base}/git/commits/{sha}",
            "comment_count": 0,
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
            },
        },
        "url": f"{base}/commits/{sha}",
        "html_url": f"https://github.com/{owner}/{repo}/commit/{sha}",
        "comments_url": f"{base}/commits/{sha}/comments",
        "author": user,
        "committer": user,
        "parents": [],
        "_files": files or [],
    }
    return out


class FakeGitHub:
    def __init__(self, *, rate_limit: int = 5000, per_page_cap: int = 100) -> None:
        self.repos: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.rate_limit = rate_limit
        self.remaining = rate_limit
        self.reset = int(time.time()) + 3600
        self.per_page_cap = per_page_cap
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- data ----------------------------------------------------------------------------
    def add(self, owner: str, repo: str, *commits: dict[str, Any]) -> None:
        with self._lock:
            items = self.repos.setdefault((owner.lower(), repo.lower()), [])
            items.extend(commits)
            items.sort(key=lambda c: c["commit"]["author"]["date"], reverse=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- server --------------------------------------------------------------------------
    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
            "X-RateLimit-Used": str(self.rate_limit - self.remaining),
            "X-RateLimit-Resource": "core",
        }

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        params = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        with self._lock:
            self.requests.append(
                {"path": parsed.path, "query": params, "headers": dict(h.headers.items())}
            )
            parts = parsed.path.strip("/").split("/")
            if len(parts) < 4 or parts[0] != "repos" or parts[3] != "commits":
                self._send(h, 404, {"message": "Not Found"}, self._rate_headers())
                return
            key = (urllib.parse.unquote(parts[1]).lower(), urllib.parse.unquote(parts[2]).lower())
            if key not in self.repos:
                self._send(h, 404, {"message": "Not Found"}, self._rate_headers())
                return
            if len(parts) == 5:
                self._single(h, key, parts[4])
            else:
                self._list(h, key, params, parsed.path)

    def _charge(self, h: BaseHTTPRequestHandler) -> bool:
        if self.remaining <= 0:
            self._send(
                h,
                403,
                {
                    "message": "API rate limit exceeded",
                    "documentation_url": "https://docs.github.com/rest/rate-limit",
                },
                self._rate_headers(),
            )
            return False
        self.remaining -= 1
        return True

    def _list(
        self, h: BaseHTTPRequestHandler, key: tuple[str, str], params: dict[str, str], path: str
    ) -> None:
        items = self.repos[key]
        since = params.get("since")
        if since:
            items = [c for c in items if c["commit"]["author"]["date"] >= since]
        per_page = min(int(params.get("per_page", "30")), self.per_page_cap)
        page_no = int(params.get("page", "1"))
        chunk = items[(page_no - 1) * per_page : page_no * per_page]
        body = [{k: v for k, v in c.items() if k != "_files"} for c in chunk]
        etag = 'W/"' + hashlib.sha256(json.dumps(body).encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=60, s-maxage=60"}
        if h.headers.get("If-None-Match") == etag:
            self._send(h, 304, None, {**headers, **self._rate_headers()})  # free
            return
        if not self._charge(h):
            return
        if page_no * per_page < len(items):
            nxt = dict(params, page=str(page_no + 1))
            headers["Link"] = f'<{self.url}{path}?{urllib.parse.urlencode(nxt)}>; rel="next"'
        self._send(h, 200, body, {**headers, **self._rate_headers()})

    def _single(self, h: BaseHTTPRequestHandler, key: tuple[str, str], sha: str) -> None:
        match = [c for c in self.repos[key] if c["sha"] == sha]
        if not match:
            self._send(h, 422, {"message": "No commit found for SHA: " + sha}, self._rate_headers())
            return
        if not self._charge(h):
            return
        c = match[0]
        files = [
            {"filename": p, "status": s, "additions": a, "deletions": d, "changes": a + d}
            for p, s, a, d in c["_files"]
        ]
        body = {k: v for k, v in c.items() if k != "_files"} | {
            "stats": {
                "total": sum(f["changes"] for f in files),
                "additions": sum(f["additions"] for f in files),
                "deletions": sum(f["deletions"] for f in files),
            },
            "files": files,
        }
        self._send(h, 200, body, self._rate_headers())


# --- the fake's own tests --------------------------------------------------------------------


def test_fake_lists_pages_and_answers_304_for_a_matching_etag():
    when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    with FakeGitHub(rate_limit=10) as gh:
        gh.add(
            "o", "r", *(rest_commit(f"{i:040x}", f"c{i}", when.replace(minute=i)) for i in range(3))
        )
        first = requests.get(f"{gh.url}/repos/o/r/commits", params={"per_page": 2}, timeout=5)
        assert first.status_code == 200 and len(first.json()) == 2
        assert 'rel="next"' in first.headers["Link"]
        assert first.json()[0]["commit"]["message"] == "c2"  # newest first
        again = requests.get(
            f"{gh.url}/repos/o/r/commits",
            params={"per_page": 2},
            headers={"If-None-Match": first.headers["ETag"]},
            timeout=5,
        )
        assert again.status_code == 304
        assert (
            again.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"] == "9"
        )


def test_fake_refuses_once_the_rate_limit_is_spent():
    with FakeGitHub(rate_limit=1) as gh:
        gh.add("o", "r", rest_commit("a" * 40, "x", datetime.now(UTC)))
        assert requests.get(f"{gh.url}/repos/o/r/commits", timeout=5).status_code == 200
        spent = requests.get(f"{gh.url}/repos/o/r/commits/" + "a" * 40, timeout=5)
        assert spent.status_code == 403 and spent.headers["X-RateLimit-Remaining"] == "0"
