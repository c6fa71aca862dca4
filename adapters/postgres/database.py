"""The asyncpg pool and the unit of work: one transaction per use case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from adapters.postgres.migrations import pending
from adapters.postgres.repositories import PgRepositories


class PostgresDatabase:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10) -> PostgresDatabase:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        return cls(pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgRepositories]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield PgRepositories(conn)

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return await conn.fetchval("SELECT 1") == 1
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False

    async def pending_migrations(self) -> list[str]:
        async with self.pool.acquire(timeout=2) as conn:
            return await pending(conn)

    async def close(self) -> None:
        await self.pool.close()
