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
    "day": "to_char(date_trunc('day', r.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
    "currency": "r.currency",
    "reason": "COALESCE(r.reason, 'unknown')",
    "type": "c.type",
}
# The UTC day a case was opened on (reason trends over time).
_CASE_DAY = "to_char(date_trunc('day', c.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"


def _where(merchant_id: str, filters: LedgerFilter) -> tuple[list[str], list[Any]]:
    where, args = ["merchant_id = $1"], [merchant_id]
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

    async def refunds_by_gateway_ids(
        self, merchant_id: str, gateway: str, account: str | None, ids: list[str]
    ) -> list[Refund]:
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
        By SKU, the items that came back on refunded cases and their value."""
        if group_by == "sku":
            rows = await self.conn.fetch(
                """
                SELECT item->>'sku' AS key, r.currency,
                       count(DISTINCT r.id) AS refunds,
                       sum(COALESCE((item->>'received_quantity')::int, (item->>'quantity')::int))::bigint AS items,
                       sum(COALESCE((item->>'received_quantity')::int, (item->>'quantity')::int)
                           * (item->>'unit_price')::bigint)::bigint AS item_value,
                       COALESCE(sum(r.amount) FILTER (WHERE r.status = 'succeeded'), 0)::bigint AS refunded
                  FROM refunds r
                  JOIN cases c ON c.merchant_id = r.merchant_id AND c.id = r.case_id,
                       jsonb_array_elements(c.doc->'items') AS item
                 WHERE r.merchant_id = $1 AND r.created_at >= $2 AND r.created_at < $3
                 GROUP BY 1, 2 ORDER BY 1, 2
                """,
                merchant_id,
                since,
                until,
            )
            return [dict(row) for row in rows]
        key = _GROUPS[group_by]
        rows = await self.conn.fetch(
            f"""
            SELECT {key} AS key, r.currency,
                   count(*) AS refunds,
                   count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE r.status = 'failed') AS failed,
                   COALESCE(sum(r.amount) FILTER (WHERE r.status = 'succeeded'), 0)::bigint AS refunded,
                   COALESCE(sum(r.amount) FILTER (WHERE r.status IN ('pending', 'submitted', 'requires_action')), 0)::bigint
                       AS in_flight
              FROM refunds r JOIN cases c ON c.merchant_id = r.merchant_id AND c.id = r.case_id
             WHERE r.merchant_id = $1 AND r.created_at >= $2 AND r.created_at < $3
             GROUP BY 1, 2 ORDER BY 1, 2
            """,
            merchant_id,
            since,
            until,
        )
        return [dict(row) for row in rows]

    async def reason_trends(
        self, merchant_id: str, since: datetime, until: datetime, by_day: bool = False
    ) -> dict[str, Any]:
        """Per SKU and reason, the items asked back on cases opened in the period; the share of
        merchant-responsible reasons; satisfaction from surveys on those cases. With ``by_day``, the
        same per UTC day the case was opened (``days``, ``day_surveys``; days without cases left
        out): two more scans, which roughly double the time, so only when asked."""
        rows = await self.conn.fetch(
            """
            SELECT item->>'sku' AS sku, item->>'reason' AS reason,
                   count(DISTINCT c.id) AS cases, sum((item->>'quantity')::int)::bigint AS items
              FROM cases c, jsonb_array_elements(c.doc->'items') AS item
             WHERE c.merchant_id = $1 AND c.created_at >= $2 AND c.created_at < $3
             GROUP BY 1, 2 ORDER BY 1, 4 DESC, 2
            """,
            merchant_id,
            since,
            until,
        )
        overall = await self.conn.fetchrow(
            """
            SELECT COALESCE(sum((item->>'quantity')::int), 0)::bigint AS items,
                   COALESCE(sum((item->>'quantity')::int) FILTER (WHERE item->>'reason' = ANY($4::text[])), 0)::bigint
                       AS merchant_items,
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
                   sum((item->>'quantity')::int)::bigint AS items
              FROM cases c, jsonb_array_elements(c.doc->'items') AS item
             WHERE c.merchant_id = $1 AND c.created_at >= $2 AND c.created_at < $3
             GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC, 2, 3
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

