"""A local stand-in for Vertex AI at its HTTP boundary (the agents' optional narrative,
google-genai): Google's OAuth token endpoint (a service account key's `token_uri`) and
`models/*:generateContent`, with a service-account key file pointing at it. Used by the
agents' integration tests and by the whole test stack (tests/conftest.py), whose
agents-worker writes narratives against it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class FakeVertex:
    """A local server speaking Vertex AI's REST shape: Google's OAuth token endpoint (the
    service account's `token_uri`) and `models/*:generateContent`. `mode`: ok, error (503 in
    Google's error shape), empty (a candidate without text), hang (no answer until closed)."""

    def __init__(self, mode="ok", text="A package went from Paris to New York in half an hour."):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.mode, self.text, self.requests = mode, text, []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.requests.append((self.path, dict(self.headers), raw))
                status, out = 200, {}
                if self.path == "/token":
                    out = {"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"}
                elif fake.mode == "hang":
                    fake.release.wait(30)
                    return
                elif fake.mode == "error":
                    status = 503
                    out = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
                else:
                    parts = [{"text": fake.text}] if fake.mode == "ok" else []
                    out = {
                        "candidates": [
                            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
                        ],
                        "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 60},
                        "modelVersion": "gemini-test",
                    }
                data = json.dumps(out).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def generate_calls(self):
        return [r for r in self.requests if r[0] != "/token"]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def service_account_key() -> dict[str, Any]:
    """A service-account key (ADC's JSON) with a fresh RSA key; `token_uri` is set per server."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "agents-it",
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": "agents-worker@agents-it.iam.gserviceaccount.com",
        "client_id": "1",
    }


def narrative_env(fake: FakeVertex, key: dict[str, Any], path: Path) -> dict[str, str]:
    """Write `key` to `path` with `fake`'s token endpoint; the settings that turn the
    narrative on against `fake`."""
    path.write_text(json.dumps({**key, "token_uri": fake.url + "/token"}))
    return {
        "GOOGLE_APPLICATION_CREDENTIALS": str(path),
        "AGENTS_NARRATIVE_MODEL": "gemini-test",
        "AGENTS_NARRATIVE_LOCATION": "europe-west1",
        "AGENTS_NARRATIVE_ENDPOINT": fake.url,
        "AGENTS_NARRATIVE_TIMEOUT_S": "1",
    }
