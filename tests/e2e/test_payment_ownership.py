"""A payment belongs to one merchant: on a gateway account, the first merchant whose order names a
payment reference owns it. Merchants without a Stripe Connect account of their own share the
platform's, where knowing another merchant's PaymentIntent id was enough to refund it. Over real
HTTP with the service set up for Stripe (the real SDK against the fake Stripe server), where the
refunds are counted."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.fakes.stripe_server import FakeStripe
from tests.support.flows import LAMP_CAPTURED, lamp_order, refund_through, sold
from tests.support.tenants import Tenant, order_body

RECEIVE_LAMP = {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}


def _sale(shop: Tenant, fake: FakeStripe) -> tuple[str, str]:
    """A sale of ``shop`` paid on the platform's account: its PaymentIntent and order."""
    pi = f"pi_{shop.merchant_id}_{secrets.token_hex(3)}"
    fake.add_payment_intent(pi, amount=LAMP_CAPTURED)
    order_id = sold(shop, pi)
    assert order_id
    return pi, order_id


def _paid_on(fake: FakeStripe, pi: str) -> list[dict]:
    return [r for r in fake.refunds() if r["payment_intent"] == pi]


def _taken(answer: httpx.Response) -> bool:
    return answer.status_code == 409 and answer.json()["code"] == "payment_taken"


def test_a_merchant_cannot_refund_another_merchants_payment_on_the_platform_account(
    merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe
) -> None:
    """Attack: two merchants without a Stripe Connect account of their own (``gateway-account``
    null, the default: "the platform's") share one Stripe account. The thief buys at the victim's
    shop and reads the PaymentIntent id off the checkout (its ``client_secret`` starts with it),
    then, as a merchant here, PUTs an order of its own naming that PaymentIntent, opens a return
    and receives it, so the service would refund the victim's payment to the thief's card.

    Origin: outside review of #23 (then a finding: ``payment.reference`` was storefront text, never
    checked to be the merchant's). Now the thief's PUT is refused, 409 ``payment_taken`` naming
    ``payment.reference``, nothing is stored, and no refund is made of the victim's payment but
    the victim's own."""
    victim, thief = merchants
    pi, sale = _sale(victim, stripe_fake)
    order_id = f"o_{secrets.token_hex(4)}"
    refused = thief.storefront.put(f"/v1/orders/{order_id}", json=lamp_order(pi))
    assert _taken(refused), refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["payment.reference"]
    assert thief.storefront.get(f"/v1/orders/{order_id}").status_code == 404, "nothing stored"
    assert _paid_on(stripe_fake, pi) == [], "the thief's attempt refunded the victim's payment"
    refund_through(victim, sale)
    assert len(_paid_on(stripe_fake, pi)) == 1, "the owner's own return is refunded"


def test_a_merchant_names_its_own_payment_again_and_on_several_orders(
    merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe
) -> None:
    """The owner's PUT of its order again is idempotent, and a second order of its own paid with
    the same payment (a split order) is stored: ownership is the merchant's, not the order's."""
    shop, _ = merchants
    pi, sale = _sale(shop, stripe_fake)
    assert sold(shop, pi, order_id=sale) == sale
    assert sold(shop, pi), "a split order of the same payment"


def test_of_two_merchants_claiming_one_new_payment_at_once_exactly_one_owns_it(merchants: tuple[Tenant, Tenant]) -> None:
    """Twenty PUTs at once, ten by each merchant, of orders naming one payment nobody has named:
    one merchant's are all stored, the other's are all 409 ``payment_taken`` and not stored."""
    pi = f"pi_{secrets.token_hex(6)}"
    jobs = [(merchants[i % 2], f"o_race_{i}_{secrets.token_hex(3)}") for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda job: job[0].storefront.put(f"/v1/orders/{job[1]}", json=lamp_order(pi)), jobs))
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers if a.status_code >= 500]
    outcome = {
        shop.merchant_id: {a.status_code for (s, _), a in zip(jobs, answers, strict=True) if s is shop} for shop in merchants
    }
    assert sorted(map(sorted, outcome.values())) == [[201], [409]], outcome
    assert all(_taken(a) for a in answers if a.status_code == 409)
    for (shop, order_id), answer in zip(jobs, answers, strict=True):
        assert shop.storefront.get(f"/v1/orders/{order_id}").status_code == (200 if answer.status_code == 201 else 404)


def test_a_refund_of_another_merchants_payment_stored_before_owners_is_never_paid(
    merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe
) -> None:
    """An order stored before payments had owners may name another merchant's payment (the
    migration gave each payment to the merchant whose order named it first). Its return is
    received: the refund is refused, 409 ``payment_taken``, nothing changes, nothing is paid."""
    owner, other = merchants
    pi, _ = _sale(owner, stripe_fake)
    order_id = f"o_{secrets.token_hex(4)}"
    other.store_order(order_id, lamp_order(pi))
    case = other.open_case(order_id).json()
    assert case["state"] == "approved", case
    received = other.agent.post(f"/admin/v1/cases/{case['id']}/receive", json=RECEIVE_LAMP)
    assert _taken(received), received.text
    after = other.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert (after["state"], after["refunds"]) == ("approved", []), "the receipt was not recorded: the agent decides"
    assert _paid_on(stripe_fake, pi) == [], "another merchant's payment was refunded"


def test_a_payment_is_owned_per_gateway_account(merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe) -> None:
    """A merchant on a Connect account of its own claims its payments there: a reference another
    merchant owns on the platform's account is another payment on this account (refunds go to the
    merchant's account, where the platform's PaymentIntent is not)."""
    platform, connected = merchants
    pi, _ = _sale(platform, stripe_fake)
    bound = connected.admin.put("/admin/v1/gateway-account", json={"account": f"acct_{secrets.token_hex(6)}"})
    assert bound.status_code == 200, bound.text
    assert sold(connected, pi), "its own account: nobody else's order can name a payment there"
    connected.admin.put("/admin/v1/gateway-account", json={"account": None})
    assert not sold(connected, pi), "back on the platform's account, the payment is the other merchant's"


def test_a_reconciliation_lists_no_other_merchants_refunds(merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe) -> None:
    """Attack: a merchant's finance key runs ``POST /finance/v1/reconciliations`` while it has no
    Connect account of its own. The service listed every refund of the platform's account in the
    period and filed those it did not know as ``unknown_at_gateway``: every other merchant's
    refund ids, Stripe ids, amounts and statuses, i.e. its refund volume, to a competitor on the
    same platform, and the merchant's totals carried money that was not its own.

    Origin: outside review of #23 (then a finding). Now a reconciliation on the platform's account
    compares only the merchant's own payments and refunds: its own refund is matched, the other
    merchant's are not in the report."""
    shop, other = merchants
    other_pi, other_sale = _sale(other, stripe_fake)
    refund_through(other, other_sale)
    theirs = [r for r in _paid_on(stripe_fake, other_pi) if r["status"] == "succeeded"]
    assert theirs, "the other merchant's refund was made"
    pi, sale = _sale(shop, stripe_fake)
    refund_through(shop, sale)
    [mine] = _paid_on(stripe_fake, pi)
    now = datetime.now(UTC)
    period = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    made = shop.finance.post("/finance/v1/reconciliations", json=period)
    assert made.status_code == 201, made.text
    report = made.json()
    listed = {
        e["gateway_refund_id"]
        for name in ("matched", "missing_at_gateway", "unknown_at_gateway", "amount_mismatch", "status_mismatch")
        for e in report[name]
    }
    assert not listed & {r["id"] for r in theirs}, "another merchant's refunds are in this merchant's report"
    assert mine["id"] in {e["gateway_refund_id"] for e in report["matched"]}


def test_an_order_stored_on_an_account_of_its_own_cannot_refund_on_the_platforms_after_unbinding(
    merchants: tuple[Tenant, Tenant], stripe_fake: FakeStripe
) -> None:
    """Attack: the thief binds a Connect account of its own, where the victim's PaymentIntent id
    (on the platform's account) is free to claim, PUTs an order naming it (stored: on its own
    account it is its own), opens a return, then unbinds before the receipt, so the refund would
    be made on the platform's account, where the payment is the victim's. The refund claims the
    payment again on the account it is made on: 409 ``payment_taken``, nothing is paid.
    Origin: outside review of the #23 features, an attack the service withstood."""
    victim, thief = merchants
    pi, _ = _sale(victim, stripe_fake)
    bound = thief.admin.put("/admin/v1/gateway-account", json={"account": f"acct_{secrets.token_hex(6)}"})
    assert bound.status_code == 200, bound.text
    order_id = sold(thief, pi)
    assert order_id, "on its own account the reference is its own"
    case = thief.open_case(order_id).json()
    assert case["state"] == "approved", case
    assert thief.admin.put("/admin/v1/gateway-account", json={"account": None}).status_code == 200
    received = thief.agent.post(f"/admin/v1/cases/{case['id']}/receive", json=RECEIVE_LAMP)
    assert _taken(received), received.text
    assert thief.agent.get(f"/admin/v1/cases/{case['id']}").json()["refunds"] == []
    assert _paid_on(stripe_fake, pi) == [], "the victim's payment was refunded"


@pytest.mark.parametrize(
    "reference", ["pi_x ", " pi_x", "pi_\tx", "pi_x\n"], ids=["trailing-space", "leading-space", "tab", "line-break"]
)
def test_a_payment_reference_is_one_exact_id(tenant: Tenant, reference: str) -> None:
    """A payment is owned by its reference, so a spelling with a space or a control character
    would name another payment than the gateway's id: refused, nothing stored.

    Origin: outside review of the #23 features (not shown against real Stripe, refused here)."""
    body = order_body(payment={"gateway": "stripe", "reference": reference, "captured_amount": 5993})
    answer = tenant.storefront.put("/v1/orders/o_spelled", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"
    assert tenant.storefront.get("/v1/orders/o_spelled").status_code == 404
