"""The one guard for outbound HTTP to URLs that users give (job steps, webhooks out).

`request(method, url, *, allow_internal=False, timeout=..., **kw)` sends one HTTP(S) request
with `requests` and returns the `requests.Response`, after checking where it goes: the host is
resolved once and every address it resolves to must be public; loopback, private (RFC 1918,
ULA fc00::/7), shared/CGNAT (100.64.0.0/10), link-local (169.254.0.0/16 with the metadata
server 169.254.169.254, fe80::/10), multicast, unspecified, reserved and other non-global
addresses are refused, and so are the metadata host names (`metadata.google.internal`,
`metadata`). IPv4 addresses hidden in IPv6 forms (::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4
2002::/16) are checked as the IPv4 address they carry. The connection then goes to the checked
address itself (the URL's host stays in `Host` and, for HTTPS, in SNI and certificate
verification), so a DNS answer that changes between check and connect (rebinding) changes
nothing. Redirects are followed by hand (at most `max_redirects`), each hop checked again;
`Authorization` is dropped when a redirect leaves the original host. Proxies and `.netrc` of
the environment are ignored (a proxy would connect where the check did not look).
`allow_internal=True` lifts the address checks (the automation context passes it only for
targets an admin marked internal) but never opens the metadata server (169.254.169.254,
fd00:ec2::254 and the metadata names): it hands out the running service account's tokens, so
no user-given URL may reach it (docs/decisions/0023). There is no global switch.
A refused URL raises `OutboundRefused` (422), a failed exchange (DNS, connect,
TLS, timeout) `OutboundFailed` (502), both with a plain message. Limits: no body size cap
(pass `stream=True` and read what you need), no rate limiting, http and https only.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from shared.errors import BadGateway, Unprocessable

__all__ = [
    "METADATA_ADDRESSES",
    "METADATA_HOSTS",
    "OutboundFailed",
    "OutboundRefused",
    "check_address",
    "request",
]

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata"})
DEFAULT_TIMEOUT_S = 10.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class OutboundRefused(Unprocessable):
    """The URL points somewhere outbound requests may not go."""


class OutboundFailed(BadGateway):
    """The request could not be completed (name resolution, connection, TLS, timeout)."""


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _kind(ip: IPAddress) -> str | None:
    """What makes `ip` internal, in words; None for a public address."""
    inner = _embedded_v4(ip)
    if inner is not None:
        return _kind(inner)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata range)"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def check_address(address: str, *, allow_internal: bool = False) -> IPAddress:
    """`address` parsed, or `OutboundRefused` when outbound requests may not reach it."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise OutboundRefused(f"{address!r} is not an IP address.") from None
    inner = _embedded_v4(ip) or ip
    if inner in METADATA_ADDRESSES:
        raise OutboundRefused(f"The address {ip} is the cloud metadata server; it is refused.")
    if allow_internal:
        return ip
    kind = _kind(ip)
    if kind is not None:
        raise OutboundRefused(
            f"The address {ip} is {kind}; requests to internal addresses are refused."
        )
    return ip


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundFailed(f"The host name {host!r} could not be resolved ({exc}).") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Pinned(HTTPAdapter):
    """Connects to the checked address; TLS still verifies (and SNI names) the URL's host."""

    def __init__(self, hostname: str, tls: bool) -> None:
        self._tls_host = hostname if tls else None
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **kw: Any
    ) -> None:
        if self._tls_host:
            kw.update(server_hostname=self._tls_host, assert_hostname=self._tls_host)
        super().init_poolmanager(connections, maxsize, block, **kw)


def _target(url: str, allow_internal: bool, resolver: Resolver) -> tuple[str, str, str]:
    """(URL with the host replaced by the checked address, Host header, host name)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("The URL is not valid.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundRefused("Only http and https URLs are allowed.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise OutboundRefused("The URL has no host.")
    if host in METADATA_HOSTS:
        raise OutboundRefused(f"The host {host!r} is the cloud metadata server; it is refused.")
    port = port or (443 if scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else resolver(host, port)
    if not addresses:
        raise OutboundFailed(f"The host name {host!r} has no address.")
    checked = [check_address(a, allow_internal=allow_internal) for a in addresses]
    ip = checked[0]  # every address was checked: none of them may be internal
    netloc_ip = f"[{ip}]" if ip.version == 6 else str(ip)
    default = port == (443 if scheme == "https" else 80)
    host_header = (f"[{host}]" if ":" in host else host) + ("" if default else f":{port}")
    pinned = urlunsplit((scheme, f"{netloc_ip}:{port}", parts.path or "/", parts.query, ""))
    return pinned, host_header, host


def request(
    method: str,
    url: str,
    *,
    allow_internal: bool = False,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT_S,
    max_redirects: int = 5,
    allow_redirects: bool = True,
    resolver: Resolver | None = None,
    **kw: Any,
) -> requests.Response:
    """Send `method url` after the checks of this module; the final response (any status).

    `kw` goes to `requests` (headers, params, json, data, stream, verify, ...). `resolver`
    replaces DNS (tests)."""
    resolve = resolver or _resolve
    method = method.upper()
    headers = {str(k): str(v) for k, v in (kw.pop("headers", None) or {}).items()}
    for key in list(headers):
        if key.lower() == "host":
            del headers[key]  # the Host header is the URL's: no smuggling another name
    first_host = None
    for _hop in range(max_redirects + 1):
        pinned, host_header, host = _target(url, allow_internal, resolve)
        if first_host is None:
            first_host = host
        elif host != first_host:
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        with requests.Session() as session:
            session.trust_env = False  # no proxies or .netrc from the environment
            session.mount(
                pinned.split("://", 1)[0] + "://", _Pinned(host, pinned.startswith("https"))
            )
            try:
                resp = session.request(
                    method,
                    pinned,
                    headers={**headers, "Host": host_header},
                    timeout=timeout,
                    allow_redirects=False,
                    **kw,
                )
            except requests.exceptions.SSLError as exc:
                raise OutboundFailed(f"TLS with {host!r} failed: {_reason(exc)}.") from None
            except requests.exceptions.Timeout:
                raise OutboundFailed(f"{host!r} did not answer within the timeout.") from None
            except requests.exceptions.ConnectionError as exc:
                raise OutboundFailed(f"Could not connect to {host!r}: {_reason(exc)}.") from None
            except requests.RequestException as exc:
                raise OutboundFailed(f"The request to {host!r} failed: {_reason(exc)}.") from None
        resp.url = urlunsplit(urlsplit(url)._replace(fragment=""))
        location = resp.headers.get("Location")
        if not allow_redirects or resp.status_code not in _REDIRECTS or not location:
            return resp
        resp.close()
        url = urljoin(url, location)
        if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
            method = "GET"
            for body_kw in ("data", "json", "files"):
                kw.pop(body_kw, None)
    raise OutboundFailed(f"More than {max_redirects} redirects.")


def _reason(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc)
    for marker in (
        "Connection refused",
        "timed out",
        "Name or service not known",
        "CERTIFICATE_VERIFY_FAILED",
        "hostname mismatch",
        "Connection reset",
    ):
        if marker in text:
            return marker.lower()
    return exc.__class__.__name__
