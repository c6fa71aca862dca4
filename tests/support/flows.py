"""Flows several test modules walk through."""

from __future__ import annotations

import secrets
from typing import Any

from tests.fakes.stripe_server import FakeStripe
from tests.support.tenants import Tenant, order_body, payment
from tests.support.waiting import eventually

LAMP = 1999  # the one line of ``lamp_order``
LAMP_CAPTURED = LAMP + 495  # what its payment captured: the lamp and the shipping

# one t-shirt (line ``l1`` of ``Tenant.put_order``'s order) returned for reason ``other``: it waits
# for an agent, who decides who is responsible; and its receipt, as new
OTHER_L1 = [{"line_id": "l1", "quantity": 1, "reason": "other", "note": "the colour is not what I expected"}]
RECEIVE_L1 = {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}

# The body of an exchange of one t-shirt for a larger one (the order of ``Tenant.put_order``).
EXCHANGE = {
    "type": "exchange",
    "resolution": None,
    "items": [{"line_id": "l1", "quantity": 1, "reason": "wrong_size", "replacement_sku": "TSHIRT-L"}],
}


def received_return(shop: Tenant, fake: FakeStripe, amount: int = 1999, *, pi: str | None = None) -> dict:
    """A return of one line on a fresh order paid with a new PaymentIntent at the fake (or with
    the existing ``pi``), approved at once and received as new: its refund is due."""
    if pi is None:
        pi = f"pi_{shop.merchant_id}_{amount}"
        fake.add_payment_intent(pi, amount=amount + 495)
    order = shop.put_order(
        lines=[{"line_id": "l1", "sku": "A", "title": "A", "quantity": 1, "unit_price": amount}],
        payment=payment(amount + 495, pi),
    )
    case = shop.open_case(order["order_id"]).json()
    assert case["state"] == "approved"
    shop.storefront.post(f"/v1/cases/{case['id']}/return-shipment", json={"carrier": "dhl", "tracking_number": "T1"})
    received = shop.agent.post(
        f"/admin/v1/cases/{case['id']}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}
    )
    assert received.status_code == 200, received.text
    return received.json()


def cases_of_every_kind(tenant: Tenant) -> None:
    """Two orders and cases in several states: one refunded, one waiting for review, an
    exchange, a repair. Fuzzers that start from a list then reach real ids."""
    tenant.put_order("o_fuzz")
    refunded = tenant.open_case("o_fuzz").json()
    tenant.agent.post(
        f"/admin/v1/cases/{refunded['id']}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}
    )
    tenant.open_case("o_fuzz", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "why"}])
    tenant.put_order("o_fuzz_2")
    tenant.open_case(
        "o_fuzz_2",
        type="exchange",
        resolution=None,
        items=[{"line_id": "l1", "quantity": 1, "reason": "wrong_size", "replacement_sku": "TSHIRT-L"}],
    )
    tenant.open_case(
        "o_fuzz_2",
        type="repair",
        resolution=None,
        issue_description="the handle broke",
        items=[{"line_id": "l2", "quantity": 1, "reason": "defective"}],
    )


def lamp_order(pi: str, customer: dict[str, str] | None = None) -> dict[str, Any]:
    """An order of one lamp, paid with ``pi`` (``LAMP_CAPTURED``)."""
    return order_body(
        lines=[{"line_id": "l1", "sku": "LAMP", "title": "Lamp", "quantity": 1, "unit_price": LAMP}],
        payment=payment(LAMP_CAPTURED, pi),
        **({"customer": customer} if customer else {}),
    )


def sold(shop: Tenant, pi: str, customer: dict[str, str] | None = None, order_id: str | None = None) -> str:
    """A ``lamp_order`` of ``shop`` (``order_id`` stored again): its id, or "" when the service
    refused it."""
    order_id = order_id or f"o_{secrets.token_hex(4)}"
    answer = shop.storefront.put(f"/v1/orders/{order_id}", json=lamp_order(pi, customer))
    assert answer.status_code < 500, answer.text
    return order_id if answer.status_code in (200, 201) else ""


def refund_through(shop: Tenant, order_id: str) -> None:
    """Open a return of the order's lamp, receive it, and wait until its refunds (if any) left
    ``pending`` and ``submitted``: the gateway has had its say."""
    case = shop.open_case(order_id)
    if case.status_code != 201 or case.json()["state"] != "approved":
        return
    case_id = case.json()["id"]
    received = shop.agent.post(
        f"/admin/v1/cases/{case_id}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}
    )
    assert received.status_code < 500, received.text

    def settled() -> bool:
        refunds = shop.agent.get(f"/admin/v1/cases/{case_id}").json()["refunds"]
        return all(r["status"] not in ("pending", "submitted") for r in refunds)

    eventually(settled)


def failed_refund(tenant: Tenant) -> dict:
    """A received return whose refund the simulated gateway declines (amounts ending in 13 are
    declined): the case a console must put in front of the agent. Answers the case as it stands."""
    order = tenant.put_order(
        lines=[{"line_id": "l1", "sku": "A", "title": "Lamp", "quantity": 1, "unit_price": 2513}],
        shipping_total=0,
        payment=payment(6000),
    )
    case = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "wrong_item"}]).json()
    tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/approve", json={"overrides": [{"rule": "photo_evidence", "reason": "seen in store"}]}
    )
    tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "wrong_item"}]}
    )

    def failed() -> dict | None:
        now = tenant.agent.get(f"/admin/v1/cases/{case['id']}").json()
        return now if any(r["status"] == "failed" for r in now["refunds"]) else None

    return eventually(failed)


def one_line_order(tenant: Tenant, unit_price: int, captured: int, *, quantity: int = 1) -> dict:
    """An order of one line (``l1``, SKU ``A``) without shipping, of which ``captured`` was paid
    (with a payment intent of its own)."""
    return tenant.put_order(
        lines=[{"line_id": "l1", "sku": "A", "title": "A", "quantity": quantity, "unit_price": unit_price}],
        shipping_total=0,
        payment=payment(captured),
    )
