"""Refunds set up below HTTP for worker tests: a clock tests move by hand, received returns
whose refunds are due, and what the fake Stripe paid on a payment intent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.postgres.database import PostgresDatabase
from domain.cases import Actor, Case, CaseAction, CaseItem, CaseType, Reason, Resolution
from domain.decision import CaseMoney, Decision, Payer, ShippingShares
from domain.orders import Customer, Order, OrderLine, Payment
from domain.refunds import Refund
from service.ids import new_id
from service.refunds import RefundService
from tests.fakes.stripe_server import FakeStripe

AGENT = Actor(id="key_test", role="agent")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def due_refunds(
    db: PostgresDatabase,
    service: RefundService,
    count: int,
    *,
    amount: int = 100,
    captured: int | None = None,
    account: str | None = None,
) -> tuple[str, str, list[str]]:
    """``count`` received returns of one order, each with a pending refund of ``amount`` (on the
    merchant's gateway ``account``). Answers the merchant, the payment intent and the refund ids."""
    merchant, pi = new_id("m"), new_id("pi")
    at = service.clock()
    order = Order(
        merchant_id=merchant,
        order_id="o1",
        currency="EUR",
        placed_at=at,
        delivered_at=at,
        customer=Customer(id="cus_1"),
        lines=[OrderLine("l1", "SKU", "Thing", count, amount)],
        shipping_total=0,
        payment=Payment("stripe", pi, captured if captured is not None else count * amount),
    )
    money = CaseMoney("EUR", amount, 0, ShippingShares(Payer.MERCHANT, 0, 0), 0, amount, 0, 0)
    decision = Decision(0, True, False, False, True, [])
    refund_ids = []
    async with db.transaction() as repos:
        await repos.ensure_merchant(merchant)
        if account:
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
                decision=decision,
                money=money,
                actor=AGENT,
                at=at,
            )
            for action in (CaseAction.AUTO_APPROVE, CaseAction.RECEIVE):
                case.apply(action, AGENT, at)
            refund = await service.open_refund(repos, case, order, amount, at)
            case.apply(CaseAction.START_REFUND, AGENT, at, {"refund_id": refund.id})
            await repos.add_case(case)
            refund_ids.append(refund.id)
    return merchant, pi, refund_ids


async def load_refund(db: PostgresDatabase, merchant: str, refund_id: str) -> Refund:
    async with db.transaction() as repos:
        refund = await repos.get_refund(merchant, refund_id)
    assert refund is not None
    return refund


def paid_on(fake: FakeStripe, pi: str, account: str | None = None) -> int:
    """What the fake Stripe paid back on the payment intent ``pi`` (of ``account``): its succeeded refunds."""
    return sum(r["amount"] for r in fake.refunds(account) if r["payment_intent"] == pi and r["status"] == "succeeded")
