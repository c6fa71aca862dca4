"""A case's version travels as a strong ETag, ``"<version>"``, on every answer that is one case,
and comes back as ``If-Match`` (docs/contract.md)."""

from __future__ import annotations

from tests.support.tenants import Tenant


def test_the_etag_is_the_version_moves_with_each_action_and_guards_if_match(tenant: Tenant) -> None:
    order = tenant.put_order()
    opened = tenant.open_case(order["order_id"], items=[{"line_id": "l1", "quantity": 1, "reason": "other", "note": "why"}])
    assert opened.status_code == 201 and opened.headers["etag"] == f'"{opened.json()["version"]}"'
    case_id = opened.json()["id"]
    seen = tenant.agent.get(f"/admin/v1/cases/{case_id}")
    assert seen.headers["etag"] == f'"{seen.json()["version"]}"'
    assert tenant.storefront.get(f"/v1/cases/{case_id}").headers["etag"] == seen.headers["etag"]

    noted = tenant.agent.post(
        f"/admin/v1/cases/{case_id}/notes", json={"text": "one"}, headers={"If-Match": seen.headers["etag"]}
    )
    assert noted.status_code == 200, noted.text
    assert noted.headers["etag"] == f'"{noted.json()["version"]}"' != seen.headers["etag"]
    assert tenant.agent.get(f"/admin/v1/cases/{case_id}").headers["etag"] == noted.headers["etag"]

    stale = tenant.agent.post(
        f"/admin/v1/cases/{case_id}/notes", json={"text": "two"}, headers={"If-Match": seen.headers["etag"]}
    )
    assert stale.status_code == 412 and stale.json()["code"] == "version_conflict" and "etag" not in stale.headers
    weak = tenant.agent.post(f"/admin/v1/cases/{case_id}/approve", json={}, headers={"If-Match": "W/" + noted.headers["etag"]})
    assert weak.status_code == 200 and weak.json()["state"] == "approved", weak.text
    assert [note["text"] for note in weak.json()["notes"]] == ["one"]
    shipped = tenant.storefront.post(f"/v1/cases/{case_id}/return-shipment", json={"carrier": "dhl", "tracking_number": "T1"})
    assert shipped.headers["etag"] == f'"{shipped.json()["version"]}"' != weak.headers["etag"]


def test_answers_that_are_not_one_case_carry_no_etag(tenant: Tenant) -> None:
    order = tenant.put_order()
    tenant.open_case(order["order_id"])
    assert "etag" not in tenant.storefront.get("/v1/cases").headers
    assert "etag" not in tenant.storefront.get(f"/v1/orders/{order['order_id']}").headers
