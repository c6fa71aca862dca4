"""Pacing calls to the payment gateway per account: a token bucket each, so a merchant with
thousands of refunds after a sale is paid at the gateway's speed (Stripe allows about 25 refund
requests a second per account) without tripping its rate limit, and one merchant's backlog
never slows another's.

A bucket holds a quarter of a second's calls: at 20 a second, no second ever sees more than
25 calls (the burst and the rate), Stripe's limit. A 429 halves the account's rate and pauses it for the gateway's ``Retry-After`` (one second
when it names none); the rate then climbs back to the configured one over ``recovery`` seconds.
Buckets are per worker process: with N worker processes, give each 1/N of the account's limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MIN_RATE = 0.5  # requests a second an account is never slowed below
_WHOLE = 1.0 - 1e-9  # a token, give or take float rounding (else a wait could round to nothing, forever)


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: float
    paused_until: float = 0.0


class AccountPacer:
    def __init__(
        self,
        rate: float,
        *,
        recovery: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``rate`` requests a second per account, in bursts of at most a quarter second's worth."""
        self.rate = rate
        self.burst = max(1.0, rate / 4)
        self.recovery = recovery
        self.clock = clock
        self.sleep = sleep
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, account: str) -> _Bucket:
        now = self.clock()
        bucket = self._buckets.get(account)
        if bucket is None:
            bucket = self._buckets[account] = _Bucket(rate=self.rate, tokens=self.burst, updated=now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.rate = min(self.rate, bucket.rate + elapsed * self.rate / self.recovery)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * bucket.rate)
        bucket.updated = now
        return bucket

    async def acquire(self, account: str) -> None:
        """Wait for the account's next slot."""
        while True:
            bucket = self._bucket(account)
            now = self.clock()
            if bucket.paused_until > now:
                await self.sleep(bucket.paused_until - now)
            elif bucket.tokens >= _WHOLE:
                bucket.tokens = max(0.0, bucket.tokens - 1.0)
                return
            else:
                await self.sleep((1.0 - bucket.tokens) / bucket.rate)

    def slow_down(self, account: str, retry_after: float | None) -> None:
        """The gateway said 429: halve the account's rate and pause it."""
        bucket = self._bucket(account)
        bucket.rate = max(MIN_RATE, bucket.rate / 2)
        bucket.tokens = 0.0
        bucket.paused_until = max(bucket.paused_until, self.clock() + (retry_after if retry_after else 1.0))

    def current_rate(self, account: str) -> float:
        return self._bucket(account).rate
