"""Fixtures of the fault suite: the session's local stack (tests/conftest.py), an admin client
of its gateway, and a ledger of acknowledged writes."""

from collections.abc import Iterator

import pytest

from tests.faults.support import Gateway, Ledger


@pytest.fixture(scope="module")
def gw(stack) -> Gateway:
    return Gateway(stack)


@pytest.fixture
def ledger(stack) -> Iterator[Ledger]:
    book = Ledger(stack)
    try:
        yield book
    finally:
        book.close()
