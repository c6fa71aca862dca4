"""Refunds: created in the transaction that makes money due, sent by workers exactly once, and
moved by what the gateway reports (its answer, its webhooks, or polling).

Exactly once rests on three things: the gateway is called outside any transaction with the
refund's deterministic idempotency key (``rf_…:attempt``), so a retry after a crash gets the
gateway's first answer back; a claimed refund is leased, so a dead worker's refund is claimed
again; and a refund only ever moves forward (``domain.refunds.catch_up``), so a late, repeated
or out-of-order report changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from domain.cases import SYSTEM, Actor, Case, CaseAction, CaseState
from domain.errors import InvalidTransition, RefundExceedsCaptured
from domain.money import to_major
from domain.orders import Order
from domain.refunds import Refund, RefundStatus, catch_up
from service.ids import new_id
from service.metrics import GATEWAY_ERRORS
from service.ports import (
    ClaimedRefund,
    Database,
    GatewayError,
    GatewayRefund,
    NotFound,
    PaymentGateway,
    Repositories,
    VersionConflict,
)

log = structlog.get_logger()
RECORD_ATTEMPTS = 5

# What the gateway says → our status. "pending" at the gateway means it accepted the refund.
_REPORTED = {
    "pending": RefundStatus.SUBMITTED,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "requires_action": RefundStatus.REQUIRES_ACTION,
    "canceled": RefundStatus.CANCELED,
}


class RefundService:
    def __init__(
        self,
        db: Database,
        gateway: PaymentGateway,
        clock: Callable[[], datetime],
        *,
        lease: timedelta = timedelta(minutes=2),
        first_backoff: timedelta = timedelta(seconds=2),
        max_backoff: timedelta = timedelta(minutes=30),
        max_tries: int = 25,
        poll_after: timedelta = timedelta(minutes=5),
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.clock = clock
        self.lease = lease
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.max_tries = max_tries
        self.poll_after = poll_after

    # ----------------------------------------------------------------- creating (in a case's transaction)

    async def open_refund(
        self, repos: Repositories, case: Case, order: Order, amount: int, at: datetime, attempt: int = 1
    ) -> Refund:
        """A new pending refund for ``amount``, refused when it would take the order's refunds
        past what was captured. The caller holds the order row, so two cases can't race here."""
        committed = await repos.committed_refund_amount(case.merchant_id, case.order_id)
        remaining = order.payment.captured_amount - committed
        if amount > remaining:
            raise RefundExceedsCaptured(
                f"a refund of {to_major(amount, order.currency)} {order.currency} exceeds the "
                f"{to_major(max(remaining, 0), order.currency)} {order.currency} left of what was captured",
                amount=amount,
                remaining=max(remaining, 0),
            )
        refund = Refund(
            id=new_id("rf"),
            merchant_id=case.merchant_id,
            case_id=case.id,
            order_id=case.order_id,
            customer_id=case.customer_id,
            amount=amount,
            currency=order.currency,
            status=RefundStatus.PENDING,
            gateway=self.gateway.name,
            payment_reference=order.payment.reference,
            attempt=attempt,
            created_at=at,
            updated_at=at,
            reason=case.items[0].reason if case.items else None,
            gateway_account=await repos.gateway_account(case.merchant_id),
        )
        await repos.add_refund(refund)
        return refund

    async def retry(self, merchant_id: str, refund_id: str, actor: Actor) -> Refund:
        """A failed (or canceled) refund is paid again as a new refund with the next attempt."""
        at = self.clock()
        async with self.db.transaction() as repos:
            failed = await repos.get_refund(merchant_id, refund_id, for_update=True)
            if failed is None:
                raise NotFound(f"no refund {refund_id}")
            if failed.status not in (RefundStatus.FAILED, RefundStatus.CANCELED):
                raise InvalidTransition("refund", str(failed.status), "retry")
            order = await repos.get_order(merchant_id, failed.order_id, for_update=True)
            if order is None:
                raise NotFound(f"no order {failed.order_id}")
            case = await repos.get_case(merchant_id, failed.case_id)
            loaded_version = case.version
            retried = await self.open_refund(repos, case, order, failed.amount, at, attempt=failed.attempt + 1)
            case.record("refund_retried", actor, at, {"failed_refund_id": failed.id, "refund_id": retried.id})
            await repos.save_case(case, loaded_version)
        return retried

    # ----------------------------------------------------------------- the worker

    async def send_due(self, limit: int = 20) -> int:
        """Claim due refunds and send each to the gateway; answers how many were claimed."""
        async with self.db.transaction() as repos:
            claimed = await repos.claim_due_refunds(self.clock(), self.lease, limit)
        for item in claimed:
            await self._send(item)
        return len(claimed)

    async def _send(self, claimed: ClaimedRefund) -> None:
        refund = claimed.refund
        try:
            answer = await self.gateway.create_refund(
                payment_reference=refund.payment_reference,
                amount=refund.amount,
                currency=refund.currency,
                refund_id=refund.id,
                idempotency_key=refund.idempotency_key,
                account=refund.gateway_account,
            )
        except GatewayError as error:
            GATEWAY_ERRORS.labels(self.gateway.name, error.code or "unknown", str(error.retryable).lower()).inc()
            if error.retryable and claimed.tries < self.max_tries:
                delay = min(self.max_backoff, self.first_backoff * 2 ** (claimed.tries - 1))
                log.warning("refund_postponed", refund_id=refund.id, tries=claimed.tries, error=str(error))
                async with self.db.transaction() as repos:
                    await repos.postpone_refund(refund.merchant_id, refund.id, self.clock() + delay, str(error))
                return
            reason = f"{error.code or 'gateway_error'}: {error}"
            log.warning("refund_refused", refund_id=refund.id, reason=reason)
            await self._record(refund.merchant_id, refund.id, RefundStatus.FAILED, None, reason)
            return
        await self.record_answer(refund.merchant_id, refund.id, answer)

    async def record_answer(self, merchant_id: str, refund_id: str, answer: GatewayRefund) -> None:
        await self._record(
            merchant_id, refund_id, _REPORTED.get(answer.status, RefundStatus.SUBMITTED), answer.gateway_refund_id,
            answer.failure_reason,
        )

    async def _record(
        self, merchant_id: str, refund_id: str, reported: RefundStatus, gateway_refund_id: str | None,
        failure_reason: str | None,
    ) -> None:
        for attempt in range(RECORD_ATTEMPTS):  # an agent may change the case at the same moment
            try:
                async with self.db.transaction() as repos:
                    refund = await repos.get_refund(merchant_id, refund_id, for_update=True)
                    if refund is not None:
                        await self._advance(repos, refund, reported, gateway_refund_id, failure_reason)
                return
            except VersionConflict:
                if attempt == RECORD_ATTEMPTS - 1:
                    raise

    async def _advance(
        self, repos: Repositories, refund: Refund, reported: RefundStatus, gateway_refund_id: str | None,
        failure_reason: str | None,
    ) -> None:
        """Bring the refund forward to what the gateway reports and let the case follow."""
        at = self.clock()
        loaded_version = refund.version
        if gateway_refund_id and refund.gateway_refund_id is None:
            refund.gateway_refund_id = gateway_refund_id
            refund.version += 1
        for action in catch_up(refund.status, reported):
            refund.apply(action, at, failure_reason if reported == RefundStatus.FAILED else None)
        if refund.version == loaded_version:
            return
        await repos.save_refund(refund, loaded_version)
        log.info("refund_updated", refund_id=refund.id, case_id=refund.case_id, status=str(refund.status))
        if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED):
            await self._case_follows(repos, refund, at)

    async def _case_follows(self, repos: Repositories, refund: Refund, at: datetime) -> None:
        case = await repos.get_case(refund.merchant_id, refund.case_id)
        loaded_version = case.version
        data = {"refund_id": refund.id, "amount": refund.amount, "currency": refund.currency}
        if refund.status == RefundStatus.SUCCEEDED:
            case.record("refund_succeeded", SYSTEM, at, data)
            if case.state == CaseState.REFUND_PENDING:
                case.apply(CaseAction.REFUND_SUCCEEDED, SYSTEM, at, data)
                case.apply(CaseAction.CLOSE, SYSTEM, at, {"why": "refunded in full"})
        else:
            case.record("refund_failed", SYSTEM, at, {**data, "failure_reason": refund.failure_reason})
            case.sla_due_at = at  # to the top of the agent queue: someone must retry or decide
        await repos.save_case(case, loaded_version)
        topic = "refund.succeeded" if refund.status == RefundStatus.SUCCEEDED else "refund.failed"
        await repos.add_outbox(
            refund.merchant_id,
            topic,
            {**data, "case_id": case.id, "order_id": case.order_id, "status": str(refund.status),
             "failure_reason": refund.failure_reason},
            at,
        )

    async def poll_unsettled(self, limit: int = 50) -> int:
        """Ask the gateway about accepted refunds no webhook has settled; answers how many."""
        now = self.clock()
        async with self.db.transaction() as repos:
            unsettled = await repos.unsettled_refunds(now - self.poll_after, limit)
        for refund in unsettled:
            assert refund.gateway_refund_id is not None  # submitted means the gateway gave one
            try:
                answer = await self.gateway.get_refund(refund.gateway_refund_id, account=refund.gateway_account)
            except GatewayError as error:
                log.warning("refund_poll_failed", refund_id=refund.id, error=str(error))
                continue
            await self.record_answer(refund.merchant_id, refund.id, answer)
            async with self.db.transaction() as repos:
                await repos.mark_refund_checked(refund.merchant_id, refund.id, self.clock())
        return len(unsettled)

    # ----------------------------------------------------------------- gateway webhooks

    async def apply_gateway_event(self, event_id: str, event_type: str, refunds: list[GatewayRefund]) -> bool:
        """Apply a verified gateway event once; False when it was seen before. A refund we do
        not know (made in the gateway's dashboard) is left to reconciliation."""
        async with self.db.transaction() as repos:
            if not await repos.record_gateway_event(self.gateway.name, event_id, event_type, self.clock()):
                return False
            for reported in refunds:
                refund = await repos.find_refund_by_gateway_id(
                    self.gateway.name, reported.gateway_refund_id, reported.refund_id
                )
                if refund is None:
                    log.info("gateway_event_unknown_refund", gateway_refund_id=reported.gateway_refund_id)
                    continue
                await self._advance(
                    repos, refund, _REPORTED.get(reported.status, RefundStatus.SUBMITTED),
                    reported.gateway_refund_id, reported.failure_reason,
                )
        return True

