"""Every allowed and every forbidden transition of each table, against the lists written out
here from DESIGN.md §4 (not derived from the tables under test)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import msgspec
import pytest

from domain.cases import TABLES, Actor, Case, CaseAction, CaseState, CaseType
from domain.decision import CaseMoney, Decision, Payer, ShippingShares
from domain.errors import InvalidTransition
from domain.refunds import Refund, RefundAction, RefundStatus
from domain.statemachine import mermaid

AT = datetime(2026, 1, 1, tzinfo=UTC)
AGENT = Actor(id="key_agent", role="agent")

INTAKE = """
requested submit_for_review pending_review
requested auto_approve approved
pending_review approve approved
pending_review reject rejected
pending_review request_info info_requested
info_requested provide_info pending_review
approved ship in_transit
approved receive received
in_transit receive received
requested cancel cancelled
pending_review cancel cancelled
info_requested cancel cancelled
approved cancel cancelled
in_transit cancel cancelled
"""
EXPECTED = {
    CaseType.RETURN: INTAKE
    + """
approved refund_without_return refund_pending
received start_refund refund_pending
received close closed
refund_pending refund_succeeded refunded
refunded close closed
""",
    CaseType.EXCHANGE: INTAKE
    + """
received ship_replacement replacement_shipped
replacement_shipped close closed
""",
    CaseType.REPAIR: INTAKE
    + """
received start_diagnosis diagnosing
diagnosing repair_in_warranty repairing
diagnosing quote quote_pending
quote_pending accept_quote repairing
quote_pending decline_quote shipped_back
repairing ship_back shipped_back
shipped_back close closed
""",
}


def _parse(text: str) -> dict[tuple[str, str], str]:
    rows = [line.split() for line in text.splitlines() if line.strip()]
    return {(src, action): dst for src, action, dst in rows}


def _case(case_type: CaseType, state: CaseState) -> Case:
    money = CaseMoney("EUR", 0, 0, ShippingShares(Payer.CUSTOMER, 0, 0), 0, 0, 0, 0)
    decision = Decision(
        policy_version=0, eligible=True, requires_review=False, requires_photos=False, auto_approve=False, outcomes=[]
    )
    case = Case.open(
        case_id="case_1",
        merchant_id="m",
        order_id="o",
        customer_id="c",
        case_type=case_type,
        items=[],
        resolution=None,
        decision=decision,
        money=money,
        actor=AGENT,
        at=AT,
    )
    case.state = state
    case.take_events()
    return case


CASE_GRID = [(case_type, state, action) for case_type in CaseType for state, action in itertools.product(CaseState, CaseAction)]


@pytest.mark.parametrize(("case_type", "state", "action"), CASE_GRID, ids=str)
def test_case_transition(case_type: CaseType, state: CaseState, action: CaseAction) -> None:
    expected = _parse(EXPECTED[case_type]).get((state, action))
    case = _case(case_type, state)
    before = msgspec.json.encode(case)
    if expected is None:
        with pytest.raises(InvalidTransition) as raised:
            case.apply(action, AGENT, AT)
        assert raised.value.state == state
        assert msgspec.json.encode(case) == before, "a refused transition must leave the case unchanged"
    else:
        case.apply(action, AGENT, AT)
        assert case.state == expected
        assert case.version == 2
        [event] = case.take_events()
        assert (event.from_state, event.to_state, event.type, event.actor) == (state, expected, action, AGENT)


def test_tables_hold_exactly_the_expected_transitions() -> None:
    for case_type, table in TABLES.items():
        assert {(str(s), str(a)): str(d) for (s, a), d in table.items()} == _parse(EXPECTED[case_type])


REFUND_EXPECTED = _parse("""
pending submit submitted
pending fail failed
submitted succeed succeeded
submitted fail failed
submitted require_action requires_action
requires_action succeed succeeded
requires_action fail failed
requires_action cancel canceled
succeeded fail failed
""")


def _refund(status: RefundStatus) -> Refund:
    return Refund(
        id="rf_1",
        merchant_id="m",
        case_id="case_1",
        order_id="o",
        customer_id="cus_1",
        amount=100,
        currency="EUR",
        status=status,
        gateway="simulated",
        payment_reference="pi_1",
        attempt=1,
        created_at=AT,
        updated_at=AT,
    )


@pytest.mark.parametrize(("status", "action"), list(itertools.product(RefundStatus, RefundAction)), ids=str)
def test_refund_transition(status: RefundStatus, action: RefundAction) -> None:
    expected = REFUND_EXPECTED.get((status, action))
    refund = _refund(status)
    before = msgspec.json.encode(refund)
    if expected is None:
        with pytest.raises(InvalidTransition):
            refund.apply(action, AT)
        assert msgspec.json.encode(refund) == before
    else:
        refund.apply(action, AT, failure_reason="x" if expected == "failed" else None)
        assert refund.status == expected
        assert (refund.settled_at is not None) == (expected in ("succeeded", "failed", "canceled"))


def test_no_refund_status_moves_backwards() -> None:
    order = ["pending", "submitted", "requires_action"]
    for (src, _), dst in REFUND_EXPECTED.items():
        if dst in order:
            assert order.index(dst) > order.index(src)


def test_idempotency_key_is_deterministic_per_attempt() -> None:
    assert _refund(RefundStatus.PENDING).idempotency_key == _refund(RefundStatus.PENDING).idempotency_key == "rf_1:1"


def test_mermaid_is_drawn_from_the_table() -> None:
    diagram = mermaid(TABLES[CaseType.REPAIR])
    assert diagram.startswith("stateDiagram-v2")
    assert "    quote_pending --> shipped_back: decline_quote" in diagram
    assert diagram.count("-->") == len(TABLES[CaseType.REPAIR])


# How far along each refund status is: a report may only move a refund to a later rank. A
# succeeded refund that the gateway later fails (the bank sent it back) is the one step past 3.
RANK = {"pending": 0, "submitted": 1, "requires_action": 2, "succeeded": 3, "failed": 3, "canceled": 3}
LATER_FAILURE = (RefundStatus.SUCCEEDED, RefundStatus.FAILED)


@pytest.mark.parametrize(("current", "reported"), list(itertools.product(RefundStatus, RefundStatus)), ids=str)
def test_catch_up_moves_only_forward_to_the_reported_status(current: RefundStatus, reported: RefundStatus) -> None:
    from domain.refunds import catch_up

    refund = _refund(current)
    for action in catch_up(current, reported):
        refund.apply(action, AT)
    if RANK[reported] > RANK[current] or (current, reported) == LATER_FAILURE:
        assert refund.status == reported
    else:
        assert refund.status == current, "a stale, repeated or backward report must change nothing"
