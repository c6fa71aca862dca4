"""The simulated gateway's rules, as its module docstring states them: idempotency, captured
amounts, outcomes by amount, settling over time, scripted failures, listing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.gateways.simulated import SimulatedGateway
from service.ports import GatewayError, GatewayRefund

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gateway(clock: Clock) -> SimulatedGateway:
    return SimulatedGateway(clock=clock)


async def _refund(
    gateway: SimulatedGateway, amount: int = 100, key: str = "rf_1:1", *, pi: str = "pi_1", account: str | None = None,
    currency: str = "EUR",
) -> GatewayRefund:
    return await gateway.create_refund(
        payment_reference=pi, amount=amount, currency=currency, refund_id=key.split(":")[0], idempotency_key=key,
        account=account,
    )


async def _listed(gateway: SimulatedGateway, since: datetime, until: datetime, account: str | None = None) -> list[str]:
    return [r.gateway_refund_id async for r in gateway.list_refunds(created_from=since, created_to=until, account=account)]


async def test_a_refund_succeeds_at_once_in_our_terms(gateway: SimulatedGateway) -> None:
    refund = await _refund(gateway, 1999, "rf_a:1", currency="eur")
    assert refund == GatewayRefund(
        gateway_refund_id="sim_re_000001", status="succeeded", amount=1999, currency="EUR", payment_reference="pi_1",
        created_at=T0, refund_id="rf_a", failure_reason=None,
    )
    assert await gateway.get_refund("sim_re_000001") == refund


async def test_the_same_key_answers_the_same_refund(gateway: SimulatedGateway) -> None:
    first, second = await _refund(gateway, 500), await _refund(gateway, 500)
    assert second == first and list(gateway.refunds) == [first.gateway_refund_id]


@pytest.mark.parametrize("change", [{"amount": 501}, {"pi": "pi_2"}, {"currency": "USD"}])
async def test_the_same_key_with_other_parameters_is_refused(gateway: SimulatedGateway, change: dict) -> None:
    await _refund(gateway, 500)
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, **{"amount": 500, **change})
    assert refused.value.code == "idempotency_error" and refused.value.retryable is False
    assert len(gateway.refunds) == 1


async def test_keys_are_per_account(gateway: SimulatedGateway) -> None:
    mine, theirs = await _refund(gateway, 500), await _refund(gateway, 500, account="acct_other")
    assert mine.gateway_refund_id != theirs.gateway_refund_id and len(gateway.refunds) == 2


async def test_a_registered_payment_is_never_over_refunded(gateway: SimulatedGateway) -> None:
    gateway.add_payment("pi_1", 1000)
    await _refund(gateway, 600, "rf_a:1")
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, 401, "rf_b:1")
    assert refused.value.code == "amount_too_large" and refused.value.retryable is False
    assert "400 left" in str(refused.value)
    assert (await _refund(gateway, 400, "rf_c:1")).status == "succeeded"
    assert (await _refund(gateway, 10**9, "rf_d:1", pi="pi_unregistered")).status == "succeeded"


async def test_a_failed_refund_gives_its_amount_back(gateway: SimulatedGateway) -> None:
    gateway.add_payment("pi_1", 1013)
    failed = await _refund(gateway, 1013, "rf_a:1")
    assert (failed.status, failed.failure_reason) == ("failed", "declined")
    assert (await _refund(gateway, 1000, "rf_b:1")).status == "succeeded"


async def test_payments_are_per_account(gateway: SimulatedGateway) -> None:
    gateway.add_payment("pi_1", 100, account="acct_a")
    with pytest.raises(GatewayError):
        await _refund(gateway, 101, account="acct_a")
    assert (await _refund(gateway, 101)).status == "succeeded", "the platform's pi_1 is another payment"


@pytest.mark.parametrize("amount", [0, -5])
async def test_an_amount_under_one_is_refused(gateway: SimulatedGateway, amount: int) -> None:
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, amount)
    assert refused.value.code == "parameter_invalid_integer" and gateway.refunds == {}


@pytest.mark.parametrize(
    ("amount", "status", "reason"),
    [(2513, "failed", "declined"), (113, "failed", "declined"), (2517, "requires_action", None),
     (1300, "succeeded", None), (1999, "succeeded", None)],
)
async def test_outcomes_by_amount(gateway: SimulatedGateway, amount: int, status: str, reason: str | None) -> None:
    refund = await _refund(gateway, amount)
    assert (refund.status, refund.failure_reason) == (status, reason)


async def test_refunds_stay_pending_until_they_settle(clock: Clock) -> None:
    gateway = SimulatedGateway(settle_after=30, clock=clock)
    made = [await _refund(gateway, amount, f"rf_{amount}:1") for amount in (100, 113, 117)]
    assert [r.status for r in made] == ["pending", "pending", "requires_action"]
    clock.advance(29.9)
    assert (await gateway.get_refund("sim_re_000001")).status == "pending"
    clock.advance(0.1)
    settled = [await gateway.get_refund(f"sim_re_{i:06d}") for i in (1, 2, 3)]
    assert [(r.status, r.failure_reason) for r in settled] == [
        ("succeeded", None), ("failed", "declined"), ("requires_action", None)
    ]
    assert (await _refund(gateway, 100, "rf_100:1")).status == "succeeded", "a replay shows the refund as it is now"


async def test_scripted_failures_do_nothing_then_stop(gateway: SimulatedGateway) -> None:
    gateway.fail_next(2)
    for _ in range(2):
        with pytest.raises(GatewayError) as down:
            await _refund(gateway)
        assert down.value.retryable is True and down.value.code == "api_error"
    assert gateway.refunds == {}
    assert (await _refund(gateway)).status == "succeeded"
    gateway.fail_next(retryable=False)
    with pytest.raises(GatewayError) as refused:
        await gateway.get_refund("sim_re_000001")
    assert refused.value.retryable is False and refused.value.code == "card_declined"
    gateway.fail_next(code="rate_limit")
    with pytest.raises(GatewayError) as limited:
        await _refund(gateway)
    assert limited.value.code == "rate_limit" and limited.value.retryable is True


async def test_unknown_refunds_and_other_accounts_refunds_are_missing(gateway: SimulatedGateway) -> None:
    theirs = await _refund(gateway, account="acct_a")
    for refund_id, account in (("sim_re_999999", None), (theirs.gateway_refund_id, None), (theirs.gateway_refund_id, "acct_b")):
        with pytest.raises(GatewayError) as missing:
            await gateway.get_refund(refund_id, account=account)
        assert missing.value.code == "resource_missing" and missing.value.retryable is False
    assert await gateway.get_refund(theirs.gateway_refund_id, account="acct_a") == theirs


async def test_status_changes_are_read_back(gateway: SimulatedGateway) -> None:
    refund = await _refund(gateway, 117)
    gateway.set_status(refund.gateway_refund_id, "canceled")
    assert (await gateway.get_refund(refund.gateway_refund_id)).status == "canceled"


async def test_set_status_overrides_a_pending_settlement(clock: Clock) -> None:
    gateway = SimulatedGateway(settle_after=10, clock=clock)
    refund = await _refund(gateway)
    gateway.set_status(refund.gateway_refund_id, "failed", "insufficient_funds")
    clock.advance(60)
    read = await gateway.get_refund(refund.gateway_refund_id)
    assert (read.status, read.failure_reason) == ("failed", "insufficient_funds")


async def test_listing_is_by_created_range_and_account_newest_first(gateway: SimulatedGateway, clock: Clock) -> None:
    made = []
    for i in range(4):
        made.append((await _refund(gateway, 100 + i, f"rf_{i}:1")).gateway_refund_id)
        clock.advance(60)
    await _refund(gateway, 5, "rf_other:1", account="acct_a")
    in_range = await _listed(gateway, T0 + timedelta(seconds=60), T0 + timedelta(seconds=180))
    assert in_range == [made[2], made[1]], "from is included, to is not"
    assert await _listed(gateway, T0, T0 + timedelta(days=1)) == made[::-1]
    assert len(await _listed(gateway, T0, T0 + timedelta(days=1), account="acct_a")) == 1


async def test_latency_is_awaited() -> None:
    gateway = SimulatedGateway(latency=0.2)
    started = datetime.now(UTC)
    await _refund(gateway)
    assert datetime.now(UTC) - started >= timedelta(seconds=0.2)
