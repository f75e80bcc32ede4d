"""Secrets that users hand the platform (passwords, private keys): stored, versioned, read back.

`put(name, value)` creates the secret when absent and adds a version (rotation is another
`put`), returning the version id; `get(name, version="latest")` reads a value; `versions(name)`
lists metadata only (`SecretVersion`: version, created_at, state); `delete(name)` removes the
secret and every version (a missing one is not an error); `exists(name)`. Names match
`^[A-Za-z0-9_-]{1,255}$` (Secret Manager's own rule).
Backends: in the cloud (`SWITCHYARD_ENV` dev/prod, or `SECRET_BACKEND=secretmanager`) the
Secret Manager REST API v1 through google-auth's `AuthorizedSession` (endpoint
`SECRETMANAGER_ENDPOINT`, so tests fake it at the HTTP boundary); locally (`local`/`test`, or
`SECRET_BACKEND=local`) an encrypted file store under `.local/secrets/`: one JSON file per
secret holding Fernet tokens, the key generated once in `.local/secrets/key` (mode 0600), a
lock file per secret so processes of one machine do not lose versions. It never logs or
returns a value except from `get`; it does not cache values (rotation is seen at once), does
not disable or destroy single versions, and the local store is for one machine, not a vault.
Errors are `shared.errors` classes: a bad name 422, an unknown secret or version 404, a
backend failure 503.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import clients
from shared.config import settings
from shared.errors import NotFound, ServiceUnavailable, Unprocessable

__all__ = [
    "NAME_PATTERN",
    "SecretBackendError",
    "SecretNameInvalid",
    "SecretNotFound",
    "SecretVersion",
    "delete",
    "exists",
    "get",
    "put",
    "versions",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_TIMEOUT_S = 10.0


class SecretNameInvalid(Unprocessable):
    """The name is not `^[A-Za-z0-9_-]{1,255}$`."""


class SecretNotFound(NotFound):
    """No such secret, or no such version of it."""


class SecretBackendError(ServiceUnavailable):
    """The secret store could not be reached or answered something unexpected."""


@dataclass(frozen=True)
class SecretVersion:
    """Metadata of one version: never its value."""

    version: str
    created_at: datetime
    state: str  # ENABLED | DISABLED | DESTROYED (Secret Manager's states)


def _check(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise SecretNameInvalid("A secret name is 1-255 letters, digits, '-' or '_'.")
    return name


def _cloud() -> bool:
    s = settings()
    chosen = s.secret_backend  # a backend name, not a secret
    if chosen == "secretmanager":
        return True
    if chosen == "local":
        return False
    return not s.is_local


def put(name: str, value: str) -> str:
    """Store `value` as a new version of `name` (created when absent); the version id."""
    _check(name)
    if not isinstance(value, str):
        raise TypeError("a secret value is a str")
    return _SecretManager().put(name, value) if _cloud() else _LocalStore().put(name, value)


def get(name: str, version: str = "latest") -> str:
    """The value of `version` (a version id or "latest") of `name`."""
    _check(name)
    if version != "latest" and not re.fullmatch(r"[0-9]{1,12}", str(version)):
        raise SecretNotFound("No such secret version.")
    return _SecretManager().get(name, version) if _cloud() else _LocalStore().get(name, version)


def versions(name: str) -> list[SecretVersion]:
    """Every version of `name`, newest first (metadata only)."""
    _check(name)
    return _SecretManager().versions(name) if _cloud() else _LocalStore().versions(name)


def delete(name: str) -> None:
    """Delete `name` and all its versions; nothing happens when it does not exist."""
    _check(name)
    if _cloud():
        _SecretManager().delete(name)
    else:
        _LocalStore().delete(name)


def exists(name: str) -> bool:
    _check(name)
    return _SecretManager().exists(name) if _cloud() else _LocalStore().exists(name)


# --- Secret Manager (REST v1) ----------------------------------------------------------------


def _version_id(resource: str) -> str:
    return resource.rsplit("/", 1)[-1]


def _time(raw: str | None) -> datetime:
    if not raw:
        return datetime.now(UTC)
    # RFC 3339 with up to nanoseconds; fromisoformat takes at most microseconds.
    raw = raw.replace("Z", "+00:00")
    m = re.match(r"^(.*?\.\d{6})\d*(.*)$", raw)
    if m:
        raw = m.group(1) + m.group(2)
    return datetime.fromisoformat(raw).astimezone(UTC)


class _SecretManager:
    def __init__(self) -> None:
        s = settings()
        self.base = f"{s.secretmanager_endpoint}/v1/projects/{s.project_id}/secrets"
        self.http = clients.google_api(s.secretmanager_endpoint)

    def _call(self, method: str, url: str, **kw: Any) -> Any:
        import requests

        try:
            resp = self.http.request(method, url, timeout=_TIMEOUT_S, **kw)
        except requests.RequestException as exc:
            raise SecretBackendError(
                f"Secret Manager is unreachable: {exc.__class__.__name__}."
            ) from None
        if resp.status_code == 404:
            raise SecretNotFound("No such secret or version.")
        if resp.status_code == 409:
            return None  # ALREADY_EXISTS: callers that create treat it as done
        if resp.status_code >= 300:
            raise SecretBackendError(f"Secret Manager answered {resp.status_code}.")
        try:
            return resp.json() if resp.content else {}
        except ValueError:
            raise SecretBackendError(
                "Secret Manager answered something that is not JSON."
            ) from None

    def put(self, name: str, value: str) -> str:
        self._call(
            "POST",
            self.base,
            params={"secretId": name},
            json={"replication": {"automatic": {}}, "labels": {"managed-by": "switchyard"}},
        )
        data = base64.b64encode(value.encode()).decode()
        out = self._call("POST", f"{self.base}/{name}:addVersion", json={"payload": {"data": data}})
        if not isinstance(out, dict) or "name" not in out:
            raise SecretBackendError("Secret Manager did not name the new version.")
        return _version_id(str(out["name"]))

    def get(self, name: str, version: str) -> str:
        out = self._call("GET", f"{self.base}/{name}/versions/{version}:access")
        try:
            return base64.b64decode(out["payload"]["data"]).decode()
        except (KeyError, TypeError, ValueError):
            raise SecretBackendError("Secret Manager answered without a payload.") from None

    def versions(self, name: str) -> list[SecretVersion]:
        found: list[SecretVersion] = []
        token = ""
        while True:
            params = {"pageSize": "100", **({"pageToken": token} if token else {})}
            out = self._call("GET", f"{self.base}/{name}/versions", params=params) or {}
            for v in out.get("versions", []):
                found.append(
                    SecretVersion(
                        version=_version_id(str(v.get("name", ""))),
                        created_at=_time(v.get("createTime")),
                        state=str(v.get("state", "STATE_UNSPECIFIED")),
                    )
                )
            token = out.get("nextPageToken") or ""
            if not token:
                break
        return sorted(
            found, key=lambda v: int(v.version) if v.version.isdigit() else 0, reverse=True
        )

    def delete(self, name: str) -> None:
        with contextlib.suppress(SecretNotFound):
            self._call("DELETE", f"{self.base}/{name}")

    def exists(self, name: str) -> bool:
        try:
            self._call("GET", f"{self.base}/{name}")
        except SecretNotFound:
            return False
        return True


# --- local encrypted file store --------------------------------------------------------------


class _LocalStore:
    def __init__(self) -> None:
        self.folder = settings().local_dir / "secrets"

    def _fernet(self) -> Any:
        from cryptography.fernet import Fernet

        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.folder / "key"
        if not path.exists():
            # Written whole under a private name, then linked: a reader never sees half a key,
            # and of two processes creating it at once exactly one link wins.
            tmp = self.folder / f".key.{os.getpid()}.{threading.get_ident()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return Fernet(path.read_bytes().strip())

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    @contextlib.contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.folder / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read(self, name: str) -> list[dict[str, Any]] | None:
        try:
            raw = self._path(name).read_text()
        except FileNotFoundError:
            return None
        doc = json.loads(raw)
        return list(doc.get("versions", []))

    def _write(self, name: str, entries: list[dict[str, Any]]) -> None:
        tmp = self.folder / f".{name}.tmp"  # under the lock: one writer at a time
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"name": name, "versions": entries}, f)
        tmp.replace(self._path(name))

    def put(self, name: str, value: str) -> str:
        token = self._fernet().encrypt(value.encode()).decode()
        with self._locked(name):
            entries = self._read(name) or []
            version = str(max((int(e["version"]) for e in entries), default=0) + 1)
            entries.append(
                {
                    "version": version,
                    "created_at": datetime.now(UTC).isoformat(),
                    "state": "ENABLED",
                    "data": token,
                }
            )
            self._write(name, entries)
        return version

    def _entries(self, name: str) -> list[dict[str, Any]]:
        entries = self._read(name)
        if entries is None:
            raise SecretNotFound("No such secret.")
        return entries

    def get(self, name: str, version: str) -> str:
        from cryptography.fernet import InvalidToken

        entries = [e for e in self._entries(name) if e.get("state") == "ENABLED"]
        if version == "latest":
            chosen = max(entries, key=lambda e: int(e["version"]), default=None)
        else:
            chosen = next((e for e in entries if e["version"] == str(version)), None)
        if chosen is None:
            raise SecretNotFound("No such secret version.")
        try:
            return str(self._fernet().decrypt(chosen["data"].encode()).decode())
        except InvalidToken:
            raise SecretBackendError(
                "A local secret does not decrypt with .local/secrets/key."
            ) from None

    def versions(self, name: str) -> list[SecretVersion]:
        return sorted(
            (
                SecretVersion(
                    version=str(e["version"]),
                    created_at=datetime.fromisoformat(e["created_at"]),
                    state=str(e["state"]),
                )
                for e in self._entries(name)
            ),
            key=lambda v: int(v.version),
            reverse=True,
        )

    def delete(self, name: str) -> None:
        with self._locked(name):
            self._path(name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return self._path(name).exists()
