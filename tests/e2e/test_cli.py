"""The README's first command on a machine with no database configured: ``returns serve``
starts an embedded PostgreSQL under the data folder, keeps its data across restarts, and the
other CLI commands use the same database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.tenants import order_body


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETURNS_", "STRIPE_"))}
    env["RETURNS_DATA_DIR"] = str(data_dir)
    return env


def _returns(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args], env=_env(data_dir), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def _serving(data_dir: Path) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
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
        process.terminate()
        process.wait(timeout=30)


def test_serve_on_the_embedded_database_keeps_data_across_restarts(tmp_path: Path) -> None:
    assert "schema up to date" in _returns(tmp_path, "migrate")
    key = _returns(tmp_path, "keys", "create", "--merchant", "shop_1", "--role", "storefront").strip().splitlines()[-1]
    agent_key = _returns(tmp_path, "keys", "create", "--merchant", "shop_1", "--role", "agent").strip().splitlines()[-1]
    assert key.startswith("rk_") and " " not in key
    with _serving(tmp_path) as url:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        assert client.put("/v1/orders/o1", json=order_body()).status_code == 201
        case = client.post(
            "/v1/cases", json={"order_id": "o1", "type": "return",
                               "items": [{"line_id": "l1", "quantity": 1, "reason": "other", "note": "why not"}]}
        ).json()
        approved = httpx.post(
            f"{url}/admin/v1/cases/{case['id']}/approve", json={}, headers={"Authorization": f"Bearer {agent_key}"}
        )
        assert approved.json()["state"] == "approved"
    assert (tmp_path / "pg").is_dir()
    with _serving(tmp_path) as url:
        again = httpx.get(f"{url}/v1/cases/{case['id']}", headers={"Authorization": f"Bearer {key}"})
        assert again.status_code == 200 and again.json()["state"] == "approved"
