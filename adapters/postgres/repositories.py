"""The PostgreSQL side of every port in ``service.ports.Repositories``: plain SQL with explicit
column lists, every statement filtered by merchant_id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from adapters.postgres.cursors import decode_cursor, encode_cursor
from adapters.postgres.finance import PgFinance
from adapters.postgres.labels import PgLabels
from adapters.postgres.limits import PgLimits
from adapters.postgres.mail import PgMail
from adapters.postgres.photos import PgPhotos
from adapters.postgres.refunds import PgRefunds
from adapters.postgres.workflows import PgWorkflows
from domain.cases import Actor, Case, CaseEvent
from domain.orders import Order
from service.ports import (
    CaseFilter,
    CustomerActivity,
    NotFound,
    OrderCommitments,
    Page,
    Principal,
    VersionConflict,
)

_CASE_COLUMNS = "id, version, doc::text AS doc"
_NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)  # the queue's sort key for cases with no SLA
_RELEASED = ("cancelled", "rejected")  # cases in these states hold nothing against the order


# Changes that keep the state but that a storefront acts on: the label to hand to the customer,
# the parcel at the warehouse.
_RECORDED_TOPICS = {"label_ready": "case.label_ready", "delivered": "case.delivered"}


def _topics(event: CaseEvent) -> list[str]:
    """The storefront hears of a case's creation and of every change of state; a closed case
    also asks it to request the customer's survey, a case on its way back says so by name."""
    if event.type == "created":
        return ["case.created"]
    if event.from_state == event.to_state:
        return [_RECORDED_TOPICS[event.type]] if event.type in _RECORDED_TOPICS else []
    return [
        "case.updated",
        *(["case.in_transit"] if event.to_state == "in_transit" else []),
        *(["case.survey_requested"] if event.to_state == "closed" else []),
    ]


def _encode_case(case: Case) -> str:
    doc = msgspec.to_builtins(case)
    doc.pop("pending_events", None)
    return msgspec.json.encode(doc).decode()


def _decode_case(row: asyncpg.Record) -> Case:
    case = msgspec.json.decode(row["doc"], type=Case)
    case.version = row["version"]
    return case


class PgRepositories(PgRefunds, PgWorkflows, PgPhotos, PgFinance, PgMail, PgLabels, PgLimits):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # ----------------------------------------------------------------- merchants and keys

    async def ensure_merchant(self, merchant_id: str) -> None:
        await self.conn.execute("INSERT INTO merchants (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", merchant_id)

    async def deployment_secret(self, name: str, candidate: str) -> str:
        await self.conn.execute(
            "INSERT INTO deployment_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, candidate
        )
        return await self.conn.fetchval("SELECT value FROM deployment_secrets WHERE name = $1", name)

    async def create_api_key(self, merchant_id: str, key_id: str, role: str, key_hash: bytes) -> None:
        await self.conn.execute(
            "INSERT INTO api_keys (merchant_id, id, role, key_hash) VALUES ($1, $2, $3, $4)",
            merchant_id,
            key_id,
            role,
            key_hash,
        )

    async def find_api_key(self, key_hash: bytes) -> Principal | None:
        row = await self.conn.fetchrow(
            "SELECT id, merchant_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            key_hash,
        )
        return Principal(key_id=row["id"], merchant_id=row["merchant_id"], role=row["role"]) if row else None

    async def revoke_api_key(self, merchant_id: str, key_id: str, at: datetime) -> bool:
        status = await self.conn.execute(
            "UPDATE api_keys SET revoked_at = $3 WHERE merchant_id = $1 AND id = $2 AND revoked_at IS NULL",
            merchant_id,
            key_id,
            at,
        )
        return status.endswith(" 1")

    # ----------------------------------------------------------------- orders

    async def get_order(self, merchant_id: str, order_id: str, *, for_update: bool = False) -> Order | None:
        doc = await self.conn.fetchval(
            "SELECT doc::text FROM orders WHERE merchant_id = $1 AND order_id = $2" + (" FOR UPDATE" if for_update else ""),
            merchant_id,
            order_id,
        )
        return msgspec.json.decode(doc, type=Order) if doc else None

    async def upsert_order(self, order: Order, at: datetime) -> bool:
        created = await self.conn.fetchval(
            """
            INSERT INTO orders (merchant_id, order_id, customer_id, currency, placed_at, doc, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $7)
            ON CONFLICT (merchant_id, order_id) DO UPDATE
               SET customer_id = EXCLUDED.customer_id, currency = EXCLUDED.currency,
                   placed_at = EXCLUDED.placed_at, doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at
            RETURNING (xmax = 0)
            """,
            order.merchant_id,
            order.order_id,
            order.customer.id,
            order.currency,
            order.placed_at,
            msgspec.json.encode(order).decode(),
            at,
        )
        return bool(created)

    async def order_commitments(self, merchant_id: str, order_id: str, exclude_case_id: str | None = None) -> OrderCommitments:
        rows = await self.conn.fetch(
            """
            SELECT item->>'line_id' AS line_id,
                   sum(COALESCE((item->>'received_quantity')::int, (item->>'quantity')::int))::int AS quantity
              FROM cases, jsonb_array_elements(doc->'items') AS item
             WHERE merchant_id = $1 AND order_id = $2 AND id IS DISTINCT FROM $3
               AND state <> ALL($4::text[])
             GROUP BY 1
            """,
            merchant_id,
            order_id,
            exclude_case_id,
            list(_RELEASED),
        )
        money = await self.conn.fetchrow(
            """
            SELECT COALESCE(sum((doc->'money'->>'refund_total')::bigint
                                + (doc->'money'->>'store_credit_total')::bigint
                                - COALESCE((doc->'money'->>'store_credit_bonus')::bigint, 0)), 0)::bigint AS promised,
                   COALESCE(bool_or((doc->'money'->>'original_shipping_refund')::bigint > 0), false) AS shipping
              FROM cases
             WHERE merchant_id = $1 AND order_id = $2 AND id IS DISTINCT FROM $3
               AND state <> ALL($4::text[])
            """,
            merchant_id,
            order_id,
            exclude_case_id,
            list(_RELEASED),
        )
        return OrderCommitments(
            claimed_quantities={row["line_id"]: row["quantity"] for row in rows},
            promised_amount=money["promised"],
            shipping_refunded=money["shipping"],
        )

    async def customer_activity(self, merchant_id: str, customer_id: str, since: datetime) -> CustomerActivity:
        row = await self.conn.fetchrow(
            """
            SELECT
              (SELECT COALESCE(sum((line->>'quantity')::int), 0)::int
                 FROM orders, jsonb_array_elements(doc->'lines') AS line
                WHERE merchant_id = $1 AND customer_id = $2 AND placed_at >= $3) AS purchased,
              (SELECT COALESCE(sum((item->>'quantity')::int), 0)::int
                 FROM cases, jsonb_array_elements(doc->'items') AS item
                WHERE merchant_id = $1 AND customer_id = $2 AND created_at >= $3
                  AND type <> 'repair' AND state <> ALL($4::text[])) AS returned,
              EXISTS (SELECT 1 FROM cases WHERE merchant_id = $1 AND customer_id = $2 AND flagged) AS flagged
            """,
            merchant_id,
            customer_id,
            since,
            list(_RELEASED),
        )
        return CustomerActivity(items_purchased=row["purchased"], items_returned=row["returned"], flagged=row["flagged"])

    # ----------------------------------------------------------------- cases

    async def get_case(self, merchant_id: str, case_id: str, *, for_update: bool = False) -> Case:
        lock = " FOR UPDATE" if for_update else ""
        row = await self.conn.fetchrow(
            f"SELECT {_CASE_COLUMNS} FROM cases WHERE merchant_id = $1 AND id = $2{lock}", merchant_id, case_id
        )
        if row is None:
            raise NotFound(f"no case {case_id}")
        return _decode_case(row)

    async def add_case(self, case: Case) -> None:
        await self.conn.execute(
            """
            INSERT INTO cases (merchant_id, id, order_id, customer_id, type, state, assignee, flagged,
                               reasons, version, doc, created_at, updated_at, sla_due_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14)
            """,
            *self._case_columns(case),
        )
        await self._append_events(case)

    async def save_case(self, case: Case, expected_version: int) -> None:
        _, case_id, *_ = columns = self._case_columns(case)
        status = await self.conn.execute(
            """
            UPDATE cases SET order_id = $3, customer_id = $4, type = $5, state = $6, assignee = $7,
                   flagged = $8, reasons = $9, version = $10, doc = $11::jsonb, created_at = $12,
                   updated_at = $13, sla_due_at = $14
             WHERE merchant_id = $1 AND id = $2 AND version = $15
            """,
            *columns,
            expected_version,
        )
        if status != "UPDATE 1":
            raise VersionConflict(f"case {case_id} was changed by someone else")
        await self._append_events(case)

    async def claim_idle_cases(self, states: list[str], entered_before: datetime, limit: int) -> list[Case]:
        """When a case entered its state is its last event into that state (notes and
        assignments, which keep the state, do not count). SKIP LOCKED: any number of workers."""
        rows = await self.conn.fetch(
            f"""
            SELECT {_CASE_COLUMNS} FROM cases c
             WHERE state = ANY($1::text[])
               AND (SELECT max(e.at) FROM case_events e
                     WHERE e.merchant_id = c.merchant_id AND e.case_id = c.id
                       AND e.to_state = c.state AND e.from_state IS DISTINCT FROM e.to_state) < $2
             ORDER BY updated_at
             LIMIT $3
             FOR UPDATE SKIP LOCKED
            """,
            states,
            entered_before,
            limit,
        )
        return [_decode_case(row) for row in rows]

    @staticmethod
    def _case_columns(case: Case) -> list[Any]:
        return [
            case.merchant_id,
            case.id,
            case.order_id,
            case.customer_id,
            str(case.type),
            str(case.state),
            case.assignee,
            case.flagged,
            sorted({str(item.reason) for item in case.items}),
            case.version,
            _encode_case(case),
            case.created_at,
            case.updated_at,
            case.sla_due_at,
        ]

    async def _append_events(self, case: Case) -> None:
        events = case.take_events()
        if not events:
            return
        await self.conn.executemany(
            """
            INSERT INTO case_events (merchant_id, case_id, type, actor_id, actor_role, at, from_state, to_state, data)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
            """,
            [
                (
                    case.merchant_id,
                    event.case_id,
                    event.type,
                    event.actor.id,
                    event.actor.role,
                    event.at,
                    event.from_state,
                    event.to_state,
                    msgspec.json.encode(event.data).decode(),
                )
                for event in events
            ],
        )
        messages = [(topic, event) for event in events for topic in _topics(event)]
        if messages:
            await self.conn.executemany(
                """
                INSERT INTO outbox (merchant_id, topic, payload, created_at, available_at)
                VALUES ($1, $2, $3::jsonb, $4, $4)
                """,
                [
                    (
                        case.merchant_id,
                        topic,
                        msgspec.json.encode(
                            {
                                "case_id": case.id,
                                "order_id": case.order_id,
                                "type": case.type,
                                "event": event.type,
                                "from_state": event.from_state,
                                "to_state": event.to_state,
                                "at": event.at,
                            }
                        ).decode(),
                        event.at,
                    )
                    for topic, event in messages
                ],
            )

    async def list_cases(self, merchant_id: str, filters: CaseFilter, *, sort: str, limit: int, cursor: str | None) -> Page:
        where = ["merchant_id = $1"]
        args: list[Any] = [merchant_id]

        def add(condition: str, value: Any) -> None:
            args.append(value)
            where.append(condition.format(n=len(args)))

        for column in ("order_id", "customer_id", "state", "type", "assignee"):
            value = getattr(filters, column)
            if value is not None:
                add(f"{column} = ${{n}}", value)
        if filters.reason is not None:
            add("${n} = ANY(reasons)", filters.reason)
        if filters.flagged is not None:
            add("flagged = ${n}", filters.flagged)
        if filters.q is not None:
            add(
                "(id = ${n} OR order_id = ${n} OR customer_id = ${n} OR EXISTS (SELECT 1 FROM orders o"
                " WHERE o.merchant_id = cases.merchant_id AND o.order_id = cases.order_id"
                " AND lower(o.doc->'customer'->>'email') = lower(${n})))",
                filters.q.strip(),
            )
        if filters.attention is not None:
            add(
                "${n} = EXISTS (SELECT 1 FROM refunds r WHERE r.merchant_id = cases.merchant_id"
                " AND r.case_id = cases.id AND r.status IN ('failed', 'canceled', 'requires_action')"
                " AND r.retried_by IS NULL)",
                filters.attention,
            )

        if filters.delivered is not None:
            add("${n} = (state = 'in_transit' AND doc->>'delivered_at' IS NOT NULL)", filters.delivered)

        if sort == "sla_due_at":
            key, order = "COALESCE(sla_due_at, '9999-12-31 00:00:00+00')", "ASC"
            compare = ">"
        else:
            key, order = "created_at", "DESC"
            compare = "<"
        if cursor:
            at, last_id = decode_cursor(cursor, tuple[datetime, str])
            args += [at, last_id]
            where.append(f"({key}, id) {compare} (${len(args) - 1}, ${len(args)})")
        args.append(limit + 1)
        rows = await self.conn.fetch(
            f"SELECT {_CASE_COLUMNS}, {key} AS sort_key FROM cases WHERE {' AND '.join(where)}"
            f" ORDER BY {key} {order}, id {order} LIMIT ${len(args)}",
            *args,
        )
        cases = [_decode_case(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor([last["sort_key"], last["id"]])
        return Page(items=cases, next_cursor=next_cursor)

    async def case_counts(self, merchant_id: str) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT state, count(*) AS n FROM cases WHERE merchant_id = $1 GROUP BY state ORDER BY state", merchant_id
        )
        return {row["state"]: row["n"] for row in rows}

    async def case_events(self, merchant_id: str, case_id: str) -> list[CaseEvent]:
        rows = await self.conn.fetch(
            """
            SELECT case_id, type, actor_id, actor_role, at, from_state, to_state, data::text AS data
              FROM case_events WHERE merchant_id = $1 AND case_id = $2 ORDER BY id
            """,
            merchant_id,
            case_id,
        )
        return [
            CaseEvent(
                case_id=row["case_id"],
                type=row["type"],
                actor=Actor(id=row["actor_id"], role=row["actor_role"]),
                at=row["at"],
                from_state=row["from_state"],
                to_state=row["to_state"],
                data=msgspec.json.decode(row["data"]),
            )
            for row in rows
        ]

    async def claim_idempotency_key(
        self, merchant_id: str, key: str, request_hash: bytes, case_id: str, at: datetime
    ) -> tuple[bytes, str] | None:
        inserted = await self.conn.fetchval(
            """
            INSERT INTO idempotency_keys (merchant_id, key, request_hash, case_id, created_at)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (merchant_id, key) DO NOTHING RETURNING true
            """,
            merchant_id,
            key,
            request_hash,
            case_id,
            at,
        )
        if inserted:
            return None
        row = await self.conn.fetchrow(
            "SELECT request_hash, case_id FROM idempotency_keys WHERE merchant_id = $1 AND key = $2",
            merchant_id,
            key,
        )
        return bytes(row["request_hash"]), row["case_id"]

    # ----------------------------------------------------------------- policies

    async def current_policy(self, merchant_id: str) -> tuple[int, dict[str, Any]] | None:
        row = await self.conn.fetchrow(
            "SELECT version, document::text AS document FROM policies WHERE merchant_id = $1 ORDER BY version DESC LIMIT 1",
            merchant_id,
        )
        return (row["version"], msgspec.json.decode(row["document"])) if row else None

    async def get_policy(self, merchant_id: str, version: int) -> dict[str, Any] | None:
        doc = await self.conn.fetchval(
            "SELECT document::text FROM policies WHERE merchant_id = $1 AND version = $2", merchant_id, version
        )
        return msgspec.json.decode(doc) if doc else None

    async def add_policy(self, merchant_id: str, document: dict[str, Any], at: datetime, by: str) -> int:
        # Serialise concurrent installs per merchant so versions are dense and unique.
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('policy:' || $1))", merchant_id)
        return await self.conn.fetchval(
            """
            INSERT INTO policies (merchant_id, version, document, created_at, created_by)
            SELECT $1, COALESCE(max(version), 0) + 1, $2::jsonb, $3, $4 FROM policies WHERE merchant_id = $1
            RETURNING version
            """,
            merchant_id,
            msgspec.json.encode(document).decode(),
            at,
            by,
        )
