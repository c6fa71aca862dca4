"""The customer credentials in e-mail are made only from what the service decided: each mail's
link is signed for the mail's own merchant, order and customer, and no text that a merchant, an
agent or a customer wrote (ids, settings, notes, messages, names, addresses) ever becomes one.
A token is refused when it outlives the longest lifetime the service gives, whoever signed it.

Origin: the outside review of issue #23 (merchant B had the mailer sign claims for merchant A's
order written into a rejection note, and read A's order with the token)."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.config import Settings
from service.portal import MAX_LIFETIME_SECONDS, Claims, sign, verify
from tests.support.database import fresh_database
from tests.support.server import serve
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

SECRET = "mail-credentials-secret"
TOKEN = re.compile(r"pt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
VICTIM_ORDER, VICTIM_CUSTOMER = "o1", "c1"
FOR_REVIEW = [{"line_id": "l1", "quantity": 1, "reason": "other", "note": "x"}]


class World:
    def __init__(self, base_url: str, database_url: str, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.victim = Tenant(base_url, database_url, merchant_id="m_victim")
        self.attacker = Tenant(base_url, database_url, merchant_id="m_attack")

    def mails(self) -> list[EmailMessage]:
        folder = self.data_dir / "outbox-mail"
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in (sorted(folder.glob("*.eml")) if folder.exists() else [])
        ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from service.bootstrap import build_app

    data_dir = tmp_path_factory.mktemp("mail-credentials")
    with fresh_database() as database_url:
        settings = Settings(
            database_url=database_url,
            data_dir=data_dir,
            log_format="json",
            worker_idle_seconds=0.05,
            worker_poll_every_seconds=0.2,
            portal_secrets=(SECRET,),
        )
        with serve(build_app(settings)) as url:
            made = World(url, database_url, data_dir)
            yield made
            made.victim.close()
            made.attacker.close()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claim_texts(merchant_id: str) -> list[str]:
    """Text shaped like what a mail's link ever held or holds, naming the victim's order: the
    unsigned claims the mailer once signed wherever it found them, a link around them, the shape
    of today's link slot."""
    claims = json.dumps({"m": merchant_id, "o": VICTIM_ORDER, "c": VICTIM_CUSTOMER, "lang": "en", "exp": 4102444800})
    unsigned = f"pt1-unsigned.{_b64(claims.encode())}"
    return [unsigned, f"https://returns.example.com/portal#t={unsigned}&case=x", "portal-link-" + _b64(claims.encode())[:32]]


def _tokens(mail: EmailMessage) -> list[str]:
    found = []
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            found += TOKEN.findall(part.get_content())  # type: ignore[attr-defined]
    return found


def _agent(tenant: Tenant, case_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = tenant.agent.post(f"/admin/v1/cases/{case_id}/{action}", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_claims_written_anywhere_that_reaches_a_mail_never_become_a_credential(world: World) -> None:
    victim, attacker = world.victim, world.attacker
    victim.put_order(VICTIM_ORDER, customer={"id": VICTIM_CUSTOMER, "email": "victim@example.com"})
    unsigned, link, slot = _claim_texts(victim.merchant_id)
    hostile = f"{unsigned} {link} {slot}"
    settings = {"sender_name": hostile[:100], "return_address": hostile}
    assert attacker.admin.put("/admin/v1/mail-settings", json=settings).status_code == 200
    # the attacker's own order, its ids the claims themselves (ids may hold ``.`` ``-`` ``_``)
    line = {"line_id": "l1", "sku": hostile[:200], "title": hostile[:500], "quantity": 3, "unit_price": 1000}
    order_id = attacker.put_order(unsigned, lines=[line], customer={"id": unsigned, "email": "mine@example.com"})["order_id"]
    reviewed = attacker.open_case(order_id, items=[{**FOR_REVIEW[0], "note": hostile}], customer_note=hostile).json()
    assert reviewed["state"] == "pending_review", reviewed
    _agent(attacker, reviewed["id"], "request-info", {"message": hostile})
    answered = attacker.storefront.post(f"/v1/cases/{reviewed['id']}/info", json={"message": hostile})
    assert answered.status_code == 200, answered.text
    _agent(attacker, reviewed["id"], "approve", {"note": hostile})
    shipped = attacker.storefront.post(
        f"/v1/cases/{reviewed['id']}/return-shipment", json={"carrier": hostile[:200], "tracking_number": unsigned}
    )
    assert shipped.status_code == 200, shipped.text
    _agent(attacker, reviewed["id"], "receive", {"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]})
    rejected = attacker.open_case(order_id, items=[{**FOR_REVIEW[0], "quantity": 1}]).json()
    _agent(attacker, rejected["id"], "reject", {"reason": hostile, "note": hostile})
    lookup = httpx.post(
        f"{attacker.base_url}/v1/portal-sessions",
        json={"merchant": attacker.merchant_id, "order_id": order_id, "email": "mine@example.com"},
    )
    assert lookup.status_code == 202, lookup.text
    expected = {"received", "info_requested", "approved", "refund_sent", "rejected", "portal_link"}

    def all_mailed() -> list[EmailMessage]:
        mails = world.mails()
        return mails if expected <= {m["X-Returns-Kind"] for m in mails} else []

    mails = eventually(all_mailed, timeout=30)
    carried = [m for m in mails if unsigned in m.get_body(("plain",)).get_content()]  # type: ignore[union-attr]
    assert {m["X-Returns-Kind"] for m in carried} >= {"approved", "rejected", "info_requested"}, "the text reached the mails"
    now = time.time()
    for mail in mails:
        tokens = _tokens(mail)
        assert tokens, f"{mail['X-Returns-Kind']} links to the portal"
        for token in tokens:
            claims = verify((SECRET,), token, now)
            assert claims is not None
            assert (claims.m, claims.o, claims.c) == (attacker.merchant_id, order_id, unsigned), mail["X-Returns-Kind"]
            with httpx.Client(base_url=victim.base_url, headers={"Authorization": f"Bearer {token}"}) as holder:
                assert holder.get(f"/v1/orders/{VICTIM_ORDER}").status_code in (401, 404)
                assert holder.get(f"/v1/orders/{order_id}").status_code == 200  # the mail's own order


@pytest.mark.parametrize(
    "lifetime", [MAX_LIFETIME_SECONDS + 120, 4102444800 - int(time.time())], ids=["past-the-cap", "year-2100"]
)
def test_a_token_outliving_the_longest_lifetime_is_refused_even_when_signed(world: World, lifetime: int) -> None:
    order_id = world.victim.put_order(customer={"id": "cus_cap", "email": "cap@example.com"})["order_id"]

    def read_with(seconds: int) -> int:
        token = sign(
            SECRET, Claims(m=world.victim.merchant_id, o=order_id, c="cus_cap", lang="en", exp=int(time.time()) + seconds)
        )
        with httpx.Client(base_url=world.victim.base_url, headers={"Authorization": f"Bearer {token}"}) as holder:
            return holder.get(f"/v1/orders/{order_id}").status_code

    assert read_with(MAX_LIFETIME_SECONDS - 120) == 200  # the longest the service gives still works
    assert read_with(lifetime) == 401
