"""The outbox relay and its housekeeping: publish what is pending, report, purge.

`relay()` publishes rows of every context's outbox still pending after a grace period (rows
locked with SKIP LOCKED, so two relays never publish one row twice at once); one broken outbox
does not hold back the others. `outbox_stats()` reports each outbox (ops-api), and
`purge_published()` deletes published rows past their retention in short batches (ops-cleanup).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shared import db
from shared import logging as slog
from shared.events._outbox import _outbox_of, _publish_rows
from shared.events._schema import EventError, utcnow

_log = slog.get_logger("switchyard.events")
RELAY_GRACE = timedelta(seconds=10)


def relay(*, grace: timedelta = RELAY_GRACE, batch: int = 500) -> int:
    """Publish outbox rows of every context still pending after `grace`; returns the count."""
    from shared.manifests import catalog

    total = 0
    cutoff = utcnow() - grace
    failed: list[str] = []
    for schema in catalog().schemas:
        table = _outbox_of(schema)
        try:  # one broken outbox must not hold back the other contexts' events
            with db.transaction() as s:
                rows = s.execute(
                    select(table)
                    .where(table.c.published_at.is_(None), table.c.created_at <= cutoff)
                    .order_by(table.c.created_at)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                ).all()
                if rows:
                    total += _publish_rows(s, table, rows)
        except Exception:
            _log.exception("relay failed on the outbox of %s", schema)
            failed.append(schema)
    if failed:
        raise EventError(f"relay failed on {', '.join(failed)} (published {total} elsewhere)")
    if total:
        _log.info("relay published %d pending events", total)
    return total


@dataclass(frozen=True)
class OutboxStats:
    """The state of one context's outbox (ops-api's `GET /api/ops/outbox`)."""

    schema: str
    pending: int
    oldest_pending_at: datetime | None
    published: int
    failing: int  # pending rows whose last publish attempt failed


def outbox_stats() -> list[OutboxStats]:
    """Pending and published counts of every context's outbox (read-only), one per schema."""
    from sqlalchemy import case, func

    from shared.manifests import catalog

    out = []
    for schema in catalog().schemas:
        t = _outbox_of(schema)
        pending = t.c.published_at.is_(None)
        with db.engine().connect() as conn:
            row = conn.execute(
                select(
                    func.count().filter(pending),
                    func.min(case((pending, t.c.created_at))),
                    func.count().filter(t.c.published_at.is_not(None)),
                    func.count().filter(pending, t.c.last_error.is_not(None)),
                ).select_from(t)
            ).one()
        oldest = row[1]
        if isinstance(oldest, str):  # SQLite returns MIN over a CASE untyped
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        out.append(OutboxStats(schema, int(row[0]), oldest, int(row[2]), int(row[3])))
    return out


def purge_published(*, older_than: timedelta, batch: int = 1000) -> dict[str, int]:
    """Delete outbox rows published more than `older_than` ago, in every schema, `batch` rows
    per transaction (short locks); returns the count deleted per schema. Pending rows stay."""
    from sqlalchemy import delete

    from shared.manifests import catalog

    cutoff = utcnow() - older_than
    counts: dict[str, int] = {}
    failed: list[str] = []
    for schema in catalog().schemas:
        t = _outbox_of(schema)
        counts[schema] = 0
        try:
            while True:
                with db.transaction() as s:
                    ids = (
                        s.execute(
                            select(t.c.id)
                            .where(t.c.published_at.is_not(None), t.c.published_at < cutoff)
                            .limit(batch)
                        )
                        .scalars()
                        .all()
                    )
                    if ids:
                        s.execute(delete(t).where(t.c.id.in_(ids)))
                counts[schema] += len(ids)
                if len(ids) < batch:
                    break
        except Exception:
            _log.exception("purge failed on the outbox of %s", schema)
            failed.append(schema)
    if failed:
        raise EventError(f"purge failed on {', '.join(failed)} (deleted {counts})")
    return counts
