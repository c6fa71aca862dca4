"""Webhooks from the payment gateway: verified on the raw body, applied once per event id."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import Request, Response, post

from service.api.problems import problem
from service.container import Services
from service.ports import InvalidWebhook

log = structlog.get_logger()


@post("/webhooks/stripe", operation_id="stripeWebhook", tags=["webhooks"], status_code=200)
async def stripe_webhook(request: Request[Any, Any, Any], services: Services) -> Response[Any]:
    """Stripe's refund events (signed with ``Stripe-Signature``): ``refund.created``,
    ``refund.updated``, ``refund.failed``, ``charge.refund.updated`` and ``charge.refunded`` (a
    charge that does not list its refunds has them fetched from Stripe). A repeat answers 200 and
    changes nothing; an event about a refund we do not know, or that does not match ours (its
    amount, currency or account), changes nothing either and is logged and counted. A bad
    signature answers 400 ``invalid_signature``, a signed body we can't read 400 ``invalid_event``;
    when Stripe can't list a charge's refunds, 503 ``gateway_unavailable`` or 502 ``gateway_error``
    and the event is not recorded, so Stripe's redelivery applies it."""
    verifier = services.webhook_verifier
    if verifier is None:
        return problem(503, "unavailable", "STRIPE_WEBHOOK_SECRET is not configured")
    try:
        event = verifier.verify(await request.body(), request.headers.get("stripe-signature"), services.cases.clock())
    except InvalidWebhook as exc:
        log.warning("webhook_refused", code=exc.code, reason=str(exc))
        return problem(400, exc.code, str(exc))
    applied = await services.refunds.apply_gateway_event(event)
    return Response({"received": True, "duplicate": not applied}, status_code=200)
