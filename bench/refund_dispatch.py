"""Refund payouts per second: ``returns worker`` processes against the simulated gateway with a
fixed latency per call, for one gateway account and for many.

For each scenario, on a fresh database of the machine's PostgreSQL: ``--refunds`` due refunds
spread evenly over the accounts, then ``--workers`` worker processes started with
``RETURNS_SIMULATED_LATENCY_MS``, timed from the first refund made at the gateway to the last one
recorded as succeeded. Also printed: the busiest second of any one account at the gateway (the
pacing keeps it under Stripe's 25 refund requests a second, however many workers run), and that
each refund was made once.

    python bench/refund_dispatch.py --refunds 1000 --latency-ms 200 [--accounts 1,20] [--workers 2]

The last line reads ``dispatch: <N> refunds/s across <M> accounts`` for the last scenario.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.gateways.simulated import SimulatedGateway  # noqa: E402
from adapters.postgres.database import PostgresDatabase  # noqa: E402
from adapters.postgres.migrations import migrate  # noqa: E402
from bench.support import DATABASE, due_refunds, fresh_database  # noqa: E402
from service.cases import utcnow  # noqa: E402
from service.refunds import RefundService  # noqa: E402


async def prepare(database_url: str, refunds: int, accounts: int) -> None:
    db = await PostgresDatabase.connect(database_url, min_size=1, max_size=2)
    try:
        async with db.pool.acquire() as conn:
            await migrate(conn)
        setup = RefundService(db, SimulatedGateway(database_url), utcnow)
        for index in range(accounts):
            share = refunds // accounts + (1 if index < refunds % accounts else 0)
            await due_refunds(db, setup, share, amount=100, account=f"acct_bench{index:02d}")
    finally:
        await db.close()


def start_worker(database_url: str, latency_ms: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETURNS_", "STRIPE_"))}
    env.update(
        RETURNS_DATABASE_URL=database_url,
        RETURNS_SIMULATED_LATENCY_MS=str(latency_ms),
        RETURNS_LOG_FORMAT="json",
        RETURNS_WORKER_IDLE_SECONDS="0.1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def measure(database_url: str, refunds: int, latency_ms: int, workers: int) -> dict[str, float]:
    conn = await asyncpg.connect(database_url)
    started_workers = [start_worker(database_url, latency_ms) for _ in range(workers)]
    try:
        while not await conn.fetchval("SELECT count(*) FROM simulated_gateway_refunds"):
            if any(worker.poll() is not None for worker in started_workers):
                raise SystemExit("a worker exited before paying anything")
            await asyncio.sleep(0.02)
        started = time.perf_counter() - latency_ms / 2000  # the first call left half a latency ago
        while await conn.fetchval("SELECT count(*) FROM refunds WHERE status = 'succeeded'") < refunds:
            if any(worker.poll() is not None for worker in started_workers):
                raise SystemExit("a worker died")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        busiest = await conn.fetchval(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM simulated_gateway_refunds"
            " GROUP BY account, date_trunc('second', created_at)) AS per_second"
        )
        made = await conn.fetchval("SELECT count(DISTINCT refund_id) FROM simulated_gateway_refunds")
        total = await conn.fetchval("SELECT count(*) FROM simulated_gateway_refunds")
    finally:
        for worker in started_workers:
            worker.send_signal(signal.SIGTERM)
        for worker in started_workers:
            worker.wait(timeout=60)
        await conn.close()
    return {"elapsed": elapsed, "rate": refunds / elapsed, "busiest": busiest, "made": made, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refunds", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--accounts", default="1,20", help="scenarios: how many accounts share the refunds")
    parser.add_argument("--workers", type=int, default=1, help="worker processes side by side")
    parser.add_argument("--database", default=DATABASE)
    args = parser.parse_args()
    print(f"{args.refunds} refunds, simulated gateway latency {args.latency_ms} ms per call, {args.workers} worker process(es)")
    print(
        f"{'accounts':>8} {'seconds':>8} {'refunds/s':>10} {'per account/s':>14} {'busiest account-second':>23} {'made once':>10}"
    )
    last = None
    for accounts in (int(a) for a in args.accounts.split(",")):
        with fresh_database(args.database, "returns_dispatch") as database_url:
            asyncio.run(prepare(database_url, args.refunds, accounts))
            figures = asyncio.run(measure(database_url, args.refunds, args.latency_ms, args.workers))
        once = "yes" if figures["made"] == figures["total"] == args.refunds else f"NO ({figures['total']})"
        print(
            f"{accounts:>8} {figures['elapsed']:>8.1f} {figures['rate']:>10.1f} {figures['rate'] / accounts:>14.1f}"
            f" {figures['busiest']:>23} {once:>10}"
        )
        last = (figures["rate"], accounts)
    assert last is not None
    print(f"dispatch: {last[0]:.0f} refunds/s across {last[1]} accounts")


if __name__ == "__main__":
    main()
