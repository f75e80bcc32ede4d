"""Data every environment needs, run by `python -m shared.migrate` after the migrations:
the bootstrap admin user (idempotent; auth's bootstrap creates its credential)."""

from functions.users import service


def run() -> None:
    service.ensure_bootstrap_admin()
