"""Export a month of refunds as CSV and show that the service's memory stays flat.

Starts `returns serve` on a fresh database of the machine's PostgreSQL, loads N refunds
(default 50,000) straight into the ledger, streams GET /finance/v1/refunds.csv, parses it back
with the csv module and checks every amount. Prints rows, bytes, time, and the server's
resident memory before and at its peak (VmHWM) for a small and for the full export.

    python bench/csv_export.py [--rows 50000] [--database postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import secrets
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import DATABASE, create_key, fresh_database, wait_ready  # noqa: E402


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: now, and the peak so far."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def load(url: str, merchant: str, rows: int) -> int:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO refunds (merchant_id, id, case_id, order_id, customer_id, reason, attempt, amount, currency,
                                 status, gateway, payment_reference, gateway_refund_id, version, created_at, updated_at,
                                 settled_at, next_attempt_at)
            SELECT $1, 'rf_bench_' || i, 'case_' || i, 'o_' || (i / 3), 'cus_' || (i % 997),
                   (ARRAY['changed_mind','wrong_size','defective','damaged_in_transit'])[1 + i % 4], 1,
                   1 + (i * 7919) % 250000, (ARRAY['EUR','JPY','KWD','USD'])[1 + i % 4], 'succeeded', 'stripe',
                   'pi_' || i, 're_' || i, 1,
                   timestamptz '2026-10-01' + (i || ' seconds')::interval * 50,
                   timestamptz '2026-10-01' + (i || ' seconds')::interval * 50,
                   timestamptz '2026-10-01' + (i || ' seconds')::interval * 50 + interval '1 hour',
                   timestamptz '2026-10-01'
              FROM generate_series(1, $2) AS i
            """,
            merchant,
            rows,
        )
        return await conn.fetchval("SELECT sum(amount) FROM refunds WHERE merchant_id = $1", merchant)
    finally:
        await conn.close()


def export(base: str, key: str, params: dict[str, str]) -> tuple[int, int, int, float]:
    """Stream the CSV, parse it as it comes; answers (rows, bytes, sum of minor amounts, seconds)."""
    exponent = {"JPY": 0, "KWD": 3}
    started = time.perf_counter()
    rows = size = total = 0
    with httpx.stream(
        "GET", f"{base}/finance/v1/refunds.csv", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=600
    ) as response:
        response.raise_for_status()

        def lines():
            nonlocal size
            for line in response.iter_lines():
                size += len(line) + 2
                yield line

        for row in csv.DictReader(lines()):
            minor = int(row["amount_minor"])
            places = exponent.get(row["currency"], 2)
            assert Decimal(row["amount"]) == Decimal(minor).scaleb(-places), row
            total += minor
            rows += 1
    return rows, size, total, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--database", default=DATABASE)
    args = parser.parse_args()

    with fresh_database(args.database, "returns_bench") as url:
        env = {**os.environ, "RETURNS_DATABASE_URL": url, "RETURNS_RUN_WORKER": "0", "RETURNS_LOG_FORMAT": "json"}
        port = 18_000 + secrets.randbelow(1000)
        subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, cwd=ROOT, capture_output=True)
        key = create_key(env, "m_bench", "finance")
        expected = asyncio.run(load(url, "m_bench", args.rows))
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            rss_idle, _ = memory_kib(server.pid)
            small = export(base, key, {"created_to": "2026-10-03T21:00:00Z"})  # about 5,000 rows
            _, peak_small = memory_kib(server.pid)
            rows, size, total, seconds = export(base, key, {})
            _, peak_full = memory_kib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    assert rows == args.rows, (rows, args.rows)
    assert total == expected, (total, expected)
    print(f"rows exported           {rows:>12,}")
    print(f"csv size                {size / 1e6:>12.1f} MB")
    print(f"export time             {seconds:>12.2f} s   ({rows / seconds:,.0f} rows/s)")
    print(f"amounts parsed back     {'all equal':>12}   (sum of minor units {total:,})")
    print(f"server RSS idle         {rss_idle / 1024:>12.1f} MiB")
    print(f"server peak, {small[0]:,} rows {peak_small / 1024:>8.1f} MiB")
    print(
        f"server peak, {rows:,} rows {peak_full / 1024:>7.1f} MiB   (growth {(peak_full - peak_small) / 1024:.1f} MiB for {rows - small[0]:,} more rows)"
    )


if __name__ == "__main__":
    main()
