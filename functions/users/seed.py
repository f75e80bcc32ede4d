"""Demo users for `make seed`, added through the public API (idempotent: existing emails are
skipped). The demo password is for local stacks only."""

from __future__ import annotations

import requests

from shared.config import DEMO_PASSWORD  # documented demo credential, refused outside local

DEMO_USERS = [
    ("Maria Manager", "maria.manager@example.com", ["manager"]),
    ("Miguel Manager", "miguel.manager@example.com", ["manager", "operator"]),
    ("Olga Operator", "olga.operator@example.com", ["operator"]),
    ("Omar Operator", "omar.operator@example.com", ["operator"]),
    ("Vera Viewer", "vera.viewer@example.com", ["viewer"]),
    ("Ada Admin", "ada.admin@example.com", ["admin"]),
]


def run(http: requests.Session, base_url: str) -> None:
    for name, email, roles in DEMO_USERS:
        resp = http.post(
            f"{base_url}/api/users",
            timeout=30,
            json={"email": email, "name": name, "roles": roles, "password": DEMO_PASSWORD},
        )
        if resp.status_code == 409:
            continue
        resp.raise_for_status()
