"""The order lookup's limits, kept in PostgreSQL for every process, on a clock the test moves: a
bucket refills over the hour and limits again, takes at the same moment never pass the limit,
several processes count against one bucket, a limit of 0 refuses, the table holds neither
addresses nor e-mails, and buckets full again are swept, so it holds the last hour's callers."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from adapters.postgres.database import PostgresDatabase
from service.portal import PortalService, PortalSessionIn

SECRET = "limits-test-secret"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _portal(db: PostgresDatabase, clock: Clock, per_ip: int = 100, per_email: int = 100) -> PortalService:
    """An API process's portal: each instance stands for one, the database is what they share."""
    return PortalService(db, clock, (SECRET,), per_ip=per_ip, per_email=per_email)


def _body(email: str = "buyer@example.com") -> PortalSessionIn:
    return PortalSessionIn(merchant="m_1", order_id="o_1", email=email)


async def _rows(db: PostgresDatabase) -> list[bytes]:
    async with db.pool.acquire() as conn:
        return [row["key_hash"] for row in await conn.fetch("SELECT key_hash FROM portal_lookup_buckets")]


async def test_a_bucket_refills_and_limits_again(db: PostgresDatabase) -> None:
    clock = Clock()
    portal = _portal(db, clock, per_email=2)
    assert [await portal.lookup_wait("192.0.2.1", _body()) for _ in range(2)] == [None, None]
    assert await portal.lookup_wait("192.0.2.1", _body()) == 1800, "one lookup comes back every half hour"
    clock.now += timedelta(seconds=1200)
    assert await portal.lookup_wait("192.0.2.1", _body()) == 600, "a refused lookup takes nothing"
    clock.now += timedelta(seconds=600)
    assert await portal.lookup_wait("192.0.2.1", _body()) is None
    assert await portal.lookup_wait("192.0.2.1", _body()) is not None


async def test_processes_count_against_one_bucket(db: PostgresDatabase) -> None:
    clock = Clock()
    processes = [_portal(db, clock, per_email=5) for _ in range(3)]
    waits = [await processes[n % 3].lookup_wait(f"192.0.2.{n}", _body("Buyer@Example.com")) for n in range(9)]
    assert waits[:5] == [None] * 5 and all(wait is not None for wait in waits[5:]), waits


async def test_lookups_at_the_same_moment_never_pass_the_limit(db: PostgresDatabase) -> None:
    portal = _portal(db, Clock(), per_ip=5)
    waits = await asyncio.gather(*(portal.lookup_wait("192.0.2.9", _body(f"e{n}@example.com")) for n in range(20)))
    assert waits.count(None) == 5, waits


async def test_an_address_out_of_lookups_takes_nothing_from_the_email(db: PostgresDatabase) -> None:
    portal = _portal(db, Clock(), per_ip=1, per_email=1)
    assert await portal.lookup_wait("192.0.2.1", _body()) is None
    assert await portal.lookup_wait("192.0.2.1", _body("other@example.com")) is not None
    assert await portal.lookup_wait("192.0.2.2", _body("other@example.com")) is None


async def test_a_limit_of_zero_refuses_and_stores_nothing(db: PostgresDatabase) -> None:
    portal = _portal(db, Clock(), per_ip=0)
    assert await portal.lookup_wait("192.0.2.1", _body()) == 3600
    assert await _rows(db) == []


async def test_the_table_holds_no_address_or_email(db: PostgresDatabase) -> None:
    portal = _portal(db, Clock())
    assert await portal.lookup_wait("192.0.2.77", _body("private@example.com")) is None
    stored = await _rows(db)
    assert len(stored) == 2
    for value in ("192.0.2.77", "m_1\nprivate@example.com"):
        assert all(value.encode() not in key and hashlib.sha256(value.encode()).digest() != key for key in stored)


async def test_buckets_full_again_are_swept(db: PostgresDatabase) -> None:
    clock = Clock()
    start = clock.now
    portal = _portal(db, clock)
    for n in range(300):  # one lookup each from 300 addresses, for 300 e-mails
        assert await portal.lookup_wait(f"2001:db8::{n:x}", _body(f"e{n}@example.com")) is None
    clock.now = start + timedelta(minutes=30)
    assert await portal.lookup_wait("2001:db8::ffff:1", _body("late@example.com")) is None
    clock.now = start + timedelta(minutes=59, seconds=50)
    await portal.sweep_limits()
    assert len(await _rows(db)) == 602, "nothing is full again yet"
    clock.now = start + timedelta(minutes=60, seconds=10)  # the first 600 are full again: the same as none
    await portal.sweep_limits()
    assert len(await _rows(db)) == 602, "swept at most once a minute"
    clock.now = start + timedelta(minutes=61)
    await portal.sweep_limits()
    assert len(await _rows(db)) == 2, "the last hour's callers are left"


@pytest.mark.parametrize("per_hour", [1, 20])
async def test_retry_after_says_when_the_next_lookup_comes(db: PostgresDatabase, per_hour: int) -> None:
    portal = _portal(db, Clock(), per_ip=per_hour)
    waits = [await portal.lookup_wait("192.0.2.1", _body(f"e{n}@example.com")) for n in range(per_hour + 1)]
    assert waits[-1] == 3600 // per_hour


async def test_spellings_of_one_address_share_its_bucket(db: PostgresDatabase) -> None:
    """Attack: the e-mail's limit bypassed by spelling the victim's address another way that the
    lookup still matches (case, the Kelvin sign that lowers to ``k``). The bucket's key and the
    match lower the address alike, so every such spelling counts against the one bucket; a
    spelling they do not agree on (a space) matches no order and mails nothing.
    Origin: outside review of the #23 features, an attack the service withstood."""
    portal = _portal(db, Clock(), per_email=3)
    spellings = ["kate@example.com", "KATE@EXAMPLE.COM", "\u212aate@example.com", "Kate@Example.com"]
    waits = [await portal.lookup_wait(f"192.0.2.{n}", _body(email)) for n, email in enumerate(spellings)]
    assert waits[:3] == [None] * 3 and waits[3] is not None, waits


async def test_lookups_naming_an_email_with_another_order_leave_its_customer_a_lookup(db: PostgresDatabase) -> None:
    """Attack: with the default limits (20 an hour per address, 5 per merchant and e-mail), one
    client names the victim's e-mail at the victim's shop five times, with order numbers that are
    not the victim's (it needs to know neither the order nor anything but the address), and does
    so again every 12 minutes (well within its own address's limit, for four victims at once).
    Impact: the customer's own lookup, from their own address with their real order, answers 429
    for as long as the attacker keeps it up: a lockout of the portal's only way in without a mail
    link, while the attacker's lookups mail nobody (no order matched).
    Fix: take the e-mail's bucket only for a lookup that matched and would mail a link (in
    ``PortalService.lookup``, after the answer was sent, so the answer still says nothing; over
    the limit the link is just not mailed), or key it by merchant, order and e-mail; the address's
    bucket stays in ``lookup_wait``.
    Origin: outside review of the #23 features."""
    portal = _portal(db, Clock(), per_ip=20, per_email=5)
    for n in range(5):
        guess = PortalSessionIn(merchant="m_1", order_id=f"o_guess_{n}", email="victim@example.com")
        assert await portal.lookup_wait("203.0.113.66", guess) is None
    victim = PortalSessionIn(merchant="m_1", order_id="o_1", email="victim@example.com")
    assert await portal.lookup_wait("198.51.100.7", victim) is None, "the customer's own lookup goes ahead"
