"""Access tokens and authorization: RS256 JWTs issued by auth, verified everywhere.

Only the auth context signs (`issue_access_token`), with the private key from the
`JWT_SIGNING_KEY` secret (locally a key generated once under `.local/jwt/`). Everyone verifies
(`verify`) against the public keys: a JWKS with up to two keys during rotation, selected by
`kid`, read from the `jwt-public-keys` secret through `shared.secrets` and cached for a
minute, so a new or withdrawn key takes effect without a redeploy (falling back to the value
mounted as `JWT_PUBLIC_KEYS`, and locally to `.local/jwt/jwks.json`). Verification pins RS256 (so
`none` and HS256-with-the-public-key are refused), requires `typ: at+jwt`, and checks `iss`,
`aud`, `exp`, `iat`, `sub`, `jti`. `authenticate_request` (installed by `shared.http`) takes
the bearer token of every non-public route and puts the verified `Claims` on `flask.g`;
`require_roles` guards a view. Revoked token ids (logout) live in Firestore
`auth_revoked_tokens` until the token would expire, and each user's "not before" (password
change, deactivation, demotion) in `auth_not_before`; the gateway and auth's `/verify` check
both (`token_dead`; functions behind the gateway do not, to save a read per request).
`python -m shared.auth keygen` prints a new key pair for Secret Manager; `keygen-local` creates
the local one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import flask
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import logging as slog
from shared.config import settings
from shared.errors import Forbidden, Unauthorized
from shared.roles import ROLES

ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a JWT header value, not a secret
REVOKED = "auth_revoked_tokens"
NOT_BEFORE = "auth_not_before"  # per user: access tokens issued earlier are over
_LEEWAY_S = 30

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Claims:
    sub: str
    roles: tuple[str, ...]
    jti: str
    exp: int
    iat: int
    raw: dict[str, Any]

    @property
    def issued_at(self) -> float:
        """`iat` with its fraction (auth issues milliseconds), for the user's "not before"."""
        value = self.raw.get("iat", self.iat)
        return float(value) if isinstance(value, int | float) else float(self.iat)

    def has_role(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)


# --- keys --------------------------------------------------------------------------------


def _b64u(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def public_jwk(key: rsa.RSAPublicKey) -> dict[str, str]:
    """The JWK of a public key; `kid` is its RFC 7638 thumbprint."""
    nums = key.public_numbers()
    core = {"e": _b64u(nums.e), "kty": "RSA", "n": _b64u(nums.n)}
    kid = (
        base64.urlsafe_b64encode(
            hashlib.sha256(
                json.dumps(core, separators=(",", ":"), sort_keys=True).encode()
            ).digest()
        )
        .decode()
        .rstrip("=")
    )
    return {**core, "kid": kid, "use": "sig", "alg": ALGORITHM}


def new_key_pair() -> tuple[str, dict[str, Any]]:
    """A fresh 2048-bit RSA private key (PEM) and the JWKS holding its public key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem, {"keys": [public_jwk(key.public_key())]}


def _local_dir() -> Path:
    return settings().local_dir / "jwt"


def ensure_local_keys() -> Path:
    """Create the local signing key and JWKS once (local only); returns their folder."""
    folder = _local_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pem_path, jwks_path = folder / "signing.pem", folder / "jwks.json"
    if pem_path.exists() and jwks_path.exists():
        return folder
    pem, jwks = new_key_pair()
    try:
        fd = os.open(pem_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return folder  # another process won the race
    with os.fdopen(fd, "w") as f:
        f.write(pem)
    tmp = jwks_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jwks, indent=2))
    tmp.replace(jwks_path)
    return folder


@functools.cache
def _signing_key() -> tuple[Any, str]:
    s = settings()
    pem = s.jwt_signing_key
    if not pem:
        if not s.is_local:
            raise RuntimeError("JWT_SIGNING_KEY is not set (mount the jwt-signing-key secret)")
        pem = (ensure_local_keys() / "signing.pem").read_text()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RuntimeError("JWT_SIGNING_KEY must be an RSA private key")
    kid = s.jwt_signing_kid or public_jwk(key.public_key())["kid"]
    return key, kid


PUBLIC_KEYS_TTL_S = 60.0  # a new or withdrawn public key takes effect within this
_UNKNOWN_KID_RETRY_S = 5.0  # an unknown kid re-reads the keys at most this often
_jwks_cache: dict[str, Any] = {"at": 0.0, "keys": {}}
_jwks_lock = threading.Lock()
_log = slog.get_logger("switchyard.auth")


def _monotonic() -> float:
    return time.monotonic()


def _read_jwks() -> str:
    """The JWKS text: the `jwt-public-keys` secret read through `shared.secrets` (Secret
    Manager outside local, the local store locally), else the `JWT_PUBLIC_KEYS` value mounted
    at deploy time, else (local only) `.local/jwt/jwks.json`."""
    from shared import secrets

    s = settings()
    try:
        return secrets.get(s.jwt_public_keys_secret)
    except secrets.SecretNotFound:
        pass
    except secrets.SecretBackendError:
        if not s.jwt_public_keys:
            raise
        _log.warning("the public keys secret cannot be read; using the mounted JWT_PUBLIC_KEYS")
    if s.jwt_public_keys:
        return s.jwt_public_keys
    if not s.is_local:
        raise RuntimeError(
            f"no public keys: the secret {s.jwt_public_keys_secret!r} does not exist and "
            "JWT_PUBLIC_KEYS is not set"
        )
    path = _local_dir() / "jwks.json"
    if not path.exists():
        ensure_local_keys()
    return path.read_text()


def _public_keys(refresh: bool = False) -> dict[str, Any]:
    """kid -> public key, re-read when older than PUBLIC_KEYS_TTL_S (rotation and withdrawal
    without redeploys), or on an unknown kid (`refresh`) at most every few seconds. When the
    store cannot be read the last keys read are kept (and the failure logged)."""
    now = _monotonic()
    with _jwks_lock:
        age = now - _jwks_cache["at"]
        cached = _jwks_cache["keys"]
        if cached and age < PUBLIC_KEYS_TTL_S and not (refresh and age >= _UNKNOWN_KID_RETRY_S):
            return dict(cached)
    try:
        raw = _read_jwks()
    except Exception:
        if not cached:
            raise
        _log.warning("public keys could not be re-read; keeping the last ones", exc_info=True)
        return dict(cached)
    keys = {}
    for jwk in json.loads(raw).get("keys", []):
        if jwk.get("kty") == "RSA" and jwk.get("kid"):
            keys[jwk["kid"]] = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    with _jwks_lock:
        _jwks_cache.update(at=now, keys=keys)
    return dict(keys)


def public_keys_state() -> tuple[Any, bool]:
    """The public keys held now (the object itself: a re-read replaces it) and whether they are
    fresh (read less than PUBLIC_KEYS_TTL_S ago). A cache of tokens verified against them is
    valid only while both hold (the gateway's, `functions/gateway/fast.py`)."""
    with _jwks_lock:
        return _jwks_cache["keys"], _monotonic() - _jwks_cache["at"] < PUBLIC_KEYS_TTL_S


def jwks() -> dict[str, Any]:
    """The public JWKS (served by auth at /api/auth/jwks.json)."""
    out = []
    for key in _public_keys().values():
        out.append(public_jwk(key))
    return {"keys": out}


def reset_keys() -> None:
    """Forget cached keys and verified tokens (tests)."""
    _signing_key.cache_clear()
    with _jwks_lock:
        _jwks_cache.update(at=0.0, keys={})
    _verified.clear()


# Verified tokens (decision 0039): a client sends the same access token with every request for
# up to its 15 minutes, and checking it (two parses of the token by PyJWT, the RSA signature)
# was the largest part of a request's CPU. A token verified once is remembered with the key
# object that verified it and the settings it was checked against; a later request with the
# very same token string is accepted without parsing it again while that key object is still
# one of the current public keys (re-read every PUBLIC_KEYS_TTL_S, which makes new objects:
# so a token is verified afresh at least once a minute, and a withdrawn key ends it as
# before) and the token has not expired. Failures are not remembered.
_VERIFIED_MAX = 4096
_verified: dict[str, tuple[Any, str, tuple[str, str, int], Claims]] = {}
_verified_lock = threading.Lock()


def _remember(token: str, key: Any, kid: str, checked: tuple[str, str, int], c: Claims) -> None:
    with _verified_lock:
        while len(_verified) >= _VERIFIED_MAX:
            _verified.pop(next(iter(_verified)))  # the oldest first
        _verified[token] = (key, kid, checked, c)


def _current_key(kid: str) -> Any:
    """The current public key object of `kid` (the keys re-read as `_public_keys` does)."""
    with _jwks_lock:
        fresh = _monotonic() - _jwks_cache["at"] < PUBLIC_KEYS_TTL_S
        key = _jwks_cache["keys"].get(kid) if fresh else None
    return key if key is not None else _public_keys().get(kid)


# --- tokens ------------------------------------------------------------------------------


def issue_access_token(
    sub: str, roles: list[str] | tuple[str, ...], *, ttl_s: int | None = None
) -> tuple[str, Claims]:
    """Sign an access token (auth context only); `ttl_s` may shorten it, never lengthen it
    past `ACCESS_TOKEN_TTL_S` (`verify` refuses longer ones)."""
    s = settings()
    if ttl_s is not None and not 0 < ttl_s <= s.access_ttl_s:
        raise ValueError(f"an access token lives 1..{s.access_ttl_s} s, not {ttl_s}")
    key, kid = _signing_key()
    issued = time.time()
    now = int(issued)
    payload = {
        "iss": s.jwt_issuer,
        "aud": s.jwt_audience,
        "sub": sub,
        "roles": list(roles),
        # NumericDate with milliseconds (RFC 7519 allows fractions): a token issued right
        # after its user's "not before" is set, in the same second, is still good
        "iat": round(issued, 3),
        "nbf": now,
        "exp": now + (ttl_s or s.access_ttl_s),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": TOKEN_TYPE})
    return token, _claims(payload)


def _claims(payload: dict[str, Any]) -> Claims:
    roles = payload.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthorized("The token's roles claim is malformed.", headers=_challenge())
    return Claims(
        sub=str(payload["sub"]),
        roles=tuple(roles),
        jti=str(payload["jti"]),
        exp=int(payload["exp"]),
        iat=int(payload["iat"]),
        raw=payload,
    )


def _challenge(error: str = "invalid_token") -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="switchyard", error="{error}"'}


def verify(token: str) -> Claims:
    """Verify an access token; raises `Unauthorized` (401) with a reason on any problem.
    A token verified before is accepted from the verified tokens while its key is current and
    it has not expired (see `_verified`)."""
    s = settings()
    checked = (s.jwt_audience, s.jwt_issuer, s.access_ttl_s)
    hit = _verified.get(token)
    if hit is not None:
        key, kid, was_checked, claims = hit
        if (
            was_checked == checked
            and time.time() - _LEEWAY_S < claims.exp
            and _current_key(kid) is key
        ):
            return claims
        with _verified_lock:
            _verified.pop(token, None)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthorized("The token is not a JWT.", headers=_challenge()) from None
    if header.get("alg") != ALGORITHM:
        raise Unauthorized("The token's algorithm is not accepted.", headers=_challenge())
    if header.get("typ") != TOKEN_TYPE:
        raise Unauthorized("The token is not an access token.", headers=_challenge())
    kid = str(header.get("kid") or "")
    key = _public_keys().get(kid) or _public_keys(refresh=True).get(kid)
    if key is None:
        raise Unauthorized("The token was signed by an unknown key.", headers=_challenge())
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            leeway=_LEEWAY_S,
            options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("The token has expired.", headers=_challenge()) from None
    except jwt.PyJWTError:
        # PyJWT's text says which check failed (audience, issuer, a claim's type): useful to
        # whoever forges tokens, so it stays out of the answer.
        raise Unauthorized("The token is not valid.", headers=_challenge()) from None
    iat, exp = payload["iat"], payload["exp"]
    if not isinstance(iat, int | float) or not isinstance(exp, int | float):
        raise Unauthorized("The token is not valid.", headers=_challenge())
    if iat > time.time() + _LEEWAY_S or exp - iat > s.access_ttl_s + _LEEWAY_S:
        # A token signed with a stolen key (or by a bug) for longer than auth ever issues.
        raise Unauthorized("The token's lifetime exceeds the maximum.", headers=_challenge())
    claims = _claims(payload)
    _remember(token, key, kid, checked, claims)
    return claims


def bearer_token() -> str | None:
    """The end-user bearer token of the current request.

    Behind Cloud Run's invoker IAM the `Authorization` header carries the caller's Google
    identity, so the gateway and `shared.clients` move the user's token to
    `X-Forwarded-Authorization`; it is preferred when present. Either way it is verified.
    """
    headers = flask.request.headers
    value = headers.get("X-Forwarded-Authorization") or headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate_request() -> None:
    """Flask before_request hook: verify the bearer token unless the route is public."""
    from shared.manifests import catalog

    path = flask.request.path
    if flask.request.method == "OPTIONS" or catalog().is_public(path):
        return
    token = bearer_token()
    if token is None:
        raise Unauthorized("A bearer token is required.", headers=_challenge("invalid_request"))
    flask.g.claims = verify(token)


def current_user() -> Claims:
    claims = getattr(flask.g, "claims", None)
    if claims is None:
        raise Unauthorized("A bearer token is required.", headers=_challenge("invalid_request"))
    return claims


def require_roles(*roles: str) -> Callable[[F], F]:
    """View decorator: the caller needs one of `roles` (admin always passes)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def wrap(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user().has_role(*roles):
                raise Forbidden(f"This needs one of the roles: {', '.join(roles)}.")
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap


def bootstrap_admin_id(email: str) -> str:
    """The stable user id of the bootstrap admin, derived from its email so that the users
    and auth contexts create the same account independently (each in its own bootstrap)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"switchyard:user:{email.strip().lower()}"))


# --- revocation --------------------------------------------------------------------------


def revoke(jti: str, exp: int) -> None:
    """Remember a revoked access token id until it expires (Firestore TTL on expires_at)."""
    from shared.clients import firestore

    firestore().collection(REVOKED).document(jti).set(
        {
            "revoked_at": datetime.now(UTC),
            "expires_at": datetime.fromtimestamp(exp + _LEEWAY_S, UTC),
        }
    )


def set_not_before(sub: str, at: float | None = None) -> None:
    """End every access token of user `sub` issued before `at` (now): auth calls it when the
    password changes, the account is deactivated or loses a role. Kept (Firestore TTL on
    expires_at) until the last such token would have expired anyway."""
    from shared.clients import firestore

    when = time.time() if at is None else at
    firestore().collection(NOT_BEFORE).document(sub).set(
        {
            "not_before": when,
            "expires_at": datetime.fromtimestamp(
                when + settings().access_ttl_s + 2 * _LEEWAY_S, UTC
            ),
        }
    )


def token_dead(jti: str, sub: str, iat: float) -> bool:
    """The token was revoked (logout, refresh reuse) or issued before its user's "not before";
    both documents in one Firestore round trip."""
    from shared.clients import firestore

    db = firestore()
    revoked_ref = db.collection(REVOKED).document(jti)
    not_before_ref = db.collection(NOT_BEFORE).document(sub)
    for snap in db.get_all([revoked_ref, not_before_ref]):
        if not snap.exists:
            continue
        if snap.reference.path == revoked_ref.path:
            return True
        value = (snap.to_dict() or {}).get("not_before")
        if isinstance(value, int | float) and iat < value:
            return True
    return False


def revoked_or_stale(claims: Claims) -> bool:
    """`token_dead` for verified claims."""
    return token_dead(claims.jti, claims.sub, claims.issued_at)


def main(argv: list[str]) -> int:
    if argv[:1] == ["keygen"]:
        pem, keys = new_key_pair()
        sys.stdout.write("# jwt-signing-key (private, PEM):\n" + pem)
        sys.stdout.write("# jwt-public-keys (JWKS):\n" + json.dumps(keys) + "\n")
        return 0
    if argv[:1] == ["keygen-local"]:
        folder = ensure_local_keys()
        sys.stdout.write(f"local JWT keys in {folder}\n")
        return 0
    sys.stderr.write("usage: python -m shared.auth keygen | keygen-local\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
