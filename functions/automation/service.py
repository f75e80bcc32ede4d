"""Automation's use cases: targets, credentials, jobs, runs, schedules, tag grants, the tick.

One transaction each; every change emits its event in the same transaction (outbox).
Credential values go to shared.secrets only (never SQL, logs, events or answers). A run is
created queued with its targets and steps resolved at request time and `job.run.requested`
emitted; the runner (`runner.py`) claims and executes it once. Cancelling a queued run
finishes it at once; a running one is flagged and its runner stops it within seconds. The tick
starts at most one run per (schedule, due slot): `schedule_fires` has that primary key and the
schedule row is locked while its slot is decided, so a replayed or concurrent tick starts
nothing twice; it also fails runs whose runner stopped beating (docs/decisions/0022).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from functions.automation import model, store
from functions.automation.events import (
    CredentialChanged,
    GrantChanged,
    JobChanged,
    JobRunFinished,
    JobRunRequested,
    ScheduleChanged,
    TargetChanged,
)
from shared import db
from shared import secrets as vault
from shared.events import emit, rfc3339

RUNNER_LOST_AFTER = timedelta(minutes=2)


def _now() -> datetime:
    return datetime.now(UTC)


# --- targets -------------------------------------------------------------------------------


def _target(row: dict[str, Any]) -> model.Target:
    return model.Target(**{k: row[k] for k in model.Target.__dataclass_fields__})


def create_target(data: dict[str, Any], *, actor: str) -> model.Target:
    now = _now()
    tags = model.normalize_tags(data.get("tags") or [])
    options = dict(data.get("options") or {})
    model.check_options(data["kind"], options)
    values = {
        "id": str(uuid.uuid4()),
        "name": data["name"],
        "kind": data["kind"],
        "host": data["host"],
        "port": data.get("port") or model.DEFAULT_PORTS[data["kind"]],
        "tags": tags,
        "options": options,
        "credential_id": data.get("credential_id"),
        "internal": bool(data.get("internal", False)),
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    with db.transaction() as s:
        if store.target_name_taken(s, values["name"]):
            raise model.NameTaken("target", values["name"])
        if values["credential_id"] and store.get_credential(s, values["credential_id"]) is None:
            raise model.UnknownReference("credential_id", "credential")
        try:
            store.put_target(s, values, new=True)
            s.flush()
        except IntegrityError:
            raise model.NameTaken("target", values["name"]) from None
        emit(s, TargetChanged(id=values["id"], name=values["name"], action="created"), actor=actor)
    return _target(values)


def get_target(target_id: str) -> model.Target:
    with db.transaction() as s:
        row = store.get_target(s, target_id)
    if row is None:
        raise model.TargetNotFound()
    return _target(row)


def list_targets(
    *, tag: str | None, kind: str | None, after: Any, limit: int
) -> list[model.Target]:
    with db.transaction() as s:
        return [
            _target(r) for r in store.list_targets(s, tag=tag, kind=kind, after=after, limit=limit)
        ]


def update_target(
    target_id: str, changes: dict[str, Any], *, expected_version: int | None, actor: str
) -> model.Target:
    with db.transaction() as s:
        row = store.get_target(s, target_id, lock=True)
        if row is None:
            raise model.TargetNotFound()
        if expected_version is not None and expected_version != row["version"]:
            raise model.ConcurrentChange("target")
        wanted = {**row, **changes}
        if "tags" in changes:
            wanted["tags"] = model.normalize_tags(changes["tags"] or [])
        if "kind" in changes and "port" not in changes:
            wanted["port"] = model.DEFAULT_PORTS[wanted["kind"]]
        model.check_options(wanted["kind"], wanted["options"])
        if wanted["name"] != row["name"] and store.target_name_taken(s, wanted["name"], target_id):
            raise model.NameTaken("target", wanted["name"])
        if (
            changes.get("credential_id")
            and store.get_credential(s, changes["credential_id"]) is None
        ):
            raise model.UnknownReference("credential_id", "credential")
        wanted.update(updated_at=_now(), version=row["version"] + 1)
        store.put_target(s, wanted, new=False)
        emit(s, TargetChanged(id=target_id, name=wanted["name"], action="updated"), actor=actor)
    return _target(wanted)


def delete_target(target_id: str, *, actor: str) -> None:
    with db.transaction() as s:
        row = store.get_target(s, target_id, lock=True)
        if row is None:
            raise model.TargetNotFound()
        store.delete_target(s, target_id)
        emit(s, TargetChanged(id=target_id, name=row["name"], action="deleted"), actor=actor)


def secret_of(credential_id: str | None) -> Any:
    """The credential's current value as a transports.Secret (None without a credential)."""
    from functions.automation.transports import Secret

    if not credential_id:
        return None
    with db.transaction() as s:
        row = store.get_credential(s, credential_id)
    if row is None:
        return None
    return Secret(
        row["kind"], vault.get(row["secret_name"], row["current_version"]), row["username"]
    )


def test_target(target_id: str) -> dict[str, Any]:
    """Connect to the target as a run would; which step failed, in plain words."""
    from functions.automation import transports
    from shared import outbound

    target = get_target(target_id)
    steps: list[dict[str, Any]] = []
    result: dict[str, Any] = {"target_id": target_id, "ok": False, "steps": steps}
    if target.kind == "http":
        scheme = str(target.options.get("scheme") or "https")
        try:
            resp = outbound.request(
                "HEAD",
                f"{scheme}://{target.host}:{target.port}/",
                allow_internal=target.internal,
                timeout=transports.CONNECT_TIMEOUT_S,
            )
        except outbound.OutboundRefused as exc:
            steps.append({"stage": "policy", "ok": False, "message": str(exc.detail)})
            return result
        except outbound.OutboundFailed as exc:
            steps.append({"stage": "tcp", "ok": False, "message": str(exc.detail)})
            return result
        steps.append({"stage": "http", "ok": True, "message": f"Answered HTTP {resp.status_code}."})
        result["ok"] = True
        return result
    try:
        addresses = transports.resolve(target.host, target.port)
        steps.append(
            {"stage": "dns", "ok": True, "message": f"{target.host} is {', '.join(addresses)}."}
        )
        transports.tcp_connect(target.host, target.port).close()
        steps.append(
            {"stage": "tcp", "ok": True, "message": f"Port {target.port} accepts connections."}
        )
        session = transports.open_session(target, secret_of(target.credential_id))
        session.close()
        if target.kind == "ssh":
            steps.append(
                {
                    "stage": "host_key",
                    "ok": True,
                    "message": "The host key matches the pinned fingerprint.",
                }
            )
        steps.append({"stage": "auth", "ok": True, "message": "Logged in with the credential."})
        result["ok"] = True
    except transports.ConnectError as exc:
        steps.append({"stage": exc.stage, "ok": False, "message": exc.message})
        if exc.presented:
            result["presented_host_key"] = exc.presented
    return result


# --- credentials ---------------------------------------------------------------------------


def _credential(row: dict[str, Any]) -> model.Credential:
    return model.Credential(**{k: row[k] for k in model.Credential.__dataclass_fields__})


def create_credential(
    *, name: str, kind: str, username: str | None, value: str, actor: str
) -> model.Credential:
    cred_id = str(uuid.uuid4())
    secret = model.secret_name(cred_id)
    with db.transaction() as s:
        if store.credential_name_taken(s, name):
            raise model.NameTaken("credential", name)
    # The secret is written first: a failure after it leaves an orphan secret (harmless, no
    # row points at it), never a row whose secret is missing.
    version = vault.put(secret, value)
    now = _now()
    values = {
        "id": cred_id,
        "name": name,
        "kind": kind,
        "username": username,
        "secret_name": secret,
        "current_version": version,
        "created_at": now,
        "rotated_at": now,
        "created_by": actor,
    }
    try:
        with db.transaction() as s:
            store.insert_credential(s, values)
            s.flush()
            emit(
                s,
                CredentialChanged(id=cred_id, name=name, action="created", version=version),
                actor=actor,
            )
    except IntegrityError:
        vault.delete(secret)
        raise model.NameTaken("credential", name) from None
    return _credential(values)


def get_credential(credential_id: str) -> model.Credential:
    with db.transaction() as s:
        row = store.get_credential(s, credential_id)
    if row is None:
        raise model.CredentialNotFound()
    return _credential(row)


def credential_versions(credential_id: str) -> list[vault.SecretVersion]:
    return vault.versions(get_credential(credential_id).secret_name)


def list_credentials(*, after: Any, limit: int) -> list[model.Credential]:
    with db.transaction() as s:
        return [_credential(r) for r in store.list_credentials(s, after=after, limit=limit)]


def rotate_credential(credential_id: str, *, value: str, actor: str) -> model.Credential:
    cred = get_credential(credential_id)
    version = vault.put(cred.secret_name, value)
    now = _now()
    with db.transaction() as s:
        if store.get_credential(s, credential_id, lock=True) is None:
            raise model.CredentialNotFound()
        store.rotate_credential(s, credential_id, version, now)
        emit(
            s,
            CredentialChanged(id=credential_id, name=cred.name, action="rotated", version=version),
            actor=actor,
        )
    return replace(cred, current_version=version, rotated_at=now)


def delete_credential(credential_id: str, *, actor: str) -> None:
    with db.transaction() as s:
        row = store.get_credential(s, credential_id, lock=True)
        if row is None:
            raise model.CredentialNotFound()
        users = store.targets_using_credential(s, credential_id)
        if users:
            raise model.InUse(f"Targets still use this credential: {', '.join(users)}.")
        store.delete_credential(s, credential_id)
        emit(
            s,
            CredentialChanged(id=credential_id, name=row["name"], action="deleted", version=None),
            actor=actor,
        )
    vault.delete(row["secret_name"])


# --- jobs ---------------------------------------------------------------------------------


def _job(row: dict[str, Any]) -> model.Job:
    return model.Job(
        id=row["id"],
        version=row["version"],
        definition=model.JobDefinition.of(row["definition"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        created_by=row["created_by"],
    )


def create_job(definition: model.JobDefinition, *, actor: str) -> model.Job:
    model.check_definition(definition)
    job_id = str(uuid.uuid4())
    now = _now()
    with db.transaction() as s:
        if store.job_name_taken(s, definition.name):
            raise model.NameTaken("job", definition.name)
        try:
            store.insert_job(s, job_id=job_id, definition=definition.as_json(), at=now, actor=actor)
            s.flush()
        except IntegrityError:
            raise model.NameTaken("job", definition.name) from None
        emit(
            s, JobChanged(id=job_id, name=definition.name, action="created", version=1), actor=actor
        )
    return model.Job(job_id, 1, definition, now, now, actor)


def get_job(job_id: str) -> model.Job:
    with db.transaction() as s:
        row = store.get_job(s, job_id)
    if row is None:
        raise model.JobNotFound()
    return _job(row)


def job_at_version(job_id: str, version: int) -> model.JobDefinition:
    with db.transaction() as s:
        data = store.job_version(s, job_id, version)
    if data is None:
        raise model.JobNotFound()
    return model.JobDefinition.of(data)


def list_jobs(*, after: Any, limit: int) -> list[model.Job]:
    with db.transaction() as s:
        return [_job(r) for r in store.list_jobs(s, after=after, limit=limit)]


def update_job(
    job_id: str, definition: model.JobDefinition, *, expected_version: int | None, actor: str
) -> model.Job:
    """A new version of the job; runs already requested keep the version they recorded."""
    model.check_definition(definition)
    now = _now()
    with db.transaction() as s:
        row = store.get_job(s, job_id, lock=True)
        if row is None:
            raise model.JobNotFound()
        if expected_version is not None and expected_version != row["version"]:
            raise model.ConcurrentChange("job")
        if row["definition"] == definition.as_json():
            return _job(row)
        if store.job_name_taken(s, definition.name, job_id):
            raise model.NameTaken("job", definition.name)
        version = row["version"] + 1
        store.new_job_version(
            s, job_id=job_id, version=version, definition=definition.as_json(), at=now, actor=actor
        )
        emit(
            s,
            JobChanged(id=job_id, name=definition.name, action="updated", version=version),
            actor=actor,
        )
    return model.Job(job_id, version, definition, row["created_at"], now, row["created_by"])


def delete_job(job_id: str, *, actor: str) -> None:
    with db.transaction() as s:
        row = store.get_job(s, job_id, lock=True)
        if row is None:
            raise model.JobNotFound()
        n = store.schedules_of_job(s, job_id)
        if n:
            raise model.InUse(f"{n} schedule(s) still start this job; delete them first.")
        store.soft_delete_job(s, job_id, _now())
        emit(
            s,
            JobChanged(
                id=job_id, name=row["definition"]["name"], action="deleted", version=row["version"]
            ),
            actor=actor,
        )


# --- runs ---------------------------------------------------------------------------------


def _request_run(
    s: Any,
    job: model.Job,
    params: dict[str, str],
    *,
    actor: str,
    roles: tuple[str, ...] | None,
    schedule_id: str | None = None,
    due_at: datetime | None = None,
    run_id: str | None = None,
) -> str:
    """Insert a queued run (targets resolved now) and emit job.run.requested; its id."""
    d = job.definition
    values = model.resolve_parameters(d.parameters, params)
    rows = store.select_targets(
        s, list(d.target_ids), list(d.target_tags), model.MAX_TARGETS_PER_RUN + 1
    )
    if not rows:
        raise model.NoTargets()
    if len(rows) > model.MAX_TARGETS_PER_RUN:
        raise model.BadDefinition(f"A run reaches at most {model.MAX_TARGETS_PER_RUN} targets.")
    if roles is not None:
        refused = model.may_run(roles, store.grants_of(s, actor), [_target(r) for r in rows])
        if refused:
            raise model.TagsNotGranted(refused)
    run_id = run_id or str(uuid.uuid4())
    now = _now()
    store.insert_run(
        s,
        {
            "id": run_id,
            "job_id": job.id,
            "job_version": job.version,
            "status": "queued",
            "parameters": values,
            "requested_by": actor,
            "schedule_id": schedule_id,
            "due_at": due_at,
            "cancel_requested": False,
            "created_at": now,
        },
        rows,
        [st.name for st in d.steps],
    )
    emit(
        s,
        JobRunRequested(
            run_id=run_id,
            job_id=job.id,
            job_version=job.version,
            requested_by=actor,
            schedule_id=schedule_id,
            due_at=rfc3339(due_at) if due_at else None,
            targets=len(rows),
        ),
        actor=actor,
    )
    return run_id


def start_run(job_id: str, params: dict[str, str], *, actor: str, roles: tuple[str, ...]) -> str:
    with db.transaction() as s:
        row = store.get_job(s, job_id)
        if row is None:
            raise model.JobNotFound()
        return _request_run(s, _job(row), params, actor=actor, roles=roles)


def _run(
    row: dict[str, Any],
    targets: list[dict[str, Any]] | None = None,
    steps: list[dict[str, Any]] | None = None,
) -> model.Run:
    by_target: dict[str, list[model.RunStep]] = {}
    for st in steps or []:
        by_target.setdefault(st["target_id"], []).append(
            model.RunStep(
                index=st["step_index"],
                name=st["name"],
                status=st["status"],
                exit_code=st["exit_code"],
                started_at=st["started_at"],
                finished_at=st["finished_at"],
                error=st["error"],
            )
        )
    return model.Run(
        **{k: row[k] for k in model.Run.__dataclass_fields__ if k != "targets"},
        targets=tuple(
            model.RunTarget(
                target_id=t["target_id"],
                target_name=t["target_name"],
                status=t["status"],
                started_at=t["started_at"],
                finished_at=t["finished_at"],
                error=t["error"],
                steps=tuple(by_target.get(t["target_id"], [])),
            )
            for t in targets or []
        ),
    )


def get_run(run_id: str) -> model.Run:
    with db.transaction() as s:
        row = store.get_run(s, run_id)
        if row is None:
            raise model.RunNotFound()
        targets, steps = store.run_details(s, run_id)
    return _run(row, targets, steps)


def list_runs(*, job_id: str | None, status: str | None, after: Any, limit: int) -> list[model.Run]:
    with db.transaction() as s:
        return [
            _run(r)
            for r in store.list_runs(s, job_id=job_id, status=status, after=after, limit=limit)
        ]


def run_logs(run_id: str, *, after: int, limit: int) -> list[dict[str, Any]]:
    from functions.automation import logs

    get_run(run_id)  # 404 for an unknown run
    return logs.read(run_id, after=after, limit=limit)


def finish_run(
    s: Any,
    run: dict[str, Any],
    status: str,
    *,
    error: str | None,
    at: datetime,
    actor: str | None = None,
) -> None:
    """End a run (and its open targets and steps) with `status`; emits job.run.finished."""
    store.finish_open_parts(s, run["id"], status, at)
    store.set_run(s, run["id"], status=status, finished_at=at, error=error)
    counts = store.target_counts(s, run["id"])
    emit(
        s,
        JobRunFinished(
            run_id=run["id"],
            job_id=run["job_id"],
            job_version=run["job_version"],
            status=status,
            duration_s=model.duration_s(run.get("started_at"), at),
            targets_succeeded=counts.get("succeeded", 0),
            targets_failed=sum(n for k, n in counts.items() if k != "succeeded"),
            error=error,
        ),
        actor=actor or run["requested_by"],
    )


def cancel_run(run_id: str, *, actor: str, roles: tuple[str, ...]) -> model.Run:
    """A queued run ends cancelled now; a running one is flagged for its runner."""
    with db.transaction() as s:
        row = store.get_run(s, run_id, lock=True)
        if row is None:
            raise model.RunNotFound()
        if row["status"] in model.FINISHED:
            raise model.RunFinished(row["status"])
        if not ({"admin", "manager"} & set(roles)) and row["requested_by"] != actor:
            raise model.TagsNotGranted(["(runs started by someone else)"])
        if row["status"] == "queued":
            finish_run(
                s,
                row,
                "cancelled",
                error=f"cancelled by {actor} before it started",
                at=_now(),
                actor=actor,
            )
        else:
            store.set_run(s, run_id, cancel_requested=True)
    return get_run(run_id)


def reap_lost_runs(now: datetime) -> list[str]:
    """Runs whose runner stopped beating end failed: never executed a second time."""
    with db.transaction() as s:
        ids = store.stale_runs(s, now - RUNNER_LOST_AFTER)
        for run_id in ids:
            row = store.get_run(s, run_id)
            assert row is not None
            finish_run(
                s,
                row,
                "failed",
                error="The runner stopped (crash or restart); the run was not repeated.",
                at=now,
                actor="system",
            )
    return ids


# --- schedules ----------------------------------------------------------------------------


def _schedule(row: dict[str, Any]) -> model.Schedule:
    return model.Schedule(**{k: row[k] for k in model.Schedule.__dataclass_fields__})


def create_schedule(data: dict[str, Any], *, actor: str) -> model.Schedule:
    cron = model.check_cron(data["cron"])
    tz = model.check_time_zone(data.get("time_zone") or "Etc/UTC")
    try:
        job = get_job(data["job_id"])
    except model.JobNotFound:
        raise model.UnknownReference("job_id", "job") from None
    model.resolve_parameters(job.definition.parameters, data.get("parameters") or {})
    now = _now()
    values = {
        "id": str(uuid.uuid4()),
        "job_id": job.id,
        "cron": cron,
        "time_zone": tz,
        "parameters": dict(data.get("parameters") or {}),
        "enabled": bool(data.get("enabled", True)),
        "catch_up": data.get("catch_up") or "once",
        "last_due_at": now,  # slots from now on: creating a schedule starts nothing at once
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    with db.transaction() as s:
        store.put_schedule(s, values, new=True)
        emit(
            s,
            ScheduleChanged(id=str(values["id"]), name=cron, action="created", job_id=job.id),
            actor=actor,
        )
    return _schedule(values)


def get_schedule(schedule_id: str) -> model.Schedule:
    with db.transaction() as s:
        row = store.get_schedule(s, schedule_id)
    if row is None:
        raise model.ScheduleNotFound()
    return _schedule(row)


def list_schedules(*, job_id: str | None, after: Any, limit: int) -> list[model.Schedule]:
    with db.transaction() as s:
        return [
            _schedule(r) for r in store.list_schedules(s, job_id=job_id, after=after, limit=limit)
        ]


def update_schedule(
    schedule_id: str,
    changes: dict[str, Any],
    *,
    expected_version: int | None,
    actor: str,
    action: str = "updated",
) -> model.Schedule:
    if "cron" in changes:
        changes["cron"] = model.check_cron(changes["cron"])
    if "time_zone" in changes:
        changes["time_zone"] = model.check_time_zone(changes["time_zone"])
    with db.transaction() as s:
        row = store.get_schedule(s, schedule_id, lock=True)
        if row is None:
            raise model.ScheduleNotFound()
        if expected_version is not None and expected_version != row["version"]:
            raise model.ConcurrentChange("schedule")
        wanted = {**row, **changes}
        if "job_id" in changes or "parameters" in changes:
            job = store.get_job(s, wanted["job_id"])
            if job is None and "job_id" in changes:
                raise model.UnknownReference("job_id", "job")
            if job is None:  # the schedule's own job: deleting a job needs its schedules gone
                raise model.JobNotFound()
            model.resolve_parameters(_job(job).definition.parameters, wanted["parameters"])
        now = _now()
        if changes.get("enabled") and not row["enabled"]:
            wanted["last_due_at"] = now  # resuming does not start the slots missed while paused
        if {"cron", "time_zone"} & set(changes):
            wanted["last_due_at"] = max(now, row["last_due_at"] or now)
        wanted.update(updated_at=now, version=row["version"] + 1)
        store.put_schedule(s, wanted, new=False)
        emit(
            s,
            ScheduleChanged(
                id=schedule_id, name=wanted["cron"], action=action, job_id=wanted["job_id"]
            ),
            actor=actor,
        )
    return _schedule(wanted)


def delete_schedule(schedule_id: str, *, actor: str) -> None:
    with db.transaction() as s:
        row = store.get_schedule(s, schedule_id, lock=True)
        if row is None:
            raise model.ScheduleNotFound()
        store.delete_schedule(s, schedule_id)
        emit(
            s,
            ScheduleChanged(
                id=schedule_id, name=row["cron"], action="deleted", job_id=row["job_id"]
            ),
            actor=actor,
        )


def run_due_schedules(now: datetime) -> dict[str, Any]:
    """One tick at `now` (the ScheduleTime): at most one run per (schedule, due slot)."""
    started: list[str] = []
    errors: list[dict[str, str]] = []
    with db.transaction() as s:
        ids = store.enabled_schedule_ids(s)
    for schedule_id in ids:
        try:
            with db.transaction() as s:
                row = store.get_schedule(s, schedule_id, lock=True)
                if row is None or not row["enabled"]:
                    continue
                sched = _schedule(row)
                slot, fire = model.due_slot(sched, now)
                if slot is None:
                    continue
                if fire:
                    job_row = store.get_job(s, sched.job_id)
                    if job_row is None:
                        raise model.JobNotFound()
                    run_id = str(uuid.uuid4())
                    if store.record_fire(s, schedule_id, slot, run_id, _now()):
                        _request_run(
                            s,
                            _job(job_row),
                            dict(sched.parameters),
                            actor=f"schedule:{schedule_id}",
                            roles=None,
                            schedule_id=schedule_id,
                            due_at=slot,
                            run_id=run_id,
                        )
                        started.append(run_id)
                if row["last_due_at"] is None or slot > row["last_due_at"]:
                    store.put_schedule(s, {**row, "last_due_at": slot}, new=False)
        except model.AutomationError as exc:
            # The slot is consumed all the same (a job that selects no target would otherwise
            # be retried every minute); the tick's answer and the logs say why.
            errors.append({"schedule_id": schedule_id, "error": str(exc)})
            _consume_slot(schedule_id, now)
    lost = reap_lost_runs(_now())
    return {"schedule_time": rfc3339(now), "started": started, "errors": errors, "lost_runs": lost}


def _consume_slot(schedule_id: str, now: datetime) -> None:
    with db.transaction() as s:
        row = store.get_schedule(s, schedule_id, lock=True)
        if row is None:
            return
        slot, _fire = model.due_slot(_schedule(row), now)
        if slot is not None:
            store.put_schedule(s, {**row, "last_due_at": slot}, new=False)


def next_fire_times(sched: model.Schedule, n: int = 5) -> list[datetime]:
    if not sched.enabled:
        return []
    return model.next_fire_times(sched.cron, sched.time_zone, _now(), n)


# --- grants -------------------------------------------------------------------------------


def grants_of(subject: str) -> list[str]:
    with db.transaction() as s:
        return store.grants_of(s, subject)


def set_grants(subject: str, tags: list[str], *, actor: str) -> list[str]:
    clean = sorted(set(tags))
    for t in clean:
        if t != model.GRANT_ALL:
            model.normalize_tags([t])
    with db.transaction() as s:
        store.set_grants(s, subject, clean, actor, _now())
        emit(s, GrantChanged(subject=subject, tags=clean), actor=actor)
    return clean


def list_grants(*, after: str | None, limit: int) -> list[tuple[str, list[str]]]:
    with db.transaction() as s:
        return store.list_grants(s, after=after, limit=limit)
