"""source: repositories, commits, commit_branches, refs, deliveries, monitor_runs, outbox

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from shared.events import create_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "source"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "repositories",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(39), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("full_name_key", sa.String(140), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("default_branch", sa.String(255), nullable=False),
        sa.Column("polling", sa.Boolean, nullable=False),
        sa.Column("webhook_secret_name", sa.String(200), nullable=True),
        sa.Column("webhook_secret_version", sa.String(64), nullable=True),
        sa.Column("last_seen_sha", sa.String(64), nullable=True),
        sa.Column("last_seen_at", TS, nullable=True),
        sa.Column("poll_etag", sa.String(200), nullable=True),
        sa.Column("last_polled_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    # GitHub names are case-insensitive: the unique key is the lower-cased owner/name, which
    # also makes two concurrent registrations of one repository fail (409 in the service).
    op.create_index(
        "ux_repositories_full_name", "repositories", ["full_name_key"], unique=True, schema=SCHEMA
    )
    op.create_index("ix_repositories_created", "repositories", ["created_at", "id"], schema=SCHEMA)

    op.create_table(
        "commits",
        sa.Column(
            "repository_id",
            sa.String(36),
            sa.ForeignKey(f"{SCHEMA}.repositories.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("author_name", sa.String(200), nullable=False),
        sa.Column("author_email", sa.String(320), nullable=True),
        sa.Column("author_login", sa.String(100), nullable=True),
        sa.Column("author_key", sa.String(320), nullable=False),
        sa.Column("branch", sa.String(255), nullable=True),
        sa.Column("committed_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("conventional_type", sa.String(40), nullable=True),
        sa.Column("conventional_scope", sa.String(100), nullable=True),
        sa.Column("breaking", sa.Boolean, nullable=False),
        sa.Column("added", sa.Text, nullable=False),
        sa.Column("removed", sa.Text, nullable=False),
        sa.Column("modified", sa.Text, nullable=False),
        sa.Column("files_changed", sa.Integer, nullable=True),
        sa.Column("additions", sa.Integer, nullable=True),
        sa.Column("deletions", sa.Integer, nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=True),
        # (repository, sha) is the idempotency of the ingest: webhook and poller, once.
        sa.PrimaryKeyConstraint("repository_id", "sha", name="pk_commits"),
        schema=SCHEMA,
    )
    # Newest first over everything, and the statistics: on PostgreSQL the aggregated columns
    # ride along (INCLUDE) so a time range is answered by an index-only scan.
    op.create_index(
        "ix_commits_time",
        "commits",
        ["committed_at", "repository_id", "sha"],
        schema=SCHEMA,
        postgresql_include=[
            "author_key",
            "conventional_type",
            "additions",
            "deletions",
            "files_changed",
        ],
    )
    op.create_index(
        "ix_commits_repository",
        "commits",
        ["repository_id", "committed_at", "sha"],
        schema=SCHEMA,
    )
    op.create_index("ix_commits_author", "commits", ["author_key", "committed_at"], schema=SCHEMA)
    op.create_index(
        "ix_commits_type", "commits", ["conventional_type", "committed_at"], schema=SCHEMA
    )
    op.create_index("ix_commits_sha", "commits", ["sha"], schema=SCHEMA)
    if op.get_bind().dialect.name == "postgresql":
        # message search: words, through the full-text index (no extension needed)
        op.execute(
            f"CREATE INDEX ix_commits_message_fts ON {SCHEMA}.commits "
            "USING gin (to_tsvector('simple', message))"
        )

    op.create_table(
        "commit_branches",
        sa.Column("repository_id", sa.String(36), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("branch", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("repository_id", "sha", "branch", name="pk_commit_branches"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_commit_branches_branch",
        "commit_branches",
        ["repository_id", "branch"],
        schema=SCHEMA,
    )

    op.create_table(
        "refs",
        sa.Column("repository_id", sa.String(36), nullable=False),
        sa.Column("ref", sa.String(300), nullable=False),
        sa.Column("ref_type", sa.String(10), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("forced_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("delivery_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("repository_id", "ref", name="pk_refs"),
        schema=SCHEMA,
    )

    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=True),
        sa.Column("repository", sa.String(140), nullable=True),
        sa.Column("repository_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("processed_at", TS, nullable=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("stored_bytes", sa.Integer, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("commits_recorded", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_deliveries_received", "deliveries", ["received_at", "id"], schema=SCHEMA
    )
    op.create_index(
        "ix_deliveries_status", "deliveries", ["status", "received_at", "id"], schema=SCHEMA
    )
    op.create_index("ix_deliveries_event", "deliveries", ["event", "received_at"], schema=SCHEMA)

    op.create_table(
        "monitor_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("trigger", sa.String(10), nullable=False),
        sa.Column("scheduled_for", TS, nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("repositories_checked", sa.Integer, nullable=False),
        sa.Column("commits_found", sa.Integer, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("not_modified", sa.Integer, nullable=False),
        sa.Column("rate_limit_remaining", sa.Integer, nullable=True),
        sa.Column("rate_limit_reset", TS, nullable=True),
        sa.Column("stopped_early", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        schema=SCHEMA,
    )
    op.create_index("ix_monitor_runs_started", "monitor_runs", ["started_at"], schema=SCHEMA)
    create_outbox(op, SCHEMA)


def downgrade() -> None:
    for table in (
        "outbox",
        "monitor_runs",
        "deliveries",
        "refs",
        "commit_branches",
        "commits",
        "repositories",
    ):
        op.drop_table(table, schema=SCHEMA)
