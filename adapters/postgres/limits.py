"""Limits every process keeps together (migration 014), mixed into ``PgRepositories``: a bucket is
a row, brought up to date, taken and stored in one ``INSERT … ON CONFLICT DO UPDATE … RETURNING``,
so any number of processes on any number of hosts count against one limit, at one round trip a
take. Time is the caller's ``now`` (the hosts' clocks agree, as the leases already assume); a
bucket never goes back in time (``greatest``), so a host whose clock is behind gets no extra
tokens: it waits until its clock passes the bucket's."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from service.ports import GatewaySlot, Pace

# The account's bucket ``p`` brought up to $6 (now), as the subquery ``b``: ``elapsed`` seconds
# since it was last touched (none while it is paused), its rate ``r`` climbing back towards the
# configured $3 over $5 seconds, its tokens ``refilled`` at that rate up to the burst, $4.
_PACE_NOW = """(
    SELECT r, least($4::float8, p.tokens + elapsed * r) AS refilled
    FROM (SELECT elapsed, least($3::float8, p.rate + elapsed * $3::float8 / $5::float8) AS r
          FROM (SELECT greatest(0, extract(epoch FROM $6::timestamptz - p.updated_at))::float8 AS elapsed) AS e
    ) AS recovered
) AS b"""


class PgLimits:
    conn: asyncpg.Connection

    async def take_lookup_token(self, kind: str, key_hash: bytes, capacity: float, per_second: float, now: datetime) -> float:
        """A refused take stores the refill (as the in-process buckets did) and takes nothing."""
        return await self.conn.fetchval(
            """
            INSERT INTO portal_lookup_buckets AS p (kind, key_hash, tokens, updated_at, granted)
            VALUES ($1, $2, $3::float8 - 1, $5, true)
            ON CONFLICT (kind, key_hash) DO UPDATE SET (tokens, updated_at, granted) = (
                SELECT CASE WHEN refilled >= 1 THEN refilled - 1 ELSE refilled END,
                       greatest(p.updated_at, $5), refilled >= 1
                FROM (SELECT least($3::float8, p.tokens
                                   + greatest(0, extract(epoch FROM $5 - p.updated_at))::float8 * $4::float8)
                             AS refilled) AS b
            )
            RETURNING CASE WHEN granted THEN 0 ELSE (1 - tokens) / $4::float8 END
            """,
            kind,
            key_hash,
            capacity,
            per_second,
            now,
        )

    async def sweep_lookup_buckets(self, untouched_since: datetime) -> int:
        status = await self.conn.execute("DELETE FROM portal_lookup_buckets WHERE updated_at < $1", untouched_since)
        return int(status.split()[-1])

    async def take_gateway_slot(self, gateway: str, account: str, pace: Pace, now: datetime) -> GatewaySlot:
        """The slot is promised whether or not a token is there now: the bucket goes below zero,
        so each caller gets its own slot in one round trip instead of all waking to race for it."""
        row = await self.conn.fetchrow(
            f"""
            INSERT INTO gateway_pace AS p (gateway, account, rate, tokens, updated_at, generation)
            VALUES ($1, $2, $3, $4::float8 - 1, $6, 0)
            ON CONFLICT (gateway, account) DO UPDATE SET (rate, tokens, updated_at) = (
                SELECT r, refilled - 1, greatest(p.updated_at, $6) FROM {_PACE_NOW}
            )
            RETURNING extract(epoch FROM updated_at - $6)::float8 + greatest(0, -tokens) / rate AS wait, generation
            """,
            gateway,
            account,
            pace.rate,
            pace.burst,
            pace.recovery,
            now,
        )
        return GatewaySlot(wait=max(0.0, row["wait"]), generation=row["generation"])

    async def slow_gateway_account(
        self, gateway: str, account: str, pace: Pace, generation: int, now: datetime, pause_until: datetime
    ) -> float:
        """The bucket is emptied (slots already promised stay owed) and stamped at the pause's end,
        so it refills from there, at the halved rate."""
        return await self.conn.fetchval(
            f"""
            INSERT INTO gateway_pace AS p (gateway, account, rate, tokens, updated_at, generation)
            VALUES ($1, $2, greatest($7::float8, $3::float8 / 2), 0, $9, 1)
            ON CONFLICT (gateway, account) DO UPDATE SET (rate, tokens, updated_at, generation) = (
                SELECT CASE WHEN p.generation = $8 THEN greatest($7::float8, r / 2) ELSE r END,
                       least(refilled, 0), greatest(p.updated_at, $9), p.generation + (p.generation = $8)::int
                FROM {_PACE_NOW}
            )
            RETURNING rate
            """,
            gateway,
            account,
            pace.rate,
            pace.burst,
            pace.recovery,
            now,
            pace.min_rate,
            generation,
            pause_until,
        )
