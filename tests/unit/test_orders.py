"""Which changes to a stored order its cases and refunds lock (``locked_changes``), as a table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from domain.orders import Customer, Order, OrderHold, OrderLine, Payment, locked_changes

STORED = Order(
    merchant_id="m1",
    order_id="o1",
    currency="EUR",
    placed_at=datetime(2024, 5, 1, tzinfo=UTC),
    delivered_at=datetime(2024, 5, 3, tzinfo=UTC),
    customer=Customer(id="cus_1", email="a@example.com"),
    lines=[
        OrderLine(line_id="l1", sku="TSHIRT-M", title="T-shirt", quantity=2, unit_price=1999, category="apparel"),
        OrderLine(line_id="l2", sku="MUG", title="Mug", quantity=1, unit_price=1500),
    ],
    shipping_total=495,
    payment=Payment(gateway="stripe", reference="pi_1", captured_amount=5993),
)
CASE_ON_L1 = OrderHold(claimed_lines=frozenset({"l1"}), committed_amount=1499)


def _line(index: int, **changes: Any) -> list[OrderLine]:
    lines = list(STORED.lines)
    lines[index] = msgspec.structs.replace(lines[index], **changes)
    return lines


def _payment(**changes: Any) -> Payment:
    return msgspec.structs.replace(STORED.payment, **changes)


NEW_LINE = OrderLine(line_id="l3", sku="CAP", title="Cap", quantity=1, unit_price=900)

CASES = [
    # (what changes, the hold on the order, the fields locked)
    ("delivered_at", {"delivered_at": None}, CASE_ON_L1, []),
    ("placed_at", {"placed_at": datetime(2024, 4, 30, tzinfo=UTC)}, CASE_ON_L1, []),
    ("e-mail", {"customer": Customer(id="cus_1", email="b@example.com")}, CASE_ON_L1, []),
    ("claimed line's title", {"lines": _line(0, title="Tee")}, CASE_ON_L1, []),
    ("a new line", {"lines": [*STORED.lines, NEW_LINE]}, CASE_ON_L1, []),
    ("a higher capture", {"payment": _payment(captured_amount=6000)}, CASE_ON_L1, []),
    ("a lower capture above what is held", {"payment": _payment(captured_amount=1499)}, CASE_ON_L1, []),
    ("an unclaimed line", {"lines": _line(1, unit_price=1, sku="X")}, CASE_ON_L1, []),
    ("an unclaimed line removed", {"lines": STORED.lines[:1]}, CASE_ON_L1, []),
    ("shipping, not refunded", {"shipping_total": 0}, CASE_ON_L1, []),
    ("a capture below what is held", {"payment": _payment(captured_amount=1498)}, CASE_ON_L1, ["payment.captured_amount"]),
    ("the currency", {"currency": "USD"}, CASE_ON_L1, ["currency"]),
    ("the payment reference", {"payment": _payment(reference="pi_2")}, CASE_ON_L1, ["payment.reference"]),
    ("the gateway", {"payment": _payment(gateway="paypal")}, CASE_ON_L1, ["payment.gateway"]),
    ("the customer", {"customer": Customer(id="cus_2", email="a@example.com")}, CASE_ON_L1, ["customer.id"]),
    ("claimed line's sku", {"lines": _line(0, sku="TSHIRT-L")}, CASE_ON_L1, ["lines[0].sku"]),
    ("claimed line's price", {"lines": _line(0, unit_price=999)}, CASE_ON_L1, ["lines[0].unit_price"]),
    ("claimed line's quantity", {"lines": _line(0, quantity=3)}, CASE_ON_L1, ["lines[0].quantity"]),
    ("claimed line's category", {"lines": _line(0, category=None)}, CASE_ON_L1, ["lines[0].category"]),
    ("claimed line's final sale", {"lines": _line(0, final_sale=True)}, CASE_ON_L1, ["lines[0].final_sale"]),
    (
        "claimed line moved",
        {"lines": [STORED.lines[1], msgspec.structs.replace(STORED.lines[0], sku="Z")]},
        CASE_ON_L1,
        ["lines[1].sku"],
    ),
    ("claimed line removed", {"lines": STORED.lines[1:]}, CASE_ON_L1, ["lines"]),
    ("refunded shipping", {"shipping_total": 0}, OrderHold(frozenset({"l1"}), 1994, shipping_refunded=True), ["shipping_total"]),
    (
        "everything at once",
        {"currency": "USD", "customer": Customer(id="cus_2"), "payment": Payment("paypal", "pi_2", 0), "lines": STORED.lines[1:]},
        CASE_ON_L1,
        ["customer.id", "currency", "payment.gateway", "payment.reference", "payment.captured_amount", "lines"],
    ),
    # only released cases (cancelled, rejected): nothing holds the order
    (
        "no hold",
        {"currency": "USD", "customer": Customer(id="cus_2"), "payment": Payment("paypal", "pi_2", 0), "lines": [NEW_LINE]},
        OrderHold(),
        [],
    ),
    # a case with no money (an exchange, a repair) still holds its lines and the order's identity
    (
        "a moneyless case",
        {"lines": _line(0, sku="Z"), "currency": "USD"},
        OrderHold(frozenset({"l1"})),
        ["currency", "lines[0].sku"],
    ),
    # refunds count on their own: the capture may not drop below them
    (
        "below what was refunded",
        {"payment": _payment(captured_amount=100)},
        OrderHold(committed_amount=2000),
        ["payment.captured_amount"],
    ),
]


@pytest.mark.parametrize(("changes", "hold", "fields"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_locked_changes(changes: dict[str, Any], hold: OrderHold, fields: list[str]) -> None:
    new = msgspec.structs.replace(STORED, **changes)
    locked = locked_changes(STORED, new, hold)
    assert [change["field"] for change in locked] == fields
    assert all(change["message"] for change in locked)


def test_a_capture_already_below_what_is_held_may_still_rise() -> None:
    stored = msgspec.structs.replace(STORED, payment=_payment(captured_amount=1000))
    new = msgspec.structs.replace(STORED, payment=_payment(captured_amount=1200))
    assert locked_changes(stored, new, CASE_ON_L1) == []


def test_the_message_says_what_is_held() -> None:
    new = msgspec.structs.replace(STORED, payment=_payment(captured_amount=1000))
    [change] = locked_changes(STORED, new, CASE_ON_L1)
    assert "14.99 EUR" in change["message"]
