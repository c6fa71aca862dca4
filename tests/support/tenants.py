"""A merchant with one HTTP client per role, all talking to the real service."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import msgspec

from domain.orders import Order
from service.keys import ROLES

if TYPE_CHECKING:
    from adapters.postgres.database import PostgresDatabase

T = TypeVar("T")


def _with_database(database_url: str, work: Callable[[PostgresDatabase], Awaitable[T]]) -> T:
    """``work`` on a connection of its own, in an event loop of its own (whatever runs in this thread)."""
    from adapters.postgres.database import PostgresDatabase

    async def run() -> T:
        db = await PostgresDatabase.connect(database_url, min_size=1, max_size=1)
        try:
            return await work(db)
        finally:
            await db.close()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result()


async def _make_keys(db: PostgresDatabase, merchant_id: str) -> dict[str, tuple[str, str]]:
    """(key id, key) per role."""
    from service.keys import create_api_key

    return {role: await create_api_key(db, merchant_id, role) for role in ROLES}


async def _record_capture(db: PostgresDatabase, merchant_id: str, order_id: str, captured_amount: int) -> None:
    async with db.transaction() as repos:
        order = await repos.get_order(merchant_id, order_id, for_update=True)
        assert order is not None
        payment = msgspec.structs.replace(order.payment, captured_amount=captured_amount)
        await repos.upsert_order(msgspec.structs.replace(order, payment=payment), datetime.now(UTC))


async def _store_order(db: PostgresDatabase, order: Order) -> None:
    async with db.transaction() as repos:
        await repos.upsert_order(order, datetime.now(UTC))


class Tenant:
    def __init__(self, base_url: str, database_url: str, merchant_id: str | None = None) -> None:
        self.merchant_id = merchant_id or f"m_{secrets.token_hex(5)}"
        self.base_url = base_url
        self.database_url = database_url
        made = _with_database(database_url, lambda db: _make_keys(db, self.merchant_id))
        self.keys = {role: key for role, (_, key) in made.items()}
        self.key_ids = {role: key_id for role, (key_id, _) in made.items()}
        self.clients = {
            role: httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            for role, key in self.keys.items()
        }
        self.storefront = self.clients["storefront"]
        self.agent = self.clients["agent"]
        self.finance = self.clients["finance"]
        self.admin = self.clients["admin"]

    def agent_key_id(self) -> str:
        """The key id an agent's actions are recorded under."""
        return self.key_ids["agent"]

    def record_capture(self, order_id: str, captured_amount: int) -> None:
        """Store another captured amount straight through the repository, past the lock that
        PUT /v1/orders keeps once cases rest on the order: a capture smaller than they hold, as
        older data may have, for the guards that still cap refunds by what is left of it."""
        _with_database(self.database_url, lambda db: _record_capture(db, self.merchant_id, order_id, captured_amount))

    def store_order(self, order_id: str, body: dict[str, Any]) -> None:
        """Store the order ``body`` straight through the repository, past every check of
        PUT /v1/orders, as orders were stored before a payment had an owner."""
        order = msgspec.convert({**body, "merchant_id": self.merchant_id, "order_id": order_id}, Order)
        _with_database(self.database_url, lambda db: _store_order(db, order))

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def put_order(self, order_id: str | None = None, **changes: Any) -> dict[str, Any]:
        order_id = order_id or f"o_{secrets.token_hex(4)}"
        body = order_body(**changes)
        response = self.storefront.put(f"/v1/orders/{order_id}", json=body)
        assert response.status_code in (200, 201), response.text
        return {"order_id": order_id, **response.json()}

    def open_case(self, order_id: str, **changes: Any) -> httpx.Response:
        body = {
            "order_id": order_id,
            "type": "return",
            "items": [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}],
            "resolution": "refund",
        }
        body.update(changes)
        return self.storefront.post("/v1/cases", json=body)


def payment(captured_amount: int, reference: str | None = None) -> dict[str, Any]:
    """An order's ``payment``, by default a payment intent of its own: tenants share the gateway's
    platform account, where a payment belongs to the first merchant whose order names it."""
    return {"gateway": "stripe", "reference": reference or f"pi_{secrets.token_hex(6)}", "captured_amount": captured_amount}


def order_body(**changes: Any) -> dict[str, Any]:
    """An order of two lines, paid with a new payment intent (see ``payment``)."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "currency": "EUR",
        "placed_at": (now - timedelta(days=10)).isoformat(),
        "delivered_at": (now - timedelta(days=7)).isoformat(),
        "customer": {"id": f"cus_{secrets.token_hex(3)}", "email": "a@example.com"},
        "lines": [
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
        ],
        "shipping_total": 495,
        "payment": payment(5993),
    }
    body.update(changes)
    return body
