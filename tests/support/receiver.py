"""A storefront's webhook receiver on 127.0.0.1: verifies each delivery's signature, records the
events (and each request's body and headers), and can be switched down (503) and up again."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def signed_by(secret: str, body: bytes, header: str) -> bool:
    """True when one of the header's ``v1=`` signatures is ``secret``'s (during a secret rotation
    the header carries one per secret in force)."""
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    timestamp = next((value for key, value in parts if key == "t"), "")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(key == "v1" and hmac.compare_digest(expected, value) for key, value in parts)


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self.refused = 0
        self.up = True
        self.url = ""
        self.port = 0
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.lock = threading.Lock()

    def verify(self, body: bytes, header: str) -> bool:
        return signed_by(self.secret, body, header)

    def of_case(self, case_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["data"].get("case_id") == case_id]


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.requests.append((body, dict(self.headers.items())))
                if not receiver.up:
                    receiver.refused += 1
                    status = 503
                elif not receiver.verify(body, self.headers.get("Returns-Signature", "")):
                    receiver.bad_signatures += 1
                    status = 400
                else:
                    receiver.events.append(json.loads(body))
                    status = 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_port
    receiver.url = f"http://127.0.0.1:{server.server_port}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
