"""Refunds: created in the transaction that makes money due, sent by workers exactly once, and
moved by what the gateway reports (its answer, its webhooks, or polling).

Exactly once rests on three things: the gateway is called outside any transaction with the
refund's deterministic idempotency key (``rf_…:attempt``), so a retry after a crash gets the
gateway's first answer back; a claimed refund is leased, so a dead worker's refund is claimed
again; and a refund only ever moves forward (``domain.refunds.catch_up``), so a late, repeated
or out-of-order report changes nothing.

Never more than is owed: a refund is opened under the order's row lock only when the order's
live refunds stay within what was captured and the case's within what the case owes; a failed
refund is retried at most once (``Refund.retried_as``, under its row lock).

Never another merchant's money: a payment belongs to one merchant, the first whose order names it
on its gateway account (``payment_account``). Merchants without an account of their own share the
platform's, where a payment id is all it takes to refund it; an order naming another's payment is
refused, and a refund is opened only of the merchant's own payment (for orders stored before
payments had owners: ``PaymentTaken``, nothing is paid).

Only our own reports count: a gateway answer, event or poll moves a refund only when it names
the gateway refund id we recorded, or, before we learned that id, our refund id, amount,
currency and account all match (``report_mismatch``). Anything else is logged and counted.

At the gateway's speed: a worker keeps up to ``max_in_flight`` refunds in flight, paced per
gateway account (``service.pacing``: one pace for all workers together); its leases are short
and renewed while it holds them, so a killed worker's refunds are taken over within one lease.
One refund's unexpected error is recorded on that refund (postponed with backoff) and never
stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import structlog

from domain.cases import SYSTEM, Actor, Case, CaseAction, CaseState
from domain.errors import GatewayAccountTaken, PaymentTaken, RefundExceedsCaptured, RefundExceedsCaseTotal
from domain.money import to_major
from domain.orders import Order
from domain.refunds import Refund, RefundStatus, catch_up
from service.ids import new_id
from service.metrics import GATEWAY_ERRORS, GATEWAY_REPORTS_IGNORED, REFUND_ERRORS
from service.pacing import AccountPacer
from service.ports import (
    ClaimedRefund,
    Database,
    GatewayError,
    GatewayEvent,
    GatewayRefund,
    GatewayUnreadable,
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


def report_mismatch(refund: Refund, reported: GatewayRefund) -> str | None:
    """Why a gateway report may not move ``refund`` (None when it may). The account is matched
    before: a report is only ever compared with refunds made on the account it comes from."""
    if refund.gateway_refund_id is not None:
        return None if reported.gateway_refund_id == refund.gateway_refund_id else "gateway_refund_id_mismatch"
    if reported.refund_id != refund.id:
        return "refund_id_mismatch"
    if reported.amount != refund.amount:
        return "amount_mismatch"
    if reported.currency.upper() != refund.currency.upper():
        return "currency_mismatch"
    return None


def _account_key(refund: Refund) -> str:
    return refund.gateway_account or ""


class RefundService:
    def __init__(
        self,
        db: Database,
        gateway: PaymentGateway,
        clock: Callable[[], datetime],
        *,
        lease: timedelta = timedelta(seconds=15),
        first_backoff: timedelta = timedelta(seconds=2),
        max_backoff: timedelta = timedelta(minutes=30),
        max_tries: int = 25,  # then a refund of unknown outcome is reported stuck (still tried)
        poll_after: timedelta = timedelta(minutes=5),
        max_in_flight: int = 64,
        rate_per_account: float = 20.0,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.clock = clock
        self.lease = lease
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.max_tries = max_tries
        self.poll_after = poll_after
        self.max_in_flight = max_in_flight
        self.rate_per_account = rate_per_account
        self.gateway_latency = 0.25  # seconds a create takes, a moving average (a guess until measured)
        self.pacer = AccountPacer(db, gateway.name, rate_per_account)  # shared by every worker, through the database
        self.worker_id = new_id("wk")  # whose claims these are: only the holder renews them
        self._held: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- creating (in a case's transaction)

    async def open_refund(
        self, repos: Repositories, case: Case, order: Order, amount: int, at: datetime, attempt: int = 1
    ) -> Refund:
        """A new pending refund for ``amount``, refused when the order's payment is another
        merchant's (``payment_account``), when the order's live refunds would pass what was
        captured, or the case's what the case owes (its ``refund_total``, an approved override
        included). The caller holds the order row, so nothing races in between."""
        account = await self.payment_account(repos, case.merchant_id, order.payment.reference, at)
        committed = await repos.committed_refunds(case.merchant_id, case.order_id, case.id)
        remaining = order.payment.captured_amount - committed.on_order
        if amount > remaining:
            raise RefundExceedsCaptured(
                f"a refund of {to_major(amount, order.currency)} {order.currency} exceeds the "
                f"{to_major(max(remaining, 0), order.currency)} {order.currency} left of what was captured",
                amount=amount,
                remaining=max(remaining, 0),
            )
        owed = case.money.refund_total - committed.on_case
        if amount > owed:
            raise RefundExceedsCaseTotal(
                f"a refund of {to_major(amount, order.currency)} {order.currency} exceeds the "
                f"{to_major(max(owed, 0), order.currency)} {order.currency} the case still owes"
                " (an agent may pay more only through a money override)",
                amount=amount,
                remaining=max(owed, 0),
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
            gateway_account=account,
        )
        await repos.add_refund(refund)
        return refund

    async def payment_account(
        self, repos: Repositories, merchant_id: str, reference: str, at: datetime, *, field: str | None = None
    ) -> str | None:
        """The merchant's gateway account (None: the platform's), once the payment ``reference``
        on it is the merchant's: claimed now if nobody's yet, ``PaymentTaken`` if another
        merchant's order named it first there (``field``: where the request carries it). A
        merchant that binds an account later claims its payments on it as its orders are stored
        again or refunded: on its own account nobody else's order can name them."""
        account = await repos.gateway_account(merchant_id)
        if await repos.claim_payment(self.gateway.name, account or "", reference, merchant_id, at) != merchant_id:
            message = "another merchant's order named this payment first on this gateway account"
            raise PaymentTaken(
                f"payment {reference} belongs to another merchant: its refunds are that merchant's",
                [{"field": field, "message": message}] if field else None,
            )
        return account

    async def retry(self, merchant_id: str, refund_id: str, actor: Actor) -> Refund:
        """A failed (or canceled) refund is paid again, once, as a new refund with the next
        attempt. The failed one is locked and linked to its successor in the same transaction,
        so of twenty clicks at once one makes a refund and the rest answer 409."""
        at = self.clock()
        async with self.db.transaction() as repos:
            failed = await repos.get_refund(merchant_id, refund_id, for_update=True)
            if failed is None:
                raise NotFound(f"no refund {refund_id}")
            loaded_refund_version = failed.version
            failed.check_retryable()
            order = await repos.get_order(merchant_id, failed.order_id, for_update=True)
            if order is None:
                raise NotFound(f"no order {failed.order_id}")
            case = await repos.get_case(merchant_id, failed.case_id)
            loaded_version = case.version
            retried = await self.open_refund(repos, case, order, failed.amount, at, attempt=failed.attempt + 1)
            failed.retried_as(retried.id, at)
            await repos.save_refund(failed, loaded_refund_version)
            case.record("refund_retried", actor, at, {"failed_refund_id": failed.id, "refund_id": retried.id})
            await repos.save_case(case, loaded_version)
        return retried

    async def bind_account(self, merchant_id: str, account: str | None) -> None:
        """The merchant's gateway account (e.g. a Stripe Connect ``acct_…``), or none. An
        account belongs to one merchant: another's answers ``gateway_account_taken``."""
        async with self.db.transaction() as repos:
            await repos.ensure_merchant(merchant_id)
            if not await repos.set_gateway_account(merchant_id, account):
                raise GatewayAccountTaken(f"gateway account {account} belongs to another merchant", account=account)

    # ----------------------------------------------------------------- the worker

    def per_account_in_flight(self) -> int:
        """What keeps one account at its rate (rate × the gateway's latency, and a little more):
        more would only wait for the account's tokens in slots other accounts could use."""
        wanted = math.ceil(self.rate_per_account * self.gateway_latency) + 2
        return max(2, min(self.max_in_flight, wanted))

    async def dispatch(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        """Keep up to ``max_in_flight`` refunds in flight until ``stop``; then let those in
        flight finish. An account that has its share in flight (``per_account_in_flight``) is
        not claimed for, so one merchant's backlog leaves room for the others. Claims are made
        a few slots at a time, not one query per finished refund."""
        in_flight: dict[asyncio.Task[None], str] = {}
        stopping = asyncio.create_task(stop.wait())
        batch = max(1, self.max_in_flight // 8)
        try:
            while not stop.is_set():
                claimed: list[ClaimedRefund] = []
                free = self.max_in_flight - len(in_flight)
                if free >= batch:
                    share = self.per_account_in_flight()
                    busy = Counter(in_flight.values())
                    skip = [account for account, count in busy.items() if count >= share]
                    try:
                        claimed = await self.claim(min(free, share), skip)
                    except Exception:  # the database is down: say so, wait, go on
                        log.exception("refund_claim_failed")
                    for item in claimed:
                        in_flight[asyncio.create_task(self.send(item))] = _account_key(item.refund)
                if claimed and self.max_in_flight - len(in_flight) >= batch:
                    continue
                done, _ = await asyncio.wait([*in_flight, stopping], timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    in_flight.pop(task, None)  # type: ignore[arg-type]  # ``stopping`` is among them
        finally:
            stopping.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    async def send_due(self, limit: int = 20) -> int:
        """Claim up to ``limit`` due refunds, send them side by side and wait for all; answers
        how many were claimed."""
        claimed = await self.claim(limit, [])
        await asyncio.gather(*(self.send(item) for item in claimed))
        return len(claimed)

    async def claim(self, limit: int, skip_accounts: list[str]) -> list[ClaimedRefund]:
        async with self.db.transaction() as repos:
            claimed = await repos.claim_due_refunds(
                self.gateway.name, self.worker_id, self.clock(), self.lease, limit, skip_accounts
            )
        self._hold(item.refund.id for item in claimed)
        return claimed

    def _hold(self, refund_ids: Iterable[str]) -> None:
        self._held.update(refund_ids)
        if self._held and (self._renewer is None or self._renewer.done()):
            self._renewer = asyncio.create_task(self._renew_while_held())

    async def _renew_while_held(self) -> None:
        """Renew this worker's leases every third of a lease while it holds any."""
        while self._held:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            if not self._held:
                return
            try:
                async with self.db.transaction() as repos:
                    await repos.renew_claims(self.worker_id, sorted(self._held), self.clock() + self.lease)
            except Exception:
                log.warning("refund_lease_renewal_failed", held=len(self._held), exc_info=True)

    async def send(self, claimed: ClaimedRefund) -> None:
        """One claimed refund through the gateway and recorded. An unexpected error (a bug, a
        constraint, the database gone) is recorded on this refund alone: it is postponed with
        backoff and tried again with the same key, and the worker goes on with the others."""
        refund = claimed.refund
        try:
            await self._send(claimed)
        except Exception as error:  # isolate this refund, whatever went wrong
            REFUND_ERRORS.labels(self.gateway.name, type(error).__name__).inc()
            log.exception("refund_send_error", refund_id=refund.id, case_id=refund.case_id)
            with contextlib.suppress(Exception):  # the database may be what failed: the lease hands it on
                async with self.db.transaction() as repos:
                    await repos.postpone_refund(
                        self.worker_id,
                        refund.merchant_id,
                        refund.id,
                        self.clock() + self._backoff(claimed.tries),
                        f"{type(error).__name__}: {error}",
                    )
        finally:
            self._held.discard(refund.id)

    def _backoff(self, tries: int) -> timedelta:
        return min(self.max_backoff, self.first_backoff * 2 ** max(0, tries - 1))

    async def _send(self, claimed: ClaimedRefund) -> None:
        """Create the refund at the gateway, or, when an earlier try may have reached it, first
        look for the refund it made. A refund whose outcome is unknown (no answer, 409, 5xx) is
        never failed: it is tried again, with backoff, for as long as it takes; past
        ``max_tries`` it is reported stuck (an error in the log) for someone to look at. Only
        the gateway's own refusal or report fails a refund, so a failed refund is safe to retry."""
        refund = claimed.refund
        account = _account_key(refund)
        pace = 0  # the generation of the account's rate the last call went out under
        try:
            answer = None
            if claimed.tries > 1:
                pace = await self.pacer.acquire(account)
                answer = await self.gateway.find_refund(
                    payment_reference=refund.payment_reference, refund_id=refund.id, account=refund.gateway_account
                )
            if answer is None:
                pace = await self.pacer.acquire(account)
                started = time.monotonic()
                answer = await self.gateway.create_refund(
                    payment_reference=refund.payment_reference,
                    amount=refund.amount,
                    currency=refund.currency,
                    refund_id=refund.id,
                    idempotency_key=refund.idempotency_key,
                    account=refund.gateway_account,
                )
                self._took(time.monotonic() - started)
        except GatewayError as error:
            GATEWAY_ERRORS.labels(self.gateway.name, error.code or "unknown", str(error.retryable).lower()).inc()
            if not error.retryable:
                reason = f"{error.code or 'gateway_error'}: {error}"
                log.warning("refund_refused", refund_id=refund.id, reason=reason)
                await self._record(refund.merchant_id, refund.id, "answer", None, refused_because=reason)
                return
            if error.rate_limited:  # not the refund's fault: no try counted, back after the pause
                rate = await self.pacer.slow_down(account, error.retry_after, pace)
                log.warning("gateway_account_slowed", account=account, rate=rate, retry_after=error.retry_after)
                delay = timedelta(seconds=error.retry_after or 1.0)
            else:
                delay = self._backoff(claimed.tries)
            if claimed.tries >= self.max_tries:
                log.error("refund_stuck", refund_id=refund.id, case_id=refund.case_id, tries=claimed.tries, error=str(error))
            else:
                log.warning("refund_postponed", refund_id=refund.id, tries=claimed.tries, error=str(error))
            async with self.db.transaction() as repos:
                await repos.postpone_refund(
                    self.worker_id,
                    refund.merchant_id,
                    refund.id,
                    self.clock() + delay,
                    str(error),
                    count_try=not error.rate_limited,
                )
            return
        await self._record(refund.merchant_id, refund.id, "answer", answer)

    def _took(self, seconds: float) -> None:
        self.gateway_latency = 0.9 * self.gateway_latency + 0.1 * seconds

    def _ignored(self, source: str, reason: str, refund_id: str | None, reported: GatewayRefund) -> None:
        GATEWAY_REPORTS_IGNORED.labels(self.gateway.name, source, reason).inc()
        log.warning(
            "gateway_report_ignored",
            source=source,
            reason=reason,
            refund_id=refund_id,
            gateway_refund_id=reported.gateway_refund_id,
            reported_refund_id=reported.refund_id,
            amount=reported.amount,
            currency=reported.currency,
        )

    async def _record(
        self,
        merchant_id: str,
        refund_id: str,
        source: str,
        report: GatewayRefund | None,
        refused_because: str | None = None,
    ) -> None:
        """Bring a refund forward to the gateway's ``report`` (or to failed, when the gateway
        refused it before making anything) in a transaction of its own."""
        for attempt in range(RECORD_ATTEMPTS):  # an agent may change the case at the same moment
            try:
                async with self.db.transaction() as repos:
                    refund = await repos.get_refund(merchant_id, refund_id, for_update=True)
                    if refund is not None:
                        await self._advance(repos, refund, source, report, refused_because)
                return
            except VersionConflict:
                if attempt == RECORD_ATTEMPTS - 1:
                    raise

    async def _advance(
        self,
        repos: Repositories,
        refund: Refund,
        source: str,
        report: GatewayRefund | None,
        refused_because: str | None = None,
    ) -> None:
        """Bring the locked refund forward to what the gateway reports and let the case follow.
        A report that is not about this refund raises ``ReportMismatch``, changing nothing."""
        if report is not None:
            mismatch = report_mismatch(refund, report)
            if mismatch:
                self._ignored(source, mismatch, refund.id, report)
                raise ReportMismatch(mismatch)
        at = self.clock()
        loaded_version = refund.version
        if report is not None and refund.gateway_refund_id is None:
            refund.gateway_refund_id = report.gateway_refund_id
            refund.version += 1
        reported = _REPORTED.get(report.status, RefundStatus.SUBMITTED) if report else RefundStatus.FAILED
        failure_reason = report.failure_reason if report else refused_because
        for action in catch_up(refund.status, reported):
            refund.apply(action, at, failure_reason if reported == RefundStatus.FAILED else None)
        if refund.version == loaded_version:
            return
        await repos.save_refund(refund, loaded_version)
        log.info("refund_updated", refund_id=refund.id, case_id=refund.case_id, status=str(refund.status))
        if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED):
            await self._case_follows(repos, refund, at)

    async def _case_follows(self, repos: Repositories, refund: Refund, at: datetime) -> None:
        """The case records what became of its refund (held, so an agent's change at the same
        moment waits for this one, or this one for it, rather than failing it)."""
        case = await repos.get_case(refund.merchant_id, refund.case_id, for_update=True)
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
            {
                **data,
                "case_id": case.id,
                "order_id": case.order_id,
                "status": str(refund.status),
                "failure_reason": refund.failure_reason,
            },
            at,
        )

    async def poll_unsettled(self, limit: int = 50) -> int:
        """Ask the gateway about accepted refunds no webhook has settled; answers how many. One
        refund's failure is logged and the others are still asked."""
        now = self.clock()
        async with self.db.transaction() as repos:
            unsettled = await repos.unsettled_refunds(self.gateway.name, now - self.poll_after, limit)
        for refund in unsettled:
            assert refund.gateway_refund_id is not None  # submitted means the gateway gave one
            try:
                answer = await self.gateway.get_refund(refund.gateway_refund_id, account=refund.gateway_account)
                with contextlib.suppress(ReportMismatch):  # logged and counted; asked again next time
                    await self._record(refund.merchant_id, refund.id, "poll", answer)
                async with self.db.transaction() as repos:
                    await repos.mark_refund_checked(refund.merchant_id, refund.id, self.clock())
            except Exception as error:  # one refund's trouble never stops the poll
                REFUND_ERRORS.labels(self.gateway.name, type(error).__name__).inc()
                log.warning("refund_poll_failed", refund_id=refund.id, error=str(error))
        return len(unsettled)

    # ----------------------------------------------------------------- gateway webhooks

    async def apply_gateway_event(self, event: GatewayEvent) -> bool:
        """Apply a verified gateway event once; False when it was seen before. Each refund it
        reports is looked up on the event's account only and must pass ``report_mismatch``; a
        refund we do not know (made in the gateway's dashboard) is left to reconciliation.

        The refunds of a charge it reports without listing them are asked of the gateway first,
        on the event's account (its refunds are the only ones that account's gateway lists) and
        outside any transaction. When the gateway cannot answer, the event is not recorded
        (``GatewayUnreadable``: 503 or 502), so its redelivery is applied; a charge the account
        does not have reports no refund. A repeat asks again and changes nothing."""
        reports = list(event.refunds)
        for charge in event.unlisted_charges:
            reports += await self._charge_refunds(charge, event.account)
        async with self.db.transaction() as repos:
            if not await repos.record_gateway_event(self.gateway.name, event.id, event.type, self.clock()):
                return False
            for reported in reports:
                refund = await repos.find_reported_refund(
                    self.gateway.name, event.account, reported.gateway_refund_id, reported.refund_id
                )
                if refund is None:
                    self._ignored("webhook", "unknown_refund", None, reported)
                    continue
                with contextlib.suppress(ReportMismatch):  # logged and counted, nothing changed
                    await self._advance(repos, refund, "webhook", reported)
        return True

    async def _charge_refunds(self, charge: str, account: str | None) -> list[GatewayRefund]:
        """The charge's refunds at the gateway, none when the account has no such charge."""
        try:
            return [refund async for refund in self.gateway.charge_refunds(charge, account=account)]
        except GatewayError as error:
            if error.code != "resource_missing":
                raise GatewayUnreadable(error) from error
            log.warning("gateway_charge_unknown", charge=charge, account=account)
            return []


class ReportMismatch(Exception):
    """A gateway report that is not about the refund it was matched with (see ``report_mismatch``)."""
