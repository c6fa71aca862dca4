"""The simulated payment gateway: the default when no ``STRIPE_API_KEY`` is set, so a laptop, a
demo or a test sees real refund life cycles without a network.

It is stateful and deterministic, and follows Stripe's rules where they matter:
- the same idempotency key answers the first refund again; the same key with other parameters
  is refused (``idempotency_error``);
- a payment intent registered with ``add_payment(reference, amount)`` can't be refunded past
  its amount (``amount_too_large``); unregistered references are taken as large enough;
- scripted outcomes by amount, like Stripe's test cards: an amount ending in ``13`` fails
  (``declined``), one ending in ``17`` requires action; everything else succeeds, at once or,
  with ``settle_after`` seconds set, after staying ``pending`` that long (seen on polling);
- ``fail_next(n, retryable=...)`` makes the next ``n`` calls fail as if the gateway were down
  (retryable) or refusing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import msgspec

from service.ports import GatewayError, GatewayRefund

FAILING_SUFFIX = 13
REQUIRES_ACTION_SUFFIX = 17


class _Stored(msgspec.Struct):
    refund: GatewayRefund
    params: tuple[str, int, str, str | None]
    settles_at: datetime | None


class SimulatedGateway:
    name = "simulated"

    def __init__(
        self,
        *,
        settle_after: float = 0.0,
        latency: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settle_after = timedelta(seconds=settle_after)
        self.latency = latency
        self.clock = clock
        self.payments: dict[str, int] = {}
        self.refunds: dict[str, _Stored] = {}
        self.by_key: dict[str, str] = {}
        self.calls = 0
        self._failures: list[GatewayError] = []
        self._ids = itertools.count(1)

    def add_payment(self, reference: str, amount: int) -> None:
        self.payments[reference] = amount

    def fail_next(self, count: int = 1, *, retryable: bool = True) -> None:
        code = "api_error" if retryable else "card_declined"
        self._failures += [GatewayError("simulated gateway failure", code=code, retryable=retryable)] * count

    def set_status(self, gateway_refund_id: str, status: str, failure_reason: str | None = None) -> None:
        """Change a refund as the gateway's dashboard would (for webhook and polling tests)."""
        stored = self.refunds[gateway_refund_id]
        stored.refund = msgspec.structs.replace(stored.refund, status=status, failure_reason=failure_reason)
        stored.settles_at = None

    async def create_refund(
        self,
        *,
        payment_reference: str,
        amount: int,
        currency: str,
        refund_id: str,
        idempotency_key: str,
        account: str | None = None,
    ) -> GatewayRefund:
        await self._answer()
        params = (payment_reference, amount, currency, account)
        if idempotency_key in self.by_key:
            stored = self.refunds[self.by_key[idempotency_key]]
            if stored.params != params:
                raise GatewayError("idempotency key reused with other parameters", code="idempotency_error")
            return self._current(stored)
        refunded = sum(
            s.refund.amount for s in self.refunds.values()
            if s.params[0] == payment_reference and s.refund.status not in ("failed", "canceled")
        )
        limit = self.payments.get(payment_reference)
        if limit is not None and refunded + amount > limit:
            raise GatewayError(f"refund exceeds the {limit - refunded} left on {payment_reference}", code="amount_too_large")
        now = self.clock()
        status, failure = "succeeded", None
        if amount % 100 == FAILING_SUFFIX:
            status, failure = "failed", "declined"
        elif amount % 100 == REQUIRES_ACTION_SUFFIX:
            status = "requires_action"
        elif self.settle_after:
            status = "pending"
        refund = GatewayRefund(
            gateway_refund_id=f"sim_re_{next(self._ids):06d}",
            status=status,
            amount=amount,
            currency=currency,
            payment_reference=payment_reference,
            created_at=now,
            refund_id=refund_id,
            failure_reason=failure,
        )
        settles_at = now + self.settle_after if status == "pending" else None
        self.refunds[refund.gateway_refund_id] = _Stored(refund, params, settles_at)
        self.by_key[idempotency_key] = refund.gateway_refund_id
        return refund

    async def get_refund(self, gateway_refund_id: str, *, account: str | None = None) -> GatewayRefund:
        await self._answer()
        stored = self.refunds.get(gateway_refund_id)
        if stored is None:
            raise GatewayError(f"no refund {gateway_refund_id}", code="resource_missing")
        return self._current(stored)

    async def list_refunds(
        self, *, created_from: datetime, created_to: datetime, account: str | None = None
    ) -> AsyncIterator[GatewayRefund]:
        for stored in list(self.refunds.values()):
            if created_from <= stored.refund.created_at <= created_to and stored.params[3] == account:
                yield self._current(stored)

    def _current(self, stored: _Stored) -> GatewayRefund:
        if stored.settles_at is not None and self.clock() >= stored.settles_at:
            stored.refund = msgspec.structs.replace(stored.refund, status="succeeded")
            stored.settles_at = None
        return stored.refund

    async def _answer(self) -> None:
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._failures:
            raise self._failures.pop(0)
