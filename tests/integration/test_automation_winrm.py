"""The WinRM transport at its HTTP boundary (there is no Windows host here): pywinrm against a
local server that speaks enough WS-Management SOAP for one command (Create shell, Command,
Receive, Signal, Delete), plus the error paths (closed port, refused credential)."""

from __future__ import annotations

import base64
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from functions.automation import model, transports

ENV = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
    "<s:Header><a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
)
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"


class FakeWinrm:
    """Answers one shell's requests; records the actions and the decoded PowerShell script."""

    def __init__(self, stdout: bytes, stderr: bytes, exit_code: int, password: str = "pw") -> None:
        self.actions: list[str] = []
        self.scripts: list[str] = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                auth = self.headers.get("Authorization", "")
                expected = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
                if auth != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="WSMAN"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                action = re.search(r"<a:Action[^>]*>([^<]+)</a:Action>", raw).group(1)
                message_id = re.search(r"<a:MessageID>([^<]+)</a:MessageID>", raw).group(1)
                name = action.rsplit("/", 1)[-1]
                fake.actions.append(name)
                if name == "Create":
                    body = (
                        "<x:ResourceCreated xmlns:x='http://schemas.xmlsoap.org/ws/2004/09/transfer'>"
                        "<a:ReferenceParameters><w:SelectorSet>"
                        '<w:Selector Name="ShellId">SHELL-1</w:Selector>'
                        "</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
                    )
                elif name == "Command":
                    args = re.search(r"<rsp:Arguments>([^<]*)</rsp:Arguments>", raw).group(1)
                    encoded = args.split("-EncodedCommand ", 1)[1].strip()
                    fake.scripts.append(base64.b64decode(encoded).decode("utf-16-le"))
                    body = (
                        "<rsp:CommandResponse><rsp:CommandId>CMD-1</rsp:CommandId>"
                        "</rsp:CommandResponse>"
                    )
                elif name == "Receive":
                    out = base64.b64encode(stdout).decode()
                    err = base64.b64encode(stderr).decode()
                    body = (
                        "<rsp:ReceiveResponse>"
                        f'<rsp:Stream Name="stdout" CommandId="CMD-1">{out}</rsp:Stream>'
                        f'<rsp:Stream Name="stderr" CommandId="CMD-1">{err}</rsp:Stream>'
                        f'<rsp:CommandState CommandId="CMD-1" State="{SHELL}/CommandState/Done">'
                        f"<rsp:ExitCode>{exit_code}</rsp:ExitCode></rsp:CommandState>"
                        "</rsp:ReceiveResponse>"
                    )
                else:  # Signal, Delete
                    body = ""
                data = ENV.format(relates=message_id, body=body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def target(port: int) -> model.Target:
    now = datetime.now(UTC)
    return model.Target(
        "w1",
        "win",
        "winrm",
        "127.0.0.1",
        port,
        (),
        {"user": "admin", "transport": "basic", "scheme": "http"},
        "c1",
        True,
        now,
        now,
        1,
    )


@pytest.fixture()
def fake():
    f = FakeWinrm(b"hello from windows\r\nsecond\r\n", b"a warning\r\n", 3)
    yield f
    f.close()


def test_one_command_over_ws_management(fake):
    lines: list[tuple[str, str]] = []
    command = model.shell_command("Write-Output {{NAME}}", {"NAME": "it's"}, shell="powershell")
    with transports.open_winrm(target(fake.port), transports.Secret("password", "pw")) as session:
        result = session.run(
            command,
            timeout_s=10,
            on_line=lambda s, t: lines.append((s, t)),
            should_stop=lambda: False,
        )
    assert result == transports.CommandResult(3)
    assert lines == [
        ("stdout", "hello from windows"),
        ("stdout", "second"),
        ("stderr", "a warning"),
    ]
    assert fake.scripts == ["$env:NAME = 'it''s'; Write-Output 'it''s'"]
    assert fake.actions == ["Create", "Command", "Receive", "Signal", "Delete"]


def test_refused_credential_and_closed_port(fake, free_port):
    with pytest.raises(transports.ConnectError) as err:
        transports.open_winrm(target(fake.port), transports.Secret("password", "wrong"))
    assert err.value.stage == "auth"
    with pytest.raises(transports.ConnectError) as err:
        transports.open_winrm(target(free_port()), transports.Secret("password", "pw"))
    assert err.value.stage == "tcp"
    with pytest.raises(transports.ConnectError) as err:
        transports.open_winrm(target(fake.port), transports.Secret("private_key", "k"))
    assert err.value.stage == "auth"
