"""Stripe webhook events: the ``Stripe-Signature: t=…,v1=…`` scheme verified on the raw body
(HMAC-SHA256 of ``"{t}.{body}"`` with the endpoint secret, within a tolerance), then reduced to
the refunds the event reports.

Every event Stripe sends about a refund is read: ``refund.created``, ``refund.updated``,
``refund.failed`` and ``charge.refund.updated`` carry the refund; ``charge.refunded`` carries the
charge, whose ``refunds`` list Stripe leaves out since API version 2022-11-15 (and cut at ten,
``has_more``, before): such a charge is named in ``unlisted_charges`` for its refunds to be asked
of Stripe. Other events report nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

from service.ports import GatewayEvent, GatewayRefund, InvalidWebhook

REFUND_EVENTS = {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}  # a refund
CHARGE_EVENTS = {"charge.refunded"}  # a charge


class StripeWebhookVerifier:
    def __init__(self, secret: str, tolerance_seconds: int = 300) -> None:
        self.secret = secret.encode()
        self.tolerance = tolerance_seconds

    def verify(self, payload: bytes, signature_header: str | None, now: datetime) -> GatewayEvent:
        timestamp, signatures = _parse_header(signature_header)
        expected = hmac.new(self.secret, f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            raise InvalidWebhook("no v1 signature matches this endpoint's secret")
        if abs(now.timestamp() - timestamp) > self.tolerance:
            raise InvalidWebhook(f"the signature's timestamp is more than {self.tolerance} s away")
        try:
            event = json.loads(payload)
            event_id, event_type, obj = event["id"], event["type"], event["data"]["object"]
            account = event.get("account")
            if not (isinstance(event_id, str) and event_id and isinstance(event_type, str) and isinstance(obj, dict)):
                raise ValueError("an event has a string id and type and an object")
            if account is not None and not isinstance(account, str):
                raise ValueError("an event's account is a string")
            refunds, unlisted = _refunds_of(event_type, obj)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:  # deep JSON too
            raise InvalidWebhook(f"the body is not a Stripe event we can read: {exc}", code="invalid_event") from exc
        # Connect events name the connected account they come from; the platform's own name none
        return GatewayEvent(id=event_id, type=event_type, refunds=refunds, account=account, unlisted_charges=unlisted)


def _parse_header(header: str | None) -> tuple[int, list[str]]:
    if not header:
        raise InvalidWebhook("no Stripe-Signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidWebhook("the Stripe-Signature header has no t= or no v1=")
    return timestamp, signatures


def _refunds_of(event_type: str, obj: dict[str, Any]) -> tuple[list[GatewayRefund], list[str]]:
    """The refunds the event's object lists, and the charges whose refunds it does not list."""
    if event_type in REFUND_EVENTS and obj.get("object") == "refund":
        return [refund_from_stripe(obj)], []
    if event_type in CHARGE_EVENTS and obj.get("object") == "charge":
        listed = obj.get("refunds")
        if listed is None or listed.get("has_more"):
            charge = obj.get("id")
            if not (isinstance(charge, str) and charge):
                raise ValueError("a charge without an id")
            return [], [charge]
        return [refund_from_stripe(refund) for refund in listed.get("data") or [] if refund.get("object") == "refund"], []
    return [], []


STATUSES = {"pending", "succeeded", "failed", "requires_action", "canceled"}


def refund_from_stripe(obj: dict[str, Any]) -> GatewayRefund:
    """A Stripe refund object (as JSON, from the API or an event) in the port's terms; a
    ``ValueError`` when it lacks what a refund always has (an id, an integer amount, a currency)."""
    status = obj.get("status")
    refund_id, amount, currency = obj.get("id"), obj.get("amount"), obj.get("currency")
    if not (isinstance(refund_id, str) and refund_id):
        raise ValueError("a refund without an id")
    if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(currency, str) or not currency:
        raise ValueError(f"refund {refund_id} has no integer amount or no currency")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict) or not isinstance(metadata.get("refund_id", ""), str):
        raise ValueError(f"refund {refund_id} has metadata that is not an object of strings")
    created = obj.get("created") or 0
    if not isinstance(created, int) or not 0 <= created < 2**37:  # seconds: until the year 6325
        raise ValueError(f"refund {refund_id} has no usable creation time")
    return GatewayRefund(
        gateway_refund_id=refund_id,
        status=status if status in STATUSES else "pending",
        amount=amount,
        currency=currency.upper(),
        payment_reference=str(obj.get("payment_intent") or obj.get("charge") or ""),
        created_at=datetime.fromtimestamp(created, UTC),
        refund_id=metadata.get("refund_id"),
        failure_reason=obj.get("failure_reason"),
    )
