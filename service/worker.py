"""The background worker: sends due refunds (many at once, paced per gateway account), asks the
gateway about unsettled ones, closes shipped exchanges and repairs nobody closed, buys and voids
return labels and asks the carrier about quiet parcels, and delivers the outbox to the storefront's webhook and to the customer's inbox. Runs as ``returns worker`` and, by default, inside
``returns serve``. Any number may run side by side."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from service.cases import CaseService
from service.labels import LabelService
from service.mail import Mailer
from service.notifications import Notifications
from service.refunds import RefundService
from service.tracking import Tracking

log = structlog.get_logger()


class Worker:
    def __init__(
        self,
        refunds: RefundService,
        notifications: Notifications,
        cases: CaseService,
        mailer: Mailer | None = None,
        labels: LabelService | None = None,
        tracking: Tracking | None = None,
        *,
        idle_seconds: float = 1.0,
        poll_every_seconds: float = 60.0,
        auto_close_after: timedelta | None = timedelta(days=14),
    ) -> None:
        self.refunds = refunds
        self.cases = cases
        self.mailer = mailer
        self.labels = labels
        self.tracking = tracking
        self.auto_close_after = auto_close_after
        self.notifications = notifications
        self.idle_seconds = idle_seconds
        self.poll_every_seconds = poll_every_seconds

    async def run_once(self) -> int:
        """One round: idle cases closed, every due refund sent and webhook delivered, then one
        poll of unsettled refunds. Answers the work done."""
        done = await self.close_idle()
        while sent := (
            await self.refunds.send_due() + await self.notifications.deliver_due() + await self.mail() + await self.shipping()
        ):
            done += sent
        return done + await self.refunds.poll_unsettled()

    async def mail(self) -> int:
        """Customer e-mail planned from the outbox and sent (none without a mailer)."""
        return await self.mailer.run_once() if self.mailer else 0

    async def shipping(self) -> int:
        """Return labels bought or voided, and the scans of quiet ones asked for."""
        done = await self.labels.run_once() if self.labels else 0
        return done + (await self.tracking.poll_quiet() if self.tracking else 0)

    async def close_idle(self) -> int:
        """Every shipped exchange and repair that has waited ``auto_close_after`` closed (None: never)."""
        if self.auto_close_after is None:
            return 0
        done = 0
        while closed := await self.cases.auto_close_due(self.auto_close_after):
            done += closed
        return done

    @staticmethod
    async def _duty(name: str, work: Callable[[], Awaitable[object]]) -> int:
        """One duty of a round, on its own: when it fails (the database or a receiver is down, a
        bug in one message), it is logged and the other duties still run. Answers the work done."""
        try:
            done = await work()
        except Exception:
            log.exception("worker_duty_failed", duty=name)
            return 0
        return done if isinstance(done, int) else 0

    def _busy_duties(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        return [("webhooks", self.notifications.deliver_due), ("mail", self.mail), ("shipping", self.shipping)]

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: refunds are dispatched side by side (see ``RefundService.dispatch``)
        while this loop delivers webhooks and, every ``poll_every_seconds``, polls unsettled
        refunds and closes idle cases. What is in flight when
        ``stop`` comes is finished, never cut off."""
        dispatching = asyncio.create_task(self.refunds.dispatch(stop, self.idle_seconds))
        last_poll = 0.0
        try:
            while not stop.is_set():
                done = [await self._duty(name, work) for name, work in self._busy_duties()]
                busy = sum(done) > 0
                if time.monotonic() - last_poll >= self.poll_every_seconds:
                    last_poll = time.monotonic()
                    await self._duty("refund_poll", self.refunds.poll_unsettled)
                    await self._duty("auto_close", self.close_idle)
                if not busy:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=self.idle_seconds)
                    except TimeoutError:
                        pass
        finally:
            await dispatching
