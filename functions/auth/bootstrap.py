"""Data every environment needs, run by `python -m shared.migrate` after the migrations:
the bootstrap admin's credential (idempotent)."""

from functions.auth import service


def run() -> None:
    service.ensure_bootstrap_admin()
