"""The manifest loader: the real manifests load, and each kind of mistake names file and key."""

from pathlib import Path

import pytest

from shared.manifests import (
    ManifestError,
    _prefixes_pattern,
    _under,
    catalog,
    load,
    subscription_name,
)

MAIN = "def api(request):\n    pass\n\ndef on_event(request):\n    pass\n"


def write(tmp: Path, ctx: str, text: str, main: str = MAIN) -> None:
    (tmp / ctx).mkdir(parents=True, exist_ok=True)
    (tmp / ctx / "function.yaml").write_text(text)
    (tmp / ctx / "main.py").write_text(main)


def test_repository_manifests_load_and_route():
    cat = catalog()
    assert {"gateway", "auth-api", "users-api", "audit-ingest", "ops-outbox-relay"} <= set(
        cat.deployments
    )
    assert cat.route("/api/users/123").name == "users-api"
    assert cat.route("/api/auth/login").name == "auth-api"
    assert cat.route("/api/nothing") is None
    assert cat.is_public("/api/auth/login")
    assert not cat.is_public("/api/users")
    assert cat.is_public("/api/users/health")
    audit = cat.deployments["audit-ingest"]
    assert set(audit.subscribes) == set(cat.topics)  # "*" expands to every published topic


def test_longest_prefix_wins(tmp_path):
    write(
        tmp_path,
        "a",
        "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http,"
        " routes: [/api/things]}\n",
    )
    write(
        tmp_path,
        "b",
        "context: b\ndeployments:\n  b-api: {entry_point: api, trigger: http,"
        " routes: [/api/things/special]}\n",
    )
    cat = load(tmp_path)
    assert cat.route("/api/things/1").name == "a-api"
    assert cat.route("/api/things/special/1").name == "b-api"
    assert cat.route("/api/thingsx") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("context: a\nbogus: 1\ndeployments: {}\n", "a/function.yaml: bogus: unknown key"),
        (
            "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http, routes: [/api/x],"
            " colour: red}\n",
            "deployments.a-api.colour: unknown key",
        ),
        (
            "context: a\ndeployments:\n  a-api: {entry_point: nope, trigger: http,"
            " routes: [/api/x]}\n",
            "'nope' is not defined in main.py",
        ),
        (
            "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: cron}\n",
            "trigger: must be http, event or schedule",
        ),
        (
            "context: a\ndeployments:\n  a-ev: {entry_point: on_event, trigger: event,"
            " subscribes: [thing.happened]}\n",
            "topic 'thing.happened' is published by no",
        ),
        (
            "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http,"
            " routes: [/users]}\n",
            "is not /, /health or /api/<resource>",
        ),
        (
            "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http, routes: [/api/x],"
            " runtime: {memory: lots}}\n",
            "runtime.memory",
        ),
        (
            "context: a\ndeployments:\n  a-job: {entry_point: api, trigger: schedule,"
            " schedule: daily}\n",
            "5-field cron",
        ),
        (
            "context: other\ndeployments:\n  a-api: {entry_point: api, trigger: http,"
            " routes: [/api/x]}\n",
            "context: must equal the folder name",
        ),
        (
            "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http,"
            " routes: [/api/x], max_body_bytes: 99999999999}\n",
            "max_body_bytes: must be an integer",
        ),
        (
            "context: a\ndeployments:\n  a-job: {entry_point: api, trigger: schedule,"
            " schedule: '* * * * *', max_body_bytes: 10}\n",
            "only http deployments take bodies",
        ),
    ],
)
def test_invalid_manifests_name_file_and_key(tmp_path, text, message):
    write(tmp_path, "a", text)
    with pytest.raises(ManifestError) as err:
        load(tmp_path)
    assert message in str(err.value)


def test_duplicates_across_files_are_errors(tmp_path):
    write(
        tmp_path,
        "a",
        "context: a\ndeployments:\n  x-api: {entry_point: api, trigger: http, routes: [/api/x]}\n",
    )
    write(
        tmp_path,
        "b",
        "context: b\ndeployments:\n  x-api: {entry_point: api, trigger: http, routes: [/api/y]}\n",
    )
    with pytest.raises(ManifestError, match="duplicate deployment name"):
        load(tmp_path)
    write(
        tmp_path,
        "b",
        "context: b\ndeployments:\n  y-api: {entry_point: api, trigger: http, routes: [/api/x]}\n",
    )
    with pytest.raises(ManifestError, match="duplicate route '/api/x'"):
        load(tmp_path)


def test_subscriptions_and_defaults(tmp_path):
    write(
        tmp_path,
        "a",
        (
            "context: a\nowns_schema: a\ndeployments:\n"
            "  a-api: {entry_point: api, trigger: http, routes: [/api/a], publishes: [a.created]}\n"
            "  a-on-a: {entry_point: on_event, trigger: event, subscribes: [a.created],"
            " retry: {max_attempts: 7}}\n"
        ),
    )
    cat = load(tmp_path)
    ((dep, topic),) = cat.subscriptions()
    assert (dep.name, topic) == ("a-on-a", "a.created")
    assert subscription_name(dep.name, topic) == "a-on-a--a.created"
    assert dep.retry.max_attempts == 7 and dep.retry.min_backoff_s == 10
    assert dep.runtime.memory == "256Mi" and dep.health_path == "/health"
    assert cat.deployments["a-api"].health_path == "/api/a/health"


def test_root_route_never_takes_api_paths(tmp_path):
    write(
        tmp_path,
        "web",
        "context: web\ndeployments:\n  web-ui: {entry_point: api, trigger: http,"
        " routes: [/], public_routes: [/]}\n",
    )
    write(
        tmp_path,
        "a",
        "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http, routes: [/api/a]}\n",
    )
    cat = load(tmp_path)
    assert cat.route("/").name == "web-ui" and cat.route("/login").name == "web-ui"
    assert cat.route("/api/a/1").name == "a-api"
    assert cat.route("/api/other") is None
    assert cat.is_public("/static/app.js")
    assert not cat.is_public("/api/a/1") and not cat.is_public("/api/a/x/health")


def test_prefix_pattern_answers_as_under():
    """is_public and is_internal ask one compiled pattern; it says what `_under` says of every
    declared prefix, the root one included, on paths at, below, beside and above each."""
    cat = catalog()
    prefixes = sorted({p for d in cat.deployments.values() for p in d.public_routes})
    prefixes += sorted({p for d in cat.deployments.values() for p in d.internal_routes})
    prefixes += ["/", "/api/x/", "/api/a.b"]
    paths = {"/", "", "/api", "/api/", "/apix", "/login", "/api/aXb", "/api/x", "/api/x/"}
    for p in prefixes:
        base = p.rstrip("/")
        paths |= {p, base, base + "/", base + "/1", base + ":verb", base + "x", base[:-1]}
    for p in prefixes:
        pattern = _prefixes_pattern([p])
        for path in sorted(paths):
            assert (pattern.match(path) is not None) == _under(path, p), (p, path)
    both = _prefixes_pattern(prefixes[:3])
    for path in sorted(paths):
        assert (both.match(path) is not None) == any(_under(path, p) for p in prefixes[:3])
    assert _prefixes_pattern([]).match("/anything") is None


CALLS_BASE = (
    "context: a\ndeployments:\n"
    "  a-api: {entry_point: api, trigger: http, routes: [/api/a]%s}\n"
    "  a-ev: {entry_point: on_event, trigger: event, subscribes: [b.done]}\n"
)
B_MANIFEST = (
    "context: b\ndeployments:\n"
    "  b-api: {entry_point: api, trigger: http, routes: [/api/b], publishes: [b.done]}\n"
)


def test_calls_lists_the_http_deployments_a_deployment_calls(tmp_path):
    write(tmp_path, "a", CALLS_BASE % ", calls: [b-api]")
    write(tmp_path, "b", B_MANIFEST)
    cat = load(tmp_path)
    assert cat.deployments["a-api"].calls == ("b-api",)
    assert cat.deployments["b-api"].calls == ()  # optional, empty by default
    assert cat.deployments["a-ev"].calls == ()


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        ("[nobody-api]", "a/function.yaml: deployments.a-api.calls: 'nobody-api' is no deployment"),
        ("[a-ev]", "deployments.a-api.calls: 'a-ev' is not an http deployment (trigger: event)"),
        ("[a-api]", "deployments.a-api.calls: a deployment does not call itself"),
        ("[b-api, b-api]", "deployments.a-api.calls: names a deployment twice"),
        ("b-api", "deployments.a-api.calls: must be a list of strings"),
    ],
)
def test_calls_must_name_other_http_deployments(tmp_path, calls, message):
    write(tmp_path, "a", CALLS_BASE % f", calls: {calls}")
    write(tmp_path, "b", B_MANIFEST)
    with pytest.raises(ManifestError) as err:
        load(tmp_path)
    assert message in str(err.value)


def test_repository_manifests_declare_their_service_calls():
    deps = catalog().deployments
    assert deps["users-api"].calls == ("auth-api",)  # PUT /api/auth/credentials/{id}
    assert deps["console-web"].calls == ("auth-api",)  # the BFF's /api/auth/login etc.
    assert deps["gateway"].calls == ()  # it proxies; it does not use shared.clients.call


# -- one publishing context per event type ---------------------------------------------------

PUBLISHER = "context: %s\ndeployments:\n%s"
API = "  %s-api: {entry_point: api, trigger: http, routes: [/api/%s], publishes: [%s]}\n"
JOB = "  %s-job: {entry_point: api, trigger: schedule, schedule: '* * * * *', publishes: [%s]}\n"


def test_an_event_type_published_by_two_contexts_is_an_error_naming_both_files(tmp_path):
    write(tmp_path, "a", PUBLISHER % ("a", API % ("a", "a", "thing.done")))
    write(tmp_path, "b", PUBLISHER % ("b", API % ("b", "b", "other.done, thing.done")))
    with pytest.raises(ManifestError) as err:
        load(tmp_path)
    message = str(err.value)
    assert "b/function.yaml: deployments.b-api.publishes:" in message
    assert "'thing.done' is also published by a-api in " in message
    assert f"{tmp_path / 'a' / 'function.yaml'}; " in message
    assert "exactly one publishing context" in message


def test_several_deployments_of_one_context_may_publish_an_event_type(tmp_path):
    write(
        tmp_path,
        "a",
        PUBLISHER % ("a", API % ("a", "a", "thing.done") + JOB % ("a", "thing.done")),
    )
    cat = load(tmp_path)
    assert cat.topics == ("thing.done",)
    assert cat.deployments["a-job"].publishes == ("thing.done",)


def test_repository_event_types_have_one_publishing_context_each():
    owners: dict[str, set[str]] = {}
    for d in catalog().deployments.values():
        for t in d.publishes:
            owners.setdefault(t, set()).add(d.context)
    assert owners and all(len(c) == 1 for c in owners.values()), owners


# -- platform roles --------------------------------------------------------------------------

ROLE_BASE = (
    "context: a\ndeployments:\n"
    "  a-api: {entry_point: api, trigger: http, routes: [/api/a], uses: [sql]%s}\n"
    "  a-job: {entry_point: api, trigger: schedule, schedule: '* * * * *'%s}\n"
)


def test_platform_roles_are_declared_on_deployments(tmp_path):
    write(
        tmp_path,
        "a",
        ROLE_BASE % (", platform_roles: [outbox-operator, dead-letter-operator]", ""),
    )
    cat = load(tmp_path)
    assert cat.deployments["a-api"].platform_roles == ("dead-letter-operator", "outbox-operator")
    assert cat.deployments["a-job"].platform_roles == ()
    assert cat.with_role("dead-letter-operator") == ("a-api",)
    assert cat.with_role("outbox-relay") == ()
    assert cat.publishes_everything(cat.deployments["a-api"])
    assert not cat.publishes_everything(cat.deployments["a-job"])
    with pytest.raises(KeyError):
        cat.with_role("janitor")


@pytest.mark.parametrize(
    ("api", "job", "message"),
    [
        (
            ", platform_roles: [janitor]",
            "",
            "deployments.a-api.platform_roles: 'janitor' is not among ['dead-letter-operator',",
        ),
        (
            "",
            ", platform_roles: [outbox-relay]",
            "deployments.a-job.platform_roles: 'outbox-relay' needs `uses: [sql]`",
        ),
        (
            ", platform_roles: [outbox-operator, outbox-operator]",
            "",
            "deployments.a-api.platform_roles: names a role twice",
        ),
        (
            ", platform_roles: outbox-relay",
            "",
            "deployments.a-api.platform_roles: must be a list of strings",
        ),
    ],
)
def test_invalid_platform_roles_name_file_and_key(tmp_path, api, job, message):
    write(tmp_path, "a", ROLE_BASE % (api, job))
    with pytest.raises(ManifestError) as err:
        load(tmp_path)
    assert f"a/function.yaml: {message}" in str(err.value)


def test_repository_manifests_declare_the_platform_roles():
    cat = catalog()
    assert cat.with_role("outbox-relay") == ("ops-outbox-relay",)
    assert cat.with_role("dead-letter-operator") == ("ops-api",)
    assert set(cat.with_role("outbox-operator")) == {"ops-outbox-relay", "ops-api", "ops-cleanup"}


FS_API = (
    "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http, routes: [/api/x],"
    " uses: [firestore]}\n"
)
RULE = (
    "  - {kind: raw_things, collection: a_things, timestamp_field: received_at,"
    " keep_days: 30, description: Raw things older than 30 days}\n"
)


def test_a_context_declares_retention_rules_for_its_collections(tmp_path):
    write(tmp_path, "a", FS_API + "retention:\n" + RULE)
    (ctx,) = load(tmp_path).contexts
    (rule,) = ctx.retention
    assert (rule.kind, rule.collection, rule.timestamp_field, rule.keep_days) == (
        "raw_things",
        "a_things",
        "received_at",
        30,
    )
    assert rule.description == "Raw things older than 30 days"
    write(tmp_path, "a", FS_API)
    assert load(tmp_path).contexts[0].retention == ()


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("retention: {kind: x}\n", "retention: must be a list of rules"),
        ("retention:\n" + RULE.replace("keep_days: 30", "keep_days: 0"), "keep_days: must be"),
        ("retention:\n" + RULE.replace("keep_days: 30", "keep_days: '30'"), "keep_days: must"),
        ("retention:\n" + RULE.replace("kind: raw_things", "kind: Raw"), "kind: must be"),
        ("retention:\n" + RULE.replace("kind: raw_things", "kind: outbox"), "rule of ops itself"),
        ("retention:\n" + RULE + RULE, "duplicate kind 'raw_things'"),
        ("retention:\n" + RULE.replace("a_things", "a/b/c"), "collection: must be a top-level"),
        ("retention:\n" + RULE.replace("received_at", "received-at"), "timestamp_field: must"),
        (
            "retention:\n" + RULE.replace(", description: Raw things older than 30 days", ""),
            "retention[0].description: is required",
        ),  # fmt: skip
        ("retention:\n" + RULE.replace("keep_days: 30", "keep_days: 30, ttl: 1"), "ttl: unknown"),
    ],
)
def test_invalid_retention_rules_name_file_and_key(tmp_path, rules, message):
    write(tmp_path, "a", FS_API + rules)
    with pytest.raises(ManifestError) as err:
        load(tmp_path)
    assert message in str(err.value) and "function.yaml" in str(err.value)


def test_retention_needs_firestore_and_a_kind_unique_across_contexts(tmp_path):
    no_fs = (
        "context: a\ndeployments:\n  a-api: {entry_point: api, trigger: http, routes: [/api/x]}\n"
    )
    write(tmp_path, "a", no_fs + "retention:\n" + RULE)
    with pytest.raises(ManifestError, match="Firestore collections the context uses"):
        load(tmp_path)
    write(tmp_path, "a", FS_API + "retention:\n" + RULE)
    other = FS_API.replace("context: a", "context: b").replace("a-api", "b-api")
    write(tmp_path, "b", other.replace("/api/x", "/api/y") + "retention:\n" + RULE)
    with pytest.raises(ManifestError, match="kind 'raw_things' also declared in"):
        load(tmp_path)


def test_ops_applies_the_rules_the_manifests_declare(tmp_path, monkeypatch):
    from functions.ops import service

    write(tmp_path, "a", FS_API + "retention:\n" + RULE)
    monkeypatch.setattr(service, "catalog", lambda: load(tmp_path))
    rules = {r.kind: r for r in service.rules()}
    assert {"outbox", "processed", "raw_things"} <= set(rules)
    got = rules["raw_things"]
    assert (got.store, got.collection, got.timestamp_field, got.context) == (
        "firestore",
        "a_things",
        "received_at",
        "a",
    )
    assert got.keep.days == 30 and got.description == "Raw things older than 30 days"
