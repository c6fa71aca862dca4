"""Every endpoint keeps merchants apart (another merchant's id is a 404, exactly like an id
that does not exist; the agents' search and attention queue find only their own merchant's
cases) and checks the caller's role (403)."""

from __future__ import annotations

import pytest

from tests.support.flows import OTHER_L1
from tests.support.tenants import Tenant


def _case_endpoints(order_id: str, case_id: str) -> list[tuple[str, str, str, dict | None]]:
    """(client role, method, path, json body) of every endpoint that names an order or a case."""
    shipment = {"carrier": "dhl", "tracking_number": "JD0001"}
    return [
        ("storefront", "GET", f"/v1/orders/{order_id}", None),
        ("storefront", "GET", f"/v1/cases/{case_id}", None),
        ("storefront", "POST", f"/v1/cases/{case_id}/return-shipment", shipment),
        ("storefront", "POST", f"/v1/cases/{case_id}/info", {"message": "here"}),
        ("storefront", "POST", f"/v1/cases/{case_id}/cancel", None),
        ("agent", "GET", f"/admin/v1/cases/{case_id}", None),
        ("agent", "GET", f"/admin/v1/cases/{case_id}/events", None),
        ("agent", "POST", f"/admin/v1/cases/{case_id}/approve", {}),
        ("agent", "POST", f"/admin/v1/cases/{case_id}/reject", {"reason": "no"}),
        ("agent", "POST", f"/admin/v1/cases/{case_id}/request-info", {"message": "photos?"}),
    ]


def _review_case(tenant: Tenant) -> tuple[str, dict]:
    order = tenant.put_order()
    response = tenant.open_case(
        order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "other", "note": "odd smell"}]
    )
    assert response.status_code == 201, response.text
    return order["order_id"], response.json()


def test_another_merchants_ids_are_not_found_on_every_endpoint(tenant: Tenant, other_tenant: Tenant) -> None:
    order_id, case = _review_case(tenant)
    for role, method, path, body in _case_endpoints(order_id, case["id"]):
        response = other_tenant.clients[role].request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "not_found"
        missing = tenant.clients[role].request(
            method, path.replace(case["id"], "case_nope").replace(order_id, "o_nope"), json=body
        )
        assert missing.status_code == 404 and missing.json() == {**response.json(), "detail": missing.json()["detail"]}, (
            "another merchant's id must look exactly like a missing one"
        )
    # nothing the other merchant tried changed the case
    after = tenant.storefront.get(f"/v1/cases/{case['id']}").json()
    assert after["state"] == case["state"] == "pending_review"
    assert after["version"] == case["version"]
    # lists and previews do not leak either
    assert other_tenant.storefront.get("/v1/cases").json()["items"] == []
    assert other_tenant.agent.get("/admin/v1/cases").json()["items"] == []
    assert other_tenant.storefront.get("/v1/cases", params={"order_id": order_id}).json()["items"] == []
    opened = other_tenant.open_case(order_id)
    assert opened.status_code == 422 and opened.json()["errors"][0]["field"] == "order_id"
    preview = other_tenant.storefront.post(
        "/v1/cases/preview",
        json={"order_id": order_id, "type": "return", "items": [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}]},
    )
    assert preview.status_code == 422


def test_an_order_id_is_per_merchant(tenant: Tenant, other_tenant: Tenant) -> None:
    order = tenant.put_order("o_shared", shipping_total=111)
    theirs = other_tenant.put_order("o_shared", shipping_total=222)
    assert tenant.storefront.get("/v1/orders/o_shared").json()["shipping_total"] == 111
    assert other_tenant.storefront.get("/v1/orders/o_shared").json()["shipping_total"] == 222
    assert order["order_id"] == theirs["order_id"]


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("agent", "GET", "/v1/cases"),
        ("finance", "GET", "/v1/cases"),
        ("agent", "PUT", "/v1/orders/o1"),
        ("storefront", "GET", "/admin/v1/cases"),
        ("finance", "GET", "/admin/v1/cases"),
        ("storefront", "POST", "/admin/v1/cases/case_x/approve"),
        ("storefront", "GET", "/admin/v1/policy"),
        ("agent", "PUT", "/admin/v1/policy"),
    ],
)
def test_wrong_role_is_forbidden(tenant: Tenant, role: str, method: str, path: str) -> None:
    response = tenant.clients[role].request(method, path, json={})
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "forbidden"


def test_admin_may_do_everything_within_its_merchant(tenant: Tenant) -> None:
    order = tenant.put_order()
    assert tenant.admin.get(f"/v1/orders/{order['order_id']}").status_code == 200
    assert tenant.admin.get("/admin/v1/cases").status_code == 200
    assert tenant.admin.get("/admin/v1/policy").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer rk_store_not-a-key", "Basic abc", "Bearer"])
def test_missing_or_unknown_key_is_unauthorized(base_url: str, header: str | None) -> None:
    import httpx

    headers = {"Authorization": header} if header is not None else {}
    for path in ("/v1/cases", "/admin/v1/cases", "/admin/v1/policy"):
        response = httpx.get(base_url + path, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "unauthorized"
        assert response.headers["content-type"].startswith("application/problem+json")


def test_health_needs_no_key(base_url: str) -> None:
    import httpx

    assert httpx.get(base_url + "/health/live").status_code == 200
    ready = httpx.get(base_url + "/health/ready")
    assert ready.status_code == 200, ready.text


def test_metrics_count_requests_cases_and_refunds(tenant: Tenant, base_url: str) -> None:
    import httpx

    order = tenant.put_order()
    tenant.open_case(order["order_id"])
    tenant.storefront.get("/v1/cases")
    text = httpx.get(base_url + "/metrics").text
    assert 'returns_http_request_duration_seconds_count{method="POST",route="/v1/cases",status="201"}' in text
    assert 'route="/v1/orders/{order_id}"' in text, "latency is per route template, not per id"
    assert order["order_id"] not in text
    assert 'returns_cases{state="approved",type="return"}' in text
    for name in ("returns_refunds", "returns_outbox_depth", "returns_worker_lag_seconds", "returns_gateway_errors_total"):
        assert name in text


def test_search_and_attention_never_cross_merchants(tenant: Tenant, other_tenant: Tenant) -> None:
    """Another merchant's case id, the same order id, customer id and e-mail (any case) find
    only the caller's own cases; ``attention`` and ``/me`` answer for the caller alone.

    Origin: outside review round 4, an attack the service withstood."""
    customer = {"id": "cus_shared", "email": "Shared@Example.com"}
    theirs = other_tenant.put_order(customer=customer)
    their_case = other_tenant.open_case(theirs["order_id"], items=OTHER_L1).json()
    ours = tenant.put_order(theirs["order_id"], customer={"id": "cus_shared", "email": "shared@example.com"})
    our_case = tenant.open_case(ours["order_id"], items=OTHER_L1).json()
    for q in (their_case["id"], theirs["order_id"], "cus_shared", "SHARED@EXAMPLE.COM", "%", "_"):
        found = tenant.agent.get("/admin/v1/cases", params={"q": q}).json()["items"]
        assert {c["id"] for c in found} <= {our_case["id"]}, q
    assert tenant.agent.get("/admin/v1/cases", params={"q": their_case["id"]}).json()["items"] == []
    assert [c["id"] for c in tenant.agent.get("/admin/v1/cases", params={"attention": "false"}).json()["items"]] == [
        our_case["id"]
    ]
    assert tenant.agent.get("/admin/v1/me").json() == {"key_id": tenant.agent_key_id(), "role": "agent"}
