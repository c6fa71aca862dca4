"""``kill -9`` of a ``returns worker`` process while it buys return labels from the simulated
carrier (4 s a call, half on the way back): once after the carrier made a shipment the worker
never heard of, once after the carrier sold a label the worker never recorded. A new worker takes
the labels over when their lease runs out, and at the end each label was paid for once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import asyncpg
import msgspec
import pytest

from service.bootstrap import open_services
from service.config import Settings
from service.dto import CaseIn, OrderIn, ShippingSettingsIn
from service.ports import Principal
from tests.support.database import fresh_database
from tests.support.labels import worker_process
from tests.support.tenants import order_body

MERCHANT = "m_label_kill"
STOREFRONT = Principal(key_id="k_sf", merchant_id=MERCHANT, role="storefront")
ADDRESS = {"name": "Ann Lee", "street1": "Rue de Rivoli 5", "city": "Paris", "zip": "75001", "country": "FR"}
RETURN_ADDRESS = {"name": "Shop", "street1": "Dock 1", "city": "Hamburg", "zip": "20095", "country": "DE"}
LEASE_SECONDS = 2
LATENCY_MS = 4000  # 2 s on the way back from the carrier to kill the worker in, even on a busy machine


@pytest.fixture
def kill_database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def _worker(database_url: str, latency_ms: int) -> subprocess.Popen[bytes]:
    return worker_process(
        database_url,
        RETURNS_WORKER_IDLE_SECONDS="0.1",
        RETURNS_SIMULATED_CARRIER_LATENCY_MS=str(latency_ms),
        RETURNS_LABEL_LEASE_SECONDS=str(LEASE_SECONDS),
    )


async def _until(conn: asyncpg.Connection, worker: subprocess.Popen[bytes], sql: str, *args: object) -> None:
    deadline = time.monotonic() + 30
    while not await conn.fetchval(sql, *args):
        assert worker.poll() is None and time.monotonic() < deadline, f"never came: {sql}"
        await asyncio.sleep(0.02)


def _kill(worker: subprocess.Popen[bytes]) -> None:
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


async def _approved_cases(database_url: str, count: int) -> list[str]:
    settings = Settings(database_url=database_url, run_worker=False, log_format="json")
    async with open_services(settings) as services:
        async with services.db.transaction() as repos:
            await repos.ensure_merchant(MERCHANT)
        await services.labels.put_settings(MERCHANT, msgspec.convert({"return_address": RETURN_ADDRESS}, ShippingSettingsIn))
        case_ids = []
        for index in range(count):
            order_id = f"o_kill_{index}"
            await services.cases.put_order(STOREFRONT, order_id, msgspec.convert(order_body(shipping_address=ADDRESS), OrderIn))
            body = {
                "order_id": order_id,
                "type": "return",
                "resolution": "refund",
                "items": [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}],
            }
            view, _ = await services.cases.open_case(STOREFRONT, msgspec.convert(body, CaseIn), None)
            assert view.label is not None and view.label.status == "pending"
            case_ids.append(view.id)
    return case_ids


async def test_kill_9_between_the_carriers_steps_buys_each_label_once(kill_database_url: str) -> None:
    first, second = await _approved_cases(kill_database_url, 2)
    conn = await asyncpg.connect(kill_database_url)
    label_of = "SELECT id FROM return_labels WHERE case_id = $1"
    workers = []
    try:
        first_label = await conn.fetchval(label_of, first)
        second_label = await conn.fetchval(label_of, second)

        # 1. the carrier made the first label's shipment; the worker dies on the way back
        doomed = _worker(kill_database_url, latency_ms=LATENCY_MS)
        workers.append(doomed)
        await _until(conn, doomed, "SELECT count(*) FROM simulated_carrier_shipments WHERE reference = $1", first_label)
        _kill(doomed)
        assert await conn.fetchval("SELECT shipment_id FROM return_labels WHERE id = $1", first_label) is None

        # 2. the next worker takes it over (its lease ran out) and buys the second label; it dies
        # after the carrier sold it, on the way back
        doomed = _worker(kill_database_url, latency_ms=LATENCY_MS)
        workers.append(doomed)
        await _until(conn, doomed, "SELECT count(*) FROM simulated_carrier_purchases WHERE reference = $1", second_label)
        _kill(doomed)
        assert await conn.fetchval("SELECT status FROM return_labels WHERE id = $1", second_label) == "pending"

        # 3. a worker that lives finishes both
        survivor = _worker(kill_database_url, latency_ms=0)
        workers.append(survivor)
        await _until(conn, survivor, "SELECT count(*) = 2 FROM return_labels WHERE status = 'bought'")
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0

        purchases = await conn.fetch("SELECT reference, count(*) AS n FROM simulated_carrier_purchases GROUP BY reference")
        assert {row["reference"]: row["n"] for row in purchases} == {first_label: 1, second_label: 1}
        # the first label's shipment id was never stored: a second shipment, bought once; the
        # second's was stored before buying: its one shipment
        shipments = await conn.fetch("SELECT reference, count(*) AS n FROM simulated_carrier_shipments GROUP BY reference")
        assert {row["reference"]: row["n"] for row in shipments} == {first_label: 2, second_label: 1}
        amounts = await conn.fetch("SELECT amount FROM return_labels")
        assert [row["amount"] for row in amounts] == [980, 980]
        for case_id in (first, second):
            doc = msgspec.json.decode(await conn.fetchval("SELECT doc::text FROM cases WHERE id = $1", case_id))
            assert doc["money"]["return_shipping"]["customer_share"] == 980
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        await conn.close()
