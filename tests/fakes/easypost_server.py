"""An EasyPost-compatible fake API server for the tests, driven through the real ``easypost`` SDK
(``EasyPostClient(api_key, api_base=fake.api_base)``), so the adapter's requests and error handling
are the ones production runs. It serves what the carrier adapter calls, in EasyPost's shapes:

- ``POST /v2/shipments`` (rates from ``fake.rates``), ``GET /v2/shipments/{id or reference}``;
- ``POST /v2/shipments/{id}/buy``: a second buy is EasyPost's 422 ``SHIPMENT.POSTAGE.EXISTS``;
  every label actually bought is counted in ``fake.purchases``;
- ``GET /v2/shipments/{id}/label?file_format=PDF`` (the label conversion), ``POST
  /v2/shipments/{id}/forms`` (``label_qr_code``, for USPS only), ``POST /v2/shipments/{id}/refund``
  (refused once the parcel was scanned in transit);
- ``POST /v2/trackers`` (an existing tracker for the same code is answered again), ``GET
  /v2/trackers?tracking_code=…``, ``GET /v2/trackers/{id}``;
- the label files themselves (``/files/…``): a real PNG and a real PDF drawn with Pillow.

``scan`` adds a scan to a parcel's tracker and answers the ``tracker.updated`` event EasyPost would
send; ``signed`` signs an event body as EasyPost does (``X-Hmac-Signature``). Faults on demand:
error statuses, slow answers, connections closed without an answer (before or after the request
is carried out: a buy whose answer is lost).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import json
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from PIL import Image, ImageDraw

from tests.fakes.http import FakeHandler, FakeService

Answer = tuple[int, dict[str, Any]]
LABEL_DATE = time.gmtime(1_767_225_600)  # 2026-01-01: a label's PDF is dated, the same for every copy
DEFAULT_RATES = [  # carrier, service, rate (EasyPost's decimal string), currency, delivery days
    ("USPS", "Priority", "7.29", "USD", 2),
    ("UPS", "Ground", "11.10", "USD", 5),
]


@dataclass(frozen=True)
class Fault:
    kind: str  # "status" | "drop" | "delay"
    status: int = 503
    after_commit: bool = False
    seconds: float = 0.0
    on: str | None = None  # only a request whose path ends so ("/buy"); None: the next request


class FakeEasyPost(FakeService):
    """The fake's state and its HTTP server; a context manager that starts and stops it."""

    def __init__(self, rates: list[tuple[str, str, str, str, int | None]] | None = None) -> None:
        super().__init__(_Handler, "fake EasyPost")
        self.rates = list(rates or DEFAULT_RATES)
        self.shipments: dict[str, dict[str, Any]] = {}
        self.trackers: dict[str, dict[str, Any]] = {}
        self.purchases: list[tuple[str, str]] = []  # (shipment id, rate id): every label paid for
        self.refunds: list[str] = []  # shipment ids whose postage refund was accepted
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._ids = itertools.count(1)

    @property
    def api_base(self) -> str:
        """What ``EasyPostClient(api_base=…)`` and ``RETURNS_EASYPOST_API_BASE`` take."""
        return f"{self.url}/v2"

    # ----------------------------------------------------------------- faults

    def fail_next(self, count: int = 1, *, status: int = 503, on: str | None = None) -> None:
        """Answer the next ``count`` API requests (whose path ends with ``on``, when given) with
        ``status`` and EasyPost's error body, doing nothing."""
        self._add_faults(count, Fault("status", status=status, on=on))

    def drop_connection_next(self, count: int = 1, *, after_commit: bool = False, on: str | None = None) -> None:
        """Close the next ``count`` connections without answering; with ``after_commit`` the request
        is carried out first (a label bought whose answer is lost)."""
        self._add_faults(count, Fault("drop", after_commit=after_commit, on=on))

    def delay_next(self, seconds: float, count: int = 1, *, after_commit: bool = False, on: str | None = None) -> None:
        """Hold the next ``count`` API requests for ``seconds`` before carrying them out, or with
        ``after_commit`` after carrying them out and before answering (a client killed meanwhile
        never hears of what was done)."""
        self._add_faults(count, Fault("delay", seconds=seconds, after_commit=after_commit, on=on))

    # ----------------------------------------------------------------- tracking

    def scan(
        self, tracking_code: str, status: str, *, at: datetime | None = None, message: str | None = None, carrier: str = "USPS"
    ) -> dict[str, Any]:
        """A scan of the parcel: it joins its tracker's history (a tracker is made for a code no
        label of ours has) and the ``tracker.updated`` event EasyPost would send is answered."""
        at = at or datetime.now(UTC)
        with self.lock:
            tracker = self._tracker_for(tracking_code, carrier)
            previous = tracker["status"]
            tracker["tracking_details"].append(
                {
                    "object": "TrackingDetail",
                    "message": message or status.replace("_", " ").capitalize(),
                    "description": None,
                    "status": status,
                    "status_detail": "status_update",
                    "datetime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "source": tracker["carrier"],
                    "tracking_location": {
                        "object": "TrackingLocation",
                        "city": None,
                        "state": None,
                        "country": None,
                        "zip": None,
                    },
                }
            )
            tracker["status"], tracker["updated_at"] = status, _now()
            return {
                "id": f"evt_{next(self._ids):012d}",
                "object": "Event",
                "mode": "test",
                "description": "tracker.updated",
                "created_at": _now(),
                "updated_at": _now(),
                "previous_attributes": {"status": previous},
                "pending_urls": [],
                "completed_urls": [],
                "result": json.loads(json.dumps(tracker)),
            }

    def _tracker_for(self, tracking_code: str, carrier: str, shipment_id: str | None = None) -> dict[str, Any]:
        for tracker in self.trackers.values():
            if tracker["tracking_code"] == tracking_code:
                return tracker
        tracker = {
            "id": f"trk_{next(self._ids):012d}",
            "object": "Tracker",
            "mode": "test",
            "tracking_code": tracking_code,
            "status": "unknown",
            "status_detail": "unknown",
            "carrier": carrier,
            "shipment_id": shipment_id,
            "created_at": _now(),
            "updated_at": _now(),
            "tracking_details": [],
            "public_url": f"{self.url}/track/{tracking_code}",
        }
        self.trackers[tracker["id"]] = tracker
        return tracker

    # ----------------------------------------------------------------- the API

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> Answer:
        """One request, faults aside, carried out under the lock: requests are atomic."""
        parts = [part for part in path.split("/") if part][1:]  # after "v2"
        with self.lock:
            if parts == ["shipments"] and method == "POST":
                return self._create_shipment(body.get("shipment") or {})
            if parts == ["trackers"] and method == "POST":
                fields = body.get("tracker") or {}
                if not fields.get("tracking_code"):
                    return _error(422, "TRACKER.TRACKING_CODE.REQUIRED", "Missing required parameter: tracking_code")
                return 200, self._tracker_for(fields["tracking_code"], fields.get("carrier") or "USPS")
            if parts == ["trackers"] and method == "GET":
                listed = [
                    t
                    for t in self.trackers.values()
                    if t["tracking_code"] == query.get("tracking_code") and query.get("carrier", t["carrier"]) == t["carrier"]
                ]
                return 200, {"trackers": listed, "has_more": False}
            if len(parts) == 2 and parts[0] == "trackers" and method == "GET":
                tracker = self.trackers.get(parts[1])
                return (200, tracker) if tracker else _error(404, "NOT_FOUND", "The requested resource could not be found.")
            if len(parts) >= 2 and parts[0] == "shipments":
                shipment = self._shipment(parts[1])
                if shipment is None:
                    return _error(404, "NOT_FOUND", "The requested resource could not be found.")
                action = (method, parts[2] if len(parts) == 3 else None)
                actions = {
                    ("GET", None): lambda: (200, shipment),
                    ("POST", "buy"): lambda: self._buy(shipment, (body.get("rate") or {}).get("id")),
                    ("GET", "label"): lambda: self._convert(shipment, query.get("file_format", "")),
                    ("POST", "forms"): lambda: self._form(shipment, (body.get("form") or {}).get("type")),
                    ("POST", "refund"): lambda: self._refund(shipment),
                }
                if action in actions:
                    return actions[action]()
        return _error(404, "NOT_FOUND", f"Unrecognized request URL ({method}: {path}).")

    def _shipment(self, key: str) -> dict[str, Any] | None:
        """By id, or by reference as EasyPost allows."""
        return self.shipments.get(key) or next((s for s in self.shipments.values() if s["reference"] == key), None)

    def _create_shipment(self, fields: dict[str, Any]) -> Answer:
        parcel = fields.get("parcel") or {}
        for name in ("to_address", "from_address"):
            if not isinstance(fields.get(name), dict) or not fields[name].get("street1"):
                return _error(422, "SHIPMENT.INVALID_PARAMS", f"Missing required parameter: {name}")
        if not isinstance(parcel.get("weight"), int | float) or parcel["weight"] <= 0:
            return _error(422, "PARCEL.WEIGHT.INVALID", "Parcel weight must be greater than zero.")
        shipment_id = f"shp_{next(self._ids):012d}"
        rates = [
            {
                "id": f"rate_{next(self._ids):012d}",
                "object": "Rate",
                "mode": "test",
                "shipment_id": shipment_id,
                "carrier": carrier,
                "service": service,
                "rate": rate,
                "currency": currency,
                "retail_rate": rate,
                "retail_currency": currency,
                "list_rate": rate,
                "list_currency": currency,
                "delivery_days": days,
                "carrier_account_id": f"ca_{carrier.lower()}",
            }
            for carrier, service, rate, currency, days in self.rates
        ]
        shipment = {
            "id": shipment_id,
            "object": "Shipment",
            "mode": "test",
            "reference": fields.get("reference"),
            "status": "unknown",
            "created_at": _now(),
            "updated_at": _now(),
            "to_address": {"object": "Address", **fields["to_address"]},
            "from_address": {"object": "Address", **fields["from_address"]},
            "parcel": {"id": f"prcl_{next(self._ids):012d}", "object": "Parcel", **parcel},
            "rates": rates,
            "selected_rate": None,
            "postage_label": None,
            "tracking_code": None,
            "tracker": None,
            "forms": [],
            "refund_status": None,
            "messages": [],
            "fees": [],
        }
        self.shipments[shipment_id] = shipment
        return 200, shipment

    def _buy(self, shipment: dict[str, Any], rate_id: str | None) -> Answer:
        if shipment["postage_label"] is not None:
            return _error(422, "SHIPMENT.POSTAGE.EXISTS", "Shipment already has postage.")
        rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
        if rate is None:
            return _error(422, "SHIPMENT.RATE.INVALID", "The requested rate does not belong to this shipment.")
        tracking_code = f"EZ{next(self._ids):010d}"
        self.purchases.append((shipment["id"], rate_id))
        shipment.update(
            selected_rate=rate,
            tracking_code=tracking_code,
            status="unknown",
            updated_at=_now(),
            postage_label={
                "id": f"pl_{next(self._ids):012d}",
                "object": "PostageLabel",
                "label_file_type": "image/png",
                "label_size": "4x6",
                "label_resolution": 300,
                "label_date": _now(),
                "label_url": f"{self.url}/files/{shipment['id']}.png",
                "label_pdf_url": None,
                "label_zpl_url": None,
                "label_epl2_url": None,
            },
        )
        shipment["tracker"] = self._tracker_for(tracking_code, rate["carrier"], shipment["id"])
        self.scan(tracking_code, "pre_transit", message="Shipping label created", carrier=rate["carrier"])
        return 200, shipment

    def _convert(self, shipment: dict[str, Any], file_format: str) -> Answer:
        label = shipment["postage_label"]
        if label is None:
            return _error(422, "SHIPMENT.POSTAGE.REQUIRED", "The shipment has no postage label to convert.")
        if file_format.upper() not in ("PDF", "ZPL", "EPL2"):
            return _error(422, "SHIPMENT.LABEL.FORMAT_INVALID", f"Invalid file_format: {file_format}")
        extension = file_format.lower()
        label[f"label_{extension}_url"] = f"{self.url}/files/{shipment['id']}.{extension}"
        return 200, shipment

    def _form(self, shipment: dict[str, Any], form_type: str | None) -> Answer:
        if shipment["postage_label"] is None:
            return _error(422, "SHIPMENT.POSTAGE.REQUIRED", "Buy the shipment before creating forms.")
        if form_type != "label_qr_code" or shipment["selected_rate"]["carrier"] != "USPS":
            return _error(422, "FORM.TYPE.UNSUPPORTED", f"{form_type} is not available for this carrier.")
        shipment["forms"].append(
            {
                "id": f"form_{next(self._ids):012d}",
                "object": "Form",
                "mode": "test",
                "form_type": form_type,
                "form_url": f"{self.url}/files/{shipment['id']}-qr.png",
                "submitted_electronically": None,
                "created_at": _now(),
                "updated_at": _now(),
            }
        )
        return 200, shipment

    def _refund(self, shipment: dict[str, Any]) -> Answer:
        if shipment["postage_label"] is None:
            return _error(422, "SHIPMENT.REFUND.NOT_PURCHASED", "The shipment has no postage to refund.")
        if shipment["refund_status"] is not None:
            return _error(422, "SHIPMENT.REFUND.ALREADY_REQUESTED", "A refund was already requested.")
        scanned = {d["status"] for d in self.trackers[shipment["tracker"]["id"]]["tracking_details"]}
        if scanned - {"pre_transit", "unknown"}:
            return _error(422, "SHIPMENT.REFUND.TOO_LATE", "The parcel is in the carrier's hands.")
        shipment["refund_status"] = "submitted"
        self.refunds.append(shipment["id"])
        return 200, shipment

    # ----------------------------------------------------------------- label files

    def _file(self, name: str) -> tuple[bytes, str] | None:
        stem, _, extension = name.rpartition(".")
        shipment_id = stem.removesuffix("-qr")
        with self.lock:
            shipment = self.shipments.get(shipment_id)
            if shipment is None or shipment["postage_label"] is None:
                return None
            text = f"{shipment['selected_rate']['carrier']} {shipment['tracking_code']}"
        if stem.endswith("-qr") and extension == "png":
            return _drawn(f"QR {text}", "PNG", (240, 240)), "image/png"
        if extension == "png":
            return _drawn(text, "PNG", (400, 600)), "image/png"
        if extension == "pdf":
            return _drawn(text, "PDF", (400, 600)), "application/pdf"
        if extension in ("zpl", "epl2"):
            return f"^XA^FD{text}^FS^XZ".encode(), "text/plain"
        return None


def _drawn(text: str, kind: str, size: tuple[int, int]) -> bytes:
    """The same file for the same label (a PDF's dates fixed), as EasyPost's stored files are."""
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((20, 20), text, fill="black")
    out = io.BytesIO()
    dated = {"creationDate": LABEL_DATE, "modDate": LABEL_DATE} if kind == "PDF" else {}
    image.save(out, format=kind, **dated)
    return out.getvalue()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: str, message: str) -> Answer:
    """EasyPost's error body: ``{"error": {"code", "message", "errors"}}``."""
    return status, {"error": {"code": code, "message": message, "errors": []}}


class _Handler(FakeHandler):
    def _serve(self, method: str) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake.requests.append((method, split.path))
        if split.path.startswith("/files/") and method == "GET":
            found = fake._file(split.path.removeprefix("/files/"))
            self._send(200, *found) if found else self._send(404, b"not found", "text/plain")
            return
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            self._json(*_error(401, "APIKEY.REQUIRED", "No API key provided."))
            return
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._json(*_error(400, "BAD_REQUEST", "The request body is not JSON."))
            return
        fault = fake._take_fault(split.path)
        if fault is not None and fault.kind == "delay" and not fault.after_commit:
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            self._json(
                *_error(fault.status, "INTERNAL_SERVER_ERROR" if fault.status >= 500 else "RATE_LIMITED", "Simulated failure.")
            )
            return
        if fault is not None and fault.kind == "drop" and not fault.after_commit:
            self._drop()
            return
        answer = fake._route(method, split.path, dict(parse_qsl(split.query)), body)
        if fault is not None and fault.kind == "drop":
            self._drop()
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        self._json(*answer)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Ep-Request-Uuid", f"fake-{time.monotonic_ns()}")
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def fake_easypost(rates: list[tuple[str, str, str, str, int | None]] | None = None) -> Iterator[FakeEasyPost]:
    """A started fake, stopped on exit."""
    with FakeEasyPost(rates) as fake:
        yield fake


def signature(payload: bytes, secret: str) -> str:
    """The ``X-Hmac-Signature`` value EasyPost sends: ``hmac-sha256-hex=`` and the HMAC-SHA256 of the
    raw body under the webhook secret (NFKD-normalised, as the SDK's ``validate_webhook`` reads it)."""
    key = unicodedata.normalize("NFKD", secret).encode()
    return "hmac-sha256-hex=" + hmac.new(key, payload, hashlib.sha256).hexdigest()


def signed(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """An event's body as EasyPost sends it, with its headers."""
    payload = json.dumps(event).encode()
    return payload, {"Content-Type": "application/json", "X-Hmac-Signature": signature(payload, secret)}
