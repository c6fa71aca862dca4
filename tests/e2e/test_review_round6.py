"""Review round 6 (#17, return labels) over HTTP against a running service with the simulated
carrier: bad shipping settings and addresses, labels for unusual addresses and currencies, scans
that come late or for a cancelled case: the attacks the service withstood, kept as regression
tests."""

# ruff: noqa: F811 - the fixtures of test_labels, imported by name

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.test_labels import (  # noqa: F401 - the running service and its merchants
    CUSTOMER_ADDRESS,
    SETTINGS,
    bought,
    label_data,
    label_id,
    label_service,
    other_shop,
    purchases,
    shop,
)
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


def put_settings_raw(shop: Tenant, body: str) -> httpx.Response:
    return shop.admin.put("/admin/v1/shipping-settings", content=body.encode(), headers={"content-type": "application/json"})


def test_a_nul_in_a_parcel_category_is_a_422_not_a_500(shop: Tenant) -> None:
    body = json.dumps({**SETTINGS, "parcels": {"app\u0000arel": {"weight_g": 400}}})
    answer = put_settings_raw(shop, body)
    assert answer.status_code == 422, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert shop.agent.get("/admin/v1/shipping-settings").json()["parcels"] == SETTINGS["parcels"], "nothing stored"


@pytest.mark.parametrize(
    "change",
    [
        {"default_parcel": {"weight_g": -5}},
        {"default_parcel": {"weight_g": 0}},
        {"default_parcel": {"weight_g": 10**30}},
        {"default_parcel": {"weight_g": 500, "length_mm": -1, "width_mm": 1, "height_mm": 1}},
        {"parcels": {"x" * 300: {"weight_g": 400}}},
        {"parcels": {f"c{i}": {"weight_g": 1} for i in range(201)}},
        {"carrier_preferences": {"carriers": ["x" * 100_000]}},
        {"carrier_preferences": {"prefer": "slowest"}},
        {"label_buyer": "nobody"},
        {"return_address": {**CUSTOMER_ADDRESS, "country": "de"}},
        {"return_address": {**CUSTOMER_ADDRESS, "name": "a\nb"}},
        {"return_address": {**CUSTOMER_ADDRESS, "zip": "7500\u0661"}},
    ],
)
def test_bad_shipping_settings_are_a_problem_and_store_nothing(shop: Tenant, change: dict[str, object]) -> None:
    answer = shop.admin.put("/admin/v1/shipping-settings", json={**SETTINGS, **change})
    assert answer.status_code in (400, 422), (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/problem+json")
    stored = shop.agent.get("/admin/v1/shipping-settings").json()
    assert stored["default_parcel"]["weight_g"] == 800 and stored["parcels"].keys() == {"apparel"}


@pytest.mark.parametrize(
    "address",
    [
        {**CUSTOMER_ADDRESS, "country": "FRA"},
        {**CUSTOMER_ADDRESS, "name": ""},
        {**CUSTOMER_ADDRESS, "street1": "x" * 100_000},
        {**CUSTOMER_ADDRESS, "city": "Par\u0000is"},
        {**CUSTOMER_ADDRESS, "phone": "call me"},
        {"name": "only a name"},
        "Rue de Rivoli 5, Paris",
    ],
)
def test_bad_order_shipping_addresses_are_a_problem(shop: Tenant, address: object) -> None:
    from tests.support.tenants import order_body

    answer = shop.storefront.put("/v1/orders/o_bad_address", json=order_body(shipping_address=address))
    assert answer.status_code in (400, 422), (answer.status_code, answer.text[:300])
    assert shop.storefront.get("/v1/orders/o_bad_address").status_code == 404, "nothing stored"


def test_a_unicode_address_gets_a_printable_label(shop: Tenant) -> None:
    address = {**CUSTOMER_ADDRESS, "name": "李安 \u202eLee\u202c 🎁", "street1": "Ærøgade 5 — ½ ✓", "city": "Zürich"}
    order = shop.put_order(shipping_address=address)
    case = bought(shop, shop.open_case(order["order_id"]).json()["id"])
    for fmt, magic in (("pdf", b"%PDF"), ("png", b"\x89PNG"), ("qr", b"\x89PNG")):
        answer = shop.storefront.get(f"/v1/cases/{case['id']}/label", params={"format": fmt})
        assert answer.status_code == 200 and answer.content.startswith(magic), fmt
    assert purchases(shop.database_url, label_id(shop, case["id"])) == 1


def test_a_label_in_another_currency_leaves_the_flat_cost(shop: Tenant) -> None:
    """The order is in USD, the label is bought in EUR (the return address is in Germany; the
    merchant's ceiling says how much EUR a label may cost unattended): the money keeps the
    policy's flat label_cost, and the label_ready event says it was not reworked."""
    ceiling = {"max_amount": {"EUR": 2000}, "other_currency": "max_amount"}
    assert shop.admin.put("/admin/v1/shipping-settings", json={**SETTINGS, "label_ceiling": ceiling}).status_code == 200
    order = shop.put_order(shipping_address=CUSTOMER_ADDRESS, currency="USD")
    opened = shop.open_case(order["order_id"]).json()
    flat = opened["money"]["return_shipping"]["customer_share"]
    case = bought(shop, opened["id"])
    assert case["label"]["currency"] == "EUR" and case["money"]["currency"] == "USD"
    assert case["money"]["return_shipping"]["customer_share"] == flat
    assert case["money"]["refund_total"] == opened["money"]["refund_total"]
    ready = [e for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"] if e["type"] == "label_ready"]
    assert ready and ready[0]["data"]["money_reworked"] is False


def test_a_cancelled_case_is_never_moved_by_its_labels_scans(shop: Tenant) -> None:
    case = bought(shop, shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()["id"])
    assert shop.storefront.post(f"/v1/cases/{case['id']}/cancel").status_code == 200
    label = eventually(lambda: (c := shop.agent.get(f"/admin/v1/cases/{case['id']}").json())["label"]["status"]
                       in ("voided", "bought") and c["label"])
    # the simulated carrier scans within 2 s; wait for it to have had the chance
    eventually(lambda: shop.agent.get(f"/admin/v1/cases/{case['id']}").json()["label"]["status"] == "voided")
    after = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert after["state"] == "cancelled" and after["delivered_at"] is None, label
    types = [e["type"] for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]]
    assert "ship" not in types and "delivered" not in types
    assert shop.agent.get("/admin/v1/cases", params={"delivered": "true"}).json()["items"] == []


def test_another_merchants_label_is_not_found_on_every_route(shop: Tenant, other_shop: Tenant) -> None:
    case = bought(shop, shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()["id"])
    for client, prefix in ((other_shop.storefront, ""), (other_shop.agent, "/admin"), (other_shop.admin, "/admin")):
        for fmt in ("pdf", "png", "qr"):
            answer = client.get(f"{prefix}/v1/cases/{case['id']}/label", params={"format": fmt})
            assert answer.status_code == 404 and answer.json()["code"] == "not_found", (prefix, fmt, answer.text)


def test_a_portal_credential_for_another_order_of_the_same_customer_sees_no_label(shop: Tenant) -> None:
    first = shop.put_order(shipping_address=CUSTOMER_ADDRESS, customer={"id": "cus_same", "email": "s@example.com"})
    second = shop.put_order(shipping_address=CUSTOMER_ADDRESS, customer={"id": "cus_same", "email": "s@example.com"})
    case = bought(shop, shop.open_case(first["order_id"]).json()["id"])
    link = shop.storefront.post("/v1/portal-links", json={"order_id": second["order_id"], "customer_id": "cus_same"})
    assert link.status_code in (200, 201), link.text
    with httpx.Client(base_url=shop.base_url, headers={"Authorization": f"Bearer {link.json()['token']}"}) as other_order:
        for fmt in ("pdf", "png", "qr"):
            answer = other_order.get(f"/v1/cases/{case['id']}/label", params={"format": fmt})
            assert answer.status_code == 404 and answer.json()["code"] == "not_found", (fmt, answer.text)
