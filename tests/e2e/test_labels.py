"""Return labels with the simulated carrier, over HTTP against a running service whose worker
buys them and whose carrier scans them within seconds: approve → the label bought once (also
when 20 agents approve at once) → its PDF, PNG and QR code downloadable → scans → ``in_transit``
→ delivered (the receive queue) → received → the refund paid, the customer's share of the REAL
rate deducted. Tenancy: another merchant's case and another order's customer see no label. The
carrier's webhook route: a signature moved onto another body is 400 and changes nothing, a
replay is a duplicate, late scans never move a case back. Odd input: bad shipping settings and
order addresses are problems that store nothing, a Unicode address still prints, a label bought in
another currency than the order's leaves the flat cost, and a cancelled case's scans move nothing."""

# ruff: noqa: F811 - the fixtures of tests/support/simulated_labels.py, imported by name

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pypdf
import pytest

from service.config import Settings
from service.ports import InvalidWebhook, TrackingEvent
from tests.support.database import fresh_database
from tests.support.labels import CUSTOMER_ADDRESS, RETURN_ADDRESS, approve_at_once, bought, case_for_review, label_id
from tests.support.mails import eml_mails
from tests.support.server import serve
from tests.support.simulated_labels import (  # noqa: F401 - the running service and its merchants
    SETTINGS,
    label_data,
    label_service,
    other_shop,
    purchases,
    shop,
)
from tests.support.tenants import Tenant
from tests.support.waiting import eventually


def test_approve_label_scans_receive_refund(shop: Tenant, label_data: Path) -> None:
    order = shop.put_order(shipping_address=CUSTOMER_ADDRESS)
    case = shop.open_case(order["order_id"]).json()
    assert case["state"] == "approved" and case["label"]["status"] == "pending"
    flat = case["money"]["return_shipping"]["customer_share"]

    case = bought(shop, case["id"])
    label = case["label"]
    # one t-shirt (apparel: 400 g, 30×20×5 cm, volume weight 600 g) FR → DE: abroad, Ground is the cheapest
    assert (label["carrier"], label["service"], label["amount"], label["currency"]) == ("Simulated Post", "Ground", 980, "EUR")
    assert case["money"]["return_shipping"]["customer_share"] == 980 != flat
    assert case["money"]["refund_total"] == 1999 - 980
    ready = [e for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"] if e["type"] == "label_ready"]
    assert (
        ready
        and ready[0]["actor_role"] == "carrier"
        and ready[0]["data"]["refund_total"] == {"before": 1999 - flat, "after": 1019}
    )

    pdf = shop.storefront.get(f"/v1/cases/{case['id']}/label")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    text = pypdf.PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    assert label["tracking_code"] in text and "Shop Returns" in text and "Ann Lee" in text
    png = shop.agent.get(f"/admin/v1/cases/{case['id']}/label", params={"format": "png"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    qr = shop.storefront.get(f"/v1/cases/{case['id']}/label", params={"format": "qr"})
    assert qr.status_code == 200 and qr.content.startswith(b"\x89PNG") and qr.content != png.content
    assert shop.storefront.get(f"/v1/cases/{case['id']}/label", params={"format": "gif"}).status_code == 422

    in_transit = eventually(lambda: (c := shop.storefront.get(f"/v1/cases/{case['id']}").json())["state"] == "in_transit" and c)
    assert in_transit["shipments"][0]["tracking_number"] == label["tracking_code"]
    delivered = eventually(lambda: (c := shop.agent.get(f"/admin/v1/cases/{case['id']}").json())["delivered_at"] and c)
    assert delivered["state"] == "in_transit", "delivered waits for an agent unless the policy lets the carrier receive"
    queue = shop.agent.get("/admin/v1/cases", params={"delivered": "true"}).json()["items"]
    assert [c["id"] for c in queue] == [case["id"]]
    events = shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]
    moved = [(e["type"], e["actor_role"]) for e in events if e["type"] in ("ship", "delivered")]
    assert moved == [("ship", "carrier"), ("delivered", "carrier")]

    received = shop.agent.post(
        f"/admin/v1/cases/{case['id']}/receive", json={"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}
    )
    assert received.status_code == 200, received.text
    assert shop.agent.get("/admin/v1/cases", params={"delivered": "true"}).json()["items"] == []
    refunded = eventually(lambda: (c := shop.storefront.get(f"/v1/cases/{case['id']}").json())["state"] == "closed" and c)
    assert [(r["amount"], r["status"]) for r in refunded["refunds"]] == [(1999 - 980, "succeeded")]
    assert purchases(shop.database_url, label_id(shop, case["id"])) == 1
    told = {"label_ready", "in_transit", "delivered"}

    def mails() -> list[str]:
        return [m["kind"] for m in shop.agent.get(f"/admin/v1/cases/{case['id']}/mails").json()["items"]]

    kinds = eventually(lambda: told <= set(kinds := mails()) and kinds)
    assert sorted(kind for kind in kinds if kind in told) == sorted(told), "each once"
    [approval] = [m for m in eml_mails(label_data, "approved") if m["X-Returns-Case"] == case["id"]]
    text = approval.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "We are buying your return label" in text and "No shipping label" not in text


def test_twenty_concurrent_approvals_buy_one_label(shop: Tenant) -> None:
    case = case_for_review(shop, CUSTOMER_ADDRESS)
    assert approve_at_once(shop, case["id"]) == [200] + [409] * 19
    case = bought(shop, case["id"])
    # 800 g (the default parcel) abroad: (4.00 + 0.90) × 2
    assert case["label"]["amount"] == 980 and case["money"]["refund_total"] == 30000 - 980
    assert purchases(shop.database_url, label_id(shop, case["id"])) == 1


def test_no_label_without_addresses_or_when_the_customer_ships(shop: Tenant, other_shop: Tenant) -> None:
    without_address = shop.open_case(shop.put_order()["order_id"]).json()
    assert without_address["state"] == "approved" and without_address["label"] is None
    unset = other_shop.open_case(other_shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()
    assert unset["state"] == "approved" and unset["label"] is None
    assert other_shop.agent.get("/admin/v1/shipping-settings").json()["return_address"] is None
    assert other_shop.admin.put("/admin/v1/shipping-settings", json={"label_buyer": "customer_ships"}).status_code == 200
    ships = other_shop.open_case(other_shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()
    assert ships["label"] is None
    answer = shop.storefront.get(f"/v1/cases/{without_address['id']}/label")
    assert answer.status_code == 404 and answer.json()["code"] == "label_not_ready"
    # the case goes on as before: the customer reports the parcel
    shipped = shop.storefront.post(
        f"/v1/cases/{without_address['id']}/return-shipment", json={"carrier": "dhl", "tracking_number": "T1"}
    )
    assert shipped.status_code == 200 and shipped.json()["state"] == "in_transit"


def test_settings_are_validated_and_for_admins(shop: Tenant) -> None:
    bad = shop.admin.put(
        "/admin/v1/shipping-settings", json={"label_buyer": "merchant", "default_parcel": {"weight_g": 10, "length_mm": 5}}
    )
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"return_address", "default_parcel"}
    wrong = shop.admin.put(
        "/admin/v1/shipping-settings", json={**SETTINGS, "return_address": {**RETURN_ADDRESS, "country": "Germany"}}
    )
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "return_address.country"
    assert shop.agent.put("/admin/v1/shipping-settings", json=SETTINGS).status_code == 403
    assert shop.storefront.get("/admin/v1/shipping-settings").status_code == 403
    assert shop.agent.get("/admin/v1/shipping-settings").json()["return_address"] == {
        **RETURN_ADDRESS,
        "street2": None,
        "state": None,
        "phone": None,
        "email": None,
    }


def test_another_merchant_or_order_sees_no_label(shop: Tenant, other_shop: Tenant) -> None:
    order = shop.put_order(shipping_address=CUSTOMER_ADDRESS)
    case = bought(shop, shop.open_case(order["order_id"]).json()["id"])
    for client in (other_shop.storefront, other_shop.agent):
        prefix = "/admin" if client is other_shop.agent else ""
        answer = client.get(f"{prefix}/v1/cases/{case['id']}/label")
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", answer.text

    other_order = shop.put_order(customer={"id": "cus_other", "email": "o@example.com"})
    link = shop.storefront.post("/v1/portal-links", json={"order_id": other_order["order_id"], "customer_id": "cus_other"})
    own = shop.storefront.post("/v1/portal-links", json={"order_id": order["order_id"], "customer_id": case["customer_id"]})
    with (
        httpx.Client(base_url=shop.base_url, headers={"Authorization": f"Bearer {link.json()['token']}"}) as stranger,
        httpx.Client(base_url=shop.base_url, headers={"Authorization": f"Bearer {own.json()['token']}"}) as customer,
    ):
        answer = stranger.get(f"/v1/cases/{case['id']}/label")
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"
        mine = customer.get(f"/v1/cases/{case['id']}/label")
        assert mine.status_code == 200 and mine.content.startswith(b"%PDF")


def test_cancelled_before_the_first_scan_voids_the_label_and_gives_its_cost_back(label_service: tuple[str, str]) -> None:
    # scans come after 1 s: cancel at once after the purchase
    shop = Tenant(*label_service)
    try:
        assert shop.admin.put("/admin/v1/shipping-settings", json=SETTINGS).status_code == 200
        order = shop.put_order(shipping_address=CUSTOMER_ADDRESS, customer={"id": f"cus_{secrets.token_hex(3)}"})
        case = bought(shop, shop.open_case(order["order_id"]).json()["id"])
        cancelled = shop.storefront.post(f"/v1/cases/{case['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        voided = eventually(
            lambda: (c := shop.agent.get(f"/admin/v1/cases/{case['id']}").json())["label"]["status"] == "voided" and c
        )
        assert voided["money"]["return_shipping"]["customer_share"] == 0
        events = [
            e for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"] if e["type"] == "label_voided"
        ]
        assert events and events[0]["data"]["refunded_amount"] == 980
        assert shop.storefront.get(f"/v1/cases/{case['id']}/label").json()["code"] == "label_not_ready"
    finally:
        shop.close()


def test_the_easypost_webhook_is_not_found_where_easypost_is_not_the_carrier(label_service: tuple[str, str]) -> None:
    url, _ = label_service
    answer = httpx.post(
        f"{url}/webhooks/easypost",
        content=b'{"description": "tracker.updated"}',
        headers={"content-type": "application/json", "x-hmac-signature": "hmac-sha256-hex=00"},
    )
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


class SignedStub:
    """A carrier webhook that signs like EasyPost does (HMAC-SHA256 of the raw body), with events
    written plainly: what the route does with a verifier, whatever the carrier."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def sign(self, body: bytes) -> str:
        return "hmac-sha256-hex=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def verify(self, payload: bytes, headers: dict[str, str], now: datetime) -> list[TrackingEvent]:
        if not hmac.compare_digest(headers.get("x-hmac-signature", ""), self.sign(payload)):
            raise InvalidWebhook("the signature does not match the body")
        return msgspec.json.decode(payload, type=list[TrackingEvent])

    def delivery_id(self, payload: bytes) -> str | None:
        return None  # a carrier whose events carry no id of their own: a replay is a duplicate


@pytest.fixture(scope="module")
def webhook_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, SignedStub]]:
    """A service whose carrier reports scans by webhook only (nobody polls within the test)."""
    from service.bootstrap import build_app

    with fresh_database() as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path_factory.mktemp("webhook"),
            log_format="json",
            worker_idle_seconds=0.05,
            tracking_poll_after_seconds=3600,
        )
        app = build_app(settings)
        with serve(app) as url:
            stub = SignedStub(b"whsec_stub")
            app.state.services.carrier_webhook = stub
            yield url, database_url, stub


def test_the_carrier_webhook_verifies_dedupes_and_moves_forward_only(webhook_service: tuple[str, str, SignedStub]) -> None:
    url, database_url, stub = webhook_service
    shop = Tenant(url, database_url)
    try:
        assert shop.admin.put("/admin/v1/shipping-settings", json=SETTINGS).status_code == 200
        case = bought(shop, shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()["id"])
        code = case["label"]["tracking_code"]

        def scan(status: str) -> dict[str, str]:
            return {
                "event_id": f"ev_{code}_{status}",
                "tracking_code": code,
                "status": status,
                "at": datetime.now(UTC).isoformat(),
            }

        def post(body: bytes, signature: str) -> httpx.Response:
            return httpx.post(
                f"{url}/webhooks/easypost",
                content=body,
                headers={"content-type": "application/json", "x-hmac-signature": signature},
            )

        delivered = msgspec.json.encode([scan("delivered")])
        forged = post(delivered, stub.sign(b"[]"))  # a signature moved onto another body
        assert forged.status_code == 400 and forged.json()["code"] == "invalid_signature"
        assert shop.storefront.get(f"/v1/cases/{case['id']}").json()["state"] == "approved", "nothing changed"

        first = post(delivered, stub.sign(delivered))
        assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
        again = post(delivered, stub.sign(delivered))  # replayed
        assert again.status_code == 200 and again.json() == {"received": True, "duplicate": True}
        late = msgspec.json.encode([scan("in_transit"), scan("pre_transit")])
        assert post(late, stub.sign(late)).json() == {"received": True, "duplicate": False}
        now = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
        assert now["state"] == "in_transit" and now["delivered_at"] is not None
        types = [e["type"] for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]]
        assert types.count("ship") == 1 and types.count("delivered") == 1
    finally:
        shop.close()


# --------------------------------------------------------------------------- odd settings, addresses and scans


def _put_settings_raw(shop: Tenant, body: str) -> httpx.Response:
    return shop.admin.put("/admin/v1/shipping-settings", content=body.encode(), headers={"content-type": "application/json"})


def test_a_nul_in_a_parcel_category_is_a_422_not_a_500(shop: Tenant) -> None:
    """Origin: outside review round 6 (#17), an attack the service withstood."""
    body = json.dumps({**SETTINGS, "parcels": {"app\u0000arel": {"weight_g": 400}}})
    answer = _put_settings_raw(shop, body)
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
    """Origin: outside review round 6 (#17), an attack the service withstood."""
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
    """Origin: outside review round 6 (#17), an attack the service withstood."""
    from tests.support.tenants import order_body

    answer = shop.storefront.put("/v1/orders/o_bad_address", json=order_body(shipping_address=address))
    assert answer.status_code in (400, 422), (answer.status_code, answer.text[:300])
    assert shop.storefront.get("/v1/orders/o_bad_address").status_code == 404, "nothing stored"


def test_a_unicode_address_gets_a_printable_label(shop: Tenant) -> None:
    """Origin: outside review round 6 (#17), an attack the service withstood."""
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
    policy's flat label_cost, and the label_ready event says it was not reworked.

    Origin: outside review round 6 (#17), an attack the service withstood."""
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
    """Origin: outside review round 6 (#17), an attack the service withstood."""
    case = bought(shop, shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()["id"])
    assert shop.storefront.post(f"/v1/cases/{case['id']}/cancel").status_code == 200
    label = eventually(
        lambda: (
            (c := shop.agent.get(f"/admin/v1/cases/{case['id']}").json())["label"]["status"] in ("voided", "bought")
            and c["label"]
        )
    )
    # the simulated carrier scans within 2 s; wait for it to have had the chance
    eventually(lambda: shop.agent.get(f"/admin/v1/cases/{case['id']}").json()["label"]["status"] == "voided")
    after = shop.agent.get(f"/admin/v1/cases/{case['id']}").json()
    assert after["state"] == "cancelled" and after["delivered_at"] is None, label
    types = [e["type"] for e in shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]]
    assert "ship" not in types and "delivered" not in types
    assert shop.agent.get("/admin/v1/cases", params={"delivered": "true"}).json()["items"] == []


def test_another_merchants_label_is_not_found_on_every_route(shop: Tenant, other_shop: Tenant) -> None:
    """Origin: outside review round 6 (#17), an attack the service withstood."""
    case = bought(shop, shop.open_case(shop.put_order(shipping_address=CUSTOMER_ADDRESS)["order_id"]).json()["id"])
    for client, prefix in ((other_shop.storefront, ""), (other_shop.agent, "/admin"), (other_shop.admin, "/admin")):
        for fmt in ("pdf", "png", "qr"):
            answer = client.get(f"{prefix}/v1/cases/{case['id']}/label", params={"format": fmt})
            assert answer.status_code == 404 and answer.json()["code"] == "not_found", (prefix, fmt, answer.text)


def test_a_portal_credential_for_another_order_of_the_same_customer_sees_no_label(shop: Tenant) -> None:
    """Origin: outside review round 6 (#17), an attack the service withstood."""
    first = shop.put_order(shipping_address=CUSTOMER_ADDRESS, customer={"id": "cus_same", "email": "s@example.com"})
    second = shop.put_order(shipping_address=CUSTOMER_ADDRESS, customer={"id": "cus_same", "email": "s@example.com"})
    case = bought(shop, shop.open_case(first["order_id"]).json()["id"])
    link = shop.storefront.post("/v1/portal-links", json={"order_id": second["order_id"], "customer_id": "cus_same"})
    assert link.status_code in (200, 201), link.text
    with httpx.Client(base_url=shop.base_url, headers={"Authorization": f"Bearer {link.json()['token']}"}) as other_order:
        for fmt in ("pdf", "png", "qr"):
            answer = other_order.get(f"/v1/cases/{case['id']}/label", params={"format": fmt})
            assert answer.status_code == 404 and answer.json()["code"] == "not_found", (fmt, answer.text)
