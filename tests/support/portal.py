"""The public order lookup from the outside: a caller without a key from an address of its own,
and the links the lookups recorded for the customer's e-mail (outbox ``customer.portal_link``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx


def public_client(base_url: str, address: str) -> httpx.Client:
    """No key, from a loopback address of its own: a per-address lookup budget of its own."""
    return httpx.Client(base_url=base_url, timeout=30, transport=httpx.HTTPTransport(local_address=address))


def lookup_links(database_url: str, merchant_id: str) -> list[dict[str, Any]]:
    """The payloads of the merchant's ``customer.portal_link`` messages, oldest first."""

    async def read() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT payload::text FROM outbox WHERE merchant_id = $1 AND topic = 'customer.portal_link' ORDER BY id",
                merchant_id,
            )
        finally:
            await conn.close()
        return [json.loads(row[0]) for row in rows]

    return asyncio.run(read())
