"""The optional narrative's pure parts: what the model is told, and that off means off (no
client library loaded). The HTTP exchange with a fake Vertex AI is in
tests/integration/test_agents_api.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.agents import model, narrative
from shared.config import ConfigError, settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_prompt_is_the_findings_words_without_their_evidence():
    outcome = model.Outcome(
        findings=(
            model.Finding("stall", "warning", "No scan for 60 hours at Lyon.", {"lat": 45.76}),
        ),
        summary="1 anomaly.",
    )
    told = narrative.prompt("anomaly", outcome)
    assert told.splitlines() == [
        "Investigation kind: anomaly",
        "Summary: 1 anomaly.",
        "Findings:",
        "- [warning] stall: No scan for 60 hours at Lyon.",
    ]
    assert "45.76" not in told
    assert narrative.prompt("route", model.Outcome((), "ok")).endswith("- none")


def test_off_by_default_loads_no_client_library():
    code = (
        "import sys\n"
        "from functions.agents import model, narrative\n"
        "assert narrative.config() is None\n"
        "assert narrative.narrate('anomaly', model.Outcome((), 'nothing found')) is None\n"
        "assert not [m for m in sys.modules if m.startswith('google.genai')]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTS_NARRATIVE_")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_the_wait_is_bounded(monkeypatch):
    monkeypatch.setenv("AGENTS_NARRATIVE_MODEL", "gemini-2.5-flash")
    for given, used in (("0", 1.0), ("600", 60.0), ("7.5", 7.5)):
        monkeypatch.setenv("AGENTS_NARRATIVE_TIMEOUT_S", given)
        settings.cache_clear()
        cfg = narrative.config()
        assert cfg is not None and cfg.timeout_s == used
    monkeypatch.setenv("AGENTS_NARRATIVE_TIMEOUT_S", "nonsense")
    settings.cache_clear()
    with pytest.raises(ConfigError, match="AGENTS_NARRATIVE_TIMEOUT_S"):
        narrative.config()
    monkeypatch.delenv("AGENTS_NARRATIVE_TIMEOUT_S")
    settings.cache_clear()
    cfg = narrative.config()
    assert cfg is not None and (cfg.location, cfg.endpoint, cfg.timeout_s) == ("global", None, 10)
