"""The label worker and the scans against the simulated carrier, in process with a clock of the
test's own: bought once whatever dies where (the worker killed after creating the shipment,
after buying, before recording), two workers side by side, a carrier that is down or refuses,
scans repeated and shuffled that only ever move a case forward, the carrier receiving where the
policy lets it, and an item received before its label was bought. What the carrier charged for is
counted in its own table."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.blobstore.filesystem import FilesystemBlobStore
from adapters.carriers.simulated import SimulatedCarrier
from adapters.gateways.simulated import SimulatedGateway
from adapters.postgres.database import PostgresDatabase
from policies.registry import RuleRegistry
from service.actions import Audience
from service.cases import CaseService
from service.dto import ApproveIn, CaseIn, OrderIn, ReceiveIn, ShippingSettingsIn
from service.labels import LabelService
from service.policy import PolicyBook
from service.ports import BoughtLabel, CarrierShipment, Principal, TrackingEvent
from service.refunds import RefundService
from service.tracking import Tracking
from tests.support.refunds import Clock
from tests.support.tenants import order_body

MERCHANT = "m_labels"
STOREFRONT = Principal(key_id="k_sf", merchant_id=MERCHANT, role="storefront")
AGENT = Principal(key_id="k_agent", merchant_id=MERCHANT, role="agent")
ADDRESS = {"name": "Ann Lee", "street1": "Rue de Rivoli 5", "city": "Paris", "zip": "75001", "country": "FR"}
SETTINGS = {"return_address": {"name": "Shop", "street1": "Dock 1", "city": "Hamburg", "zip": "20095", "country": "DE"}}
LEASE = 60
RATE = 980  # 1 kg FR → DE, Ground


class Crash(BaseException):
    """The worker process dies here: nothing after this line runs, nothing is caught."""


class World(msgspec.Struct):
    db: PostgresDatabase
    clock: Clock
    carrier: SimulatedCarrier
    cases: CaseService
    blobs: FilesystemBlobStore
    tracking: Tracking

    def labels(self, carrier: Any = None) -> LabelService:
        """A worker's label service (a fresh one: a restarted process)."""
        lease = timedelta(seconds=LEASE)
        return LabelService(self.db, carrier or self.carrier, self.blobs, self.cases, self.clock, lease=lease)


@pytest.fixture
async def world(db: PostgresDatabase, own_database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock()
    gateway = SimulatedGateway(own_database_url)
    carrier = SimulatedCarrier(own_database_url, in_transit_after=60, delivered_after=120, clock=clock)
    cases = CaseService(
        db, PolicyBook(RuleRegistry.discover()), RefundService(db, gateway, clock), clock, carrier_name="simulated"
    )
    blobs = FilesystemBlobStore(tmp_path)
    world = World(db, clock, carrier, cases, blobs, Tracking(db, cases, carrier, clock))
    async with db.transaction() as repos:
        await repos.ensure_merchant(MERCHANT)
    await world.labels().put_settings(MERCHANT, msgspec.convert(SETTINGS, ShippingSettingsIn))
    try:
        yield world
    finally:
        await carrier.close()
        await gateway.close()


async def _approved(world: World, order_id: str, **changes: Any) -> str:
    """An auto-approved return of one t-shirt (1999) with a label pending."""
    await world.cases.put_order(STOREFRONT, order_id, msgspec.convert(order_body(shipping_address=ADDRESS), OrderIn))
    body = {
        "order_id": order_id,
        "type": "return",
        "resolution": "refund",
        "items": [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}],
        **changes,
    }
    view, _ = await world.cases.open_case(STOREFRONT, msgspec.convert(body, CaseIn), None)
    return view.id


async def _label(world: World, case_id: str) -> Any:
    async with world.db.reading() as repos:
        return await repos.get_case_label(MERCHANT, case_id)


async def _shipments(world: World, reference: str) -> int:
    async with world.db.reading() as repos:
        return await repos.conn.fetchval("SELECT count(*) FROM simulated_carrier_shipments WHERE reference = $1", reference)


class Dying:
    """The simulated carrier, in a worker that dies at ``where``: ``created`` (the shipment made,
    its id not stored), ``before_buy`` (stored, not bought) or ``bought`` (bought, not recorded)."""

    def __init__(self, carrier: SimulatedCarrier, where: str) -> None:
        self.carrier, self.where, self.name = carrier, where, carrier.name

    async def create_shipment(self, **kwargs: Any) -> CarrierShipment:
        shipment = await self.carrier.create_shipment(**kwargs)
        if self.where == "created":
            raise Crash
        return shipment

    async def get_shipment(self, shipment_id: str) -> CarrierShipment:
        return await self.carrier.get_shipment(shipment_id)

    async def buy(self, shipment_id: str, rate_id: str) -> BoughtLabel:
        if self.where == "before_buy":
            raise Crash
        label = await self.carrier.buy(shipment_id, rate_id)
        raise Crash  # bought: the answer never reaches the database
        return label


@pytest.mark.parametrize("where", ["created", "before_buy", "bought"])
async def test_a_worker_killed_anywhere_leaves_one_purchase(world: World, where: str) -> None:
    case_id = await _approved(world, f"o_crash_{where}")
    label = await _label(world, case_id)
    with pytest.raises(Crash):
        await world.labels(Dying(world.carrier, where)).run_once()
    assert (await _label(world, case_id)).status == "pending"
    assert await world.labels().run_once() == 0, "the dead worker's lease still holds"

    world.clock.advance(seconds=LEASE + 1)
    assert await world.labels().run_once() == 1
    bought = await _label(world, case_id)
    assert bought.status == "bought" and bought.amount == RATE
    assert await world.carrier.purchases(label.id) == 1
    # the shipment's id is stored before buying: only a death before that makes a second shipment
    assert await _shipments(world, label.id) == (2 if where == "created" else 1)
    case = await world.cases.get_case(AGENT, case_id, Audience.AGENT)
    assert case.money.return_shipping.customer_share == RATE and case.money.refund_total == 1999 - RATE
    world.clock.advance(seconds=LEASE + 1)
    assert await world.labels().run_once() == 0
    assert await world.carrier.purchases(label.id) == 1


class Slow:
    """The simulated carrier, whose answer to ``create_shipment`` takes until the test says ``go``."""

    def __init__(self, carrier: SimulatedCarrier) -> None:
        self.carrier, self.name = carrier, carrier.name
        self.made, self.go = asyncio.Event(), asyncio.Event()

    async def create_shipment(self, **kwargs: Any) -> CarrierShipment:
        shipment = await self.carrier.create_shipment(**kwargs)
        self.made.set()
        await self.go.wait()
        return shipment

    def __getattr__(self, name: str) -> Any:
        return getattr(self.carrier, name)


async def test_a_worker_whose_lease_ran_out_buys_nothing_more(world: World) -> None:
    case_id = await _approved(world, "o_slow")
    slow_carrier = Slow(world.carrier)
    slow = asyncio.create_task(world.labels(slow_carrier).run_once())
    await slow_carrier.made.wait()
    world.clock.advance(seconds=LEASE + 1)
    assert await world.labels().run_once() == 1, "the label is taken over and bought"
    slow_carrier.go.set()
    await slow  # its shipment is not the label's: it buys nothing
    label = await _label(world, case_id)
    assert label.status == "bought" and await world.carrier.purchases(label.id) == 1
    assert await _shipments(world, label.id) == 2


async def test_two_workers_side_by_side_buy_each_label_once(world: World) -> None:
    case_ids = [await _approved(world, f"o_pair_{index}") for index in range(10)]
    worked = await asyncio.gather(
        world.labels().run_once(limit=5), world.labels().run_once(limit=5), world.labels().run_once(limit=5)
    )
    assert sum(worked) == 10
    labels = [await _label(world, case_id) for case_id in case_ids]
    assert {label.status for label in labels} == {"bought"}
    assert [await world.carrier.purchases(label.id) for label in labels] == [1] * 10
    assert await world.carrier.purchases() == 10


async def test_a_carrier_that_is_down_is_tried_again_one_that_refuses_fails_the_label(world: World) -> None:
    case_id = await _approved(world, "o_down")
    service = world.labels()
    world.carrier.fail_next(2, retryable=True)
    await service.run_once()
    label = await _label(world, case_id)
    assert label.status == "pending" and "service_unavailable" in (label.last_error or "")
    assert await service.run_once() == 0, "not before its backoff"
    world.clock.advance(seconds=6)
    await service.run_once()  # the second failure: waits 10 s now
    world.clock.advance(seconds=11)
    await service.run_once()
    assert (await _label(world, case_id)).status == "bought"

    refused = await _approved(world, "o_refused")
    world.carrier.fail_next(1, retryable=False)
    await service.run_once()
    failed = await _label(world, refused)
    assert failed.status == "failed" and await world.carrier.purchases(failed.id) == 0
    case = await world.cases.get_case(AGENT, refused, Audience.AGENT)
    assert case.state == "approved" and case.label is not None and case.label.status == "failed"


def _scans(label: Any, world: World) -> list[TrackingEvent]:
    """Every scan of the label's script, as if all their times had come."""
    world.clock.advance(seconds=121)
    return world.carrier.scans(label.tracking_code, label.bought_at, None)


async def _events(world: World, case_id: str) -> list[str]:
    return [event.type for event in (await world.cases.events(AGENT, case_id)).items]


async def test_scans_repeated_and_shuffled_only_move_the_case_forward(world: World) -> None:
    case_id = await _approved(world, "o_scans")
    await world.labels().run_once()
    label = await _label(world, case_id)
    scans = _scans(label, world)
    assert [s.status for s in scans] == ["pre_transit", "in_transit", "out_for_delivery", "delivered"]

    # the delivery first, on its own: shipped and delivered at once
    assert await world.tracking.ingest([scans[3]]) == 1
    case = await world.cases.get_case(AGENT, case_id, Audience.AGENT)
    assert case.state == "in_transit" and case.delivered_at == scans[3].at
    # then every scan again, shuffled and twice: nothing new, nothing back
    shuffled = scans * 2
    random.Random(7).shuffle(shuffled)
    assert await world.tracking.ingest(shuffled) == 3
    assert await world.tracking.ingest(shuffled) == 0
    events = await _events(world, case_id)
    assert events.count("ship") == 1 and events.count("delivered") == 1
    assert (await _label(world, case_id)).scan_status == "delivered"

    receipt = msgspec.convert({"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}, ReceiveIn)
    received = await world.cases.receive(AGENT, case_id, None, receipt)
    assert received.state == "refund_pending"
    await world.tracking.ingest([msgspec.structs.replace(s, event_id=s.event_id + ":late") for s in scans])
    assert (await world.cases.get_case(AGENT, case_id, audience="agent")).state == "refund_pending"  # type: ignore[arg-type]


async def test_polling_brings_the_scans_of_quiet_labels(world: World) -> None:
    case_id = await _approved(world, "o_poll")
    await world.labels().run_once()
    world.clock.advance(seconds=61)
    assert await world.tracking.poll_quiet() == 0, "asked too recently"  # poll_after is an hour by default
    world.clock.advance(hours=1)
    assert await world.tracking.poll_quiet() == 4  # every scan's time has come by now
    case = await world.cases.get_case(AGENT, case_id, Audience.AGENT)
    assert case.state == "in_transit" and case.delivered_at is not None
    world.clock.advance(hours=2)
    assert await world.tracking.poll_quiet() == 0, "a delivered label is not asked about again"


async def test_the_carrier_receives_where_the_policy_allows_it(world: World) -> None:
    async with world.db.transaction() as repos:
        await repos.add_policy(MERCHANT, {"rules": {"auto_approve": {"receive_on_delivery": True}}}, world.clock(), "k_admin")
    case_id = await _approved(world, "o_auto")
    # a t-shirt: the 9.80 label is within the default ceiling, half of its 19.99 (a mug's 15.00 is not)
    merchant_fault = await _approved(world, "o_fault", items=[{"line_id": "l1", "quantity": 1, "reason": "defective"}])
    await world.cases.approve(
        AGENT,
        merchant_fault,
        None,
        msgspec.convert({"overrides": [{"rule": "photo_evidence", "reason": "seen on a call"}]}, ApproveIn),
    )
    await world.labels().run_once()
    for each in (case_id, merchant_fault):
        label = await _label(world, each)
        await world.tracking.ingest(_scans(label, world))
    case = await world.cases.get_case(AGENT, case_id, Audience.AGENT)
    assert case.state == "refund_pending" and case.items[0].condition == "as_new"
    received = next(e for e in (await world.cases.events(AGENT, case_id)).items if e.type == "receive")
    assert (received.actor_id, received.actor_role) == ("carrier:simulated", "carrier")
    assert case.refunds[0].amount == 1999 - RATE
    # the merchant's fault: an agent looks at it
    other = await world.cases.get_case(AGENT, merchant_fault, Audience.AGENT)
    assert other.state == "in_transit" and other.delivered_at is not None


async def test_received_before_the_label_was_bought_buys_none(world: World) -> None:
    case_id = await _approved(world, "o_early")
    flat = (await world.cases.get_case(AGENT, case_id, audience="agent")).money  # type: ignore[arg-type]
    receipt = msgspec.convert({"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}, ReceiveIn)
    await world.cases.receive(AGENT, case_id, None, receipt)
    await world.labels().run_once()
    label = await _label(world, case_id)
    assert label.status == "cancelled" and await world.carrier.purchases(label.id) == 0
    case = await world.cases.get_case(AGENT, case_id, Audience.AGENT)
    assert case.money.return_shipping.customer_share == flat.return_shipping.customer_share
