"""Fixtures of the browser tests: headless Chromium (Debian's, driven by Playwright) against the
whole local stack (`stack` from tests/conftest.py), and an API client for setting up data.

Chromium is the system one (`/usr/bin/chromium`, or `CHROMIUM_PATH`): Playwright's own browser
downloads are never used. When it is missing the tests fail (not skip) and say how to install it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import CSP_SPY, Api, Problems, seed

ROOT = Path(__file__).resolve().parent.parent.parent
OUTPUT = ROOT / "test-output" / "browser"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def chromium_path() -> str:
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests drive the system "
            "Chromium headless. Install it with `apt-get install chromium` (or set CHROMIUM_PATH "
            "to a Chromium binary); `playwright install` is not used.",
            pytrace=False,
        )
    return str(path)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python package playwright is missing: run `make venv` (requirements-dev.txt)",
            pytrace=False,
        )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser: Any, stack: Any) -> Iterator[Any]:
    ctx = browser.new_context(
        base_url=stack.gateway_url,
        viewport={"width": 1440, "height": 1000},
        reduced_motion="reduce",
        locale="en-GB",
        timezone_id="UTC",
    )
    ctx.set_default_timeout(15_000)
    ctx.add_init_script(CSP_SPY)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def open_page(browser: Any, stack: Any, problems: Problems) -> Iterator[Any]:
    """open_page(width, height=900, motion="no-preference"): a watched page in a new context of
    that viewport (motion as a user who has not asked for reduced motion, unless told)."""
    contexts: list[Any] = []

    def make(width: int, height: int = 900, motion: str = "no-preference") -> Any:
        ctx = browser.new_context(
            base_url=stack.gateway_url,
            viewport={"width": width, "height": height},
            reduced_motion=motion,
            locale="en-GB",
            timezone_id="UTC",
        )
        ctx.set_default_timeout(15_000)
        ctx.add_init_script(CSP_SPY)
        contexts.append(ctx)
        return problems.watch(ctx.new_page())

    try:
        yield make
    finally:
        for ctx in contexts:
            ctx.close()


@pytest.fixture(scope="session")
def seeded(stack: Any) -> Api:
    """The stack with `make seed`'s demo data (loaded once per session; the seeds are
    idempotent), and an admin API client."""
    client = Api(stack.gateway_url, stack.admin_email, stack.admin_password)
    seed(client)
    return client


@pytest.fixture
def problems() -> Problems:
    return Problems()


@pytest.fixture
def page(context: Any, problems: Problems) -> Any:
    return problems.watch(context.new_page())


@pytest.fixture(scope="module")
def api(stack: Any) -> Api:
    return Api(stack.gateway_url, stack.admin_email, stack.admin_password)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return OUTPUT
