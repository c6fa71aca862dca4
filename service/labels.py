"""Return labels: planned on approval, bought once by the worker, served to the customer.

- **Planned in the approval's transaction** (``plan_label``): a case whose item comes back (not
  kept, the merchant buys labels, a return address is set and the order carries the customer's
  address) gets one ``pending`` label row (unique per case), with what it is for fixed then:
  from, to, the parcel (``parcel_for``) and the carrier preferences. No settings, or no address:
  no label, and the case goes on as before (the customer ships it and reports the parcel).
- **Bought once by the worker** (``LabelService.run_once``): labels are claimed with a lease
  (``FOR UPDATE SKIP LOCKED``), so any number of workers may run. The carrier's shipment id is
  stored before buying; a label claimed again (the worker died, the answer was lost) asks the
  carrier for that shipment, which says whether it was bought, so nothing is bought twice. A
  carrier that is down is tried again with backoff; one that refuses fails the label, and the
  case goes on without one.
- **Never over the merchant's ceiling unattended** (``ceiling_for``, the settings'
  ``label_ceiling``, fixed in the label's request on approval): by default a label may cost at
  most 50 % of the value of what comes back (the case's ``items_total``: what the label is spent
  to recover; not the refund, from which the label's own cost is deducted and which is 0 for store
  credit or an exchange), and at most ``max_amount`` where that prices the rate's currency.
  Amounts are compared in one currency only, never converted: a rate in another currency than the
  case's is bought unattended only when the merchant said how (``other_currency = max_amount``
  and a ``max_amount`` in the rate's currency), else it waits. The worker buys the rate the
  preferences pick among those within the ceiling (so ``fastest`` is the fastest affordable one);
  when none is, it buys nothing: the label is ``held`` with the cheapest acceptable rate and the
  ceiling (``hold``, event ``label_held``), and waits for an agent (``decide``): ``label/buy`` has
  the worker buy that rate (at no more than it cost then; else it is held again), ``label/decline``
  cancels the label (the customer ships the item, as without a label). Both are audited events
  on the case; one decision per hold, a second is 409 ``label_not_held``. This is service code,
  so every carrier (EasyPost, the simulated one) is held alike.
- **Only while the case waits for the item**: a label is bought only for a case still
  ``approved``. A case received, reported shipped or cancelled before that gets none
  (``cancelled``), and its money keeps the policy's flat ``label_cost``.
- **The real cost in the money**: once bought, the label's amount replaces the policy's
  ``label_cost`` (``CaseService.price_label``); the policy still decides who pays it.
- **Voided when not used**: cancelling a case with a label not yet scanned asks for a void
  (``release_label``); the worker voids it at the carrier and the cost is given back (the
  label's cost in the money becomes 0). A label bought while its case was cancelled is voided too;
  a held one is dropped (``cancelled``): nothing was bought.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
import structlog

from domain.cases import SYSTEM, Actor, Case, CaseState
from domain.decision import CaseMoney
from domain.errors import InvalidRequest, InvalidTransition, LabelNotHeld, LabelNotReady
from domain.money import KNOWN_CURRENCIES
from domain.orders import Order
from service.actions import Audience
from service.dto import CaseView, LabelDecisionIn, ShippingSettingsIn
from service.ids import new_id
from service.ports import (
    BlobStore,
    BoughtLabel,
    Carrier,
    CarrierError,
    CarrierPreferences,
    CarrierRate,
    Database,
    LabelCeiling,
    LabelHold,
    LabelRequest,
    Parcel,
    Principal,
    Repositories,
    ReturnLabel,
    ShippingSettings,
    VersionConflict,
)

if TYPE_CHECKING:
    from service.cases import CaseService

log = structlog.get_logger()

LABEL_FORMATS = {"pdf": "application/pdf", "png": "image/png", "qr": "image/png"}
# a case past these no longer waits for its parcel: a label not bought, or not recorded, by then
# is not needed (the customer reported a parcel of their own, an agent received it, it was
# cancelled) and is voided
WAITING_FOR_ITEM = frozenset({CaseState.APPROVED})
# a voided label gives its cost back only while the refund is still to be worked out
MONEY_OPEN = frozenset({CaseState.APPROVED, CaseState.IN_TRANSIT, CaseState.CANCELLED, CaseState.REJECTED})
UNSCANNED = (None, "pre_transit")


def carrier_actor(carrier_name: str) -> Actor:
    """Who the audit trail names for what a carrier did (bought, scanned, delivered)."""
    return Actor(id=f"carrier:{carrier_name}", role="carrier")


def parcel_for(settings: ShippingSettings, order: Order, case: Case) -> Parcel:
    """The box: the weight of every item coming back by its product category's parcel (else the
    default), in the size of the largest one."""
    parcels = []
    for item in case.items:
        line = order.line(item.line_id)
        category = line.category if line else None
        parcels.append((settings.parcels.get(category or "", settings.default_parcel), item.quantity))
    largest = max((parcel for parcel, _ in parcels), key=lambda p: p.weight_g, default=settings.default_parcel)
    return msgspec.structs.replace(largest, weight_g=max(sum(p.weight_g * n for p, n in parcels), 1))


async def plan_label(repos: Repositories, case: Case, order: Order, carrier_name: str, at: datetime) -> ReturnLabel | None:
    """A ``pending`` label for an approved case whose item comes back, in the approval's
    transaction; None when no label is bought for it (see the module's docstring)."""
    if case.state != CaseState.APPROVED or case.decision.keep_item or order.shipping_address is None:
        return None
    settings = await repos.shipping_settings(case.merchant_id)
    if settings is None or settings.label_buyer != "merchant" or settings.return_address is None:
        return None
    label = ReturnLabel(
        merchant_id=case.merchant_id,
        id=new_id("lbl"),
        case_id=case.id,
        carrier_name=carrier_name,
        status="pending",
        request=LabelRequest(
            from_address=order.shipping_address,
            to_address=settings.return_address,
            parcel=parcel_for(settings, order, case),
            preferences=settings.carrier_preferences,
            ceiling=settings.label_ceiling,
        ),
        created_at=at,
    )
    if not await repos.add_label(label):
        return None
    case.record("label_requested", SYSTEM, at, {"label_id": label.id, "carrier": carrier_name})
    return label


async def release_label(repos: Repositories, case: Case, at: datetime) -> None:
    """The case no longer needs its label (cancelled): one not bought is dropped, one bought and
    not scanned is voided by the worker. One already on its way stays: it is in use."""
    label = await repos.get_case_label(case.merchant_id, case.id, for_update=True)
    if label is None or label.status not in ("pending", "held", "bought") or label.scan_status not in UNSCANNED:
        return
    # a shipment may have been bought by a worker that has not recorded it yet: the void finds out.
    # A held one was not: a label is held instead of being bought, and nothing buys it while held
    unbought = label.status == "held" or (label.status == "pending" and label.shipment_id is None)
    await repos.update_label(msgspec.structs.replace(label, status="cancelled" if unbought else "void_requested"))


def choose_rate(rates: list[CarrierRate], preferences: CarrierPreferences) -> CarrierRate | None:
    """The rate the merchant's preferences pick: of the allowed carriers and services, the
    cheapest, or the fastest (the cheapest of those); None when none is allowed."""
    allowed = [
        rate
        for rate in rates
        if (not preferences.carriers or rate.carrier in preferences.carriers)
        and (not preferences.services or rate.service in preferences.services)
    ]
    if not allowed:
        return None
    if preferences.prefer == "fastest":
        return min(allowed, key=lambda r: (r.delivery_days if r.delivery_days is not None else 999, r.amount, r.rate_id))
    return min(allowed, key=lambda r: (r.amount, r.rate_id))


def ceiling_for(ceiling: LabelCeiling, currency: str, money: CaseMoney) -> int | None:
    """The most a label in ``currency`` may cost to be bought unattended for a case with this
    money, in minor units of ``currency``; None: nothing limits it. The share of the items' value
    counts only in the case's own currency; a rate in another is priced only by ``max_amount``,
    and only when ``other_currency`` says so, else its ceiling is 0 (only a free label is bought)."""
    if currency != money.currency and (ceiling.other_currency != "max_amount" or currency not in ceiling.max_amount):
        return 0
    limits = [ceiling.max_amount[currency]] if currency in ceiling.max_amount else []
    if currency == money.currency and ceiling.percent_of_items is not None:
        limits.append(money.items_total * ceiling.percent_of_items // 100)  # rounded down: never above the share
    return min(limits, default=None)


def hold_data(hold: LabelHold) -> dict[str, object]:
    """A hold as the case's events carry it: the rate held and the ceiling it is over."""
    return {
        "reason": hold.reason,
        "carrier": hold.rate.carrier,
        "service": hold.rate.service,
        "amount": hold.rate.amount,
        "currency": hold.rate.currency,
        "ceiling": hold.ceiling,
        "items_total": hold.items_total,
        "case_currency": hold.case_currency,
    }


def unattended(label: ReturnLabel, rate: CarrierRate, money: CaseMoney) -> bool:
    """May the worker buy ``rate`` without asking: within the label's ceiling, or the very rate an
    agent had bought anyway, at no more than it cost when the agent saw it."""
    approved = label.hold.rate if label.hold is not None and label.hold.approved_by is not None else None
    if approved and (rate.rate_id, rate.currency) == (approved.rate_id, approved.currency) and rate.amount <= approved.amount:
        return True
    limit = ceiling_for(label.request.ceiling, rate.currency, money)
    return limit is None or rate.amount <= limit


class LabelService:
    def __init__(
        self,
        db: Database,
        carrier: Carrier,
        blobs: BlobStore,
        cases: CaseService,
        clock: Callable[[], datetime],
        *,
        lease: timedelta = timedelta(seconds=60),
        first_backoff: timedelta = timedelta(seconds=5),
        max_backoff: timedelta = timedelta(hours=1),
        max_attempts: int = 20,
    ) -> None:
        self.db = db
        self.carrier = carrier
        self.blobs = blobs
        self.cases = cases
        self.clock = clock
        self.lease = lease
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts

    # ----------------------------------------------------------------- settings

    async def settings(self, merchant_id: str) -> ShippingSettingsIn:
        """The merchant's shipping settings; the defaults (no return address: no labels) until set."""
        async with self.db.reading() as repos:
            stored = await repos.shipping_settings(merchant_id)
        return msgspec.convert(msgspec.to_builtins(stored), ShippingSettingsIn) if stored else ShippingSettingsIn()

    async def put_settings(self, merchant_id: str, body: ShippingSettingsIn) -> ShippingSettingsIn:
        errors = []
        if body.label_buyer == "merchant" and body.return_address is None:
            errors.append({"field": "return_address", "message": "required when the merchant buys the labels"})
        parcels = {"default_parcel": body.default_parcel, **{f"parcels.{c}": p for c, p in body.parcels.items()}}
        for field, parcel in parcels.items():
            sizes = (parcel.length_mm, parcel.width_mm, parcel.height_mm)
            if any(size is None for size in sizes) and any(size is not None for size in sizes):
                errors.append({"field": field, "message": "give length_mm, width_mm and height_mm, or none of them"})
        ceiling = body.label_ceiling
        errors += [
            {"field": f"label_ceiling.max_amount.{currency}", "message": "not an ISO 4217 currency this service knows"}
            for currency in ceiling.max_amount
            if currency not in KNOWN_CURRENCIES
        ]
        if ceiling.other_currency == "max_amount" and not ceiling.max_amount:
            errors.append(
                {
                    "field": "label_ceiling.other_currency",
                    "message": "max_amount prices no currency to compare such a rate with: give it, or say hold",
                }
            )
        if errors:
            raise InvalidRequest("the shipping settings are not valid", errors)
        async with self.db.transaction() as repos:
            await repos.put_shipping_settings(
                merchant_id, msgspec.convert(msgspec.to_builtins(body), ShippingSettings), self.clock()
            )
        return body

    # ----------------------------------------------------------------- serving

    async def label_file(self, principal: Principal, case_id: str, fmt: str) -> tuple[bytes, str]:
        """The label as PDF, PNG or its QR code, for whoever may see the case."""
        from service.cases import case_for  # service.cases imports this module

        async with self.db.reading() as repos:
            case = await case_for(repos, principal, case_id)
            label = await repos.get_case_label(case.merchant_id, case.id)
        key = {"pdf": label.pdf_key, "png": label.png_key, "qr": label.qr_key}[fmt] if label else None
        if label is None or label.status != "bought" or key is None:
            raise LabelNotReady(f"case {case_id} has no {fmt} label" + (f" ({label.status})" if label else ""))
        return await self.blobs.get(key), LABEL_FORMATS[fmt]

    # ----------------------------------------------------------------- an agent's decision

    async def decide(
        self, principal: Principal, case_id: str, if_match: frozenset[int] | None, buy: bool, body: LabelDecisionIn
    ) -> CaseView:
        """An agent's answer to a ``held`` label, audited on the case (``label_approved`` or
        ``label_declined``, with the rate, the ceiling and the note): buy it anyway (``pending``
        again: the worker buys the held rate, so the carrier call stays out of the request and its
        transaction) while the case waits for the item, or decline it (``cancelled``). The label's
        row lock makes it one decision per hold: a second is 409 ``label_not_held``."""

        async def decide(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            label = await repos.get_case_label(case.merchant_id, case.id, for_update=True)
            if label is None or label.status != "held" or label.hold is None:
                status = label.status if label else None
                raise LabelNotHeld(
                    f"case {case_id} has no label waiting for an agent ({status or 'no label'})", label_status=status
                )
            if buy and case.state not in WAITING_FOR_ITEM:
                raise InvalidTransition("case", case.state, "buy_label")
            hold = msgspec.structs.replace(label.hold, approved_by=actor.id, approved_at=at) if buy else label.hold
            await repos.update_label(msgspec.structs.replace(label, status="pending" if buy else "cancelled", hold=hold))
            case.record(
                "label_approved" if buy else "label_declined",
                actor,
                at,
                {"label_id": label.id, **hold_data(hold), "note": body.note},
            )

        return await self.cases.change(principal, case_id, if_match, decide, Audience.AGENT)

    # ----------------------------------------------------------------- the worker

    async def run_once(self, limit: int = 20) -> int:
        """Due labels bought or voided; answers how many were worked on."""
        async with self.db.transaction() as repos:
            labels = await repos.claim_due_labels(self.clock(), self.lease, limit)
        for label in labels:
            try:
                if label.status == "void_requested":
                    await self._void(label)
                else:
                    await self._buy(label)
            except CarrierError as error:
                await self._carrier_failed(label, error)
            except Exception as error:  # one label's surprise never stops the others
                log.exception("label_failed", label_id=label.id, case_id=label.case_id, merchant_id=label.merchant_id)
                await self._postpone(label, f"{type(error).__name__}: {error}")
        return len(labels)

    async def _buy(self, label: ReturnLabel) -> None:
        if label.shipment_id is None:
            if not await self._still_wanted(label):
                return
            request = label.request
            shipment = await self.carrier.create_shipment(
                from_address=request.from_address, to_address=request.to_address, parcel=request.parcel, reference=label.id
            )
            async with self.db.transaction() as repos:
                stored = await repos.set_label_shipment(label.merchant_id, label.id, shipment.shipment_id)
            if stored != shipment.shipment_id:  # a worker that took over our lease was first: its shipment
                shipment = await self.carrier.get_shipment(stored)
        else:
            shipment = await self.carrier.get_shipment(label.shipment_id)
        bought = shipment.label
        if bought is None:
            case = await self._still_wanted(label)
            if case is None:
                return
            preferences = label.request.preferences
            rate = choose_rate([r for r in shipment.rates if unattended(label, r, case.money)], preferences)
            if rate is None:
                cheapest = choose_rate(shipment.rates, msgspec.structs.replace(preferences, prefer="cheapest"))
                if cheapest is None:
                    await self._give_up(label, "no rate fits the merchant's carrier preferences")
                else:
                    await self._hold(label, cheapest)
                return
            bought = await self.carrier.buy(shipment.shipment_id, rate.rate_id)
        await self._record_purchase(label, bought)

    async def _still_wanted(self, label: ReturnLabel) -> Case | None:
        """Before anything is bought: the label is still pending and its case still waits for the
        item: the case. Otherwise the label is dropped (``cancelled``) and None."""
        async with self.db.transaction() as repos:
            current = await repos.get_case_label(label.merchant_id, label.case_id, for_update=True)
            case = await repos.get_case(label.merchant_id, label.case_id)
            if current is not None and current.status == "pending" and case.state in WAITING_FOR_ITEM:
                return case
            if current is not None and current.status in ("pending", "void_requested"):
                await repos.update_label(msgspec.structs.replace(current, status="cancelled"))
            return None

    async def _hold(self, label: ReturnLabel, rate: CarrierRate) -> None:
        """Nothing bought: the label waits for an agent, with the rate and the ceiling it is over
        on the label (``hold``) and in the case's audit trail (``label_held``)."""

        async def hold(repos: Repositories) -> None:
            current = await repos.get_case_label(label.merchant_id, label.case_id, for_update=True)
            if current is None or current.status != "pending":
                return
            case = await repos.get_case(label.merchant_id, label.case_id)
            ceiling = ceiling_for(current.request.ceiling, rate.currency, case.money)
            assert ceiling is not None, "a rate over no ceiling is bought, not held"
            held = LabelHold(rate=rate, ceiling=ceiling, items_total=case.money.items_total, case_currency=case.money.currency)
            await repos.update_label(msgspec.structs.replace(current, status="held", hold=held, last_error=None))
            log.warning(
                "label_held",
                label_id=label.id,
                case_id=label.case_id,
                merchant_id=label.merchant_id,
                amount=rate.amount,
                currency=rate.currency,
                ceiling=ceiling,
            )
            loaded_version = case.version
            case.record("label_held", SYSTEM, self.clock(), {"label_id": label.id, **hold_data(held)})
            await repos.save_case(case, loaded_version)

        await self._retried(hold)

    async def _retried(self, step: Callable[[Repositories], Awaitable[None]]) -> None:
        """``step`` in a transaction; again in a fresh one (three tries in all) when the case was
        changed meanwhile."""
        for attempt in range(3):
            try:
                async with self.db.transaction() as repos:
                    await step(repos)
                return
            except VersionConflict:
                if attempt == 2:
                    raise

    async def _record_purchase(self, label: ReturnLabel, bought: BoughtLabel) -> None:
        """The label's files stored, then the purchase and its cost recorded on the case in one
        transaction. A case that stopped waiting for the item meanwhile gets it voided instead."""
        keys = await self._store_files(label, bought)

        async def record(repos: Repositories) -> None:
            current = await repos.get_case_label(label.merchant_id, label.case_id, for_update=True)
            if current is None or current.status == "bought" or current.bought_at is not None:
                return  # recorded by another worker
            case = await repos.get_case(label.merchant_id, label.case_id)
            loaded_version = case.version
            in_use = current.status == "pending" and case.state in WAITING_FOR_ITEM
            at = self.clock()
            recorded = msgspec.structs.replace(
                current,
                status="bought" if in_use else "void_requested",
                shipment_id=bought.shipment_id,
                carrier=bought.carrier,
                service=bought.service,
                tracking_code=bought.tracking_code,
                tracker_id=bought.tracker_id,
                amount=bought.amount,
                currency=bought.currency,
                last_error=None,
                bought_at=at,
                **keys,
            )
            await repos.update_label(recorded)
            if in_use:
                await self.cases.price_label(
                    repos,
                    case,
                    bought.amount,
                    bought.currency,
                    carrier_actor(label.carrier_name),
                    at,
                    "label_ready",
                    {
                        "label_id": label.id,
                        "carrier": bought.carrier,
                        "service": bought.service,
                        "tracking_code": bought.tracking_code,
                    },
                )
                await repos.save_case(case, loaded_version)

        await self._retried(record)

    async def _store_files(self, label: ReturnLabel, bought: BoughtLabel) -> dict[str, str | None]:
        """Under keys made from the label's id: storing again (a retry) writes the same blobs."""
        base = f"labels/{label.merchant_id}/{label.id}"
        await self.blobs.put(f"{base}.pdf", bought.pdf, LABEL_FORMATS["pdf"])
        await self.blobs.put(f"{base}.png", bought.png, LABEL_FORMATS["png"])
        if bought.qr_png is not None:
            await self.blobs.put(f"{base}.qr.png", bought.qr_png, LABEL_FORMATS["qr"])
        return {"pdf_key": f"{base}.pdf", "png_key": f"{base}.png", "qr_key": f"{base}.qr.png" if bought.qr_png else None}

    async def _void(self, label: ReturnLabel) -> None:
        """Void at the carrier what was bought; a voided label's cost is given back on its case."""
        shipment = await self.carrier.get_shipment(label.shipment_id) if label.shipment_id else None
        if shipment is None or shipment.label is None:
            async with self.db.transaction() as repos:
                await repos.update_label(msgspec.structs.replace(label, status="cancelled"))
            return
        accepted = await self.carrier.void(shipment.shipment_id)

        async def record(repos: Repositories) -> None:
            current = await repos.get_case_label(label.merchant_id, label.case_id, for_update=True)
            if current is None or current.status != "void_requested":
                return
            at = self.clock()
            if not accepted:
                refused = "the carrier would not void the label (already scanned?)"
                await repos.update_label(msgspec.structs.replace(current, status="bought", last_error=refused))
                return
            await repos.update_label(msgspec.structs.replace(current, status="voided", voided_at=at))
            case = await repos.get_case(label.merchant_id, label.case_id)
            if await self._gives_cost_back(repos, case, current):
                loaded_version = case.version
                await self.cases.price_label(
                    repos,
                    case,
                    0,
                    current.currency or case.money.currency,
                    carrier_actor(label.carrier_name),
                    at,
                    "label_voided",
                    {"label_id": label.id, "refunded_amount": current.amount},
                )
                await repos.save_case(case, loaded_version)

        await self._retried(record)

    @staticmethod
    async def _gives_cost_back(repos: Repositories, case: Case, label: ReturnLabel) -> bool:
        """Only a cost that was priced into the case (its ``label_ready``), and only while the
        refund is still to be worked out: a label recorded after the case stopped waiting never
        changed the money, and a case received has been (or is being) paid what it was owed."""
        if label.amount is None or label.currency is None or case.state not in MONEY_OPEN:
            return False
        events = await repos.case_events(case.merchant_id, case.id)
        return any(e.type == "label_ready" and e.data.get("label_id") == label.id for e in events)

    async def _carrier_failed(self, label: ReturnLabel, error: CarrierError) -> None:
        log.warning(
            "label_carrier_error", label_id=label.id, merchant_id=label.merchant_id, code=error.code, retryable=error.retryable
        )
        if error.retryable:
            await self._postpone(label, f"{error.code or 'carrier_error'}: {error}")
        else:
            await self._give_up(label, f"{error.code or 'carrier_error'}: {error}")

    async def _postpone(self, label: ReturnLabel, error: str) -> None:
        if label.attempts >= self.max_attempts:
            await self._give_up(label, f"gave up after {label.attempts} attempts; last: {error}")
            return
        wait = min(self.first_backoff * 2 ** max(label.attempts - 1, 0), self.max_backoff)
        async with self.db.transaction() as repos:
            await repos.postpone_label(label.merchant_id, label.id, self.clock() + wait, error)

    async def _give_up(self, label: ReturnLabel, error: str) -> None:
        """No label for this case (a void that cannot be done leaves the label bought)."""
        status = "bought" if label.status == "void_requested" else "failed"
        async with self.db.transaction() as repos:
            current = await repos.get_case_label(label.merchant_id, label.case_id, for_update=True)
            if current is not None and current.status == label.status:
                await repos.update_label(msgspec.structs.replace(current, status=status, last_error=error[:1000]))
