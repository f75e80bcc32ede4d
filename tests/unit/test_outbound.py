"""shared.outbound: every internal range and the metadata host refused, a local HTTP server
reached only with allow_internal, the checked address is the one connected to, redirects are
checked hop by hop. The only I/O is a loopback HTTP server of this module."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

from shared import outbound

INTERNAL = [
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "169.254.169.254",
    "169.254.0.1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "0.0.0.0",
    "::",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "192.0.2.10",  # documentation (TEST-NET-1)
    "240.0.0.1",  # reserved
]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_refused(address):
    with pytest.raises(outbound.OutboundRefused) as err:
        outbound.check_address(address)
    assert err.value.status == 422
    assert "refused" in str(err.value.detail)


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_url_literals_refused_before_connecting(address):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(outbound.OutboundRefused):
        outbound.request("GET", f"http://{host}:9/")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_addresses_pass(address):
    assert str(outbound.check_address(address)) == address


@pytest.mark.parametrize(
    "url",
    [
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./x",
        "http://metadata/computeMetadata/v1/",
    ],
)
def test_metadata_names_refused_without_resolving(url):
    def resolver(host: str, port: int) -> list[str]:
        raise AssertionError("must not resolve a metadata name")

    with pytest.raises(outbound.OutboundRefused, match="metadata"):
        outbound.request("GET", url, resolver=resolver)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "file:///etc/passwd", "http:///x", "gopher://a/"]
)
def test_bad_urls_refused(url):
    with pytest.raises(outbound.OutboundRefused):
        outbound.request("GET", url)


def test_a_name_with_one_internal_address_is_refused():
    def resolver(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.1.2.3"]

    with pytest.raises(outbound.OutboundRefused, match="10.1.2.3"):
        outbound.request("GET", "http://mixed.example/", resolver=resolver)


def test_public_redirect_into_the_internal_network_is_refused(server):
    """A public name whose redirect points at a private address: the second hop is refused."""

    def resolver(host: str, port: int) -> list[str]:
        return {"public.example": ["8.8.8.8"]}.get(host, ["10.0.0.7"])

    with pytest.raises(outbound.OutboundRefused, match="10.0.0.7"):
        outbound._target("http://internal.example/", False, resolver)
    pinned, host_header, host = outbound._target(
        "http://public.example:8080/a?b=1", False, resolver
    )
    assert (pinned, host_header, host) == (
        "http://8.8.8.8:8080/a?b=1",
        "public.example:8080",
        "public.example",
    )


class Server:
    """A loopback HTTP server that records what it received and answers by path."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                srv.seen.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(n).decode() if n else "",
                    }
                )
                if self.path.startswith("/redirect"):
                    target = unquote(self.path.split("to=", 1)[1])
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                raw = json.dumps({"ok": True, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[Server]:
    s = Server()
    try:
        yield s
    finally:
        s.close()


def test_local_server_refused_by_default(server):
    with pytest.raises(outbound.OutboundRefused, match="loopback"):
        outbound.request("GET", f"http://127.0.0.1:{server.port}/x")
    with pytest.raises(outbound.OutboundRefused, match="loopback"):
        outbound.request("GET", f"http://localhost:{server.port}/x")
    assert server.seen == []


def test_local_server_reached_with_allow_internal(server):
    resp = outbound.request(
        "POST",
        f"http://localhost:{server.port}/hook?a=1",
        allow_internal=True,
        json={"k": "v"},
        headers={"X-Test": "yes", "Host": "evil.example"},
    )
    assert resp.status_code == 200 and resp.json()["path"] == "/hook?a=1"
    seen = server.seen[-1]
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"k": "v"}
    assert (
        seen["headers"]["Host"] == f"localhost:{server.port}"
    )  # the URL's host, not a smuggled one
    assert seen["headers"]["X-Test"] == "yes"
    assert resp.url == f"http://localhost:{server.port}/hook?a=1"


def test_connects_to_the_address_it_checked(server):
    """One resolution per hop: a second, different DNS answer (rebinding) is never asked."""
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    resp = outbound.request(
        "GET", f"http://rebind.example:{server.port}/p", allow_internal=True, resolver=resolver
    )
    assert resp.status_code == 200 and calls == ["rebind.example"]
    assert server.seen[-1]["headers"]["Host"] == f"rebind.example:{server.port}"


def test_redirects_are_checked_again(server):
    """allow_internal opens loopback, never the metadata server: not directly, not by redirect."""
    base = f"http://127.0.0.1:{server.port}"
    resp = outbound.request("GET", f"{base}/redirect?to={base}/final", allow_internal=True)
    assert resp.status_code == 200 and resp.json()["path"] == "/final"
    for target in (
        "http://169.254.169.254/computeMetadata/v1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
    ):
        with pytest.raises(outbound.OutboundRefused, match="metadata"):
            outbound.request("GET", f"{base}/redirect?to={target}", allow_internal=True)
        with pytest.raises(outbound.OutboundRefused, match="metadata"):
            outbound.request("GET", target, allow_internal=True)
    assert [s["path"] for s in server.seen].count("/final") == 1


def test_redirect_to_another_host_drops_authorization(server):
    base = f"http://127.0.0.1:{server.port}"
    other = f"http://localhost:{server.port}/final"
    outbound.request(
        "GET",
        f"{base}/redirect?to={other}",
        allow_internal=True,
        headers={"Authorization": "Bearer x"},
    )
    first, second = server.seen[-2:]
    assert first["headers"].get("Authorization") == "Bearer x"
    assert "Authorization" not in second["headers"]


def test_redirect_loop_stops(server):
    base = f"http://127.0.0.1:{server.port}"
    with pytest.raises(outbound.OutboundFailed, match="redirects"):
        outbound.request(
            "GET",
            f"{base}/redirect?to=/redirect?to=/redirect?to=/x",
            allow_internal=True,
            max_redirects=1,
        )


def test_unreachable_is_a_plain_502(free_port):
    with pytest.raises(outbound.OutboundFailed) as err:
        outbound.request("GET", f"http://127.0.0.1:{free_port()}/", allow_internal=True, timeout=2)
    assert err.value.status == 502 and "connection refused" in str(err.value.detail)


def test_unknown_name_is_a_plain_502():
    with pytest.raises(outbound.OutboundFailed, match="could not be resolved"):
        outbound.request("GET", "http://no-such-host.invalid/")


def _tls_files(tmp_path):
    """A CA and a server certificate for the DNS name `localhost` only (no IP SAN)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def cert(subject, issuer, key, signer, *, ca, san=None):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("test-ca", "test-ca", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert("localhost", "test-ca", key, ca_key, ca=False, san="localhost")
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"


def test_https_to_the_pinned_address_verifies_the_url_host(server, tmp_path):
    import ssl

    ca, leaf, key = _tls_files(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf, key)
    server.httpd.socket = ctx.wrap_socket(server.httpd.socket, server_side=True)
    resp = outbound.request(
        "GET", f"https://localhost:{server.port}/tls", allow_internal=True, verify=str(ca)
    )
    assert resp.status_code == 200 and resp.json()["path"] == "/tls"
    # the same server by IP: the certificate names localhost only, so verification fails
    with pytest.raises(outbound.OutboundFailed, match="TLS"):
        outbound.request(
            "GET", f"https://127.0.0.1:{server.port}/tls", allow_internal=True, verify=str(ca)
        )
