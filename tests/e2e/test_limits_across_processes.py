"""Limits hold in total, however many processes serve (issue #23): two ``returns serve`` processes
on one database accept the order lookup's limit once between them, not once each; two ``returns
worker`` processes together call the gateway at the configured pace per account, counted at the
simulated gateway, which stamps each refund it makes."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

import asyncpg

from adapters.gateways.simulated import SimulatedGateway
from adapters.postgres.database import PostgresDatabase
from adapters.postgres.migrations import migrate
from service.refunds import RefundService
from tests.support.database import fresh_database
from tests.support.labels import worker_process
from tests.support.portal import lookup_links, public_client
from tests.support.refunds import Clock, due_refunds
from tests.support.server import serve_process
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

PER_EMAIL, PER_IP = 5, 12
RATE = 2.0  # gateway calls a second per account
BURST = 1.0  # a quarter second's calls, at least one
REFUNDS = 20


def _serve_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RETURNS_", "STRIPE_", "EASYPOST_"))}
    env.update(
        RETURNS_DATABASE_URL=database_url,
        RETURNS_DATA_DIR=str(data_dir),
        RETURNS_LOG_FORMAT="json",
        RETURNS_RUN_WORKER="0",
        RETURNS_PORTAL_LOOKUPS_PER_EMAIL=str(PER_EMAIL),
        RETURNS_PORTAL_LOOKUPS_PER_IP=str(PER_IP),
    )
    return env


def test_two_api_processes_keep_one_lookup_limit(tmp_path: Path) -> None:
    with (
        fresh_database() as database_url,
        serve_process(env=_serve_env(database_url, tmp_path / "one")) as one,
        serve_process(env=_serve_env(database_url, tmp_path / "two")) as two,
    ):
        shop = Tenant(one, database_url)
        order_id = shop.put_order(customer={"id": "cus_1", "email": "buyer@example.com"})["order_id"]
        body = {"merchant": shop.merchant_id, "order_id": order_id, "email": "buyer@example.com"}
        with public_client(one, "127.0.0.2") as first, public_client(two, "127.0.0.2") as second:
            answers = [(first, second)[n % 2].post("/v1/portal-sessions", json=body) for n in range(2 * PER_EMAIL)]
        assert [a.status_code for a in answers] == [202] * PER_EMAIL + [429] * PER_EMAIL, "one e-mail's 5, in total"
        assert all(a.json()["code"] == "rate_limited" and int(a.headers["Retry-After"]) >= 1 for a in answers[PER_EMAIL:])
        eventually(lambda: len(lookup_links(database_url, shop.merchant_id)) >= PER_EMAIL)
        time.sleep(0.5)  # any lookup past the limit had its time to record a link
        assert len(lookup_links(database_url, shop.merchant_id)) == PER_EMAIL, "five links for one inbox, not ten"

        with public_client(one, "127.0.0.3") as first, public_client(two, "127.0.0.3") as second:
            statuses = [
                (first, second)[n % 2].post("/v1/portal-sessions", json={**body, "email": f"e{n}@example.com"}).status_code
                for n in range(PER_IP + 4)
            ]
        assert statuses == [202] * PER_IP + [429] * 4, "one address's 12, in total"
        shop.close()


async def _pace_at_the_gateway(database_url: str) -> tuple[list[float], set[str]]:
    """Two workers pay the refunds of one account; answers when the gateway made each (seconds
    from the first) and which workers were seen holding claims."""
    db = await PostgresDatabase.connect(database_url, min_size=1, max_size=2)
    async with db.pool.acquire() as conn:
        await migrate(conn)
    await due_refunds(db, RefundService(db, SimulatedGateway(database_url), Clock()), REFUNDS, account="acct_pace")
    await db.close()
    conn = await asyncpg.connect(database_url)
    workers = [worker_process(database_url, RETURNS_GATEWAY_RATE_PER_SECOND=str(RATE)) for _ in range(2)]
    claimants: set[str] = set()
    try:
        deadline = time.monotonic() + 90
        while await conn.fetchval("SELECT count(*) FROM refunds WHERE status = 'succeeded'") < REFUNDS:
            assert all(w.poll() is None for w in workers) and time.monotonic() < deadline, "the workers stalled"
            claimants |= {
                row[0] for row in await conn.fetch("SELECT DISTINCT claimed_by FROM refunds WHERE claimed_by IS NOT NULL")
            }
            await asyncio.sleep(0.05)
        made = [
            row[0]
            for row in await conn.fetch(
                "SELECT created_at FROM simulated_gateway_refunds WHERE account = 'acct_pace' ORDER BY created_at"
            )
        ]
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
        await conn.close()
    return [(at - made[0]) / timedelta(seconds=1) for at in made], claimants


def test_two_workers_keep_one_pace_per_account() -> None:
    with fresh_database() as database_url:
        made, claimants = asyncio.run(_pace_at_the_gateway(database_url))
    assert len(claimants) == 2, f"both workers sent refunds ({claimants})"
    assert len(made) == REFUNDS, "each refund made once"
    busiest = max(sum(1 for t in made if start <= t < start + 1.0) for start in made)
    assert busiest <= RATE + BURST, f"{busiest} calls in one second at the gateway: over {RATE:g}/s and a burst of {BURST:g}"
    assert made[-1] >= (REFUNDS - BURST) / RATE * 0.9, f"{REFUNDS} refunds in {made[-1]:.1f} s: faster than the pace"


def test_ipv4_clients_of_a_dual_stack_server_keep_an_address_budget_each(tmp_path: Path) -> None:
    """Attack: ``returns serve --host :: --workers N`` (the CLI takes both; IPv6 is why one would)
    listens dual stack (uvicorn binds that socket itself; a single process's asyncio server is
    IPv6 only), so an IPv4 client's address arrives as ``::ffff:a.b.c.d``. The lookup's address key
    takes an IPv6 caller's /64, and every IPv4-mapped address is in ``::/64``: one bucket for all
    of IPv4. One client spends its 12 lookups (20 by default) an hour and every other IPv4 client
    is 429 for the hour, whatever its address, order and e-mail.
    Impact: one anonymous request a few minutes locks the whole portal lookup for every IPv4
    customer of every merchant.
    Fix: in ``service.api.portal._client_key``, key an IPv4-mapped address (``address.ipv4_mapped``)
    as the IPv4 address it is, before taking an IPv6 caller's /64.
    Origin: outside review of the #23 features."""
    with (
        fresh_database() as database_url,
        serve_process("--host", "::", "--workers", "2", env=_serve_env(database_url, tmp_path / "dual")) as url,
    ):
        shop = Tenant(url, database_url)
        body = {"merchant": shop.merchant_id, "order_id": "o_none"}
        with public_client(url, "127.0.0.2") as attacker:
            spent = [attacker.post("/v1/portal-sessions", json={**body, "email": f"a{n}@example.com"}) for n in range(PER_IP)]
        assert [a.status_code for a in spent] == [202] * PER_IP
        with public_client(url, "127.0.0.3") as customer:
            answer = customer.post("/v1/portal-sessions", json={**body, "email": "customer@example.com"})
        shop.close()
        assert answer.status_code == 202, "another IPv4 address keeps its own budget"
