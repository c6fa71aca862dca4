"""What the portal's "send" rests on, over real HTTP with a customer's portal token: twenty
concurrent sends of one draft (one Idempotency-Key) open one case, and its photo sent twenty
times at once (a retry of the same step) is stored once; twenty concurrent returns with keys of
their own claim no more than was bought; what a customer may not send (a price)."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from adapters.gateways.simulated import SimulatedGateway
from tests.support.images import encode, photo
from tests.support.tenants import Tenant

CALLS = 20


def _customer(tenant: Tenant, **order_fields: Any) -> tuple[httpx.Client, str]:
    order = tenant.put_order(customer={"id": "cus_portal", "email": "p@example.com"}, **order_fields)
    made = tenant.storefront.post("/v1/portal-links", json={"order_id": order["order_id"], "customer_id": "cus_portal"})
    assert made.status_code == 201, made.text
    client = httpx.Client(base_url=tenant.base_url, headers={"Authorization": f"Bearer {made.json()['token']}"}, timeout=30)
    return client, order["order_id"]


def test_twenty_concurrent_sends_of_one_draft_open_one_case_and_store_its_photo_once(tenant: Tenant) -> None:
    customer, order_id = _customer(tenant)
    body = {
        "order_id": order_id,
        "type": "return",
        "resolution": "refund",
        "items": [
            {"line_id": "l1", "quantity": 2, "reason": "defective", "note": "torn"},
            {"line_id": "l2", "quantity": 1, "reason": "changed_mind"},
        ],
    }
    with customer, ThreadPoolExecutor(CALLS) as pool:
        answers = list(
            pool.map(lambda _: customer.post("/v1/cases", json=body, headers={"Idempotency-Key": "draft-1"}), range(CALLS))
        )
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == CALLS - 1
        case_id = answers[0].json()["id"]
        picture = encode(photo(seed=77), "JPEG")
        uploads = list(
            pool.map(
                lambda _: customer.post(f"/v1/cases/{case_id}/photos", files={"file": ("p.jpg", picture, "image/jpeg")}),
                range(CALLS),
            )
        )
        assert sorted(u.status_code for u in uploads) == [200] * (CALLS - 1) + [201]
        assert len({u.json()["id"] for u in uploads}) == 1
    cases = tenant.storefront.get("/v1/cases", params={"order_id": order_id}).json()["items"]
    assert [c["id"] for c in cases] == [case_id]
    assert len(cases[0]["photos"]) == 1 and cases[0]["decision"]["photo_count"] == 1
    order = tenant.storefront.get(f"/v1/orders/{order_id}").json()
    assert [line["returnable_quantity"] for line in order["lines"]] == [0, 0], "claimed once, not twenty times"


def test_twenty_concurrent_opens_by_one_token_claim_no_more_than_bought(tenant: Tenant) -> None:
    """A customer's credential goes through the storefront's order lock: 20 concurrent returns of
    the line's 2 units (half with one Idempotency-Key, half with keys of their own) claim 2.

    Origin: outside review round 5 (#16), an attack the service withstood."""
    customer, order_id = _customer(tenant)
    body = {
        "order_id": order_id,
        "type": "return",
        "resolution": "refund",
        "items": [{"line_id": "l1", "quantity": 1, "reason": "defective"}],
    }

    def open_one(n: int) -> tuple[int, str | None]:
        key = "same" if n % 2 else f"own-{n}"
        with httpx.Client(base_url=tenant.base_url, headers=customer.headers, timeout=30) as own:
            answer = own.post("/v1/cases", json=body, headers={"Idempotency-Key": key})
        return answer.status_code, answer.json().get("id")

    with customer, ThreadPoolExecutor(CALLS) as pool:
        answers = list(pool.map(open_one, range(CALLS)))
    assert {status for status, _ in answers} <= {201, 409, 422}, answers
    stored = tenant.storefront.get("/v1/cases", params={"order_id": order_id, "limit": 100}).json()["items"]
    assert sum(item["quantity"] for case in stored for item in case["items"]) <= 2
    assert {case_id for status, case_id in answers if status == 201} == {case["id"] for case in stored}
    assert tenant.storefront.get(f"/v1/orders/{order_id}").json()["lines"][0]["returnable_quantity"] == 2 - len(stored)


def test_a_customer_never_sets_a_price_and_the_storefront_still_does(tenant: Tenant, gateway: SimulatedGateway) -> None:
    """Origin: the outside review of issue #23 (a customer exchanged a 50.00 item for a
    "replacement" at 0.01 and the gateway paid the difference back on the agent's receive)."""
    reference = f"pi_{secrets.token_hex(6)}"
    customer, order_id = _customer(tenant, payment={"gateway": "stripe", "reference": reference, "captured_amount": 5993})
    priced = {
        "order_id": order_id,
        "type": "exchange",
        "items": [
            {"line_id": "l1", "quantity": 1, "reason": "wrong_size", "replacement_sku": "TSHIRT-L", "replacement_unit_price": 1}
        ],
    }
    with customer:
        for path in ("/v1/cases/preview", "/v1/cases"):
            refused = customer.post(path, json=priced, headers={"Idempotency-Key": "draft-priced"})
            assert refused.status_code == 422, refused.text
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == "validation_error"
            assert [e["field"] for e in refused.json()["errors"]] == ["items[0].replacement_unit_price"]
        assert tenant.storefront.get("/v1/cases", params={"order_id": order_id}).json()["items"] == [], "nothing stored"
        unpriced = {**priced, "items": [{k: v for k, v in priced["items"][0].items() if k != "replacement_unit_price"}]}
        opened = customer.post("/v1/cases", json=unpriced, headers={"Idempotency-Key": "draft-priced"})  # the key is free
        assert opened.status_code == 201, opened.text
    case = opened.json()
    assert case["state"] == "approved" and case["items"][0]["replacement_unit_price"] is None
    received = tenant.agent.post(
        f"/admin/v1/cases/{case['id']}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}
    )
    assert received.status_code == 200, received.text
    assert received.json()["refunds"] == [] and received.json()["money"]["refund_total"] == 0
    assert asyncio.run(gateway.refunds(payment_reference=reference)) == [], "the gateway paid nothing"
    by_storefront = tenant.storefront.post("/v1/cases", json={**priced, "items": [{**priced["items"][0], "line_id": "l2"}]})
    assert by_storefront.status_code == 201, by_storefront.text
    assert by_storefront.json()["items"][0]["replacement_unit_price"] == 1
