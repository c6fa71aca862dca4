"""An outside review's attacks on the refund worker and on gateway reports, below HTTP: real
PostgreSQL (a database per test), the real stripe SDK against the fake Stripe server. Findings
are ``xfail(strict=True)`` and fail today for the reason they name; repelled attacks are plain
tests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.gateways.simulated import SimulatedGateway
from adapters.gateways.stripe_webhooks import refund_from_stripe
from adapters.postgres.database import PostgresDatabase
from domain.errors import InvalidTransition
from domain.refunds import RefundStatus
from service.ports import GatewayEvent
from service.refunds import RefundService
from tests.fakes.stripe_server import FakeStripe, stripe_gateway
from tests.support.refunds import AGENT, Clock, due_refunds, load_refund


def _event(event_id: str, event_type: str, refunds: list[dict], account: str | None = None) -> GatewayEvent:
    return GatewayEvent(id=event_id, type=event_type, refunds=[refund_from_stripe(r) for r in refunds], account=account)


def _paid(fake: FakeStripe, pi: str, account: str | None = None) -> int:
    return sum(r["amount"] for r in fake.refunds(account) if r["payment_intent"] == pi and r["status"] == "succeeded")


# ----------------------------------------------------------------------------- findings


async def test_a_refund_whose_answers_are_lost_is_never_failed_nor_paid_twice(db: PostgresDatabase, fake: FakeStripe) -> None:
    """Found by the review: after ``max_tries`` lost answers a refund went to ``failed`` though
    Stripe had made it, and the agent's retry then paid it twice. Now an unknown outcome is
    never a failure, and a refund sent again is first looked for at the gateway."""
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
    assert _paid(fake, pi) == 1000, "Stripe did pay it"

    assert await service.send_due() == 1  # the gateway answers again: the lookup finds the refund made
    found = await load_refund(db, merchant, refund_id)
    assert found.status == RefundStatus.SUCCEEDED and found.gateway_refund_id == fake.refunds()[0]["id"]
    creates = [r for r in fake.requests if r[0] == "POST"]
    assert len(creates) == 1, "never created again once it may have been made"
    with pytest.raises(InvalidTransition):
        await service.retry(merchant, refund_id, AGENT)
    assert _paid(fake, pi) == 1000 and len(fake.refunds()) == 1


async def test_a_refund_sent_again_after_the_key_expired_is_not_made_twice(db: PostgresDatabase, fake: FakeStripe) -> None:
    """Stripe forgets idempotency keys after 24 hours: the lookup, not the key, keeps a refund
    tried for longer from being made twice."""
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
    assert len(fake.refunds()) == 1 and _paid(fake, pi) == 900


async def test_a_refund_that_fails_after_succeeding_is_not_left_succeeded(db: PostgresDatabase, fake: FakeStripe) -> None:
    """Found by the review: Stripe can fail a refund after it succeeded (a closed card); the
    report was dropped as backwards and nobody was told."""
    clock = Clock()
    service = RefundService(db, stripe_gateway(fake), clock)
    merchant, pi, [refund_id] = await due_refunds(db, service, 1, amount=700)
    fake.add_payment_intent(pi, amount=700)
    assert await service.send_due() == 1
    paid = await load_refund(db, merchant, refund_id)
    assert paid.status == RefundStatus.SUCCEEDED
    failed = fake.set_status(paid.gateway_refund_id or "", "failed", "expired_or_canceled_card")
    assert await service.apply_gateway_event(_event("evt_failed_later", "refund.failed", [failed]))
    now = await load_refund(db, merchant, refund_id)
    assert now.status == RefundStatus.FAILED, "the customer never got the money; the refund must say so"
    assert now.failure_reason == "expired_or_canceled_card"
    async with db.transaction() as repos:
        case = await repos.get_case(merchant, now.case_id)
        events = await repos.case_events(merchant, now.case_id)
    assert case.sla_due_at == clock.now, "back at the top of the agents' queue"
    assert [e.type for e in events][-1] == "refund_failed"
    retried = await service.retry(merchant, refund_id, AGENT)  # the agent pays it again, once
    assert await service.send_due() == 1
    assert (await load_refund(db, merchant, retried.id)).status == RefundStatus.SUCCEEDED
    assert len(fake.refunds()) == 2 and _paid(fake, pi) == 700


async def test_a_refund_opened_for_one_gateway_is_never_sent_through_another(
    db: PostgresDatabase, own_database_url: str, fake: FakeStripe
) -> None:
    """Raised by the review: a refund's gateway is the one configured when it was opened. A
    process that ran without ``STRIPE_API_KEY`` opened simulated refunds; a Stripe worker must
    not pay them for real (nor a simulated worker "pay" Stripe refunds): they wait, pending, and
    show in ``returns_worker_lag_seconds`` for the operator, who fixes the set-up. Decided: a
    refund never changes gateway by itself."""
    clock = Clock()
    simulated = SimulatedGateway(own_database_url)
    try:
        laptop = RefundService(db, simulated, clock)
        _, pi, [_refund_id] = await due_refunds(db, laptop, 1, amount=600)  # the order says gateway "stripe"
    finally:
        await simulated.close()
    fake.add_payment_intent(pi, amount=600)
    stripe = RefundService(db, stripe_gateway(fake), clock)
    assert await stripe.send_due() == 0 and fake.requests == []
    async with db.transaction() as repos:
        counts = await repos.operational_counts()
    assert counts.worker_lag_seconds > 0 and counts.refunds.get("pending") == 1, "the operator sees it wait"


async def test_a_webhook_racing_an_agents_change_to_the_case_is_applied(db: PostgresDatabase, fake: FakeStripe) -> None:
    """Found by the review: the webhook read the case unlocked, and an agent's change committed
    meanwhile made it answer 412 to Stripe."""
    import asyncio

    clock = Clock()
    service = RefundService(db, stripe_gateway(fake), clock)
    merchant, pi, [refund_id] = await due_refunds(db, service, 1, amount=100)
    case_id = (await load_refund(db, merchant, refund_id)).case_id
    report = {"id": "re_rev_race", "object": "refund", "amount": 100, "currency": "eur", "status": "succeeded",
              "metadata": {"refund_id": refund_id}, "payment_intent": pi}
    async with db.pool.acquire() as agent:
        agent_change = agent.transaction()
        await agent_change.start()
        await agent.execute("UPDATE cases SET version = version + 1 WHERE merchant_id = $1 AND id = $2", merchant, case_id)
        applying = asyncio.create_task(service.apply_gateway_event(_event("evt_rev_race", "refund.updated", [report])))
        await asyncio.sleep(0.5)  # the webhook has read the case and waits on its row
        await agent_change.commit()
    assert await applying
    assert (await load_refund(db, merchant, refund_id)).status == RefundStatus.SUCCEEDED


# ----------------------------------------------------------------------------- repelled


async def test_a_charge_event_listing_refunds_of_another_account_moves_only_its_own(
    db: PostgresDatabase, fake: FakeStripe
) -> None:
    clock = Clock()
    service = RefundService(db, stripe_gateway(fake), clock)
    m1, pi1, [mine] = await due_refunds(db, service, 1, amount=100, account="acct_rev_one")
    m2, pi2, [theirs] = await due_refunds(db, service, 1, amount=100, account="acct_rev_two")
    listed = [
        {"id": "re_rev_1", "object": "refund", "amount": 100, "currency": "eur", "status": "succeeded",
         "metadata": {"refund_id": mine}, "payment_intent": pi1},
        {"id": "re_rev_2", "object": "refund", "amount": 100, "currency": "eur", "status": "failed",
         "metadata": {"refund_id": theirs}, "payment_intent": pi2},
    ]
    assert await service.apply_gateway_event(_event("evt_rev_charge", "charge.refunded", listed, account="acct_rev_one"))
    assert (await load_refund(db, m1, mine)).status == RefundStatus.SUCCEEDED
    other = await load_refund(db, m2, theirs)
    assert other.status == RefundStatus.PENDING and other.gateway_refund_id is None
    # the same event id again, from the other account: a duplicate, nothing moves
    assert not await service.apply_gateway_event(_event("evt_rev_charge", "charge.refunded", listed, account="acct_rev_two"))
    assert (await load_refund(db, m2, theirs)).status == RefundStatus.PENDING


async def test_a_stale_worker_can_neither_undo_nor_renew_what_another_worker_recorded(
    db: PostgresDatabase, fake: FakeStripe
) -> None:
    clock = Clock()
    lease = timedelta(seconds=5)
    stale = RefundService(db, stripe_gateway(fake), clock, lease=lease)
    live = RefundService(db, stripe_gateway(fake), clock, lease=lease)
    merchant, pi, [refund_id] = await due_refunds(db, stale, 1, amount=900)
    fake.add_payment_intent(pi, amount=900)
    [claimed] = await stale.claim(1, [])
    stale._held.clear()  # stalled: no renewals
    clock.advance(seconds=6)
    assert await live.send_due() == 1
    assert (await load_refund(db, merchant, refund_id)).status == RefundStatus.SUCCEEDED

    # the stale worker wakes up: its renewal finds nothing of its own, its send replays the key
    async with db.transaction() as repos:
        assert await repos.renew_claims(stale.worker_id, [refund_id], clock() + lease) == 0
    await stale.send(claimed)
    done = await load_refund(db, merchant, refund_id)
    assert done.status == RefundStatus.SUCCEEDED
    assert len(fake.refunds()) == 1 and _paid(fake, pi) == 900
    assert await live.send_due() == 0, "a recorded refund is never claimed again"


async def test_a_canceled_refund_retried_pays_once(db: PostgresDatabase, fake: FakeStripe) -> None:
    """requires_action → canceled at Stripe → retried: the new attempt alone pays."""
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
    assert _paid(fake, pi) == 400
