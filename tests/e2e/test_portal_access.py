"""The customer portal's credential over real HTTP: a storefront-made link walks one order (read,
preview, open a return for 2 of 3 lines, a photo, the case), and nothing else; the lookup by
order number and e-mail answers alike for existing and missing orders and is rate-limited."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import LOCAL_URL, Settings
from service.portal import Claims, sign
from tests.support.database import fresh_database
from tests.support.images import encode, photo
from tests.support.mails import eml_mails, link_token, portal_links
from tests.support.portal import lookup_links, public_client
from tests.support.server import serve
from tests.support.tenants import Tenant, order_body
from tests.support.waiting import eventually

SECRET = "portal-test-secret"
PER_EMAIL = 3
PER_IP = 8


@pytest.fixture(scope="module")
def portal_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The service's URL, its database's and its data folder (where its e-mails are written)."""
    from service.bootstrap import build_app

    data_dir = tmp_path_factory.mktemp("portal")
    with fresh_database() as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=data_dir,
            log_format="json",
            worker_idle_seconds=0.05,
            portal_secrets=(SECRET, "an-older-secret"),
            portal_lookups_per_ip=PER_IP,
            portal_lookups_per_email=PER_EMAIL,
        )
        with serve(build_app(settings)) as url:
            yield url, database_url, data_dir


@pytest.fixture
def shop(portal_service: tuple[str, str, Path]) -> Iterator[Tenant]:
    tenant = Tenant(*portal_service[:2])
    yield tenant
    tenant.close()


@pytest.fixture
def other_shop(portal_service: tuple[str, str, Path]) -> Iterator[Tenant]:
    tenant = Tenant(*portal_service[:2])
    yield tenant
    tenant.close()


THREE_LINES = [
    {"line_id": "l1", "sku": "TSHIRT-M", "title": "T-shirt", "quantity": 2, "unit_price": 1999, "category": "apparel"},
    {"line_id": "l2", "sku": "MUG", "title": "Mug", "quantity": 1, "unit_price": 1500},
    {"line_id": "l3", "sku": "CAP", "title": "Cap", "quantity": 1, "unit_price": 1200},
]


def _order(shop: Tenant, customer_id: str = "cus_portal", email: str = "buyer@example.com") -> str:
    body = order_body(lines=THREE_LINES, customer={"id": customer_id, "email": email})
    body["payment"]["captured_amount"] = 2 * 1999 + 1500 + 1200 + 495
    return shop.put_order(**body)["order_id"]


def _link(shop: Tenant, order_id: str, customer_id: str = "cus_portal", **extra: Any) -> dict[str, Any]:
    response = shop.storefront.post("/v1/portal-links", json={"order_id": order_id, "customer_id": customer_id, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def _customer(shop: Tenant, token: str) -> httpx.Client:
    return httpx.Client(base_url=shop.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _return_two(order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "type": "return",
        "resolution": "refund",
        "items": [
            {"line_id": "l1", "quantity": 1, "reason": "defective"},
            {"line_id": "l3", "quantity": 1, "reason": "changed_mind"},
        ],
    }


def test_a_link_walks_its_order(shop: Tenant) -> None:
    order_id = _order(shop)
    link = _link(shop, order_id, language="zh-CN")
    assert link["url"].startswith(shop.base_url) and link["url"].endswith(f"/portal#t={link['token']}")
    with _customer(shop, link["token"]) as customer:
        order = customer.get(f"/v1/orders/{order_id}")
        assert order.status_code == 200, order.text
        assert [line["line_id"] for line in order.json()["lines"]] == ["l1", "l2", "l3"]
        preview = customer.post("/v1/cases/preview", json=_return_two(order_id))
        assert preview.status_code == 200, preview.text
        opened = customer.post("/v1/cases", json=_return_two(order_id), headers={"Idempotency-Key": "portal-1"})
        assert opened.status_code == 201, opened.text
        case = opened.json()
        again = customer.post("/v1/cases", json=_return_two(order_id), headers={"Idempotency-Key": "portal-1"})
        assert again.json()["id"] == opened.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
        assert sorted(item["line_id"] for item in case["items"]) == ["l1", "l3"]
        uploaded = customer.post(
            f"/v1/cases/{case['id']}/photos", files={"file": ("p.jpg", encode(photo(seed=7), "JPEG"), "image/jpeg")}
        )
        assert uploaded.status_code == 201, uploaded.text
        image = customer.get(f"/v1/cases/{case['id']}/photos/{uploaded.json()['id']}")
        assert image.status_code == 200 and image.content
        read = customer.get(f"/v1/cases/{case['id']}")
        assert read.status_code == 200 and len(read.json()["photos"]) == 1
        listed = customer.get("/v1/cases")
        assert [c["id"] for c in listed.json()["items"]] == [case["id"]]
    # the storefront's Idempotency-Key space is its own: the customer's "portal-1" opened a new case
    storefront_case = shop.storefront.post("/v1/cases", json=_return_two(order_id), headers={"Idempotency-Key": "portal-1"})
    assert storefront_case.status_code in (201, 422) and storefront_case.headers.get("Idempotent-Replayed") is None
    events = shop.agent.get(f"/admin/v1/cases/{case['id']}/events").json()["items"]
    assert events[0]["actor_role"] == "customer"


def test_a_link_only_for_the_orders_own_customer(shop: Tenant, other_shop: Tenant) -> None:
    order_id = _order(shop)
    for body in (
        {"order_id": order_id, "customer_id": "cus_someone_else"},
        {"order_id": "o_missing", "customer_id": "cus_portal"},
    ):
        answer = shop.storefront.post("/v1/portal-links", json=body)
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", answer.text
    assert (
        other_shop.storefront.post("/v1/portal-links", json={"order_id": order_id, "customer_id": "cus_portal"}).status_code
        == 404
    )
    bad = shop.storefront.post(
        "/v1/portal-links", json={"order_id": order_id, "customer_id": "cus_portal", "expires_in_minutes": 0}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "expires_in_minutes"


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_expired_and_altered_tokens_are_refused(shop: Tenant) -> None:
    order_id = _order(shop)
    token = _link(shop, order_id)["token"]
    expired = sign(SECRET, Claims(m=shop.merchant_id, o=order_id, c="cus_portal", lang="en", exp=int(time.time()) - 1))
    prefix, kid, claims, signature = token.split(".")
    forged = [
        expired,
        f"{prefix}.{kid}.{_flip(claims, 5)}.{signature}",
        f"{prefix}.{kid}.{claims}.{_flip(signature, 5)}",
        sign("a guessed secret", Claims(m=shop.merchant_id, o=order_id, c="cus_portal", lang="en", exp=int(time.time()) + 600)),
        "pt1.garbage",
    ]
    for bad in forged:
        with _customer(shop, bad) as customer:
            answer = customer.get(f"/v1/orders/{order_id}")
            assert answer.status_code == 401, (bad, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["code"] == "unauthorized"
    older = sign("an-older-secret", Claims(m=shop.merchant_id, o=order_id, c="cus_portal", lang="en", exp=int(time.time()) + 600))
    with _customer(shop, older) as customer:  # a rotated-out secret still verifies while configured
        assert customer.get(f"/v1/orders/{order_id}").status_code == 200


def test_a_token_for_one_order_reaches_nothing_else(shop: Tenant, other_shop: Tenant) -> None:
    mine, theirs = _order(shop), _order(shop, customer_id="cus_other", email="other@example.com")
    same_customer_other_order = _order(shop)
    foreign = _order(other_shop)
    their_case = shop.open_case(theirs).json()
    foreign_case = other_shop.open_case(foreign).json()
    token = _link(shop, mine)["token"]
    with _customer(shop, token) as customer:
        for order_id in (theirs, same_customer_other_order, foreign):
            assert customer.get(f"/v1/orders/{order_id}").status_code == 404
            for path in ("/v1/cases/preview", "/v1/cases"):
                answer = customer.post(path, json=_return_two(order_id))
                assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "order_id", answer.text
        for case_id in (their_case["id"], foreign_case["id"]):
            assert customer.get(f"/v1/cases/{case_id}").status_code == 404
            for action in ("cancel", "info", "quote/accept", "return-shipment"):
                body = {"message": "x"} if action == "info" else {"carrier": "dhl", "tracking_number": "1"}
                assert customer.post(f"/v1/cases/{case_id}/{action}", json=body).status_code == 404, action
            files = {"file": ("p.jpg", encode(photo(seed=3), "JPEG"), "image/jpeg")}
            assert customer.post(f"/v1/cases/{case_id}/photos", files=files).status_code == 404
        assert customer.get("/v1/cases", params={"order_id": theirs}).json()["items"] == []
        assert customer.get("/v1/cases", params={"customer_id": "cus_other"}).json()["items"] == []
        assert shop.storefront.get("/v1/cases", params={"order_id": theirs}).json()["items"]  # the listing could see it
        forbidden = [
            customer.put(f"/v1/orders/{mine}", json=order_body()),
            customer.post("/v1/portal-links", json={"order_id": mine, "customer_id": "cus_portal"}),
            customer.get("/v1/customers/cus_portal/store-credit"),
            customer.get("/admin/v1/cases"),
            customer.get("/admin/v1/policy"),
            customer.get("/finance/v1/reports/reasons"),
        ]
        for answer in forbidden:
            assert answer.status_code == 403 and answer.json()["code"] == "forbidden", answer.request.url


def test_lookup_answers_alike_and_records_a_link(shop: Tenant, portal_service: tuple[str, str, Path]) -> None:
    order_id = _order(shop, email="Lookup@Example.com")
    public = public_client(shop.base_url, "127.0.0.2")
    asks = {
        "exists": {"merchant": shop.merchant_id, "order_id": order_id, "email": "lookup@example.com"},
        "wrong_email": {"merchant": shop.merchant_id, "order_id": order_id, "email": "other@example.com"},
        "missing": {"merchant": shop.merchant_id, "order_id": "o_nope", "email": "nope@example.com"},
    }
    answers, timings = {}, {}
    for name, body in asks.items():
        started = time.perf_counter()
        answer = public.post("/v1/portal-sessions", json=body)
        timings[name] = time.perf_counter() - started
        answers[name] = (answer.status_code, answer.json())
    assert answers["exists"] == answers["wrong_email"] == answers["missing"]
    assert answers["exists"][0] == 202
    assert max(timings.values()) < 0.5  # the lookup runs after the answer
    links = eventually(lambda: lookup_links(portal_service[1], shop.merchant_id))
    assert len(links) == 1 and links[0]["order_id"] == order_id and links[0]["email"] == "Lookup@Example.com"
    assert "url" not in links[0], "no live credential at rest, nor in the merchant's webhook"
    [mail] = eventually(lambda: eml_mails(portal_service[2], "portal_link"))
    assert mail["To"] == "Lookup@Example.com"
    [link] = portal_links(mail)
    assert link.startswith(LOCAL_URL + "/portal#t=")  # the configured public URL (here the default)
    token = link_token(link)
    with _customer(shop, token) as customer:
        assert customer.get(f"/v1/orders/{order_id}").status_code == 200
    public.close()


def test_lookup_timing_does_not_tell(shop: Tenant) -> None:
    order_id = _order(shop, email="timing@example.com")
    public = public_client(shop.base_url, "127.0.0.3")
    samples: dict[str, list[float]] = {"exists": [], "missing": []}
    for round_ in range(PER_IP // 2):
        for name, target in (("exists", order_id), ("missing", "o_missing")):
            body = {"merchant": shop.merchant_id, "order_id": target, "email": f"t{round_}{name}@example.com"}
            started = time.perf_counter()
            assert public.post("/v1/portal-sessions", json=body).status_code == 202
            samples[name].append(time.perf_counter() - started)
    public.close()
    assert abs(statistics.median(samples["exists"]) - statistics.median(samples["missing"])) < 0.05


def test_lookup_is_rate_limited(portal_service: tuple[str, str, Path]) -> None:
    public = public_client(portal_service[0], "127.0.0.4")
    body = {"merchant": "m_any", "order_id": "o_any", "email": "same@example.com"}
    answers = [public.post("/v1/portal-sessions", json=body) for _ in range(PER_EMAIL + 1)]
    assert [a.status_code for a in answers[:PER_EMAIL]] == [202] * PER_EMAIL
    limited = answers[-1]
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # per address: other e-mails from the same client run out of the address's budget
    statuses = [
        public.post("/v1/portal-sessions", json={**body, "email": f"e{i}@example.com"}).status_code for i in range(PER_IP)
    ]
    assert statuses == [202] * (PER_IP - PER_EMAIL - 1) + [429] * (PER_EMAIL + 1)
    with public_client(portal_service[0], "127.0.0.5") as elsewhere:  # another address, another e-mail: not limited
        assert elsewhere.post("/v1/portal-sessions", json={**body, "email": "fresh@example.com"}).status_code == 202
    public.close()


def test_without_a_configured_secret_every_process_agrees(tenant: Tenant, database_url: str) -> None:
    """The shared test service has no RETURNS_PORTAL_SECRET: it generated one into the database,
    and another process (a PortalService of its own here) verifies its links with it."""
    from adapters.postgres.database import PostgresDatabase
    from service.cases import utcnow
    from service.portal import PortalService

    order_id = _order(tenant)
    token = _link(tenant, order_id)["token"]
    with _customer(tenant, token) as customer:
        assert customer.get(f"/v1/orders/{order_id}").status_code == 200

    async def elsewhere() -> tuple[str | None, str | None]:
        db = await PostgresDatabase.connect(database_url, min_size=1, max_size=1)
        try:
            principal = await PortalService(db, utcnow, (), 1, 1).authenticate(token)
            stranger = await PortalService(db, utcnow, ("not-the-stored-one",), 1, 1).authenticate(token)
        finally:
            await db.close()
        return principal and principal.order_id, stranger and stranger.order_id

    assert asyncio.run(elsewhere()) == (order_id, None)
