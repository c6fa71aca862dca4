"""Customer e-mail over real HTTP: the admin's mail settings (role, validation, round trip), and
a return walked through the API to its close while the service's own worker mails each step to a
real SMTP server on 127.0.0.1, in the customer's language, with links to the portal. One
merchant's customer address or reply-to that no mail can carry holds up no other merchant's mail,
and an address the SMTP client refuses is recorded, not left pending."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from service.config import Settings
from tests.fakes.stripe_server import FakeStripe
from tests.support.database import fresh_database
from tests.support.flows import received_return
from tests.support.server import fresh_service, serve
from tests.support.smtp import Inbox, smtp_server
from tests.support.tenants import Tenant, order_body
from tests.support.waiting import eventually

PORTAL = "https://returns.example.com"


@pytest.fixture(scope="module")
def mail_service(stripe_fake: FakeStripe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Inbox]]:
    from service.bootstrap import build_app

    with smtp_server() as (inbox, smtp_url), fresh_database() as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path_factory.mktemp("mail"),
            log_format="json",
            stripe_api_key="sk_test_fake",
            stripe_api_base=stripe_fake.url,
            smtp_url=smtp_url,
            public_url=PORTAL,
            mail_from="returns@shop.example",
            worker_idle_seconds=0.05,
            worker_poll_every_seconds=0.2,
        )
        with serve(build_app(settings)) as url:
            yield url, database_url, inbox


@pytest.fixture
def tenant(mail_service: tuple[str, str, Inbox]) -> Iterator[Tenant]:
    url, database_url, _ = mail_service
    shop = Tenant(url, database_url)
    yield shop
    shop.close()


def test_mail_settings_are_the_admins_and_checked(tenant: Tenant) -> None:
    assert tenant.admin.get("/admin/v1/mail-settings").json() == {
        "sender_name": None,
        "reply_to": None,
        "default_language": "en",
        "return_address": None,
    }
    wanted = {
        "sender_name": "Shop Li",
        "reply_to": "help@shop.example",
        "default_language": "zh-CN",
        "return_address": "1 Return Rd, Shanghai",
    }
    assert tenant.agent.put("/admin/v1/mail-settings", json=wanted).status_code == 403
    saved = tenant.admin.put("/admin/v1/mail-settings", json=wanted)
    assert saved.status_code == 200 and saved.json() == wanted
    assert tenant.admin.get("/admin/v1/mail-settings").json() == wanted
    for bad in ({"default_language": "fr"}, {"reply_to": "not an address"}, {"sender_name": "Evil\r\nBcc: x@y.z"}):
        refused = tenant.admin.put("/admin/v1/mail-settings", json=bad)
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert tenant.admin.get("/admin/v1/mail-settings").json() == wanted, "nothing stored from a refusal"


def test_a_return_through_the_api_mails_the_customer_at_each_step(
    tenant: Tenant, stripe_fake: FakeStripe, mail_service: tuple[str, str, Inbox]
) -> None:
    inbox = mail_service[2]
    tenant.admin.put("/admin/v1/mail-settings", json={"sender_name": "Shop Li", "default_language": "zh-CN"})
    case = received_return(tenant, stripe_fake)  # the order's customer gave no language: the merchant's default
    order = tenant.storefront.get(f"/v1/orders/{case['order_id']}").json()
    assert order["customer"].get("language") is None

    def mails() -> list | None:
        mine = [m for m in inbox.messages if m["X-Returns-Case"] == case["id"]]
        return mine if len(mine) >= 4 else None

    mine = eventually(mails)
    assert sorted(m["X-Returns-Kind"] for m in mine) == ["approved", "received", "refund_sent", "survey"]
    assert all(m["Content-Language"] == "zh-CN" and m["To"] == "a@example.com" for m in mine)
    survey = next(m for m in mine if m["X-Returns-Kind"] == "survey")
    text = survey.get_body(("plain",)).get_content()
    links = [urlsplit(word) for word in text.split() if word.startswith(PORTAL)]
    assert [parse_qs(link.fragment)["rating"] for link in links] == [["1"], ["2"], ["3"], ["4"], ["5"]]
    assert all(link.path == "/portal" and parse_qs(link.fragment)["case"] == [case["id"]] for link in links)

    def recorded() -> list | None:
        items = tenant.agent.get(f"/admin/v1/cases/{case['id']}/mails").json()["items"]
        return items if [m["status"] for m in items] == ["sent"] * 4 else None

    listed = eventually(recorded)  # the row says sent a moment after the server has the mail
    assert {m["id"] for m in listed} == {m["Message-ID"].strip("<>").split("@")[0] for m in mine}
    assert tenant.storefront.get(f"/admin/v1/cases/{case['id']}/mails").status_code == 403
    other = Tenant(tenant.base_url, tenant.database_url)
    try:
        assert other.agent.get(f"/admin/v1/cases/{case['id']}/mails").status_code == 404
    finally:
        other.close()


def test_the_customers_language_travels_with_the_order(tenant: Tenant) -> None:
    order = tenant.put_order(customer={"id": "cus_lang", "email": "li@example.com", "language": "zh-CN"})
    assert tenant.storefront.get(f"/v1/orders/{order['order_id']}").json()["customer"]["language"] == "zh-CN"
    refused = tenant.storefront.put("/v1/orders/o_bad_lang", json=order_body(customer={"id": "c", "language": "<b>"}))
    assert refused.status_code == 422 and "language" in refused.text, refused.text
    assert tenant.storefront.get("/v1/orders/o_bad_lang").status_code == 404


# --------------------------------------------------------------------------- one merchant's bad address or setting


@contextmanager
def _service(data_dir: Path, **settings: Any) -> Iterator[tuple[str, str]]:
    """The service with its worker, on a database of its own, started the way ``returns serve``
    starts it (uvicorn's defaults): no ``RETURNS_PUBLIC_URL`` unless given."""
    with fresh_service(
        data_dir=data_dir,
        log_format="json",
        worker_idle_seconds=0.05,
        worker_poll_every_seconds=0.2,
        portal_secrets=("customer-mail-secret",),
        **settings,
    ) as service:
        yield service


@contextmanager
def _two_merchants(data_dir: Path) -> Iterator[tuple[Tenant, Tenant]]:
    """Two merchants on a service of their own (what one of them does may stop its worker)."""
    with _service(data_dir) as (url, database_url):
        careless, victim = Tenant(url, database_url), Tenant(url, database_url)
        try:
            yield careless, victim
        finally:
            careless.close()
            victim.close()


def _order(shop: Tenant, customer_id: str, email: str) -> str:
    return shop.put_order(customer={"id": customer_id, "email": email})["order_id"]


def _mails(shop: Tenant, case_id: str) -> list[dict[str, Any]]:
    answer = shop.agent.get(f"/admin/v1/cases/{case_id}/mails")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def _assert_mailed(shop: Tenant) -> None:
    """A new case of ``shop`` gets its "received" mail planned."""
    case = shop.open_case(_order(shop, "cus_fine", "fine@example.com")).json()
    assert eventually(lambda: _mails(shop, case["id"]), timeout=6)[0]["kind"] == "received"


@pytest.mark.parametrize("typed", ["john@example.com.", "john@"], ids=["trailing-dot", "no-domain"])
def test_one_unparseable_customer_address_stops_no_other_merchants_mail(typed: str, tmp_path: Path) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    with _two_merchants(tmp_path) as (careless, victim):
        careless.open_case(_order(careless, "cus_typo", typed))  # as typed at the storefront's checkout
        _assert_mailed(victim)


def test_one_merchants_reply_to_stops_no_other_merchants_mail(tmp_path: Path) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    with _two_merchants(tmp_path) as (careless, victim):
        saved = careless.admin.put("/admin/v1/mail-settings", json={"reply_to": "help@[shop.example"})
        if saved.status_code == 200:  # accepted: its mail must not stop anyone else's
            careless.open_case(_order(careless, "cus_a", "a@example.com"))
        else:  # refused: fine too
            assert saved.status_code == 422, saved.text
        _assert_mailed(victim)


@pytest.mark.parametrize("typed", ["kunde@b\u00fccher.example", "kunde@example.com\u00a0"], ids=["idn-domain", "no-break-space"])
def test_an_address_the_smtp_client_refuses_is_recorded_not_stuck(typed: str, tmp_path: Path) -> None:
    """Origin: outside review round 5 (#16), a finding (fixed since)."""
    with (
        smtp_server() as (_inbox, smtp_url),
        _service(tmp_path, smtp_url=smtp_url, mail_first_backoff_seconds=0.2) as (url, database_url),
    ):
        shop = Tenant(url, database_url)
        try:
            case = shop.open_case(_order(shop, "cus_idn", typed)).json()

            def settled() -> list[dict[str, Any]]:
                return [m for m in _mails(shop, case["id"]) if m["status"] != "pending" or m["last_error"]]

            mail = eventually(settled, timeout=8)[0]
            assert mail["status"] == "sent" or mail["last_error"], mail
        finally:
            shop.close()
