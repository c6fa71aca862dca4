"""What the tests' fake API servers (Stripe, EasyPost) share: a threaded HTTP server on
127.0.0.1, started and stopped with the fake (``with Fake() as fake``), whose handler reaches the
fake as ``self.server.fake``, keeps connections alive as the SDKs' pools expect, and can close a
connection without answering (a lost answer)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    server: FakeHTTPServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self, method: str) -> None:
        raise NotImplementedError

    def _drop(self) -> None:
        """Close the connection with no answer at all."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # tests open many connections at once: none waits for a SYN retry

    def __init__(self, fake: Any, handler: type[FakeHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.fake = fake


class FakeService:
    """A fake API's life cycle: its server, serving requests with ``handler``, runs while it is
    started. ``lock`` makes its requests atomic; faults wait in a queue, one per request."""

    def __init__(self, handler: type[FakeHandler], name: str) -> None:
        self.handler, self.name = handler, name
        self.lock = threading.RLock()
        self._faults: list[Any] = []
        self._server: FakeHTTPServer | None = None

    def _add_faults(self, count: int, fault: Any) -> None:
        with self.lock:
            self._faults += [fault] * count

    def _take_fault(self, path: str = "") -> Any:
        """The first fault waiting for this request: one whose ``on`` ends its path, or that has none."""
        with self.lock:
            for index, fault in enumerate(self._faults):
                if path.endswith(getattr(fault, "on", None) or ""):
                    return self._faults.pop(index)
            return None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"the {self.name} server is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> Self:
        server = FakeHTTPServer(self, self.handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), name=self.name, daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
