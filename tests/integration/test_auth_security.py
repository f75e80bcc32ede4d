"""Security findings of the review (issue 12, item 4), each shown against the real parts: tokens
whose lifetime exceeds the maximum, PyJWT's error text kept out of 401 bodies, the local
bootstrap password and the demo accounts refused outside local (docs/decisions/0032)."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from functions.auth import model
from shared import auth as sauth
from shared.config import ConfigError, settings
from shared.errors import Unauthorized
from tests.integration.support import configure, reset_platform


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    configure(monkeypatch, SWITCHYARD_LOCAL_DIR=str(tmp_path))
    yield
    reset_platform()


def _signed(**over):
    now = int(time.time())
    s = settings()
    claims = {
        "iss": s.jwt_issuer,
        "aud": s.jwt_audience,
        "sub": "someone",
        "roles": ["viewer"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        **over,
    }
    pem = (sauth.ensure_local_keys() / "signing.pem").read_text()
    kid = jwt.get_unverified_header(sauth.issue_access_token("x", [])[0])["kid"]
    return jwt.encode(claims, pem, "RS256", headers={"kid": kid, "typ": "at+jwt"})


# --- token lifetime and error text ------------------------------------------------------------


def test_a_token_living_longer_than_the_maximum_is_refused():
    now = int(time.time())
    assert sauth.verify(_signed(exp=now + settings().access_ttl_s)).sub == "someone"
    with pytest.raises(Unauthorized) as err:
        sauth.verify(_signed(exp=now + 30 * 24 * 3600))  # signed, but a month long
    assert err.value.detail == "The token's lifetime exceeds the maximum."
    with pytest.raises(Unauthorized):  # issued "in the future" to stretch the window
        sauth.verify(_signed(iat=now + 3600, nbf=now, exp=now + 3700))


def test_issuing_a_longer_token_than_the_maximum_is_a_bug():
    with pytest.raises(ValueError):
        sauth.issue_access_token("x", [], ttl_s=settings().access_ttl_s + 1)


@pytest.mark.parametrize(
    "over",
    [
        {"aud": "another-api"},
        {"iss": "evil"},
        {"nbf": int(time.time()) + 3600},
        {"iat": "yesterday"},
    ],
)
def test_pyjwt_error_text_stays_out_of_the_answer(over):
    with pytest.raises(Unauthorized) as err:
        sauth.verify(_signed(**over))
    detail = err.value.detail
    assert detail == "The token is not valid.", detail
    for leaked in ("audience", "issuer", "Invalid", "not yet valid", "must be"):
        assert leaked not in detail


def test_a_token_missing_a_claim_is_refused_without_library_text():
    token = _signed()
    claims = jwt.decode(token, options={"verify_signature": False})
    del claims["sub"]
    pem = (sauth.ensure_local_keys() / "signing.pem").read_text()
    kid = jwt.get_unverified_header(token)["kid"]
    bad = jwt.encode(claims, pem, "RS256", headers={"kid": kid, "typ": "at+jwt"})
    with pytest.raises(Unauthorized) as err:
        sauth.verify(bad)
    assert err.value.detail == "The token is not valid."


# --- local-only passwords ----------------------------------------------------------------------


def _outside_local(monkeypatch, **env):
    for name in ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHYARD_ENV", "prod")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings.cache_clear()


def test_the_local_bootstrap_password_is_refused_outside_local(monkeypatch):
    from shared.config import LOCAL_ONLY_PASSWORDS
    from tools.seed import LOCAL_ADMIN

    assert LOCAL_ADMIN[1] in LOCAL_ONLY_PASSWORDS
    _outside_local(monkeypatch, BOOTSTRAP_ADMIN_PASSWORD=LOCAL_ADMIN[1])
    with pytest.raises(ConfigError, match="local"):
        settings()
    monkeypatch.setenv("SWITCHYARD_ENV", "test")  # locally it is the documented default
    settings.cache_clear()
    assert settings().bootstrap_admin_password == LOCAL_ADMIN[1]


def test_demo_and_bootstrap_passwords_break_the_policy_outside_local():
    from functions.users.seed import DEMO_PASSWORD

    for password in (DEMO_PASSWORD, "switchyard-local-admin"):
        assert model.password_problems(password, "a@b.io", local=True) == []
        assert model.password_problems(password, "a@b.io", local=False) == [
            "is a local-only password (make dev / make seed)"
        ]


def test_a_demo_account_cannot_log_in_outside_local(monkeypatch):
    from functions.auth import service
    from functions.users.seed import DEMO_PASSWORD

    stored = service.hasher.hash(DEMO_PASSWORD)
    assert service.password_accepted(stored, DEMO_PASSWORD) is True
    _outside_local(monkeypatch)
    assert service.password_accepted(stored, DEMO_PASSWORD) is False
    good = service.hasher.hash("a real password of a prod user")
    assert service.password_accepted(good, "a real password of a prod user") is True


def test_make_seed_refuses_a_stack_outside_local(monkeypatch, capsys):
    from tools import seed

    _outside_local(monkeypatch, GATEWAY_URL="http://127.0.0.1:9")  # nothing listens there
    assert seed.main() == 2
    assert "local" in capsys.readouterr().err
