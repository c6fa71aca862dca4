"""Return labels and tracking through EasyPost, with its official SDK (``EasyPostClient``).

The SDK's calls block (it speaks ``requests``), so each one runs in a thread of the adapter's own
pool (``threads``: a slow EasyPost never holds the default executor's threads, which photos and
blob files use); the label files are fetched with httpx, asynchronously.

- Money: EasyPost prices a rate as a decimal string in major units (``"7.29"`` USD, ``"800"`` JPY);
  it becomes an integer of minor units with the currency's exponent (``domain.money.exponent``),
  exactly: a rate that does not convert without rounding (``"7.295"`` USD) is left out, never
  rounded, because a label is bought at the price it is shown at.
- Buying once: EasyPost refuses a second buy of a shipment (422 ``SHIPMENT.POSTAGE.EXISTS``).
  ``buy`` answers such a refusal, and any other 4xx after which the shipment turns out to be
  bought, with the label the shipment already has; so a buy tried again after a lost answer
  never pays twice, and ``get_shipment`` tells a restarted worker what was bought.
- Label files: the PNG is EasyPost's default ``label_url``; the PDF is asked for with the label
  conversion call (``GET /shipments/{id}/label?file_format=PDF``) when the shipment has no
  ``label_pdf_url`` yet; the QR code is USPS's ``label_qr_code`` form (label-less drop-off), asked
  for once and ``None`` where the carrier does not offer it. Files are fetched only over HTTPS,
  or from the API's own host (the tests' fake serves plain HTTP on 127.0.0.1), and only when they
  are what they claim to be (PDF and PNG signatures) and under ``MAX_FILE_BYTES``.
- Errors: every SDK error becomes ``CarrierError``, retryable when no answer came (connection,
  timeout), on 408, 429 and 5xx, and on ``SHIPMENT.PURCHASE.IN_PROGRESS``. Once a label is
  bought, any failure to read it (its files included) is retryable: asking again buys nothing.

``EasyPostWebhook`` checks EasyPost's webhook signature and reads its tracker events; see its docstring.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import easypost
import httpx
import structlog

from domain.money import exponent
from service.ports import (
    BoughtLabel,
    CarrierError,
    CarrierRate,
    CarrierShipment,
    InvalidWebhook,
    Parcel,
    ShippingAddress,
    TrackingEvent,
)

log = structlog.get_logger()

DEFAULT_API_BASE = "https://api.easypost.com/v2"
MAX_FILE_BYTES = 10 * 1024 * 1024
QR_CARRIERS = {"USPS"}  # EasyPost makes ``label_qr_code`` forms for USPS (Label Broker) only
ALREADY_BOUGHT = "SHIPMENT.POSTAGE.EXISTS"
RETRYABLE_CODES = {"SHIPMENT.PURCHASE.IN_PROGRESS"}
REFUND_ACCEPTED = {"submitted", "refunded"}
GRAMS_PER_OUNCE = Decimal("28.349523125")
MM_PER_INCH = Decimal("25.4")
TENTH = Decimal("0.1")

# EasyPost's tracker statuses reduced to the port's; ``available_for_pickup`` (held for the
# warehouse at the carrier's counter) is one step short of delivery, like ``out_for_delivery``
STATUSES = {
    "pre_transit": "pre_transit",
    "in_transit": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "available_for_pickup": "out_for_delivery",
    "delivered": "delivered",
    "return_to_sender": "return_to_sender",
    "failure": "failure",
    "cancelled": "failure",
    "error": "unknown",
    "unknown": "unknown",
}


class EasyPostCarrier:
    name = "easypost"

    def __init__(self, api_key: str, *, api_base: str | None = None, timeout: int = 30, threads: int = 8) -> None:
        """``api_base``: another EasyPost-compatible server (the tests' fake), ``…/v2`` included."""
        self.api_base = api_base or DEFAULT_API_BASE
        self.client = easypost.EasyPostClient(api_key, api_base=self.api_base, timeout=timeout)
        self.threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="easypost")
        self.files = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def close(self) -> None:
        await self.files.aclose()
        self.threads.shutdown(wait=False, cancel_futures=True)

    async def create_shipment(
        self, *, from_address: ShippingAddress, to_address: ShippingAddress, parcel: Parcel, reference: str
    ) -> CarrierShipment:
        shipment = await self._call(
            self.client.shipment.create,
            from_address=_address(from_address),
            to_address=_address(to_address),
            parcel=_parcel(parcel),
            reference=reference,
        )
        return await self._shipment(shipment)

    async def get_shipment(self, shipment_id: str) -> CarrierShipment:
        return await self._shipment(await self._call(self.client.shipment.retrieve, shipment_id))

    async def buy(self, shipment_id: str, rate_id: str) -> BoughtLabel:
        try:
            shipment = await self._call(self.client.shipment.buy, shipment_id, rate={"id": rate_id})
        except CarrierError as refused:
            if refused.retryable:
                raise
            shipment = await self._call(self.client.shipment.retrieve, shipment_id)
            if not shipment.get("postage_label"):
                raise
            log.info("easypost_label_already_bought", shipment_id=shipment_id, refusal=refused.code)
        return await self._label(shipment)

    async def void(self, shipment_id: str) -> bool:
        """EasyPost's refund of the shipment's postage: True once it is submitted (USPS takes up to
        15 days to give the money back) or done; a refusal (say, the parcel was scanned) is False."""
        try:
            shipment = await self._call(self.client.shipment.refund, shipment_id)
        except CarrierError as refused:
            if refused.retryable:
                raise
            shipment = await self._call(self.client.shipment.retrieve, shipment_id)
        return shipment.get("refund_status") in REFUND_ACCEPTED

    async def track(self, tracking_code: str, carrier: str) -> list[TrackingEvent]:
        """The tracker EasyPost keeps for the code (bought labels come with one), else a new one."""
        listed = await self._call(self.client.tracker.all, tracking_code=tracking_code, carrier=carrier)
        trackers = [t for t in listed.get("trackers") or [] if t.get("tracking_code") == tracking_code]
        tracker = (
            trackers[0]
            if trackers
            else await self._call(self.client.tracker.create, tracking_code=tracking_code, carrier=carrier)
        )
        try:
            return tracking_events(tracker)
        except (ValueError, TypeError, KeyError) as error:
            raise CarrierError(
                f"EasyPost's tracker is not one we can read: {error}", code="malformed_answer", retryable=True
            ) from error

    # ----------------------------------------------------------------- reading EasyPost's answers

    async def _call(self, method: Callable[..., Any], *args: Any, **params: Any) -> dict[str, Any]:
        with _carrier_errors():
            answer = await asyncio.get_running_loop().run_in_executor(self.threads, partial(method, *args, **params))
        return answer.to_dict()

    async def _shipment(self, shipment: dict[str, Any]) -> CarrierShipment:
        rates = [rate for rate in map(_rate, shipment.get("rates") or []) if rate is not None]
        label = await self._label(shipment) if shipment.get("postage_label") else None
        return CarrierShipment(shipment_id=shipment["id"], rates=rates, label=label)

    async def _label(self, shipment: dict[str, Any]) -> BoughtLabel:
        """The bought label. Once a label is bought, failing to read it is always retryable: asking
        again reads the same shipment and never buys a second label."""
        try:
            return await self._read_label(shipment)
        except CarrierError as error:
            if error.retryable:
                raise
            raise CarrierError(f"label of {shipment['id']} bought, not read: {error}", code=error.code, retryable=True) from error

    async def _read_label(self, shipment: dict[str, Any]) -> BoughtLabel:
        """Its files: the PNG, the PDF (converted once) and the QR code where offered."""
        shipment_id, postage = shipment["id"], shipment.get("postage_label") or {}
        selected = _rate(shipment.get("selected_rate") or {})
        if selected is None or not postage.get("label_url") or not shipment.get("tracking_code"):
            raise CarrierError(f"shipment {shipment_id} has no readable label", code="malformed_answer")
        pdf_url = postage.get("label_pdf_url")
        if not pdf_url:
            converted = await self._call(self.client.shipment.label, shipment_id, file_format="PDF")
            pdf_url = (converted.get("postage_label") or {}).get("label_pdf_url")
        qr_url = await self._qr_url(shipment, selected.carrier)
        pdf, png, qr = await asyncio.gather(
            self._fetch(pdf_url, b"%PDF-"),
            self._fetch(postage["label_url"], b"\x89PNG\r\n\x1a\n"),
            self._fetch(qr_url, b"\x89PNG\r\n\x1a\n") if qr_url else _nothing(),
        )
        return BoughtLabel(
            shipment_id=shipment_id,
            tracking_code=shipment["tracking_code"],
            carrier=selected.carrier,
            service=selected.service,
            amount=selected.amount,
            currency=selected.currency,
            pdf=pdf,
            png=png,
            qr_png=qr,
            tracker_id=(shipment.get("tracker") or {}).get("id"),
        )

    async def _qr_url(self, shipment: dict[str, Any], carrier: str) -> str | None:
        """The shipment's ``label_qr_code`` form, made when the carrier offers one and it is missing."""
        url = _form_url(shipment)
        if url or carrier not in QR_CARRIERS:
            return url
        try:
            shipment = await self._call(self.client.shipment.generate_form, shipment["id"], "label_qr_code")
        except CarrierError as refused:
            if refused.retryable:
                raise
            log.info("easypost_qr_code_refused", shipment_id=shipment["id"], code=refused.code)
            return None
        return _form_url(shipment)

    async def _fetch(self, url: str | None, signature: bytes) -> bytes:
        if not url or not self._may_fetch(url):
            raise CarrierError(f"EasyPost gave no label file we fetch: {url!r}", code="label_unavailable")
        try:
            async with self.files.stream("GET", url) as answer:
                if answer.status_code != 200:
                    raise CarrierError(f"the label file answered {answer.status_code}", code="label_unavailable")
                body = bytearray()
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_FILE_BYTES:
                        raise CarrierError("the label file is too large", code="label_unavailable")
        except httpx.HTTPError as error:
            raise CarrierError(f"the label file could not be fetched: {error}", code="label_unavailable") from error
        if not body.startswith(signature):
            raise CarrierError("the label file is not the format it should be", code="label_unavailable")
        return bytes(body)

    def _may_fetch(self, url: str) -> bool:
        """HTTPS anywhere (EasyPost's files live on its storage hosts), plain HTTP only from the API's host."""
        target, api = urlsplit(url), urlsplit(self.api_base)
        return target.scheme == "https" or (target.scheme, target.netloc) == (api.scheme, api.netloc)


async def _nothing() -> None:
    return None


def _form_url(shipment: dict[str, Any]) -> str | None:
    forms = [f for f in shipment.get("forms") or [] if f.get("form_type") == "label_qr_code" and f.get("form_url")]
    return forms[-1]["form_url"] if forms else None


def _address(address: ShippingAddress) -> dict[str, str]:
    fields = {
        "name": address.name,
        "street1": address.street1,
        "street2": address.street2,
        "city": address.city,
        "state": address.state,
        "zip": address.zip,
        "country": address.country,
        "phone": address.phone,
        "email": address.email,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _parcel(parcel: Parcel) -> dict[str, float]:
    """Grams and millimetres in EasyPost's ounces and inches, rounded up to a tenth: a parcel is never declared
    lighter or smaller than it is."""
    sizes = {"weight": Decimal(parcel.weight_g) / GRAMS_PER_OUNCE}
    for name, mm in (("length", parcel.length_mm), ("width", parcel.width_mm), ("height", parcel.height_mm)):
        if mm is not None:
            sizes[name] = Decimal(mm) / MM_PER_INCH
    return {name: float(value.quantize(TENTH, rounding=ROUND_CEILING)) for name, value in sizes.items()}


def minor_units(amount: str, currency: str) -> int:
    """``"7.29"`` USD → 729, ``"800"`` JPY → 800; a ``ValueError`` when it is not exact in the currency."""
    try:
        scaled = Decimal(amount).scaleb(exponent(currency))
    except (InvalidOperation, TypeError) as error:
        raise ValueError(f"{amount!r} is not a decimal amount") from error
    if not scaled.is_finite() or scaled != scaled.to_integral_value() or scaled < 0:
        raise ValueError(f"{amount!r} is not a whole number of {currency}'s minor units")
    return int(scaled)


def _rate(rate: dict[str, Any]) -> CarrierRate | None:
    """A rate in the port's terms; None (logged) for one without a price we can state exactly."""
    if not rate:
        return None
    currency = str(rate.get("currency") or "").upper()
    try:
        amount = minor_units(rate.get("rate"), currency)  # type: ignore[arg-type]
    except ValueError as error:
        log.warning("easypost_rate_skipped", rate_id=rate.get("id"), reason=str(error))
        return None
    days = rate.get("delivery_days")
    return CarrierRate(
        rate_id=rate["id"],
        carrier=rate.get("carrier") or "",
        service=rate.get("service") or "",
        amount=amount,
        currency=currency,
        delivery_days=days if isinstance(days, int) and not isinstance(days, bool) else None,
    )


@contextmanager
def _carrier_errors() -> Iterator[None]:
    """The SDK's errors as ``CarrierError``; no HTTP status means no answer came (a connection error,
    a timeout), and such a call may be tried again, as may 408, 429 and 5xx."""
    try:
        yield
    except easypost.errors.ApiError as error:
        status = error.http_status or 0
        code = error.code if isinstance(error.code, str) else None
        retryable = status in (0, 408, 429) or status >= 500 or code in RETRYABLE_CODES
        raise CarrierError(error.message or str(error), code=code or f"http_{status}", retryable=retryable) from error
    except easypost.errors.EasyPostError as error:
        raise CarrierError(error.message or str(error), code="easypost_error") from error


# --------------------------------------------------------------------------- tracking events and webhooks


def tracking_events(tracker: Mapping[str, Any]) -> list[TrackingEvent]:
    """One event per scan of an EasyPost tracker. The event id is the tracker's id with the scan's
    time and EasyPost status: every ``tracker.updated`` event repeats the whole scan history, and a
    poll reads it again, so an id derived from the scan itself (not the webhook event's ``evt_…``
    id) names the same scan the same way wherever it is read; two scans of one minute with one
    status are one event, which changes nothing for a case that moves on statuses."""
    tracker_id, tracking_code = tracker["id"], tracker["tracking_code"]
    if not (isinstance(tracker_id, str) and tracker_id and isinstance(tracking_code, str) and tracking_code):
        raise TypeError("a tracker has a string id and tracking code")
    events = []
    for detail in tracker.get("tracking_details") or []:
        status, at = detail["status"], _instant(detail["datetime"])
        if not isinstance(status, str):
            raise TypeError("a scan's status is a string")
        message = detail.get("message")
        events.append(
            TrackingEvent(
                event_id=f"{tracker_id}/{at.isoformat()}/{status}",
                tracking_code=tracking_code,
                status=STATUSES.get(status, "unknown"),
                at=at,
                detail=message if isinstance(message, str) else None,
            )
        )
    return events


def _instant(text: Any) -> datetime:
    if not isinstance(text, str):
        raise TypeError("a scan's datetime is a string")
    at = datetime.fromisoformat(text)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)


class EasyPostWebhook:
    """EasyPost's webhooks, checked as its SDK's ``validate_webhook`` checks them: the header
    ``X-Hmac-Signature: hmac-sha256-hex=<hex>`` must be the HMAC-SHA256 of the raw body under the
    webhook secret (NFKD-normalised, UTF-8), compared in constant time. Several secrets may be
    given while one is rotated: any of them verifies.

    EasyPost's signature (SDK 10.x) covers the body and nothing else: no timestamp, so there is no
    staleness to check, and a captured request sent again is the same body with the same scans,
    whose event ids the service has already seen (a repeat changes nothing). A signature moved
    onto another body does not verify. ``tracker.created`` and ``tracker.updated`` events give
    their tracker's scans; other events (batches, refunds, reports) are acknowledged and give none."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("an EasyPost webhook needs its secret")
        self.keys = [unicodedata.normalize("NFKD", secret).encode() for secret in secrets]

    def delivery_id(self, payload: bytes) -> str | None:
        """The event's ``id`` (``evt_…``): EasyPost signs only the body, so a captured request sent
        again is told by it (the service refuses an id it has taken in before)."""
        try:
            found = json.loads(payload).get("id")
        except (ValueError, AttributeError, RecursionError):
            return None
        return found if isinstance(found, str) and found else None

    def verify(self, payload: bytes, headers: Mapping[str, str], now: datetime) -> list[TrackingEvent]:
        signature = next((value for name, value in headers.items() if name.lower() == "x-hmac-signature"), None)
        if not signature:
            raise InvalidWebhook("no X-Hmac-Signature header")
        expected = [f"hmac-sha256-hex={hmac.new(key, payload, hashlib.sha256).hexdigest()}" for key in self.keys]
        if not any(hmac.compare_digest(candidate.encode(), signature.encode()) for candidate in expected):
            raise InvalidWebhook("the X-Hmac-Signature does not match this webhook's secret")
        try:
            event = json.loads(payload)
            description, result = event["description"], event.get("result")
            if not isinstance(description, str):
                raise TypeError("an event's description is a string")
            if description not in ("tracker.created", "tracker.updated"):
                return []
            if not isinstance(result, dict):
                raise TypeError("a tracker event carries its tracker")
            return tracking_events(result)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
            raise InvalidWebhook(f"the body is not an EasyPost event we can read: {error}", code="invalid_event") from error
