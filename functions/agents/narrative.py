"""The optional narrative of an investigation: its findings retold in a few plain sentences by a
hosted model (Vertex AI Gemini, through Google's own client library `google-genai`).

Off by default: unless `AGENTS_NARRATIVE_MODEL` names a model, `narrate` returns None at once
and nothing is imported or called. When on, the worker asks the model once per finished
analysis, outside any transaction, with a bounded wait (`AGENTS_NARRATIVE_TIMEOUT_S`, one
attempt: a retry would double the bound); whatever goes wrong (no credentials, a refusal, an
error status, no answer in time, an empty answer) the narrative is `unavailable` with the
reason and the investigation completes as it would without it. The analysis never depends on
the model: the prompt is the findings' own text (codes, severities, messages, the summary),
never the package's evidence, and the model's words are stored next to them, never in them.

`AGENTS_NARRATIVE_ENDPOINT` overrides the API's base URL (a Private Service Connect endpoint,
say; tests point it at a local server speaking `generateContent`). Credentials are the
runtime's (ADC: the worker's service account, which then needs `roles/aiplatform.user`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from functions.agents import model
from shared import logging as slog
from shared.config import settings

_log = slog.get_logger(__name__)

MAX_CHARS = 2_000  # of the stored narrative
MAX_OUTPUT_TOKENS = 512
Status = Literal["written", "unavailable"]

INSTRUCTION = (
    "You write for a logistics operator. Retell the findings of an automated investigation "
    "of one package (or one route plan) in two to four plain sentences: what happened, how "
    "serious it is, what to check first. Use only the findings given; add no facts, numbers "
    "or causes that they do not state. No headings, no lists, no markdown."
)


@dataclass(frozen=True)
class Config:
    model: str
    project: str
    location: str
    endpoint: str | None
    timeout_s: float


def config() -> Config | None:
    """The narrative model's configuration, or None when the narrative is off."""
    s = settings()
    if not s.agents_narrative_model.strip():
        return None
    return Config(
        model=s.agents_narrative_model.strip(),
        project=s.project_id,
        location=s.agents_narrative_location.strip() or "global",
        endpoint=s.agents_narrative_endpoint.strip() or None,
        timeout_s=min(max(s.agents_narrative_timeout_s, 1.0), 60.0),
    )


def prompt(kind: str, outcome: model.Outcome) -> str:
    """What the model is told: the kind, the summary and each finding's code, severity and
    message (the evidence stays out: it adds coordinates and ids, not meaning)."""
    lines = [f"Investigation kind: {kind}", f"Summary: {outcome.summary}", "Findings:"]
    lines += [f"- [{f.severity}] {f.code}: {f.message}" for f in outcome.findings]
    if not outcome.findings:
        lines.append("- none")
    return "\n".join(lines)


def narrate(kind: str, outcome: model.Outcome) -> dict[str, Any] | None:
    """The narrative document stored with the investigation; None when the narrative is off.
    Never raises: a model that fails leaves the narrative unavailable, with the reason."""
    cfg = config()
    if cfg is None:
        return None
    try:
        text = _generate(cfg, prompt(kind, outcome))
    except Exception as exc:  # the model is optional: nothing it does may fail the analysis
        reason = _reason(exc, cfg)
        _log.warning("narrative unavailable (%s): %s", cfg.model, reason)
        return _doc("unavailable", cfg, None, reason)
    if not text:
        return _doc("unavailable", cfg, None, "The model returned no text.")
    return _doc("written", cfg, text[:MAX_CHARS], None)


def _doc(status: Status, cfg: Config, text: str | None, reason: str | None) -> dict[str, Any]:
    return {"status": status, "text": text, "model": cfg.model, "reason": reason}


@functools.lru_cache(maxsize=1)
def _client(cfg: Config) -> Any:
    """One client per instance and configuration (created on the first narrative)."""
    from google import genai
    from google.genai import types

    return genai.Client(
        vertexai=True,
        project=cfg.project,
        location=cfg.location,
        http_options=types.HttpOptions(
            base_url=cfg.endpoint,
            api_version="v1",
            timeout=int(cfg.timeout_s * 1000),  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def _generate(cfg: Config, text: str) -> str:
    from google.genai import types

    answer = _client(cfg).models.generate_content(
        model=cfg.model,
        contents=text,
        config=types.GenerateContentConfig(
            system_instruction=INSTRUCTION,
            temperature=0.2,
            max_output_tokens=MAX_OUTPUT_TOKENS,
        ),
    )
    return (answer.text or "").strip()


def _reason(exc: BaseException, cfg: Config) -> str:
    """The failure in plain words (never the prompt, never credentials)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        status = getattr(exc, "status", None) or ""
        return f"The model answered {code} {status}".strip() + "."
    name = type(exc).__name__
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return f"The model did not answer within {cfg.timeout_s:g} s."
    if "DefaultCredentialsError" in name or "RefreshError" in name:
        return "No credentials for Vertex AI (the worker's service account)."
    return f"The model could not be reached ({name})."
