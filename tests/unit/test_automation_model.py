"""Automation's domain rules without I/O: parameter quoting, definitions, selection, grants,
cron slots and catch-up, statuses."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from functions.automation import model

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def target(tags=(), tid="t1", name="web-1"):
    return model.Target(
        tid, name, "ssh", "h", 22, tuple(tags), {"user": "u"}, None, False, NOW, NOW, 1
    )


def definition(**kw):
    base = dict(
        name="job",
        description=None,
        steps=(model.Step(kind="command", name="s", command="echo {{who}}", timeout_s=10),),
        parameters=(model.Parameter("who", default="world"),),
        target_ids=("t1",),
        target_tags=(),
        max_concurrency=2,
        timeout_s=60,
    )
    base.update(kw)
    return model.JobDefinition(**base)


EVIL = ["a b", "x'; rm -rf /; echo '", "$(id)", "`id`", "a\nb", '"; exit 1; "', "*", "-n", ""]


@pytest.mark.parametrize("value", EVIL)
def test_shell_command_quotes_every_value(value):
    cmd = model.shell_command('printf "%s|%s" "$V" {{V}}', {"V": value})
    out = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, check=True)
    assert out.stdout == f"{value}|{value}"


def test_powershell_quoting_doubles_single_quotes():
    cmd = model.shell_command("Write-Output {{V}}", {"V": "it's $(x)"}, shell="powershell")
    assert cmd == "$env:V = 'it''s $(x)'; Write-Output 'it''s $(x)'"


def test_parameters_defaults_required_unknown():
    declared = (
        model.Parameter("a", default="1"),
        model.Parameter("b", required=True),
        model.Parameter("c"),
    )
    assert model.resolve_parameters(declared, {"b": "x"}) == {"a": "1", "b": "x", "c": ""}
    with pytest.raises(model.BadParameters, match="Missing"):
        model.resolve_parameters(declared, {})
    with pytest.raises(model.BadParameters, match="Unknown") as err:
        model.resolve_parameters(declared, {"b": "x", "zz": "1"})
    assert err.value.status == 422


def test_definition_rules():
    model.check_definition(definition())
    with pytest.raises(model.BadDefinition, match="undeclared"):
        model.check_definition(definition(parameters=()))
    with pytest.raises(model.BadDefinition, match="Select targets"):
        model.check_definition(definition(target_ids=()))
    with pytest.raises(model.BadDefinition, match="timeout"):
        model.check_definition(definition(timeout_s=5))
    with pytest.raises(model.BadDefinition, match="shell variable"):
        model.check_definition(
            definition(parameters=(model.Parameter("PATH"), model.Parameter("who")))
        )
    d = definition()
    assert model.JobDefinition.of(d.as_json()) == d


def test_http_parts_encode_and_refuse_header_breaks():
    step = model.Step(
        kind="http",
        name="h",
        url="/x/{{p}}?q={{p}}",
        headers={"X-A": "{{p}}"},
        body='{"v": "{{p}}"}',
    )
    url, headers, body = model.http_request_parts(step, {"p": "a b/&"})
    assert (
        url == "/x/a%20b%2F%26?q=a%20b%2F%26"
        and headers == {"X-A": "a b/&"}
        and body == '{"v": "a b/&"}'
    )
    with pytest.raises(model.BadParameters):
        model.http_request_parts(step, {"p": "x\r\nInjected: 1"})


def test_selection_by_ids_or_all_tags():
    t = target(("web", "prod"))
    assert model.selects(t, ["t1"], [])
    assert model.selects(t, [], ["web", "prod"])
    assert not model.selects(t, [], ["web", "db"])
    assert not model.selects(t, [], [])


def test_grants():
    web, db = target(("web",), "1", "w"), target(("db",), "2", "d")
    assert model.may_run(["manager"], [], [web, db]) == []
    assert model.may_run(["operator"], ["web"], [web, db]) == ["d"]
    assert model.may_run(["operator"], ["*"], [web, db]) == []
    assert model.may_run(["viewer"], ["*"], [web]) == ["w"]


def test_tags_and_fingerprints():
    assert model.normalize_tags(["Web", "web", "db"]) == ("db", "web")
    with pytest.raises(model.BadDefinition):
        model.normalize_tags(["bad tag"])
    with pytest.raises(model.BadDefinition):
        model.check_options("ssh", {})
    with pytest.raises(model.BadDefinition):
        model.check_options("ssh", {"user": "u", "host_key": "md5:aa"})
    model.check_options("ssh", {"user": "u", "host_key": "SHA256:" + "a" * 43})


def schedule(**kw):
    base = dict(
        id="s",
        job_id="j",
        cron="*/5 * * * *",
        time_zone="Etc/UTC",
        parameters={},
        enabled=True,
        catch_up="once",
        last_due_at=NOW,
        created_by="u",
        created_at=NOW - timedelta(days=1),
        updated_at=NOW,
        version=1,
    )
    base.update(kw)
    return model.Schedule(**base)


def test_due_slot_on_time_late_and_paused():
    s = schedule()
    assert model.due_slot(s, NOW + timedelta(minutes=4)) == (None, False)
    assert model.due_slot(s, NOW + timedelta(minutes=5)) == (NOW + timedelta(minutes=5), True)
    # an hour of missed slots: once starts one run, for the latest slot
    assert model.due_slot(s, NOW + timedelta(minutes=62)) == (NOW + timedelta(minutes=60), True)
    skip = schedule(catch_up="skip")
    assert model.due_slot(skip, NOW + timedelta(minutes=62)) == (NOW + timedelta(minutes=60), True)
    assert model.due_slot(skip, NOW + timedelta(minutes=64)) == (NOW + timedelta(minutes=60), False)
    assert model.due_slot(schedule(enabled=False), NOW + timedelta(hours=1)) == (None, False)


def test_cron_in_a_time_zone_and_next_five():
    times = model.next_fire_times("0 9 * * *", "Europe/Berlin", NOW)
    assert len(times) == 5 and times[0] == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    assert model.check_cron(" */5  * * * * ") == "*/5 * * * *"
    for bad in ("* * * *", "61 * * * *", "* * * * * *"):
        with pytest.raises(model.BadDefinition):
            model.check_cron(bad)
    with pytest.raises(model.BadDefinition):
        model.check_time_zone("Mars/Olympus")


def test_overall_status():
    assert (
        model.overall_status(["succeeded", "succeeded"], cancelled=False, timed_out=False)
        == "succeeded"
    )
    assert (
        model.overall_status(["succeeded", "unreachable"], cancelled=False, timed_out=False)
        == "failed"
    )
    assert model.overall_status([], cancelled=False, timed_out=False) == "failed"
    assert model.overall_status(["succeeded"], cancelled=True, timed_out=False) == "cancelled"
