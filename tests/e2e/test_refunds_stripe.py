"""The service configured for Stripe (the real SDK against the fake Stripe server), with signed
webhooks: a return walked to the end, webhooks repeated and out of order, polling."""

from __future__ import annotations

import httpx

from tests.fakes.stripe_server import FakeStripe, signed_event
from tests.support.flows import received_return
from tests.support.stripe_service import SECRET
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


def _case(shop: Tenant, case_id: str) -> dict:
    return shop.agent.get(f"/admin/v1/cases/{case_id}").json()


def test_a_return_walked_end_to_end_through_stripe(shop: Tenant, stripe_fake: FakeStripe) -> None:
    case = received_return(shop, stripe_fake)
    closed = eventually(lambda: (c := _case(shop, case["id"]))["state"] == "closed" and c)
    refund = closed["refunds"][0]
    assert refund["gateway"] == "stripe" and refund["status"] == "succeeded" and refund["amount"] == 1499
    at_stripe = [r for r in stripe_fake.refunds() if r["metadata"].get("refund_id") == refund["id"]]
    assert len(at_stripe) == 1 and at_stripe[0]["id"] == refund["gateway_refund_id"]
    assert at_stripe[0]["amount"] == 1499 and at_stripe[0]["currency"] == "eur"


def _post_event(url: str, payload: bytes, signature: str) -> httpx.Response:
    return httpx.post(
        f"{url}/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


def test_webhooks_five_times_and_out_of_order(shop: Tenant, stripe_fake: FakeStripe, stripe_service: tuple[str, str]) -> None:
    url, _ = stripe_service
    stripe_fake.set_next_status("pending")
    case = received_return(shop, stripe_fake, amount=2999)
    submitted = eventually(lambda: [r for r in _case(shop, case["id"])["refunds"] if r["status"] == "submitted"])[0]
    at_stripe = next(r for r in stripe_fake.refunds() if r["id"] == submitted["gateway_refund_id"])
    pending = dict(at_stripe)
    succeeded = stripe_fake.set_status(at_stripe["id"], "succeeded")

    deliveries = [
        ("refund.updated", succeeded, "evt_done"),
        ("refund.created", pending, "evt_created"),  # late: must not move it back
        *[("refund.updated", succeeded, "evt_done")] * 4,  # Stripe redelivers
        ("refund.updated", pending, "evt_older"),
    ]
    answers = [_post_event(url, *signed_event(kind, obj, SECRET, event_id=event_id)) for kind, obj, event_id in deliveries]
    assert [a.status_code for a in answers] == [200] * 7
    assert [a.json()["duplicate"] for a in answers] == [False, False, True, True, True, True, False]
    final = _case(shop, case["id"])
    assert final["state"] == "closed"
    assert [r["status"] for r in final["refunds"]] == ["succeeded"]
    events = [e["type"] for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]]
    assert events.count("refund_succeeded") == 2  # the record and the transition, once each


def test_unsigned_stale_or_forged_webhooks_are_refused(shop: Tenant, stripe_service: tuple[str, str]) -> None:
    import time

    url, _ = stripe_service
    refund = {"id": "re_x", "object": "refund", "amount": 1, "currency": "eur", "status": "succeeded", "metadata": {}}
    payload, signature = signed_event("refund.updated", refund, SECRET)
    assert _post_event(url, payload, "").status_code == 400
    assert _post_event(url, payload, signature.replace("v1=", "v1=0")).status_code == 400
    assert _post_event(url, payload + b" ", signature).status_code == 400, "the signature covers the raw body"
    old_payload, old_signature = signed_event("refund.updated", refund, SECRET, timestamp=int(time.time()) - 301)
    stale = _post_event(url, old_payload, old_signature)
    assert stale.status_code == 400 and stale.json()["code"] == "invalid_signature"
    forged = signed_event("refund.updated", refund, "whsec_someone_else")
    assert _post_event(url, *forged).status_code == 400
    unknown = _post_event(url, payload, signature)
    assert unknown.status_code == 200, "a refund we do not know is left to reconciliation"


def test_a_pending_refund_with_no_webhook_is_polled(shop: Tenant, stripe_fake: FakeStripe) -> None:
    stripe_fake.set_next_status("pending")
    case = received_return(shop, stripe_fake, amount=4999)
    submitted = eventually(lambda: [r for r in _case(shop, case["id"])["refunds"] if r["status"] == "submitted"])[0]
    stripe_fake.set_status(submitted["gateway_refund_id"], "succeeded")
    closed = eventually(lambda: (c := _case(shop, case["id"]))["state"] == "closed" and c)
    assert closed["refunds"][0]["status"] == "succeeded"
    polls = [r for r in stripe_fake.requests if r == ("GET", f"/v1/refunds/{submitted['gateway_refund_id']}", None)]
    assert polls, "the worker asked Stripe"


def test_refunds_go_to_the_merchants_connected_account(shop: Tenant, stripe_fake: FakeStripe) -> None:
    bad = shop.admin.put("/admin/v1/gateway-account", json={"account": "not an account"})
    assert bad.status_code == 422
    assert shop.agent.put("/admin/v1/gateway-account", json={"account": "acct_1"}).status_code == 403
    assert shop.admin.put("/admin/v1/gateway-account", json={"account": "acct_shop9"}).status_code == 200
    stripe_fake.add_payment_intent(f"pi_{shop.merchant_id}_1999", amount=1999 + 495, account="acct_shop9")
    case = received_return(shop, stripe_fake)
    closed = eventually(lambda: (c := _case(shop, case["id"]))["state"] == "closed" and c)
    assert [r["id"] for r in stripe_fake.refunds("acct_shop9")] == [closed["refunds"][0]["gateway_refund_id"]]
