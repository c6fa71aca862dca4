"""The real service on 127.0.0.1 for end-to-end tests over real HTTP: under uvicorn in a
background thread (also on a fresh database of its own), or as ``returns serve`` in a process of
its own."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from litestar import Litestar

from service.config import Settings, http_server_options
from tests.support.database import fresh_database


def free_port() -> int:
    """A port nothing listens on now: for a service that must know its own address before it
    starts (the links in its e-mails)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(app: Litestar, port: int = 0) -> Iterator[str]:
    options = http_server_options(None)  # as `returns serve` without RETURNS_TRUSTED_PROXIES
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def fresh_service(**settings: Any) -> Iterator[tuple[str, str]]:
    """The service (its worker too, unless ``run_worker=False``) with these settings on a fresh
    database of its own, under ``serve``: its URL and its database's."""
    from service.bootstrap import build_app

    with fresh_database() as database_url, serve(build_app(Settings(database_url=database_url, **settings))) as url:
        yield url, database_url


@contextmanager
def serve_process(*args: str, env: dict[str, str], stop: int = signal.SIGTERM, output: list[str] | None = None) -> Iterator[str]:
    """``returns serve`` on a free port with exactly the environment ``env`` until the block ends,
    then stopped with ``stop``; its output lands in ``output``."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else "serve exited"
            assert time.monotonic() < deadline, "serve did not become ready in 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(stop)
        process.wait(timeout=30)
        if output is not None and process.stdout:
            output.append(process.stdout.read())
