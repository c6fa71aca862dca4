"""The connection pool of an adapter that stands for an outside system in PostgreSQL (the
simulated gateway, the simulated carrier): small, opened on first use in the event loop that
makes the calls (``close()`` it there); an unreachable database is that system unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import asyncpg


class OwnPool:
    def __init__(self, dsn: str, size: int, unreachable: Callable[[Exception], Exception]) -> None:
        self.dsn = dsn
        self.size = size
        self.unreachable = unreachable  # the adapter's error for a database it cannot reach
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=self.size)
            async with self._pool.acquire() as conn:
                yield conn
        except (OSError, asyncpg.PostgresConnectionError) as error:
            raise self.unreachable(error) from error

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
