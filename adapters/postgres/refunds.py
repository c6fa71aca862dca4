"""Refund rows: created with the case transition that makes money due, claimed by workers with
``FOR UPDATE SKIP LOCKED`` under a lease, updated with optimistic concurrency."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg

from domain.refunds import COMMITTED_STATUSES, Refund, RefundStatus
from service.ports import ClaimedRefund, CommittedRefunds, VersionConflict

REFUND_COLUMNS = (
    "merchant_id, id, case_id, order_id, customer_id, reason, attempt, amount, currency, status, gateway,"
    " gateway_account, payment_reference, gateway_refund_id, failure_reason, version, created_at, updated_at,"
    " settled_at, retried_by"
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
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $17)",
            *[_db(getattr(refund, name)) for name in _FIELDS],
        )

    async def save_refund(self, refund: Refund, expected_version: int) -> None:
        status = await self.conn.execute(
            """
            UPDATE refunds SET status = $3, gateway_refund_id = $4, failure_reason = $5, version = $6,
                   updated_at = $7, settled_at = $8, retried_by = $10, claimed_until = NULL, claimed_by = NULL
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
            refund.retried_by,
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

    async def find_reported_refund(
        self, gateway: str, account: str | None, gateway_refund_id: str, our_refund_id: str | None
    ) -> Refund | None:
        """The refund a gateway report is about, on that gateway and account only: by the
        gateway's id, else (before we learned that id) by ours from the report's metadata. The
        merchant is not known yet; the account scopes the lookup instead (an account belongs to
        one merchant), and the caller checks the report against what it finds."""
        row = await self.conn.fetchrow(
            f"SELECT {REFUND_COLUMNS} FROM refunds"
            " WHERE gateway = $1 AND gateway_account IS NOT DISTINCT FROM $2 AND gateway_refund_id = $3 FOR UPDATE",
            gateway,
            account,
            gateway_refund_id,
        )
        if row is None and our_refund_id:
            row = await self.conn.fetchrow(
                f"SELECT {REFUND_COLUMNS} FROM refunds"
                " WHERE id = $3 AND gateway = $1 AND gateway_account IS NOT DISTINCT FROM $2 FOR UPDATE",
                gateway,
                account,
                our_refund_id,
            )
        return refund_from_row(row) if row else None

    async def case_refunds(self, merchant_id: str, case_ids: list[str]) -> list[Refund]:
        rows = await self.conn.fetch(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = $1 AND case_id = ANY($2::text[]) ORDER BY created_at, id",
            merchant_id,
            case_ids,
        )
        return [refund_from_row(row) for row in rows]

    async def committed_refunds(self, merchant_id: str, order_id: str, case_id: str | None = None) -> CommittedRefunds:
        """What the order's refunds, and the case's among them, have paid or may still pay (all
        but failed and canceled)."""
        row = await self.conn.fetchrow(
            "SELECT COALESCE(sum(amount), 0)::bigint AS on_order,"
            "       COALESCE(sum(amount) FILTER (WHERE case_id = $3), 0)::bigint AS on_case"
            "  FROM refunds WHERE merchant_id = $1 AND order_id = $2 AND status = ANY($4::text[])",
            merchant_id,
            order_id,
            case_id,
            [str(status) for status in COMMITTED_STATUSES],
        )
        return CommittedRefunds(on_order=row["on_order"], on_case=row["on_case"])

    async def gateway_account(self, merchant_id: str) -> str | None:
        return await self.conn.fetchval("SELECT gateway_account FROM merchants WHERE id = $1", merchant_id)

    async def set_gateway_account(self, merchant_id: str, account: str | None) -> bool:
        """Bind (or, with None, unbind) the merchant's account; False, changing nothing, when
        the account is bound to another merchant (a unique index decides, so two merchants
        binding one account at the same moment can't both win)."""
        try:
            async with self.conn.transaction():  # a savepoint: the refusal leaves the unit of work usable
                await self.conn.execute("UPDATE merchants SET gateway_account = $2 WHERE id = $1", merchant_id, account)
        except asyncpg.UniqueViolationError:
            return False
        return True

    async def claim_payment(self, gateway: str, account: str, reference: str, merchant_id: str, at: datetime) -> str:
        """The payment's owner, the merchant claiming it if nobody owned it. The insert waits for a
        claim of the same payment in flight; the lookup after it is a statement of its own, so it
        sees whichever claim won (a lookup in the insert's statement would not)."""
        await self.conn.execute(
            "INSERT INTO payment_owners (gateway, account, reference, merchant_id, created_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            gateway,
            account,
            reference,
            merchant_id,
            at,
        )
        return await self.conn.fetchval(
            "SELECT merchant_id FROM payment_owners WHERE gateway = $1 AND account = $2 AND reference = $3",
            gateway,
            account,
            reference,
        )

    async def owned_payments(self, merchant_id: str, gateway: str, account: str, references: list[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT reference FROM payment_owners"
            " WHERE merchant_id = $1 AND gateway = $2 AND account = $3 AND reference = ANY($4::text[])",
            merchant_id,
            gateway,
            account,
            references,
        )
        return {row["reference"] for row in rows}

    # ----------------------------------------------------------------- the worker's side

    async def claim_due_refunds(
        self, gateway: str, worker: str, now: datetime, lease: timedelta, limit: int, skip_accounts: list[str]
    ) -> list[ClaimedRefund]:
        """Claim refunds due for sending on ``gateway`` across all merchants, but none on the
        accounts in ``skip_accounts`` (those the worker already keeps busy; '' is no account).
        Each merchant's oldest come first, then each one's second oldest, and so on: merchants
        sharing an account (the platform's) take turns, so one merchant's backlog never holds
        another's refunds up. SKIP LOCKED lets any number of workers claim side by side; the lease,
        renewed by the ``worker`` while it holds the claim, hands a refund on within seconds if it
        dies. (A window function cannot stand beside FOR UPDATE: the turns are ranked first.)"""
        rows = await self.conn.fetch(
            f"""
            UPDATE refunds SET claimed_until = $1 + $2::interval, claimed_by = $5, tries = tries + 1
             WHERE (merchant_id, id) IN (
                   SELECT r.merchant_id, r.id FROM refunds r
                     JOIN (SELECT merchant_id, id,
                                  row_number() OVER (PARTITION BY merchant_id ORDER BY next_attempt_at) AS turn
                             FROM refunds
                            WHERE status = 'pending' AND next_attempt_at <= $1 AND gateway = $4
                              AND (claimed_until IS NULL OR claimed_until < $1)
                              AND NOT (COALESCE(gateway_account, '') = ANY($6::text[]))) due
                       ON due.merchant_id = r.merchant_id AND due.id = r.id
                    WHERE r.status = 'pending' AND (r.claimed_until IS NULL OR r.claimed_until < $1)
                    ORDER BY due.turn, r.next_attempt_at
                    LIMIT $3
                    FOR UPDATE OF r SKIP LOCKED)
            RETURNING {REFUND_COLUMNS}, tries
            """,
            now,
            lease,
            limit,
            gateway,
            worker,
            skip_accounts,
        )
        return [ClaimedRefund(refund=refund_from_row(row), tries=row["tries"]) for row in rows]

    async def renew_claims(self, worker: str, refund_ids: list[str], until: datetime) -> int:
        """Extend the leases ``worker`` still holds on these refunds; answers how many."""
        status = await self.conn.execute(
            "UPDATE refunds SET claimed_until = $3"
            " WHERE id = ANY($2::text[]) AND claimed_by = $1 AND status = 'pending' AND claimed_until IS NOT NULL",
            worker,
            refund_ids,
            until,
        )
        return int(status.split()[-1])

    async def postpone_refund(
        self, worker: str, merchant_id: str, refund_id: str, until: datetime, error: str, *, count_try: bool = True
    ) -> None:
        """Release ``worker``'s claim and try again later with the same key; a claim another
        worker has taken over (this one's lease ran out) is left alone. A try not counted (the
        gateway asked us to slow down) tells the next try that nothing reached the gateway."""
        await self.conn.execute(
            "UPDATE refunds SET claimed_until = NULL, claimed_by = NULL, next_attempt_at = $3, last_error = $4,"
            "       tries = tries - CASE WHEN $5 THEN 0 ELSE 1 END"
            " WHERE merchant_id = $1 AND id = $2 AND claimed_by = $6 AND status = 'pending'",
            merchant_id,
            refund_id,
            until,
            error[:1000],
            count_try,
            worker,
        )

    async def unsettled_refunds(self, gateway: str, older_than: datetime, limit: int) -> list[Refund]:
        """Refunds the gateway accepted but has not settled, not heard of since ``older_than``."""
        rows = await self.conn.fetch(
            f"SELECT {REFUND_COLUMNS} FROM refunds WHERE status IN ('submitted', 'requires_action') AND gateway = $3"
            " AND COALESCE(checked_at, updated_at) < $1 ORDER BY COALESCE(checked_at, updated_at) LIMIT $2",
            older_than,
            limit,
            gateway,
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
