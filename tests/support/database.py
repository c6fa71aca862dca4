"""A fresh, empty PostgreSQL database for a test session: on the server named by
RETURNS_TEST_DATABASE_URL when set, else on an embedded one (pgserver)."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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


def _run_admin(url: str, statement: str) -> None:
    """``statement`` in an event loop of a thread of its own: whatever loop runs in this thread
    (a browser test's Playwright) is left alone."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, _admin(url, statement)).result()


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
        _run_admin(url, f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(url, name)
        finally:
            _run_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
