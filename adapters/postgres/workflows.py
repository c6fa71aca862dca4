"""Store credit, the outbox's delivery side and the webhook endpoint: mixed into
``PgRepositories``. Every statement but the worker's cross-merchant claim filters on merchant_id."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor
from service.ports import (
    OperationalCounts,
    OutboxMessage,
    Page,
    StoreCreditGrant,
    WebhookDelivery,
    WebhookEndpoint,
)

ENDPOINT_COLUMNS = "id, url, secret, enabled, created_at, previous_secret, previous_secret_expires_at"


def outbox_message(row: asyncpg.Record) -> OutboxMessage:
    return OutboxMessage(
        merchant_id=row["merchant_id"],
        id=row["id"],
        topic=row["topic"],
        payload=msgspec.json.decode(row["payload"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
    )


class PgWorkflows:
    conn: asyncpg.Connection

    # ----------------------------------------------------------------- outbox

    async def add_outbox(self, merchant_id: str, topic: str, payload: dict[str, Any], at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO outbox (merchant_id, topic, payload, created_at, available_at) VALUES ($1, $2, $3::jsonb, $4, $4)",
            merchant_id,
            topic,
            msgspec.json.encode(payload).decode(),
            at,
        )

    async def claim_due_outbox(self, now: datetime, lease: timedelta, limit: int) -> list[OutboxMessage]:
        """Claim messages due for delivery across merchants; the lease hands a message on if its
        worker dies mid-delivery (so delivery is at least once)."""
        rows = await self.conn.fetch(
            """
            UPDATE outbox SET claimed_until = $1 + $2::interval, attempts = attempts + 1
             WHERE (merchant_id, id) IN (
                   SELECT merchant_id, id FROM outbox
                    WHERE processed_at IS NULL AND available_at <= $1
                      AND (claimed_until IS NULL OR claimed_until < $1)
                    ORDER BY available_at, id LIMIT $3
                    FOR UPDATE SKIP LOCKED)
            RETURNING merchant_id, id, topic, payload::text AS payload, attempts, created_at
            """,
            now,
            lease,
            limit,
        )
        return [outbox_message(row) for row in sorted(rows, key=lambda row: row["id"])]  # RETURNING keeps no order

    async def finish_outbox(self, merchant_id: str, outbox_id: int, outcome: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE outbox SET processed_at = $3, outcome = $4, claimed_until = NULL WHERE merchant_id = $1 AND id = $2",
            merchant_id,
            outbox_id,
            at,
            outcome,
        )

    async def postpone_outbox(self, merchant_id: str, outbox_id: int, until: datetime) -> None:
        await self.conn.execute(
            "UPDATE outbox SET available_at = $3, claimed_until = NULL WHERE merchant_id = $1 AND id = $2",
            merchant_id,
            outbox_id,
            until,
        )

    async def operational_counts(self) -> OperationalCounts:
        cases = await self.conn.fetch("SELECT type, state, count(*) AS n FROM cases GROUP BY 1, 2")
        refunds = await self.conn.fetch("SELECT status, count(*) AS n FROM refunds GROUP BY 1")
        row = await self.conn.fetchrow(
            """
            SELECT (SELECT count(*) FROM outbox WHERE processed_at IS NULL) AS outbox,
                   COALESCE(EXTRACT(EPOCH FROM now() - (SELECT min(next_attempt_at) FROM refunds
                                                          WHERE status = 'pending' AND next_attempt_at <= now())), 0)
                       AS lag
            """
        )
        return OperationalCounts(
            cases={(r["type"], r["state"]): r["n"] for r in cases},
            refunds={r["status"]: r["n"] for r in refunds},
            outbox_depth=row["outbox"],
            worker_lag_seconds=float(row["lag"]),
        )

    # ----------------------------------------------------------------- webhook endpoint and log

    async def webhook_endpoint(self, merchant_id: str) -> WebhookEndpoint | None:
        row = await self.conn.fetchrow(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1", merchant_id)
        return WebhookEndpoint(**dict(row)) if row else None

    async def put_webhook_endpoint(self, merchant_id: str, endpoint: WebhookEndpoint, at: datetime) -> WebhookEndpoint:
        row = await self.conn.fetchrow(
            f"""
            INSERT INTO webhook_endpoints (merchant_id, id, url, secret, enabled, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $6)
            ON CONFLICT (merchant_id) DO UPDATE
               SET url = EXCLUDED.url, enabled = EXCLUDED.enabled, updated_at = $6
            RETURNING {ENDPOINT_COLUMNS}
            """,
            merchant_id,
            endpoint.id,
            endpoint.url,
            endpoint.secret,
            endpoint.enabled,
            at,
        )
        return WebhookEndpoint(**dict(row))

    async def rotate_webhook_secret(
        self, merchant_id: str, secret: str, previous_expires_at: datetime, at: datetime
    ) -> WebhookEndpoint | None:
        row = await self.conn.fetchrow(
            f"""
            UPDATE webhook_endpoints
               SET previous_secret = secret, previous_secret_expires_at = $3, secret = $2, updated_at = $4
             WHERE merchant_id = $1
            RETURNING {ENDPOINT_COLUMNS}
            """,
            merchant_id,
            secret,
            previous_expires_at,
            at,
        )
        return WebhookEndpoint(**dict(row)) if row else None

    async def log_delivery(self, merchant_id: str, delivery: WebhookDelivery) -> None:
        await self.conn.execute(
            """
            INSERT INTO webhook_deliveries (merchant_id, outbox_id, endpoint_id, topic, attempt, status_code, error,
                                            duration_ms, at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            merchant_id,
            delivery.event_id,
            delivery.endpoint_id,
            delivery.topic,
            delivery.attempt,
            delivery.status_code,
            delivery.error,
            delivery.duration_ms,
            delivery.at,
        )

    async def list_deliveries(self, merchant_id: str, limit: int, cursor: str | None) -> Page:
        args: list[Any] = [merchant_id, limit + 1]
        after = ""
        if cursor:
            args.append(decode_cursor(cursor, int))
            after = " AND id < $3"
        rows = await self.conn.fetch(
            "SELECT id, outbox_id, endpoint_id, topic, attempt, status_code, error, duration_ms, at"
            f" FROM webhook_deliveries WHERE merchant_id = $1{after} ORDER BY id DESC LIMIT $2",
            *args,
        )
        items = [
            WebhookDelivery(
                id=row["id"],
                event_id=row["outbox_id"],
                endpoint_id=row["endpoint_id"],
                topic=row["topic"],
                attempt=row["attempt"],
                status_code=row["status_code"],
                error=row["error"],
                duration_ms=row["duration_ms"],
                at=row["at"],
            )
            for row in rows[:limit]
        ]
        next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    # ----------------------------------------------------------------- store credit

    async def add_store_credit_grant(self, merchant_id: str, grant: StoreCreditGrant) -> None:
        await self.conn.execute(
            """
            INSERT INTO store_credit_grants (merchant_id, id, customer_id, case_id, amount, bonus, currency, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            """,
            merchant_id,
            grant.id,
            grant.customer_id,
            grant.case_id,
            grant.amount,
            grant.bonus,
            grant.currency,
            grant.created_at,
        )

    async def store_credit_grants(self, merchant_id: str, customer_id: str) -> list[StoreCreditGrant]:
        rows = await self.conn.fetch(
            "SELECT id, customer_id, case_id, amount, bonus, currency, created_at FROM store_credit_grants"
            " WHERE merchant_id = $1 AND customer_id = $2 ORDER BY created_at, id",
            merchant_id,
            customer_id,
        )
        return [StoreCreditGrant(**dict(row)) for row in rows]
