"""Automation's domain rules in plain Python: targets and which ones a job selects, job steps
and parameters (and how parameter values reach a command without being pasted into it), run
and step statuses, who may run what (tag grants), cron schedules and their due slots. No I/O
here (croniter only computes). The rules are docs/decisions/0022 (execution), 0024 (RBAC):

    run:    queued --claim--> running --> succeeded | failed | cancelled | timed_out
            queued --cancel--> cancelled          (before a runner claimed it)
    target: pending --> running --> succeeded | failed | cancelled | timed_out | unreachable
    step:   pending --> running --> succeeded | failed | cancelled | timed_out | skipped

Parameter values never become shell syntax: a command sees each parameter as an environment
variable (`$NAME`, exported with a single-quoted value) and `{{name}}` in a command becomes the
value quoted for the target's shell (POSIX sh: `shlex.quote`; PowerShell: a single-quoted
string); in an HTTP step's URL `{{name}}` is percent-encoded, in headers it may not hold line
breaks.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from shared.errors import Conflict, Forbidden, NotFound, Problem, Unprocessable

TargetKind = Literal["ssh", "winrm", "http"]
CredentialKind = Literal["password", "private_key"]
StepKind = Literal["command", "http"]
RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
TargetStatus = Literal[
    "pending", "running", "succeeded", "failed", "cancelled", "timed_out", "unreachable"
]
StepStatus = Literal[
    "pending", "running", "succeeded", "failed", "cancelled", "timed_out", "skipped"
]
CatchUp = Literal["once", "skip"]
TARGET_KINDS: tuple[str, ...] = get_args(TargetKind)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
FINISHED = frozenset({"succeeded", "failed", "cancelled", "timed_out"})

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
TAG = re.compile(r"^[a-z0-9][a-z0-9._:-]{0,62}$")
PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
HOST = re.compile(
    r"^([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?$"
    r"|^[0-9a-fA-F:.]{2,45}$"
)
ENV_RESERVED = frozenset({"PATH", "HOME", "SHELL", "USER", "LOGNAME", "IFS", "PS1", "PS4", "ENV"})

# A run is executed inside one Pub/Sub push request (docs/decisions/0022): its overall timeout
# stays below the runner's 600 s request timeout and Pub/Sub's 600 s maximum ack deadline.
MAX_RUN_TIMEOUT_S = 540
MAX_STEP_TIMEOUT_S = 540
RUN_LIMIT_TEXT = (
    f"at most {MAX_RUN_TIMEOUT_S} s: a run executes inside one Pub/Sub push request, which "
    "Pub/Sub ends after 600 s; split longer work into shorter jobs (docs/decisions/0037)"
)
MAX_CONCURRENCY = 50
MAX_STEPS = 50
MAX_TARGETS_PER_RUN = 500
DEFAULT_PORTS = {"ssh": 22, "winrm": 5986, "http": 443}
GRANT_ALL = "*"
RUN_ROLES = ("operator", "manager")  # operator: on granted tags only (see may_run)


# --- errors ------------------------------------------------------------------------------


class AutomationError(Problem):
    """Base of every error the automation context raises (problem+json via shared.http)."""


class TargetNotFound(AutomationError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such target.")


class CredentialNotFound(AutomationError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such credential.")


class JobNotFound(AutomationError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such job.")


class RunNotFound(AutomationError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such run.")


class ScheduleNotFound(AutomationError, NotFound):
    def __init__(self) -> None:
        super().__init__("No such schedule.")


class UnknownReference(AutomationError, Unprocessable):
    """The body names a credential or a job that does not exist: the resource the URL addresses
    is there, the request is not (422 naming the field, as maintenance answers; 404 is for the
    URL's own resource)."""

    def __init__(self, field: str, what: str) -> None:
        message = f"no such {what}"
        super().__init__(
            f"{field}: {message}",
            errors=[{"field": field, "message": message, "type": "reference"}],
        )


class NameTaken(AutomationError, Conflict):
    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"A {what} named {name!r} already exists.")


class ConcurrentChange(AutomationError, Conflict):
    def __init__(self, what: str = "resource") -> None:
        super().__init__(f"The {what} was changed concurrently; read it again and retry.")


class InUse(AutomationError, Conflict):
    """Deleting something others still refer to."""


class RunFinished(AutomationError, Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"The run already finished ({status}).")


class NoTargets(AutomationError, Unprocessable):
    def __init__(self) -> None:
        super().__init__("The job selects no target (no id matches and no target has its tags).")


class BadParameters(AutomationError, Unprocessable):
    """Run parameters that do not fit the job's declared parameters."""


class BadDefinition(AutomationError, Unprocessable):
    """A job, target or schedule definition that breaks a rule validation cannot see alone."""


class TagsNotGranted(AutomationError, Forbidden):
    def __init__(self, names: Sequence[str]) -> None:
        shown = ", ".join(sorted(names)[:10])
        super().__init__(
            f"You may not run jobs on these targets (none of their tags is granted to you): "
            f"{shown}."
        )


# --- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    id: str
    name: str
    kind: str
    host: str
    port: int
    tags: tuple[str, ...]
    options: Mapping[str, Any]
    credential_id: str | None
    internal: bool
    created_at: datetime
    updated_at: datetime
    version: int


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    out = sorted({t.strip().lower() for t in tags})
    bad = [t for t in out if not TAG.match(t)]
    if bad:
        raise BadDefinition(f"Tags are lower-case letters, digits and ._:- (not {bad[0]!r}).")
    return tuple(out)


def check_options(kind: str, options: Mapping[str, Any]) -> None:
    """What a kind of target needs beyond host and port."""
    if kind in ("ssh", "winrm") and not options.get("user"):
        raise BadDefinition(f"An {kind} target needs options.user.")
    fp = options.get("host_key")
    if fp is not None and (kind != "ssh" or not FINGERPRINT.match(str(fp))):
        raise BadDefinition("options.host_key is an SSH fingerprint SHA256:<43 base64 chars>.")


def selects(target: Target, ids: Iterable[str], tags: Iterable[str]) -> bool:
    """A job's selection: the target's id is listed, or the target carries every listed tag."""
    wanted = set(tags)
    return target.id in set(ids) or (bool(wanted) and wanted <= set(target.tags))


# --- credentials --------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    """Metadata only: the secret itself lives in shared.secrets under `secret_name`."""

    id: str
    name: str
    kind: str
    username: str | None
    secret_name: str
    current_version: str
    created_at: datetime
    rotated_at: datetime
    created_by: str


def secret_name(credential_id: str) -> str:
    return f"automation-credential-{credential_id}"


# --- jobs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    default: str | None = None
    required: bool = False
    description: str | None = None


@dataclass(frozen=True)
class Step:
    kind: str
    name: str
    timeout_s: int = 60
    continue_on_error: bool = False
    command: str | None = None
    method: str = "GET"
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    expected_status: tuple[int, ...] = (200,)


@dataclass(frozen=True)
class JobDefinition:
    """What a job version runs (a run executes the version it recorded)."""

    name: str
    description: str | None
    steps: tuple[Step, ...]
    parameters: tuple[Parameter, ...]
    target_ids: tuple[str, ...]
    target_tags: tuple[str, ...]
    max_concurrency: int
    timeout_s: int

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "steps": [
                {
                    **s.__dict__,
                    "headers": dict(s.headers),
                    "expected_status": list(s.expected_status),
                }
                for s in self.steps
            ],
            "parameters": [p.__dict__ for p in self.parameters],
            "target_ids": list(self.target_ids),
            "target_tags": list(self.target_tags),
            "max_concurrency": self.max_concurrency,
            "timeout_s": self.timeout_s,
        }

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> JobDefinition:
        return cls(
            name=data["name"],
            description=data.get("description"),
            steps=tuple(
                Step(
                    **{
                        **s,
                        "headers": dict(s.get("headers") or {}),
                        "expected_status": tuple(s.get("expected_status") or (200,)),
                    }
                )
                for s in data["steps"]
            ),
            parameters=tuple(Parameter(**p) for p in data.get("parameters", [])),
            target_ids=tuple(data.get("target_ids", [])),
            target_tags=tuple(data.get("target_tags", [])),
            max_concurrency=int(data["max_concurrency"]),
            timeout_s=int(data["timeout_s"]),
        )


@dataclass(frozen=True)
class Job:
    id: str
    version: int
    definition: JobDefinition
    created_at: datetime
    updated_at: datetime
    created_by: str


def check_definition(d: JobDefinition) -> None:
    """Rules across fields: placeholders name declared parameters, timeouts fit the run's."""
    declared = {p.name for p in d.parameters}
    if len(declared) != len(d.parameters):
        raise BadDefinition("Parameter names must be unique.")
    for p in d.parameters:
        if p.name.upper() in ENV_RESERVED:
            raise BadDefinition(f"Parameter {p.name!r} would replace a shell variable.")
    if not d.target_ids and not d.target_tags:
        raise BadDefinition("Select targets by target_ids, target_tags or both.")
    for i, s in enumerate(d.steps):
        texts = [s.command or "", s.url or "", s.body or "", *s.headers.values()]
        used = {m.group(1) for t in texts for m in PLACEHOLDER.finditer(t)}
        unknown = sorted(used - declared)
        if unknown:
            raise BadDefinition(f"Step {i + 1} uses undeclared parameters: {', '.join(unknown)}.")
        if s.timeout_s > d.timeout_s:
            raise BadDefinition(
                f"Step {i + 1}'s timeout is longer than the job's ({d.timeout_s} s)."
            )


def resolve_parameters(declared: Sequence[Parameter], given: Mapping[str, str]) -> dict[str, str]:
    """The values a run uses: given ones, else defaults; unknown or missing ones refused."""
    names = {p.name for p in declared}
    unknown = sorted(set(given) - names)
    if unknown:
        raise BadParameters(
            f"Unknown parameters: {', '.join(unknown)}.",
            errors=[
                {
                    "field": f"parameters.{n}",
                    "message": "not declared by the job",
                    "type": "unknown",
                }
                for n in unknown
            ],
        )
    out: dict[str, str] = {}
    missing = []
    for p in declared:
        if p.name in given:
            out[p.name] = given[p.name]
        elif p.default is not None:
            out[p.name] = p.default
        elif p.required:
            missing.append(p.name)
        else:
            out[p.name] = ""
    if missing:
        raise BadParameters(
            f"Missing required parameters: {', '.join(missing)}.",
            errors=[
                {"field": f"parameters.{n}", "message": "required", "type": "missing"}
                for n in missing
            ],
        )
    return out


def powershell_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def shell_command(command: str, params: Mapping[str, str], *, shell: str = "sh") -> str:
    """The command line sent to a target: parameters exported as environment variables with
    quoted values, `{{name}}` replaced by the quoted value. No value is ever unquoted."""
    if shell == "powershell":
        prefix = "".join(f"$env:{k} = {powershell_quote(v)}; " for k, v in params.items())
        body = PLACEHOLDER.sub(lambda m: powershell_quote(params.get(m.group(1), "")), command)
        return prefix + body
    prefix = "".join(f"{k}={shlex.quote(v)}; export {k}; " for k, v in params.items())
    body = PLACEHOLDER.sub(lambda m: shlex.quote(params.get(m.group(1), "")), command)
    return prefix + body


def http_request_parts(
    step: Step, params: Mapping[str, str]
) -> tuple[str, dict[str, str], str | None]:
    """URL (values percent-encoded), headers (values without line breaks), body (as given)."""
    url = PLACEHOLDER.sub(lambda m: quote(params.get(m.group(1), ""), safe=""), step.url or "")
    headers = {}
    for k, v in step.headers.items():
        value = PLACEHOLDER.sub(lambda m: params.get(m.group(1), ""), v)
        if "\r" in value or "\n" in value:
            raise BadParameters(f"A parameter put a line break into header {k!r}.")
        headers[k] = value
    body = (
        PLACEHOLDER.sub(lambda m: params.get(m.group(1), ""), step.body)
        if step.body is not None
        else None
    )
    return url, headers, body


# --- runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStep:
    index: int
    name: str
    status: str
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class RunTarget:
    target_id: str
    target_name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    steps: tuple[RunStep, ...] = ()


@dataclass(frozen=True)
class Run:
    id: str
    job_id: str
    job_version: int
    status: str
    parameters: Mapping[str, str]
    requested_by: str
    schedule_id: str | None
    due_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    targets: tuple[RunTarget, ...] = ()


def overall_status(target_statuses: Iterable[str], *, cancelled: bool, timed_out: bool) -> str:
    """A finished run's status from its targets' and why it stopped."""
    if cancelled:
        return "cancelled"
    if timed_out:
        return "timed_out"
    statuses = list(target_statuses)
    return "succeeded" if statuses and all(s == "succeeded" for s in statuses) else "failed"


def duration_s(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


# --- permissions --------------------------------------------------------------------------


def may_run(roles: Iterable[str], granted: Iterable[str], targets: Iterable[Target]) -> list[str]:
    """Names of the targets the caller may not run on (empty: allowed). Admins and managers
    run anywhere; an operator on a target one of whose tags is granted to them (`*`: all)."""
    roles = set(roles)
    if {"admin", "manager"} & roles:
        return []
    if "operator" not in roles:
        return [t.name for t in targets]
    grants = set(granted)
    if GRANT_ALL in grants:
        return []
    return [t.name for t in targets if not grants & set(t.tags)]


# --- schedules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    id: str
    job_id: str
    cron: str
    time_zone: str
    parameters: Mapping[str, str]
    enabled: bool
    catch_up: str
    last_due_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


def check_cron(expr: str) -> str:
    expr = " ".join(expr.split())
    if len(expr.split(" ")) != 5 or not croniter.is_valid(expr):
        raise BadDefinition(
            f"{expr!r} is not a 5-field cron expression (minute hour day month weekday)."
        )
    return expr


def check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadDefinition(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin).") from None
    return name


def next_fire_times(cron: str, time_zone: str, after: datetime, n: int = 5) -> list[datetime]:
    """The next `n` slots strictly after `after`, in UTC (wall-clock cron in `time_zone`)."""
    it = croniter(cron, after.astimezone(ZoneInfo(time_zone)))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(n)]


def due_slot(
    s: Schedule, now: datetime, *, tolerance: timedelta = timedelta(minutes=2)
) -> tuple[datetime | None, bool]:
    """(latest slot that fell due by `now`, whether a run starts for it). Slots after
    `last_due_at` (or the schedule's creation) and at or before `now` fell due; `catch_up=once`
    starts one run for the latest of them however many were missed; `skip` starts one only
    when the latest is within `tolerance` of `now` (an on-time tick) and drops missed ones.
    A paused schedule starts nothing (and its slots are not consumed)."""
    if not s.enabled:
        return None, False
    since = s.last_due_at or s.created_at
    it = croniter(s.cron, since.astimezone(ZoneInfo(s.time_zone)))
    latest = None
    for _ in range(100_000):  # a minutely cron missed for ~70 days; bounded either way
        slot = it.get_next(datetime).astimezone(UTC)
        if slot > now:
            break
        latest = slot
    if latest is None:
        return None, False
    if s.catch_up == "skip" and now - latest > tolerance:
        return latest, False
    return latest, True


def utcnow() -> datetime:
    return datetime.now(UTC)
