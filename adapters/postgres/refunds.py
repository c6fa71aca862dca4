"""Refund rows: created with the case transition that makes money due, claimed by workers with
``FOR UPDATE SKIP LOCKED`` under a lease, updated with optimistic concurrency."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from domain.refunds import COMMITTED_STATUSES, Refund, RefundStatus
from service.ports import ClaimedRefund, VersionConflict

REFUND_COLUMNS = (
    "merchant_id, id, case_id, order_id, customer_id, reason, attempt, amount, currency, status, gateway,"
    " gateway_account, payment_reference, gateway_refund_id, failure_reason, version, created_at, updated_at,"
    " settled_at"
)
_FIELDS = [name.strip() for name in REFUND_COLUMNS.split(",")]


def refund_from_row(row: asyncpg.Record) -> Refund:
    values = {name: row[name] for name in _FIELDS}
    values["status"] = RefundStatus(values["status"])
    return Refund(**values)


class PgRefunds:
    """Mixed into ``PgRepositories``; ``self.conn`` is the unit of work's connection."""

    conn: asyncpg.Connection

    async def add_refund(self, refund: Refund) -> None:
        await self.conn.execute(
            f"INSERT INTO refunds ({REFUND_COLUMNS}, next_attempt_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $17)",
            *[_db(getattr(refund, name)) for name in _FIELDS],
        )

    async def save_refund(self, refund: Refund, expected_version: int) -> None:
        status = await self.conn.execute(
            """
            UPDATE refunds SET status = $3, gateway_refund_id = $4, failure_reason = $5, version = $6,
                   updated_at = $7, settled_at = $8, claimed_until = NULL
             WHERE merchant_id = $1 AND id = $2 AND version = $9
            """,
            refund.merchant_id,
            refund.id,
            str(refund.status),
            refund.gateway_refund_id,
            refund.failure_reason,
            refund.version,
            refund.updated_at,
            refund.settled_at,
            expected_version,
        )
        if status != "UPDATE 1":
            raise VersionConflict(f"refund {refund.id} was changed by someone else")

    async def get_refund(self, merchant_id: str, refund_id: str, *, for_update: bool = False) -> Refund | None:
        row = await self.conn.fetchrow(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = $1 AND id = $2" + (" FOR UPDATE" if for_update else ""),
            merchant_id,
            refund_id,
        )
        return refund_from_row(row) if row else None

    async def find_refund_by_gateway_id(
        self, gateway: str, gateway_refund_id: str, our_refund_id: str | None
    ) -> Refund | None:
        """A gateway event names the gateway's id, and ours in its metadata (an event may arrive
        before we recorded the gateway's id). The merchant is not known yet: this is the one
        lookup that is not filtered by merchant_id; every write after it is."""
        row = await self.conn.fetchrow(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE gateway = $1 AND (gateway_refund_id = $2 OR id = $3)"
            " ORDER BY gateway_refund_id IS NULL LIMIT 1 FOR UPDATE",
            gateway,
            gateway_refund_id,
            our_refund_id,
        )
        return refund_from_row(row) if row else None

    async def case_refunds(self, merchant_id: str, case_ids: list[str]) -> list[Refund]:
        rows = await self.conn.fetch(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = $1 AND case_id = ANY($2::text[])"
            " ORDER BY created_at, id",
            merchant_id,
            case_ids,
        )
        return [refund_from_row(row) for row in rows]

    async def committed_refund_amount(self, merchant_id: str, order_id: str) -> int:
        """What the order's refunds have paid or may still pay (all but failed and canceled)."""
        return await self.conn.fetchval(
            "SELECT COALESCE(sum(amount), 0)::bigint FROM refunds"
            " WHERE merchant_id = $1 AND order_id = $2 AND status = ANY($3::text[])",
            merchant_id,
            order_id,
            [str(status) for status in COMMITTED_STATUSES],
        )

    async def gateway_account(self, merchant_id: str) -> str | None:
        return await self.conn.fetchval("SELECT gateway_account FROM merchants WHERE id = $1", merchant_id)

    async def set_gateway_account(self, merchant_id: str, account: str | None) -> None:
        await self.conn.execute("UPDATE merchants SET gateway_account = $2 WHERE id = $1", merchant_id, account)

    # ----------------------------------------------------------------- the worker's side

    async def claim_due_refunds(self, now: datetime, lease: timedelta, limit: int) -> list[ClaimedRefund]:
        """Claim refunds due for sending across all merchants. SKIP LOCKED lets any number of
        workers claim side by side; the lease hands a refund on if its worker dies."""
        rows = await self.conn.fetch(
            f"""
            UPDATE refunds SET claimed_until = $1 + $2::interval, tries = tries + 1
             WHERE (merchant_id, id) IN (
                   SELECT merchant_id, id FROM refunds
                    WHERE status = 'pending' AND next_attempt_at <= $1
                      AND (claimed_until IS NULL OR claimed_until < $1)
                    ORDER BY next_attempt_at
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED)
            RETURNING {REFUND_COLUMNS}, tries
            """,
            now,
            lease,
            limit,
        )
        return [ClaimedRefund(refund=refund_from_row(row), tries=row["tries"]) for row in rows]

    async def postpone_refund(self, merchant_id: str, refund_id: str, until: datetime, error: str) -> None:
        """A retryable failure: release the claim and try again later with the same key."""
        await self.conn.execute(
            "UPDATE refunds SET claimed_until = NULL, next_attempt_at = $3, last_error = $4"
            " WHERE merchant_id = $1 AND id = $2",
            merchant_id,
            refund_id,
            until,
            error[:1000],
        )

    async def unsettled_refunds(self, older_than: datetime, limit: int) -> list[Refund]:
        """Refunds the gateway accepted but has not settled, not heard of since ``older_than``."""
        rows = await self.conn.fetch(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE status IN ('submitted', 'requires_action')"
            " AND COALESCE(checked_at, updated_at) < $1 ORDER BY COALESCE(checked_at, updated_at) LIMIT $2",
            older_than,
            limit,
        )
        return [refund_from_row(row) for row in rows]

    async def mark_refund_checked(self, merchant_id: str, refund_id: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE refunds SET checked_at = $3 WHERE merchant_id = $1 AND id = $2", merchant_id, refund_id, at
        )

    async def record_gateway_event(self, gateway: str, event_id: str, event_type: str, at: datetime) -> bool:
        """True the first time an event is seen; False for a redelivery."""
        inserted = await self.conn.fetchval(
            "INSERT INTO gateway_events (gateway, event_id, type, received_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true",
            gateway,
            event_id,
            event_type,
            at,
        )
        return bool(inserted)


def _db(value: Any) -> Any:
    return str(value) if isinstance(value, RefundStatus) else value
