"""An outside reviewer's attacks on the service as it stands after the criticals of issue #23,
over real HTTP with the service set up for Stripe (the real SDK against the fake Stripe server).

The ``xfail(strict=True)`` tests are findings: each fails today and says the attack, its impact
and a fix. The others are attacks the service repelled, kept as guards."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fakes.stripe_server import FakeStripe
from tests.support.tenants import Tenant, order_body
from tests.support.waiting import eventually

PRICE = 1999
CAPTURED = PRICE + 495
RETURN_ONE = [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}]


@pytest.fixture
def merchants(stripe_service: tuple[str, str]) -> Iterator[tuple[Tenant, Tenant]]:
    """Two merchants on the platform's Stripe account: neither names a Connect account of its own."""
    pair = (Tenant(*stripe_service), Tenant(*stripe_service))
    yield pair
    for tenant in pair:
        tenant.close()


def _sold(shop: Tenant, pi: str, customer: dict[str, str] | None = None, order_id: str | None = None) -> str:
    """An order of ``shop`` (``order_id`` stored again) of one line at ``PRICE``, paid with ``pi``:
    its id, or "" when the service refused it."""
    order_id = order_id or f"o_{secrets.token_hex(4)}"
    body = order_body(
        lines=[{"line_id": "l1", "sku": "LAMP", "title": "Lamp", "quantity": 1, "unit_price": PRICE}],
        payment={"gateway": "stripe", "reference": pi, "captured_amount": CAPTURED},
        **({"customer": customer} if customer else {}),
    )
    answer = shop.storefront.put(f"/v1/orders/{order_id}", json=body)
    assert answer.status_code < 500, answer.text
    return order_id if answer.status_code in (200, 201) else ""


def _refund_through(shop: Tenant, order_id: str) -> None:
    """Open a return of the order's line, receive it, and wait until its refunds (if any) left
    ``pending`` and ``submitted``: the gateway has had its say."""
    case = shop.open_case(order_id)
    if case.status_code != 201 or case.json()["state"] != "approved":
        return
    case_id = case.json()["id"]
    received = shop.agent.post(f"/admin/v1/cases/{case_id}/receive",
                               json={"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]})
    assert received.status_code < 500, received.text

    def settled() -> bool:
        refunds = shop.agent.get(f"/admin/v1/cases/{case_id}").json()["refunds"]
        return all(r["status"] not in ("pending", "submitted") for r in refunds)

    eventually(settled)


def _period() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}


# ----------------------------------------------------------------------------- findings


@pytest.mark.xfail(strict=True, reason="outside review #23: merchants on the platform's account refund each other's payments")
def test_a_merchant_cannot_refund_another_merchants_payment_on_the_platform_account(
    merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe
) -> None:
    """Attack: two merchants without a Stripe Connect account of their own (``gateway-account``
    null, the default: "the platform's") share one Stripe account. The thief buys at the victim's
    shop and reads the PaymentIntent id off the checkout (its ``client_secret`` starts with it),
    then, as a merchant here, PUTs an order of its own naming that PaymentIntent, opens a return
    and receives it: the service refunds the victim's payment.

    Impact: the victim's money (its charge on the platform's account) is paid back to the thief's
    card; the victim's own refund of that sale later fails for the charge is refunded already.
    ``payment.reference`` is storefront text and is never checked to be the merchant's.

    Fix: a payment belongs to one merchant. Either the platform's account is bound like any other
    (one merchant may have ``account = null``; the others must name their Connect account), or the
    refund first reads the PaymentIntent and refuses one whose ``metadata``/``on_behalf_of``/
    ``transfer_data`` is not the merchant's, or (weaker) a unique index on (gateway, account,
    payment reference) across merchants."""
    victim, thief = merchants
    pi = f"pi_{victim.merchant_id}_sale"
    stripe_fake.add_payment_intent(pi, amount=CAPTURED)  # the victim's sale, on the platform's account
    assert _sold(victim, pi)
    stolen = _sold(thief, pi)
    if stolen:
        _refund_through(thief, stolen)
    paid = [r for r in stripe_fake.refunds() if r["payment_intent"] == pi]
    assert paid == [], "the thief's return refunded the victim's payment"


@pytest.mark.xfail(strict=True, reason="outside review #23: a reconciliation lists other merchants' refunds")
def test_a_reconciliation_lists_no_other_merchants_refunds(merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe) -> None:
    """Attack: a merchant's finance key runs ``POST /finance/v1/reconciliations`` while it has no
    Connect account of its own. The service lists every refund of the platform's account in the
    period and files those it does not know as ``unknown_at_gateway``.

    Impact: every other merchant on the platform's account is listed: its refund ids (our
    ``metadata.refund_id``), Stripe ids, amounts, currencies and statuses, i.e. its refund volume,
    to a competitor on the same platform; and the victim's totals carry money that is not its own.

    Fix: a reconciliation compares only the merchant's own payments: list the refunds of the
    merchant's PaymentIntents (``payment_intent=`` per order reference of the period), or keep only
    the gateway's refunds whose ``metadata.refund_id`` is one of ours or whose payment is one of
    the merchant's orders; better still, the platform's account bound to one merchant (see above)."""
    victim, other = merchants
    other_pi = f"pi_{other.merchant_id}_own"
    stripe_fake.add_payment_intent(other_pi, amount=CAPTURED)
    _refund_through(other, _sold(other, other_pi))
    theirs = [r for r in stripe_fake.refunds() if r["payment_intent"] == other_pi and r["status"] == "succeeded"]
    assert theirs, "the other merchant's refund was made"
    made = victim.finance.post("/finance/v1/reconciliations", json=_period())
    assert made.status_code == 201, made.text
    report = made.json()
    listed = {e["gateway_refund_id"] for name in ("matched", "missing_at_gateway", "unknown_at_gateway",
                                                  "amount_mismatch", "status_mismatch") for e in report[name]}
    assert not listed & {r["id"] for r in theirs}, "another merchant's refunds are in this merchant's report"


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
    order_id = _sold(shop, pi, first)
    second = {"id": f"cus_{secrets.token_hex(3)}", "email": "second@example.com"}
    with _token(shop, order_id, first["id"]) as old:
        opened = old.post("/v1/cases", json={"order_id": order_id, "type": "return", "resolution": "refund", "items": RETURN_ONE})
        assert opened.status_code == 201, opened.text
        mine = opened.json()["id"]
        assert old.post(f"/v1/cases/{mine}/cancel").status_code == 200
        assert _sold(shop, pi, second, order_id) == order_id, "no live case holds the order: it may change hands"
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

