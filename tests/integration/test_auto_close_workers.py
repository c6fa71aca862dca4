"""Shipped exchanges and repairs close by themselves: after ``auto_close_after`` since the item
went out, the worker closes them as the system, with the same events, outbox messages and survey
request as an agent's close; a fresh one waits; two workers close each case once. Real
PostgreSQL (a database of the test's own), the service layer with an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from adapters.gateways.simulated import SimulatedGateway
from adapters.postgres.database import PostgresDatabase
from adapters.webhook_sender import HttpWebhookSender
from policies.registry import RuleRegistry
from service.actions import Audience
from service.cases import CaseService
from service.dto import (
    ApproveIn,
    CaseIn,
    DiagnoseIn,
    NoteIn,
    OrderIn,
    ReceiveIn,
    ShipmentIn,
)
from service.notifications import Notifications
from service.policy import PolicyBook
from service.ports import Principal
from service.refunds import RefundService
from service.worker import Worker
from tests.fakes.resolver import ScriptedResolver
from tests.support.refunds import Clock
from tests.support.tenants import order_body

MERCHANT = "m_auto_close"
STOREFRONT = Principal(key_id="k_sf", merchant_id=MERCHANT, role="storefront")
AGENT = Principal(key_id="k_agent", merchant_id=MERCHANT, role="agent")
AFTER = timedelta(days=14)
SHIP = ShipmentIn(carrier="dhl", tracking_number="T1")


class World(msgspec.Struct):
    clock: Clock
    cases: CaseService
    workers: list[Worker]


@pytest.fixture
async def world(db: PostgresDatabase, own_database_url: str) -> AsyncIterator[World]:
    clock = Clock()
    gateway = SimulatedGateway(own_database_url)
    sender = HttpWebhookSender()
    refunds = RefundService(db, gateway, clock)
    cases = CaseService(db, PolicyBook(RuleRegistry.discover()), refunds, clock)
    notifications = Notifications(db, sender, clock, resolver=ScriptedResolver({}))
    async with db.transaction() as repos:
        await repos.ensure_merchant(MERCHANT)
    workers = [Worker(refunds, notifications, cases, auto_close_after=AFTER) for _ in range(2)]
    try:
        yield World(clock, cases, workers)
    finally:
        await sender.close()
        await gateway.close()


async def _opened(world: World, order_id: str, **case: Any) -> str:
    await world.cases.put_order(STOREFRONT, order_id, msgspec.convert(order_body(), OrderIn))
    body = {"order_id": order_id, "resolution": None, **case}
    view, _ = await world.cases.open_case(STOREFRONT, msgspec.convert(body, CaseIn), None)
    return view.id


async def _received(world: World, case_id: str) -> None:
    receipt = msgspec.convert({"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}, ReceiveIn)
    await world.cases.receive(AGENT, case_id, None, receipt)


async def _shipped_exchange(world: World, order_id: str) -> str:
    items = [
        {
            "line_id": "l1",
            "quantity": 1,
            "reason": "wrong_size",
            "replacement_sku": "TSHIRT-L",
        }
    ]
    case_id = await _opened(world, order_id, type="exchange", items=items)
    await _received(world, case_id)
    view = await world.cases.ship_replacement(AGENT, case_id, None, SHIP)
    assert view.state == "replacement_shipped"
    return case_id


async def _declined_repair(world: World, order_id: str) -> str:
    """A repair whose quote the customer declined: shipped back unrepaired, no shipment recorded."""
    items = [{"line_id": "l1", "quantity": 1, "reason": "defective"}]
    case_id = await _opened(world, order_id, type="repair", issue_description="zip", items=items)
    override = {"overrides": [{"rule": "photo_evidence", "reason": "seen at the counter"}]}
    await world.cases.approve(AGENT, case_id, None, msgspec.convert(override, ApproveIn))
    await _received(world, case_id)
    await world.cases.diagnose(
        AGENT,
        case_id,
        None,
        DiagnoseIn(finding="motor", in_warranty=False, quote_amount=4500),
    )
    view = await world.cases.answer_quote(STOREFRONT, case_id, None, accept=False)
    assert view.state == "shipped_back"
    return case_id


async def _state(world: World, case_id: str) -> str:
    return (await world.cases.get_case(AGENT, case_id, Audience.AGENT)).state


async def _outbox(db: PostgresDatabase, case_id: str) -> list[tuple[str, str | None]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT topic, payload->>'to_state' AS to_state FROM outbox WHERE merchant_id = $1 AND payload->>'case_id' = $2 ORDER BY id",
            MERCHANT,
            case_id,
        )
    return [(row["topic"], row["to_state"]) for row in rows]


async def test_a_shipped_exchange_and_repair_close_after_the_wait_and_ask_for_the_survey(
    world: World, db: PostgresDatabase
) -> None:
    exchange = await _shipped_exchange(world, "o_old_exchange")
    repair = await _declined_repair(world, "o_old_repair")
    world.clock.advance(days=13)
    # a note keeps the state: the wait runs from the shipping, not from the last touch
    await world.cases.add_note(AGENT, exchange, None, NoteIn(text="customer called"))
    fresh = await _shipped_exchange(world, "o_fresh_exchange")
    assert await world.workers[0].close_idle() == 0, "13 days: nothing is due"

    world.clock.advance(days=1, seconds=1)
    closed = await asyncio.gather(*(worker.close_idle() for worker in world.workers))
    assert sum(closed) == 2, f"two workers side by side close the two due cases once: {closed}"
    assert [await _state(world, c) for c in (exchange, repair, fresh)] == [
        "closed",
        "closed",
        "replacement_shipped",
    ]
    assert await world.workers[1].close_idle() == 0, "closing again finds nothing"

    for case_id in (exchange, repair):
        events = (await world.cases.events(AGENT, case_id)).items
        closes = [e for e in events if e.type == "close"]
        assert len(closes) == 1 and closes[0].actor_role == "system" and closes[0].actor_id == "system"
        assert closes[0].data["after_days"] == 14
        outbox = await _outbox(db, case_id)
        assert outbox[-2:] == [
            ("case.updated", "closed"),
            ("case.survey_requested", "closed"),
        ], outbox
    assert ("case.survey_requested", "closed") not in await _outbox(db, fresh)

    world.clock.advance(days=13)  # the fresh one went out 13 days after the others
    assert await world.workers[0].close_idle() == 1
    assert await _state(world, fresh) == "closed"


async def test_auto_close_can_be_turned_off(world: World) -> None:
    case_id = await _shipped_exchange(world, "o_never")
    world.clock.advance(days=400)
    off = Worker(
        world.workers[0].refunds,
        world.workers[0].notifications,
        world.cases,
        auto_close_after=None,
    )
    assert await off.close_idle() == 0
    assert await _state(world, case_id) == "replacement_shipped"
