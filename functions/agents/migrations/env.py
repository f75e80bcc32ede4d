"""Alembic environment: shared by every context."""

from shared.migrate import run_env

run_env()
