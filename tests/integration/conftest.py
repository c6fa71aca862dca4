"""Integration fixtures: a fresh, migrated database per test, for tests that reach below HTTP
(a worker claims whatever is due, so such tests must not share a database)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.postgres.database import PostgresDatabase
from adapters.postgres.migrations import migrate
from tests.fakes.stripe_server import FakeStripe, fake_stripe
from tests.support.database import fresh_database


@pytest.fixture
def own_database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
async def db(own_database_url: str) -> AsyncIterator[PostgresDatabase]:
    database = await PostgresDatabase.connect(own_database_url, min_size=1, max_size=4)
    async with database.pool.acquire() as conn:
        await migrate(conn)
    yield database
    await database.close()


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    """A fake Stripe server of the test's own."""
    with fake_stripe() as server:
        yield server
