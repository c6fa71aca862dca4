"""``kill -9`` of a ``returns worker`` process with 50 refunds in flight at the simulated gateway
(some already made there, none recorded by us): a new worker takes them over once their short
lease runs out, and at the end the gateway holds each refund exactly once.

The refunds are spread over 25 merchants' accounts, paced at one call a second each: the first
of each account's two reaches the gateway at once, the second a second later, so the kill finds
some made and some not."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import asyncpg
import pytest

from adapters.gateways.simulated import SimulatedGateway
from adapters.postgres.database import PostgresDatabase
from adapters.postgres.migrations import migrate
from service.refunds import RefundService
from tests.support.database import fresh_database
from tests.support.refunds import Clock, due_refunds

ACCOUNTS, PER_ACCOUNT = 25, 2
REFUNDS = ACCOUNTS * PER_ACCOUNT
LEASE_SECONDS = 15  # the default


@pytest.fixture
def crash_database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def _worker(database_url: str, latency_ms: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETURNS_", "STRIPE_"))}
    env.update(
        RETURNS_DATABASE_URL=database_url,
        RETURNS_SIMULATED_LATENCY_MS=str(latency_ms),
        RETURNS_LOG_FORMAT="json",
        RETURNS_WORKER_IDLE_SECONDS="0.1",
        RETURNS_GATEWAY_RATE_PER_SECOND="1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _count(conn: asyncpg.Connection, sql: str, *args: object) -> int:
    return await conn.fetchval(sql, *args)


async def test_kill_9_with_fifty_refunds_in_flight(crash_database_url: str) -> None:
    db = await PostgresDatabase.connect(crash_database_url, min_size=1, max_size=2)
    async with db.pool.acquire() as conn:
        await migrate(conn)
    setup = RefundService(db, SimulatedGateway(crash_database_url), Clock())
    refund_ids = []
    for index in range(ACCOUNTS):
        refund_ids += (await due_refunds(db, setup, PER_ACCOUNT, amount=100, account=f"acct_crash{index}"))[2]
    conn = await asyncpg.connect(crash_database_url)
    made_at_gateway = "SELECT count(*) FROM simulated_gateway_refunds"
    try:
        doomed = _worker(crash_database_url, latency_ms=4000)
        try:
            deadline = time.monotonic() + 60
            while await _count(conn, made_at_gateway) < 10:  # the first answers are on their way back
                assert doomed.poll() is None and time.monotonic() < deadline, "the worker never reached the gateway"
                await asyncio.sleep(0.05)
            in_flight = await _count(conn, "SELECT count(*) FROM refunds WHERE claimed_by IS NOT NULL AND status = 'pending'")
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=10)
        finally:
            if doomed.poll() is None:
                doomed.kill()
        made_before_restart = await _count(conn, made_at_gateway)
        recorded = await _count(conn, "SELECT count(*) FROM refunds WHERE status <> 'pending'")
        assert in_flight == REFUNDS and recorded == 0, f"{in_flight} in flight, {recorded} recorded when killed"
        assert 10 <= made_before_restart < REFUNDS, "some made at the gateway, some not yet"

        restarted_at = time.monotonic()
        survivor = _worker(crash_database_url, latency_ms=200)
        try:
            while await _count(conn, "SELECT count(*) FROM refunds WHERE status = 'succeeded'") < REFUNDS:
                assert survivor.poll() is None, "the new worker died"
                assert time.monotonic() - restarted_at < 30, "not recovered within 30 s"
                await asyncio.sleep(0.1)
            recovered_in = time.monotonic() - restarted_at
        finally:
            survivor.send_signal(signal.SIGTERM)
            assert survivor.wait(timeout=30) == 0, "SIGTERM stops the worker cleanly"
        assert recovered_in <= LEASE_SECONDS + 10, f"recovered in {recovered_in:.1f} s"

        at_gateway = await conn.fetch("SELECT id, refund_id, amount FROM simulated_gateway_refunds")
        assert len(at_gateway) == REFUNDS, "each refund made exactly once at the gateway"
        assert sorted(r["refund_id"] for r in at_gateway) == sorted(refund_ids)
        ours = await conn.fetch("SELECT id, gateway_refund_id FROM refunds")
        assert {r["id"]: r["gateway_refund_id"] for r in ours} == {r["refund_id"]: r["id"] for r in at_gateway}
    finally:
        await conn.close()
        await setup.gateway.close()  # type: ignore[attr-defined]
        await db.close()
