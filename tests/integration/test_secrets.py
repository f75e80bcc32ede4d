"""shared.secrets on both backends: the local encrypted file store (real files, real Fernet),
and Secret Manager's REST API v1 faked at its HTTP boundary by a local server that speaks the
documented JSON shapes (secrets.create, addVersion, versions.access, versions.list, delete).
The first tests need no I/O (names, backend choice); they live here so the module name stays
unique across tests/unit and tests/integration."""

from __future__ import annotations

import base64
import json
import re
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from shared import secrets
from shared.config import settings
from tests.integration.support import configure


@pytest.mark.parametrize("name", ["a", "cred_1", "A-b_C", "x" * 255])
def test_valid_names(name):
    assert secrets._check(name) == name


@pytest.mark.parametrize("name", ["", "a.b", "a/b", "../x", "x" * 256, "ü", " a", None])
def test_invalid_names_are_422_before_any_io(name, monkeypatch, tmp_path):
    monkeypatch.setenv("SWITCHYARD_LOCAL_DIR", str(tmp_path / "never"))
    settings.cache_clear()
    for call in (
        lambda: secrets.put(name, "v"),
        lambda: secrets.get(name),
        lambda: secrets.delete(name),
    ):
        with pytest.raises(secrets.SecretNameInvalid) as err:
            call()
        assert err.value.status == 422
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("env", "backend", "cloud"),
    [
        ("local", "", False),
        ("test", "", False),
        ("dev", "", True),
        ("prod", "", True),
        ("local", "secretmanager", True),
        ("prod", "local", False),
    ],
)
def test_backend_choice(monkeypatch, env, backend, cloud):
    # a session's emulator fixtures may have set these; outside local/test they are refused
    for name in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHYARD_ENV", env)
    monkeypatch.setenv("SECRET_BACKEND", backend)
    settings.cache_clear()
    assert secrets._cloud() is cloud


def test_secret_manager_times_with_nanoseconds():
    t = secrets._time("2026-12-01T09:10:11.123456789Z")
    assert (t.microsecond, t.utcoffset().total_seconds()) == (123456, 0)
    assert secrets._time("2026-12-01T09:10:11Z").second == 11


class FakeSecretManager:
    """Secret Manager v1 as a local HTTP server: the request shapes it checks are the API's."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _error(self, code: int, status: str) -> None:
                self._send(code, {"error": {"code": code, "message": status, "status": status}})

            def _body(self) -> dict[str, Any] | None:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n)) if n else None

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                body = self._body()
                fake.requests.append((method, url.path, body))
                m = re.fullmatch(r"/v1/projects/([^/]+)/secrets(?:/([^/:]+))?(.*)", url.path)
                if not m:
                    return self._error(404, "NOT_FOUND")
                project, name, rest = m.groups()
                base = f"projects/{project}/secrets"
                if method == "POST" and name is None:
                    sid = parse_qs(url.query).get("secretId", [""])[0]
                    if not body or "replication" not in body:
                        return self._error(400, "INVALID_ARGUMENT")
                    if sid in fake.secrets:
                        return self._error(409, "ALREADY_EXISTS")
                    fake.secrets[sid] = []
                    return self._send(200, {"name": f"{base}/{sid}", "replication": {}})
                if name not in fake.secrets:
                    return self._error(404, "NOT_FOUND")
                versions = fake.secrets[name]
                if method == "POST" and rest == ":addVersion":
                    data = (body or {}).get("payload", {}).get("data")
                    if not isinstance(data, str):
                        return self._error(400, "INVALID_ARGUMENT")
                    v = {
                        "name": f"{base}/{name}/versions/{len(versions) + 1}",
                        "createTime": datetime.now(UTC).isoformat().replace("+00:00", "123Z"),
                        "state": "ENABLED",
                        "data": data,
                    }
                    versions.append(v)
                    return self._send(200, {k: v[k] for k in ("name", "createTime", "state")})
                if method == "GET" and rest == "":
                    return self._send(200, {"name": f"{base}/{name}"})
                if method == "DELETE" and rest == "":
                    del fake.secrets[name]
                    return self._send(200, {})
                if method == "GET" and rest == "/versions":
                    q = parse_qs(url.query)
                    size = int(q.get("pageSize", ["25"])[0])
                    start = int(q.get("pageToken", ["0"])[0])
                    chunk = list(reversed(versions))[start : start + size]
                    out: dict[str, Any] = {
                        "versions": [
                            {k: v[k] for k in ("name", "createTime", "state")} for v in chunk
                        ],
                        "totalSize": len(versions),
                    }
                    if start + size < len(versions):
                        out["nextPageToken"] = str(start + size)
                    return self._send(200, out)
                access = re.fullmatch(r"/versions/([^:]+):access", rest)
                if method == "GET" and access:
                    which = access.group(1)
                    chosen = versions[-1] if which == "latest" and versions else None
                    if which.isdigit() and 0 < int(which) <= len(versions):
                        chosen = versions[int(which) - 1]
                    if chosen is None:
                        return self._error(404, "NOT_FOUND")
                    return self._send(
                        200, {"name": chosen["name"], "payload": {"data": chosen["data"]}}
                    )
                return self._error(404, "NOT_FOUND")

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST")

            def do_DELETE(self) -> None:  # noqa: N802
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def fake_sm() -> Iterator[FakeSecretManager]:
    fake = FakeSecretManager()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(params=["local", "secretmanager"])
def backend(request, monkeypatch, tmp_path) -> str:
    env = {"SWITCHYARD_LOCAL_DIR": str(tmp_path), "SECRET_BACKEND": request.param}
    if request.param == "secretmanager":
        fake = request.getfixturevalue("fake_sm")
        env["SECRETMANAGER_ENDPOINT"] = fake.url
        env["GOOGLE_CLOUD_PROJECT"] = "proj-test"
    configure(monkeypatch, **env)
    return request.param


def test_put_get_rotate_versions_delete(backend):
    name = "cred-one"
    assert not secrets.exists(name)
    v1 = secrets.put(name, "first-value")
    v2 = secrets.put(name, "second-value")
    assert (v1, v2) == ("1", "2")
    assert secrets.exists(name)
    assert secrets.get(name) == "second-value"
    assert secrets.get(name, v1) == "first-value"
    listed = secrets.versions(name)
    assert [v.version for v in listed] == ["2", "1"]
    assert all(v.state == "ENABLED" and v.created_at.tzinfo is not None for v in listed)
    assert "second-value" not in repr(listed)
    secrets.delete(name)
    assert not secrets.exists(name)
    secrets.delete(name)  # idempotent
    with pytest.raises(secrets.SecretNotFound):
        secrets.get(name)
    with pytest.raises(secrets.SecretNotFound):
        secrets.versions(name)


def test_unknown_version_and_bad_names(backend):
    secrets.put("cred-two", "x")
    with pytest.raises(secrets.SecretNotFound):
        secrets.get("cred-two", "7")
    with pytest.raises(secrets.SecretNotFound):
        secrets.get("cred-two", "../key")
    for bad in ("", "a/b", "a b", "x" * 256, "../key", "é"):
        with pytest.raises(secrets.SecretNameInvalid) as err:
            secrets.put(bad, "v")
        assert err.value.status == 422


def test_values_keep_every_character(backend):
    value = "-----BEGIN OPENSSH PRIVATE KEY-----\nline\n\"quoted\" 'x' $HOME ü\n"
    secrets.put("key-pem", value)
    assert secrets.get("key-pem") == value


def test_local_store_encrypts_and_protects_the_key(monkeypatch, tmp_path):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path), SECRET_BACKEND="local")
    secrets.put("plain-check", "very-secret-password")
    folder = tmp_path / "secrets"
    key = folder / "key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    stored = (folder / "plain-check.json").read_text()
    assert "very-secret-password" not in stored
    assert stat.S_IMODE((folder / "plain-check.json").stat().st_mode) == 0o600
    # a second process (fresh settings) reads it with the same key file
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path), SECRET_BACKEND="local")
    assert secrets.get("plain-check") == "very-secret-password"


def test_local_store_keeps_concurrent_versions(monkeypatch, tmp_path):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path), SECRET_BACKEND="local")
    out: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: out.append(secrets.put("busy", f"v{i}")))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out, key=int) == [str(i) for i in range(1, 9)]
    assert len(secrets.versions("busy")) == 8


def test_secret_manager_request_shapes(monkeypatch, tmp_path, fake_sm):
    configure(
        monkeypatch,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        SECRET_BACKEND="secretmanager",
        SECRETMANAGER_ENDPOINT=fake_sm.url,
        GOOGLE_CLOUD_PROJECT="proj-shapes",
    )
    secrets.put("shape", "hello")
    create, add = fake_sm.requests[0], fake_sm.requests[1]
    assert create[:2] == ("POST", "/v1/projects/proj-shapes/secrets")
    assert create[2] == {"replication": {"automatic": {}}, "labels": {"managed-by": "switchyard"}}
    assert add[:2] == ("POST", "/v1/projects/proj-shapes/secrets/shape:addVersion")
    assert base64.b64decode(add[2]["payload"]["data"]) == b"hello"
    # nothing was written locally
    assert not (tmp_path / "secrets").exists()
    for i in range(105):  # more than one page of versions
        secrets.put("many", str(i))
    assert len(secrets.versions("many")) == 105


def test_secret_manager_unreachable_is_503(monkeypatch, tmp_path, free_port):
    configure(
        monkeypatch,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        SECRET_BACKEND="secretmanager",
        SECRETMANAGER_ENDPOINT=f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(secrets.SecretBackendError) as err:
        secrets.get("anything")
    assert err.value.status == 503
