"""Fixtures of the end-to-end tests: a gateway client and the bootstrap admin's token."""

import pytest

from tests.e2e.support import ADMIN, Api, wait_for


@pytest.fixture(scope="module")
def api(stack) -> Api:
    return Api(stack.gateway_url)


@pytest.fixture(scope="module")
def admin(api) -> str:
    return wait_for(lambda: api.login(*ADMIN), timeout=30)
