"""Security findings of the review (issue 12, item 4), each shown against the real parts: tokens
whose lifetime exceeds the maximum, PyJWT's error text kept out of 401 bodies, the local
bootstrap password and the demo accounts refused outside local (docs/decisions/0032)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from functions.auth import model
from shared import auth as sauth
from shared import identity
from shared.config import ConfigError, settings
from shared.errors import Forbidden, Unauthorized
from tests.integration.support import assert_problem, configure, reset_platform


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


# --- Google identities of callers (push, scheduler, users-api) ---------------------------------


class FakeGoogleCerts:
    """Google's OAuth2 certificate endpoint (v1: {kid: PEM certificate}) as a local server, and
    a signer of ID tokens in Google's shape with the matching private key."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-google")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.kid = uuid.uuid4().hex
        self.pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.certs = {self.kid: cert.public_bytes(serialization.Encoding.PEM).decode()}
        self.reads = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.reads += 1
                body = json.dumps(fake.certs).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/oauth2/v1/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, email: str, *, key_pem: str | None = None, **over: object) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": "https://auth-api-xyz.a.run.app",
            "sub": "1234567890",
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
            **over,
        }
        return jwt.encode(claims, key_pem or self.pem, "RS256", headers={"kid": self.kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def google():
    fake = FakeGoogleCerts()
    identity.forget_certs()
    yield fake
    identity.forget_certs()
    fake.close()


def _in_the_cloud(monkeypatch, google, **env):
    """SWITCHYARD_ENV=prod as on Cloud Run, with local keys mounted as the secrets would be."""
    folder = sauth.ensure_local_keys()
    _outside_local(
        monkeypatch,
        GOOGLE_CLOUD_PROJECT="acme-prod",
        GOOGLE_CERTS_URL=google.url,
        JWT_SIGNING_KEY=(folder / "signing.pem").read_text(),
        JWT_PUBLIC_KEYS=(folder / "jwks.json").read_text(),
        SECRET_BACKEND="local",
        **env,
    )
    sauth.reset_keys()


def test_service_accounts_are_named_as_terraform_names_them():
    settings.cache_clear()
    project = settings().project_id
    assert identity.service_account("users-api") == f"users-api@{project}.iam.gserviceaccount.com"
    assert identity.service_account("ops") == f"ops-fn@{project}.iam.gserviceaccount.com"
    assert identity.service_account(identity.PUSH_INVOKER).startswith("switchyard-push-invoker@")
    long = "maintenance-on-workorder-completed-x"
    assert (
        identity.account_id(long).startswith(long[:25] + "-")
        and len(identity.account_id(long)) == 30
    )


def test_require_caller_checks_the_google_identity_outside_local(monkeypatch, google):
    _in_the_cloud(monkeypatch, google)
    users_api = identity.service_account("users-api")
    ok = {"Authorization": f"Bearer {google.token(users_api)}"}
    identity.require_caller(ok, "users-api")
    assert google.reads == 1
    identity.require_caller(ok, "users-api")
    assert google.reads == 1  # the certificates are cached
    with pytest.raises(Forbidden):  # another deployment's identity
        identity.require_caller(
            {"Authorization": f"Bearer {google.token(identity.service_account('gateway'))}"},
            "users-api",
        )
    with pytest.raises(Unauthorized):
        identity.require_caller({}, "users-api")
    other_pem, _ = sauth.new_key_pair()
    for bad in (
        google.token(users_api, key_pem=other_pem),  # not signed by Google
        google.token(users_api, iss="https://evil.example.com"),
        google.token(users_api, email_verified=False),
        google.token(users_api, exp=int(time.time()) - 3600),
        sauth.issue_access_token("x", ["admin"])[0],  # a Switchyard token is no Google identity
    ):
        with pytest.raises(Unauthorized):
            identity.require_caller({"Authorization": f"Bearer {bad}"}, "users-api")


def test_require_caller_is_skipped_only_locally(monkeypatch):
    identity.require_caller({}, "users-api")  # SWITCHYARD_ENV=test: no Google identity here
    _outside_local(monkeypatch, SWITCHYARD_ENV="dev")
    with pytest.raises(Unauthorized):
        identity.require_caller({}, "users-api")


def _credential_put(client, google_token, version=1):
    admin = sauth.issue_access_token(str(uuid.uuid4()), ["admin"])[0]
    headers = {"X-Forwarded-Authorization": f"Bearer {admin}"}
    if google_token:
        headers["Authorization"] = f"Bearer {google_token}"
    return client.put(
        f"/api/auth/credentials/{uuid.uuid4()}",
        headers=headers,
        json={"email": "x@example.com", "roles": ["admin"], "active": True, "version": version},
    )


def test_credentials_take_only_users_api_in_the_cloud(monkeypatch, google):
    from functions.auth.api import app

    _in_the_cloud(monkeypatch, google)
    client = app.test_client()
    assert_problem(_credential_put(client, None), 401)
    gateway = google.token(identity.service_account("gateway"))
    assert_problem(_credential_put(client, gateway), 403)  # an admin token through anyone else
    users_api = google.token(identity.service_account("users-api"))
    body = assert_problem(_credential_put(client, users_api, version=2**40), 422)
    assert body["errors"][0]["field"] == "version"


def test_a_credential_version_is_bounded(monkeypatch):
    from functions.auth.api import CredentialIn

    CredentialIn.model_validate(
        {"email": "a@b.io", "roles": [], "active": True, "version": 2**31 - 1}
    )
    with pytest.raises(ValueError):
        CredentialIn.model_validate(
            {"email": "a@b.io", "roles": [], "active": True, "version": 2**31}
        )


# --- key rotation without a redeploy: public keys read from Secret Manager, cached briefly ------


@pytest.fixture(params=["local", "secretmanager"])
def key_store(request, monkeypatch, tmp_path):
    """The secret store the public keys are read from: the local encrypted store, or Secret
    Manager's REST API faked at its HTTP boundary (tests/integration/test_secrets.py)."""
    env = {"SWITCHYARD_LOCAL_DIR": str(tmp_path), "SECRET_BACKEND": request.param}
    fake = None
    if request.param == "secretmanager":
        from tests.integration.test_secrets import FakeSecretManager

        fake = FakeSecretManager()
        env["SECRETMANAGER_ENDPOINT"] = fake.url
        env["GOOGLE_CLOUD_PROJECT"] = "proj-test"
    configure(monkeypatch, **env)
    yield fake
    if fake is not None:
        fake.close()


def _signed_by(pem, jwks):
    kid = jwks["keys"][0]["kid"]
    now = int(time.time())
    s = settings()
    claims = {
        "iss": s.jwt_issuer,
        "aud": s.jwt_audience,
        "sub": "rotating",
        "roles": [],
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, pem, "RS256", headers={"kid": kid, "typ": "at+jwt"})


def test_a_new_or_removed_public_key_takes_effect_without_a_redeploy(key_store, monkeypatch):
    from shared import secrets

    old_pem, old_jwks = sauth.new_key_pair()
    new_pem, new_jwks = sauth.new_key_pair()
    secrets.put("jwt-public-keys", json.dumps(old_jwks))
    clock = [time.monotonic()]
    monkeypatch.setattr(sauth, "_monotonic", lambda: clock[0])
    old_token, new_token = _signed_by(old_pem, old_jwks), _signed_by(new_pem, new_jwks)
    assert sauth.verify(old_token).sub == "rotating"
    # rotation, step 1: the new key joins; a token it signed a few seconds later is known
    # (an unknown kid re-reads the keys, at most every few seconds)
    both = {"keys": old_jwks["keys"] + new_jwks["keys"]}
    secrets.put("jwt-public-keys", json.dumps(both))
    clock[0] += 6
    assert sauth.verify(new_token).sub == "rotating"
    # step 2: the old key is withdrawn; within the short cache it still verifies, after it not
    secrets.put("jwt-public-keys", json.dumps(new_jwks))
    assert sauth.verify(old_token).sub == "rotating"
    clock[0] += sauth.PUBLIC_KEYS_TTL_S + 1
    with pytest.raises(Unauthorized):
        sauth.verify(old_token)
    assert sauth.verify(new_token).sub == "rotating"
    assert {k["kid"] for k in sauth.jwks()["keys"]} == {new_jwks["keys"][0]["kid"]}


def test_a_remembered_token_is_still_refused_once_expired(key_store, monkeypatch):
    """Verified tokens are remembered (decision 0039); expiry is checked on every use."""
    from shared import secrets

    pem, jwks = sauth.new_key_pair()
    secrets.put("jwt-public-keys", json.dumps(jwks))
    token = _signed_by(pem, jwks)  # expires in 60 s
    decodes = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    assert sauth.verify(token).sub == sauth.verify(token).sub == "rotating"
    assert len(decodes) == 1  # the second use was remembered
    later = time.time() + 60 + 31  # past exp and the 30 s leeway, for us and for PyJWT
    monkeypatch.setattr(time, "time", lambda: later)

    class _Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(later, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", _Later)
    with pytest.raises(Unauthorized, match="expired"):
        sauth.verify(token)
    assert len(decodes) == 2  # not answered from the remembered tokens


def test_a_remembered_token_is_checked_again_against_changed_settings(key_store, monkeypatch):
    from shared import secrets

    pem, jwks = sauth.new_key_pair()
    secrets.put("jwt-public-keys", json.dumps(jwks))
    token = _signed_by(pem, jwks)
    assert sauth.verify(token).sub == "rotating"
    monkeypatch.setenv("JWT_AUDIENCE", "another-api")
    settings.cache_clear()
    with pytest.raises(Unauthorized):
        sauth.verify(token)


def test_the_key_store_read_is_cached(key_store, monkeypatch):
    from shared import secrets

    pem, jwks = sauth.new_key_pair()
    secrets.put("jwt-public-keys", json.dumps(jwks))
    reads = []
    real_get = secrets.get
    monkeypatch.setattr(secrets, "get", lambda *a, **k: reads.append(a) or real_get(*a, **k))
    for _ in range(5):
        sauth.verify(_signed_by(pem, jwks))
    assert len(reads) == 1


def test_an_unreachable_key_store_falls_back_to_the_mounted_keys(monkeypatch, tmp_path, free_port):
    from shared.errors import ServiceUnavailable

    pem, jwks = sauth.new_key_pair()
    nothing = f"http://127.0.0.1:{free_port()}"  # no Secret Manager answers here
    configure(
        monkeypatch,
        SWITCHYARD_LOCAL_DIR=str(tmp_path),
        SECRET_BACKEND="secretmanager",
        SECRETMANAGER_ENDPOINT=nothing,
    )
    with pytest.raises(ServiceUnavailable):  # nothing to fall back to: fail closed
        sauth.verify(_signed_by(pem, jwks))
    monkeypatch.setenv("JWT_PUBLIC_KEYS", json.dumps(jwks))
    settings.cache_clear()
    sauth.reset_keys()
    assert sauth.verify(_signed_by(pem, jwks)).sub == "rotating"
