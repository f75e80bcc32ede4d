"""Automation's tables (schema `automation`) and the queries on them (PostgreSQL).

Targets carry their tags twice: as a JSON list on the row (what the API shows) and one
`target_tags` row per tag (what tag selection queries, indexed by tag). Credentials hold
metadata only; the secret lives in shared.secrets under `secret_name`. A job is a `jobs` row
pointing at its current `job_versions` row (the immutable definition a run records). A run is
claimed once: `claim_run` moves it from queued to running in one guarded UPDATE, so a
redelivered request finds nothing to claim. `schedule_fires` has the primary key (schedule_id,
due_at): the one run of a (schedule, due time). Lists are keyset pages with the index they
scan. JSON columns are Text (portable, compared whole).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from shared import db
from shared.db import as_dict, utc
from shared.events import outbox_table

SCHEMA = "automation"
metadata = db.metadata(SCHEMA)
TS = DateTime(timezone=True)

targets = Table(
    "targets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(10), nullable=False),
    Column("host", String(253), nullable=False),
    Column("port", Integer, nullable=False),
    Column("tags", Text, nullable=False),
    Column("options", Text, nullable=False),
    Column("credential_id", String(36), nullable=True),
    Column("internal", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_targets_created", "created_at", "id"),
    Index("ix_targets_credential", "credential_id"),
)

target_tags = Table(
    "target_tags",
    metadata,
    Column("target_id", String(36), ForeignKey(f"{SCHEMA}.targets.id", ondelete="CASCADE")),
    Column("tag", String(63), nullable=False),
    PrimaryKeyConstraint("target_id", "tag"),
    Index("ix_target_tags_tag", "tag", "target_id"),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("kind", String(20), nullable=False),
    Column("username", String(200), nullable=True),
    Column("secret_name", String(255), nullable=False),
    Column("current_version", String(20), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("rotated_at", TS, nullable=False),
    Column("created_by", String(200), nullable=False),
    Index("ix_credentials_created", "created_at", "id"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("deleted_at", TS, nullable=True),
    Index("ix_jobs_created", "created_at", "id"),
    # live job names are unique; a deleted job's name may be reused
    Index(
        "ux_jobs_name_live",
        "name",
        unique=True,
        postgresql_where=Column("deleted_at").is_(None),
        sqlite_where=Column("deleted_at").is_(None),
    ),
)

job_versions = Table(
    "job_versions",
    metadata,
    Column("job_id", String(36), ForeignKey(f"{SCHEMA}.jobs.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("definition", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(200), nullable=False),
    PrimaryKeyConstraint("job_id", "version"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Column("job_version", Integer, nullable=False),
    Column("status", String(12), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("schedule_id", String(36), nullable=True),
    Column("due_at", TS, nullable=True),
    Column("cancel_requested", Boolean, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("claimed_at", TS, nullable=True),
    Column("started_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    Column("heartbeat_at", TS, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_runs_created", "created_at", "id"),
    Index("ix_runs_job", "job_id", "created_at", "id"),
    Index("ix_runs_status", "status", "created_at", "id"),
    Index(
        "ix_runs_running_heartbeat",
        "heartbeat_at",
        postgresql_where=Column("status") == "running",
        sqlite_where=Column("status") == "running",
    ),
)

run_targets = Table(
    "run_targets",
    metadata,
    Column("run_id", String(36), ForeignKey(f"{SCHEMA}.runs.id"), nullable=False),
    Column("target_id", String(36), nullable=False),
    Column("target_name", String(100), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(12), nullable=False),
    Column("started_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("run_id", "target_id"),
)

run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", String(36), ForeignKey(f"{SCHEMA}.runs.id"), nullable=False),
    Column("target_id", String(36), nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("status", String(12), nullable=False),
    Column("exit_code", Integer, nullable=True),
    Column("started_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("run_id", "target_id", "step_index"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("job_id", String(36), nullable=False),
    Column("cron", String(100), nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("parameters", Text, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("catch_up", String(10), nullable=False),
    Column("last_due_at", TS, nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_schedules_created", "created_at", "id"),
    Index("ix_schedules_job", "job_id"),
    Index("ix_schedules_enabled", "enabled"),
)

schedule_fires = Table(
    "schedule_fires",
    metadata,
    Column("schedule_id", String(36), nullable=False),
    Column("due_at", TS, nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("created_at", TS, nullable=False),
    PrimaryKeyConstraint("schedule_id", "due_at"),
)

tag_grants = Table(
    "tag_grants",
    metadata,
    Column("subject", String(200), nullable=False),
    Column("tag", String(63), nullable=False),
    Column("granted_by", String(200), nullable=False),
    Column("granted_at", TS, nullable=False),
    PrimaryKeyConstraint("subject", "tag"),
)

outbox = outbox_table(metadata)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _page(stmt: Any, table: Table, after: tuple[datetime, str] | None, limit: int) -> Any:
    """Newest first by (created_at, id) after the keyset `after`."""
    c = table.c
    if after is not None:
        when, last = utc(after[0]), after[1]
        stmt = stmt.where(or_(c.created_at < when, and_(c.created_at == when, c.id < last)))
    return stmt.order_by(c.created_at.desc(), c.id.desc()).limit(limit)


# --- targets -------------------------------------------------------------------------------


def target_row(row: Any) -> dict[str, Any]:
    out = as_dict(row)
    out["tags"] = tuple(json.loads(out["tags"]))
    out["options"] = json.loads(out["options"])
    return out


def get_target(s: Session, target_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = select(targets).where(targets.c.id == target_id)
    row = s.execute(stmt.with_for_update() if lock else stmt).first()
    return target_row(row) if row is not None else None


def target_name_taken(s: Session, name: str, other_than: str | None = None) -> bool:
    stmt = select(targets.c.id).where(targets.c.name == name)
    if other_than:
        stmt = stmt.where(targets.c.id != other_than)
    return s.execute(stmt.limit(1)).first() is not None


def put_target(s: Session, values: dict[str, Any], *, new: bool) -> None:
    row = {**values, "tags": _json(list(values["tags"])), "options": _json(values["options"])}
    if new:
        s.execute(targets.insert().values(**row))
    else:
        s.execute(update(targets).where(targets.c.id == values["id"]).values(**row))
        s.execute(delete(target_tags).where(target_tags.c.target_id == values["id"]))
    if values["tags"]:
        s.execute(
            target_tags.insert(), [{"target_id": values["id"], "tag": t} for t in values["tags"]]
        )


def delete_target(s: Session, target_id: str) -> None:
    s.execute(delete(target_tags).where(target_tags.c.target_id == target_id))
    s.execute(delete(targets).where(targets.c.id == target_id))


def list_targets(
    s: Session, *, tag: str | None, kind: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    stmt = select(targets)
    if tag:
        stmt = stmt.where(
            targets.c.id.in_(select(target_tags.c.target_id).where(target_tags.c.tag == tag))
        )
    if kind:
        stmt = stmt.where(targets.c.kind == kind)
    return [target_row(r) for r in s.execute(_page(stmt, targets, after, limit)).all()]


def select_targets(s: Session, ids: list[str], tags: list[str], limit: int) -> list[dict[str, Any]]:
    """Targets whose id is in `ids` or that carry every tag of `tags` (by name)."""
    conds = []
    if ids:
        conds.append(targets.c.id.in_(ids))
    if tags:
        having_all = (
            select(target_tags.c.target_id)
            .where(target_tags.c.tag.in_(tags))
            .group_by(target_tags.c.target_id)
            .having(func.count() == len(set(tags)))
        )
        conds.append(targets.c.id.in_(having_all))
    if not conds:
        return []
    stmt = select(targets).where(or_(*conds)).order_by(targets.c.name).limit(limit)
    return [target_row(r) for r in s.execute(stmt).all()]


def targets_using_credential(s: Session, credential_id: str) -> list[str]:
    stmt = select(targets.c.name).where(targets.c.credential_id == credential_id).limit(10)
    return [r[0] for r in s.execute(stmt).all()]


# --- credentials ---------------------------------------------------------------------------


def get_credential(s: Session, credential_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = select(credentials).where(credentials.c.id == credential_id)
    row = s.execute(stmt.with_for_update() if lock else stmt).first()
    return as_dict(row) if row is not None else None


def credential_name_taken(s: Session, name: str) -> bool:
    stmt = select(credentials.c.id).where(credentials.c.name == name).limit(1)
    return s.execute(stmt).first() is not None


def insert_credential(s: Session, values: dict[str, Any]) -> None:
    s.execute(credentials.insert().values(**values))


def rotate_credential(s: Session, credential_id: str, version: str, at: datetime) -> None:
    s.execute(
        update(credentials)
        .where(credentials.c.id == credential_id)
        .values(current_version=version, rotated_at=at)
    )


def delete_credential(s: Session, credential_id: str) -> None:
    s.execute(delete(credentials).where(credentials.c.id == credential_id))


def list_credentials(
    s: Session, *, after: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    return [
        as_dict(r) for r in s.execute(_page(select(credentials), credentials, after, limit)).all()
    ]


# --- jobs ---------------------------------------------------------------------------------


def _job_select() -> Any:
    return select(
        jobs.c.id,
        jobs.c.version,
        jobs.c.created_at,
        jobs.c.updated_at,
        jobs.c.created_by,
        job_versions.c.definition,
    ).join(
        job_versions,
        and_(job_versions.c.job_id == jobs.c.id, job_versions.c.version == jobs.c.version),
    )


def job_row(row: Any) -> dict[str, Any]:
    out = as_dict(row)
    out["definition"] = json.loads(out["definition"])
    return out


def get_job(s: Session, job_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    if lock:
        locked = s.execute(
            select(jobs.c.id)
            .where(jobs.c.id == job_id, jobs.c.deleted_at.is_(None))
            .with_for_update()
        ).first()
        if locked is None:
            return None
    stmt = _job_select().where(jobs.c.id == job_id, jobs.c.deleted_at.is_(None))
    row = s.execute(stmt).first()
    return job_row(row) if row is not None else None


def job_version(s: Session, job_id: str, version: int) -> dict[str, Any] | None:
    row = s.execute(
        select(job_versions.c.definition).where(
            job_versions.c.job_id == job_id, job_versions.c.version == version
        )
    ).first()
    return json.loads(row[0]) if row is not None else None


def job_name_taken(s: Session, name: str, other_than: str | None = None) -> bool:
    stmt = select(jobs.c.id).where(jobs.c.name == name, jobs.c.deleted_at.is_(None))
    if other_than:
        stmt = stmt.where(jobs.c.id != other_than)
    return s.execute(stmt.limit(1)).first() is not None


def insert_job(
    s: Session, *, job_id: str, definition: dict[str, Any], at: datetime, actor: str
) -> None:
    s.execute(
        jobs.insert().values(
            id=job_id,
            name=definition["name"],
            version=1,
            created_at=at,
            updated_at=at,
            created_by=actor,
        )
    )
    s.execute(
        job_versions.insert().values(
            job_id=job_id, version=1, definition=_json(definition), created_at=at, created_by=actor
        )
    )


def new_job_version(
    s: Session, *, job_id: str, version: int, definition: dict[str, Any], at: datetime, actor: str
) -> None:
    s.execute(
        job_versions.insert().values(
            job_id=job_id,
            version=version,
            definition=_json(definition),
            created_at=at,
            created_by=actor,
        )
    )
    s.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(version=version, name=definition["name"], updated_at=at)
    )


def soft_delete_job(s: Session, job_id: str, at: datetime) -> None:
    s.execute(update(jobs).where(jobs.c.id == job_id).values(deleted_at=at))


def list_jobs(
    s: Session, *, after: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    stmt = _job_select().where(jobs.c.deleted_at.is_(None))
    return [job_row(r) for r in s.execute(_page(stmt, jobs, after, limit)).all()]


# --- runs ---------------------------------------------------------------------------------


def insert_run(
    s: Session, values: dict[str, Any], target_list: list[dict[str, Any]], step_names: list[str]
) -> None:
    s.execute(runs.insert().values(**{**values, "parameters": _json(values["parameters"])}))
    s.execute(
        run_targets.insert(),
        [
            {
                "run_id": values["id"],
                "target_id": t["id"],
                "target_name": t["name"],
                "position": i,
                "status": "pending",
            }
            for i, t in enumerate(target_list)
        ],
    )
    s.execute(
        run_steps.insert(),
        [
            {
                "run_id": values["id"],
                "target_id": t["id"],
                "step_index": i,
                "name": name,
                "status": "pending",
            }
            for t in target_list
            for i, name in enumerate(step_names)
        ],
    )


def run_row(row: Any) -> dict[str, Any]:
    out = as_dict(row)
    out["parameters"] = json.loads(out["parameters"])
    return out


def get_run(s: Session, run_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = select(runs).where(runs.c.id == run_id)
    row = s.execute(stmt.with_for_update() if lock else stmt).first()
    return run_row(row) if row is not None else None


def run_details(s: Session, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    t = s.execute(
        select(run_targets).where(run_targets.c.run_id == run_id).order_by(run_targets.c.position)
    ).all()
    st = s.execute(
        select(run_steps)
        .where(run_steps.c.run_id == run_id)
        .order_by(run_steps.c.target_id, run_steps.c.step_index)
    ).all()
    return [as_dict(r) for r in t], [as_dict(r) for r in st]


def list_runs(
    s: Session,
    *,
    job_id: str | None,
    status: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    stmt = select(runs)
    if job_id:
        stmt = stmt.where(runs.c.job_id == job_id)
    if status:
        stmt = stmt.where(runs.c.status == status)
    return [run_row(r) for r in s.execute(_page(stmt, runs, after, limit)).all()]


def claim_run(s: Session, run_id: str, at: datetime) -> bool:
    """queued -> running, once: True for the one caller that moved it."""
    result = s.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == "queued", runs.c.cancel_requested.is_(False))
        .values(status="running", claimed_at=at, started_at=at, heartbeat_at=at)
    )
    return cast(CursorResult[Any], result).rowcount == 1


def heartbeat(s: Session, run_id: str, at: datetime) -> bool:
    """Record that the runner is alive; True when a cancel was requested."""
    s.execute(update(runs).where(runs.c.id == run_id).values(heartbeat_at=at))
    return bool(s.execute(select(runs.c.cancel_requested).where(runs.c.id == run_id)).scalar())


def cancel_requested(s: Session, run_id: str) -> bool:
    return bool(s.execute(select(runs.c.cancel_requested).where(runs.c.id == run_id)).scalar())


def set_run(s: Session, run_id: str, **values: Any) -> None:
    s.execute(update(runs).where(runs.c.id == run_id).values(**values))


def set_run_target(s: Session, run_id: str, target_id: str, **values: Any) -> None:
    s.execute(
        update(run_targets)
        .where(run_targets.c.run_id == run_id, run_targets.c.target_id == target_id)
        .values(**values)
    )


def set_run_step(s: Session, run_id: str, target_id: str, index: int, **values: Any) -> None:
    s.execute(
        update(run_steps)
        .where(
            run_steps.c.run_id == run_id,
            run_steps.c.target_id == target_id,
            run_steps.c.step_index == index,
        )
        .values(**values)
    )


def set_run_step_if_open(s: Session, run_id: str, target_id: str, index: int, status: str) -> None:
    s.execute(
        update(run_steps)
        .where(
            run_steps.c.run_id == run_id,
            run_steps.c.target_id == target_id,
            run_steps.c.step_index == index,
            run_steps.c.status.in_(("pending", "running")),
        )
        .values(status=status)
    )


def finish_open_parts(s: Session, run_id: str, status: str, at: datetime) -> None:
    """Targets and steps still pending or running end with `status` (cancel, timeout, loss)."""
    step_status = "skipped" if status == "failed" else status
    s.execute(
        update(run_steps)
        .where(run_steps.c.run_id == run_id, run_steps.c.status.in_(("pending", "running")))
        .values(status=step_status, finished_at=at)
    )
    s.execute(
        update(run_targets)
        .where(run_targets.c.run_id == run_id, run_targets.c.status.in_(("pending", "running")))
        .values(status=status, finished_at=at)
    )


def target_counts(s: Session, run_id: str) -> dict[str, int]:
    rows = s.execute(
        select(run_targets.c.status, func.count())
        .where(run_targets.c.run_id == run_id)
        .group_by(run_targets.c.status)
    ).all()
    return {status: int(n) for status, n in rows}


def stale_runs(s: Session, before: datetime, limit: int = 100) -> list[str]:
    stmt = (
        select(runs.c.id)
        .where(runs.c.status == "running", runs.c.heartbeat_at < before)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [r[0] for r in s.execute(stmt).all()]


# --- schedules ----------------------------------------------------------------------------


def schedule_row(row: Any) -> dict[str, Any]:
    out = as_dict(row)
    out["parameters"] = json.loads(out["parameters"])
    return out


def get_schedule(s: Session, schedule_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = select(schedules).where(schedules.c.id == schedule_id)
    row = s.execute(stmt.with_for_update() if lock else stmt).first()
    return schedule_row(row) if row is not None else None


def put_schedule(s: Session, values: dict[str, Any], *, new: bool) -> None:
    row = {**values, "parameters": _json(values["parameters"])}
    if new:
        s.execute(schedules.insert().values(**row))
    else:
        s.execute(update(schedules).where(schedules.c.id == values["id"]).values(**row))


def delete_schedule(s: Session, schedule_id: str) -> None:
    s.execute(delete(schedules).where(schedules.c.id == schedule_id))


def list_schedules(
    s: Session, *, job_id: str | None, after: tuple[datetime, str] | None, limit: int
) -> list[dict[str, Any]]:
    stmt = select(schedules)
    if job_id:
        stmt = stmt.where(schedules.c.job_id == job_id)
    return [schedule_row(r) for r in s.execute(_page(stmt, schedules, after, limit)).all()]


def schedules_of_job(s: Session, job_id: str) -> int:
    stmt = select(func.count()).select_from(schedules).where(schedules.c.job_id == job_id)
    return int(s.execute(stmt).scalar() or 0)


def enabled_schedule_ids(s: Session) -> list[str]:
    return [
        r[0] for r in s.execute(select(schedules.c.id).where(schedules.c.enabled.is_(True))).all()
    ]


def record_fire(s: Session, schedule_id: str, due_at: datetime, run_id: str, at: datetime) -> bool:
    """Insert the (schedule, due time) key; False when that slot already started its run."""
    stmt = (
        db.insert(s, schedule_fires)
        .values(schedule_id=schedule_id, due_at=utc(due_at), run_id=run_id, created_at=at)
        .on_conflict_do_nothing(index_elements=["schedule_id", "due_at"])
    )
    return cast(CursorResult[Any], s.execute(stmt)).rowcount == 1


# --- grants -------------------------------------------------------------------------------


def grants_of(s: Session, subject: str) -> list[str]:
    stmt = (
        select(tag_grants.c.tag).where(tag_grants.c.subject == subject).order_by(tag_grants.c.tag)
    )
    return [r[0] for r in s.execute(stmt).all()]


def set_grants(s: Session, subject: str, tags: list[str], actor: str, at: datetime) -> None:
    s.execute(delete(tag_grants).where(tag_grants.c.subject == subject))
    if tags:
        s.execute(
            tag_grants.insert(),
            [{"subject": subject, "tag": t, "granted_by": actor, "granted_at": at} for t in tags],
        )


def list_grants(s: Session, *, after: str | None, limit: int) -> list[tuple[str, list[str]]]:
    subjects = select(tag_grants.c.subject).distinct().order_by(tag_grants.c.subject)
    if after:
        subjects = subjects.where(tag_grants.c.subject > after)
    names = [r[0] for r in s.execute(subjects.limit(limit)).all()]
    if not names:
        return []
    rows = s.execute(
        select(tag_grants.c.subject, tag_grants.c.tag)
        .where(tag_grants.c.subject.in_(names))
        .order_by(tag_grants.c.subject, tag_grants.c.tag)
    ).all()
    out: dict[str, list[str]] = {n: [] for n in names}
    for subject, tag in rows:
        out[subject].append(tag)
    return list(out.items())
