"""Use cases for orders and cases. Each has the one shape of DESIGN.md §2: open a transaction →
load → call the domain → save with optimistic concurrency (the events and outbox rows go in the
same transaction) → commit."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from domain.cases import (
    DEFAULT_SLA,
    HIGH_RETURN_RATE,
    REUSED_PHOTO,
    SYSTEM,
    Actor,
    Case,
    CaseAction,
    CaseItem,
    CaseState,
    CaseType,
    Condition,
    Diagnosis,
    InfoRequest,
    MoneyOverrideRecord,
    Note,
    Reason,
    Rejection,
    Resolution,
    Responsibility,
    Shipment,
    Survey,
    responsibility,
)
from domain.decision import Payer, RuleResult
from domain.errors import (
    InvalidRequest,
    InvalidTransition,
    OrderLocked,
    PolicyViolation,
    RefundExceedsCaptured,
    SurveyAlreadyAnswered,
)
from domain.money import check_currency, to_major
from domain.orders import Address, Customer, Order, OrderHold, OrderLine, Payment, locked_changes
from policies.engine import CAPTURED_LIMIT, Policy
from policies.facts import CustomerHistory, Facts, ItemFacts
from service.actions import Audience
from service.dto import (
    ApproveIn,
    AssignIn,
    CaseCounts,
    CaseIn,
    CaseItemIn,
    CaseList,
    CaseView,
    CloseIn,
    CompleteRepairIn,
    DiagnoseIn,
    EventList,
    NoteIn,
    OrderIn,
    OrderView,
    PhotoView,
    ProvideInfoIn,
    QuoteView,
    ReceivedItemIn,
    ReceiveIn,
    RefundView,
    RejectIn,
    RequestInfoIn,
    ResponsibilityIn,
    ShipmentIn,
    StoreCreditBalance,
    StoreCreditGrantView,
    StoreCreditView,
    SurveyIn,
    time_zone_errors,
)
from service.ids import new_id
from service.labels import plan_label, release_label
from service.policy import PolicyBook
from service.ports import (
    CaseFilter,
    Database,
    NotFound,
    PhotoMatch,
    Principal,
    Repositories,
    StoreCreditGrant,
    VersionConflict,
)
from service.refunds import RefundService
from service.views import (
    case_view,
    event_view,
    order_view,
    photo_view,
    refund_view,
    timeline_view,
)

HISTORY_WINDOW = timedelta(days=90)
CHANGE_ATTEMPTS = 3
# Where an exchange or a repair waits for nothing but the customer's parcel: the worker closes it.
AUTO_CLOSED = frozenset({CaseState.REPLACEMENT_SHIPPED, CaseState.SHIPPED_BACK})
# A refund is only ever made on receipt or on a keep-the-item approval (→ refund_pending), so a case
# in these states has none, and its view needs no query for them.
NO_REFUNDS_YET = frozenset(
    {
        CaseState.REQUESTED,
        CaseState.PENDING_REVIEW,
        CaseState.INFO_REQUESTED,
        CaseState.APPROVED,
        CaseState.IN_TRANSIT,
        CaseState.REJECTED,
        CaseState.CANCELLED,
    }
)
# Before approval a case has no return label (nor after a rejection, which only comes before it).
NO_LABEL_YET = frozenset({CaseState.REQUESTED, CaseState.PENDING_REVIEW, CaseState.INFO_REQUESTED, CaseState.REJECTED})


def utcnow() -> datetime:
    return datetime.now(UTC)


def actor_of(principal: Principal) -> Actor:
    return Actor(id=principal.key_id, role=principal.role)


async def case_for(repos: Repositories, principal: Principal, case_id: str) -> Case:
    """The case as ``principal`` may load it: a customer's credential finds only its own order's
    cases, any other is not found, as a wrong id is."""
    case = await repos.get_case(principal.merchant_id, case_id)
    if not principal.may_see(case.order_id, case.customer_id):
        raise NotFound(f"no case {case_id}")
    return case


class ReturnRateFlag(msgspec.Struct, frozen=True):
    """When a new case gets the ``high_return_rate`` flag: the customer returned at least ``rate``
    of the items they bought in the last 90 days (``HISTORY_WINDOW``; earlier cases, this one not
    counted: the measure of the policy's review rule), once they bought at least ``min_items``
    (fewer say nothing). Configured by ``RETURNS_HIGH_RETURN_RATE`` and ``…_MIN_ITEMS``."""

    rate: float = 0.5
    min_items: int = 3

    def applies(self, history: CustomerHistory) -> bool:
        bought = history.items_purchased_90d
        return bought >= max(1, self.min_items) and history.items_returned_90d >= self.rate * bought


DEFAULT_RETURN_RATE = ReturnRateFlag()


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request body."""


class _OrderAppeared(Exception):
    """The order had no row when a PUT looked, but had one when it wrote: it went unchecked."""


class CaseService:
    def __init__(
        self,
        db: Database,
        policies: PolicyBook,
        refunds: RefundService,
        clock: Callable[[], datetime] = utcnow,
        sla: Mapping[CaseState, timedelta] = DEFAULT_SLA,
        return_rate: ReturnRateFlag = DEFAULT_RETURN_RATE,
        carrier_name: str | None = None,
    ) -> None:
        self.db = db
        self.carrier_name = carrier_name  # return labels are bought from this carrier; None: none
        self.policies = policies
        self.refunds = refunds
        self.clock = clock
        self.sla = sla
        self.return_rate = return_rate

    def restart_sla(self, case: Case, at: datetime) -> None:
        """The configured time the case's (new) state may take before it is overdue."""
        allowed = self.sla.get(case.state)
        case.sla_due_at = at + allowed if allowed else None

    # ----------------------------------------------------------------- orders

    async def put_order(self, principal: Principal, order_id: str, body: OrderIn) -> tuple[OrderView, bool]:
        """Store the snapshot unless it changes what cases or refunds rest on (``OrderLocked``,
        see ``locked_changes``) or names a payment another merchant's order named first on the
        gateway account (``PaymentTaken``: the merchant's own orders may share one). The check and
        the write hold the order row, as opening a case does, so a case opened meanwhile is either
        seen or waits for the new snapshot."""
        order = _order_from(principal.merchant_id, order_id, body)
        while True:
            try:
                async with self.db.transaction() as repos:
                    stored = await repos.get_order(principal.merchant_id, order_id, for_update=True)
                    commitments = await repos.order_commitments(principal.merchant_id, order_id)
                    if stored is not None:
                        refunded = await repos.committed_refunds(principal.merchant_id, order_id)
                        hold = OrderHold(
                            claimed_lines=frozenset(commitments.claimed_quantities),
                            committed_amount=max(commitments.promised_amount, refunded.on_order),
                            shipping_refunded=commitments.shipping_refunded,
                        )
                        locked = locked_changes(stored, order, hold)
                        if locked:
                            raise OrderLocked(locked)
                    at = self.clock()
                    created = await repos.upsert_order(order, at)
                    if stored is None and not created:
                        raise _OrderAppeared  # another PUT made it meanwhile: roll back, check it
                    # with the order's row held, as a refund claims it: one order of locks, no deadlock
                    await self.refunds.payment_account(
                        repos, principal.merchant_id, order.payment.reference, at, field="payment.reference"
                    )
                return order_view(order, commitments), created
            except _OrderAppeared:
                continue

    async def get_order(self, principal: Principal, order_id: str) -> OrderView:
        async with self.db.reading() as repos:
            order = await repos.get_order(principal.merchant_id, order_id)
            if order is None or not principal.may_see(order.order_id, order.customer.id):
                raise NotFound(f"no order {order_id}")
            commitments = await repos.order_commitments(principal.merchant_id, order_id)
        return order_view(order, commitments)

    # ----------------------------------------------------------------- opening cases

    async def preview(self, principal: Principal, body: CaseIn) -> QuoteView:
        async with self.db.transaction() as repos:
            policy, facts = await self._facts(repos, principal, body)
        verdict = policy.evaluate(facts)  # for the storefront or the customer
        return QuoteView(decision=verdict.decision.without_agent_details(), money=verdict.money)

    async def open_case(self, principal: Principal, body: CaseIn, idempotency_key: str | None) -> tuple[CaseView, bool]:
        """Open a case; answer it and whether it is a replay of an earlier identical request."""
        now = self.clock()
        case_id = new_id("case")
        async with self.db.transaction() as repos:
            if idempotency_key is not None:
                if principal.order_id is not None:  # a customer's keys are its own: none claims the storefront's
                    idempotency_key = f"{principal.key_id}/{idempotency_key}"
                request_hash = hashlib.sha256(msgspec.json.encode(body)).digest()
                earlier = await repos.claim_idempotency_key(principal.merchant_id, idempotency_key, request_hash, case_id, now)
                if earlier is not None:
                    earlier_hash, earlier_case_id = earlier
                    if earlier_hash != request_hash:
                        raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
                    case = await case_for(repos, principal, earlier_case_id)
                    return await self._view(repos, case, Audience.STOREFRONT), True
            policy, facts = await self._facts(repos, principal, body, lock_order=True)
            verdict = policy.evaluate(facts)
            decision = verdict.decision
            if not decision.eligible:
                failed = [o for o in decision.outcomes if o.result == RuleResult.FAIL]
                raise PolicyViolation(
                    "the policy does not allow this case: " + "; ".join(o.detail for o in failed), decision.outcomes
                )
            order = facts.order
            case = Case.open(
                case_id=case_id,
                merchant_id=principal.merchant_id,
                order_id=order.order_id,
                customer_id=order.customer.id,
                case_type=body.type,
                items=[_item_from(order, item) for item in body.items],
                resolution=facts.resolution,
                decision=decision,
                money=verdict.money,
                actor=actor_of(principal),
                at=now,
                customer_note=body.customer_note,
                issue_description=body.issue_description,
            )
            if self.return_rate.applies(facts.customer):
                case.flags = [HIGH_RETURN_RATE]
                history = facts.customer
                counts = {"items_returned_90d": history.items_returned_90d, "items_purchased_90d": history.items_purchased_90d}
                case.record("flagged", SYSTEM, now, {"flag": HIGH_RETURN_RATE, **counts})
            first_step = CaseAction.AUTO_APPROVE if decision.auto_approve else CaseAction.SUBMIT_FOR_REVIEW
            case.apply(first_step, actor_of(principal), now, {"policy_version": decision.policy_version})
            if case.state == CaseState.APPROVED:
                await self._refund_if_kept(repos, case, actor_of(principal), now)
                await self._plan_label(repos, case, order, now)
            self.restart_sla(case, now)
            await repos.add_case(case)
            return await self._view(repos, case, Audience.STOREFRONT), False

    async def _facts(
        self, repos: Repositories, principal: Principal, body: CaseIn, *, lock_order: bool = False
    ) -> tuple[Policy, Facts]:
        """The facts of a would-be case, from the request."""
        _refuse_customer_prices(principal, body)
        order = await repos.get_order(principal.merchant_id, body.order_id, for_update=lock_order)
        if order is None or not principal.may_see(order.order_id, order.customer.id):
            raise InvalidRequest(f"no order {body.order_id}", [{"field": "order_id", "message": "no such order; PUT it first"}])
        _check_case_request(order, body)
        items = [_item_from(order, item) for item in body.items]
        resolution = (body.resolution or Resolution.REFUND) if body.type == CaseType.RETURN else None
        policy = await self.policies.in_force(repos, principal.merchant_id)
        facts = await self._assemble(repos, order, body.type, resolution, items, photo_count=0, case_id=None)
        return policy, facts

    async def _case_facts(self, repos: Repositories, case: Case, order: Order) -> tuple[Policy, Facts]:
        """The facts of an open case as it stands, under the policy version it was decided by."""
        policy = await self.policies.at_version(repos, case.merchant_id, case.decision.policy_version)
        facts = await self._assemble(
            repos, order, case.type, case.resolution, case.items, photo_count=case.decision.photo_count, case_id=case.id
        )
        return policy, msgspec.structs.replace(facts, kept_by_agent=case.kept_by_agent)

    async def _assemble(
        self,
        repos: Repositories,
        order: Order,
        case_type: CaseType,
        resolution: Resolution | None,
        items: list[CaseItem],
        *,
        photo_count: int,
        case_id: str | None,
    ) -> Facts:
        now = self.clock()
        commitments = await repos.order_commitments(order.merchant_id, order.order_id, exclude_case_id=case_id)
        activity = await repos.customer_activity(order.merchant_id, order.customer.id, now - HISTORY_WINDOW)
        item_facts = []
        for item in items:
            line = order.line(item.line_id)
            assert line is not None  # checked when the case was requested
            item_facts.append(
                ItemFacts(
                    line_id=line.line_id,
                    sku=line.sku,
                    category=line.category,
                    quantity=item.quantity,
                    unit_price=item.unit_price,
                    reason=item.reason,
                    final_sale=line.final_sale,
                    purchased_quantity=line.quantity,
                    already_claimed_quantity=commitments.claimed_quantities.get(line.line_id, 0),
                    note=item.note,
                    replacement_sku=item.replacement_sku,
                    replacement_unit_price=item.replacement_unit_price,
                    condition=item.condition,
                    received_quantity=item.received_quantity,
                    graded_percent=item.graded_percent,
                    decided_responsibility=item.decided_responsibility,
                )
            )
        return Facts(
            case_type=case_type,
            resolution=resolution,
            order=order,
            items=item_facts,
            now=now,
            photo_count=photo_count,
            customer=CustomerHistory(
                items_purchased_90d=activity.items_purchased,
                items_returned_90d=activity.items_returned,
                flagged=activity.flagged,
            ),
            order_remaining_refundable=max(0, order.payment.captured_amount - commitments.promised_amount),
            shipping_already_refunded=commitments.shipping_refunded,
        )

    # ----------------------------------------------------------------- reading

    async def get_case(self, principal: Principal, case_id: str, audience: Audience) -> CaseView:
        async with self.db.reading() as repos:
            case = await case_for(repos, principal, case_id)
            view = await self._view(repos, case, audience)
            if audience == Audience.STOREFRONT:  # what the customer reads on the portal's status page
                view.timeline = timeline_view(await repos.case_events(case.merchant_id, case.id))
                if "return-shipment" in view.allowed_actions:
                    settings = await repos.mail_settings(case.merchant_id)
                    view.return_address = settings.return_address if settings else None
            return view

    async def list_cases(
        self, principal: Principal, filters: CaseFilter, audience: Audience, *, sort: str, limit: int, cursor: str | None
    ) -> CaseList:
        if principal.order_id is not None:  # a customer's credential lists its own order's cases
            if filters.order_id not in (None, principal.order_id) or filters.customer_id not in (None, principal.customer_id):
                return CaseList(items=[], next_cursor=None)
            filters = msgspec.structs.replace(filters, order_id=principal.order_id, customer_id=principal.customer_id)
        async with self.db.reading() as repos:
            page = await repos.list_cases(principal.merchant_id, filters, sort=sort, limit=limit, cursor=cursor)
            views = await self._views(repos, principal.merchant_id, page.items, audience)
        return CaseList(items=views, next_cursor=page.next_cursor)

    async def counts(self, principal: Principal) -> CaseCounts:
        async with self.db.reading() as repos:
            return CaseCounts(counts=await repos.case_counts(principal.merchant_id))

    async def _view(self, repos: Repositories, case: Case, audience: Audience) -> CaseView:
        return (await self._views(repos, case.merchant_id, [case], audience))[0]

    async def _views(self, repos: Repositories, merchant_id: str, cases: list[Case], audience: Audience) -> list[CaseView]:
        """Cases with their refunds, photos and labels, in at most three queries however many cases
        there are, and none for cases that cannot have any (the hot paths: opening, reading)."""
        refunds: dict[str, list[RefundView]] = {}
        with_refunds = [case.id for case in cases if case.state not in NO_REFUNDS_YET]
        for refund in await repos.case_refunds(merchant_id, with_refunds) if with_refunds else []:
            refunds.setdefault(refund.case_id, []).append(refund_view(refund))
        photos: dict[str, list[PhotoView]] = {}
        with_photos = [case.id for case in cases if case.decision.photo_count]
        for photo in await repos.case_photos(merchant_id, with_photos) if with_photos else []:
            photos.setdefault(photo.case_id, []).append(photo_view(photo, audience))
        with_labels = [case.id for case in cases if case.state not in NO_LABEL_YET] if self.carrier_name else []
        labels = {label.case_id: label for label in await repos.case_labels(merchant_id, with_labels)} if with_labels else {}
        return [
            case_view(case, audience, refunds.get(case.id, []), photos.get(case.id, []), labels.get(case.id)) for case in cases
        ]

    async def events(self, principal: Principal, case_id: str) -> EventList:
        async with self.db.reading() as repos:
            await repos.get_case(principal.merchant_id, case_id)  # 404 for another merchant's case
            events = await repos.case_events(principal.merchant_id, case_id)
        return EventList(items=[event_view(event) for event in events])

    # ----------------------------------------------------------------- changing cases

    async def change(
        self,
        principal: Principal,
        case_id: str,
        if_match: frozenset[int] | None,
        step: Step,
        audience: Audience = Audience.STOREFRONT,
    ) -> CaseView:
        """The one shape of every case change: load, check the expected version, let the
        domain change it, save only if nobody else did meanwhile. Answers the case as
        ``audience`` sees it (the storefront's by default: it shows the least).

        With ``If-Match`` a concurrent change is the caller's problem (412). Without it the
        caller asked for the change on whatever the case is now, so a lost race is retried on
        the fresh case, where the domain decides again (e.g. a second approval becomes 409)."""
        attempts_left = CHANGE_ATTEMPTS
        while True:
            try:
                async with self.db.transaction() as repos:
                    case = await case_for(repos, principal, case_id)
                    loaded_version, loaded_state = case.version, case.state
                    if if_match is not None and loaded_version not in if_match:
                        wanted = ", ".join(str(version) for version in sorted(if_match))
                        raise VersionConflict(f"case {case_id} is at version {loaded_version}, not {wanted}")
                    at = self.clock()
                    await step(repos, case, actor_of(principal), at)
                    if case.state != loaded_state:
                        self.restart_sla(case, at)
                    await repos.save_case(case, loaded_version)
                    return await self._view(repos, case, audience)
            except VersionConflict:
                attempts_left -= 1
                if if_match is not None or attempts_left == 0:
                    raise

    async def auto_close_due(self, after: timedelta, limit: int = 50) -> int:
        """Close the exchanges and repairs that have waited ``after`` since their item went out
        (``replacement_shipped``, ``shipped_back``) and nobody closed: done by the system, with
        the same events, webhooks and survey request as an agent's close. Each case is locked
        (others are skipped), so any number of workers may run this; answers how many closed."""
        at = self.clock()
        why = {"why": "nobody closed it after shipping", "after_days": after / timedelta(days=1)}
        async with self.db.transaction() as repos:
            cases = await repos.claim_idle_cases(list(AUTO_CLOSED), at - after, limit)
            for case in cases:
                loaded_version = case.version
                case.apply(CaseAction.CLOSE, SYSTEM, at, why)
                self.restart_sla(case, at)
                await repos.save_case(case, loaded_version)
        return len(cases)

    async def cancel(self, principal: Principal, case_id: str, if_match: frozenset[int] | None) -> CaseView:
        async def cancel(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            case.apply(CaseAction.CANCEL, actor, at)
            await release_label(repos, case, at)

        return await self.change(principal, case_id, if_match, cancel)

    async def report_return_shipment(
        self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: ShipmentIn
    ) -> CaseView:
        return await self.change(principal, case_id, if_match, shipping(CaseAction.SHIP, "return", body))

    async def provide_info(
        self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: ProvideInfoIn
    ) -> CaseView:
        return await self.change(principal, case_id, if_match, transition(CaseAction.PROVIDE_INFO, {"message": body.message}))

    async def approve(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: ApproveIn) -> CaseView:
        async def approve(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            original_refund_total = case.money.refund_total
            overridden = {o.rule: o.reason for o in body.overrides}
            unknown = sorted(set(overridden) - {o.rule for o in case.decision.outcomes})
            if unknown:
                raise InvalidRequest(
                    "no such rule on this case's decision",
                    [{"field": "overrides.rule", "message": f"unknown rule '{rule}'"} for rule in unknown],
                )
            outcomes = [
                msgspec.structs.replace(o, overridden_by=actor.id, override_reason=overridden[o.rule])
                if o.rule in overridden
                else o
                for o in case.decision.outcomes
            ]
            blocking = [
                o
                for o in outcomes
                if o.result in (RuleResult.FAIL, RuleResult.REVIEW) and o.overridden_by is None and o.rule == "photo_evidence"
            ]
            if blocking:
                raise PolicyViolation(
                    "photo evidence is still missing; wait for the photos or override 'photo_evidence' with a reason",
                    blocking,
                )
            original = [msgspec.to_builtins(o) for o in case.decision.outcomes if o.rule in overridden]
            case.decision = msgspec.structs.replace(case.decision, outcomes=outcomes)
            decided = _decide_responsibility(case, body.responsibility)
            if body.keep_item:
                if case.type != CaseType.RETURN:
                    raise InvalidRequest(
                        "only a return is refunded without coming back",
                        [{"field": "keep_item", "message": f"a {case.type} cannot keep the item"}],
                    )
                case.kept_by_agent = True
            order = None
            if decided or body.keep_item or body.money_override is not None:
                order = await _lock_order(repos, case)
            if decided or body.keep_item:
                assert order is not None
                policy, facts = await self._case_facts(repos, case, order)
                verdict = policy.recompute_money(case.decision, facts)
                case.decision, case.money = verdict.decision, verdict.money
            if body.money_override is not None:
                assert order is not None
                remaining = await self._left_for(repos, case, order)
                if body.money_override.refund_total > remaining:
                    raise RefundExceedsCaptured(
                        f"the order has {to_major(remaining, case.money.currency)} {case.money.currency} left to refund",
                        amount=body.money_override.refund_total,
                        remaining=remaining,
                    )
                case.money_override = body.money_override.refund_total
                case.money_override_record = MoneyOverrideRecord(reason=body.money_override.reason, by=actor, at=at)
                _lay_override(case)
            case.apply(
                CaseAction.APPROVE,
                actor,
                at,
                {
                    "note": body.note,
                    "overrides": msgspec.to_builtins(body.overrides),
                    "original_outcomes": original,
                    "money_override": msgspec.to_builtins(body.money_override),
                    "original_refund_total": original_refund_total,
                    "responsibility": decided,
                    "keep_item": body.keep_item,
                },
            )
            await self._refund_if_kept(repos, case, actor, at)
            await self._plan_label(repos, case, order, at)

        return await self.change(principal, case_id, if_match, approve, Audience.AGENT)

    async def reject(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: RejectIn) -> CaseView:
        """The reason and its note are for the customer: both show in the storefront's view."""

        async def reject(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            case.apply(CaseAction.REJECT, actor, at, {"reason": body.reason, "note": body.note})
            case.rejection = Rejection(reason=body.reason, note=body.note, at=at)

        return await self.change(principal, case_id, if_match, reject, Audience.AGENT)

    async def request_info(
        self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: RequestInfoIn
    ) -> CaseView:
        """The question stays on the case (``info_request``) for the customer to read; a later
        request replaces it."""

        async def ask(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            case.apply(CaseAction.REQUEST_INFO, actor, at, {"message": body.message})
            case.info_request = InfoRequest(message=body.message, at=at)

        return await self.change(principal, case_id, if_match, ask, Audience.AGENT)

    async def _plan_label(self, repos: Repositories, case: Case, order: Order | None, at: datetime) -> None:
        """A return label for the approved case, bought by the worker (see ``service.labels``)."""
        if self.carrier_name is None or case.state != CaseState.APPROVED:
            return
        if order is None:
            order = await repos.get_order(case.merchant_id, case.order_id)
            assert order is not None  # a case keeps its order
        await plan_label(repos, case, order, self.carrier_name, at)

    async def price_label(
        self,
        repos: Repositories,
        case: Case,
        amount: int,
        currency: str,
        actor: Actor,
        at: datetime,
        event: str,
        data: dict[str, Any],
    ) -> None:
        """What the return label really cost (0 once voided) in place of the policy's flat
        ``label_cost``: the case's money worked out again under its decision, the policy still
        deciding who pays, and the change audited as ``event``. A label in another currency than
        the order's, or on an exchange or repair (whose shipping the policy prices as a whole),
        leaves the money as it was; the event says so."""
        field = "rules.return_shipping.label_cost"
        before = case.money
        repriced = case.type == CaseType.RETURN and currency == case.money.currency and not case.decision.keep_item
        if repriced:
            order = await _lock_order(repos, case)
            policy, facts = await self._case_facts(repos, case, order)
            prices = {**policy.decided_prices(case.decision, case.money.currency), field: amount}
            verdict = policy.recompute_money(msgspec.structs.replace(case.decision, prices=prices), facts)
            # the item comes back whatever the label cost: the label is bought
            case.decision = msgspec.structs.replace(verdict.decision, keep_item=False)
            case.money = verdict.money
            if case.money_override is not None:
                _lay_override(case, await self._left_for(repos, case, order))
        case.record(
            event,
            actor,
            at,
            {
                **data,
                "amount": amount,
                "currency": currency,
                "money_reworked": repriced,
                "customer_share": {
                    "before": before.return_shipping.customer_share,
                    "after": case.money.return_shipping.customer_share,
                },
                "refund_total": {"before": before.refund_total, "after": case.money.refund_total},
            },
        )

    async def _left_for(self, repos: Repositories, case: Case, order: Order) -> int:
        """What ``order`` (held by the caller, so no other case takes it meanwhile) has left to pay
        back once its other live cases are counted."""
        commitments = await repos.order_commitments(case.merchant_id, case.order_id, exclude_case_id=case.id)
        return max(0, order.payment.captured_amount - commitments.promised_amount)

    async def assign(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: AssignIn) -> CaseView:
        async def assign(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            case.record("assigned", actor, at, {"from": case.assignee, "to": body.assignee})
            case.assignee = body.assignee

        return await self.change(principal, case_id, if_match, assign, Audience.AGENT)

    async def add_note(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: NoteIn) -> CaseView:
        async def note(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            case.notes = [*case.notes, Note(author=actor.id, text=body.text, at=at)]
            case.record("note_added", actor, at, {"text": body.text})

        return await self.change(principal, case_id, if_match, note, Audience.AGENT)

    async def close(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: CloseIn) -> CaseView:
        return await self.change(principal, case_id, if_match, transition(CaseAction.CLOSE, {"note": body.note}), Audience.AGENT)

    async def ship_replacement(
        self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: ShipmentIn
    ) -> CaseView:
        return await self.change(
            principal, case_id, if_match, shipping(CaseAction.SHIP_REPLACEMENT, "replacement", body), Audience.AGENT
        )

    async def ship_back(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: ShipmentIn) -> CaseView:
        return await self.change(principal, case_id, if_match, shipping(CaseAction.SHIP_BACK, "ship_back", body), Audience.AGENT)

    async def diagnose(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: DiagnoseIn) -> CaseView:
        """In warranty: repair it. Out of warranty: quote a price the customer accepts or declines."""
        if not body.in_warranty and body.quote_amount is None:
            raise InvalidRequest(
                "a repair out of warranty needs a quote",
                [{"field": "quote_amount", "message": "required when in_warranty is false"}],
            )

        async def diagnose(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            quote = None if body.in_warranty else body.quote_amount
            action = CaseAction.REPAIR_IN_WARRANTY if body.in_warranty else CaseAction.QUOTE
            case.apply(action, actor, at, {"finding": body.finding, "in_warranty": body.in_warranty, "quote_amount": quote})
            case.diagnosis = Diagnosis(finding=body.finding, in_warranty=body.in_warranty, quote_amount=quote, at=at)

        return await self.change(principal, case_id, if_match, diagnose, Audience.AGENT)

    async def answer_quote(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, accept: bool) -> CaseView:
        """The customer's answer: accepted, the quote is due; declined, the item goes back unrepaired."""

        async def answer(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            quote = case.diagnosis.quote_amount if case.diagnosis else None
            case.apply(CaseAction.ACCEPT_QUOTE if accept else CaseAction.DECLINE_QUOTE, actor, at, {"quote_amount": quote})
            if accept and quote:
                case.money = msgspec.structs.replace(case.money, difference_due=quote)

        return await self.change(principal, case_id, if_match, answer)

    async def complete_repair(
        self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: CompleteRepairIn
    ) -> CaseView:
        async def complete(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            if case.state != CaseState.REPAIRING:
                raise InvalidTransition("case", str(case.state), "complete_repair")
            case.record("repair_completed", actor, at, {"note": body.note})

        return await self.change(principal, case_id, if_match, complete, Audience.AGENT)

    async def survey(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: SurveyIn) -> CaseView:
        """Once, after the case is closed."""

        async def answer(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            if case.state != CaseState.CLOSED:
                raise InvalidTransition("case", str(case.state), "survey")
            if case.survey is not None:
                raise SurveyAlreadyAnswered(f"the survey of case {case.id} was answered at {case.survey.at.isoformat()}")
            case.survey = Survey(rating=body.rating, comment=body.comment, at=at)
            case.record("survey_submitted", actor, at, {"rating": body.rating, "comment": body.comment})

        return await self.change(principal, case_id, if_match, answer)

    async def store_credit(self, principal: Principal, customer_id: str) -> StoreCreditView:
        async with self.db.reading() as repos:
            grants = await repos.store_credit_grants(principal.merchant_id, customer_id)
        balances: dict[str, int] = {}
        for grant in grants:
            balances[grant.currency] = balances.get(grant.currency, 0) + grant.amount
        return StoreCreditView(
            customer_id=customer_id,
            balances=[StoreCreditBalance(currency=c, amount=a) for c, a in sorted(balances.items())],
            grants=[
                StoreCreditGrantView(
                    id=g.id, case_id=g.case_id, amount=g.amount, bonus=g.bonus, currency=g.currency, created_at=g.created_at
                )
                for g in grants
            ],
        )

    async def evidence_added(self, repos: Repositories, case: Case, actor: Actor, at: datetime, match: PhotoMatch | None) -> None:
        """A photo arrived: the photo rule looks again (under the case's policy version; the rest
        of the decision stands), a case waiting on evidence goes back to review, and a picture
        already seen on another customer's case flags this one."""
        order = await repos.get_order(case.merchant_id, case.order_id)
        assert order is not None
        count = case.decision.photo_count + 1
        policy = await self.policies.at_version(repos, case.merchant_id, case.decision.policy_version)
        facts = await self._assemble(repos, order, case.type, case.resolution, case.items, photo_count=count, case_id=case.id)
        fresh = policy.reevaluate("photo_evidence", facts)
        outcomes = [
            msgspec.structs.replace(fresh, overridden_by=o.overridden_by, override_reason=o.override_reason)
            if fresh is not None and o.rule == fresh.rule
            else o
            for o in case.decision.outcomes
        ]
        case.decision = msgspec.structs.replace(
            case.decision,
            outcomes=outcomes,
            photo_count=count,
            requires_photos=fresh is not None and fresh.result == RuleResult.REVIEW,
            requires_review=any(o.result == RuleResult.REVIEW for o in outcomes),
        )
        if match is not None and REUSED_PHOTO not in case.flags:
            case.flags = [*case.flags, REUSED_PHOTO]
            case.record("flagged", SYSTEM, at, {"flag": REUSED_PHOTO, "matches_case_id": match.case_id})
        if case.state == CaseState.INFO_REQUESTED:
            case.apply(CaseAction.PROVIDE_INFO, actor, at, {"photos": count})

    async def receive(self, principal: Principal, case_id: str, if_match: frozenset[int] | None, body: ReceiveIn) -> CaseView:
        """Record what arrived and in what condition, settle the money on what arrived (under the
        case's policy version), then move on: a return pays out, an exchange waits for its
        replacement (refunding a cheaper one), a repair goes to diagnosis."""
        return await self.change(principal, case_id, if_match, self.receive_step(body), Audience.AGENT)

    def receive_step(self, body: ReceiveIn) -> Step:
        """The receipt as a step: an agent's, or the carrier's where the policy lets it receive."""

        async def receive(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
            arrived = _arrivals(case, body)
            order = await _lock_order(repos, case)
            for item in case.items:
                got = arrived.get(item.line_id)
                item.received_quantity = got.quantity if got else 0
                item.condition = got.condition if got else Condition.MISSING
                item.graded_percent = got.value_percent if got else None
            # only a case approved before approval decided responsibility can still be undecided:
            # it keeps the payer it was quoted then
            quoted = case.money.return_shipping.payer == Payer.CUSTOMER
            decided = _decide_responsibility(case, [], Responsibility.CUSTOMER if quoted else Responsibility.MERCHANT)
            policy, facts = await self._case_facts(repos, case, order)
            verdict = policy.evaluate(facts, under=case.decision)
            undecided = [o for o in verdict.decision.outcomes if o.rule == "condition_grading" and o.result == RuleResult.REVIEW]
            if undecided:
                raise InvalidRequest(
                    undecided[0].detail,
                    [{"field": "items[].value_percent", "message": "the policy leaves this condition's value to the agent"}],
                )
            short = [
                {"line_id": i.line_id, "claimed": i.quantity, "received": i.received_quantity}
                for i in case.items
                if (i.received_quantity or 0) < i.quantity
            ]
            before = case.money
            case.money = verdict.money
            money_notes = [o.detail for o in verdict.decision.outcomes if o.rule in ("condition_grading", CAPTURED_LIMIT)]
            if case.money_override is not None:
                money_notes.append(await self._override_at_receipt(repos, case, order, bool(short)))
            case.apply(
                CaseAction.RECEIVE,
                actor,
                at,
                {
                    "items": msgspec.to_builtins(body.items),
                    "short_shipment": short,
                    "note": body.note,
                    "refund_total": {"before": before.refund_total, "after": case.money.refund_total},
                    "money_notes": money_notes,
                    **({"responsibility": decided} if decided else {}),
                },
            )
            await self._after_receipt(repos, case, order, actor, at)

        return receive

    async def _override_at_receipt(self, repos: Repositories, case: Case, order: Order, short: bool) -> str:
        """The agent's approved figure was for everything the case asked for: it stands when all of
        it arrived. With items short or missing, the policy's figure on what did arrive applies,
        capped by the override, so no override pays for goods that never came back. Answers why,
        for the receipt's event."""
        assert case.money_override is not None
        policy_figure = case.money.store_credit_total if case.resolution == Resolution.STORE_CREDIT else case.money.refund_total
        if short and policy_figure <= case.money_override:
            return (
                "the agent's approved figure is set aside: not everything came back, so the policy's figure "
                "on what arrived applies"
            )
        left = await self._left_for(repos, case, order)
        _lay_override(case, left)
        capped = " (capped by what the order has left)" if case.money_override > left else ""
        if short:
            return f"not everything came back; the agent's approved figure stands, below the policy's on what arrived{capped}"
        return f"the agent's approved figure stands over the policy's{capped}"

    async def _after_receipt(self, repos: Repositories, case: Case, order: Order, actor: Actor, at: datetime) -> None:
        if case.type == CaseType.REPAIR:
            case.apply(CaseAction.START_DIAGNOSIS, SYSTEM, at)
            return
        if case.type == CaseType.EXCHANGE:
            if case.money.refund_total > 0:  # a cheaper replacement: the difference goes back
                await self.refunds.open_refund(repos, case, order, case.money.refund_total, at)
            return
        await self._pay_back(repos, case, order, actor, at, CaseAction.START_REFUND)

    async def _pay_back(
        self, repos: Repositories, case: Case, order: Order, actor: Actor, at: datetime, start: CaseAction
    ) -> None:
        """A return's money: store credit granted at once, or a refund sent through the gateway,
        or, with nothing owed, the case closed. ``start`` is how the case gets to paying:
        ``START_REFUND`` on receipt, ``REFUND_WITHOUT_RETURN`` when the customer keeps the item."""
        if case.money.store_credit_total > 0:
            grant = StoreCreditGrant(
                id=new_id("sc"),
                customer_id=case.customer_id,
                case_id=case.id,
                amount=case.money.store_credit_total,
                bonus=case.money.store_credit_bonus,
                currency=case.money.currency,
                created_at=at,
            )
            await repos.add_store_credit_grant(case.merchant_id, grant)
            data = {"store_credit": grant.amount, "bonus": grant.bonus, "currency": grant.currency, "grant_id": grant.id}
            case.apply(start, SYSTEM, at, data)
            case.apply(CaseAction.REFUND_SUCCEEDED, SYSTEM, at, data)
            case.apply(CaseAction.CLOSE, SYSTEM, at, {"why": "store credit granted"})
        elif case.money.refund_total > 0:
            refund = await self.refunds.open_refund(repos, case, order, case.money.refund_total, at)
            case.apply(start, SYSTEM, at, {"refund_id": refund.id, "amount": refund.amount})
        elif start == CaseAction.START_REFUND:
            case.apply(CaseAction.CLOSE, actor, at, {"why": "nothing to refund for what arrived"})
        else:  # kept, and nothing owed: through the same steps, with nothing paid
            case.apply(start, SYSTEM, at, {"amount": 0})
            case.apply(CaseAction.REFUND_SUCCEEDED, SYSTEM, at, {"amount": 0})
            case.apply(CaseAction.CLOSE, SYSTEM, at, {"why": "nothing to refund"})

    async def _refund_if_kept(self, repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
        """Keep-the-item: an approved return worth less than its label is paid back at once."""
        if case.type != CaseType.RETURN or not case.decision.keep_item:
            return
        order = await _lock_order(repos, case)
        await self._pay_back(repos, case, order, actor, at, CaseAction.REFUND_WITHOUT_RETURN)


Step = Callable[[Repositories, Case, Actor, datetime], Awaitable[None]]


async def _lock_order(repos: Repositories, case: Case) -> Order:
    """The case's order, locked for a change to the money. Two changes of one case may both
    have loaded it before either locked the order; the one that waited for the lock then holds a
    stale case (say, approved, while the other already paid it out), so it is told as a
    ``VersionConflict`` and ``CaseService.change`` runs it again on the fresh case (a 409 from
    the domain, or 412 under If-Match), never a refund worked out on stale money."""
    order = await repos.get_order(case.merchant_id, case.order_id, for_update=True)
    assert order is not None  # a case keeps its order
    loaded_version = case.version - len(case.pending_events)
    if (await repos.get_case(case.merchant_id, case.id)).version != loaded_version:
        raise VersionConflict(f"case {case.id} changed while waiting for its order")
    return order


def _lay_override(case: Case, left: int | None = None) -> None:
    """The agent's approved figure in place of the policy's, as a refund or as store credit
    (without the bonus: the agent named the amount), never above what the order has ``left``."""
    assert case.money_override is not None
    amount = case.money_override if left is None else min(case.money_override, left)
    if case.resolution == Resolution.STORE_CREDIT:
        case.money = msgspec.structs.replace(case.money, store_credit_total=amount, store_credit_bonus=0)
    else:
        case.money = msgspec.structs.replace(case.money, refund_total=amount)


def _decide_responsibility(
    case: Case, decisions: list[ResponsibilityIn], default: Responsibility = Responsibility.MERCHANT
) -> list[dict[str, Any]]:
    """Who is responsible for each item whose reason (``other``) leaves it unknown: the agent's
    word, else ``default``: on approval the merchant's, since the customer was quoted no label for
    it and nothing charges them without an agent saying so. Answers the decisions for the audit
    trail."""
    items = {item.line_id: item for item in case.items}
    given: dict[str, str] = {}
    errors = []
    for index, decision in enumerate(decisions):
        field = f"responsibility[{index}].line_id"
        item = items.get(decision.line_id)
        if item is None:
            errors.append({"field": field, "message": f"line '{decision.line_id}' is not on this case"})
        elif decision.line_id in given:
            errors.append({"field": field, "message": "each line once"})
        elif responsibility(item.reason) != Responsibility.UNKNOWN:
            errors.append(
                {"field": field, "message": f"reason '{item.reason}' already makes the {item.responsibility} responsible"}
            )
        given[decision.line_id] = decision.responsibility
    if errors:
        raise InvalidRequest("responsibility is decided only for this case's items with reason 'other'", errors)
    decided = []
    for item in case.items:
        if item.responsibility == Responsibility.UNKNOWN:
            who = given.get(item.line_id)
            item.decided_responsibility = Responsibility(who or default)
            decided.append(
                {"line_id": item.line_id, "responsibility": str(item.decided_responsibility), "by_default": who is None}
            )
    return decided


def transition(action: CaseAction, data: dict[str, Any] | None = None) -> Step:
    """A step that only moves the case by ``action``."""

    async def step(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
        case.apply(action, actor, at, data)

    return step


def shipping(action: CaseAction, direction: str, body: ShipmentIn) -> Step:
    """A step that moves the case by a shipping ``action`` and records the parcel."""

    async def step(repos: Repositories, case: Case, actor: Actor, at: datetime) -> None:
        case.apply(action, actor, at, {"carrier": body.carrier, "tracking_number": body.tracking_number})
        case.shipments = [*case.shipments, Shipment(direction, body.carrier, body.tracking_number, at)]

    return step


def _arrivals(case: Case, body: ReceiveIn) -> dict[str, ReceivedItemIn]:
    claimed = {item.line_id: item for item in case.items}
    errors = []
    arrived: dict[str, ReceivedItemIn] = {}
    for index, item in enumerate(body.items):
        where = f"items[{index}]"
        if item.line_id not in claimed:
            errors.append({"field": f"{where}.line_id", "message": f"line '{item.line_id}' is not on this case"})
        elif item.line_id in arrived:
            errors.append({"field": f"{where}.line_id", "message": "each line once"})
        elif item.quantity > claimed[item.line_id].quantity:
            errors.append({"field": f"{where}.quantity", "message": f"more than the {claimed[item.line_id].quantity} claimed"})
        if item.condition == Condition.MISSING and item.quantity:
            errors.append({"field": f"{where}.quantity", "message": "a missing item has quantity 0"})
        arrived[item.line_id] = item
    if errors:
        raise InvalidRequest("the receipt does not match the case", errors)
    return arrived


def _order_from(merchant_id: str, order_id: str, body: OrderIn) -> Order:
    check_currency(body.currency)
    seen: set[str] = set()
    errors = []
    for index, line in enumerate(body.lines):
        if line.line_id in seen:
            errors.append({"field": f"lines[{index}].line_id", "message": f"duplicate line_id '{line.line_id}'"})
        seen.add(line.line_id)
    naive = time_zone_errors(placed_at=body.placed_at, delivered_at=body.delivered_at)
    errors += naive  # the DTO refuses these already; compared, one with and one without would raise
    if not naive and body.delivered_at is not None and body.delivered_at < body.placed_at:
        errors.append({"field": "delivered_at", "message": "cannot be before placed_at"})
    if errors:
        raise InvalidRequest("the order is not valid", errors)
    return Order(
        merchant_id=merchant_id,
        order_id=order_id,
        currency=body.currency,
        placed_at=body.placed_at,
        delivered_at=body.delivered_at,
        customer=Customer(id=body.customer.id, email=body.customer.email, language=body.customer.language),
        lines=[
            OrderLine(
                line_id=line.line_id,
                sku=line.sku,
                title=line.title,
                quantity=line.quantity,
                unit_price=line.unit_price,
                category=line.category,
                final_sale=line.final_sale,
            )
            for line in body.lines
        ],
        shipping_total=body.shipping_total,
        payment=Payment(
            gateway=body.payment.gateway,
            reference=body.payment.reference,
            captured_amount=body.payment.captured_amount,
        ),
        shipping_address=msgspec.convert(msgspec.to_builtins(body.shipping_address), Address) if body.shipping_address else None,
    )


def _refuse_customer_prices(principal: Principal, body: CaseIn) -> None:
    """Prices are the merchant's: a customer's portal credential names a replacement but never
    its price (the storefront's key does; without one, the replacement costs what the item did).
    ``replacement_unit_price`` is the only amount a customer's request could carry."""
    if principal.order_id is None:  # a merchant's key
        return
    errors = [
        {"field": f"items[{index}].replacement_unit_price", "message": "a customer may not set a price; the storefront does"}
        for index, item in enumerate(body.items)
        if item.replacement_unit_price is not None
    ]
    if errors:
        raise InvalidRequest("a customer's request may not set prices", errors)


def _check_case_request(order: Order, body: CaseIn) -> None:
    errors = []
    seen: set[str] = set()
    for index, item in enumerate(body.items):
        where = f"items[{index}]"
        if order.line(item.line_id) is None:
            errors.append({"field": f"{where}.line_id", "message": f"order {order.order_id} has no line '{item.line_id}'"})
        if item.line_id in seen:
            errors.append({"field": f"{where}.line_id", "message": "each line may appear once per case"})
        seen.add(item.line_id)
        if item.reason == Reason.OTHER and not (item.note or "").strip():
            errors.append({"field": f"{where}.note", "message": "reason 'other' needs a note"})
        if body.type == CaseType.EXCHANGE and not item.replacement_sku:
            errors.append({"field": f"{where}.replacement_sku", "message": "an exchange names the replacement"})
    if body.type == CaseType.REPAIR and not (body.issue_description or "").strip():
        errors.append({"field": "issue_description", "message": "a repair describes the issue"})
    if body.type != CaseType.RETURN and body.resolution is not None:
        errors.append({"field": "resolution", "message": "only returns have a resolution"})
    if errors:
        raise InvalidRequest("the case request is not valid", errors)


def _item_from(order: Order, item: CaseItemIn) -> CaseItem:
    line = order.line(item.line_id)
    assert line is not None
    return CaseItem(
        line_id=line.line_id,
        sku=line.sku,
        quantity=item.quantity,
        unit_price=line.unit_price,
        reason=item.reason,
        note=item.note,
        replacement_sku=item.replacement_sku,
        replacement_unit_price=item.replacement_unit_price,
    )
