"""Faults with real parts: PostgreSQL (an embedded server of the test's own) restarted while
requests run, the connection pool exhausted, a use case cancelled mid-transaction, and SIGTERM
on a serving process with a request in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.config import Settings
from tests.support.server import serve
from tests.support.tenants import Tenant, order_body
from tests.support.waiting import eventually


class Postgres:
    """An embedded PostgreSQL the test may stop and start again."""

    def __init__(self, pgdata: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(pgdata, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        pid = self.server.get_pid()
        os.kill(pid, signal.SIGINT)  # a fast shutdown: sessions are cut, as in a restart
        eventually(lambda: not _alive(pid), timeout=30)

    def start(self) -> None:
        self.server.ensure_postgres_running()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with tempfile.TemporaryDirectory(prefix="returns-faults-") as folder:
        server = Postgres(Path(folder) / "pg")
        yield server
        server.server.cleanup()


@pytest.fixture(scope="module")
def service(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from service.bootstrap import build_app

    settings = Settings(
        database_url=postgres.url,
        data_dir=tmp_path_factory.mktemp("faults"),
        log_format="json",
        run_worker=False,
        db_pool_max=2,
        db_acquire_timeout_seconds=0.5,
    )
    with serve(build_app(settings)) as url:
        yield url


@pytest.fixture
def shop(service: str, postgres: Postgres) -> Iterator[Tenant]:
    tenant = Tenant(service, postgres.url)
    yield tenant
    tenant.close()


def test_postgres_restarted_under_load_loses_no_acknowledged_write(shop: Tenant, service: str, postgres: Postgres) -> None:
    acknowledged: list[str] = []
    statuses: set[int] = set()
    unexpected: list[str] = []
    stop = threading.Event()

    def write() -> None:
        client = httpx.Client(base_url=service, headers=dict(shop.storefront.headers), timeout=10)
        for i in range(100_000):
            if stop.is_set():
                break
            order_id = f"o_load_{i}"
            try:
                answer = client.put(f"/v1/orders/{order_id}", json=order_body())
            except httpx.TransportError:
                continue
            statuses.add(answer.status_code)
            if answer.status_code in (200, 201):
                acknowledged.append(order_id)
            else:
                if answer.status_code != 503:
                    unexpected.append(answer.text)
                time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        eventually(lambda: len(acknowledged) >= 20)
        postgres.stop()
        ready = httpx.get(service + "/health/ready")
        assert ready.status_code == 503 and ready.json()["database"] is False
        eventually(lambda: 503 in statuses)
        before_restart = len(acknowledged)
        postgres.start()
        eventually(lambda: httpx.get(service + "/health/ready").status_code == 200, timeout=30)
        eventually(lambda: len(acknowledged) >= before_restart + 20, timeout=30)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert statuses <= {200, 201, 503} and not unexpected, (statuses, unexpected[:3])
    missing = [o for o in acknowledged if shop.storefront.get(f"/v1/orders/{o}").status_code != 200]
    assert missing == [], "every acknowledged write survived the restart"


def test_an_exhausted_pool_answers_503_at_once(shop: Tenant, service: str, postgres: Postgres) -> None:
    shop.put_order("o_locked")

    async def hold_the_order() -> asyncpg.Connection:
        conn = await asyncpg.connect(postgres.url)
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 FROM orders WHERE order_id = 'o_locked' FOR UPDATE")
        return conn

    loop = asyncio.new_event_loop()
    holder = loop.run_until_complete(hold_the_order())
    blocked: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda: blocked.append(
                httpx.put(f"{service}/v1/orders/o_locked", json=order_body(), headers=dict(shop.storefront.headers), timeout=30)
            )
        )
        for _ in range(2)  # each holds one of the pool's two connections, waiting on the lock
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        started = time.monotonic()
        answer = shop.storefront.get("/v1/orders/o_locked")
        elapsed = time.monotonic() - started
        assert answer.status_code == 503 and answer.json()["code"] == "unavailable", answer.text
        assert answer.headers["retry-after"] == "1"
        assert elapsed < 3, f"answered in {elapsed:.1f} s: no hang"
    finally:
        loop.run_until_complete(holder.execute("ROLLBACK"))
        loop.run_until_complete(holder.close())
        loop.close()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(r.status_code for r in blocked) == [200, 200], "the waiting writes went through"


def test_a_use_case_cancelled_mid_transaction_leaves_nothing(shop: Tenant, postgres: Postgres, tmp_path: Path) -> None:
    import msgspec

    from service.bootstrap import open_services
    from service.dto import CaseIn
    from service.ports import Principal

    shop.put_order("o_cancel")
    settings = Settings(database_url=postgres.url, data_dir=tmp_path, run_worker=False)
    principal = Principal(key_id=shop.key_ids["storefront"], merchant_id=shop.merchant_id, role="storefront")
    body = msgspec.convert(
        {"order_id": "o_cancel", "type": "return", "items": [{"line_id": "l1", "quantity": 1, "reason": "wrong_size"}]},
        CaseIn,
    )

    async def scenario() -> tuple[int, int]:
        holder = await asyncpg.connect(postgres.url)
        async with open_services(settings) as services:
            await holder.execute("BEGIN")
            await holder.execute("SELECT 1 FROM orders WHERE order_id = 'o_cancel' FOR UPDATE")
            task = asyncio.create_task(services.cases.open_case(principal, body, "key-cancelled"))
            await asyncio.sleep(0.5)  # it has claimed the idempotency key and waits for the order
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await holder.execute("ROLLBACK")
        keys = await holder.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = 'key-cancelled'")
        cases = await holder.fetchval("SELECT count(*) FROM cases WHERE order_id = 'o_cancel'")
        await holder.close()
        return keys, cases

    assert asyncio.run(scenario()) == (0, 0)
    retried = shop.storefront.post(
        "/v1/cases",
        headers={"Idempotency-Key": "key-cancelled"},
        json={"order_id": "o_cancel", "type": "return", "items": [{"line_id": "l1", "quantity": 1, "reason": "wrong_size"}]},
    )
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


def test_sigterm_finishes_the_request_in_flight(postgres: Postgres, shop: Tenant, tmp_path: Path) -> None:
    import socket

    shop.put_order("o_sigterm")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RETURNS_DATABASE_URL": postgres.url, "RETURNS_DATA_DIR": str(tmp_path), "RETURNS_LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    loop = asyncio.new_event_loop()
    try:
        eventually(lambda: _ready(url), timeout=60)

        async def hold() -> asyncpg.Connection:
            conn = await asyncpg.connect(postgres.url)
            await conn.execute("BEGIN")
            await conn.execute("SELECT 1 FROM orders WHERE order_id = 'o_sigterm' FOR UPDATE")
            return conn

        holder = loop.run_until_complete(hold())
        in_flight: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: in_flight.append(
                httpx.put(
                    f"{url}/v1/orders/o_sigterm",
                    json=order_body(shipping_total=1),
                    headers=dict(shop.storefront.headers),
                    timeout=30,
                )
            )
        )
        request.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health/live", timeout=2)  # no new requests once it is stopping
        assert process.poll() is None, "still finishing the request in flight"
        loop.run_until_complete(holder.execute("ROLLBACK"))
        loop.run_until_complete(holder.close())
        request.join(timeout=30)
        assert [r.status_code for r in in_flight] == [200]
        # uvicorn re-raises the signal once it has shut down cleanly; the CLI turns it into the
        # exit status a shell gives a process ended by SIGTERM, after releasing what it holds
        assert process.wait(timeout=30) == 128 + signal.SIGTERM
        assert shop.storefront.get("/v1/orders/o_sigterm").json()["shipping_total"] == 1
    finally:
        loop.close()
        if process.poll() is None:
            process.kill()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/health/ready").status_code == 200
    except httpx.TransportError:
        return False
