"""The Stripe adapter through the real SDK against the fake Stripe server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.gateways.stripe_gateway import StripeGateway
from service.ports import GatewayError
from tests.fakes.stripe_server import FakeStripe, fake_stripe


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with fake_stripe() as server:
        server.add_payment_intent("pi_1", amount=5000)
        yield server


def _gateway(fake: FakeStripe, retries: int = 2) -> StripeGateway:
    return StripeGateway("sk_test_fake", api_base=fake.url, max_network_retries=retries)


async def _refund(gateway: StripeGateway, amount: int = 100, key: str = "rf_1:1", **extra):
    return await gateway.create_refund(
        payment_reference="pi_1", amount=amount, currency="EUR", refund_id=key.split(":")[0], idempotency_key=key, **extra
    )


async def test_a_refund_carries_our_id_and_comes_back_in_our_terms(fake: FakeStripe) -> None:
    refund = await _refund(_gateway(fake), 1234, "rf_abc:1")
    assert refund.status == "succeeded" and refund.amount == 1234 and refund.currency == "EUR"
    assert refund.refund_id == "rf_abc" and refund.payment_reference == "pi_1"
    stored = fake.refunds()
    assert [(r["amount"], r["metadata"]) for r in stored] == [(1234, {"refund_id": "rf_abc"})]
    assert fake.requests[-1] == ("POST", "/v1/refunds", "rf_abc:1")


async def test_the_same_key_twice_makes_one_refund(fake: FakeStripe) -> None:
    gateway = _gateway(fake)
    first, second = await _refund(gateway), await _refund(gateway)
    assert first.gateway_refund_id == second.gateway_refund_id
    assert len(fake.refunds()) == 1


async def test_the_same_key_with_other_parameters_is_refused(fake: FakeStripe) -> None:
    gateway = _gateway(fake)
    await _refund(gateway, 100)
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, 200)
    assert refused.value.code == "idempotency_error" and not refused.value.retryable
    assert len(fake.refunds()) == 1


async def test_500s_then_success_is_one_refund(fake: FakeStripe) -> None:
    fake.fail_next(2, status=500)
    refund = await _refund(_gateway(fake, retries=3))
    assert refund.status == "succeeded"
    assert len(fake.refunds()) == 1
    assert [r[2] for r in fake.requests] == ["rf_1:1"] * 3, "every retry carries the same key"


async def test_a_connection_dropped_after_the_refund_was_made_replays_it(fake: FakeStripe) -> None:
    fake.drop_next(1, after_commit=True)
    refund = await _refund(_gateway(fake, retries=2))
    assert len(fake.refunds()) == 1 and refund.gateway_refund_id == fake.refunds()[0]["id"]


@pytest.mark.parametrize(("status", "should_retry", "retryable"), [(500, None, True), (503, None, True), (429, None, True), (409, None, True), (500, False, True)])
async def test_failures_that_a_later_try_may_fix_are_retryable(fake: FakeStripe, status: int, should_retry, retryable: bool) -> None:
    fake.fail_next(5, status=status, should_retry=should_retry)
    with pytest.raises(GatewayError) as failed:
        await _refund(_gateway(fake, retries=0))
    assert failed.value.retryable is retryable
    assert fake.refunds() == []


async def test_connection_refused_is_retryable() -> None:
    gateway = StripeGateway("sk_test_fake", api_base="http://127.0.0.1:9", max_network_retries=0)
    with pytest.raises(GatewayError) as failed:
        await gateway.create_refund(payment_reference="pi_1", amount=1, currency="EUR", refund_id="rf", idempotency_key="k")
    assert failed.value.retryable


async def test_over_refund_and_unknown_payment_are_final(fake: FakeStripe) -> None:
    gateway = _gateway(fake)
    with pytest.raises(GatewayError) as too_much:
        await _refund(gateway, 5001)
    assert too_much.value.code == "amount_too_large" and not too_much.value.retryable
    with pytest.raises(GatewayError) as unknown:
        await gateway.create_refund(payment_reference="pi_nope", amount=1, currency="EUR", refund_id="r", idempotency_key="x")
    assert unknown.value.code == "resource_missing" and not unknown.value.retryable


async def test_connected_accounts_are_kept_apart(fake: FakeStripe) -> None:
    fake.add_payment_intent("pi_1", amount=300, account="acct_shop")
    gateway = _gateway(fake)
    await _refund(gateway, 300, "rf_c:1", account="acct_shop")
    assert len(fake.refunds("acct_shop")) == 1 and fake.refunds() == []
    with pytest.raises(GatewayError):
        await _refund(gateway, 1, "rf_d:1", account="acct_shop")  # nothing left on that account's intent


async def test_status_changes_are_read_back(fake: FakeStripe) -> None:
    fake.set_next_status("pending")
    gateway = _gateway(fake)
    refund = await _refund(gateway)
    assert refund.status == "pending"
    fake.set_status(refund.gateway_refund_id, "failed", "expired_or_canceled_card")
    again = await gateway.get_refund(refund.gateway_refund_id)
    assert again.status == "failed" and again.failure_reason == "expired_or_canceled_card"


async def test_listing_pages_through_a_created_range(fake: FakeStripe) -> None:
    now = int(datetime.now(UTC).timestamp())
    fake.add_payment_intent("pi_many", amount=10**6)
    for i in range(250):
        fake.add_external_refund("pi_many", 10 + i, created=now - 1000 + i)
    fake.add_external_refund("pi_many", 1, created=now - 5000)  # outside the range
    gateway = _gateway(fake)
    listed = [
        refund async for refund in gateway.list_refunds(
            created_from=datetime.fromtimestamp(now - 1000, UTC), created_to=datetime.fromtimestamp(now, UTC)
        )
    ]
    assert len(listed) == 250 and len({r.gateway_refund_id for r in listed}) == 250
    assert sum(r.amount for r in listed) == sum(10 + i for i in range(250))
    pages = [r for r in fake.requests if r[1] == "/v1/refunds" and r[0] == "GET"]
    assert len(pages) == 3  # 100 + 100 + 50


async def test_a_slow_answer_still_arrives(fake: FakeStripe) -> None:
    fake.delay_next(0.5)
    started = datetime.now(UTC)
    await _refund(_gateway(fake))
    assert datetime.now(UTC) - started >= timedelta(seconds=0.5)
    assert len(fake.refunds()) == 1
