"""Outbound webhooks to the storefront: the outbox, delivered at least once by the worker,
signed like Stripe's (``Returns-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``), with
exponential backoff for up to a day, every attempt logged.

The endpoint's URL is checked when it is saved and again at every delivery (``service.targets``):
the delivery resolves the name once, checks every address and connects to those only. Saving
an endpoint keeps its secret; ``rotate_secret`` makes a new one, and the one before it keeps
signing next to it for a grace period (``Returns-Signature: t=…,v1=<new>,v1=<previous>``)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
import structlog

from domain.errors import InvalidRequest
from service.dto import (
    DeliveryList,
    DeliveryView,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointView,
)
from service.ids import new_id
from service.metrics import WEBHOOK_FAILURES
from service.ports import (
    Database,
    NotFound,
    OutboxMessage,
    Resolver,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookSender,
    WebhookSendError,
)
from service.targets import TargetRefused, checked_addresses, parse_target

log = structlog.get_logger()

SIGNATURE_HEADER = "Returns-Signature"


def sign(secret: str, body: bytes, timestamp: int, *previous: str) -> str:
    """``t=<unix>,v1=<hex>``, with one more ``v1=`` per previous secret still in its grace period."""
    digests = (hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest() for key in (secret, *previous))
    return f"t={timestamp}," + ",".join(f"v1={digest}" for digest in digests)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Notifications:
    def __init__(
        self,
        db: Database,
        sender: WebhookSender,
        clock: Callable[[], datetime],
        *,
        lease: timedelta = timedelta(seconds=60),
        first_backoff: timedelta = timedelta(seconds=5),
        max_backoff: timedelta = timedelta(hours=1),
        give_up_after: timedelta = timedelta(hours=24),
        allow_internal_targets: bool = False,
        resolver: Resolver,
        secret_grace: timedelta = timedelta(hours=24),
    ) -> None:
        self.db = db
        self.allow_internal_targets = allow_internal_targets
        self.resolver = resolver
        self.secret_grace = secret_grace
        self.sender = sender
        self.clock = clock
        self.lease = lease
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after

    # ----------------------------------------------------------------- the admin's side

    async def put_endpoint(self, merchant_id: str, body: WebhookEndpointIn) -> WebhookEndpointView:
        """Set the merchant's endpoint. A new endpoint gets a secret (``body.secret``, or one made
        here), shown once in the answer; an existing one keeps its secret (rotate it instead)."""
        try:
            target = parse_target(body.url)
            await checked_addresses(target, self.resolver, allow_internal=self.allow_internal_targets)
        except TargetRefused as exc:
            raise InvalidRequest(
                "webhooks go to the storefront's public address", [{"field": "url", "message": str(exc)}]
            ) from None
        async with self.db.transaction() as repos:
            current = await repos.webhook_endpoint(merchant_id)
            if current is not None and body.secret is not None and body.secret != current.secret:
                raise InvalidRequest(
                    "an endpoint's secret changes only by rotating it",
                    [{"field": "secret", "message": "use POST /admin/v1/webhook-endpoints/rotate-secret"}],
                )
            endpoint = WebhookEndpoint(
                id=current.id if current else new_id("we"),
                url=target.url,
                secret=body.secret or new_secret(),
                enabled=body.enabled,
                created_at=self.clock(),
            )
            saved = await repos.put_webhook_endpoint(merchant_id, endpoint, self.clock())
        return self._view(saved, show_secret=current is None)

    async def rotate_secret(self, merchant_id: str) -> WebhookEndpointView:
        """A new secret, shown once; the one it replaces keeps signing for ``secret_grace``."""
        now = self.clock()
        async with self.db.transaction() as repos:
            rotated = await repos.rotate_webhook_secret(merchant_id, new_secret(), now + self.secret_grace, now)
        if rotated is None:
            raise NotFound("no webhook endpoint to rotate the secret of")
        return self._view(rotated, show_secret=True)

    async def endpoints(self, merchant_id: str) -> WebhookEndpointList:
        async with self.db.transaction() as repos:
            endpoint = await repos.webhook_endpoint(merchant_id)
        return WebhookEndpointList(items=[self._view(endpoint)] if endpoint else [])

    def _previous_secrets(self, endpoint: WebhookEndpoint) -> tuple[str, ...]:
        """The previous secret while its grace period runs."""
        expires = endpoint.previous_secret_expires_at
        if endpoint.previous_secret and expires and self.clock() < expires:
            return (endpoint.previous_secret,)
        return ()

    def _view(self, endpoint: WebhookEndpoint, *, show_secret: bool = False) -> WebhookEndpointView:
        return WebhookEndpointView(
            id=endpoint.id,
            url=endpoint.url,
            enabled=endpoint.enabled,
            created_at=endpoint.created_at,
            secret=endpoint.secret if show_secret else None,
            previous_secret_expires_at=endpoint.previous_secret_expires_at if self._previous_secrets(endpoint) else None,
        )

    async def deliveries(self, merchant_id: str, limit: int, cursor: str | None) -> DeliveryList:
        async with self.db.transaction() as repos:
            page = await repos.list_deliveries(merchant_id, limit, cursor)
        return DeliveryList(
            items=[DeliveryView(**msgspec.structs.asdict(delivery)) for delivery in page.items],
            next_cursor=page.next_cursor,
        )

    # ----------------------------------------------------------------- the worker's side

    async def deliver_due(self, limit: int = 50) -> int:
        """Deliver due outbox messages; answers how many were claimed."""
        async with self.db.transaction() as repos:
            messages = await repos.claim_due_outbox(self.clock(), self.lease, limit)
            endpoints = {m: await repos.webhook_endpoint(m) for m in {message.merchant_id for message in messages}}
        for message in messages:
            await self._deliver(message, endpoints[message.merchant_id])
        return len(messages)

    async def _deliver(self, message: OutboxMessage, endpoint: WebhookEndpoint | None) -> None:
        if endpoint is None or not endpoint.enabled:
            async with self.db.transaction() as repos:
                await repos.finish_outbox(message.merchant_id, message.id, "dropped", self.clock())
            return
        body = msgspec.json.encode(
            {"id": f"evt_{message.id}", "type": message.topic, "created_at": message.created_at, "data": message.payload}
        )
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(endpoint.secret, body, int(time.time()), *self._previous_secrets(endpoint)),
            "Returns-Event-Id": f"evt_{message.id}",
        }
        started = time.perf_counter()
        status, error = None, None
        try:
            target = parse_target(endpoint.url)
            addresses = await checked_addresses(target, self.resolver, allow_internal=self.allow_internal_targets)
            status = await self.sender.send(target.url, addresses, body, headers)
        except TargetRefused as exc:
            error = f"not sent: {exc}"[:500]
        except WebhookSendError as exc:
            error = str(exc)[:500]
        now = self.clock()
        delivered = status is not None and 200 <= status < 300
        async with self.db.transaction() as repos:
            await repos.log_delivery(
                message.merchant_id,
                WebhookDelivery(
                    event_id=message.id,
                    endpoint_id=endpoint.id,
                    topic=message.topic,
                    attempt=message.attempts,
                    status_code=status,
                    error=error if error else (None if delivered else f"HTTP {status}"),
                    duration_ms=round((time.perf_counter() - started) * 1000),
                    at=now,
                ),
            )
            if delivered:
                await repos.finish_outbox(message.merchant_id, message.id, "delivered", now)
            elif now - message.created_at >= self.give_up_after:
                WEBHOOK_FAILURES.inc()
                log.warning("webhook_gave_up", outbox_id=message.id, topic=message.topic)
                await repos.finish_outbox(message.merchant_id, message.id, "gave_up", now)
            else:
                WEBHOOK_FAILURES.inc()
                delay = min(self.max_backoff, self.first_backoff * 2 ** (message.attempts - 1))
                await repos.postpone_outbox(message.merchant_id, message.id, now + delay)
