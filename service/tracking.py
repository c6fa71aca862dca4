"""Carrier scans move cases forward, never back.

A scan (a ``TrackingEvent``, from the carrier's webhook or from polling a quiet tracker) is taken
in once: its event id is recorded in ``carrier_events`` in the same transaction as what it does,
so a repeated scan changes nothing. It finds its label by tracking code, and then:

- the first scan that says the parcel moves (``in_transit``, ``out_for_delivery`` or
  ``delivered``) of a case still ``approved`` ships it (``in_transit``), done by the carrier;
- ``delivered`` marks the case ``delivered_at`` (once; the agents' queue filter ``delivered``
  lists such cases waiting for receipt) and, where the case's policy lets the carrier receive
  (``auto_approve.receive_on_delivery``, off by default) a return that was auto-approvable
  (customer-responsible, within ``auto_approve.max_amount``), receives it as ``as_new``.

Nothing else moves a case: a scan that comes late (``in_transit`` after ``delivered``) or that
finds the case already further along (received, refunded, cancelled) is recorded and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
import structlog

from domain.cases import (
    Case,
    CaseAction,
    CaseState,
    CaseType,
    Condition,
    Responsibility,
    Shipment,
)
from service.cases import CaseService
from service.dto import ReceivedItemIn, ReceiveIn
from service.labels import carrier_actor
from service.ports import (
    Carrier,
    CarrierError,
    Database,
    Repositories,
    ReturnLabel,
    TrackingEvent,
    VersionConflict,
)

log = structlog.get_logger()

# how far along each scan says the parcel is; scans not listed (failure, unknown…) move nothing
PROGRESS = {"pre_transit": 0, "in_transit": 1, "out_for_delivery": 2, "delivered": 3}
CHANGE_ATTEMPTS = 3


class Tracking:
    def __init__(
        self,
        db: Database,
        cases: CaseService,
        carrier: Carrier,
        clock: Callable[[], datetime],
        *,
        poll_after: timedelta = timedelta(hours=1),
    ) -> None:
        self.db = db
        self.cases = cases
        self.carrier = carrier
        self.clock = clock
        self.poll_after = poll_after

    async def ingest(self, events: list[TrackingEvent]) -> int:
        """Take the scans in, oldest first; answers how many were new."""
        new = 0
        for event in sorted(events, key=lambda e: (e.at, PROGRESS.get(e.status, -1))):
            new += await self._take(event)
        return new

    async def first_delivery(self, delivery_id: str) -> bool:
        """Record a carrier webhook's event id; False when it was recorded before (a replay)."""
        async with self.db.transaction() as repos:
            return await repos.record_gateway_event(f"carrier:{self.carrier.name}", delivery_id, "webhook", self.clock())

    async def poll_quiet(self, limit: int = 50) -> int:
        """Ask the carrier for the scans of bought labels it has not been asked about for
        ``poll_after`` (how the simulated carrier's scans arrive, and a webhook lost is caught up)."""
        now = self.clock()
        async with self.db.transaction() as repos:
            labels = await repos.claim_quiet_labels(self.carrier.name, now - self.poll_after, now, limit)
        new = 0
        for label in labels:
            assert label.tracking_code is not None and label.carrier is not None  # bought
            try:
                new += await self.ingest(await self.carrier.track(label.tracking_code, label.carrier))
            except CarrierError as error:
                log.warning("tracking_poll_failed", label_id=label.id, merchant_id=label.merchant_id, code=error.code)
        return new

    async def _take(self, event: TrackingEvent) -> int:
        for attempt in range(CHANGE_ATTEMPTS):
            try:
                async with self.db.transaction() as repos:
                    if not await repos.record_carrier_event(self.carrier.name, event, self.clock()):
                        return 0
                    label = await repos.label_by_tracking(self.carrier.name, event.tracking_code)
                    if label is not None:
                        await self._move(repos, label, event)
                    return 1
            except VersionConflict:  # an agent changed the case meanwhile: the scan is taken again
                if attempt == CHANGE_ATTEMPTS - 1:
                    raise
        return 0

    async def _move(self, repos: Repositories, label: ReturnLabel, event: TrackingEvent) -> None:
        progress = PROGRESS.get(event.status)
        if progress is None:
            return
        if progress > PROGRESS.get(label.scan_status or "", -1):
            await repos.update_label(msgspec.structs.replace(label, scan_status=event.status, last_scan_at=event.at))
        if progress == 0:
            return
        case = await repos.get_case(label.merchant_id, label.case_id)
        loaded_version, loaded_state = case.version, case.state
        actor, at = carrier_actor(label.carrier_name), self.clock()
        scan = {
            "carrier": label.carrier,
            "tracking_number": label.tracking_code,
            "scan": event.event_id,
            "scanned_at": event.at.isoformat(),
        }
        if case.state == CaseState.APPROVED:
            case.apply(CaseAction.SHIP, actor, at, scan)
            case.shipments = [*case.shipments, Shipment("return", label.carrier or "", label.tracking_code or "", at)]
        if event.status == "delivered" and case.state == CaseState.IN_TRANSIT and case.delivered_at is None:
            case.delivered_at = event.at
            case.record("delivered", actor, at, scan)
            if await self._carrier_receives(repos, case):
                items = [ReceivedItemIn(line_id=i.line_id, quantity=i.quantity, condition=Condition.AS_NEW) for i in case.items]
                note = "received as new on the carrier's delivery scan, as the policy allows for this return"
                await self.cases.receive_step(ReceiveIn(items=items, note=note))(repos, case, actor, at)
        if case.version != loaded_version:
            if case.state != loaded_state:
                self.cases.restart_sla(case, at)
            await repos.save_case(case, loaded_version)

    async def _carrier_receives(self, repos: Repositories, case: Case) -> bool:
        """The case's policy lets the carrier's delivery receive it: a return, every item the
        customer's, auto-approved when decided (within the auto-approval amount, nothing for an
        agent to review) and no money an agent set by hand: a case an agent looked at is received
        by an agent."""
        if case.type != CaseType.RETURN or any(i.responsibility != Responsibility.CUSTOMER for i in case.items):
            return False
        policy = await self.cases.policies.at_version(repos, case.merchant_id, case.decision.policy_version)
        allowed = policy.document["rules"].get("auto_approve", {}).get("receive_on_delivery", False)
        return bool(allowed) and case.decision.auto_approve and case.money_override is None
