"""Gateway routing and header handling (pure functions, a manifests catalog made for the test)."""

import textwrap
from pathlib import Path

import pytest

from functions.gateway import proxy
from shared import manifests

GATEWAY_DIR = Path(__file__).resolve().parents[2] / "functions" / "gateway"


def write_context(base: Path, name: str, manifest: str, entry_points: list[str]) -> None:
    folder = base / name
    folder.mkdir(parents=True)
    (folder / "function.yaml").write_text(textwrap.dedent(manifest))
    (folder / "main.py").write_text("".join(f"def {e}(request):\n    pass\n" for e in entry_points))


@pytest.fixture()
def nested_catalog(tmp_path, monkeypatch):
    (tmp_path / "gateway").mkdir()
    for f in ("function.yaml", "main.py"):
        (tmp_path / "gateway" / f).write_text((GATEWAY_DIR / f).read_text())
    write_context(
        tmp_path,
        "things",
        """
        context: things
        deployments:
          things-api:
            entry_point: api
            trigger: http
            routes: [/api/things]
            public_routes: [/api/things/public]
          things-special:
            entry_point: special
            trigger: http
            routes: [/api/things/special]
    """,
        ["api", "special"],
    )
    cat = manifests.load(tmp_path)
    monkeypatch.setattr(manifests, "catalog", lambda: cat)
    return cat


def test_longest_prefix_wins(nested_catalog):
    assert proxy.target("/api/things").name == "things-api"
    assert proxy.target("/api/things/1").name == "things-api"
    assert proxy.target("/api/things/special").name == "things-special"
    assert proxy.target("/api/things/special/7").name == "things-special"
    assert proxy.target("/api/things/specialist").name == "things-api"  # segment, not string


def test_unknown_paths_and_the_gateways_own_routes_are_not_forwarded(nested_catalog):
    assert proxy.target("/api/nothing") is None
    assert proxy.target("/api/thingsx") is None
    assert proxy.target("/api/health") is None  # the gateway's own route: skip itself
    assert proxy.target("/api/docs/anything") is None


def test_the_real_catalog_routes_every_http_deployment_to_itself():
    cat = manifests.catalog()
    for dep in cat.deployments.values():
        if dep.trigger != "http" or dep.context == "gateway":
            continue
        for route in dep.routes:
            if route != "/":
                assert proxy.target(route + "/x").name == dep.name


def test_public_paths(nested_catalog):
    assert nested_catalog.is_public("/api/things/public/x")
    assert nested_catalog.is_public("/api/things/openapi.json")
    assert nested_catalog.is_public("/api/things/special/health")
    assert not nested_catalog.is_public("/api/things/1")
    assert nested_catalog.is_public("/api/things/special/openapi.json")
    # only the documents themselves, not any path that happens to end like one
    assert not nested_catalog.is_public("/api/things/files/openapi.json")
    assert not nested_catalog.is_public("/openapi.json")


def build(headers, **overrides):
    kwargs = dict(
        request_id="rid-1",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        client_ip="203.0.113.9",
        forwarded_for="203.0.113.9",
        proto="https",
        host="api.example.com",
    )
    kwargs.update(overrides)
    return proxy.request_headers(headers, **kwargs)


def test_hop_by_hop_host_and_spoofable_headers_are_dropped():
    out = build(
        [
            ("Host", "evil.example"),
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "websocket"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic x"),
            ("Content-Length", "12"),
            ("X-Client-IP", "10.0.0.1"),
            ("X-Forwarded-Authorization", "Bearer forged"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Authorization", "Bearer user-token"),
            ("Content-Type", "application/json"),
            ("X-Custom", "kept"),
            ("X-Request-ID", "client-rid"),
        ]
    )
    sent = {k.lower(): v for k, v in out.items()}
    for name in (
        "host",
        "connection",
        "x-secret-hop",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "te",
        "proxy-authorization",
        "content-length",
        "x-forwarded-authorization",
    ):
        assert name not in sent, name
    assert sent["authorization"] == "Bearer user-token"
    assert sent["content-type"] == "application/json"
    assert sent["x-custom"] == "kept"
    assert sent["x-client-ip"] == "203.0.113.9"
    assert sent["x-forwarded-for"] == "203.0.113.9"
    assert sent["x-forwarded-proto"] == "https"
    assert sent["x-forwarded-host"] == "api.example.com"
    assert sent["x-request-id"] == "rid-1"
    assert sent["traceparent"].startswith("00-aaaa")


def test_only_what_the_client_sent_is_forwarded():
    out = build([("Accept", "text/csv")])
    assert out["Accept"] == "text/csv"
    assert "Accept-Encoding" not in out  # no unasked-for gzip from an HTTP library default
    assert "User-Agent" not in out


def test_in_the_cloud_the_service_token_takes_authorization_and_the_user_token_moves():
    out = build([("authorization", "Bearer user-token")], service_token="google-id-token")
    assert out["Authorization"] == "Bearer google-id-token"
    assert out["X-Forwarded-Authorization"] == "Bearer user-token"


def test_response_headers_keep_repeats_and_drop_hop_by_hop():
    out = proxy.response_headers(
        [
            ("Content-Type", "application/json"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Date", "x"),
            ("Server", "y"),
            ("Content-Encoding", "gzip"),
        ]
    )
    assert out == [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Encoding", "gzip"),
    ]


def test_client_ip_is_the_peer_locally_and_the_rightmost_forwarded_entry_in_the_cloud():
    headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.7"}
    assert proxy.client_ip(headers, "127.0.0.1", in_cloud=False) == "127.0.0.1"
    assert proxy.client_ip(headers, "169.254.1.1", in_cloud=True) == "198.51.100.7"
    assert proxy.client_ip({}, "169.254.1.1", in_cloud=True) == "169.254.1.1"


def test_forwarded_for_appends_the_peer_locally():
    assert proxy.forwarded_for({}, "127.0.0.1", in_cloud=False) == "127.0.0.1"
    assert (
        proxy.forwarded_for({"X-Forwarded-For": "1.1.1.1"}, "127.0.0.1", in_cloud=False)
        == "1.1.1.1, 127.0.0.1"
    )
    assert (
        proxy.forwarded_for({"X-Forwarded-For": "1.1.1.1, 2.2.2.2"}, "169.254.1.1", in_cloud=True)
        == "1.1.1.1, 2.2.2.2"
    )


def test_dot_segments_are_detected():
    assert proxy.has_dot_segment("/api/auth/login/../../users")
    assert proxy.has_dot_segment("/api/./x")
    assert not proxy.has_dot_segment("/api/users/a.b/..c")


def test_the_body_limit_is_the_deployments_own_or_the_platforms() -> None:
    from functions.gateway import proxy
    from shared.config import settings
    from shared.manifests import catalog

    webhook = catalog().deployments["source-webhook"]
    assert webhook.max_body_bytes == 25 * 1024 * 1024
    assert proxy.body_limit("/api/webhook/github") == webhook.max_body_bytes
    assert proxy.body_limit("/api/users") == settings().max_body_bytes
    assert proxy.body_limit("/api/nothing-here") == settings().max_body_bytes
