"""The customer portal's credential over real HTTP: a storefront-made link walks one order (read,
preview, open a return for 2 of 3 lines, a photo, the case), and nothing else; the lookup by
order number and e-mail answers alike for existing and missing orders and is rate-limited. And
the attacks on it: forged, altered or malformed tokens are 401 problems and a token reaches no
other order by any way in; the customer is shown no agent-only finding (a reused photo's other
case, a flag); the lookup's link is made on the configured URL only, goes only to the order's own
address, refuses bad bodies, and its limit holds whatever X-Forwarded-For says and however many
ask at once; no live credential is stored; mails escape the agent's words and link only to the
case's own order."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import secrets
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from service.config import LOCAL_URL
from service.portal import Claims, key_id, sign
from tests.support.flows import sold
from tests.support.images import encode, photo
from tests.support.mails import eml_mails, link_token, portal_links
from tests.support.portal import lookup_links, public_client
from tests.support.server import fresh_service
from tests.support.tenants import Tenant, order_body
from tests.support.waiting import eventually

SECRET = "portal-test-secret"
PER_EMAIL = 3
PER_IP = 8
RETURN_LAMP = [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}]  # the one line of ``sold``


@pytest.fixture(scope="module")
def portal_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """The service's URL, its database's and its data folder (where its e-mails are written)."""
    data_dir = tmp_path_factory.mktemp("portal")
    with fresh_service(
        data_dir=data_dir,
        log_format="json",
        worker_idle_seconds=0.05,
        portal_secrets=(SECRET, "an-older-secret"),
        portal_lookups_per_ip=PER_IP,
        portal_lookups_per_email=PER_EMAIL,
    ) as (url, database_url):
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


def _order(shop: Tenant, customer_id: str = "cus_portal", email: str = "buyer@example.com", **customer: Any) -> str:
    body = order_body(lines=THREE_LINES, customer={"id": customer_id, "email": email, **customer})
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
    # the lookups of other tests of this service mail their own addresses
    [mail] = eventually(
        lambda: [m for m in eml_mails(portal_service[2], "portal_link") if m["To"].lower() == "lookup@example.com"]
    )
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


# --------------------------------------------------------------------------- attacks on the credential, the lookup and the mailed links


FOR_REVIEW = [{"line_id": "l2", "quantity": 1, "reason": "other", "note": "it is not what the picture showed"}]


def _return(order_id: str, items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    items = items or [{"line_id": "l1", "quantity": 1, "reason": "defective"}]
    return {"order_id": order_id, "type": "return", "resolution": "refund", "items": items}


def _query(database_url: str, sql: str, *args: Any) -> list[Any]:
    async def read() -> list[Any]:
        conn = await asyncpg.connect(database_url)
        try:
            return [tuple(row) for row in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(read())


def _claims(token: str) -> dict[str, Any]:
    part = token.split(".")[2]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _signed(raw_claims: bytes) -> str:
    """A token with these exact claim bytes, properly signed: what a holder of the secret makes."""
    signed = f"pt1.{key_id(SECRET)}.{base64.urlsafe_b64encode(raw_claims).rstrip(b'=').decode()}"
    signature = hmac.new(SECRET.encode(), signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _is_unauthorized(answer: httpx.Response) -> bool:
    return (
        answer.status_code == 401
        and answer.headers["content-type"].startswith("application/problem+json")
        and answer.json()["code"] == "unauthorized"
    )


def _claims_b64(claims: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()


def test_the_lookup_link_does_not_take_the_callers_host(shop: Tenant, portal_service: tuple[str, str, Path]) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    order_id = _order(shop, "cus_host", "victim@example.com")
    with public_client(shop.base_url, "127.0.0.21") as public:
        answer = public.post(
            "/v1/portal-sessions",
            json={"merchant": shop.merchant_id, "order_id": order_id, "email": "victim@example.com"},
            headers={"Host": "attacker.example"},
        )
    assert answer.status_code == 202
    # the victim gets it, from the merchant, looking genuine
    [mail] = eventually(lambda: [m for m in eml_mails(portal_service[2], "portal_link") if m["To"] == "victim@example.com"])
    [link] = portal_links(mail)
    assert urlsplit(link).hostname != "attacker.example", link


def test_x_forwarded_for_buys_no_more_lookups(portal_service: tuple[str, str, Path]) -> None:
    # from 127.0.0.1, the one address uvicorn trusts by default; no other test here looks up from it.
    # tests.support.server starts uvicorn with the options `returns serve` gives it (its defaults): a
    # fix belongs where both take those options from
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    with httpx.Client(base_url=portal_service[0], timeout=30) as client:
        statuses = [
            client.post(
                "/v1/portal-sessions",
                json={"merchant": "m_any", "order_id": "o_any", "email": f"xff{i}@example.com"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(PER_IP + 4)
        ]
    assert statuses[PER_IP:] == [429] * 4, statuses


def test_a_photo_upload_does_not_name_another_customers_case(shop: Tenant) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    picture = encode(photo(seed=51), "JPEG")
    other_order = _order(shop, "cus_first", "first@example.com")
    first_case = shop.open_case(other_order).json()
    first = shop.storefront.post(f"/v1/cases/{first_case['id']}/photos", files={"file": ("a.jpg", picture, "image/jpeg")})
    assert first.status_code == 201, first.text

    mine = _order(shop, "cus_second", "second@example.com")
    with _customer(shop, _link(shop, mine, "cus_second")["token"]) as customer:
        case = customer.post("/v1/cases", json=_return(mine)).json()
        uploaded = customer.post(f"/v1/cases/{case['id']}/photos", files={"file": ("b.jpg", picture, "image/jpeg")})
        assert uploaded.status_code == 201, uploaded.text
        assert customer.get(f"/v1/cases/{case['id']}").json()["photos"][0]["matches_case_id"] is None  # hidden here
        assert uploaded.json()["matches_case_id"] is None, uploaded.json()  # ... but not here


def test_the_customer_is_not_told_it_is_flagged(shop: Tenant) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    picture = encode(photo(seed=61), "JPEG")
    first_case = shop.open_case(_order(shop, "cus_honest", "honest@example.com")).json()
    assert (
        shop.storefront.post(f"/v1/cases/{first_case['id']}/photos", files={"file": ("a.jpg", picture, "image/jpeg")}).status_code
        == 201
    )
    mine = _order(shop, "cus_reuser", "reuser@example.com")
    with _customer(shop, _link(shop, mine, "cus_reuser")["token"]) as customer:
        case = customer.post("/v1/cases", json=_return(mine)).json()
        customer.post(f"/v1/cases/{case['id']}/photos", files={"file": ("b.jpg", picture, "image/jpeg")})
        assert shop.agent.get(f"/admin/v1/cases/{case['id']}").json()["flags"] == ["reused_photo"]
        assert customer.get(f"/v1/cases/{case['id']}").json()["flags"] == []  # hidden here
        preview = customer.post(
            "/v1/cases/preview", json=_return(mine, [{"line_id": "l2", "quantity": 1, "reason": "changed_mind"}])
        )
        assert preview.status_code == 200, preview.text
        told = [o["detail"] for o in preview.json()["decision"]["outcomes"]]
        assert not [detail for detail in told if "flagged" in detail], told  # ... but told here


def test_an_altered_signature_text_is_refused(shop: Tenant) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    order_id = _order(shop, "cus_sig")
    token = _link(shop, order_id, "cus_sig")["token"]
    prefix, kid, claims, signature = token.split(".")
    altered = [
        f"{token}!!",
        f"{token}==",
        f"{prefix}.{kid}.{claims}.{signature[:10]}*{signature[10:]}",
        f"{prefix}.{kid}.{claims}.{signature.replace('-', '+').replace('_', '/')}",
    ]
    altered = [bad for bad in altered if bad != token]
    for bad in altered:
        with _customer(shop, bad) as customer:
            answer = customer.get(f"/v1/orders/{order_id}")
            assert _is_unauthorized(answer), (bad, answer.status_code)


def test_listing_another_customer_id_lists_nothing(shop: Tenant) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    order_id = _order(shop, "cus_lists")
    with _customer(shop, _link(shop, order_id, "cus_lists")["token"]) as customer:
        assert customer.post("/v1/cases", json=_return(order_id)).status_code == 201
        assert len(customer.get("/v1/cases").json()["items"]) == 1
        assert customer.get("/v1/cases", params={"order_id": "o_other"}).json()["items"] == []
        assert customer.get("/v1/cases", params={"customer_id": "cus_other"}).json()["items"] == []


def test_a_copy_of_the_database_holds_no_live_customer_credential(shop: Tenant, portal_service: tuple[str, str, Path]) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    order_id = _order(shop, "cus_at_rest", "rest@example.com")
    case = shop.open_case(order_id).json()
    rows = eventually(
        lambda: _query(
            portal_service[1],
            "SELECT message FROM customer_mail WHERE merchant_id = $1 AND case_id = $2",
            shop.merchant_id,
            case["id"],
        )
    )
    stored = email.message_from_string(rows[0][0], policy=email.policy.default)
    text = stored.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    tokens = {parse_qs(urlsplit(word).fragment)["t"][0] for word in text.split() if "/portal#" in word}
    assert tokens
    for token in tokens:
        with _customer(shop, token) as customer:
            assert customer.get(f"/v1/orders/{order_id}").status_code == 401


def test_forged_or_malformed_tokens_are_401_problems(shop: Tenant) -> None:
    """Origin: outside review round 5 (#16), an attack the service withstood."""
    order_id = _order(shop, "cus_forge")
    token = _link(shop, order_id, "cus_forge")["token"]
    prefix, kid, claims, signature = token.split(".")
    now = int(time.time())
    own = {"m": shop.merchant_id, "o": order_id, "c": "cus_forge", "lang": "en"}
    forged = [
        sign(SECRET, Claims(**own, exp=now)),  # expires this very second
        sign(SECRET, Claims(**own, exp=now - 1)),
        f"{prefix}.{kid}.{claims}",
        f"{token}.",
        f"{token}.{signature}",
        f"{prefix}.{kid}..{signature}",
        f"{prefix}.deadbeef.{claims}.{signature}",  # another key id
        f"{prefix}.{kid}.{_claims_b64({**own, 'o': 'o_other', 'exp': now + 600})}.{signature}",
        "pt1." + "a" * 8_000,
        "pt1." + "a." * 20_000,
        _signed(b"[]"),
        _signed(b'{"m": 1}'),
        _signed(json.dumps({**own, "exp": "never"}).encode()),
        _signed(b"\xff\xfe not json"),
    ]
    for bad in forged:
        with _customer(shop, bad) as customer:
            answer = customer.get(f"/v1/orders/{order_id}")
            assert _is_unauthorized(answer), (bad[:80], answer.status_code, answer.text[:200])
    raw_headers = [
        b"Bearer pt1.\xe9\xe9.x.y",
        ("Bearer " + token[:-2] + "é").encode(),
        b"Bearer",
        b"Bearer  \t x",
        b"Basic " + token.encode(),
        token.encode(),
    ]
    for header in raw_headers:
        answer = httpx.get(f"{shop.base_url}/v1/orders/{order_id}", headers=[(b"Authorization", header)], timeout=30)
        assert _is_unauthorized(answer), (header[:40], answer.status_code)
    for scheme in ("bearer", "BEARER", "Bearer "):  # the scheme is case-insensitive (RFC 9110)
        answer = httpx.get(f"{shop.base_url}/v1/orders/{order_id}", headers={"Authorization": f"{scheme} {token}"})
        assert answer.status_code == 200, scheme


def test_a_token_reaches_no_other_order_by_any_way_in(shop: Tenant) -> None:
    """Beyond test_portal_access: listing cursors, Idempotency-Keys reused across orders of the
    same customer, another order named in the body of an action on its own case, agent-only reads.

    Origin: outside review round 5 (#16), an attack the service withstood."""
    mine = _order(shop, "cus_same")
    sibling = _order(shop, "cus_same")  # the same customer's other order
    sibling_cases = [shop.open_case(sibling).json(), shop.open_case(sibling, items=FOR_REVIEW).json()]
    storefront_page = shop.storefront.get("/v1/cases", params={"limit": 1}).json()
    assert storefront_page["next_cursor"]
    with _customer(shop, _link(shop, mine, "cus_same")["token"]) as customer:
        opened = customer.post("/v1/cases", json=_return(mine), headers={"Idempotency-Key": "k-1"})
        assert opened.status_code == 201, opened.text
        listed = customer.get("/v1/cases", params={"cursor": storefront_page["next_cursor"], "limit": 100}).json()
        assert {case["order_id"] for case in listed["items"]} <= {mine}
        for state in ("approved", "pending_review"):
            assert {c["order_id"] for c in customer.get("/v1/cases", params={"state": state}).json()["items"]} <= {mine}
        for case in sibling_cases:
            assert customer.get(f"/v1/cases/{case['id']}").status_code == 404
            assert customer.get(f"/v1/cases/{case['id']}/photos/ph_x").status_code == 404
            assert customer.post(f"/v1/cases/{case['id']}/survey", json={"rating": 1}).status_code == 404
            assert customer.post(f"/v1/cases/{case['id']}/quote/decline").status_code == 404
            # a version guess tells nothing either: 404 before any 412
            assert customer.post(f"/v1/cases/{case['id']}/cancel", headers={"If-Match": '"1"'}).status_code == 404
            assert customer.post(f"/v1/cases/{case['id']}/cancel", headers={"If-Match": '"99"'}).status_code == 404
        for path in (
            f"/admin/v1/cases/{opened.json()['id']}/mails",
            f"/admin/v1/cases/{opened.json()['id']}/events",
            "/admin/v1/me",
            "/admin/v1/case-counts",
            "/admin/v1/mail-settings",
            "/admin/v1/webhook-endpoints",
            f"/admin/v1/orders/{mine}",
            "/finance/v1/refunds",
        ):
            answer = customer.get(path)
            assert answer.status_code == 403 and answer.json()["code"] == "forbidden", path
    with _customer(shop, _link(shop, sibling, "cus_same")["token"]) as other_token:
        # the same customer's key on another order's credential replays nothing of the first order
        replay = other_token.post("/v1/cases", json=_return(mine), headers={"Idempotency-Key": "k-1"})
        assert replay.status_code in (404, 409, 422) and mine not in replay.text, replay.text
        assert other_token.get(f"/v1/cases/{opened.json()['id']}").status_code == 404
    # nothing stored for the sibling by the attempts
    assert len(shop.storefront.get("/v1/cases", params={"order_id": sibling}).json()["items"]) == 2


def test_the_lookup_refuses_bad_bodies_as_problems_and_stores_nothing(
    shop: Tenant, portal_service: tuple[str, str, Path]
) -> None:
    """Origin: outside review round 5 (#16), an attack the service withstood."""
    order_id = _order(shop, "cus_bodies", "bodies@example.com")
    good = {"merchant": shop.merchant_id, "order_id": order_id, "email": "bodies@example.com"}
    with public_client(shop.base_url, "127.0.0.22") as public:
        answers = [
            public.post("/v1/portal-sessions", content=b"{not json", headers={"Content-Type": "application/json"}),
            public.post("/v1/portal-sessions", content=b"x" * 2_000_000, headers={"Content-Type": "application/json"}),
            public.post("/v1/portal-sessions", json={**good, "email": ["bodies@example.com"]}),
            public.post("/v1/portal-sessions", json={**good, "send_to": "attacker@example.com"}),
            public.post("/v1/portal-sessions", json={**good, "email": "x" * 400}),
            public.post("/v1/portal-sessions", json={**good, "order_id": "o\r\nBcc: x"}),
            public.post("/v1/portal-sessions", data=good),
        ]
    for answer in answers:
        assert 400 <= answer.status_code < 500 and answer.status_code != 429, answer.status_code
        assert answer.headers["content-type"].startswith("application/problem+json"), answer.text[:200]
    time.sleep(0.5)
    assert lookup_links(portal_service[1], shop.merchant_id) == []


def test_the_lookup_link_goes_only_to_the_orders_own_address(shop: Tenant, portal_service: tuple[str, str, Path]) -> None:
    """Origin: outside review round 5 (#16), an attack the service withstood."""
    order_id = _order(shop, "cus_kelvin", "kelly@example.com", language="zh-Hans")
    asks = [
        "KELLY@EXAMPLE.COM",
        "\u212aelly@example.com",
        " kelly@example.com",
        "kelly@example.com\n",
        "kelly@example.com,attacker@example.com",
        "attacker@example.com",
    ]
    with public_client(shop.base_url, "127.0.0.23") as public:
        for ask in asks:
            assert (
                public.post(
                    "/v1/portal-sessions", json={"merchant": shop.merchant_id, "order_id": order_id, "email": ask}
                ).status_code
                == 202
            )
    eventually(lambda: len(lookup_links(portal_service[1], shop.merchant_id)) >= 2)
    time.sleep(0.5)  # the lookups that do not match had their time to record anything
    links = lookup_links(portal_service[1], shop.merchant_id)
    assert len(links) == 2  # the case and the Kelvin-sign variants match the stored address; nothing else does
    assert {link["email"] for link in links} == {"kelly@example.com"}
    assert {link["language"] for link in links} == {"zh-CN"}
    mails = eventually(lambda: [m for m in eml_mails(portal_service[2], "portal_link") if m["To"] == "kelly@example.com"])
    assert len(mails) == 2
    for mail in mails:
        claims = _claims(link_token(portal_links(mail)[0]))
        assert (claims["m"], claims["o"], claims["c"]) == (shop.merchant_id, order_id, "cus_kelvin")
        assert claims["exp"] - time.time() <= 3600


def test_the_lookup_limit_counts_alike_for_existing_and_missing_orders(shop: Tenant) -> None:
    """Origin: outside review round 5 (#16), an attack the service withstood."""
    order_id = _order(shop, "cus_limit", "limit@example.com")
    statuses = {}
    for name, target, address in (("exists", order_id, "127.0.0.24"), ("missing", "o_never", "127.0.0.25")):
        with public_client(shop.base_url, address) as public:
            answers = [
                public.post(
                    "/v1/portal-sessions",
                    json={
                        "merchant": shop.merchant_id,
                        "order_id": target,
                        "email": f"limit{'' if name == 'exists' else '-no'}@example.com",
                    },
                )
                for _ in range(PER_EMAIL + 1)
            ]
        statuses[name] = [(a.status_code, sorted(set(a.headers) - {"date", "x-request-id", "content-length"})) for a in answers]
    assert statuses["exists"] == statuses["missing"]
    assert [status for status, _ in statuses["exists"]] == [202] * PER_EMAIL + [429]


def test_mails_escape_the_agents_words_and_link_to_the_cases_order_only(
    shop: Tenant, portal_service: tuple[str, str, Path]
) -> None:
    """Origin: outside review round 5 (#16), an attack the service withstood."""
    hostile = '<img src=x onerror=alert(1)> "quoted"\r\nBcc: attacker@example.com\r\n\r\n{case_id} %s'
    order_id = _order(shop, "cus_mail", "mail@example.com", language="zh")
    case = shop.open_case(order_id, items=FOR_REVIEW).json()
    assert case["state"] == "pending_review", case["state"]
    rejected = shop.agent.post(f"/admin/v1/cases/{case['id']}/reject", json={"reason": hostile, "note": hostile})
    assert rejected.status_code == 200, rejected.text
    folder = portal_service[2] / "outbox-mail"

    def rejection() -> email.message.EmailMessage | None:
        for path in folder.glob("*.eml") if folder.exists() else []:
            mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if mail["X-Returns-Case"] == case["id"] and mail["X-Returns-Kind"] == "rejected":
                return mail  # type: ignore[return-value]
        return None

    mail = eventually(rejection)
    assert mail["Bcc"] is None and mail["To"] == "mail@example.com" and mail["Content-Language"] == "zh-CN"
    assert "\n" not in str(mail["Subject"]) and "attacker" not in str(mail["Subject"])
    page = mail.get_body(("html",)).get_content()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    text = mail.get_body(("plain",)).get_content()
    assert "{case_id} %s" in text  # the agent's words are not a template
    links = [word for word in text.split() if "/portal#" in word]
    assert links
    for link in links:
        fragment = parse_qs(urlsplit(link).fragment)
        claims = _claims(fragment["t"][0])
        assert (claims["m"], claims["o"], claims["c"], claims["lang"]) == (shop.merchant_id, order_id, "cus_mail", "zh-CN")
        assert fragment["case"] == [case["id"]]
    with _customer(shop, parse_qs(urlsplit(links[0]).fragment)["t"][0]) as customer:
        assert customer.get(f"/v1/cases/{case['id']}").status_code == 200


def test_twenty_concurrent_lookups_from_one_address_get_its_budget_only(portal_service: tuple[str, str, Path]) -> None:
    """Origin: outside review round 5 (#16), an attack the service withstood."""

    def ask(n: int) -> int:
        with public_client(portal_service[0], "127.0.0.26") as public:
            return public.post(
                "/v1/portal-sessions", json={"merchant": "m_race", "order_id": "o_race", "email": f"race{n}@example.com"}
            ).status_code

    with ThreadPoolExecutor(20) as pool:
        statuses = sorted(pool.map(ask, range(20)))
    assert statuses == [202] * PER_IP + [429] * (20 - PER_IP)


def test_a_portal_token_stays_with_its_customer_when_the_order_changes_hands(tenant: Tenant) -> None:
    """A customer's token names the order and the customer: once the storefront gives the order to
    another customer (allowed when no live case holds it), the old token reaches neither the order
    nor the new customer's cases, and the new one none of the old customer's.

    Origin: outside review of #23, an attack the service withstood."""
    first = {"id": f"cus_{secrets.token_hex(3)}", "email": "first@example.com"}
    pi = f"pi_{secrets.token_hex(4)}"
    order_id = sold(tenant, pi, first)
    second = {"id": f"cus_{secrets.token_hex(3)}", "email": "second@example.com"}
    with _order_token(tenant, order_id, first["id"]) as old:
        opened = old.post(
            "/v1/cases", json={"order_id": order_id, "type": "return", "resolution": "refund", "items": RETURN_LAMP}
        )
        assert opened.status_code == 201, opened.text
        mine = opened.json()["id"]
        assert old.post(f"/v1/cases/{mine}/cancel").status_code == 200
        assert sold(tenant, pi, second, order_id) == order_id, "no live case holds the order: it may change hands"
        with _order_token(tenant, order_id, second["id"]) as new:
            theirs = new.post(
                "/v1/cases", json={"order_id": order_id, "type": "return", "resolution": "refund", "items": RETURN_LAMP}
            )
            assert theirs.status_code == 201, theirs.text
            assert old.get(f"/v1/orders/{order_id}").status_code == 404
            assert old.get(f"/v1/cases/{theirs.json()['id']}").status_code == 404
            assert [c["id"] for c in old.get("/v1/cases").json()["items"]] == [mine], "only its own, released case"
            again = old.post(
                "/v1/cases", json={"order_id": order_id, "type": "return", "resolution": "refund", "items": RETURN_LAMP}
            )
            assert again.status_code == 422 and again.json()["errors"][0]["field"] == "order_id"
            assert new.get(f"/v1/cases/{mine}").status_code == 404
            assert [c["id"] for c in new.get("/v1/cases").json()["items"]] == [theirs.json()["id"]]


def _order_token(shop: Tenant, order_id: str, customer_id: str) -> httpx.Client:
    link = shop.storefront.post("/v1/portal-links", json={"order_id": order_id, "customer_id": customer_id})
    assert link.status_code == 201, link.text
    return httpx.Client(base_url=shop.base_url, headers={"Authorization": f"Bearer {link.json()['token']}"}, timeout=30)
