"""The finance side: the refund ledger (paged and streamed), reconciliation reports, and the
summary and reason reports, aggregated in SQL. Mixed into ``PgRepositories``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor
from adapters.postgres.refunds import REFUND_COLUMNS, refund_from_row
from domain.cases import Reason, Responsibility, responsibility
from domain.refunds import Refund
from service.ports import LedgerFilter, Page

_GROUPS = {
    "day": "to_char(date_trunc('day', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
    "currency": "currency",
    "reason": "COALESCE(reason, 'unknown')",
    "sku": "COALESCE(sku, 'unknown')",
    "type": "type",
}
# The UTC day a case was opened on (reason trends over time).
_CASE_DAY = "to_char(date_trunc('day', c.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"

# Every refund of the period ($1 merchant, $2..$3) as one row per line of its case, holding the
# line's share of the refund: pro rata to the line's value (quantity received, else asked back, ×
# unit price; equal shares when no line has a value), floored, and the minor units left over go
# one each to the lines with the largest remainders, the earlier line first on a tie (the
# largest remainder method): integers, deterministic, and the shares add up to the refund. A
# line counts its items and value once per case (``first_of_line``), however many refunds the
# case had (a failed one and its retry). A case without lines keeps its refund whole.
_SHARES = """
WITH lines AS (
    SELECT r.id, r.case_id, r.currency, r.status, r.created_at, c.type, r.amount::numeric AS amount,
           line.n, line.item->>'sku' AS sku, COALESCE(line.item->>'reason', r.reason) AS reason,
           COALESCE((line.item->>'received_quantity')::numeric, (line.item->>'quantity')::numeric, 0) AS quantity,
           COALESCE((line.item->>'received_quantity')::numeric, (line.item->>'quantity')::numeric, 0)
               * COALESCE((line.item->>'unit_price')::numeric, 0) AS value
      FROM refunds r
      JOIN cases c ON c.merchant_id = r.merchant_id AND c.id = r.case_id
      LEFT JOIN LATERAL jsonb_array_elements(c.doc->'items') WITH ORDINALITY AS line(item, n) ON true
     WHERE r.merchant_id = $1 AND r.created_at >= $2 AND r.created_at < $3
), weighed AS (
    SELECT lines.*,
           CASE WHEN sum(value) OVER refund > 0 THEN value ELSE 1 END AS weight,
           CASE WHEN sum(value) OVER refund > 0 THEN sum(value) OVER refund ELSE count(*) OVER refund END AS whole
      FROM lines WINDOW refund AS (PARTITION BY id)
), floored AS (
    SELECT weighed.*, floor(amount * weight / whole) AS base, mod(amount * weight, whole) AS remainder
      FROM weighed
), shares AS (
    SELECT floored.*,
           base + CASE WHEN row_number() OVER (PARTITION BY id ORDER BY remainder DESC, n)
                            <= amount - sum(base) OVER (PARTITION BY id) THEN 1 ELSE 0 END AS share,
           row_number() OVER (PARTITION BY case_id, n ORDER BY created_at, id) = 1 AS first_of_line
      FROM floored
)
"""
# By day, currency or type a refund falls whole in one group: the same columns, a row per refund,
# without splitting it (the split costs some ten times as much; its shares would add up to the
# same amounts). Items are the SKU report's only.
_WHOLE = """
WITH shares AS (
    SELECT r.id, r.currency, r.status, r.created_at, c.type, r.reason, NULL AS sku, r.amount::numeric AS share,
           0 AS quantity, 0 AS value, false AS first_of_line
      FROM refunds r
      JOIN cases c ON c.merchant_id = r.merchant_id AND c.id = r.case_id
     WHERE r.merchant_id = $1 AND r.created_at >= $2 AND r.created_at < $3
)
"""


def _where(merchant_id: str, filters: LedgerFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = ["merchant_id = $1"]
    args: list[Any] = [merchant_id]
    for column, value, op in (
        ("status", filters.status, "="),
        ("currency", filters.currency, "="),
        ("created_at", filters.created_from, ">="),
        ("created_at", filters.created_to, "<"),
    ):
        if value is not None:
            args.append(value)
            where.append(f"{column} {op} ${len(args)}")
    return where, args


class PgFinance:
    conn: asyncpg.Connection

    async def ledger(self, merchant_id: str, filters: LedgerFilter, limit: int, cursor: str | None) -> Page:
        where, args = _where(merchant_id, filters)
        if cursor:
            at, refund_id = decode_cursor(cursor, tuple[datetime, str])
            args += [at, refund_id]
            where.append(f"(created_at, id) > (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        rows = await self.conn.fetch(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE {' AND '.join(where)} ORDER BY created_at, id LIMIT ${len(args)}",
            *args,
        )
        items = [refund_from_row(row) for row in rows[:limit]]
        next_cursor = encode_cursor([items[-1].created_at, items[-1].id]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    async def stream_ledger(self, merchant_id: str, filters: LedgerFilter, batch: int = 1000) -> AsyncIterator[list[Refund]]:
        """The whole ledger in order, ``batch`` rows at a time through a server-side cursor: a
        month of refunds is never held in memory. Must run inside the unit of work's transaction."""
        where, args = _where(merchant_id, filters)
        cursor = await self.conn.cursor(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE {' AND '.join(where)} ORDER BY created_at, id", *args
        )
        while rows := await cursor.fetch(batch):
            yield [refund_from_row(row) for row in rows]

    async def refunds_between(self, merchant_id: str, since: datetime, until: datetime) -> list[Refund]:
        rows = await self.conn.fetch(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3"
            " ORDER BY created_at, id",
            merchant_id,
            since,
            until,
        )
        return [refund_from_row(row) for row in rows]

    async def refunds_by_gateway_ids(self, merchant_id: str, gateway: str, account: str | None, ids: list[str]) -> list[Refund]:
        rows = await self.conn.fetch(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = $1 AND gateway = $2"
            " AND gateway_account IS NOT DISTINCT FROM $3"
            " AND (gateway_refund_id = ANY($4::text[]) OR id = ANY($4::text[]))",
            merchant_id,
            gateway,
            account,
            ids,
        )
        return [refund_from_row(row) for row in rows]

    async def add_reconciliation(
        self, merchant_id: str, reconciliation_id: str, since: datetime, until: datetime, at: datetime, report: dict[str, Any]
    ) -> None:
        await self.conn.execute(
            "INSERT INTO reconciliations (merchant_id, id, period_from, period_to, created_at, report)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            merchant_id,
            reconciliation_id,
            since,
            until,
            at,
            msgspec.json.encode(report).decode(),
        )

    async def get_reconciliation(self, merchant_id: str, reconciliation_id: str) -> dict[str, Any] | None:
        report = await self.conn.fetchval(
            "SELECT report::text FROM reconciliations WHERE merchant_id = $1 AND id = $2", merchant_id, reconciliation_id
        )
        return msgspec.json.decode(report) if report else None

    async def summary(self, merchant_id: str, since: datetime, until: datetime, group_by: str) -> list[dict[str, Any]]:
        """Refund counts and amounts per group and currency (money never adds across currencies).

        Each refund's amount is split over its case's lines (``_SHARES``), so a group by SKU or by
        reason holds each line's share and the groups add up to the refunds exactly; by day,
        currency or type a refund falls whole in one group (``_WHOLE``). Counts are of refunds touching the
        group (a two-SKU refund counts on both SKUs). Money is summed as ``numeric``: no total of
        valid amounts overflows."""
        key = _GROUPS[group_by]
        rows = await self.conn.fetch(
            f"""
            {_SHARES if group_by in ("sku", "reason") else _WHOLE}
            SELECT {key} AS key, currency,
                   count(DISTINCT id) AS refunds,
                   count(DISTINCT id) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(DISTINCT id) FILTER (WHERE status = 'failed') AS failed,
                   COALESCE(sum(share) FILTER (WHERE status = 'succeeded'), 0) AS refunded,
                   COALESCE(sum(share) FILTER (WHERE status = 'failed'), 0) AS failed_amount,
                   COALESCE(sum(share) FILTER (WHERE status IN ('pending', 'submitted', 'requires_action')), 0)
                       AS in_flight,
                   COALESCE(sum(quantity) FILTER (WHERE first_of_line), 0) AS items,
                   COALESCE(sum(value) FILTER (WHERE first_of_line), 0) AS item_value
              FROM shares
             GROUP BY 1, 2 ORDER BY 1, 2
            """,
            merchant_id,
            since,
            until,
        )
        numbers = ("refunded", "failed_amount", "in_flight", "items", "item_value")
        return [{**row, **{name: int(row[name]) for name in numbers}} for row in rows]

    async def reason_trends(self, merchant_id: str, since: datetime, until: datetime, by_day: bool = False) -> dict[str, Any]:
        """Per SKU, reason and the agent's responsibility decision (``decided``, null where none),
        the items asked back on cases opened in the period; the share of merchant-responsible items
        (by the decision where there is one, else by the reason); satisfaction from surveys on those cases. With ``by_day``, the
        same per UTC day the case was opened (``days``, ``day_surveys``; days without cases left
        out): two more scans, which roughly double the time, so only when asked."""
        rows = await self.conn.fetch(
            """
            SELECT item->>'sku' AS sku, item->>'reason' AS reason, item->>'decided_responsibility' AS decided,
                   count(DISTINCT c.id) AS cases, sum((item->>'quantity')::int)::bigint AS items
              FROM cases c, jsonb_array_elements(c.doc->'items') AS item
             WHERE c.merchant_id = $1 AND c.created_at >= $2 AND c.created_at < $3
             GROUP BY 1, 2, 3 ORDER BY 1, 5 DESC, 2, 3
            """,
            merchant_id,
            since,
            until,
        )
        overall = await self.conn.fetchrow(
            """
            SELECT COALESCE(sum((item->>'quantity')::int), 0)::bigint AS items,
                   COALESCE(sum((item->>'quantity')::int) FILTER (
                       WHERE COALESCE(item->>'decided_responsibility' = 'merchant', item->>'reason' = ANY($4::text[]))
                   ), 0)::bigint AS merchant_items,
                   (SELECT count(*) FROM cases s WHERE s.merchant_id = $1 AND s.created_at >= $2 AND s.created_at < $3
                       AND s.doc->'survey' IS NOT NULL AND s.doc->'survey' <> 'null'::jsonb) AS surveys,
                   (SELECT avg((s.doc->'survey'->>'rating')::numeric) FROM cases s
                     WHERE s.merchant_id = $1 AND s.created_at >= $2 AND s.created_at < $3
                       AND s.doc->'survey' IS NOT NULL AND s.doc->'survey' <> 'null'::jsonb) AS rating,
                   (SELECT count(*) FROM cases s WHERE s.merchant_id = $1 AND s.created_at >= $2 AND s.created_at < $3
                       AND (s.doc->'survey'->>'rating')::int >= 4) AS satisfied
              FROM cases c, jsonb_array_elements(c.doc->'items') AS item
             WHERE c.merchant_id = $1 AND c.created_at >= $2 AND c.created_at < $3
            """,
            merchant_id,
            since,
            until,
            [str(reason) for reason in Reason if responsibility(reason) == Responsibility.MERCHANT],
        )
        trends = {"rows": [dict(row) for row in rows], "overall": dict(overall)}
        if not by_day:
            return trends
        days = await self.conn.fetch(
            f"""
            SELECT {_CASE_DAY} AS day, item->>'sku' AS sku, item->>'reason' AS reason,
                   item->>'decided_responsibility' AS decided, sum((item->>'quantity')::int)::bigint AS items
              FROM cases c, jsonb_array_elements(c.doc->'items') AS item
             WHERE c.merchant_id = $1 AND c.created_at >= $2 AND c.created_at < $3
             GROUP BY 1, 2, 3, 4 ORDER BY 1, 5 DESC, 2, 3, 4
            """,
            merchant_id,
            since,
            until,
        )
        day_surveys = await self.conn.fetch(
            f"""
            SELECT {_CASE_DAY} AS day, count(*) AS surveys, avg((c.doc->'survey'->>'rating')::numeric) AS rating,
                   count(*) FILTER (WHERE (c.doc->'survey'->>'rating')::int >= 4) AS satisfied
              FROM cases c
             WHERE c.merchant_id = $1 AND c.created_at >= $2 AND c.created_at < $3
               AND c.doc->'survey' IS NOT NULL AND c.doc->'survey' <> 'null'::jsonb
             GROUP BY 1 ORDER BY 1
            """,
            merchant_id,
            since,
            until,
        )
        return {**trends, "days": [dict(row) for row in days], "day_surveys": [dict(row) for row in day_surveys]}
