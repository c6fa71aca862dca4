"""The asyncpg pool and the unit of work: one transaction per use case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from adapters.postgres.migrations import pending
from adapters.postgres.repositories import PgRepositories
from domain.errors import InvalidRequest
from service.ports import DatabaseUnavailable

# What a lost or restarting server looks like from asyncpg.
CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a protocol left mid-operation by a dropped connection
)


# Input PostgreSQL refuses to hold: a NUL in text, a number out of its column's range, …
UNSTORABLE_INPUT = (asyncpg.DataError,)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Released connections skip asyncpg's session reset (a round trip per request): the service
    keeps no session state (no LISTEN, SET or cursors outside transactions; the migration lock is
    released explicitly), and an open transaction is still rolled back by asyncpg itself."""


class PostgresDatabase:
    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float = 5.0) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout

    @classmethod
    async def connect(cls, dsn: str, *, min_size: int = 2, max_size: int = 10, acquire_timeout: float = 5.0) -> PostgresDatabase:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session)
        return cls(pool, acquire_timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgRepositories]:
        """One unit of work. A database that is down, restarting or out of free connections
        is ``DatabaseUnavailable`` (503), never a hang: acquiring waits ``acquire_timeout``."""
        async with self._connection() as repos:
            yield repos

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[PgRepositories]:
        """Reads that see one moment: a read-only ``REPEATABLE READ`` transaction, so an answer
        put together from several statements (a case, then its refunds, photos and label; a
        report's totals and its rows) never mixes two commits."""
        async with self._connection(mode="snapshot") as repos:
            yield repos

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[PgRepositories]:
        """One statement alone, outside a transaction: it sees (or writes) one moment by itself,
        and the BEGIN and COMMIT round trips are saved on the hottest paths (the API key of every
        request, the limits' buckets, the gateway's pace). A second statement here would see
        another moment: use ``reading`` or ``transaction``."""
        async with self._connection(mode="statement") as repos:
            yield repos

    @asynccontextmanager
    async def _connection(self, *, mode: str = "write") -> AsyncIterator[PgRepositories]:
        """``write``: a transaction at the server's isolation; ``snapshot``: a read-only
        ``REPEATABLE READ`` one; ``statement``: none."""
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout)
        except TimeoutError as exc:
            raise DatabaseUnavailable("every database connection is busy; try again shortly") from exc
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable("the database cannot be reached") from exc
        try:
            if mode == "statement":
                yield PgRepositories(conn)
            else:
                snapshot = mode == "snapshot"
                async with conn.transaction(isolation="repeatable_read" if snapshot else None, readonly=snapshot):
                    yield PgRepositories(conn)
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable("the database connection was lost; nothing was saved") from exc
        except UNSTORABLE_INPUT as exc:  # the client's input, not our fault: nothing was stored
            raise InvalidRequest(
                "the request holds a value that cannot be stored (a NUL character, a number out of range)",
                [{"field": "body", "message": str(exc).splitlines()[0][:300]}],
            ) from exc
        finally:
            try:
                await self.pool.release(conn)
            except CONNECTION_ERRORS:
                pass  # it died after the work was settled; the pool drops it and connects anew

    async def ping(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return await conn.fetchval("SELECT 1") == 1
        except (*CONNECTION_ERRORS, asyncpg.PostgresError, TimeoutError):
            return False

    async def pending_migrations(self) -> list[str]:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return await pending(conn)
        except (*CONNECTION_ERRORS, TimeoutError) as exc:
            raise DatabaseUnavailable("the database cannot be reached") from exc

    async def close(self) -> None:
        await self.pool.close()
