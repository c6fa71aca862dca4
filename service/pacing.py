"""Pacing calls to the payment gateway per account: a token bucket each, so a merchant with
thousands of refunds after a sale is paid at the gateway's speed (Stripe allows about 25 refund
requests a second per account) without tripping its rate limit, and one merchant's backlog
never slows another's: other accounts have buckets of their own, and merchants sharing one
account (the platform's) take turns in its claims (``claim_due_refunds``).

A bucket holds a quarter of a second's calls: at 20 a second, no second ever sees more than
25 calls (the burst and the rate), Stripe's limit. A 429 halves the account's rate and pauses it
for the gateway's ``Retry-After`` (one second when it names none); after the pause the rate
climbs back to the configured one over ``recovery`` seconds. A 429 for a call that was given its
slot before the last halving (the calls in flight when the first 429 came) halves nothing again:
those calls went out at the old rate, and say nothing about the new one.

The buckets are rows in PostgreSQL (``Repositories.take_gateway_slot``), shared by every worker
process on every host, so all of them together keep the configured rate per account, however many
run. A call costs one round trip to its bucket: the bucket promises the caller its slot (going
below zero when calls are already waiting), and the caller sleeps until then, instead of every
waiter waking to race for the next token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from service.ports import Database, Pace

MIN_RATE = 0.5  # requests a second an account is never slowed below


def _now() -> datetime:
    return datetime.now(UTC)


class AccountPacer:
    def __init__(
        self,
        db: Database,
        gateway: str,
        rate: float,
        *,
        recovery: float = 10.0,
        clock: Callable[[], datetime] = _now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``rate`` requests a second per account of ``gateway``, in bursts of at most a quarter
        second's worth. ``clock`` is the wall clock every host shares (never a test's frozen one)."""
        self.db = db
        self.gateway = gateway
        self.pace = Pace(rate=rate, burst=max(1.0, rate / 4), recovery=recovery, min_rate=MIN_RATE)
        self.clock = clock
        self.sleep = sleep

    async def acquire(self, account: str) -> int:
        """Wait for the account's next slot. Answers the generation of the account's rate the
        slot was given under, for ``slow_down`` should the call be answered 429."""
        async with self.db.statement() as repos:
            slot = await repos.take_gateway_slot(self.gateway, account, self.pace, self.clock())
        if slot.wait > 0:
            await self.sleep(slot.wait)
        return slot.generation

    async def slow_down(self, account: str, retry_after: float | None, generation: int) -> float:
        """The gateway said 429 to a call given its slot under ``generation``: pause the account
        for every worker, and halve its rate. Answers the account's rate now."""
        now = self.clock()
        pause_until = now + timedelta(seconds=retry_after or 1.0)
        async with self.db.statement() as repos:
            return await repos.slow_gateway_account(self.gateway, account, self.pace, generation, now, pause_until)
