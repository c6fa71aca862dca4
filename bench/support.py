"""What the benchmark scripts share: a database of their own on the machine's PostgreSQL, keys made
by the ``returns`` CLI, a service waited for until it is ready, and the data a run starts from (an
order body, orders and cases of every kind made over HTTP, received returns whose refunds are due).
Bench imports no test code: the tests' helpers change with the tests, these with the benchmarks."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from adapters.postgres.database import PostgresDatabase
from domain.cases import Actor, Case, CaseAction, CaseItem, CaseType, Reason, Resolution
from domain.decision import CaseMoney, Decision, Payer, ShippingShares
from domain.orders import Customer, Order, OrderLine, Payment
from service.ids import new_id
from service.refunds import RefundService

ROOT = Path(__file__).resolve().parents[1]
# the server the runs make their databases on (its maintenance database)
DATABASE = os.environ.get("RETURNS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def admin(url: str, statement: str) -> None:
    """One statement on a connection of its own (``CREATE DATABASE`` runs outside a transaction)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_database(server: str, prefix: str) -> Iterator[str]:
    """A new empty database ``<prefix>_<random>`` on ``server``, dropped (connections and all) afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(server)._replace(path="/" + name))
    finally:
        asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_key(env: dict[str, str], merchant: str, role: str) -> str:
    """A new API key of ``merchant`` for ``role``, made by ``returns keys create`` on ``env``'s database."""
    made = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--merchant", merchant, "--role", role],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return made.stdout.strip().splitlines()[-1]


def wait_ready(base: str, seconds: float = 30) -> None:
    """Until ``GET /health/ready`` of the service at ``base`` answers 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the service did not become ready")


def order_body(customer_id: str = "cus_bench") -> dict[str, Any]:
    """An order delivered a week ago and paid in full: two t-shirts (``l1``) and a mug (``l2``)."""
    now = datetime.now(UTC)
    lines = [
        {
            "line_id": "l1",
            "sku": "TSHIRT-M",
            "title": "T-shirt",
            "quantity": 2,
            "unit_price": 1999,
            "category": "apparel",
            "final_sale": False,
        },
        {"line_id": "l2", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": 1500},
    ]
    return {
        "currency": "EUR",
        "placed_at": (now - timedelta(days=10)).isoformat(),
        "delivered_at": (now - timedelta(days=7)).isoformat(),
        "customer": {"id": customer_id, "email": "a@example.com"},
        "lines": lines,
        "shipping_total": 495,
        "payment": {"gateway": "stripe", "reference": f"pi_{secrets.token_hex(6)}", "captured_amount": 5993},
    }


def cases_of_every_kind(base: str, keys: dict[str, str]) -> None:
    """Two orders and cases in several states, made over HTTP with the merchant's storefront and
    agent keys: one refunded, one waiting for review, an exchange, a repair (a fuzzer that starts
    from a list then reaches real ids)."""
    store = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys['storefront']}"}, timeout=30)
    agent = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {keys['agent']}"}, timeout=30)
    with store, agent:

        def case(order_id: str, items: list[dict[str, Any]], kind: str = "return", **body: Any) -> dict[str, Any]:
            made = store.post("/v1/cases", json={"order_id": order_id, "type": kind, "items": items, **body})
            made.raise_for_status()
            return made.json()

        for order_id in ("o_fuzz", "o_fuzz_2"):
            store.put(f"/v1/orders/{order_id}", json=order_body()).raise_for_status()
        refunded = case("o_fuzz", [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}], resolution="refund")
        agent.post(
            f"/admin/v1/cases/{refunded['id']}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}
        ).raise_for_status()
        case("o_fuzz", [{"line_id": "l2", "quantity": 1, "reason": "other", "note": "why"}], resolution="refund")
        exchanged = [{"line_id": "l1", "quantity": 1, "reason": "wrong_size", "replacement_sku": "TSHIRT-L"}]
        case("o_fuzz_2", exchanged, "exchange", resolution=None)
        case(
            "o_fuzz_2",
            [{"line_id": "l2", "quantity": 1, "reason": "defective"}],
            "repair",
            resolution=None,
            issue_description="the handle broke",
        )


async def due_refunds(db: PostgresDatabase, service: RefundService, count: int, *, amount: int, account: str) -> None:
    """``count`` received returns of one order of a new merchant paid through gateway ``account``,
    each with a pending refund of ``amount``: written below HTTP, as thousands of them are."""
    merchant, at, bench = new_id("m"), service.clock(), Actor(id="key_bench", role="agent")
    order = Order(
        merchant_id=merchant,
        order_id="o1",
        currency="EUR",
        placed_at=at,
        delivered_at=at,
        customer=Customer(id="cus_1"),
        lines=[OrderLine("l1", "SKU", "Thing", count, amount)],
        shipping_total=0,
        payment=Payment("stripe", new_id("pi"), count * amount),
    )
    money = CaseMoney("EUR", amount, 0, ShippingShares(Payer.MERCHANT, 0, 0), 0, amount, 0, 0)
    async with db.transaction() as repos:
        await repos.ensure_merchant(merchant)
        await repos.set_gateway_account(merchant, account)
        await repos.upsert_order(order, at)
        for _ in range(count):
            case = Case.open(
                case_id=new_id("case"),
                merchant_id=merchant,
                order_id="o1",
                customer_id="cus_1",
                case_type=CaseType.RETURN,
                items=[CaseItem("l1", "SKU", 1, amount, Reason.DEFECTIVE)],
                resolution=Resolution.REFUND,
                decision=Decision(0, True, False, False, True, []),
                money=money,
                actor=bench,
                at=at,
            )
            case.apply(CaseAction.AUTO_APPROVE, bench, at)
            case.apply(CaseAction.RECEIVE, bench, at)
            refund = await service.open_refund(repos, case, order, amount, at)
            case.apply(CaseAction.START_REFUND, bench, at, {"refund_id": refund.id})
            await repos.add_case(case)
