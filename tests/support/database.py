"""A fresh, empty PostgreSQL database for a test session: on the server named by
RETURNS_TEST_DATABASE_URL when set, else on an embedded one (pgserver)."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def server_url() -> Iterator[str]:
    """A PostgreSQL server's URL (to its maintenance database)."""
    configured = os.environ.get("RETURNS_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from adapters.postgres.embedded import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="returns-pg-") as folder, embedded_postgres(Path(folder)) as url:
        yield url


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database on the test server, dropped afterwards."""
    with server_url() as url:
        name = f"returns_test_{os.getpid()}_{secrets.token_hex(4)}"
        asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
        try:
            yield _with_database(url, name)
        finally:
            asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
