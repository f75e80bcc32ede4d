"""A small client of GitHub's REST API: list a branch's commits, get one commit.

Base URL from `settings().github_api_url` (https://api.github.com; a local fake in tests),
token (optional: unauthenticated calls get 60 requests an hour) from `shared.secrets` under
`settings().github_token_secret`. Conditional requests: the caller passes the ETag of the
last answer as `If-None-Match`; a 304 costs no rate limit. Every answer's
`X-RateLimit-Remaining` / `X-RateLimit-Reset` is kept on the client so the poller can stop
before GitHub refuses. Pagination follows the `Link: <...>; rel="next"` header. The token is
sent only to the configured base URL and never logged.
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from shared import logging as slog
from shared.config import settings

_log = slog.get_logger(__name__)
API_VERSION = "2022-11-28"
TIMEOUT_S = 15.0
_local = threading.local()


class GitHubError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"GitHub answered {status}: {detail}")
        self.status = status


class RateLimited(GitHubError):
    """GitHub refused for the rate limit (403/429 with no requests left)."""


@dataclass
class Answer:
    status: int
    items: Any
    etag: str | None
    next_url: str | None


@dataclass
class Client:
    base_url: str
    token: str | None = field(default=None, repr=False)
    requests: int = 0
    rate_remaining: int | None = None
    rate_reset: datetime | None = None

    def _session(self) -> Any:
        sess = getattr(_local, "github", None)
        if sess is None:
            sess = _local.github = requests.Session()
            sess.trust_env = False
        return sess

    def _headers(self, etag: str | None) -> dict[str, str]:
        out = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": "switchyard-source-monitor",
        }
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        if etag:
            out["If-None-Match"] = etag
        return out

    def _rate(self, resp: Any) -> None:
        remaining = resp.headers.get("X-RateLimit-Remaining")
        reset = resp.headers.get("X-RateLimit-Reset")
        if remaining is not None and remaining.strip().isdigit():
            self.rate_remaining = int(remaining)
        if reset is not None and reset.strip().isdigit():
            self.rate_reset = datetime.fromtimestamp(int(reset), UTC)

    def get(self, url: str, *, etag: str | None = None) -> Answer:
        from functions.source.model import next_link

        if not url.startswith(self.base_url + "/"):
            raise GitHubError(0, "refusing to follow a link away from the configured API")
        try:
            resp = self._session().get(
                url, headers=self._headers(etag), timeout=TIMEOUT_S, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise GitHubError(0, type(exc).__name__) from None
        self.requests += 1
        self._rate(resp)
        if resp.status_code == 304:
            return Answer(304, None, etag, None)
        if resp.status_code in (403, 429) and (
            self.rate_remaining == 0 or resp.headers.get("Retry-After")
        ):
            raise RateLimited(resp.status_code, "rate limit exceeded")
        if resp.status_code != 200:
            raise GitHubError(resp.status_code, resp.text[:200])
        try:
            items = resp.json()
        except ValueError:
            raise GitHubError(resp.status_code, "the answer is not JSON") from None
        return Answer(200, items, resp.headers.get("ETag"), next_link(resp.headers.get("Link")))

    def commits_url(
        self, owner: str, name: str, *, branch: str, since: datetime | None, per_page: int
    ) -> str:
        params: dict[str, str] = {"sha": branch, "per_page": str(per_page)}
        if since is not None:
            params["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        path = f"/repos/{urllib.parse.quote(owner)}/{urllib.parse.quote(name)}/commits"
        return f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"

    def commit_url(self, owner: str, name: str, sha: str) -> str:
        path = f"/repos/{urllib.parse.quote(owner)}/{urllib.parse.quote(name)}/commits/{sha}"
        return self.base_url + path


def client() -> Client:
    """A client with the configured base URL and token (none when no token is stored)."""
    s = settings()
    token = None
    try:
        from shared import secrets

        if secrets.exists(s.github_token_secret):
            token = secrets.get(s.github_token_secret)
    except Exception:
        _log.warning("the GitHub token could not be read; polling unauthenticated")
    return Client(base_url=s.github_api_url, token=token)
