"""What the portal's "send" rests on, over real HTTP with a customer's portal token: twenty
concurrent sends of one draft (one Idempotency-Key) open one case, and its photo sent twenty
times at once (a retry of the same step) is stored once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.images import encode, photo
from tests.support.tenants import Tenant

CALLS = 20


def _customer(tenant: Tenant) -> tuple[httpx.Client, str]:
    order = tenant.put_order(customer={"id": "cus_portal", "email": "p@example.com"})
    made = tenant.storefront.post("/v1/portal-links", json={"order_id": order["order_id"], "customer_id": "cus_portal"})
    assert made.status_code == 201, made.text
    client = httpx.Client(base_url=tenant.base_url, headers={"Authorization": f"Bearer {made.json()['token']}"}, timeout=30)
    return client, order["order_id"]


def test_twenty_concurrent_sends_of_one_draft_open_one_case_and_store_its_photo_once(tenant: Tenant) -> None:
    customer, order_id = _customer(tenant)
    body = {"order_id": order_id, "type": "return", "resolution": "refund",
            "items": [{"line_id": "l1", "quantity": 2, "reason": "defective", "note": "torn"},
                      {"line_id": "l2", "quantity": 1, "reason": "changed_mind"}]}
    with customer, ThreadPoolExecutor(CALLS) as pool:
        answers = list(pool.map(lambda _: customer.post("/v1/cases", json=body, headers={"Idempotency-Key": "draft-1"}), range(CALLS)))
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers if a.status_code != 201]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == CALLS - 1
        case_id = answers[0].json()["id"]
        picture = encode(photo(seed=77), "JPEG")
        uploads = list(pool.map(lambda _: customer.post(f"/v1/cases/{case_id}/photos", files={"file": ("p.jpg", picture, "image/jpeg")}),
                                range(CALLS)))
        assert sorted(u.status_code for u in uploads) == [200] * (CALLS - 1) + [201]
        assert len({u.json()["id"] for u in uploads}) == 1
    cases = tenant.storefront.get("/v1/cases", params={"order_id": order_id}).json()["items"]
    assert [c["id"] for c in cases] == [case_id]
    assert len(cases[0]["photos"]) == 1 and cases[0]["decision"]["photo_count"] == 1
    order = tenant.storefront.get(f"/v1/orders/{order_id}").json()
    assert [line["returnable_quantity"] for line in order["lines"]] == [0, 0], "claimed once, not twenty times"
