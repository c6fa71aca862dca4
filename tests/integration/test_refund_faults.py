"""Exactly-once refunds under faults, through the real SDK against the fake Stripe server and a
real PostgreSQL (a database per test, so no other worker touches these refunds)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from adapters.gateways.stripe_gateway import StripeGateway
from adapters.postgres.database import PostgresDatabase
from domain.errors import RefundExceedsCaptured, RefundExceedsCaseTotal
from service.refunds import RefundService
from tests.fakes.stripe_server import FakeStripe, stripe_gateway
from tests.support.refunds import Clock, due_refunds, load_refund


class WorkerKilled(BaseException):
    """The process died: nothing after the gateway call ran."""


class DiesAfterTheCall:
    """The gateway answered, then the worker was killed before it could record the answer."""

    def __init__(self, inner: StripeGateway) -> None:
        self.inner = inner
        self.name = inner.name

    async def create_refund(self, **request):
        await self.inner.create_refund(**request)
        raise WorkerKilled


async def test_worker_killed_between_the_gateway_call_and_the_commit(db: PostgresDatabase, fake: FakeStripe) -> None:
    clock = Clock()
    gateway = stripe_gateway(fake)
    dying = RefundService(db, DiesAfterTheCall(gateway), clock, lease=timedelta(seconds=30))
    merchant, pi, [refund_id] = await due_refunds(db, dying, 1, amount=2500)
    fake.add_payment_intent(pi, amount=2500)

    with pytest.raises(WorkerKilled):
        await dying.send_due()
    assert len(fake.refunds()) == 1
    assert (await load_refund(db, merchant, refund_id)).status == "pending"

    survivor = RefundService(db, gateway, clock, lease=timedelta(seconds=30))
    assert await survivor.send_due() == 0, "the dead worker's lease still holds"
    clock.advance(seconds=31)
    assert await survivor.send_due() == 1
    refund = await load_refund(db, merchant, refund_id)
    at_gateway = fake.refunds()
    assert len(at_gateway) == 1, "the retry with the same key got the same refund"
    assert refund.status == "succeeded" and refund.gateway_refund_id == at_gateway[0]["id"]
    async with db.transaction() as repos:
        case = await repos.get_case(merchant, refund.case_id)
    assert case.state == "closed"


async def test_gateway_500s_then_success(db: PostgresDatabase, fake: FakeStripe) -> None:
    clock = Clock()
    service = RefundService(db, stripe_gateway(fake), clock, first_backoff=timedelta(seconds=2))
    merchant, pi, [refund_id] = await due_refunds(db, service, 1, amount=700)
    fake.add_payment_intent(pi, amount=700)
    fake.fail_next(3, status=500)
    for _ in range(3):
        assert await service.send_due() == 1
        assert (await load_refund(db, merchant, refund_id)).status == "pending"
        assert await service.send_due() == 0, "backing off"
        clock.advance(seconds=60)
    assert await service.send_due() == 1
    assert (await load_refund(db, merchant, refund_id)).status == "succeeded"
    assert len(fake.refunds()) == 1
    assert {key for method, _, key in fake.requests if method == "POST"} == {f"{refund_id}:1"}
    assert [method for method, _, _ in fake.requests].count("GET") == 3, "each try after the first looked first"


async def test_a_refusal_fails_the_refund_with_the_gateways_reason(db: PostgresDatabase, fake: FakeStripe) -> None:
    service = RefundService(db, stripe_gateway(fake), Clock())
    merchant, pi, [refund_id] = await due_refunds(db, service, 1, amount=900)
    fake.add_payment_intent(pi, amount=500)  # the payment was partly refunded elsewhere
    assert await service.send_due() == 1
    refund = await load_refund(db, merchant, refund_id)
    assert refund.status == "failed" and refund.failure_reason.startswith("amount_too_large")
    assert fake.refunds() == []


async def test_four_workers_on_five_hundreddue_refunds(own_database_url: str, db: PostgresDatabase, fake: FakeStripe) -> None:
    setup = RefundService(db, stripe_gateway(fake), Clock())
    merchant, pi, refund_ids = await due_refunds(db, setup, 500, amount=10)
    fake.add_payment_intent(pi, amount=5000)
    fake.fail_next(20, status=503)  # some turbulence on the way
    pools = [await PostgresDatabase.connect(own_database_url, min_size=1, max_size=2) for _ in range(4)]
    clock = Clock()
    workers = [RefundService(pool, stripe_gateway(fake, retries=1), clock, first_backoff=timedelta(0)) for pool in pools]

    async def drain(worker: RefundService) -> int:
        sent = 0
        while claimed := await worker.send_due(limit=10):
            sent += claimed
        return sent

    try:
        claims = await asyncio.gather(*(drain(worker) for worker in workers))
        while await drain(workers[0]):  # what the backoff put off
            pass
    finally:
        for pool in pools:
            await pool.close()
    assert all(count > 0 for count in claims), f"every worker took a share: {claims}"
    at_gateway = fake.refunds()
    assert len(at_gateway) == 500
    assert sorted(r["metadata"]["refund_id"] for r in at_gateway) == sorted(refund_ids), "none twice, none missing"
    async with db.transaction() as repos:
        ours = [await repos.get_refund(merchant, refund_id) for refund_id in refund_ids]
    assert {r.status for r in ours} == {"succeeded"}
    assert len({r.gateway_refund_id for r in ours}) == 500


@pytest.mark.parametrize(
    ("captured", "asked", "refused_as", "remaining"),
    [(1000, 201, RefundExceedsCaptured, 200), (5000, 1, RefundExceedsCaseTotal, 0)],
    ids=["over-the-capture", "over-what-the-case-owes"],
)
async def test_a_refund_over_what_is_left_is_refused_before_the_gateway(
    db: PostgresDatabase, fake: FakeStripe, captured: int, asked: int, refused_as: type[Exception], remaining: int
) -> None:
    """A case of 8.00 with its refund of 8.00 open: another refund is refused by the order's
    capture when little is left of it, and by the case's own total when much is."""
    service = RefundService(db, stripe_gateway(fake), Clock())
    merchant, _, [refund_id] = await due_refunds(db, service, 1, amount=800, captured=captured)
    async with db.transaction() as repos:
        order = await repos.get_order(merchant, "o1", for_update=True)
        case = await repos.get_case(merchant, (await repos.get_refund(merchant, refund_id)).case_id)
        with pytest.raises(refused_as) as refused:
            await service.open_refund(repos, case, order, asked, datetime.now(UTC))
    assert refused.value.extra == {"amount": asked, "remaining": remaining}
    assert fake.requests == []
