"""What a return label does to a case's money, below HTTP, with the label worker's steps run by the
test so that a crash or an interleaving lands exactly where it hurts: a label voided after the
refund leaves the money as paid; a scan racing a cancel never undoes the void; the carrier never
receives a case the policy sent to an agent; a case reported shipped before its label was recorded
keeps no label and pays none; an agent's override stands through the label's price and void;
keep-the-item and customer-ships buy nothing; workers whose leases run out mid-call buy and price
each label once; an ``other`` item decided on approval pays the real rate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from adapters.postgres.labels import PgLabels
from service.bootstrap import open_services
from service.config import Settings
from service.container import Services
from service.dto import (
    ApproveIn,
    CaseIn,
    CaseView,
    OrderIn,
    ReceiveIn,
    ShipmentIn,
    ShippingSettingsIn,
)
from service.labels import choose_rate
from service.ports import Principal, TrackingEvent
from tests.support.database import fresh_database
from tests.support.tenants import order_body

MERCHANT = "m_label_money"
STOREFRONT = Principal(key_id="k_sf", merchant_id=MERCHANT, role="storefront")
AGENT = Principal(key_id="k_agent", merchant_id=MERCHANT, role="agent")
ADDRESS = {"name": "Ann Lee", "street1": "Rue de Rivoli 5", "city": "Paris", "zip": "75001", "country": "FR"}
RETURN_ADDRESS = {"name": "Shop", "street1": "Dock 1", "city": "Hamburg", "zip": "20095", "country": "DE"}
FLAT_LABEL = 500  # the default policy's label_cost in EUR


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    with fresh_database() as url:
        settings = Settings(database_url=url, run_worker=False, log_format="json", data_dir=tmp_path)
        async with open_services(settings) as opened:
            async with opened.db.transaction() as repos:
                await repos.ensure_merchant(MERCHANT)
            await opened.labels.put_settings(MERCHANT, msgspec.convert({"return_address": RETURN_ADDRESS}, ShippingSettingsIn))
            yield opened


async def open_return(services: Services, order_id: str, quantity: int = 1, **item: str) -> CaseView:
    """A return of t-shirts (1999 each) on an order of its own, for ``changed_mind`` unless told."""
    await services.cases.put_order(STOREFRONT, order_id, msgspec.convert(order_body(shipping_address=ADDRESS), OrderIn))
    body = {
        "order_id": order_id,
        "type": "return",
        "resolution": "refund",
        "items": [{"line_id": "l1", "quantity": quantity, "reason": "changed_mind", **item}],
    }
    view, _ = await services.cases.open_case(STOREFRONT, msgspec.convert(body, CaseIn), None)
    return view


async def approved_case(services: Services, order_id: str) -> str:
    """An auto-approved return of one t-shirt, the customer's reason: a label pending."""
    view = await open_return(services, order_id)
    assert view.state == "approved" and view.label is not None and view.label.status == "pending"
    return view.id


async def label_of(services: Services, case_id: str):
    async with services.db.reading() as repos:
        return await repos.get_case_label(MERCHANT, case_id)


async def bought_by_a_worker_that_died(services: Services, case_id: str) -> None:
    """What a worker killed on the way back from the carrier leaves: the shipment stored, the
    label sold by the carrier, nothing recorded on our side."""
    label = await label_of(services, case_id)
    carrier = services.labels.carrier
    request = label.request
    shipment = await carrier.create_shipment(
        from_address=request.from_address, to_address=request.to_address, parcel=request.parcel, reference=label.id
    )
    async with services.db.transaction() as repos:
        await repos.set_label_shipment(MERCHANT, label.id, shipment.shipment_id)
    rate = choose_rate(shipment.rates, request.preferences)
    assert rate is not None
    await carrier.buy(shipment.shipment_id, rate.rate_id)


AS_NEW = {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}


async def test_a_label_voided_after_the_refund_leaves_the_money_as_paid(services: Services) -> None:
    """Origin: outside review round 6 (#17), a finding (fixed since)."""
    case_id = await approved_case(services, "o_void_after_refund")
    await bought_by_a_worker_that_died(services, case_id)
    # the parcel arrives (the customer used their own box) and an agent receives it: refund opened
    received = await services.cases.receive(AGENT, case_id, None, msgspec.convert(AS_NEW, ReceiveIn))
    paid = [r.amount for r in received.refunds]
    assert paid == [1999 - FLAT_LABEL], "the flat label_cost: no label was recorded yet"

    # a worker takes the label over: the carrier says it was bought; the case no longer waits: voided
    for _ in range(3):
        await services.labels.run_once()
    label = await label_of(services, case_id)
    assert label.status == "voided"
    assert await services.labels.carrier.purchases(label.id) == 1

    # the refund goes out; count what the gateway paid
    for _ in range(3):
        await services.refunds.send_due()
    async with services.db.pool.acquire() as conn:
        gateway_paid = await conn.fetchval("SELECT coalesce(sum(amount), 0) FROM simulated_gateway_refunds")
    assert gateway_paid == 1999 - FLAT_LABEL
    case = await services.cases.get_case(AGENT, case_id, audience=_agent_audience())
    assert sum(r.amount for r in case.refunds) == 1999 - FLAT_LABEL
    assert case.money.refund_total == sum(r.amount for r in case.refunds), (
        f"case money says {case.money.refund_total}, the refund paid {sum(r.amount for r in case.refunds)}"
    )


def _agent_audience():
    from service.actions import Audience

    return Audience.AGENT


async def test_a_scan_racing_a_cancel_never_undoes_the_void(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Origin: outside review round 6 (#17), a finding (fixed since)."""
    case_id = await approved_case(services, "o_scan_vs_cancel")
    await services.labels.run_once()
    label = await label_of(services, case_id)
    assert label.status == "bought" and label.tracking_code

    # the scan's transaction has read the label when the customer's cancel commits
    read, go_on = asyncio.Event(), asyncio.Event()
    original = PgLabels.label_by_tracking

    async def paused(self: PgLabels, carrier_name: str, tracking_code: str):
        found = await original(self, carrier_name, tracking_code)
        read.set()
        await go_on.wait()
        return found

    monkeypatch.setattr(PgLabels, "label_by_tracking", paused)
    scan = TrackingEvent(
        event_id=f"{label.tracking_code}:pre_transit", tracking_code=label.tracking_code, status="pre_transit", at=label.bought_at
    )
    taking = asyncio.create_task(services.tracking.ingest([scan]))
    await read.wait()
    # the cancel may commit now (as today), or wait for the scan's transaction (a locking fix)
    cancelling = asyncio.create_task(services.cases.cancel(STOREFRONT, case_id, None))
    await asyncio.wait({cancelling}, timeout=1)
    go_on.set()
    assert await taking == 1
    assert (await cancelling).state == "cancelled"
    monkeypatch.setattr(PgLabels, "label_by_tracking", original)

    for _ in range(3):
        await services.labels.run_once()
    label = await label_of(services, case_id)
    assert label.status == "voided", f"the cancelled case's label is {label.status}: never voided, paid for nothing"


def delivered_scan(label) -> TrackingEvent:
    return TrackingEvent(
        event_id=f"{label.tracking_code}:delivered", tracking_code=label.tracking_code, status="delivered", at=label.bought_at
    )


async def test_the_carrier_never_receives_a_case_the_policy_sent_to_an_agent(services: Services) -> None:
    # the merchant wants an agent to look at every 'changed_mind' return; cheap ones the carrier may receive
    """Origin: outside review round 6 (#17), a finding (fixed since)."""
    async with services.db.transaction() as repos:
        await repos.add_policy(
            MERCHANT,
            {"rules": {"auto_approve": {"receive_on_delivery": True}, "review": {"reasons": ["changed_mind", "other"]}}},
            services.cases.clock(),
            "k_admin",
        )
    view = await open_return(services, "o_review")
    assert view.state == "pending_review"
    # the agent approves a goodwill figure well over the auto-approval limit, expecting to see the item
    approve = {"money_override": {"refund_total": 5000, "reason": "goodwill, check the parcel"}}
    await services.cases.approve(AGENT, view.id, None, msgspec.convert(approve, ApproveIn))
    await services.labels.run_once()
    label = await label_of(services, view.id)
    assert label.status == "bought"

    await services.tracking.ingest([delivered_scan(label)])
    case = await services.cases.get_case(AGENT, view.id, _agent_audience())
    assert case.delivered_at is not None
    assert case.state == "in_transit", (
        f"received by the carrier as {case.items[0].condition}, {[r.amount for r in case.refunds]} refunded unseen"
    )


async def test_a_case_reported_shipped_before_the_label_was_recorded_keeps_no_label(services: Services) -> None:
    """Origin: outside review round 6 (#17), a finding (fixed since)."""
    case_id = await approved_case(services, "o_shipped_first")
    flat = (await services.cases.get_case(AGENT, case_id, _agent_audience())).money
    await bought_by_a_worker_that_died(services, case_id)
    own = msgspec.convert({"carrier": "DHL", "tracking_number": "JD0001"}, ShipmentIn)
    shipped = await services.cases.report_return_shipment(STOREFRONT, case_id, None, own)
    assert shipped.state == "in_transit"

    for _ in range(3):
        await services.labels.run_once()
    label = await label_of(services, case_id)
    case = await services.cases.get_case(AGENT, case_id, _agent_audience())
    assert (label.status, case.money.return_shipping.customer_share) == ("voided", flat.return_shipping.customer_share), (
        f"label {label.status}, the customer charged {case.money.return_shipping.customer_share} for a label never used"
    )


async def agents_review_changed_minds(services: Services) -> None:
    async with services.db.transaction() as repos:
        await repos.add_policy(
            MERCHANT, {"rules": {"review": {"reasons": ["changed_mind", "other"]}}}, services.cases.clock(), "k_admin"
        )


async def test_an_agents_override_survives_the_labels_price(services: Services) -> None:
    """Regression: the agent's approved figure stands when the real label is priced in and when it is voided.

    Origin: outside review round 6 (#17), an attack the service withstood."""
    await agents_review_changed_minds(services)
    view = await open_return(services, "o_override", 2)
    assert view.state == "pending_review"
    approve = {"money_override": {"refund_total": 3000, "reason": "goodwill"}}
    await services.cases.approve(AGENT, view.id, None, msgspec.convert(approve, ApproveIn))
    await services.labels.run_once()
    case = await services.cases.get_case(AGENT, view.id, _agent_audience())
    assert case.label is not None and case.label.status == "bought"
    assert case.money.refund_total == 3000
    await services.cases.cancel(STOREFRONT, view.id, None)
    for _ in range(2):
        await services.labels.run_once()
    case = await services.cases.get_case(AGENT, view.id, _agent_audience())
    assert case.label.status == "voided" and case.money.refund_total == 3000
    assert await services.labels.carrier.purchases((await label_of(services, view.id)).id) == 1


async def test_keep_item_and_customer_ships_buy_no_label(services: Services) -> None:
    """Regression: an agent's keep-the-item approval, and a merchant whose customers ship, buy nothing.

    Origin: outside review round 6 (#17), an attack the service withstood."""
    await agents_review_changed_minds(services)
    view = await open_return(services, "o_keep", 2)
    kept = await services.cases.approve(AGENT, view.id, None, msgspec.convert({"keep_item": True}, ApproveIn))
    assert kept.label is None
    await services.labels.put_settings(
        MERCHANT, msgspec.convert({"label_buyer": "customer_ships", "return_address": RETURN_ADDRESS}, ShippingSettingsIn)
    )
    ships = await open_return(services, "o_ships")
    ships = await services.cases.approve(AGENT, ships.id, None, msgspec.convert({}, ApproveIn))
    assert ships.state == "approved" and ships.label is None
    assert await services.labels.run_once() == 0
    assert await services.labels.carrier.purchases() == 0


async def test_workers_whose_leases_run_out_mid_call_buy_each_label_once(services: Services) -> None:
    """Regression: three workers with a lease far shorter than the carrier's answer take each
    other's labels over again and again; each label is still paid for once, priced in once.

    Origin: outside review round 6 (#17), an attack the service withstood."""
    from datetime import timedelta

    from service.labels import LabelService

    case_ids = [await approved_case(services, f"o_lease_{index}") for index in range(6)]
    own = services.labels
    carrier = own.carrier
    carrier.latency = 0.3
    workers = [LabelService(own.db, carrier, own.blobs, own.cases, own.clock, lease=timedelta(milliseconds=50)) for _ in range(3)]

    async def work(worker: LabelService) -> None:
        for _ in range(40):
            await worker.run_once()
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(asyncio.gather(*(work(worker) for worker in workers)), timeout=60)
    finally:
        carrier.latency = 0
    for case_id in case_ids:
        label = await label_of(services, case_id)
        assert label.status == "bought", label
        assert await carrier.purchases(label.id) == 1
        case = await services.cases.get_case(AGENT, case_id, _agent_audience())
        assert case.money.return_shipping.customer_share == label.amount == 980
        ready = [e for e in (await services.cases.events(AGENT, case_id)).items if e.type == "label_ready"]
        assert len(ready) == 1


@pytest.mark.parametrize(("decided", "share", "refund"), [("customer", 980, 1999 - 980), ("merchant", 0, 1999 + 495)])
async def test_reason_other_decided_on_approval_then_the_real_label(
    services: Services, decided: str, share: int, refund: int
) -> None:
    """Regression: who pays is decided by the agent, what is paid is the real rate, and the
    refund actually opened on receipt is that figure.

    Origin: outside review round 6 (#17), an attack the service withstood."""
    order_id = f"o_other_{decided}"
    view = await open_return(services, order_id, reason="other", note="it smells")
    assert view.state == "pending_review"
    approve = {"responsibility": [{"line_id": "l1", "responsibility": decided}]}
    await services.cases.approve(AGENT, view.id, None, msgspec.convert(approve, ApproveIn))
    await services.labels.run_once()
    case = await services.cases.get_case(AGENT, view.id, _agent_audience())
    assert case.label is not None and case.label.amount == 980
    assert (case.money.return_shipping.customer_share, case.money.refund_total) == (share, refund)
    received = await services.cases.receive(AGENT, view.id, None, msgspec.convert(AS_NEW, ReceiveIn))
    assert [r.amount for r in received.refunds] == [refund]
