"""Domain objects → response bodies, in one place."""

from __future__ import annotations

import msgspec

from domain.cases import Case, CaseAction, CaseEvent
from domain.orders import Order
from domain.refunds import Refund
from service.actions import Audience, endpoint_actions
from service.dto import (
    AddressIn,
    CaseItemView,
    CaseView,
    CustomerIn,
    EventView,
    InfoRequestView,
    LabelHoldView,
    LabelView,
    MoneyOverrideView,
    OrderLineView,
    OrderView,
    PaymentIn,
    PhotoView,
    RefundView,
    RejectionView,
    ShipmentView,
    TimelineEntryView,
)
from service.ports import OrderCommitments, Photo, ReturnLabel


def order_view(order: Order, commitments: OrderCommitments) -> OrderView:
    return OrderView(
        order_id=order.order_id,
        currency=order.currency,
        placed_at=order.placed_at,
        delivered_at=order.delivered_at,
        customer=CustomerIn(id=order.customer.id, email=order.customer.email, language=order.customer.language),
        lines=[
            OrderLineView(
                line_id=line.line_id,
                sku=line.sku,
                title=line.title,
                quantity=line.quantity,
                unit_price=line.unit_price,
                category=line.category,
                final_sale=line.final_sale,
                returnable_quantity=max(0, line.quantity - commitments.claimed_quantities.get(line.line_id, 0)),
            )
            for line in order.lines
        ],
        shipping_total=order.shipping_total,
        payment=PaymentIn(
            gateway=order.payment.gateway,
            reference=order.payment.reference,
            captured_amount=order.payment.captured_amount,
        ),
        refundable_amount=max(0, order.payment.captured_amount - commitments.promised_amount),
        shipping_address=msgspec.convert(msgspec.to_builtins(order.shipping_address), AddressIn)
        if order.shipping_address
        else None,
    )


def label_view(label: ReturnLabel, audience: Audience) -> LabelView:
    """The label; why it was held (the merchant's ceiling, the agent who decided) only for agents."""
    hold = label.hold if audience == Audience.AGENT else None
    return LabelView(
        status=label.status,  # type: ignore[arg-type]  # the table's CHECK keeps it one of them
        carrier=label.carrier,
        service=label.service,
        tracking_code=label.tracking_code,
        amount=label.amount,
        currency=label.currency,
        created_at=label.created_at,
        hold=LabelHoldView(
            reason=hold.reason,  # type: ignore[arg-type]  # one of the two
            carrier=hold.rate.carrier,
            service=hold.rate.service,
            amount=hold.rate.amount,
            currency=hold.rate.currency,
            ceiling=hold.ceiling,
            approved_by=hold.approved_by,
            approved_at=hold.approved_at,
        )
        if hold
        else None,
    )


def case_view(
    case: Case,
    audience: Audience,
    refunds: list[RefundView] | None = None,
    photos: list[PhotoView] | None = None,
    label: ReturnLabel | None = None,
) -> CaseView:
    """The case for ``audience``: the storefront's view says why (the agent's question, the
    rejection, an override's reason) but not what agents keep to themselves."""
    agent = audience == Audience.AGENT
    override = case.money_override_record
    return CaseView(
        id=case.id,
        order_id=case.order_id,
        customer_id=case.customer_id,
        type=case.type,
        state=case.state,
        items=[
            CaseItemView(
                line_id=item.line_id,
                sku=item.sku,
                quantity=item.quantity,
                unit_price=item.unit_price,
                reason=item.reason,
                responsibility=str(item.responsibility),
                note=item.note,
                replacement_sku=item.replacement_sku,
                replacement_unit_price=item.replacement_unit_price,
                received_quantity=item.received_quantity,
                condition=item.condition,
                graded_percent=item.graded_percent,
            )
            for item in case.items
        ],
        resolution=case.resolution,
        decision=case.decision if agent else case.decision.without_agent_details(),
        money=case.money,
        refunds=refunds or [],
        photos=photos or [],
        shipments=[
            ShipmentView(direction=s.direction, carrier=s.carrier, tracking_number=s.tracking_number, at=s.at)
            for s in case.shipments
        ],
        version=case.version,
        created_at=case.created_at,
        updated_at=case.updated_at,
        sla_due_at=case.sla_due_at,
        customer_note=case.customer_note,
        issue_description=case.issue_description,
        assignee=case.assignee if agent else None,
        flags=case.flags if agent else [],
        notes=case.notes if agent else [],
        diagnosis=case.diagnosis,
        survey=case.survey,
        allowed_actions=endpoint_actions(case, audience, label_held=label is not None and label.status == "held"),
        info_request=InfoRequestView(case.info_request.message, case.info_request.at) if case.info_request else None,
        rejection=RejectionView(case.rejection.reason, case.rejection.note, case.rejection.at) if case.rejection else None,
        money_override=MoneyOverrideView(case.money_override, override.reason, override.by.role, override.at)
        if override is not None and case.money_override is not None
        else None,
        label=label_view(label, audience) if label else None,
        delivered_at=case.delivered_at,
    )


# What a customer's timeline shows: every change of state, and the steps that keep it but that the
# customer sees happen. Notes, assignments, flags and refund retries are the agents' own.
CUSTOMER_EVENTS = frozenset({"created", "photo_added", "refund_succeeded", "repair_completed", "survey_submitted"}) | {
    str(action) for action in CaseAction
}


def timeline_view(events: list[CaseEvent]) -> list[TimelineEntryView]:
    """The customer's timeline, oldest first: event types and states only (never an event's
    data, which holds agents' notes and ids); a step recorded twice at one moment shows once."""
    entries: list[TimelineEntryView] = []
    for event in events:
        if event.type not in CUSTOMER_EVENTS:
            continue
        entry = TimelineEntryView(event=event.type, at=event.at, state=event.to_state)
        if entries and (entries[-1].event, entries[-1].at) == (entry.event, entry.at):
            entries[-1] = entry
        else:
            entries.append(entry)
    return entries


def event_view(event: CaseEvent) -> EventView:
    return EventView(
        type=event.type,
        actor_id=event.actor.id,
        actor_role=event.actor.role,
        at=event.at,
        from_state=event.from_state,
        to_state=event.to_state,
        data=event.data,
    )


def refund_view(refund: Refund) -> RefundView:
    return RefundView(
        id=refund.id,
        case_id=refund.case_id,
        order_id=refund.order_id,
        amount=refund.amount,
        currency=refund.currency,
        status=refund.status,
        gateway=refund.gateway,
        gateway_refund_id=refund.gateway_refund_id,
        failure_reason=refund.failure_reason,
        created_at=refund.created_at,
        settled_at=refund.settled_at,
        retried_by=refund.retried_by,
    )


def photo_view(photo: Photo, audience: Audience) -> PhotoView:
    """Which other (another customer's) case a photo matched is the agents' business."""
    url = f"/v1/cases/{photo.case_id}/photos/{photo.id}"
    return PhotoView(
        id=photo.id,
        case_id=photo.case_id,
        content_type=photo.content_type,
        width=photo.width,
        height=photo.height,
        sha256=photo.original_sha256,
        created_at=photo.created_at,
        url=url,
        thumbnail_url=url + "?size=thumb",
        matches_case_id=photo.matches_case_id if audience == Audience.AGENT else None,
    )
