"""Exactly-once refunds under faults, through the real SDK against the fake Stripe server and a
real PostgreSQL (a database per test, so no other worker touches these refunds). A refund whose
answers are lost is never failed, and is looked for at the gateway before it is sent again (also
once Stripe has forgotten its idempotency key); a canceled refund retried pays once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from adapters.gateways.stripe_gateway import StripeGateway
from adapters.postgres.database import PostgresDatabase
from domain.errors import InvalidTransition, RefundExceedsCaptured, RefundExceedsCaseTotal
from domain.refunds import RefundStatus
from service.refunds import RefundService
from tests.fakes.stripe_server import FakeStripe, stripe_gateway
from tests.support.refunds import AGENT, Clock, due_refunds, load_refund, paid_on


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


# ----------------------------------------------------------------------------- answers lost, keys expired


async def test_a_refund_whose_answers_are_lost_is_never_failed_nor_paid_twice(db: PostgresDatabase, fake: FakeStripe) -> None:
    """Found by the review: after ``max_tries`` lost answers a refund went to ``failed`` though
    Stripe had made it, and the agent's retry then paid it twice. Now an unknown outcome is
    never a failure, and a refund sent again is first looked for at the gateway.

    Origin: outside review round 1, a finding (fixed since)."""
    clock = Clock()
    service = RefundService(db, stripe_gateway(fake), clock)  # the default max_tries (25)
    merchant, pi, [refund_id] = await due_refunds(db, service, 1, amount=1000, captured=5000)
    fake.add_payment_intent(pi, amount=5000)
    # Stripe makes the refund on the first call, but every answer is lost on the way back
    fake.drop_connection_next(service.max_tries, after_commit=True)
    for _ in range(service.max_tries):
        assert await service.send_due() == 1
        assert (await load_refund(db, merchant, refund_id)).status == RefundStatus.PENDING, "unknown is not failed"
        clock.advance(hours=1)
    assert paid_on(fake, pi) == 1000, "Stripe did pay it"

    assert await service.send_due() == 1  # the gateway answers again: the lookup finds the refund made
    found = await load_refund(db, merchant, refund_id)
    assert found.status == RefundStatus.SUCCEEDED and found.gateway_refund_id == fake.refunds()[0]["id"]
    creates = [r for r in fake.requests if r[0] == "POST"]
    assert len(creates) == 1, "never created again once it may have been made"
    with pytest.raises(InvalidTransition):
        await service.retry(merchant, refund_id, AGENT)
    assert paid_on(fake, pi) == 1000 and len(fake.refunds()) == 1


async def test_a_refund_sent_again_after_the_key_expired_is_not_made_twice(db: PostgresDatabase, fake: FakeStripe) -> None:
    """Stripe forgets idempotency keys after 24 hours: the lookup, not the key, keeps a refund
    tried for longer from being made twice.

    Origin: outside review round 1, a finding (fixed since)."""
    clock = Clock()
    service = RefundService(db, stripe_gateway(fake), clock)
    merchant, pi, [refund_id] = await due_refunds(db, service, 1, amount=900, captured=5000)
    fake.add_payment_intent(pi, amount=5000)
    fake.drop_connection_next(1, after_commit=True)
    assert await service.send_due() == 1
    fake.account().idempotency.clear()  # a day later: the key is gone at Stripe
    clock.advance(hours=25)
    assert await service.send_due() == 1
    assert (await load_refund(db, merchant, refund_id)).status == RefundStatus.SUCCEEDED
    assert len(fake.refunds()) == 1 and paid_on(fake, pi) == 900


async def test_a_canceled_refund_retried_pays_once(db: PostgresDatabase, fake: FakeStripe) -> None:
    """requires_action → canceled at Stripe → retried: the new attempt alone pays.

    Origin: outside review round 1, an attack the service withstood."""
    clock = Clock()
    service = RefundService(db, stripe_gateway(fake), clock, poll_after=timedelta(seconds=1))
    merchant, pi, [refund_id] = await due_refunds(db, service, 1, amount=400, captured=400)
    fake.add_payment_intent(pi, amount=400)
    fake.set_next_status("requires_action")
    assert await service.send_due() == 1
    waiting = await load_refund(db, merchant, refund_id)
    assert waiting.status == RefundStatus.REQUIRES_ACTION
    fake.set_status(waiting.gateway_refund_id or "", "canceled")
    clock.advance(seconds=2)
    assert await service.poll_unsettled() == 1
    assert (await load_refund(db, merchant, refund_id)).status == RefundStatus.CANCELED
    retried = await service.retry(merchant, refund_id, AGENT)
    assert await service.send_due() == 1
    assert (await load_refund(db, merchant, retried.id)).status == RefundStatus.SUCCEEDED
    assert paid_on(fake, pi) == 400
