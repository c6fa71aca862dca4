"""The gateway's pace per account, kept in PostgreSQL for every worker, on a clock the test moves:
the configured rate per account, accounts independent of each other, pacers of several processes
sharing one rate, 429s halving the rate (once per halving, not once per call in flight) and
pausing every pacer for Retry-After, recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from adapters.postgres.database import PostgresDatabase
from service.pacing import MIN_RATE, AccountPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def clock(self) -> datetime:
        return self.now

    def seconds(self, since: datetime) -> float:
        return (self.now - since).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


def _pacer(db: PostgresDatabase, rate: float, time: FakeTime) -> AccountPacer:
    """A worker process's pacer: each instance stands for one, the database is what they share."""
    return AccountPacer(db, "stripe", rate, clock=time.clock, sleep=time.sleep)


async def _grants_within(pacers: list[AccountPacer], time: FakeTime, account: str, seconds: float) -> int:
    """Calls granted within ``seconds``, the pacers taking turns."""
    granted, start = 0, time.now
    while True:
        await pacers[granted % len(pacers)].acquire(account)
        if time.seconds(start) > seconds:
            return granted
        granted += 1


@pytest.mark.parametrize("rate", [1, 5, 20, 25])
async def test_an_account_gets_its_rate(db: PostgresDatabase, rate: float) -> None:
    time = FakeTime()
    granted = await _grants_within([_pacer(db, rate, time)], time, "acct_a", 10.0)
    assert rate * 10 <= granted <= rate * 10 + max(1, rate / 4), f"{granted} calls in 10 s at {rate}/s"


async def test_three_workers_together_keep_one_accounts_rate(db: PostgresDatabase) -> None:
    time = FakeTime()
    granted = await _grants_within([_pacer(db, 20, time) for _ in range(3)], time, "acct_a", 10.0)
    assert 200 <= granted <= 205, f"{granted} calls in 10 s by three workers at 20/s for the account"


async def test_no_second_sees_more_than_the_rate_and_a_quarter(db: PostgresDatabase) -> None:
    time = FakeTime()
    pacers = [_pacer(db, 20, time), _pacer(db, 20, time)]
    stamps = []
    for n in range(200):
        await pacers[n % 2].acquire("acct_a")
        stamps.append(time.now)
    busiest = max(sum(1 for t in stamps if start <= t < start + timedelta(seconds=1)) for start in stamps)
    assert busiest <= 25, f"{busiest} calls in one second: over Stripe's 25"


async def test_callers_waiting_at_once_are_given_one_slot_each(db: PostgresDatabase) -> None:
    """Ten calls asking in the same instant: the bucket's five go at once, then one every 1/20 s."""
    time = FakeTime()
    pacer = _pacer(db, 20, time)
    waits = []
    for _ in range(10):
        async with db.statement() as repos:
            waits.append((await repos.take_gateway_slot("stripe", "acct_a", pacer.pace, time.now)).wait)
    assert waits == pytest.approx([0.0] * 5 + [0.05, 0.10, 0.15, 0.20, 0.25])


async def test_accounts_do_not_wait_for_each_other(db: PostgresDatabase) -> None:
    time = FakeTime()
    pacer = _pacer(db, 20, time)
    await _grants_within([pacer], time, "acct_busy", 5.0)
    before = time.now
    await pacer.acquire("acct_quiet")
    assert time.now == before, "a fresh account's first call goes at once"


async def test_a_429_halves_the_rate_pauses_every_worker_and_recovers(db: PostgresDatabase) -> None:
    time = FakeTime()
    hit, other = _pacer(db, 20, time), _pacer(db, 20, time)
    pace = await hit.acquire("acct_a")
    assert await hit.slow_down("acct_a", retry_after=3.0, generation=pace) == pytest.approx(10)
    before = time.now
    await other.acquire("acct_a")
    assert time.seconds(before) >= 3.0, "the other worker is paused for Retry-After too"
    assert 9 <= await _grants_within([other], time, "acct_a", 1.0) <= 13, "then at about half the rate"
    time.now += timedelta(seconds=10)  # a quiet recovery period
    await _grants_within([other], time, "acct_a", 0.5)  # the burst refilled while quiet
    assert 20 <= await _grants_within([other, hit], time, "acct_a", 1.0) <= 21, "back at 20 a second"


async def test_429s_for_calls_already_in_flight_halve_the_rate_once(db: PostgresDatabase) -> None:
    time = FakeTime()
    pacers = [_pacer(db, 20, time) for _ in range(4)]
    in_flight = [await pacer.acquire("acct_a") for pacer in pacers]  # four workers' calls, all answered 429
    rates = [await pacer.slow_down("acct_a", None, pace) for pacer, pace in zip(pacers, in_flight, strict=True)]
    assert rates == pytest.approx([10, 10, 10, 10])
    after_the_pause = await pacers[0].acquire("acct_a")
    assert await pacers[0].slow_down("acct_a", None, after_the_pause) == pytest.approx(5, abs=0.2), "one at 10/s was"


async def test_repeated_429s_never_stop_an_account(db: PostgresDatabase) -> None:
    time = FakeTime()
    pacer = _pacer(db, 20, time)
    assert await pacer.acquire("acct_a") == 0
    for halved in range(20):  # each 429 for a call given its slot after the halving before
        rate = await pacer.slow_down("acct_a", None, generation=halved)
    assert rate == pytest.approx(MIN_RATE)
    before = time.now
    await pacer.acquire("acct_a")
    assert 1.0 <= time.seconds(before) <= 1.0 + 1 / MIN_RATE, "one second's pause, then the slow rate"


async def test_a_worker_whose_clock_is_behind_gets_no_extra_calls(db: PostgresDatabase) -> None:
    """The bucket keeps the latest time it was told: a host five seconds behind waits for its slot
    in the bucket's time, and gives the others no refill."""
    time = FakeTime()
    pace = _pacer(db, 20, time).pace
    behind = time.now - timedelta(seconds=5)

    async def wait(at: datetime) -> float:
        async with db.statement() as repos:
            return (await repos.take_gateway_slot("stripe", "acct_a", pace, at)).wait

    assert [await wait(time.now) for _ in range(5)] == [0.0] * 5, "the burst"
    assert await wait(behind) == pytest.approx(5.05), "the slow clock's slot is the next one, in the bucket's time"
    assert await wait(time.now) == pytest.approx(0.10), "and the next caller's after it: no refill"
