"""The simulated payment gateway: the default when no ``STRIPE_API_KEY`` is set, so a laptop, a
demo or a test sees real refund life cycles without a network.

It keeps its refunds in memory, per account, and is deterministic: the same calls give the same
answers, and time is read from an injectable ``clock``. It follows Stripe where it matters:

- idempotency, per account: the same key answers the first refund again (in its current state);
  the same key with other parameters is refused, ``idempotency_error``, not retryable;
- payments are unlimited unless registered with ``add_payment(reference, amount)``; then refunds
  past what is left are refused, ``amount_too_large`` (failed and canceled refunds give theirs
  back); an amount under 1 is ``parameter_invalid_integer``;
- outcomes by amount, like Stripe's test cards: an amount ending in ``13`` fails (``declined``),
  one ending in ``17`` requires action, any other succeeds;
- ``settle_after`` seconds: refunds stay ``pending`` that long, then reach their outcome (seen on
  the next read, as when polling); ``requires_action`` is immediate. Off (0) by default;
- ``latency`` seconds are awaited on every call;
- ``fail_next(n, retryable=...)`` makes the next ``n`` calls fail without doing anything, as a
  gateway that is down (retryable) or refusing (not retryable) would;
- ``set_status`` changes a refund later, as the gateway's dashboard or a bank would.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import msgspec

from service.ports import GatewayError, GatewayRefund

FAILING_SUFFIX = 13  # amount % 100
REQUIRES_ACTION_SUFFIX = 17


class RefundParams(NamedTuple):
    """What a refund was asked with: a key reused with other parameters is refused."""

    payment_reference: str
    amount: int
    currency: str
    account: str | None


class SimulatedRefund(msgspec.Struct):
    """A refund as the simulated gateway keeps it (tests read ``refund`` and ``params``)."""

    refund: GatewayRefund  # as last seen
    params: RefundParams
    outcome: tuple[str, str | None]  # (status, failure reason) once settled
    settles_at: datetime | None  # while pending


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
        self.refunds: dict[str, SimulatedRefund] = {}  # by gateway refund id
        self._payments: dict[tuple[str | None, str], int] = {}  # (account, reference) → amount
        self._by_key: dict[tuple[str | None, str], str] = {}  # (account, idempotency key) → refund id
        self._failures: list[GatewayError] = []
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- scripting

    def add_payment(self, reference: str, amount: int, *, account: str | None = None) -> None:
        """A captured payment of ``amount``: refunds on it may not exceed it."""
        self._payments[(account, reference)] = amount

    def fail_next(self, count: int = 1, *, retryable: bool = True, code: str | None = None) -> None:
        """The next ``count`` calls fail, doing nothing: the gateway is down, or refusing."""
        code = code or ("api_error" if retryable else "card_declined")
        self._failures += [GatewayError("simulated gateway failure", code=code, retryable=retryable)] * count

    def set_status(self, gateway_refund_id: str, status: str, failure_reason: str | None = None) -> None:
        """Change a refund later, as the gateway's dashboard or a bank would; ends any settling."""
        stored = self.refunds[gateway_refund_id]
        stored.refund = msgspec.structs.replace(stored.refund, status=status, failure_reason=failure_reason)
        stored.settles_at = None

    # ----------------------------------------------------------------- the port

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
        params = RefundParams(payment_reference, amount, currency.upper(), account)
        earlier = self._by_key.get((account, idempotency_key))
        if earlier is not None:
            stored = self.refunds[earlier]
            if stored.params != params:
                raise GatewayError(
                    f"idempotency key {idempotency_key!r} was first used with other parameters", code="idempotency_error"
                )
            return self._current(stored)
        if amount < 1:
            raise GatewayError(f"invalid refund amount {amount}", code="parameter_invalid_integer")
        captured = self._payments.get((account, payment_reference))
        if captured is not None:
            left = captured - sum(
                s.refund.amount for s in self.refunds.values()
                if s.params.payment_reference == payment_reference and s.params.account == account
                and s.refund.status not in ("failed", "canceled")
            )
            if amount > left:
                message = f"refund of {amount} exceeds the {left} left on {payment_reference}"
                raise GatewayError(message, code="amount_too_large")
        now = self.clock()
        outcome = _outcome(amount)
        pending = self.settle_after > timedelta(0) and outcome[0] != "requires_action"
        status, failure_reason = ("pending", None) if pending else outcome
        refund = GatewayRefund(
            gateway_refund_id=f"sim_re_{next(self._ids):06d}",
            status=status,
            amount=amount,
            currency=params.currency,
            payment_reference=payment_reference,
            created_at=now,
            refund_id=refund_id,
            failure_reason=failure_reason,
        )
        self.refunds[refund.gateway_refund_id] = SimulatedRefund(
            refund, params, outcome, now + self.settle_after if pending else None
        )
        self._by_key[(account, idempotency_key)] = refund.gateway_refund_id
        return refund

    async def get_refund(self, gateway_refund_id: str, *, account: str | None = None) -> GatewayRefund:
        await self._answer()
        stored = self.refunds.get(gateway_refund_id)
        if stored is None or stored.params.account != account:
            raise GatewayError(f"no refund {gateway_refund_id}", code="resource_missing")
        return self._current(stored)

    async def list_refunds(
        self, *, created_from: datetime, created_to: datetime, account: str | None = None
    ) -> AsyncIterator[GatewayRefund]:
        """Refunds created in ``[created_from, created_to)``, newest first, as Stripe lists them."""
        await self._answer()
        listed = [
            s for s in self.refunds.values()
            if s.params.account == account and created_from <= s.refund.created_at < created_to
        ]
        listed.sort(key=lambda s: (s.refund.created_at, s.refund.gateway_refund_id), reverse=True)
        for stored in listed:
            yield self._current(stored)

    # ----------------------------------------------------------------- internals

    def _current(self, stored: SimulatedRefund) -> GatewayRefund:
        if stored.settles_at is not None and self.clock() >= stored.settles_at:
            status, failure_reason = stored.outcome
            stored.refund = msgspec.structs.replace(stored.refund, status=status, failure_reason=failure_reason)
            stored.settles_at = None
        return stored.refund

    async def _answer(self) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self._failures:
            raise self._failures.pop(0)


def _outcome(amount: int) -> tuple[str, str | None]:
    if amount % 100 == FAILING_SUFFIX:
        return "failed", "declined"
    if amount % 100 == REQUIRES_ACTION_SUFFIX:
        return "requires_action", None
    return "succeeded", None
