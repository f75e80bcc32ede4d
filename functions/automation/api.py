"""HTTP routes of automation-api: parse and validate, check the role, call the service, shape
the answer.

Roles (docs/decisions/0024): any authenticated user reads targets, jobs, runs, run logs and
schedules; operators start runs on targets one of whose tags an admin granted them
(`PUT /api/automation/grants/{user_id}`), and cancel their own runs; managers edit jobs and
schedules and run and cancel anything; admins manage targets, credentials and grants (and pass
everywhere). Credentials are metadata to managers and admins; their values are taken once and
never answered. Run logs page by line number: `next_cursor` is always set (poll with it), and
`finished` says when no more lines will come.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import available_timezones

import flask
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from functions.automation import model, service
from shared import auth as sauth
from shared.http import (
    ApiModel,
    OutModel,
    Page,
    PageQuery,
    body,
    create_app,
    decode_cursor,
    describe,
    encode_cursor,
    json_response,
    page,
    query,
)
from shared.http import (
    BadRequest as _BadRequest,
)
from shared.openapi import responds

app = create_app("automation")

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=model.NAME.pattern)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=model.TAG.pattern)]
Host = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=model.HOST.pattern)]
Port = Annotated[int, Field(ge=1, le=65535)]
ParamName = Annotated[str, StringConstraints(pattern=model.PARAM.pattern)]
ParamValue = Annotated[str, StringConstraints(max_length=4096)]
# The bounds sit on the collection type itself, so that `X | SkipJsonSchema[None]` (a partial
# update) keeps them in the schema as maxItems/maxProperties (a Field bound on the union came
# out as `maxLength` on an array and an object).
Tags = Annotated[list[Tag], Field(max_length=50)]
Parameters = Annotated[
    dict[ParamName, ParamValue],
    Field(max_length=50, json_schema_extra={"additionalProperties": False}),  # names: ParamName
]
Fingerprint = Annotated[str, StringConstraints(pattern=model.FINGERPRINT.pattern)]


def _within_one_push(seconds: int) -> int:
    if seconds > model.MAX_RUN_TIMEOUT_S:
        raise ValueError(model.RUN_LIMIT_TEXT)
    return seconds


# A run executes inside one Pub/Sub push request: its timeouts are at most 540 s
# (docs/decisions/0022, 0037). The refusal says so instead of a bare "less than or equal".
Seconds = Annotated[
    int,
    Field(ge=1, json_schema_extra={"maximum": model.MAX_RUN_TIMEOUT_S}),
    AfterValidator(_within_one_push),
]


def _refuse_nulls(data: Any, fields: tuple[str, ...]) -> Any:
    """Partial updates: these fields are absent (kept) or a value, never null."""
    if isinstance(data, dict):
        nulls = sorted(k for k, v in data.items() if v is None and k in fields)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: null is not allowed; omit the field")
    return data


# --- targets -------------------------------------------------------------------------------


class TargetOptions(ApiModel):
    user: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="Login user (ssh, winrm)."
    )
    host_key: Fingerprint | None = Field(
        None,
        description="ssh: the pinned host key fingerprint (`ssh-keygen -lf`); without it the "
        "connection is refused (POST .../test shows the key the server presents).",
    )
    transport: Literal["ntlm", "basic", "kerberos", "credssp", "ssl"] | None = Field(
        None, description="winrm transport (default ntlm)."
    )
    scheme: Literal["http", "https"] | None = Field(None, description="winrm and http targets.")
    verify_tls: bool | None = Field(None, description="winrm: validate the server certificate.")


# What `model.check_options` refuses, said in the schema: ssh and winrm targets log in as
# `options.user`; only ssh pins a host key.
_TARGET_RULES: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"kind": {"enum": ["ssh", "winrm"]}}, "required": ["kind"]},
            "then": {
                "required": ["options"],
                "properties": {
                    "options": {"required": ["user"], "properties": {"user": {"type": "string"}}}
                },
            },
        },
        {
            "if": {"properties": {"kind": {"enum": ["winrm", "http"]}}, "required": ["kind"]},
            "then": {"properties": {"options": {"properties": {"host_key": {"type": "null"}}}}},
        },
    ]
}


class TargetCreate(ApiModel):
    model_config = ConfigDict(json_schema_extra=_TARGET_RULES)

    name: Name
    kind: model.TargetKind
    host: Host
    port: Port | None = Field(None, description="Default: ssh 22, winrm 5986, http 443.")
    tags: Tags = Field(default_factory=list)
    options: TargetOptions = Field(default_factory=lambda: TargetOptions.model_validate({}))
    credential_id: UUID | None = None
    internal: bool = Field(
        False,
        description="Marked internal by an admin: HTTP steps may reach its private address.",
    )


class TargetUpdate(ApiModel):
    """Partial: only the fields present change. `version`: expected current version (409)."""

    # Absent keeps the value; null is not a value for these (422 naming them), so the schema
    # leaves null out (`SkipJsonSchema`).
    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return _refuse_nulls(data, ("name", "kind", "host", "port", "tags", "options", "internal"))

    name: Name | SkipJsonSchema[None] = None
    kind: model.TargetKind | SkipJsonSchema[None] = None
    host: Host | SkipJsonSchema[None] = None
    port: Port | SkipJsonSchema[None] = None
    tags: Tags | SkipJsonSchema[None] = None
    options: TargetOptions | SkipJsonSchema[None] = None
    credential_id: UUID | None = Field(None, description="null: no credential.")
    internal: bool | SkipJsonSchema[None] = None
    version: int | None = Field(None, ge=1)


class TargetOut(OutModel):
    id: str
    name: str
    kind: str
    host: str
    port: int
    tags: list[str]
    options: dict[str, Any]
    credential_id: str | None
    internal: bool
    created_at: datetime
    updated_at: datetime
    version: int


class TargetQuery(PageQuery):
    tag: Tag | None = None
    kind: model.TargetKind | None = None


class TestStep(BaseModel):
    stage: str = Field(description="dns, tcp, host_key, auth, protocol, http or policy")
    ok: bool
    message: str


class TestOut(BaseModel):
    target_id: str
    ok: bool
    steps: list[TestStep]
    presented_host_key: str | None = None


def _target_out(t: model.Target) -> dict[str, Any]:
    return TargetOut.model_validate(
        {**t.__dict__, "tags": list(t.tags), "options": dict(t.options)}
    ).model_dump(mode="json")


def _actor() -> str:
    return sauth.current_user().sub


def _roles() -> tuple[str, ...]:
    return sauth.current_user().roles


@app.get("/api/targets")
@describe("List targets", query=TargetQuery, response=Page[TargetOut])
def list_targets() -> flask.Response:
    """Targets, newest first, optionally with one tag or of one kind."""
    q = query(TargetQuery)
    items = service.list_targets(
        tag=q.tag, kind=q.kind, after=q.keyset(datetime, str), limit=q.limit + 1
    )
    return json_response(
        page(items, q.limit, key=lambda t: (t.created_at, t.id), shape=_target_out)
    )


@app.post("/api/targets")
@responds(409)  # name taken (an unknown credential_id is a 422 naming it)
@describe("Create a target (admin)", request=TargetCreate, response=TargetOut, status=201)
@sauth.require_roles("admin")
def create_target() -> flask.Response:
    data = body(TargetCreate)
    values = data.model_dump(mode="json")
    values["options"] = data.options.model_dump(exclude_none=True)
    t = service.create_target(values, actor=_actor())
    return json_response(_target_out(t), 201, headers={"Location": f"/api/targets/{t.id}"})


@app.get("/api/targets/<uuid:target_id>")
@describe("One target", response=TargetOut)
def get_target(target_id: UUID) -> flask.Response:
    return json_response(_target_out(service.get_target(str(target_id))))


@app.put("/api/targets/<uuid:target_id>")
@responds(409)  # name taken, or `version` is not the current one
@describe("Change a target (admin)", request=TargetUpdate, response=TargetOut)
@sauth.require_roles("admin")
def update_target(target_id: UUID) -> flask.Response:
    data = body(TargetUpdate)
    changes = data.model_dump(mode="json", exclude_unset=True, exclude={"version"})
    if data.options is not None:
        changes["options"] = data.options.model_dump(exclude_none=True)
    t = service.update_target(
        str(target_id), changes, expected_version=data.version, actor=_actor()
    )
    return json_response(_target_out(t))


@app.delete("/api/targets/<uuid:target_id>")
@describe("Delete a target (admin)", status=204)
@sauth.require_roles("admin")
def delete_target(target_id: UUID) -> flask.Response:
    service.delete_target(str(target_id), actor=_actor())
    return flask.Response(status=204)


@app.post("/api/targets/<uuid:target_id>/test")
@describe("Test the connection to a target", response=TestOut)
@sauth.require_roles("operator", "manager")
def test_target(target_id: UUID) -> flask.Response:
    """Resolve, connect, check the host key and log in as a run would; `steps` say what
    passed and, in plain words, what failed (dns, tcp, host_key, auth)."""
    return json_response(
        TestOut.model_validate(service.test_target(str(target_id))).model_dump(mode="json")
    )


# --- credentials ---------------------------------------------------------------------------


class CredentialCreate(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"kind": {"const": "private_key"}}, "required": ["kind"]},
            "then": {"properties": {"secret": {"pattern": "PRIVATE KEY-----"}}},
        }
    )

    name: Name
    kind: model.CredentialKind
    username: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    secret: Annotated[
        str, StringConstraints(min_length=1, max_length=16384, strip_whitespace=False)
    ] = Field(
        description="The password or the private key (PEM/OpenSSH). Stored in the secret "
        "store; never returned."
    )

    @model_validator(mode="after")
    def _key_shape(self) -> CredentialCreate:
        if self.kind == "private_key" and "PRIVATE KEY-----" not in self.secret:
            raise ValueError("a private_key secret is a PEM or OpenSSH private key")
        return self


class CredentialRotate(ApiModel):
    secret: Annotated[
        str, StringConstraints(min_length=1, max_length=16384, strip_whitespace=False)
    ]


class SecretVersionOut(OutModel):
    version: str
    created_at: datetime
    state: str


class CredentialOut(OutModel):
    id: str
    name: str
    kind: str
    username: str | None
    current_version: str
    created_at: datetime
    rotated_at: datetime
    created_by: str
    versions: list[SecretVersionOut] | None = Field(None, description="On the single read only.")


def _cred_out(c: model.Credential, versions: list[Any] | None = None) -> dict[str, Any]:
    return CredentialOut.model_validate({**c.__dict__, "versions": versions}).model_dump(
        mode="json"
    )


@app.get("/api/credentials")
@describe(
    "List credentials (metadata only; manager, admin)",
    query=PageQuery,
    response=Page[CredentialOut],
)
@sauth.require_roles("manager")
def list_credentials() -> flask.Response:
    q = query(PageQuery)
    items = service.list_credentials(after=q.keyset(datetime, str), limit=q.limit + 1)
    return json_response(page(items, q.limit, key=lambda c: (c.created_at, c.id), shape=_cred_out))


@app.post("/api/credentials")
@responds(409)  # name taken
@describe(
    "Store a credential (admin)", request=CredentialCreate, response=CredentialOut, status=201
)
@sauth.require_roles("admin")
def create_credential() -> flask.Response:
    """The secret goes to Secret Manager (locally an encrypted file); the answer is metadata."""
    data = body(CredentialCreate)
    c = service.create_credential(
        name=data.name, kind=data.kind, username=data.username, value=data.secret, actor=_actor()
    )
    return json_response(_cred_out(c), 201, headers={"Location": f"/api/credentials/{c.id}"})


@app.get("/api/credentials/<uuid:credential_id>")
@describe("One credential with its versions (metadata; manager, admin)", response=CredentialOut)
@sauth.require_roles("manager")
def get_credential(credential_id: UUID) -> flask.Response:
    c = service.get_credential(str(credential_id))
    versions = [v.__dict__ for v in service.credential_versions(c.id)]
    return json_response(_cred_out(c, versions))


@app.post("/api/credentials/<uuid:credential_id>/rotate")
@describe(
    "Rotate a credential: a new version (admin)", request=CredentialRotate, response=CredentialOut
)
@sauth.require_roles("admin")
def rotate_credential(credential_id: UUID) -> flask.Response:
    data = body(CredentialRotate)
    return json_response(
        _cred_out(service.rotate_credential(str(credential_id), value=data.secret, actor=_actor()))
    )


@app.delete("/api/credentials/<uuid:credential_id>")
@responds(409)  # targets still use it
@describe("Delete a credential and its secret (admin; 409 while targets use it)", status=204)
@sauth.require_roles("admin")
def delete_credential(credential_id: UUID) -> flask.Response:
    service.delete_credential(str(credential_id), actor=_actor())
    return flask.Response(status=204)


# --- jobs ---------------------------------------------------------------------------------


class ParameterIn(ApiModel):
    name: ParamName = Field(description="Also the environment variable the command sees.")
    default: ParamValue | None = None
    required: bool = False
    description: Annotated[str, StringConstraints(max_length=500)] | None = None


class CommandStepIn(ApiModel):
    kind: Literal["command"]
    name: Name
    command: Annotated[
        str, StringConstraints(min_length=1, max_length=20000, strip_whitespace=False)
    ] = Field(
        description="Run by /bin/sh (ssh) or PowerShell (winrm). Parameters are environment "
        "variables ($NAME) and `{{NAME}}` is replaced by the quoted value."
    )
    timeout_s: Seconds = Field(60, description="Seconds; at most 540 (one run, one request).")
    continue_on_error: bool = False


HeaderName = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9-]+$")
]
HeaderValue = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\r\n]*$")]


class HttpStepIn(ApiModel):
    kind: Literal["http"]
    name: Name
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: Annotated[
        str, StringConstraints(min_length=1, max_length=2000, pattern=r"^(/|https?://)")
    ] = Field(
        description="Absolute http(s) URL, or a path on an http target. `{{NAME}}` is "
        "percent-encoded. Private addresses only on targets marked internal."
    )
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict, max_length=50)
    body: Annotated[str, StringConstraints(max_length=100000, strip_whitespace=False)] | None = None
    expected_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: [200], min_length=1, max_length=20
    )
    timeout_s: Seconds = Field(30, description="Seconds; at most 540 (one run, one request).")
    continue_on_error: bool = False


Step = Annotated[CommandStepIn | HttpStepIn, Field(discriminator="kind")]


class JobIn(ApiModel):
    """A whole job definition; PUT makes it the next version."""

    # `model.check_definition`'s target rule, said in the schema (its rules across steps and
    # parameters are not expressible in JSON Schema).
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["target_ids"], "properties": {"target_ids": {"minItems": 1}}},
                {"required": ["target_tags"], "properties": {"target_tags": {"minItems": 1}}},
            ]
        }
    )

    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    steps: list[Step] = Field(min_length=1, max_length=model.MAX_STEPS)
    parameters: list[ParameterIn] = Field(default_factory=list, max_length=50)
    target_ids: list[UUID] = Field(default_factory=list, max_length=model.MAX_TARGETS_PER_RUN)
    target_tags: list[Tag] = Field(
        default_factory=list, max_length=20, description="Targets carrying every one of these."
    )
    max_concurrency: int = Field(10, ge=1, le=model.MAX_CONCURRENCY)
    timeout_s: Seconds = Field(
        300,
        description="The whole run's limit in seconds, at most 540: a run executes inside one "
        "Pub/Sub push request (600 s at most), so longer jobs are refused (422); split the "
        "work into shorter jobs or schedules (docs/decisions/0037).",
    )

    def definition(self) -> model.JobDefinition:
        data = self.model_dump(mode="json")
        return model.JobDefinition.of(data)


class JobUpdate(JobIn):
    version: int | None = Field(None, ge=1, description="Expected current version (else 409).")


class StepOut(BaseModel):
    kind: str
    name: str
    timeout_s: int
    continue_on_error: bool
    command: str | None = None
    method: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    body: str | None = None
    expected_status: list[int] | None = None


class ParameterOut(BaseModel):
    name: str
    default: str | None
    required: bool
    description: str | None


class JobOut(BaseModel):
    id: str
    version: int
    name: str
    description: str | None
    steps: list[StepOut]
    parameters: list[ParameterOut]
    target_ids: list[str]
    target_tags: list[str]
    max_concurrency: int
    timeout_s: int
    created_at: datetime
    updated_at: datetime
    created_by: str


def _job_out(j: model.Job) -> dict[str, Any]:
    d = j.definition.as_json()
    steps = []
    for s in d["steps"]:
        keep: tuple[str, ...]
        if s["kind"] == "command":
            keep = ("kind", "name", "timeout_s", "continue_on_error", "command")
        else:
            keep = (
                "kind",
                "name",
                "timeout_s",
                "continue_on_error",
                "method",
                "url",
                "headers",
                "body",
                "expected_status",
            )
        steps.append({k: s[k] for k in keep})
    d["steps"] = steps
    return JobOut.model_validate(
        {
            **d,
            "id": j.id,
            "version": j.version,
            "created_at": j.created_at,
            "updated_at": j.updated_at,
            "created_by": j.created_by,
        }
    ).model_dump(mode="json", exclude_none=False)


@app.get("/api/jobs")
@describe("List jobs", query=PageQuery, response=Page[JobOut])
def list_jobs() -> flask.Response:
    q = query(PageQuery)
    items = service.list_jobs(after=q.keyset(datetime, str), limit=q.limit + 1)
    return json_response(page(items, q.limit, key=lambda j: (j.created_at, j.id), shape=_job_out))


@app.post("/api/jobs")
@responds(409)  # name taken
@describe("Create a job (manager)", request=JobIn, response=JobOut, status=201)
@sauth.require_roles("manager")
def create_job() -> flask.Response:
    j = service.create_job(body(JobIn).definition(), actor=_actor())
    return json_response(_job_out(j), 201, headers={"Location": f"/api/jobs/{j.id}"})


@app.get("/api/jobs/<uuid:job_id>")
@describe("One job (its current version)", response=JobOut)
def get_job(job_id: UUID) -> flask.Response:
    return json_response(_job_out(service.get_job(str(job_id))))


@app.get("/api/jobs/<uuid:job_id>/versions/<int:version>")
@describe("One version of a job (what a run of that version executed)", response=JobOut)
def get_job_version(job_id: UUID, version: int) -> flask.Response:
    current = service.get_job(str(job_id))
    d = service.job_at_version(str(job_id), version)
    return json_response(
        _job_out(
            model.Job(
                current.id, version, d, current.created_at, current.updated_at, current.created_by
            )
        )
    )


@app.put("/api/jobs/<uuid:job_id>")
@responds(409)  # name taken, or `version` is not the current one
@describe("Change a job: its next version (manager)", request=JobUpdate, response=JobOut)
@sauth.require_roles("manager")
def update_job(job_id: UUID) -> flask.Response:
    data = body(JobUpdate)
    j = service.update_job(
        str(job_id), data.definition(), expected_version=data.version, actor=_actor()
    )
    return json_response(_job_out(j))


@app.delete("/api/jobs/<uuid:job_id>")
@responds(409)  # schedules still start it
@describe("Delete a job (manager; its runs stay readable)", status=204)
@sauth.require_roles("manager")
def delete_job(job_id: UUID) -> flask.Response:
    service.delete_job(str(job_id), actor=_actor())
    return flask.Response(status=204)


# --- runs ---------------------------------------------------------------------------------


class RunCreate(ApiModel):
    parameters: Parameters = Field(default_factory=dict)


class RunAccepted(BaseModel):
    run_id: str
    status: str
    location: str


class RunStepOut(BaseModel):
    index: int
    name: str
    status: str
    exit_code: int | None = Field(description="Command exit code; the HTTP status for http steps.")
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None


class RunTargetOut(BaseModel):
    target_id: str
    target_name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    steps: list[RunStepOut]


class RunOut(BaseModel):
    id: str
    job_id: str
    job_version: int
    status: str
    parameters: dict[str, str]
    requested_by: str
    schedule_id: str | None
    due_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    targets: list[RunTargetOut] | None = Field(None, description="On the single read only.")


class RunQuery(PageQuery):
    job_id: UUID | None = None
    status: model.RunStatus | None = None


class LogQuery(ApiModel):
    cursor: Annotated[str, StringConstraints(max_length=200)] | None = None
    limit: int = Field(200, ge=1)

    @field_validator("limit")
    @classmethod
    def _cap(cls, v: int) -> int:
        return min(v, 1000)

    def after(self) -> int:
        if not self.cursor:
            return 0
        key = decode_cursor(self.cursor)
        if len(key) != 1 or not isinstance(key[0], int) or isinstance(key[0], bool) or key[0] < 0:
            raise _BadRequest("The cursor is not valid.")
        return int(key[0])


class LogLine(BaseModel):
    seq: int
    at: datetime
    target_id: str | None
    target_name: str | None
    step: int | None
    stream: Literal["stdout", "stderr", "system"]
    text: str


class LogPage(BaseModel):
    items: list[LogLine]
    next_cursor: str = Field(description="Poll again with it; lines after the last one here.")
    finished: bool = Field(description="The run finished: no lines will follow this page.")


def _run_out(r: model.Run, detail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        **{k: v for k, v in r.__dict__.items() if k != "targets"},
        "parameters": dict(r.parameters),
        "duration_s": model.duration_s(r.started_at, r.finished_at),
        "targets": None,
    }
    if detail:
        data["targets"] = [
            {
                **{k: v for k, v in t.__dict__.items() if k != "steps"},
                "duration_s": model.duration_s(t.started_at, t.finished_at),
                "steps": [
                    {**st.__dict__, "duration_s": model.duration_s(st.started_at, st.finished_at)}
                    for st in t.steps
                ],
            }
            for t in r.targets
        ]
    return RunOut.model_validate(data).model_dump(mode="json")


@app.post("/api/jobs/<uuid:job_id>/runs")
@describe(
    "Start a run of a job (operator on granted tags, manager)",
    request=RunCreate,
    response=RunAccepted,
    status=202,
)
@sauth.require_roles(*model.RUN_ROLES)
def start_run(job_id: UUID) -> flask.Response:
    """Queues the run (targets resolved now, parameters checked against the job's) and answers
    202 at once; automation-runner executes it. Follow it at Location and its logs."""
    data = body(RunCreate)
    run_id = service.start_run(str(job_id), dict(data.parameters), actor=_actor(), roles=_roles())
    location = f"/api/runs/{run_id}"
    return json_response(
        {"run_id": run_id, "status": "queued", "location": location},
        202,
        headers={"Location": location},
    )


@app.get("/api/runs")
@describe("List runs", query=RunQuery, response=Page[RunOut])
def list_runs() -> flask.Response:
    q = query(RunQuery)
    items = service.list_runs(
        job_id=str(q.job_id) if q.job_id else None,
        status=q.status,
        after=q.keyset(datetime, str),
        limit=q.limit + 1,
    )
    return json_response(page(items, q.limit, key=lambda r: (r.created_at, r.id), shape=_run_out))


@app.get("/api/runs/<uuid:run_id>")
@describe("One run with the status of every target and step", response=RunOut)
def get_run(run_id: UUID) -> flask.Response:
    return json_response(_run_out(service.get_run(str(run_id)), detail=True))


@app.get("/api/runs/<uuid:run_id>/logs")
@describe("Log lines of a run, in order (poll with next_cursor)", query=LogQuery, response=LogPage)
def run_logs(run_id: UUID) -> flask.Response:
    q = query(LogQuery)
    after = q.after()
    run = service.get_run(str(run_id))
    lines = service.run_logs(str(run_id), after=after, limit=q.limit)
    last = lines[-1]["seq"] if lines else after
    finished = run.status in model.FINISHED and len(lines) < q.limit
    if finished and not lines:
        # the run ended after the lines were read: read once more so none is missed
        lines = service.run_logs(str(run_id), after=after, limit=q.limit)
        last = lines[-1]["seq"] if lines else after
        finished = len(lines) < q.limit
    out = LogPage(
        items=[LogLine.model_validate(x) for x in lines],
        next_cursor=encode_cursor([last]),
        finished=finished,
    )
    return json_response(out.model_dump(mode="json"))


@app.post("/api/runs/<uuid:run_id>/cancel")
@responds(409)  # the run already finished
@describe("Cancel a run (its requester, manager)", response=RunOut, status=202)
@sauth.require_roles(*model.RUN_ROLES)
def cancel_run(run_id: UUID) -> flask.Response:
    """A queued run is cancelled at once; a running one stops within seconds (the runner
    kills the running command). 409 when it already finished."""
    r = service.cancel_run(str(run_id), actor=_actor(), roles=_roles())
    return json_response(_run_out(r, detail=True), 202)


# --- schedules ----------------------------------------------------------------------------


def _cron_pattern() -> str:
    """The 5-field cron `model.check_cron` takes (croniter), as a regular expression: numbers
    in each field's range, `*`, ranges, steps and lists; fields separated by spaces."""

    def field(number: str) -> str:
        item = rf"(\*|{number}(-{number})?)(/[1-9][0-9]?)?"
        return rf"{item}(,{item})*"

    fields = [
        r"[1-5]?[0-9]",  # minute
        r"(1?[0-9]|2[0-3])",  # hour
        r"([1-9]|[12][0-9]|3[01])",  # day of month
        r"([1-9]|1[0-2])",  # month
        r"[0-7]",  # day of week
    ]
    return r"^\s*" + r"\s+".join(field(f) for f in fields) + r"\s*$"


Cron = Annotated[
    str,
    StringConstraints(min_length=9, max_length=100, pattern=_cron_pattern()),
]
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    WithJsonSchema({"type": "string", "enum": sorted(available_timezones())}),
]


class ScheduleIn(ApiModel):
    job_id: UUID
    cron: Cron = Field(
        description="5 fields: minute hour day-of-month month day-of-week.",
        examples=["*/15 * * * *"],
    )
    time_zone: TimeZone = Field("Etc/UTC", description="IANA time zone the cron is read in.")
    parameters: Parameters = Field(default_factory=dict)
    enabled: bool = True
    catch_up: model.CatchUp = Field(
        "once",
        description="After missed slots (downtime): `once` starts one run for them, `skip` "
        "starts none and waits for the next slot.",
    )


class ScheduleUpdate(ApiModel):
    """Partial: only the fields present change."""

    # Absent keeps the value; null is not a value for any of them but `version` (422 naming
    # them), so the schema leaves null out (`SkipJsonSchema`).
    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return _refuse_nulls(data, tuple(n for n in cls.model_fields if n != "version"))

    job_id: UUID | SkipJsonSchema[None] = None
    cron: Cron | SkipJsonSchema[None] = None
    time_zone: TimeZone | SkipJsonSchema[None] = None
    parameters: Parameters | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = None
    catch_up: model.CatchUp | SkipJsonSchema[None] = None
    version: int | None = Field(None, ge=1)


class ScheduleOut(BaseModel):
    id: str
    job_id: str
    cron: str
    time_zone: str
    parameters: dict[str, str]
    enabled: bool
    catch_up: str
    last_due_at: datetime | None
    next_fire_times: list[datetime] = Field(
        description="The next five slots (UTC); empty when paused."
    )
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


def _schedule_out(s: model.Schedule) -> dict[str, Any]:
    return ScheduleOut.model_validate(
        {
            **s.__dict__,
            "parameters": dict(s.parameters),
            "next_fire_times": service.next_fire_times(s),
        }
    ).model_dump(mode="json")


class ScheduleQuery(PageQuery):
    job_id: UUID | None = None


@app.get("/api/schedules")
@describe(
    "List schedules with their next fire times", query=ScheduleQuery, response=Page[ScheduleOut]
)
def list_schedules() -> flask.Response:
    q = query(ScheduleQuery)
    items = service.list_schedules(
        job_id=str(q.job_id) if q.job_id else None, after=q.keyset(datetime, str), limit=q.limit + 1
    )
    return json_response(
        page(items, q.limit, key=lambda s: (s.created_at, s.id), shape=_schedule_out)
    )


@app.post("/api/schedules")  # an unknown job_id is a 422 naming it
@describe("Create a schedule (manager)", request=ScheduleIn, response=ScheduleOut, status=201)
@sauth.require_roles("manager")
def create_schedule() -> flask.Response:
    data = body(ScheduleIn)
    s = service.create_schedule(data.model_dump(mode="json"), actor=_actor())
    return json_response(_schedule_out(s), 201, headers={"Location": f"/api/schedules/{s.id}"})


@app.get("/api/schedules/<uuid:schedule_id>")
@describe("One schedule", response=ScheduleOut)
def get_schedule(schedule_id: UUID) -> flask.Response:
    return json_response(_schedule_out(service.get_schedule(str(schedule_id))))


@app.put("/api/schedules/<uuid:schedule_id>")
@responds(409)  # `version` is not the current one
@describe("Change a schedule (manager)", request=ScheduleUpdate, response=ScheduleOut)
@sauth.require_roles("manager")
def update_schedule(schedule_id: UUID) -> flask.Response:
    data = body(ScheduleUpdate)
    changes = data.model_dump(mode="json", exclude_unset=True, exclude={"version"})
    s = service.update_schedule(
        str(schedule_id), changes, expected_version=data.version, actor=_actor()
    )
    return json_response(_schedule_out(s))


@app.delete("/api/schedules/<uuid:schedule_id>")
@describe("Delete a schedule (manager)", status=204)
@sauth.require_roles("manager")
def delete_schedule(schedule_id: UUID) -> flask.Response:
    service.delete_schedule(str(schedule_id), actor=_actor())
    return flask.Response(status=204)


@app.post("/api/schedules/<uuid:schedule_id>/pause")
@describe("Pause a schedule (manager)", response=ScheduleOut)
@sauth.require_roles("manager")
def pause_schedule(schedule_id: UUID) -> flask.Response:
    s = service.update_schedule(
        str(schedule_id), {"enabled": False}, expected_version=None, actor=_actor(), action="paused"
    )
    return json_response(_schedule_out(s))


@app.post("/api/schedules/<uuid:schedule_id>/resume")
@describe(
    "Resume a schedule; slots missed while paused are not started (manager)", response=ScheduleOut
)
@sauth.require_roles("manager")
def resume_schedule(schedule_id: UUID) -> flask.Response:
    s = service.update_schedule(
        str(schedule_id), {"enabled": True}, expected_version=None, actor=_actor(), action="resumed"
    )
    return json_response(_schedule_out(s))


# --- grants -------------------------------------------------------------------------------

Subject = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")
]


class GrantIn(ApiModel):
    tags: list[
        Annotated[str, StringConstraints(pattern=r"^(\*|" + model.TAG.pattern[1:-1] + r")$")]
    ] = Field(
        max_length=100,
        description="Tags the user may run jobs on as an operator; `*` is every tag.",
    )


class GrantOut(BaseModel):
    subject: str = Field(description="The user id (token subject).")
    tags: list[str]


class GrantQuery(PageQuery):
    pass


@app.get("/api/automation/grants")
@describe("Operators' tag grants (admin)", query=GrantQuery, response=Page[GrantOut])
@sauth.require_roles("admin")
def list_grants() -> flask.Response:
    q = query(GrantQuery)
    key = q.keyset(str)
    items = service.list_grants(after=key[0] if key else None, limit=q.limit + 1)
    return json_response(
        page(items, q.limit, key=lambda g: (g[0],), shape=lambda g: {"subject": g[0], "tags": g[1]})
    )


@app.get("/api/automation/grants/<subject>")
@describe("The tags one user may run on (admin, or the user)", response=GrantOut)
def get_grants(subject: str) -> flask.Response:
    me = sauth.current_user()
    if subject == "me":
        subject = me.sub
    if subject != me.sub and not me.has_role("admin"):
        raise model.AutomationError(
            "Only admins read others' grants.", status=403, title="Forbidden"
        )
    return json_response({"subject": subject, "tags": service.grants_of(subject)})


@app.put("/api/automation/grants/<subject>")
@responds(400, params={"subject": {"maxLength": 200}})  # a longer id is 400
@describe("Set the tags a user may run on (admin)", request=GrantIn, response=GrantOut)
@sauth.require_roles("admin")
def put_grants(subject: str) -> flask.Response:
    if len(subject) > 200:
        raise _BadRequest("The user id is too long.")
    data = body(GrantIn)
    return json_response(
        {"subject": subject, "tags": service.set_grants(subject, list(data.tags), actor=_actor())}
    )
