"""The simulated carrier: the default when no ``EASYPOST_API_KEY`` is set, so a laptop, a demo or
a test sees return labels bought, printed and scanned without a network.

Like the simulated gateway it keeps its state in PostgreSQL (its own tables, migration 012):
every process of the service sees one carrier, its ids never repeat, and a bought label stays
bought across restarts. It reads none of the service's tables. Its behaviour:

- rates are a rule of the parcel and the distance: three services (Ground, Priority, Express),
  a base price plus a price per started kilogram, more abroad, in the currency of the country the
  parcel goes to (``CURRENCIES``; USD elsewhere);
- ``buy`` on a shipment already bought answers its label (one purchase row per shipment, which
  tests count); labels are real documents: a PDF, a PNG and a QR code (``printing``);
- scans follow the purchase: ``pre_transit`` at once, ``in_transit`` after ``in_transit_after``
  seconds, ``out_for_delivery`` half-way to ``delivered`` after ``delivered_after`` seconds;
  ``track`` answers those whose time has come; each scan's id is the tracking code and status;
- ``void`` is accepted while the parcel has no ``in_transit`` scan; a voided label is never scanned;
- ``fail_next(n, retryable=...)``: this instance's next ``n`` calls fail, as a carrier that is
  down (retryable) or refusing;
- ``latency`` seconds are awaited on every call, half on the way there and half on the way back
  (after the carrier acted), so a process killed mid-call may leave a shipment made or a label
  bought that it never heard of.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from adapters.carriers.printing import label_pdf, label_png, qr_png
from adapters.simulated_system import SimulatedSystem
from service.ports import (
    BoughtLabel,
    CarrierError,
    CarrierRate,
    CarrierShipment,
    Parcel,
    ShippingAddress,
    TrackingEvent,
)

CARRIER = "Simulated Post"
# service → (delivery days, price per base price in hundredths)
SERVICES = {"Ground": (5, 100), "Priority": (2, 160), "Express": (1, 250)}
CURRENCIES = {
    "US": "USD", "CA": "CAD", "GB": "GBP", "CH": "CHF", "JP": "JPY", "CN": "CNY", "AU": "AUD",
    **dict.fromkeys(("AT", "BE", "DE", "ES", "FI", "FR", "GR", "IE", "IT", "LU", "NL", "PT", "SK", "SI"), "EUR"),
}  # fmt: skip
# a price in cents becomes this many minor units of the currency (about the same value)
MINOR_UNITS_PER_CENT = {"JPY": 1.5, "CNY": 7.0, "CAD": 1.4, "AUD": 1.5}

_SHIPMENT_COLUMNS = (
    "id, reference, from_address::text, to_address::text, parcel::text, rates::text, rate_id, tracking_code, bought_at, voided_at"
)


class SimulatedCarrier(SimulatedSystem):
    name = "simulated"

    def __init__(
        self,
        dsn: str,
        *,
        in_transit_after: float = 120.0,
        delivered_after: float = 600.0,
        latency: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(dsn, latency, _unreachable)
        self.in_transit_after = timedelta(seconds=in_transit_after)
        self.delivered_after = timedelta(seconds=max(delivered_after, in_transit_after))
        self.clock = clock

    def fail_next(self, count: int = 1, *, retryable: bool = True) -> None:
        """The next ``count`` calls to this instance fail, doing nothing (in this process only)."""
        code = "service_unavailable" if retryable else "refused"
        self._failures += [CarrierError("simulated carrier failure", code=code, retryable=retryable)] * count

    # ----------------------------------------------------------------- the port

    async def create_shipment(
        self, *, from_address: ShippingAddress, to_address: ShippingAddress, parcel: Parcel, reference: str
    ) -> CarrierShipment:
        await self._answer()
        async with self._pooled() as conn:
            number = await conn.fetchval("SELECT nextval('simulated_carrier_ids')")
            shipment_id = f"shp_sim_{number:08d}"
            rates = quote(shipment_id, from_address, to_address, parcel)
            await conn.execute(
                "INSERT INTO simulated_carrier_shipments (id, reference, from_address, to_address, parcel, rates, created_at)"
                " VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6::jsonb, $7)",
                shipment_id,
                reference,
                _json(from_address),
                _json(to_address),
                _json(parcel),
                _json(rates),
                self.clock(),
            )
        await self._answer_back()
        return CarrierShipment(shipment_id=shipment_id, rates=rates)

    async def get_shipment(self, shipment_id: str) -> CarrierShipment:
        await self._answer()
        async with self._pooled() as conn:
            row = await self._shipment(conn, shipment_id)
        return _shipment(row)

    async def buy(self, shipment_id: str, rate_id: str) -> BoughtLabel:
        await self._answer()
        async with self._pooled() as conn, conn.transaction():
            row = await self._shipment(conn, shipment_id, lock=True)
            if row["rate_id"] is None:
                rate = next((r for r in _rates(row) if r.rate_id == rate_id), None)
                if rate is None:
                    raise CarrierError(f"no rate {rate_id} on shipment {shipment_id}", code="rate_not_found")
                now = self.clock()
                tracking_code = f"SIM{int(shipment_id.rsplit('_', 1)[1]):012d}"
                row = await conn.fetchrow(
                    "UPDATE simulated_carrier_shipments SET rate_id = $2, tracking_code = $3, bought_at = $4"
                    f" WHERE id = $1 RETURNING {_SHIPMENT_COLUMNS}",
                    shipment_id,
                    rate_id,
                    tracking_code,
                    now,
                )
                await conn.execute(
                    "INSERT INTO simulated_carrier_purchases (shipment_id, reference, amount, currency, at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    shipment_id,
                    row["reference"],
                    rate.amount,
                    rate.currency,
                    now,
                )
        await self._answer_back()
        label = _shipment(row).label
        assert label is not None
        return label

    async def void(self, shipment_id: str) -> bool:
        await self._answer()
        async with self._pooled() as conn:
            changed = await conn.execute(
                "UPDATE simulated_carrier_shipments SET voided_at = coalesce(voided_at, $2)"
                " WHERE id = $1 AND bought_at IS NOT NULL AND (voided_at IS NOT NULL OR bought_at > $3)",
                shipment_id,
                self.clock(),
                self.clock() - self.in_transit_after,
            )
        return changed == "UPDATE 1"

    async def track(self, tracking_code: str, carrier: str) -> list[TrackingEvent]:
        await self._answer()
        async with self._pooled() as conn:
            row = await conn.fetchrow(
                f"SELECT {_SHIPMENT_COLUMNS} FROM simulated_carrier_shipments WHERE tracking_code = $1", tracking_code
            )
        if row is None:
            raise CarrierError(f"no parcel {tracking_code}", code="not_found")
        return self.scans(tracking_code, row["bought_at"], row["voided_at"])

    def scans(self, tracking_code: str, bought_at: datetime, voided_at: datetime | None) -> list[TrackingEvent]:
        """The scans whose time has come; a voided label got only its first."""
        script = [
            ("pre_transit", timedelta(0), "label created"),
            ("in_transit", self.in_transit_after, "accepted at the post office"),
            ("out_for_delivery", (self.in_transit_after + self.delivered_after) / 2, "out for delivery"),
            ("delivered", self.delivered_after, "delivered to the warehouse"),
        ]
        now = self.clock()
        return [
            TrackingEvent(
                event_id=f"{tracking_code}:{status}",
                tracking_code=tracking_code,
                status=status,
                at=bought_at + after,
                detail=detail,
            )
            for status, after, detail in script
            if bought_at + after <= now and (voided_at is None or after == timedelta(0))
        ]

    # ----------------------------------------------------------------- scripting and inspection

    async def purchases(self, reference: str | None = None) -> int:
        """How many labels were paid for (for one reference: one of our label ids)."""
        async with self._pooled() as conn:
            return await conn.fetchval(
                "SELECT count(*) FROM simulated_carrier_purchases WHERE $1::text IS NULL OR reference = $1", reference
            )

    # ----------------------------------------------------------------- internals

    @staticmethod
    async def _shipment(conn: asyncpg.Connection, shipment_id: str, *, lock: bool = False) -> asyncpg.Record:
        row = await conn.fetchrow(
            f"SELECT {_SHIPMENT_COLUMNS} FROM simulated_carrier_shipments WHERE id = $1" + (" FOR UPDATE" if lock else ""),
            shipment_id,
        )
        if row is None:
            raise CarrierError(f"no shipment {shipment_id}", code="not_found")
        return row


def quote(shipment_id: str, from_address: ShippingAddress, to_address: ShippingAddress, parcel: Parcel) -> list[CarrierRate]:
    """The rule: 4.00 plus 0.90 per started kilogram (a volume weight of length × width × height
    / 5000 counts when larger), twice that abroad, times the service's factor."""
    volume_g = (parcel.length_mm or 0) * (parcel.width_mm or 0) * (parcel.height_mm or 0) // 5000
    kilograms = -(-max(parcel.weight_g, volume_g, 1) // 1000)
    cents = (400 + 90 * kilograms) * (1 if from_address.country == to_address.country else 2)
    currency = CURRENCIES.get(to_address.country, "USD")
    per_cent = MINOR_UNITS_PER_CENT.get(currency, 1.0)
    return [
        CarrierRate(
            rate_id=f"rate_{shipment_id}_{service.lower()}",
            carrier=CARRIER,
            service=service,
            amount=round(cents * factor / 100 * per_cent),
            currency=currency,
            delivery_days=days,
        )
        for service, (days, factor) in SERVICES.items()
    ]


def _unreachable(error: Exception) -> CarrierError:
    return CarrierError(f"simulated carrier unreachable: {error}", code="unreachable", retryable=True)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _rates(row: asyncpg.Record) -> list[CarrierRate]:
    return msgspec.json.decode(row["rates"], type=list[CarrierRate])


def _shipment(row: asyncpg.Record) -> CarrierShipment:
    rates = _rates(row)
    label = None
    if row["rate_id"] is not None:
        rate = next(r for r in rates if r.rate_id == row["rate_id"])
        label = _label(row, rate)
    return CarrierShipment(shipment_id=row["id"], rates=rates, label=label)


def _label(row: asyncpg.Record, rate: CarrierRate) -> BoughtLabel:
    sender = msgspec.json.decode(row["from_address"], type=ShippingAddress)
    recipient = msgspec.json.decode(row["to_address"], type=ShippingAddress)
    parcel = msgspec.json.decode(row["parcel"], type=Parcel)
    code = row["tracking_code"]
    lines = [
        f"{CARRIER} - {rate.service}",
        f"TRACKING {code}",
        "",
        "FROM",
        *_address_lines(sender),
        "",
        "TO",
        *_address_lines(recipient),
        "",
        f"WEIGHT {parcel.weight_g} g    REF {row['reference']}",
        f"SHIPMENT {row['id']}",
    ]
    return BoughtLabel(
        shipment_id=row["id"],
        tracking_code=code,
        carrier=CARRIER,
        service=rate.service,
        amount=rate.amount,
        currency=rate.currency,
        pdf=label_pdf(lines, code),
        png=label_png(lines, code),
        qr_png=qr_png(code),
    )


def _address_lines(address: ShippingAddress) -> list[str]:
    city = " ".join(filter(None, [address.zip, address.city, address.state]))
    return [line for line in (address.name, address.street1, address.street2, city, address.country) if line]
