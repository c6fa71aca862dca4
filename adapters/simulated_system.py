"""What the simulated payment gateway and the simulated carrier share: each stands for an outside
system whose state lives in PostgreSQL (tables of its own), answers through a small connection
pool opened on first use in the event loop that makes the calls (``close()`` it there), may be
slow (``latency`` seconds a call, half on the way there and half on the way back, after it acted)
and may be told to fail its next calls (in this process only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg

POOL_SIZE = 4


class SimulatedSystem:
    def __init__(self, dsn: str, latency: float, unreachable: Callable[[Exception], Exception]) -> None:
        self.dsn = dsn
        self.latency = latency
        self._unreachable = unreachable  # the adapter's error for a database it cannot reach
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._failures: list[Exception] = []

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _pooled(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=POOL_SIZE)
            async with self._pool.acquire() as conn:
                yield conn
        except (OSError, asyncpg.PostgresConnectionError) as error:
            raise self._unreachable(error) from error

    async def _answer(self) -> None:
        """The way there: half the latency, then any failure scripted for this call."""
        if self.latency:
            await asyncio.sleep(self.latency / 2)
        if self._failures:
            raise self._failures.pop(0)

    async def _answer_back(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency / 2)
