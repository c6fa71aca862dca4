"""The simulated gateway's rules, as its module docstring states them: idempotency, captured
amounts, outcomes by amount, settling over time, scripted failures, listing; and that several
instances on one database (several processes, or one after a restart) are one gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from adapters.gateways.simulated import SimulatedGateway
from adapters.postgres.database import PostgresDatabase
from adapters.postgres.migrations import migrate, migration_files
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
async def make_gateway(
    db: PostgresDatabase, own_database_url: str, clock: Clock
) -> AsyncIterator[Callable[..., SimulatedGateway]]:
    """Instances on the test's migrated database, as many processes would have; closed after."""
    made: list[SimulatedGateway] = []

    def make(**options: float) -> SimulatedGateway:
        made.append(SimulatedGateway(own_database_url, clock=clock, **options))
        return made[-1]

    yield make
    for gateway in made:
        await gateway.close()


@pytest.fixture
def gateway(make_gateway: Callable[..., SimulatedGateway]) -> SimulatedGateway:
    return make_gateway()


async def _refund(
    gateway: SimulatedGateway,
    amount: int = 100,
    key: str = "rf_1:1",
    *,
    pi: str = "pi_1",
    account: str | None = None,
    currency: str = "EUR",
) -> GatewayRefund:
    return await gateway.create_refund(
        payment_reference=pi,
        amount=amount,
        currency=currency,
        refund_id=key.split(":", maxsplit=1)[0],
        idempotency_key=key,
        account=account,
    )


async def _listed(gateway: SimulatedGateway, since: datetime, until: datetime, account: str | None = None) -> list[str]:
    return [r.gateway_refund_id async for r in gateway.list_refunds(created_from=since, created_to=until, account=account)]


async def test_a_refund_succeeds_at_once_in_our_terms(gateway: SimulatedGateway) -> None:
    refund = await _refund(gateway, 1999, "rf_a:1", currency="eur")
    assert refund == GatewayRefund(
        gateway_refund_id="sim_re_000001",
        status="succeeded",
        amount=1999,
        currency="EUR",
        payment_reference="pi_1",
        created_at=T0,
        refund_id="rf_a",
        failure_reason=None,
    )
    assert await gateway.get_refund("sim_re_000001") == refund


async def test_the_same_key_answers_the_same_refund(gateway: SimulatedGateway) -> None:
    first, second = await _refund(gateway, 500), await _refund(gateway, 500)
    assert second == first and await gateway.refunds() == [first]


@pytest.mark.parametrize("change", [{"amount": 501}, {"pi": "pi_2"}, {"currency": "USD"}])
async def test_the_same_key_with_other_parameters_is_refused(gateway: SimulatedGateway, change: dict) -> None:
    await _refund(gateway, 500)
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, **{"amount": 500, **change})
    assert refused.value.code == "idempotency_error" and refused.value.retryable is False
    assert len(await gateway.refunds()) == 1


async def test_keys_are_per_account(gateway: SimulatedGateway) -> None:
    mine, theirs = await _refund(gateway, 500), await _refund(gateway, 500, account="acct_other")
    assert mine.gateway_refund_id != theirs.gateway_refund_id
    assert (await gateway.refunds(), await gateway.refunds("acct_other")) == ([mine], [theirs])


async def test_a_registered_payment_is_never_over_refunded(gateway: SimulatedGateway) -> None:
    await gateway.add_payment("pi_1", 1000)
    await _refund(gateway, 600, "rf_a:1")
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, 401, "rf_b:1")
    assert refused.value.code == "amount_too_large" and refused.value.retryable is False
    assert "400 left" in str(refused.value)
    assert (await _refund(gateway, 400, "rf_c:1")).status == "succeeded"
    assert (await _refund(gateway, 10**9, "rf_d:1", pi="pi_unregistered")).status == "succeeded"


async def test_a_failed_refund_gives_its_amount_back(gateway: SimulatedGateway) -> None:
    await gateway.add_payment("pi_1", 1013)
    failed = await _refund(gateway, 1013, "rf_a:1")
    assert (failed.status, failed.failure_reason) == ("failed", "declined")
    assert (await _refund(gateway, 1000, "rf_b:1")).status == "succeeded"


async def test_payments_are_per_account(gateway: SimulatedGateway) -> None:
    await gateway.add_payment("pi_1", 100, account="acct_a")
    with pytest.raises(GatewayError):
        await _refund(gateway, 101, account="acct_a")
    assert (await _refund(gateway, 101)).status == "succeeded", "the platform's pi_1 is another payment"


@pytest.mark.parametrize("amount", [0, -5])
async def test_an_amount_under_one_is_refused(gateway: SimulatedGateway, amount: int) -> None:
    with pytest.raises(GatewayError) as refused:
        await _refund(gateway, amount)
    assert refused.value.code == "parameter_invalid_integer" and await gateway.refunds() == []


@pytest.mark.parametrize(
    ("amount", "status", "reason"),
    [
        (2513, "failed", "declined"),
        (113, "failed", "declined"),
        (2517, "requires_action", None),
        (1300, "succeeded", None),
        (1999, "succeeded", None),
    ],
)
async def test_outcomes_by_amount(gateway: SimulatedGateway, amount: int, status: str, reason: str | None) -> None:
    refund = await _refund(gateway, amount)
    assert (refund.status, refund.failure_reason) == (status, reason)


async def test_refunds_stay_pending_until_they_settle(make_gateway: Callable[..., SimulatedGateway], clock: Clock) -> None:
    gateway = make_gateway(settle_after=30)
    made = [await _refund(gateway, amount, f"rf_{amount}:1") for amount in (100, 113, 117)]
    assert [r.status for r in made] == ["pending", "pending", "requires_action"]
    clock.advance(29.9)
    assert (await gateway.get_refund(made[0].gateway_refund_id)).status == "pending"
    clock.advance(0.1)
    settled = [await gateway.get_refund(r.gateway_refund_id) for r in made]
    assert [(r.status, r.failure_reason) for r in settled] == [
        ("succeeded", None),
        ("failed", "declined"),
        ("requires_action", None),
    ]
    assert await gateway.refunds() == settled, "settling is stored"
    assert (await _refund(gateway, 100, "rf_100:1")).status == "succeeded", "a replay shows the refund as it is now"


async def test_scripted_failures_do_nothing_then_stop(gateway: SimulatedGateway) -> None:
    gateway.fail_next(2)
    for _ in range(2):
        with pytest.raises(GatewayError) as down:
            await _refund(gateway)
        assert down.value.retryable is True and down.value.code == "api_error"
    assert await gateway.refunds() == []
    made = await _refund(gateway)
    assert made.status == "succeeded"
    gateway.fail_next(retryable=False)
    with pytest.raises(GatewayError) as refused:
        await gateway.get_refund(made.gateway_refund_id)
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
    await gateway.set_status(refund.gateway_refund_id, "canceled")
    assert (await gateway.get_refund(refund.gateway_refund_id)).status == "canceled"


async def test_set_status_overrides_a_pending_settlement(make_gateway: Callable[..., SimulatedGateway], clock: Clock) -> None:
    gateway = make_gateway(settle_after=10)
    refund = await _refund(gateway)
    await gateway.set_status(refund.gateway_refund_id, "failed", "insufficient_funds")
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


async def test_a_charges_refunds_are_its_payments_on_its_account(gateway: SimulatedGateway, clock: Clock) -> None:
    first = await _refund(gateway, 100, "rf_a:1")
    clock.advance(60)
    second = await _refund(gateway, 200, "rf_b:1")
    await _refund(gateway, 300, "rf_c:1", pi="pi_2")
    await _refund(gateway, 400, "rf_d:1", account="acct_a")
    listed = [r async for r in gateway.charge_refunds("pi_1")]
    assert listed == [second, first], "the payment's own, newest first"
    assert [r.amount async for r in gateway.charge_refunds("pi_1", account="acct_a")] == [400]
    assert [r async for r in gateway.charge_refunds("pi_unknown")] == []


async def test_latency_is_awaited(make_gateway: Callable[..., SimulatedGateway]) -> None:
    gateway = make_gateway(latency=0.2)
    started = datetime.now(UTC)
    await _refund(gateway)
    assert datetime.now(UTC) - started >= timedelta(seconds=0.2)


# --------------------------------------------------------------------------- many processes, one gateway


async def test_ids_are_unique_across_processes_and_restarts(make_gateway: Callable[..., SimulatedGateway]) -> None:
    first, second = make_gateway(), make_gateway()
    made = [await _refund(g, 100, f"rf_{i}:1") for i, g in enumerate((first, second, first, second))]
    await first.close()
    made.append(await _refund(make_gateway(), 100, "rf_restarted:1"))
    ids = [r.gateway_refund_id for r in made]
    assert len(set(ids)) == 5 and all(i.startswith("sim_re_") for i in ids)


@pytest.mark.parametrize("registered", [False, True])
async def test_one_key_raced_by_two_processes_makes_one_refund(
    make_gateway: Callable[..., SimulatedGateway], registered: bool
) -> None:
    first, second = make_gateway(), make_gateway()
    if registered:
        await first.add_payment("pi_1", 500)  # exactly one refund's worth: a replay must not be refused
    answers = await asyncio.gather(*(_refund(g, 500, "rf_race:1") for g in (first, second) * 10))
    assert len({r.gateway_refund_id for r in answers}) == 1
    assert await second.refunds() == [answers[0]]


async def test_racing_refunds_never_exceed_the_capture(make_gateway: Callable[..., SimulatedGateway]) -> None:
    first, second = make_gateway(), make_gateway()
    await second.add_payment("pi_1", 1000)
    answers = await asyncio.gather(
        *(_refund(g, 150, f"rf_{i}:1") for i, g in enumerate((first, second) * 10)), return_exceptions=True
    )
    made = [a for a in answers if isinstance(a, GatewayRefund)]
    refused = [a for a in answers if not isinstance(a, GatewayRefund)]
    assert len(made) == 6 and all(isinstance(e, GatewayError) and e.code == "amount_too_large" for e in refused)
    assert sum(r.amount for r in await first.refunds(payment_reference="pi_1")) == 900


async def test_a_refund_made_by_one_process_is_seen_by_another(make_gateway: Callable[..., SimulatedGateway]) -> None:
    first, second = make_gateway(), make_gateway()
    made = await _refund(first, 700, "rf_a:1", account="acct_a")
    assert await second.get_refund(made.gateway_refund_id, account="acct_a") == made
    assert await _listed(second, T0, T0 + timedelta(days=1), account="acct_a") == [made.gateway_refund_id]


async def test_ids_start_past_those_the_in_memory_gateway_handed_out(own_database_url: str) -> None:
    conn = await asyncpg.connect(own_database_url)
    try:
        await migrate(conn)  # then back to before 006, as a database upgraded from the in-memory gateway's days
        await conn.execute(
            "DROP TABLE simulated_gateway_payments, simulated_gateway_refunds; DROP SEQUENCE simulated_gateway_refund_ids;"
            " DELETE FROM schema_migrations WHERE version = 6; INSERT INTO merchants (id) VALUES ('m_old');"
            " INSERT INTO refunds (merchant_id, id, case_id, order_id, customer_id, attempt, amount, currency, status,"
            " gateway, payment_reference, gateway_refund_id, version, created_at, updated_at, next_attempt_at)"
            " VALUES ('m_old', 'rf_old', 'case_old', 'o_old', 'cus_old', 1, 100, 'EUR', 'succeeded', 'simulated',"
            " 'pi_old', 'sim_re_000041', 1, now(), now(), now())"
        )
        assert await migrate(conn) == [name for number, name, _ in migration_files() if number == 6]
    finally:
        await conn.close()
    gateway = SimulatedGateway(own_database_url)
    try:
        assert (await _refund(gateway)).gateway_refund_id == "sim_re_000042"
    finally:
        await gateway.close()
