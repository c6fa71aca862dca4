"""Return labels, carrier scans and the merchants' shipping settings: mixed into
``PgRepositories``. The worker's claims and the carrier's lookups go across merchants (a scan
names only its tracking code); everything else filters on merchant_id."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import msgspec

from service.ports import LabelHold, LabelRequest, ReturnLabel, ShippingSettings, TrackingEvent

LABEL_COLUMNS = (
    "merchant_id, id, case_id, carrier_name, status, request::text AS request, created_at, shipment_id, carrier,"
    " service, tracking_code, tracker_id, amount, currency, pdf_key, png_key, qr_key, attempts, last_error,"
    " scan_status, last_scan_at, bought_at, voided_at, hold::text AS hold"
)


def _label(row: asyncpg.Record) -> ReturnLabel:
    fields = dict(row)
    fields["request"] = msgspec.json.decode(fields["request"], type=LabelRequest)
    fields["hold"] = msgspec.json.decode(fields["hold"], type=LabelHold) if fields["hold"] else None
    return ReturnLabel(**fields)


class PgLabels:
    conn: asyncpg.Connection

    async def shipping_settings(self, merchant_id: str) -> ShippingSettings | None:
        doc = await self.conn.fetchval("SELECT doc::text FROM shipping_settings WHERE merchant_id = $1", merchant_id)
        return msgspec.json.decode(doc, type=ShippingSettings) if doc else None

    async def put_shipping_settings(self, merchant_id: str, settings: ShippingSettings, at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO shipping_settings (merchant_id, doc, updated_at) VALUES ($1, $2::jsonb, $3)"
            " ON CONFLICT (merchant_id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at",
            merchant_id,
            msgspec.json.encode(settings).decode(),
            at,
        )

    async def add_label(self, label: ReturnLabel) -> bool:
        status = await self.conn.execute(
            "INSERT INTO return_labels (merchant_id, id, case_id, carrier_name, status, request, created_at, available_at)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $7) ON CONFLICT DO NOTHING",
            label.merchant_id,
            label.id,
            label.case_id,
            label.carrier_name,
            label.status,
            msgspec.json.encode(label.request).decode(),
            label.created_at,
        )
        return status.endswith(" 1")

    async def case_labels(self, merchant_id: str, case_ids: list[str]) -> list[ReturnLabel]:
        rows = await self.conn.fetch(
            f"SELECT {LABEL_COLUMNS} FROM return_labels WHERE merchant_id = $1 AND case_id = ANY($2::text[])",
            merchant_id,
            case_ids,
        )
        return [_label(row) for row in rows]

    async def get_case_label(self, merchant_id: str, case_id: str, *, for_update: bool = False) -> ReturnLabel | None:
        row = await self.conn.fetchrow(
            f"SELECT {LABEL_COLUMNS} FROM return_labels WHERE merchant_id = $1 AND case_id = $2"
            + (" FOR UPDATE" if for_update else ""),
            merchant_id,
            case_id,
        )
        return _label(row) if row else None

    async def claim_due_labels(self, now: datetime, lease: timedelta, limit: int) -> list[ReturnLabel]:
        rows = await self.conn.fetch(
            f"""
            UPDATE return_labels SET claimed_until = $1 + $2::interval, attempts = attempts + 1
             WHERE (merchant_id, id) IN (
                   SELECT merchant_id, id FROM return_labels
                    WHERE status IN ('pending', 'void_requested') AND available_at <= $1
                      AND (claimed_until IS NULL OR claimed_until < $1)
                    ORDER BY available_at LIMIT $3
                    FOR UPDATE SKIP LOCKED)
            RETURNING {LABEL_COLUMNS}
            """,
            now,
            lease,
            limit,
        )
        return [_label(row) for row in sorted(rows, key=lambda row: (row["created_at"], row["id"]))]  # oldest first

    async def set_label_shipment(self, merchant_id: str, label_id: str, shipment_id: str) -> str:
        stored = await self.conn.fetchval(
            "UPDATE return_labels SET shipment_id = coalesce(shipment_id, $3) WHERE merchant_id = $1 AND id = $2"
            " RETURNING shipment_id",
            merchant_id,
            label_id,
            shipment_id,
        )
        return stored

    async def update_label(self, label: ReturnLabel) -> None:
        await self.conn.execute(
            """
            UPDATE return_labels SET status = $3, shipment_id = $4, carrier = $5, service = $6, tracking_code = $7,
                   tracker_id = $8, amount = $9, currency = $10, pdf_key = $11, png_key = $12, qr_key = $13,
                   last_error = $14, scan_status = $15, last_scan_at = $16, bought_at = $17, voided_at = $18,
                   hold = $19::jsonb, claimed_until = NULL
             WHERE merchant_id = $1 AND id = $2
            """,
            label.merchant_id,
            label.id,
            label.status,
            label.shipment_id,
            label.carrier,
            label.service,
            label.tracking_code,
            label.tracker_id,
            label.amount,
            label.currency,
            label.pdf_key,
            label.png_key,
            label.qr_key,
            label.last_error,
            label.scan_status,
            label.last_scan_at,
            label.bought_at,
            label.voided_at,
            msgspec.json.encode(label.hold).decode() if label.hold else None,
        )

    async def postpone_label(self, merchant_id: str, label_id: str, until: datetime, error: str) -> None:
        await self.conn.execute(
            "UPDATE return_labels SET available_at = $3, last_error = $4, claimed_until = NULL"
            " WHERE merchant_id = $1 AND id = $2",
            merchant_id,
            label_id,
            until,
            error[:1000],
        )

    async def label_by_tracking(self, carrier_name: str, tracking_code: str) -> ReturnLabel | None:
        row = await self.conn.fetchrow(
            f"SELECT {LABEL_COLUMNS} FROM return_labels WHERE carrier_name = $1 AND tracking_code = $2 FOR UPDATE",
            carrier_name,
            tracking_code,
        )
        return _label(row) if row else None

    async def record_carrier_event(self, carrier_name: str, event: TrackingEvent, at: datetime) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO carrier_events (carrier, event_id, tracking_code, status, at, received_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true",
            carrier_name,
            event.event_id,
            event.tracking_code,
            event.status,
            event.at,
            at,
        )
        return bool(inserted)

    async def claim_quiet_labels(self, carrier_name: str, quiet_since: datetime, now: datetime, limit: int) -> list[ReturnLabel]:
        rows = await self.conn.fetch(
            f"""
            UPDATE return_labels SET polled_at = $3
             WHERE (merchant_id, id) IN (
                   SELECT merchant_id, id FROM return_labels
                    WHERE status = 'bought' AND carrier_name = $1 AND scan_status IS DISTINCT FROM 'delivered'
                      AND coalesce(polled_at, bought_at) < $2
                    ORDER BY coalesce(polled_at, bought_at) LIMIT $4
                    FOR UPDATE SKIP LOCKED)
            RETURNING {LABEL_COLUMNS}
            """,
            carrier_name,
            quiet_since,
            now,
            limit,
        )
        return [_label(row) for row in rows]
