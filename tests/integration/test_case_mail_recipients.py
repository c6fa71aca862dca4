"""Who a case's e-mail goes to and what its links let in, below HTTP (the worker's planning and
sending run by hand, so the test decides what happens in between): real PostgreSQL, the mailer
writing ``.eml`` files. A case's mail goes only to its case's customer; a mail planned before
links had slots goes out as it was stored, signing nothing.

Origin: outside review of #23 (the first was a finding, fixed since; the second an attack the
service withstood)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import msgspec
import pytest

from adapters.gateways.simulated import SimulatedGateway
from adapters.mail import EmlFolderTransport
from adapters.postgres.database import PostgresDatabase
from policies.registry import RuleRegistry
from service.cases import CaseService
from service.dto import CaseIn, OrderIn, RejectIn
from service.mail import Mailer
from service.policy import PolicyBook
from service.portal import PortalService, verify
from service.ports import CustomerMail, Principal
from service.refunds import RefundService
from tests.support.mails import eml_mails, link_token, portal_links
from tests.support.refunds import Clock
from tests.support.tenants import order_body

MERCHANT = "m_mail_recipients"
STOREFRONT = Principal(key_id="k_sf", merchant_id=MERCHANT, role="storefront")
AGENT = Principal(key_id="k_agent", merchant_id=MERCHANT, role="agent")
PORTAL = "https://returns.example.com"
SECRET = "mail-recipients-secret"
SIGNED = re.compile(r"pt1\.[0-9a-f]{8}\.")


class World(msgspec.Struct):
    cases: CaseService
    mailer: Mailer
    db: PostgresDatabase
    data_dir: Path


@pytest.fixture
async def world(db: PostgresDatabase, own_database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock()
    gateway = SimulatedGateway(own_database_url)
    cases = CaseService(db, PolicyBook(RuleRegistry.discover()), RefundService(db, gateway, clock), clock)
    portal = PortalService(db, clock, (SECRET,), per_ip=10, per_email=10)
    mailer = Mailer(db, EmlFolderTransport(tmp_path / "outbox-mail"), clock, portal, public_url=PORTAL)
    async with db.transaction() as repos:
        await repos.ensure_merchant(MERCHANT)
    yield World(cases=cases, mailer=mailer, db=db, data_dir=tmp_path)
    await gateway.close()


async def _sell(world: World, order_id: str, customer_id: str, address: str) -> None:
    body = order_body(customer={"id": customer_id, "email": address})
    await world.cases.put_order(STOREFRONT, order_id, msgspec.convert(body, OrderIn))


def _customer_of(mail: EmailMessage) -> str:
    """The customer the mail's links let in."""
    [customer] = {verify((SECRET,), link_token(link), time.time()).c for link in portal_links(mail)}  # type: ignore[union-attr]
    return customer


async def test_a_case_mail_never_goes_to_another_customer_than_the_cases(world: World) -> None:
    """Attack: the storefront gives an order to another customer once no live case holds it (a
    rejected or cancelled case releases it; ``PUT /v1/orders`` then takes a new ``customer``).
    The rejection's mail is composed after that, from the order as it is now: it goes to the new
    customer's address, with a link signed for the case's (old) customer.

    Impact: the new customer holds the old customer's credential for the order: reads the old
    customer's cases (items, notes, the rejection and its reason, photos), answers them and opens
    cases in the old customer's name once the order is back with them. An order id reused by a
    storefront, or an order moved between accounts, is enough.

    Fix: a case mail goes only to its case's customer: compose it when ``order.customer.id`` is
    still ``case.customer_id``, else record it ``gave_up`` ("the order belongs to another
    customer now"), or keep the recipient on the case when it opens."""
    await _sell(world, "o_moved", "cus_first", "first@example.com")
    body = {
        "order_id": "o_moved",
        "type": "return",
        "resolution": "refund",
        "items": [{"line_id": "l1", "quantity": 1, "reason": "other", "note": "it is not what I ordered"}],
    }
    case, _ = await world.cases.open_case(STOREFRONT, msgspec.convert(body, CaseIn), None)
    await world.mailer.run_once()
    await world.cases.reject(AGENT, case.id, None, RejectIn(reason="outside the window", note="kept for our records"))
    await _sell(world, "o_moved", "cus_second", "second@example.com")  # released: it may change hands
    await world.mailer.run_once()

    [received] = eml_mails(world.data_dir, "received")
    assert (received["To"], _customer_of(received)) == ("first@example.com", "cus_first")
    rejected = eml_mails(world.data_dir, "rejected")
    assert [(m["To"], _customer_of(m)) for m in rejected] in ([], [("first@example.com", "cus_first")]), (
        "the first customer's case and credential went to the second customer"
    )


async def test_a_mail_planned_before_the_link_slots_is_sent_as_it_is_and_signs_nothing(world: World) -> None:
    """Mails planned before migration 013 carry their links as unsigned claims in the text and no
    ``link`` on the row. Such text could be anyone's (the old mailer signed whatever claims it
    found, which is how issue #23's attack worked): it goes out as it was stored, a dead link, and
    none of it is signed, whatever merchant, order and customer it names."""
    claims = {"m": "m_victim", "o": "o1", "c": "c1", "lang": "en", "exp": 4102444800}
    unsigned = "pt1-unsigned." + base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    old = EmailMessage()
    old["Subject"] = "Your return was not approved"
    old["To"] = "ann@example.com"
    old["X-Returns-Kind"] = "rejected"
    old.set_content(f"Reason: {unsigned}\n\nSee your return: {PORTAL}/portal#t={unsigned}&case=c_old&do=status\n")
    row = CustomerMail(
        merchant_id=MERCHANT,
        id="mail_planned_before_013",
        event_id=1,
        recipient="ann@example.com",
        kind="rejected",
        case_id="c_old",
        language="en",
        message=old.as_string(),
    )
    async with world.db.transaction() as repos:
        assert await repos.add_customer_mail(row, world.mailer.clock())
    assert await world.mailer.send_due() == 1

    [sent] = eml_mails(world.data_dir, "rejected")
    text = sent.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.count(unsigned) == 2, "the stored text, as it was"
    assert not SIGNED.search(text), "nothing in an old mail is signed"
    async with world.db.reading() as repos:
        [mail] = await repos.customer_mails(MERCHANT, "c_old")
    assert (mail.status, mail.link) == ("sent", None)
