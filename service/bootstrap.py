"""The composition root: the one module that picks adapters and wires them into the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar

from adapters.postgres.database import PostgresDatabase
from adapters.postgres.embedded import embedded_database_url
from adapters.postgres.migrations import migrate
from policies.registry import RuleRegistry
from service.api.app import create_app
from service.cases import CaseService
from service.config import Settings
from service.container import Services
from service.logging import configure_logging
from service.policy import PolicyBook


def database_url(settings: Settings) -> str:
    """The configured database, else the embedded one under the data folder."""
    return settings.database_url or embedded_database_url(settings.data_dir)


async def open_database(settings: Settings) -> PostgresDatabase:
    """Connect and bring the schema up to date (under an advisory lock: safe with many processes)."""
    db = await PostgresDatabase.connect(database_url(settings), max_size=settings.db_pool_max)
    async with db.pool.acquire() as conn:
        await migrate(conn)
    return db


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    db = await open_database(settings)
    try:
        policies = PolicyBook(RuleRegistry.discover())
        yield Services(settings=settings, db=db, policies=policies, cases=CaseService(db, policies))
    finally:
        await db.close()


def build_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format)
    return create_app(lambda: open_services(settings))
