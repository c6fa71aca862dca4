"""Customer e-mail from the outbox (issue #16): a real SMTP server on 127.0.0.1 (aiosmtpd), real
PostgreSQL (a database of the test's own), the service layer with an injected clock. One mail per
event in the customer's language, with portal links and escaped text; refusals retried with
backoff and given up; two workers send each mail once; the .eml folder when no server is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from adapters.gateways.simulated import SimulatedGateway
from adapters.mail import EmlFolderTransport, SmtpTransport
from adapters.postgres.database import PostgresDatabase
from adapters.webhook_sender import HttpWebhookSender
from domain.money import to_major
from policies.registry import RuleRegistry
from service.cases import CaseService
from service.dto import (
    ApproveIn,
    CaseIn,
    MailSettingsIn,
    OrderIn,
    ReceiveIn,
    RejectIn,
    RequestInfoIn,
)
from service.mail import Mailer
from service.metrics import MAIL_FAILURES
from service.notifications import Notifications
from service.policy import PolicyBook
from service.portal import LINK_TOPIC, PortalService, PortalSessionIn, verify
from service.ports import MailTransport, Principal
from service.refunds import RefundService
from service.worker import Worker
from tests.fakes.resolver import ScriptedResolver
from tests.support.refunds import Clock
from tests.support.smtp import Inbox, self_signed, smtp_server
from tests.support.tenants import order_body

MERCHANT = "m_mail"
STOREFRONT = Principal(key_id="k_sf", merchant_id=MERCHANT, role="storefront")
AGENT = Principal(key_id="k_agent", merchant_id=MERCHANT, role="agent")
PORTAL = "https://returns.example.com"
PORTAL_SECRET = "mail-test-secret"
SCRIPT = "<script>alert(1)</script>"
RECEIPT = msgspec.convert({"items": [{"line_id": "l1", "quantity": 1, "condition": "as_new"}]}, ReceiveIn)


class World(msgspec.Struct):
    clock: Clock
    cases: CaseService
    refunds: RefundService
    notifications: Notifications
    db: PostgresDatabase


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, str]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def world(db: PostgresDatabase, own_database_url: str) -> AsyncIterator[World]:
    clock = Clock()
    gateway = SimulatedGateway(own_database_url)
    sender = HttpWebhookSender()
    refunds = RefundService(db, gateway, clock)
    cases = CaseService(db, PolicyBook(RuleRegistry.discover()), refunds, clock)
    notifications = Notifications(db, sender, clock, resolver=ScriptedResolver({}))
    async with db.transaction() as repos:
        await repos.ensure_merchant(MERCHANT)
    yield World(clock=clock, cases=cases, refunds=refunds, notifications=notifications, db=db)
    await sender.close()
    await gateway.close()


def mailer(world: World, transport: MailTransport) -> Mailer:
    portal = PortalService(world.db, world.clock, (PORTAL_SECRET,), per_ip=10, per_email=10)
    return Mailer(world.db, transport, world.clock, portal, public_url=PORTAL, mail_from="returns@shop.example")


def worker(world: World, transport: MailTransport) -> Worker:
    return Worker(world.refunds, world.notifications, world.cases, mailer(world, transport), auto_close_after=None)


async def _order(world: World, order_id: str, **customer: Any) -> None:
    body = order_body(customer={"id": f"cus_{order_id}", "email": f"{order_id}@example.com", **customer})
    await world.cases.put_order(STOREFRONT, order_id, msgspec.convert(body, OrderIn))


async def _open(world: World, order_id: str, **case: Any) -> str:
    body = {
        "order_id": order_id,
        "type": "return",
        "resolution": "refund",
        "items": [{"line_id": "l1", "quantity": 1, "reason": "changed_mind"}],
        **case,
    }
    view, _ = await world.cases.open_case(STOREFRONT, msgspec.convert(body, CaseIn), None)
    return view.id


def _kinds(inbox: Inbox, case_id: str) -> list[str]:
    return [m["X-Returns-Kind"] for m in inbox.messages if m["X-Returns-Case"] == case_id]


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    page = message.get_body(("html",))
    assert text is not None and page is not None, "multipart/alternative: plain text and HTML"
    return text.get_content(), page.get_content()


def _portal_links(text: str) -> list[dict[str, list[str]]]:
    links = [word for word in text.split() if word.startswith(PORTAL)]
    parsed = []
    for link in links:
        parts = urlsplit(link)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "returns.example.com", "/portal"), link
        parsed.append(parse_qs(parts.fragment))
    return parsed


async def test_a_return_walked_to_its_close_mails_each_step_once_in_the_customers_language(
    world: World, smtp: tuple[Inbox, str]
) -> None:
    inbox, url = smtp
    await mailer(world, SmtpTransport(url)).put_settings(
        MERCHANT, MailSettingsIn(sender_name="Shop Li", reply_to="help@shop.example", return_address="1 Return Rd")
    )
    await _order(world, "o_zh", language="zh-CN")
    case_id = await _open(world, "o_zh")  # a change of mind is approved at once
    workers = [worker(world, SmtpTransport(url)) for _ in range(2)]
    await workers[0].run_once()
    await world.cases.receive(AGENT, case_id, None, RECEIPT)
    for _ in range(3):  # the refund is sent, settles, the case closes: the mail follows each step
        await asyncio.gather(*(w.run_once() for w in workers))

    assert sorted(_kinds(inbox, case_id)) == ["approved", "received", "refund_sent", "survey"], _kinds(inbox, case_id)
    assert len(inbox.messages) == 4, "once each, though two workers ran"
    by_kind = {m["X-Returns-Kind"]: m for m in inbox.messages}
    for message in inbox.messages:
        assert message["To"] == "o_zh@example.com"
        assert message["Reply-To"] == "help@shop.example"
        assert message["From"].addresses[0].display_name == "Shop Li"
        assert message["From"].addresses[0].addr_spec == "returns@shop.example"
        assert message["Content-Language"] == "zh-CN"
        assert message["Message-ID"].endswith("@shop.example>")
        assert message["Auto-Submitted"] == "auto-generated", "RFC 3834: auto-responders leave it be"
    assert by_kind["received"]["Subject"] == f"我们已收到您的退货申请 {case_id}"
    text, page = _parts(by_kind["approved"])
    assert "请将商品寄回：1 Return Rd" in text and "1 Return Rd" in page
    text, _ = _parts(by_kind["refund_sent"])
    async with world.db.reading() as repos:
        [refund] = await repos.case_refunds(MERCHANT, [case_id])
    amount = f"{to_major(refund.amount, refund.currency)} {refund.currency}"
    assert refund.amount > 0 and by_kind["refund_sent"]["Subject"] == f"您的退款 {amount} 已发出" and amount in text
    text, page = _parts(by_kind["survey"])
    ratings = _portal_links(text)
    assert [r["rating"] for r in ratings] == [["1"], ["2"], ["3"], ["4"], ["5"]]
    assert all(r["case"] == [case_id] and r["do"] == ["survey"] for r in ratings)
    assert page.count('<a href="https://returns.example.com/portal#') == 5
    for message in inbox.messages:  # every link carries a token for this order of this customer only
        for link in _portal_links(_parts(message)[0]):
            claims = verify((PORTAL_SECRET,), link["t"][0], world.clock().timestamp())
            assert claims is not None and (claims.m, claims.o, claims.c, claims.lang) == (MERCHANT, "o_zh", "cus_o_zh", "zh-CN")
            assert claims.exp - world.clock().timestamp() >= 29 * 86_400, "the survey's ratings still work weeks later"
            assert verify(("another-secret",), link["t"][0], world.clock().timestamp()) is None


async def test_rejection_and_information_request_carry_the_agents_words_escaped(world: World, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    await _order(world, "o_review")  # no language, no merchant default: English
    needs_review = [{"line_id": "l2", "quantity": 1, "reason": "other", "note": "why"}]
    asked = await _open(world, "o_review", items=needs_review)
    rejected = await _open(world, "o_review", items=[{"line_id": "l1", "quantity": 1, "reason": "other", "note": "x"}])
    await world.cases.request_info(AGENT, asked, None, RequestInfoIn(message=f"Send a photo {SCRIPT}"))
    await world.cases.reject(AGENT, rejected, None, RejectIn(reason="worn", note=f"Tag removed {SCRIPT}"))
    await worker(world, SmtpTransport(url)).run_once()

    assert _kinds(inbox, asked) == ["received", "info_requested"]
    assert _kinds(inbox, rejected) == ["received", "rejected"]
    info = next(m for m in inbox.messages if m["X-Returns-Kind"] == "info_requested")
    text, page = _parts(info)
    assert info["Subject"] == f"We need more information about your return {asked}"
    assert f"Send a photo {SCRIPT}" in text, "plain text keeps the words as written"
    assert SCRIPT not in page and "Send a photo &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert [link["do"] for link in _portal_links(text)] == [["info"]]
    _, page = _parts(next(m for m in inbox.messages if m["X-Returns-Kind"] == "rejected"))
    assert "Reason: worn" in page and "Tag removed &lt;script&gt;" in page and "<script>" not in page


async def test_an_approval_that_lets_the_customer_keep_the_item_says_so(world: World, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    await _order(world, "o_keep")
    case_id = await _open(world, "o_keep", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "x"}])
    await world.cases.approve(AGENT, case_id, None, msgspec.convert({"keep_item": True}, ApproveIn))
    await worker(world, SmtpTransport(url)).run_once()
    approved = next(m for m in inbox.messages if m["X-Returns-Kind"] == "approved")
    text, _ = _parts(approved)
    assert approved["Subject"] == f"Your return {case_id} is approved: keep the item"
    assert "keep it" in text and "send the item back to" not in text.lower()


async def test_a_worker_killed_after_the_data_sends_again_with_the_same_message_id(world: World, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    await _order(world, "o_crash")
    case_id = await _open(world, "o_crash", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "x"}])
    dying = mailer(world, SmtpTransport(url))
    await dying.plan_due()
    async with world.db.transaction() as repos:  # claimed and handed over, then the worker dies
        [mail] = await repos.claim_due_mail(world.clock(), dying.lease, 10)
    await SmtpTransport(url).send(mail.id, dying.mail_from, [mail.recipient], mail.message.encode())
    assert await mailer(world, SmtpTransport(url)).send_due() == 0, "the lease still holds"
    world.clock.advance(seconds=dying.lease.total_seconds() + 1)
    assert await mailer(world, SmtpTransport(url)).send_due() == 1
    assert _kinds(inbox, case_id) == ["received", "received"], "SMTP is at least once"
    assert inbox.messages[0]["Message-ID"] == inbox.messages[1]["Message-ID"], "the client can drop the copy"


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_tls_starttls_when_offered_and_smtps(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls: Literal["starttls", "implicit"]
) -> None:
    cert = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # the client verifies the server against it
    with smtp_server(tls, cert) as (inbox, url):
        await _order(world, f"o_{tls}")
        case_id = await _open(world, f"o_{tls}", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "x"}])
        await worker(world, SmtpTransport(url)).run_once()
    assert _kinds(inbox, case_id) == ["received"], "the server refuses mail before STARTTLS"


async def test_an_unusable_address_is_recorded_and_holds_nobody_up(world: World, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    await _order(world, "o_bad", email="a@example.com, Bcc: all@example.com")  # one line (a line break is a 422)
    await _order(world, "o_good")
    bad = await _open(world, "o_bad", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "x"}])
    good = await _open(world, "o_good", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "x"}])
    await worker(world, SmtpTransport(url)).run_once()
    assert _kinds(inbox, good) == ["received"] and _kinds(inbox, bad) == []
    assert all(m["Bcc"] is None for m in inbox.messages)
    [listed] = (await mailer(world, SmtpTransport(url)).case_mails(MERCHANT, bad)).items
    assert listed.status == "gave_up" and (listed.last_error or "").startswith("not one e-mail address")


async def test_a_451_is_retried_and_the_mail_arrives_once(world: World, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    inbox.refusals = ["451 4.3.0 try again later"]
    await _order(world, "o_451")
    case_id = await _open(world, "o_451", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "x"}])
    sending = worker(world, SmtpTransport(url))
    await sending.run_once()
    assert inbox.refused == 1 and inbox.messages == []
    async with world.db.reading() as repos:
        [mail] = await repos.customer_mails(MERCHANT, case_id)
    assert (mail.status, mail.attempts) == ("pending", 1) and "451" in (mail.last_error or "")
    await sending.run_once()
    assert inbox.messages == [], "the backoff holds the retry back"
    world.clock.advance(seconds=31)
    await sending.run_once()
    world.clock.advance(hours=2)
    await sending.run_once()
    assert _kinds(inbox, case_id) == ["received"]
    async with world.db.reading() as repos:
        [mail] = await repos.customer_mails(MERCHANT, case_id)
    assert (mail.status, mail.attempts) == ("sent", 2)


async def test_a_550_is_recorded_retried_with_backoff_and_given_up(world: World, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    inbox.refusals = ["550 5.1.1 no such mailbox"] * 5
    await _order(world, "o_550")
    case_id = await _open(world, "o_550", items=[{"line_id": "l2", "quantity": 1, "reason": "other", "note": "x"}])
    sending = worker(world, SmtpTransport(url))
    gave_up_before = MAIL_FAILURES.labels("gave_up")._value.get()
    retried_before = MAIL_FAILURES.labels("retry")._value.get()
    waits = []
    for _ in range(4):
        await sending.run_once()
        async with world.db.reading() as repos:
            [mail] = await repos.customer_mails(MERCHANT, case_id)
        waits.append(mail.status)
        world.clock.advance(minutes=30)
    assert waits == ["pending", "pending", "gave_up", "gave_up"], "three permanent refusals, then no more"
    assert inbox.refused == 3 and inbox.messages == []
    assert MAIL_FAILURES.labels("gave_up")._value.get() == gave_up_before + 1
    assert MAIL_FAILURES.labels("retry")._value.get() == retried_before + 2
    [listed] = (await mailer(world, SmtpTransport(url)).case_mails(MERCHANT, case_id)).items
    assert (listed.status, listed.attempts, listed.sent_at) == ("gave_up", 3, None)
    assert "550" in (listed.last_error or "")


async def test_two_workers_at_once_send_each_mail_once(world: World, smtp: tuple[Inbox, str]) -> None:
    inbox, url = smtp
    case_ids = []
    for n in range(6):
        await _order(world, f"o_many_{n}")
        case_ids.append(await _open(world, f"o_many_{n}"))
    workers = [worker(world, SmtpTransport(url)) for _ in range(2)]
    await asyncio.gather(*(w.run_once() for w in workers))
    await asyncio.gather(*(w.run_once() for w in workers))
    assert sorted(m["X-Returns-Case"] for m in inbox.messages) == sorted(case_ids * 2)
    assert len({m["Message-ID"] for m in inbox.messages}) == 12


async def test_without_a_server_mails_are_eml_files_a_retry_overwrites(world: World, tmp_path: Path) -> None:
    folder = tmp_path / "outbox-mail"
    await _order(world, "o_eml")
    case_id = await _open(world, "o_eml", resolution="store_credit")
    await world.cases.receive(AGENT, case_id, None, RECEIPT)  # credit granted at once, the case closed
    await worker(world, EmlFolderTransport(folder)).run_once()
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 4, files
    async with world.db.transaction() as repos:  # as if the worker died before recording it sent
        mails = await repos.customer_mails(MERCHANT, case_id)
        await repos.conn.execute("UPDATE customer_mail SET status = 'pending' WHERE merchant_id = $1", MERCHANT)
    await worker(world, EmlFolderTransport(folder)).run_once()
    assert sorted(folder.glob("*.eml")) == files, "named by the mail's id: the retry overwrote"
    parsed = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]
    assert sorted(m["X-Returns-Kind"] for m in parsed) == ["approved", "received", "store_credit", "survey"]
    credit = next(m for m in parsed if m["X-Returns-Kind"] == "store_credit")
    assert credit["Subject"].startswith("You received ") and credit["Subject"].endswith(" EUR in store credit")
    assert {f.stem for f in files} == {m.id for m in mails}


async def test_the_order_lookups_link_is_mailed_in_the_customers_language(world: World, smtp: tuple[Inbox, str]) -> None:
    """``POST /v1/portal-sessions`` records the link; the worker mails it to the order's customer
    (once, though two workers run), in their language, from the merchant's sender."""
    inbox, url = smtp
    m = mailer(world, SmtpTransport(url))
    await m.put_settings(MERCHANT, MailSettingsIn(sender_name="Shop Li", default_language="zh-CN"))
    await _order(world, "o_lookup")  # no language of their own: the merchant's default
    await m.portal.lookup(
        msgspec.convert({"merchant": MERCHANT, "order_id": "o_lookup", "email": "O_LOOKUP@example.com"}, PortalSessionIn)
    )
    await asyncio.gather(*(worker(world, SmtpTransport(url)).run_once() for _ in range(2)))

    [message] = [m for m in inbox.messages if m["X-Returns-Kind"] == "portal_link"]
    assert message["To"] == "o_lookup@example.com" and message["Content-Language"] == "zh-CN"
    assert message["Subject"] == "订单 o_lookup 的退货链接"
    assert message["From"].addresses[0].display_name == "Shop Li" and message["X-Returns-Case"] is None
    [link] = _portal_links(_parts(message)[0])
    claims = verify((PORTAL_SECRET,), link["t"][0], world.clock().timestamp())
    assert claims is not None and (claims.o, claims.c, claims.lang) == ("o_lookup", "cus_o_lookup", "zh-CN")
    assert claims.exp - int(world.clock().timestamp()) == 3600, "a looked-up link works for an hour"
    async with world.db.transaction() as repos:
        payload = await repos.claim_unplanned_outbox(10)
    assert not [p for p in payload if p.topic == LINK_TOPIC], "planned once"
