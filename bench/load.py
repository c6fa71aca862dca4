"""Throughput and latency of the service against the ceiling the database allows.

One run, on a fresh database of the machine's PostgreSQL:

1. Record: one iteration of the mix is played against the service in this process with every
   SQL statement logged (asyncpg's query logger): the exact statements and arguments each HTTP
   request runs, transactions included.
2. Service: `returns serve` in its own process (worker off), driven by an aiohttp load generator
   on 127.0.0.1 at fixed concurrency levels. The mix, per iteration: put an order, open a case,
   read it, an agent approves it, an agent reads the queue.
3. Ceiling: the recorded statements replayed through a bare asyncpg pool (no HTTP, no framework,
   no domain), with fresh ids per iteration, at the same concurrency.

Prints requests/s, p50/p95/p99 per level, the service's peak RSS, and service / ceiling.

    pip install -e '.[bench]' && python bench/load.py [--seconds 10] [--levels 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import DATABASE, create_key, fresh_database, order_body, wait_ready  # noqa: E402

MIX = ("put_order", "open_case", "get_case", "approve", "queue")
POOL_RESET = "SELECT pg_advisory_unlock_all"  # the pool's own reset on release: both sides pay it anyway


# --------------------------------------------------------------------------- the mix over HTTP


async def iteration(session: aiohttp.ClientSession, base: str, keys: dict[str, str], tag: str, timings: list[float]) -> None:
    store = {"Authorization": f"Bearer {keys['storefront']}"}
    agent = {"Authorization": f"Bearer {keys['agent']}"}
    order_id = f"o_{tag}"
    body = order_body(f"cus_{tag}")

    async def call(
        method: str, path: str, headers: dict[str, str], json: Any = None, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        started = time.perf_counter()
        async with session.request(method, base + path, headers=headers, json=json) as response:
            payload = await response.json()
            timings.append(time.perf_counter() - started)
            if response.status not in expect:
                raise RuntimeError(f"{method} {path}: {response.status} {payload}")
            return payload

    await call("PUT", f"/v1/orders/{order_id}", store, body)
    case = await call(
        "POST",
        "/v1/cases",
        store,
        {
            "order_id": order_id,
            "type": "return",
            "items": [{"line_id": "l1", "quantity": 1, "reason": "other", "note": "bench"}],
        },
    )
    await call("GET", f"/v1/cases/{case['id']}", store)
    await call("POST", f"/admin/v1/cases/{case['id']}/approve", agent, {"note": "ok"})
    await call("GET", "/admin/v1/cases?limit=20", agent)


async def drive(base: str, keys: dict[str, str], concurrency: int, seconds: float) -> tuple[float, list[float]]:
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def user(number: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                await iteration(session, base, keys, f"{concurrency}_{number}_{i}_{secrets.token_hex(3)}", timings)
                i += 1

        started = time.perf_counter()
        await asyncio.gather(*(user(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(timings) / elapsed, timings


# --------------------------------------------------------------------------- recording the SQL


def record(url: str, keys: dict[str, str]) -> list[list[tuple[str, tuple]]]:
    """One iteration against an in-process service (uvicorn in this event loop) whose every
    connection logs its statements; answers the statements per HTTP request, in order."""
    import asyncpg as pg
    import uvicorn

    from service.bootstrap import build_app
    from service.config import Settings, http_server_options

    logged: list[tuple[str, tuple]] = []
    per_request: list[list[tuple[str, tuple]]] = []
    original = pg.create_pool

    def create_pool(*args: Any, **kwargs: Any) -> Any:
        async def init(conn: asyncpg.Connection) -> None:
            conn.add_query_logger(
                lambda q: None if q.query.startswith(POOL_RESET) else logged.append((q.query, tuple(q.args or ())))
            )

        return original(*args, init=init, **kwargs)

    class CutAtEachRequest(list):
        """The generator notes each request's time here: the log so far is that request's."""

        def append(self, value: float) -> None:
            super().append(value)
            per_request.append(list(logged))
            logged.clear()

    async def one() -> None:
        settings = Settings(database_url=url, run_worker=False, log_format="json", data_dir=Path("/tmp/returns-bench"))
        config = uvicorn.Config(build_app(settings), host="127.0.0.1", port=0, log_level="warning", **http_server_options(None))
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                raise RuntimeError("the service did not start")
            await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        try:
            logged.clear()
            async with aiohttp.ClientSession() as session:
                await iteration(session, base, keys, "recorded", CutAtEachRequest())
        finally:
            server.should_exit = True
            await serving

    pg.create_pool = create_pool
    try:
        asyncio.run(one())
    finally:
        pg.create_pool = original
    return per_request


def _fresh(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
    elif isinstance(value, list):
        value = [_fresh(v, replacements) for v in value]
    return value


async def _replay(conn: asyncpg.Connection, query: str, args: tuple, swap: dict[str, str]) -> None:
    if not args:
        await conn.execute(query)  # BEGIN, COMMIT: the simple protocol, as the service sends them
    elif all(isinstance(a, tuple) for a in args):  # executemany: logged with its rows as the arguments
        await conn.executemany(query, [tuple(_fresh(a, swap) for a in row) for row in args])
    else:
        await conn.fetch(query, *(_fresh(a, swap) for a in args))


async def ceiling(
    url: str, recorded: list[list[tuple[str, tuple]]], concurrency: int, seconds: float
) -> tuple[float, list[float]]:
    """The recorded statements through a bare pool, per request on one connection, with the
    iteration's ids made fresh (the ids the recording used are swapped in every string)."""
    case_id = next(a for q, args in recorded[1] for a in args if isinstance(a, str) and a.startswith("case_"))
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    timings: list[float] = []
    deadline = time.perf_counter() + seconds

    async def user(number: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            tag = f"c{concurrency}_{number}_{i}_{secrets.token_hex(3)}"
            swap = {"o_recorded": f"o_{tag}", "cus_recorded": f"cus_{tag}", case_id: f"case_{tag}"}
            for statements in recorded:
                started = time.perf_counter()
                async with pool.acquire() as conn:
                    for query, args in statements:
                        await _replay(conn, query, args, swap)
                timings.append(time.perf_counter() - started)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return len(timings) / elapsed, timings


# --------------------------------------------------------------------------- the run


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000)[int(p * 10) - 1] * 1000 if len(values) > 1 else 0.0


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in found.read_text().split()] if found.exists() else []


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--workers", type=int, default=1, help="API processes of the service")
    parser.add_argument("--database", default=DATABASE)
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]

    with fresh_database(args.database, "returns_load") as url:
        env = {
            **os.environ,
            "RETURNS_DATABASE_URL": url,
            "RETURNS_RUN_WORKER": "0",
            "RETURNS_LOG_FORMAT": "json",
            "RETURNS_DB_POOL_MAX": str(max(levels) + 4),
        }
        port = 19_000 + secrets.randbelow(1000)
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
        keys = {role: create_key(env, "m_bench", role) for role in ("storefront", "agent")}
        recorded = record(url, keys)
        statements = sum(len(r) for r in recorded)
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open("/tmp/returns-bench-serve.log", "w"),  # noqa: SIM115  # the server's, until it stops
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(base)
            print(f"mix per iteration: {', '.join(MIX)}; {statements} SQL statements recorded for its {len(recorded)} requests")
            print(
                f"{'clients':>7} {'service req/s':>14} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'ceiling req/s':>14} {'p99 ms':>8} {'ratio':>6}"
            )
            for level in levels:
                rate, timings = asyncio.run(drive(base, keys, level, args.seconds))
                top, bare = asyncio.run(ceiling(url, recorded, level, args.seconds))
                print(
                    f"{level:>7} {rate:>14.0f} {percentile(timings, 50):>8.1f} {percentile(timings, 95):>8.1f} "
                    f"{percentile(timings, 99):>8.1f} {top:>14.0f} {percentile(bare, 99):>8.1f} {rate / top:>6.2f}"
                )
            print(
                f"service peak RSS: {peak_rss_mib(server.pid) + sum(peak_rss_mib(c) for c in _children(server.pid)):.1f} MiB"
                f" ({args.workers} API process(es))"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
