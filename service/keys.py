"""API keys: random, shown once, stored as a SHA-256 hash. The keys carry 192 bits of
randomness, so a fast hash is enough (no password-stretching needed) and a lookup by hash is
one index probe per request."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from service.ids import new_id
from service.ports import Database, Principal

ROLES = ("storefront", "agent", "finance", "admin")


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_api_key(db: Database, merchant_id: str, role: str) -> tuple[str, str]:
    """Make a key for ``merchant_id`` (created if new); answer (key id, the key itself)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = f"rk_{role[:5]}_{secrets.token_urlsafe(24)}"
    key_id = new_id("key", 16)
    async with db.transaction() as repos:
        await repos.ensure_merchant(merchant_id)
        await repos.create_api_key(merchant_id, key_id, role, hash_key(key))
    return key_id, key


async def revoke_api_key(db: Database, merchant_id: str, key_id: str, at: datetime) -> bool:
    """Revoke at once: the next request with the key is refused. False if there was no such key."""
    async with db.transaction() as repos:
        return await repos.revoke_api_key(merchant_id, key_id, at)


async def authenticate(db: Database, key: str) -> Principal | None:
    async with db.statement() as repos:
        return await repos.find_api_key(hash_key(key))
