"""An outside reviewer's attacks on the service as it stands after the criticals of issue #23,
over real HTTP with the service set up for Stripe (the real SDK against the fake Stripe server).

The ``xfail(strict=True)`` tests are findings: each fails today and says the attack, its impact
and a fix. The others are attacks the service repelled, kept as guards."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from tests.support.flows import sold
from tests.support.tenants import Tenant, order_body

RETURN_ONE = [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}]


# ----------------------------------------------------------------------------- findings


TRAILING_LINE_BREAKS = {
    # the mail library refuses a line break in a header: every mail of the merchant is then not
    # composed (logged ``customer_mail_not_composed``, no row, nothing for the agents to see)
    "mail-sender-name": ("admin", "PUT", "/admin/v1/mail-settings", {"sender_name": "Shop\n"}),
    # h11 refuses the Stripe-Account header: every refund is retried, stuck, forever; and the
    # "one merchant per account" index sees another string than the account taken
    "gateway-account": ("admin", "PUT", "/admin/v1/gateway-account", {"account": "acct_taken\n"}),
    # every mail to the customer is given up: "not one e-mail address"
    "customer-email": ("storefront", "PUT", "/v1/orders/o_line_break",
                       order_body(customer={"id": "cus_lb", "email": "ann@example.com\n"})),
}


@pytest.mark.parametrize("role, method, path, body", TRAILING_LINE_BREAKS.values(), ids=TRAILING_LINE_BREAKS.keys())
def test_a_trailing_line_break_is_a_422_where_the_service_would_choke_on_it(
    shop: Tenant, role: str, method: str, path: str, body: dict[str, Any]
) -> None:
    """Attack: a value that ends in ``\\n`` where the body's pattern is ``^[…]+$``: Python's ``$``
    (msgspec's ``pattern`` is ``re.search``) also matches before a final line break, so
    ``sender_name``, the customer's ``email``, ``gateway-account``'s ``account`` and every field
    of an address (lines, ``zip``, ``country``, ``state``, ``phone``, ``email``) take one
    (``reply_to`` too, but ``mail_address`` refuses it after). ``Id`` already guards with
    ``(?!\\n)``; these do not.

    Impact: stored and answered 200, then the service chokes on it later and silently (see each
    case's comment): bad input is not refused as the conventions say, and the merchant's mail or
    refunds stop without a trace the agents see.

    Fix: anchor with ``\\Z`` (or append ``(?!\\n)`` as ``ID_PATTERN`` does) in every DTO pattern;
    a test over every ``pattern=`` in ``service/dto.py`` keeps it so."""
    answer = shop.clients[role].request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"


# ----------------------------------------------------------------------------- attacks repelled


def test_a_portal_token_stays_with_its_customer_when_the_order_changes_hands(shop: Tenant) -> None:
    """A customer's token names the order and the customer: once the storefront gives the order to
    another customer (allowed when no live case holds it), the old token reaches neither the order
    nor the new customer's cases, and the new one none of the old customer's."""
    first = {"id": f"cus_{secrets.token_hex(3)}", "email": "first@example.com"}
    pi = f"pi_{secrets.token_hex(4)}"
    order_id = sold(shop, pi, first)
    second = {"id": f"cus_{secrets.token_hex(3)}", "email": "second@example.com"}
    with _token(shop, order_id, first["id"]) as old:
        opened = old.post("/v1/cases", json={"order_id": order_id, "type": "return", "resolution": "refund", "items": RETURN_ONE})
        assert opened.status_code == 201, opened.text
        mine = opened.json()["id"]
        assert old.post(f"/v1/cases/{mine}/cancel").status_code == 200
        assert sold(shop, pi, second, order_id) == order_id, "no live case holds the order: it may change hands"
        with _token(shop, order_id, second["id"]) as new:
            theirs = new.post("/v1/cases", json={"order_id": order_id, "type": "return", "resolution": "refund", "items": RETURN_ONE})
            assert theirs.status_code == 201, theirs.text
            assert old.get(f"/v1/orders/{order_id}").status_code == 404
            assert old.get(f"/v1/cases/{theirs.json()['id']}").status_code == 404
            assert [c["id"] for c in old.get("/v1/cases").json()["items"]] == [mine], "only its own, released case"
            again = old.post("/v1/cases", json={"order_id": order_id, "type": "return", "resolution": "refund", "items": RETURN_ONE})
            assert again.status_code == 422 and again.json()["errors"][0]["field"] == "order_id"
            assert new.get(f"/v1/cases/{mine}").status_code == 404
            assert [c["id"] for c in new.get("/v1/cases").json()["items"]] == [theirs.json()["id"]]


def _token(shop: Tenant, order_id: str, customer_id: str) -> httpx.Client:
    link = shop.storefront.post("/v1/portal-links", json={"order_id": order_id, "customer_id": customer_id})
    assert link.status_code == 201, link.text
    return httpx.Client(base_url=shop.base_url, headers={"Authorization": f"Bearer {link.json()['token']}"}, timeout=30)

