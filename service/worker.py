"""The background worker: sends due refunds (many at once, paced per gateway account), asks the
gateway about unsettled ones, and delivers the outbox to the storefront's webhook. Runs as ``returns worker`` and, by default, inside
``returns serve``. Any number may run side by side."""

from __future__ import annotations

import asyncio
import time

import structlog

from service.notifications import Notifications
from service.refunds import RefundService

log = structlog.get_logger()


class Worker:
    def __init__(
        self,
        refunds: RefundService,
        notifications: Notifications,
        *,
        idle_seconds: float = 1.0,
        poll_every_seconds: float = 60.0,
    ) -> None:
        self.refunds = refunds
        self.notifications = notifications
        self.idle_seconds = idle_seconds
        self.poll_every_seconds = poll_every_seconds

    async def run_once(self) -> int:
        """One round: every due refund sent, then one poll of unsettled ones. Answers the work done."""
        done = 0
        while sent := await self.refunds.send_due() + await self.notifications.deliver_due():
            done += sent
        return done + await self.refunds.poll_unsettled()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set: refunds are dispatched side by side (see ``RefundService.dispatch``)
        while this loop delivers webhooks and polls unsettled refunds. What is in flight when
        ``stop`` comes is finished, never cut off."""
        dispatching = asyncio.create_task(self.refunds.dispatch(stop, self.idle_seconds))
        last_poll = 0.0
        try:
            while not stop.is_set():
                busy = False
                try:
                    busy = await self.notifications.deliver_due() > 0
                    if time.monotonic() - last_poll >= self.poll_every_seconds:
                        last_poll = time.monotonic()
                        await self.refunds.poll_unsettled()
                except Exception:  # the database or the receiver is down: say so, wait, go on
                    log.exception("worker_round_failed")
                if not busy:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=self.idle_seconds)
                    except TimeoutError:
                        pass
        finally:
            await dispatching
