"""The Cloud SQL Admin API (REST v1), the two calls a backup needs: `instances.export` (a
SQL dump of the database to a Cloud Storage object) and `operations.get` (its progress).

The instance is the one the deployments connect to (`INSTANCE_CONNECTION_NAME`,
`project:region:instance`), the database `DB_NAME`. Calls carry the deployment's Google
identity (application default credentials, scope cloud-platform); a local fake of the API
(`SQLADMIN_ENDPOINT` not on googleapis.com, local or test environment only) gets none.
Errors of the API are raised as `model.BackupFailed` with the API's own message.
"""

from __future__ import annotations

from typing import Any

from functions.ops import model
from shared import clients
from shared.config import settings
from shared.errors import Conflict

TIMEOUT_S = 30.0


class ExportBusy(model.OpsError, Conflict):
    """Cloud SQL runs one export (or other admin operation) at a time per instance."""


def instance() -> tuple[str, str]:
    """(project, instance) of the configured Cloud SQL instance."""
    parts = settings().instance_connection_name.split(":")
    if len(parts) != 3 or not all(parts):
        raise model.BackupFailed("INSTANCE_CONNECTION_NAME is not project:region:instance.")
    return parts[0], parts[2]


def _call(method: str, path: str, **kw: Any) -> dict[str, Any]:
    import requests

    endpoint = settings().sqladmin_endpoint.rstrip("/")
    try:
        resp = clients.google_api(endpoint).request(
            method, endpoint + path, timeout=TIMEOUT_S, **kw
        )
    except requests.RequestException as exc:
        raise model.BackupFailed(
            f"The Cloud SQL Admin API is unreachable ({exc.__class__.__name__})."
        ) from None
    try:
        body: Any = resp.json()
    except ValueError:
        body = {}
    if not resp.ok:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        detail = f"Cloud SQL Admin answered {resp.status_code}: {message or resp.reason}"
        raise (ExportBusy if resp.status_code == 409 else model.BackupFailed)(detail)
    return body if isinstance(body, dict) else {}


def export(uri: str) -> dict[str, Any]:
    """Start exporting the database to `uri` (gs://bucket/object.sql.gz); the Operation."""
    project, name = instance()
    body = {
        "exportContext": {
            "kind": "sql#exportContext",
            "fileType": "SQL",
            "uri": uri,
            "databases": [settings().db_name],
        }
    }
    return _call("POST", f"/v1/projects/{project}/instances/{name}/export", json=body)


def operation(name: str) -> dict[str, Any]:
    """The Operation `name` (status PENDING, RUNNING or DONE; `error` when it failed)."""
    project, _instance = instance()
    return _call("GET", f"/v1/projects/{project}/operations/{name}")
