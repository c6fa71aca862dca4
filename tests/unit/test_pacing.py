"""The per-account token bucket, on a clock the test moves: the configured rate per account,
accounts independent of each other, 429s halve the rate and pause for Retry-After, recovery."""

from __future__ import annotations

import asyncio

import pytest

from service.pacing import MIN_RATE, AccountPacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def _pacer(rate: float, time: FakeTime) -> AccountPacer:
    return AccountPacer(rate, clock=time.clock, sleep=time.sleep)


async def _grants_within(pacer: AccountPacer, time: FakeTime, account: str, seconds: float) -> int:
    granted, start = 0, time.now
    while True:
        await pacer.acquire(account)
        if time.now - start > seconds:
            return granted
        granted += 1


@pytest.mark.parametrize("rate", [1, 5, 20, 25])
async def test_an_account_gets_its_rate(rate: float) -> None:
    time = FakeTime()
    granted = await _grants_within(_pacer(rate, time), time, "acct_a", 10.0)
    assert rate * 10 <= granted <= rate * 10 + max(1, rate / 4), f"{granted} calls in 10 s at {rate}/s"


async def test_no_second_sees_more_than_the_rate_and_a_quarter() -> None:
    time = FakeTime()
    pacer = _pacer(20, time)
    stamps = []
    for _ in range(200):
        await pacer.acquire("acct_a")
        stamps.append(time.now)
    busiest = max(sum(1 for t in stamps if start <= t < start + 1.0) for start in stamps)
    assert busiest <= 25, f"{busiest} calls in one second: over Stripe's 25"


async def test_accounts_do_not_wait_for_each_other() -> None:
    time = FakeTime()
    pacer = _pacer(20, time)
    await _grants_within(pacer, time, "acct_busy", 5.0)
    before = time.now
    await pacer.acquire("acct_quiet")
    assert time.now == before, "a fresh account's first call goes at once"


async def test_a_429_halves_the_rate_pauses_and_recovers() -> None:
    time = FakeTime()
    pacer = _pacer(20, time)
    await pacer.acquire("acct_a")
    pacer.slow_down("acct_a", retry_after=3.0)
    assert pacer.current_rate("acct_a") == pytest.approx(10)
    before = time.now
    await pacer.acquire("acct_a")
    assert time.now - before >= 3.0, "paused for Retry-After"
    time.now += 10.0  # a quiet recovery period
    assert pacer.current_rate("acct_a") == pytest.approx(20)


async def test_repeated_429s_never_stop_an_account() -> None:
    time = FakeTime()
    pacer = _pacer(20, time)
    for _ in range(20):
        pacer.slow_down("acct_a", retry_after=None)
    assert pacer.current_rate("acct_a") == pytest.approx(MIN_RATE)
    before = time.now
    await pacer.acquire("acct_a")
    assert 1.0 <= time.now - before <= 1.0 + 1 / MIN_RATE, "one second's pause, then the slow rate"
