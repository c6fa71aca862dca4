"""Customer e-mail over real HTTP: the admin's mail settings (role, validation, round trip), and
a return walked through the API to its close while the service's own worker mails each step to a
real SMTP server on 127.0.0.1, in the customer's language, with links to the portal."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from service.config import Settings
from tests.fakes.stripe_server import FakeStripe
from tests.support.database import fresh_database
from tests.support.flows import received_return
from tests.support.server import serve
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
