"""The console's automation pages in headless Chromium through the gateway, against a real
OpenSSH server (tests/sshd.py) the stack's automation-runner connects to: a credential is stored
once (never shown back), an SSH target is created without its host key, "Test connection"
names the failing stage and the presented key, the key is pinned and the test passes (DNS, TCP,
host key, auth); a two-step job is built in the step editor (add, reorder, remove, a field
error from the API next to its step), saved as a second version and run; its output lines
appear while the page stays loaded, stderr marked, and the run succeeds; a long run's output
follows the end until the user scrolls up, then offers to jump back, and the run is cancelled;
runs are filtered in the URL; a schedule shows its next five fire times, pauses and resumes.
Every page is checked with axe, for console errors and CSP violations, and screenshotted at
1440 and 375 px under test-output/browser/ (no page wider than a phone's screen)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from browser_support import Problems, menu, sign_in

# Two runs through Pub/Sub, a long one followed and cancelled, and every page twice: longer
# than the suite's default 300 s on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
pytest_plugins = ["tests.sshd"]

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
AXE_RUN = """async () => {
  const result = await window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  });
  return result.violations.map((v) => `${v.id}: ${v.nodes.slice(0, 3)
    .map((n) => n.target.join(' ')).join(' | ')}`);
}"""
RUN = 60_000  # a run goes through Pub/Sub to automation-runner: slow on a loaded machine
LOG_AT_END = "(el) => el.scrollHeight - el.scrollTop - el.clientHeight < 10"


def assert_clean(page: Any, problems: Problems) -> None:
    assert problems.csp(page) == [], "Content-Security-Policy violations"
    assert problems.items == [], "errors in the browser console"


def settled(page: Any) -> None:
    page.wait_for_function(
        "() => !document.querySelector('.loading-row, #main > [role=status] .spinner-border')"
    )


def shoot(page: Any, output_dir: Path, name: str, violations: dict[str, list[str]]) -> None:
    settled(page)
    page.screenshot(path=str(output_dir / f"automation-{name}.png"), full_page=True)
    found = page.evaluate(AXE_RUN)
    if found:
        violations[name] = found


def test_targets_jobs_live_runs_cancel_and_schedules(
    page, problems, stack, sshd, api, output_dir, open_page
):
    page.context.add_init_script(path=str(AXE))
    axe: dict[str, list[str]] = {}
    suffix = uuid.uuid4().hex[:6]
    sign_in(page, stack.admin_email, stack.admin_password)

    # --- a credential and a target -------------------------------------------------------
    menu(page, "Automation", "Targets")
    page.locator("#target-table").wait_for()
    shoot(page, output_dir, "targets", axe)
    page.locator("#new-target").click()
    cred = page.locator("#credential-form")
    cred.locator("#c-name").fill(f"browser-key-{suffix}")
    cred.locator("#c-secret").fill(sshd.private_key)
    cred.get_by_role("button", name="Store credential").click()
    page.locator("#credential-stored").wait_for()
    assert cred.locator("#c-secret").input_value() == ""
    key_body = sshd.private_key.splitlines()[1]
    assert key_body not in page.content(), "the secret is shown back"

    form = page.locator("#target-form")
    name = f"browser-sshd-{suffix}"
    form.locator("[name=name]").fill(name)
    form.locator("[name=host]").fill(sshd.host)
    form.locator("[name=port]").fill(str(sshd.port))
    form.locator("[name=tags]").fill(f"browser, b-{suffix}")
    form.locator("[name=user]").fill(sshd.user)
    assert (
        form.locator("#f-credential_id option:checked")
        .inner_text()
        .startswith(f"browser-key-{suffix}")
    )
    shoot(page, output_dir, "target-new", axe)
    form.get_by_role("button", name="Create target").click()
    page.locator("h1", has_text=name).wait_for()
    target_url = page.url
    target_id = target_url.rsplit("/", 1)[1]

    # no host key pinned: the test names the stage and shows the presented key; pin it
    page.locator("#test-connection").click()
    page.locator("#test-summary").wait_for(timeout=RUN)
    assert "host key" in page.locator("#test-summary").inner_text()
    failed = page.locator("#test-steps li[data-ok=false]")
    assert failed.get_attribute("data-stage") == "host_key"
    assert page.locator("#presented-key").inner_text() == sshd.host_fingerprint
    page.locator("#pin-key").click()
    page.locator("dd code", has_text=sshd.host_fingerprint).wait_for()
    page.locator("#test-connection").click()
    page.locator("#test-summary", has_text="Connected").wait_for(timeout=RUN)
    stages = page.locator("#test-steps li").evaluate_all(
        "(els) => els.map((e) => [e.dataset.stage, e.dataset.ok])"
    )
    assert stages == [["dns", "true"], ["tcp", "true"], ["host_key", "true"], ["auth", "true"]]
    assert [t.strip() for t in page.locator("#test-steps .fw-semibold").all_inner_texts()] == [
        "DNS",
        "TCP",
        "Host key",
        "Authentication",
    ]
    shoot(page, output_dir, "target-detail", axe)

    # --- a two-step job in the step editor ----------------------------------------------
    menu(page, "Automation", "Jobs")
    page.locator("#job-table").wait_for()
    page.locator("#new-job").click()
    job = page.locator("#job-form")
    job_name = f"browser-job-{suffix}"
    job.locator("[name=name]").fill(job_name)
    job.locator(f"#jt-{target_id}").check()
    job.locator("#add-param").click()
    param = job.locator(".param-item").first
    param.locator("[data-field=name]").fill("WHO")
    param.locator("[data-field=default]").fill("fleet")
    steps = job.locator(".step-item")
    steps.nth(0).locator("[data-field=name]").fill("hello")
    steps.nth(0).locator("[data-field=command]").fill('echo "hello $WHO"')
    job.locator("#add-step").click()
    steps.nth(1).locator("[data-field=name]").fill("where")
    job.locator("#add-step").click()
    steps.nth(2).locator("[data-field=name]").fill("scratch")
    steps.nth(2).locator("[data-move=up]").click()  # scratch is second now
    names = steps.locator("[data-field=name]")
    assert [names.nth(i).input_value() for i in range(3)] == ["hello", "scratch", "where"]
    assert steps.nth(1).locator(".step-number").inner_text() == "Step 2"
    steps.nth(1).locator("[data-move=remove]").click()
    assert steps.count() == 2
    assert [names.nth(i).input_value() for i in range(2)] == ["hello", "where"]
    # the second step has no command yet: the API's field error sits next to it
    job.get_by_role("button", name="Create job").click()
    steps.nth(1).locator("[data-field=command].is-invalid").wait_for()
    assert steps.nth(0).locator(".is-invalid").count() == 0
    problems.items.clear()  # the browser logs the 422
    steps.nth(1).locator("[data-field=command]").fill('sleep 1; echo "on $(hostname)" >&2')
    shoot(page, output_dir, "job-new", axe)
    job.get_by_role("button", name="Create job").click()
    page.locator("h1", has_text=job_name).wait_for()
    job_url = page.url
    job_id = job_url.rsplit("/", 1)[1]
    assert page.locator("#job-steps li").count() == 2

    # a change is the next version; the first stays readable
    page.locator("#edit-job").click()
    page.locator("#job-form [name=description]").fill("Says hello, then where it ran.")
    page.get_by_role("button", name="Save as version 2").click()
    page.locator("#job-version option:checked", has_text="Version 2 (current)").wait_for(
        state="attached"
    )
    page.locator("#job-version").select_option("1")
    page.locator("#old-version").wait_for()
    assert page.url.endswith(f"/jobs/{job_id}?version=1")
    page.goto(f"/#/jobs/{job_id}")
    page.locator("#run-form").wait_for()
    settled(page)
    shoot(page, output_dir, "job-detail", axe)

    # --- run it and watch the output arrive ---------------------------------------------
    page.locator("#rp-WHO").fill("browser")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r".*#/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    page.evaluate("() => { window.__samePage = true; }")
    page.locator("#run-log .log-line", has_text="hello browser").wait_for(timeout=RUN)
    page.locator("#run-log .log-stderr", has_text="on ").wait_for(timeout=RUN)
    page.locator("#run-status", has_text="Succeeded").wait_for(timeout=RUN)
    assert page.evaluate("() => window.__samePage === true"), "the page was reloaded"
    assert page.locator("#run-log .log-stderr .log-tag").first.inner_text() == "stderr"
    assert page.locator("#run-targets .step-exit").all_inner_texts() == ["0", "0"]
    assert page.locator("#run-targets .step-status").all_inner_texts() == [
        "Succeeded",
        "Succeeded",
    ]
    page.locator("#log-state", has_text="finished").wait_for()
    assert page.locator("#cancel-run").count() == 0
    shoot(page, output_dir, "run-detail", axe)

    # --- a long run: follow, scroll up, jump back, cancel --------------------------------
    resp = api(
        "POST",
        "/api/jobs",
        json={
            "name": f"browser-long-{suffix}",
            "target_ids": [target_id],
            "steps": [
                {
                    "kind": "command",
                    "name": "long",
                    "timeout_s": 300,
                    "command": "echo started; i=0; while [ $i -lt 2000 ]; do i=$((i+1)); "
                    'echo "tick $i"; sleep 0.1; done',
                }
            ],
        },
    )
    assert resp.status_code == 201, resp.text
    long_id = resp.json()["id"]
    menu(page, "Automation", "Runs")
    page.locator("#new-run").click()
    page.locator("#run-job").select_option(long_id)
    page.locator("#run-targets li", has_text=name).wait_for()
    shoot(page, output_dir, "run-new", axe)
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r".*#/runs/[0-9a-f-]{36}$"))
    long_run = page.url.rsplit("/", 1)[1]
    pane = page.locator("#run-log")
    pane.locator(".log-stdout", has_text="started").wait_for(timeout=RUN)
    page.locator("#run-status", has_text="Running").wait_for(timeout=RUN)
    page.wait_for_function(
        "() => document.querySelectorAll('#run-log .log-line').length > 60", timeout=RUN
    )
    assert pane.evaluate(LOG_AT_END), "the output does not follow the end"
    assert page.locator("#log-jump").is_hidden()
    pane.evaluate("(el) => { el.scrollTop = 0; }")
    page.locator("#log-jump").wait_for()
    seen = pane.locator(".log-line").count()
    page.wait_for_function(
        f"() => document.querySelectorAll('#run-log .log-line').length > {seen + 20}",
        timeout=RUN,
    )
    assert pane.evaluate("(el) => el.scrollTop") == 0, "new lines moved the user's scroll"
    assert "new" in page.locator("#log-jump").inner_text()
    seqs = pane.locator(".log-line").evaluate_all("(els) => els.map((e) => Number(e.dataset.seq))")
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    page.locator("#log-jump").click()
    assert pane.evaluate(LOG_AT_END)
    page.locator("#log-jump").wait_for(state="hidden")
    shoot(page, output_dir, "run-live", axe)
    page.locator("#cancel-run").click()
    page.get_by_role("button", name="Stop it").click()
    page.locator("#run-status", has_text="Cancelled").wait_for(timeout=RUN)
    assert page.locator("#run-targets .step-status").all_inner_texts() == ["Cancelled"]
    page.locator("#log-state", has_text="finished").wait_for(timeout=RUN)
    assert page.evaluate("() => window.__samePage === true")

    # --- runs: filters in the URL --------------------------------------------------------
    menu(page, "Automation", "Runs")
    page.locator("#run-table tbody tr[data-id]").first.wait_for()
    page.locator("#rf-job").select_option(job_id)
    page.locator("#rf-status").select_option("succeeded")
    page.locator("#run-filters").get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**/#/runs?job_id={job_id}&status=succeeded")
    page.locator(f"#run-table tr[data-id='{run_id}']").wait_for()
    assert page.locator("#run-table tbody tr[data-id]").count() == 1
    assert page.locator(f"#run-table tr[data-id='{long_run}']").count() == 0
    shoot(page, output_dir, "runs", axe)
    page.reload()
    page.locator(f"#run-table tr[data-id='{run_id}']").wait_for()
    assert page.locator("#rf-status").input_value() == "succeeded"

    # --- schedules -----------------------------------------------------------------------
    page.goto(f"/#/schedules/new?job_id={job_id}")
    sform = page.locator("#schedule-form")
    sform.locator("[name=cron]").fill("0 3 * * *")
    sform.locator("[name=time_zone]").fill("Europe/Berlin")
    sform.locator("#sp-WHO").fill("nightly")
    shoot(page, output_dir, "schedule-new", axe)
    sform.get_by_role("button", name="Create schedule").click()
    page.locator("#schedule-next li").first.wait_for()
    schedule_id = page.url.rsplit("/", 1)[1]
    times = page.locator("#schedule-next li").all_inner_texts()
    assert len(times) == 5 and all("03:00" in t for t in times), times
    shoot(page, output_dir, "schedule-detail", axe)
    page.locator("button[data-action=pause]").click()
    page.locator("#schedule-state", has_text="Paused").wait_for()
    assert page.locator("#schedule-next li").count() == 0
    page.locator("button[data-action=resume]").click()
    page.locator("#schedule-state", has_text="Enabled").wait_for()
    assert page.locator("#schedule-next li").count() == 5
    page.goto(f"/#/schedules?job_id={job_id}")
    row = page.locator(f"#schedule-table tr[data-id='{schedule_id}']")
    row.wait_for()
    assert "03:00" in row.locator(".schedule-next").inner_text()
    row.locator("button[data-action=pause]").click()
    row.locator(".schedule-state", has_text="Paused").wait_for()
    assert "Paused" in row.locator(".schedule-next").inner_text()
    shoot(page, output_dir, "schedules", axe)

    assert axe == {}, axe
    assert_clean(page, problems)

    # --- the same pages on a phone -------------------------------------------------------
    page.close()  # one page at a time on a loaded machine
    phone = open_page(375, 800, motion="reduce")
    phone.set_default_timeout(RUN)
    sign_in(phone, stack.admin_email, stack.admin_password)
    for shot, route, ready in (
        ("targets", "/targets", "#target-table tbody tr[data-id]"),
        ("target-new", "/targets/new", "#target-form"),
        ("target-detail", f"/targets/{target_id}", "#test-connection"),
        ("jobs", "/jobs", "#job-table tbody tr[data-id]"),
        ("job-new", "/jobs/new", "#job-form .step-item"),
        ("job-detail", f"/jobs/{job_id}", "#job-runs table"),
        ("run-detail", f"/runs/{run_id}", "#run-log .log-line"),
        ("run-new", f"/runs/new?job_id={job_id}", "#run-form"),
        ("runs", "/runs", "#run-table tbody tr[data-id]"),
        ("schedules", "/schedules", "#schedule-table tbody tr[data-id]"),
        ("schedule-new", "/schedules/new", "#schedule-form"),
        ("schedule-detail", f"/schedules/{schedule_id}", "#schedule-next"),
    ):
        phone.goto(f"/#{route}")
        phone.locator(ready).first.wait_for(timeout=RUN)
        settled(phone)
        phone.screenshot(path=str(output_dir / f"automation-{shot}-375.png"), full_page=True)
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 375, f"{route} is {width}px wide on a 375px phone"
    assert problems.csp(phone) == []
    assert problems.items == []


def test_a_viewer_reads_but_is_offered_no_changes(stack, sshd, api, open_page, problems):
    """Viewers read every automation page; the buttons the API would refuse them are not
    offered (the API still decides: its 403s are tested in tests/e2e/test_automation.py)."""
    suffix = uuid.uuid4().hex[:6]
    email, password = f"auto-viewer-{suffix}@example.com", "viewer-password-123"
    made = api(
        "POST",
        "/api/users",
        json={
            "email": email,
            "name": "Automation viewer",
            "roles": ["viewer"],
            "password": password,
        },
    )
    assert made.status_code == 201, made.text
    target = api(
        "POST",
        "/api/targets",
        json={
            "name": f"viewer-target-{suffix}",
            "kind": "ssh",
            "host": sshd.host,
            "port": sshd.port,
            "options": {"user": sshd.user},
        },
    )
    assert target.status_code == 201, target.text
    tid = target.json()["id"]
    job = api(
        "POST",
        "/api/jobs",
        json={"name": f"viewer-job-{suffix}", "target_ids": [tid],
              "steps": [{"kind": "command", "name": "s", "command": "true"}]},
    )  # fmt: skip
    assert job.status_code == 201, job.text
    jid = job.json()["id"]
    sched = api("POST", "/api/schedules", json={"job_id": jid, "cron": "*/5 * * * *"})
    assert sched.status_code == 201, sched.text

    page = open_page(1440, 900, motion="reduce")
    page.set_default_timeout(RUN)
    sign_in(page, email, password)
    page.goto("/#/targets")
    page.locator(f"#target-table tr[data-id='{tid}']").wait_for()
    assert page.locator("#new-target").count() == 0
    page.goto(f"/#/targets/{tid}")
    page.locator("h1", has_text=f"viewer-target-{suffix}").wait_for()
    assert page.locator("#test-connection").count() == 0
    assert page.locator("#target-edit").count() == 0
    page.goto("/#/targets/new")
    page.locator("#forbidden").wait_for()
    page.goto(f"/#/jobs/{jid}")
    page.locator("#job-steps").wait_for()
    assert page.locator("#edit-job, #delete-job, #run-form").count() == 0
    page.goto("/#/runs")
    page.locator("#run-table").wait_for()
    assert page.locator("#new-run").count() == 0
    page.goto(f"/#/schedules/{sched.json()['id']}")
    page.locator("#schedule-next li").first.wait_for()
    assert page.locator("button[data-action], #delete-schedule, #schedule-edit").count() == 0
    page.goto("/#/schedules")
    page.locator("#schedule-table tbody tr[data-id]").first.wait_for()
    assert page.locator("#new-schedule, #schedule-table button").count() == 0
    assert_clean(page, problems)
