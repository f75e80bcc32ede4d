"""Source's domain rules in plain Python: repositories, commits, GitHub webhook deliveries.

- Signatures: GitHub signs each delivery with HMAC-SHA256 of the raw body under the hook's
  secret, sent as `X-Hub-Signature-256: sha256=<hex>`; `signature_valid` recomputes it and
  compares in constant time (`hmac.compare_digest`).
- Payloads: `parse_push`, `parse_pull_request` and `parse_rest_commit` read GitHub's documented
  shapes (push webhook, pull_request webhook, REST `GET /repos/{owner}/{repo}/commits`) into
  frozen facts; anything malformed raises `PayloadInvalid` (never a KeyError).
- A push names a ref: a branch (`refs/heads/...`) carries commits; a tag (`refs/tags/...`)
  records no commits (the tagged commit was recorded when its branch was pushed); a deletion
  (`deleted: true`, `after` all zeros) carries none. A forced push carries only the commits new
  to the branch; commits it rewrote away stay recorded (they were real) - docs/decisions/0026.
- Conventional Commits: `conventional(message)` parses the header `type(scope)!: description`
  (https://www.conventionalcommits.org/en/v1.0.0/), with `BREAKING CHANGE:` footers.
No I/O here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from shared.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    Unauthorized,
    Unprocessable,
)

Provider = Literal["github"]
PROVIDERS = ("github",)
DeliveryStatus = Literal["received", "processed", "ignored", "failed"]
DELIVERY_STATUSES = ("received", "processed", "ignored", "failed")
CommitSource = Literal["webhook", "poll", "manual"]
RefType = Literal["branch", "tag", "other"]

# Events the ingest turns into facts; every other event is stored and marked ignored.
ACCEPTED_EVENTS = frozenset({"push", "pull_request"})
PING = "ping"
# The types named by the Conventional Commits spec and the Angular convention it comes from.
CONVENTIONAL_TYPES = (
    "feat",
    "fix",
    "docs",
    "style",
    "refactor",
    "perf",
    "test",
    "build",
    "ci",
    "chore",
    "revert",
)
# GitHub caps webhook payloads at 25 MB ("GitHub will not deliver a payload" beyond it).
MAX_PAYLOAD_BYTES = 25 * 1024 * 1024
ZERO_SHA = "0" * 40

OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
SHA = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
SHA_ANY_CASE = r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"  # the request schema's (lower-cased)
BRANCH = re.compile(r"^[^\x00-\x20~^:?*\[\\]{1,255}$")
# The same rules as JSON Schema patterns (request schemas), without look-arounds: a name
# other than "." and ".."; a branch not starting with "/" or "-", not ending with "." or "/",
# and containing none of BRANCH_NEVER.
NAME_SCHEMA = (
    r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}|\.[A-Za-z0-9_-][A-Za-z0-9._-]{0,98}"
    r"|\.\.[A-Za-z0-9._-]{1,98})$"
)
_REF = r"\x00-\x20~^:?*\[\\"
BRANCH_SCHEMA = rf"^(?:[^{_REF}/.-]|[^{_REF}/-][^{_REF}]{{0,253}}[^{_REF}./])$"
BRANCH_NEVER = (r"\.\.", r"@\{", r"\.lock$")
_HEADER = re.compile(
    r"^(?P<type>[A-Za-z][A-Za-z0-9-]*)(?:\((?P<scope>[^()\r\n]*)\))?(?P<bang>!)?: (?P<desc>\S.*)$"
)
_BREAKING_FOOTER = re.compile(r"^BREAKING[ -]CHANGE: ", re.MULTILINE)
_REVERT = re.compile(r'^Revert "')


# --- errors ------------------------------------------------------------------------------


class SourceError(Problem):
    """Base of every error the source context raises (problem+json via shared.http)."""


class RepositoryNotFound(SourceError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such repository is tracked.")


class RepositoryExists(SourceError, Conflict):
    def __init__(self, full_name: str) -> None:
        super().__init__(f"The repository {full_name} is already tracked.")


class ConcurrentChange(SourceError, Conflict):
    def __init__(self) -> None:
        super().__init__("The repository changed meanwhile; read it again and retry.")


class CommitNotFound(SourceError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such commit is recorded.")


class CommitExists(SourceError, Conflict):
    def __init__(self, sha: str) -> None:
        super().__init__(f"The commit {sha} is already recorded for this repository.")


class AmbiguousCommit(SourceError, Conflict):
    def __init__(self, sha: str, repositories: list[str]) -> None:
        super().__init__(
            f"The commit {sha} is recorded in several repositories; add ?repository=owner/name.",
            repositories=repositories,
        )


class DeliveryNotFound(SourceError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such webhook delivery.")


class SignatureInvalid(SourceError, Unauthorized):
    """The delivery's signature is missing, malformed or does not match: nothing is stored."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'HMAC-SHA256 realm="github"'})


class PayloadInvalid(SourceError, Unprocessable):
    def __init__(self, detail: str) -> None:
        super().__init__(f"The GitHub payload is not valid: {detail}")


class DeliveryTooLarge(SourceError, PayloadTooLarge):
    def __init__(self, size: int | None) -> None:
        shown = f"{size} bytes" if size is not None else "The body"
        super().__init__(f"{shown} exceeds GitHub's cap of {MAX_PAYLOAD_BYTES} bytes.")


class IntakeBusy(SourceError, ServiceUnavailable):
    """This source-webhook instance already holds as many delivery bodies as its memory
    allows (decision 0048): nothing was read or stored."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "Too many large deliveries are being received at once; retry shortly.",
            headers={"Retry-After": str(retry_after_s)},
        )


class MonitorUnavailable(SourceError):
    status, title = 503, "Service Unavailable"


# --- repositories ------------------------------------------------------------------------


def full_name(owner: str, name: str) -> str:
    return f"{owner}/{name}"


def full_name_key(owner: str, name: str) -> str:
    """GitHub owner and repository names are case-insensitive: one key per repository."""
    return f"{owner}/{name}".lower()


def check_owner(value: str) -> str:
    if not OWNER.match(value):
        raise ValueError("a GitHub owner: letters, digits and hyphens, 1-39 characters")
    return value


def check_name(value: str) -> str:
    if not NAME.match(value) or value in (".", ".."):
        raise ValueError("a GitHub repository name: letters, digits, '.', '-', '_' (1-100)")
    return value


def check_branch(value: str) -> str:
    if not BRANCH.match(value) or value.startswith(("/", "-")) or value.endswith((".", "/")):
        raise ValueError("a git branch name")
    if ".." in value or "@{" in value or value.endswith(".lock"):
        raise ValueError("a git branch name")
    return value


def check_sha(value: str) -> str:
    lowered = value.lower()
    if not SHA.match(lowered):
        raise ValueError("a full commit SHA (40 or 64 hex digits)")
    return lowered


def webhook_secret_name(repository_id: str) -> str:
    """The name under which a repository's webhook secret is kept (shared.secrets)."""
    return f"source-webhook-{repository_id}"


# --- signatures --------------------------------------------------------------------------


def sign(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body` under `secret`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is `sha256=<hex>` of the HMAC-SHA256 of `body` under `secret`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


# --- conventional commits ----------------------------------------------------------------


@dataclass(frozen=True)
class Conventional:
    type: str
    scope: str | None
    breaking: bool
    description: str


def conventional(message: str) -> Conventional | None:
    """The Conventional Commits header of `message`, or None when it has none.

    The type is lower-cased (the spec treats it case-insensitively); a `Revert "..."` header
    (what `git revert` writes) counts as type `revert`."""
    first = message.split("\n", 1)[0].strip()
    breaking_footer = bool(_BREAKING_FOOTER.search(message))
    if _REVERT.match(first):
        return Conventional("revert", None, breaking_footer, first)
    m = _HEADER.match(first)
    if m is None:
        return None
    scope = (m.group("scope") or "").strip() or None
    return Conventional(
        type=m.group("type").lower(),
        scope=scope,
        breaking=bool(m.group("bang")) or breaking_footer,
        description=m.group("desc").strip(),
    )


# --- payload facts -----------------------------------------------------------------------


@dataclass(frozen=True)
class CommitFacts:
    sha: str
    message: str
    author_name: str
    author_email: str | None
    author_login: str | None
    committed_at: datetime
    url: str | None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    additions: int | None = None
    deletions: int | None = None
    distinct: bool = True
    files_known: bool = True

    @property
    def files_changed(self) -> int | None:
        if not self.files_known:
            return None
        return len(set(self.added) | set(self.removed) | set(self.modified))

    @property
    def conventional_type(self) -> str | None:
        parsed = conventional(self.message)
        return parsed.type if parsed else None


@dataclass(frozen=True)
class Push:
    repository: str  # full_name as GitHub sent it
    ref: str
    ref_type: RefType
    ref_name: str
    before: str
    after: str
    created: bool
    deleted: bool
    forced: bool
    pusher: str | None
    commits: tuple[CommitFacts, ...]

    @property
    def records_commits(self) -> bool:
        """Only a branch push that did not delete the branch brings commits to record."""
        return self.ref_type == "branch" and not self.deleted


@dataclass(frozen=True)
class PullRequest:
    repository: str
    action: str
    number: int
    title: str
    state: str
    merged: bool
    author_login: str | None
    head_ref: str
    head_sha: str
    base_ref: str


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadInvalid(f"`{where}` must be an object")
    return value


def _str(data: dict[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise PayloadInvalid(f"`{where}.{key}` must be a string")
    return value


def _files(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PayloadInvalid(f"`{where}.{key}` must be a list of paths")
    return tuple(value)


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 / RFC 3339 timestamp (GitHub sends both `Z` and offsets) as UTC."""
    if not isinstance(value, str):
        raise PayloadInvalid(f"`{where}` must be a timestamp")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadInvalid(f"`{where}` is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _sha(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise PayloadInvalid(f"`{where}` must be a commit SHA")
    try:
        return check_sha(value)
    except ValueError:
        raise PayloadInvalid(f"`{where}` is not a commit SHA") from None


def repository_of(payload: Any) -> str | None:
    """`repository.full_name` of a webhook payload, or None (org-level hooks send none)."""
    if not isinstance(payload, dict):
        return None
    repo = payload.get("repository")
    if isinstance(repo, dict) and isinstance(repo.get("full_name"), str):
        name: str = repo["full_name"]
        return name
    return None


def _push_commit(raw: Any, where: str) -> CommitFacts:
    c = _obj(raw, where)
    author = _obj(c.get("author") or {}, f"{where}.author")
    return CommitFacts(
        sha=_sha(c.get("id"), f"{where}.id"),
        message=_str(c, "message", where) or "",
        author_name=_str(author, "name", f"{where}.author") or "",
        author_email=_str(author, "email", f"{where}.author", optional=True),
        author_login=_str(author, "username", f"{where}.author", optional=True),
        committed_at=parse_time(c.get("timestamp"), f"{where}.timestamp"),
        url=_str(c, "url", where, optional=True),
        added=_files(c, "added", where),
        removed=_files(c, "removed", where),
        modified=_files(c, "modified", where),
        distinct=bool(c.get("distinct", True)),
    )


def _ref(ref: str) -> tuple[RefType, str]:
    if ref.startswith("refs/heads/"):
        return "branch", ref[len("refs/heads/") :]
    if ref.startswith("refs/tags/"):
        return "tag", ref[len("refs/tags/") :]
    return "other", ref


def parse_push(payload: Any) -> Push:
    """A `push` webhook payload (GitHub's documented shape) as facts."""
    p = _obj(payload, "payload")
    repo = repository_of(p)
    if repo is None:
        raise PayloadInvalid("`repository.full_name` is missing")
    ref = _str(p, "ref", "payload") or ""
    ref_type, ref_name = _ref(ref)
    deleted = bool(p.get("deleted", False))
    raw_commits = p.get("commits") or []
    if not isinstance(raw_commits, list):
        raise PayloadInvalid("`commits` must be a list")
    commits = tuple(_push_commit(c, f"commits[{i}]") for i, c in enumerate(raw_commits))
    pusher = p.get("pusher")
    return Push(
        repository=repo,
        ref=ref,
        ref_type=ref_type,
        ref_name=ref_name,
        before=_sha(p.get("before"), "before"),
        after=_sha(p.get("after"), "after"),
        created=bool(p.get("created", False)),
        deleted=deleted,
        forced=bool(p.get("forced", False)),
        pusher=pusher.get("name") if isinstance(pusher, dict) else None,
        commits=() if deleted else commits,
    )


def parse_pull_request(payload: Any) -> PullRequest:
    """A `pull_request` webhook payload as facts."""
    p = _obj(payload, "payload")
    repo = repository_of(p)
    if repo is None:
        raise PayloadInvalid("`repository.full_name` is missing")
    pr = _obj(p.get("pull_request"), "pull_request")
    number = p.get("number", pr.get("number"))
    if not isinstance(number, int) or isinstance(number, bool):
        raise PayloadInvalid("`number` must be an integer")
    head = _obj(pr.get("head"), "pull_request.head")
    base = _obj(pr.get("base"), "pull_request.base")
    user = pr.get("user")
    return PullRequest(
        repository=repo,
        action=_str(p, "action", "payload") or "",
        number=number,
        title=_str(pr, "title", "pull_request") or "",
        state=_str(pr, "state", "pull_request") or "",
        merged=bool(pr.get("merged", False)),
        author_login=user.get("login") if isinstance(user, dict) else None,
        head_ref=_str(head, "ref", "pull_request.head") or "",
        head_sha=_sha(head.get("sha"), "pull_request.head.sha"),
        base_ref=_str(base, "ref", "pull_request.base") or "",
    )


def parse_rest_commit(item: Any) -> CommitFacts:
    """One item of REST `GET /repos/{owner}/{repo}/commits` (or the single-commit answer,
    whose `stats` and `files` then give additions, deletions and the paths)."""
    c = _obj(item, "commit item")
    inner = _obj(c.get("commit"), "commit")
    author = _obj(inner.get("author") or {}, "commit.author")
    login_of = c.get("author")
    stats = c.get("stats") if isinstance(c.get("stats"), dict) else None
    files = c.get("files") if isinstance(c.get("files"), list) else None
    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []
    for f in files or []:
        if not isinstance(f, dict) or not isinstance(f.get("filename"), str):
            continue
        status = f.get("status")
        (added if status == "added" else removed if status == "removed" else modified).append(
            f["filename"]
        )
    return CommitFacts(
        sha=_sha(c.get("sha"), "sha"),
        message=_str(inner, "message", "commit") or "",
        author_name=_str(author, "name", "commit.author") or "",
        author_email=_str(author, "email", "commit.author", optional=True),
        author_login=login_of.get("login") if isinstance(login_of, dict) else None,
        committed_at=parse_time(author.get("date"), "commit.author.date"),
        url=_str(c, "html_url", "commit item", optional=True),
        added=tuple(added),
        removed=tuple(removed),
        modified=tuple(modified),
        additions=int(stats["additions"]) if stats and "additions" in stats else None,
        deletions=int(stats["deletions"]) if stats and "deletions" in stats else None,
        files_known=files is not None,
    )


def next_link(link_header: str | None) -> str | None:
    """The `rel="next"` URL of a GitHub `Link` header (REST pagination), or None."""
    if not link_header:
        return None
    for part in link_header.split(","):
        section = part.strip().split(";")
        if len(section) < 2:
            continue
        url = section[0].strip()
        if (
            url.startswith("<")
            and url.endswith(">")
            and any(s.strip() == 'rel="next"' for s in section[1:])
        ):
            return url[1:-1]
    return None


# --- domain objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class Repository:
    id: str
    owner: str
    name: str
    full_name_key: str
    provider: str
    default_branch: str
    polling: bool
    webhook_secret_name: str | None
    webhook_secret_version: str | None
    last_seen_sha: str | None
    last_seen_at: datetime | None
    poll_etag: str | None
    last_polled_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    @property
    def full_name(self) -> str:
        return full_name(self.owner, self.name)

    @property
    def has_webhook_secret(self) -> bool:
        return self.webhook_secret_name is not None and self.webhook_secret_version is not None

    @property
    def webhook_secret_ref(self) -> str | None:
        """Where the secret is kept (name and version), never its value."""
        if not self.has_webhook_secret:
            return None
        return f"{self.webhook_secret_name}@{self.webhook_secret_version}"


@dataclass(frozen=True)
class Commit:
    repository_id: str
    sha: str
    message: str
    author_name: str
    author_email: str | None
    author_login: str | None
    author_key: str
    branch: str | None
    committed_at: datetime
    recorded_at: datetime
    conventional_type: str | None
    conventional_scope: str | None
    breaking: bool
    added: tuple[str, ...]
    removed: tuple[str, ...]
    modified: tuple[str, ...]
    files_changed: int | None
    additions: int | None
    deletions: int | None
    url: str | None
    source: str
    delivery_id: str | None
    analysis_id: str | None = None
    analysis_status: str | None = None
    analysis_type: str | None = None
    risk_score: int | None = None
    risk_level: str | None = None
    secrets: int | None = None
    findings: int | None = None
    top_severity: str | None = None
    analysis_summary: str | None = None
    analyzed_at: datetime | None = None
    repository: str = ""  # owner/name, filled in by the service
    branches: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delivery:
    id: str
    event: str
    action: str | None
    repository: str | None
    repository_id: str | None
    status: str
    received_at: datetime
    processed_at: datetime | None
    size_bytes: int
    stored_bytes: int
    chunks: int
    commits_recorded: int
    attempts: int
    error: str | None
    summary: str | None


@dataclass(frozen=True)
class MonitorRun:
    id: str
    trigger: str
    scheduled_for: datetime | None
    started_at: datetime
    finished_at: datetime | None
    repositories_checked: int
    commits_found: int
    requests: int
    not_modified: int
    rate_limit_remaining: int | None
    rate_limit_reset: datetime | None
    stopped_early: bool
    error: str | None


def author_key(email: str | None, login: str | None, name: str) -> str:
    """Who a commit is by, for filters and statistics: the e-mail, else the login, else the
    name (lower-cased: GitHub treats e-mail addresses case-insensitively)."""
    return (email or login or name or "unknown").strip().lower()[:320]
