"""Customer e-mail at every step of a case, planned from the outbox and sent by the worker.

Planning: the worker takes outbox messages no mail was planned for (``FOR UPDATE SKIP LOCKED``),
decides which of them the customer hears of (``mail_kind``), composes the whole message once and
stores it as a row unique on (event, recipient, kind), marking the message planned in the same
transaction: one row per event, whatever the number of workers.

Sending: rows are claimed with a lease and handed to the ``MailTransport`` (SMTP, or ``.eml`` files
on a laptop). A refusal or a connection failure is recorded on the row and retried with
exponential backoff; a 5xx answer ``permanent_tries`` times, or any failure ``max_attempts``
times, gives up (logged, counted in ``returns_customer_mail_failures_total``).

SMTP cannot be exactly-once: a worker killed after the server took the DATA but before the row
says ``sent`` leaves the lease to run out, and the next worker sends it again. The Message-ID is
derived from the row, so that copy carries the same Message-ID and mail clients can drop it.

Links land on the customer portal with a customer token for the case's order (``service/portal.py``,
``MAIL_LINK_MINUTES``). The stored message carries no token (no live credential at rest, not even
for the agents who read the mail log): its links hold a random slot, and the row keeps the link's
claims as the mailer decided them from the mail's own merchant, case or lookup (``MailLink``). As
the mail is handed over, the token is signed from those claims and put in the slot only,
deterministically, so a retry sends the same bytes. Text that merchants, agents or customers wrote
(ids, notes, addresses) is never read for claims: nothing in it can become a credential.

A mail that cannot be composed or sent (an address the mail library or the SMTP client cannot
read, a mail server answering nonsense) is recorded on its own row; it never holds up another
mail, case or merchant."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import html
from collections.abc import Callable
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

import structlog
from msgspec.structs import asdict, replace

from domain.errors import InvalidRequest
from domain.money import to_major
from service.config import LOCAL_URL
from service.dto import (
    CustomerMailList,
    CustomerMailView,
    MailSettingsIn,
    MailSettingsView,
)
from service.metrics import MAIL_FAILURES
from service.portal import (
    LINK_TOPIC,
    MAIL_LINK_MINUTES,
    PortalService,
    language_for,
    link_slot,
    portal_url,
)
from service.ports import (
    CustomerMail,
    Database,
    MailLink,
    MailSendError,
    MailSettings,
    MailTransport,
    OutboxMessage,
    Repositories,
)

log = structlog.get_logger()

RATINGS = range(1, 6)


# --------------------------------------------------------------------------- templates
# One template renders both parts: blocks are paragraphs (``str``) or links (``(label, purpose,
# params)``); values are filled in, then the HTML part escapes every block as a whole.

Block = str | tuple[str, str, dict[str, str]]

TEMPLATES: dict[str, dict[str, tuple[str, list[Block]]]] = {
    "en": {
        "received": (
            "We received your return request {case_id}",
            [
                "Hello,",
                (
                    "we received your request {case_id} for order {order_id}. We will tell you by e-mail "
                    "as soon as it is reviewed."
                ),
                ("See your return", "status", {}),
            ],
        ),
        "approved": (
            "Your return {case_id} is approved",
            [
                "Hello,",
                "your return {case_id} for order {order_id} is approved.",
                "Please send the item back to: {return_address}",
                "Pack it safely and keep the shipping receipt. No shipping label is needed from us yet.",
                ("See your return", "status", {}),
            ],
        ),
        "approved_label": (
            "Your return {case_id} is approved",
            [
                "Hello,",
                "your return {case_id} for order {order_id} is approved.",
                (
                    "We are buying your return label: it comes in a separate e-mail in a few minutes, and your "
                    "return's page has it too. Pack the item safely and stick the label on the parcel."
                ),
                ("See your return", "status", {}),
            ],
        ),
        "approved_keep": (
            "Your return {case_id} is approved: keep the item",
            [
                "Hello,",
                (
                    "your return {case_id} for order {order_id} is approved. You do not need to send "
                    "the item back: please keep it. We will tell you when the money is on its way."
                ),
                ("See your return", "status", {}),
            ],
        ),
        "rejected": (
            "Your return {case_id} was not approved",
            [
                "Hello,",
                "we are sorry: your return {case_id} for order {order_id} was not approved.",
                "Reason: {reason}",
                "{note}",
                ("See your return", "status", {}),
            ],
        ),
        "info_requested": (
            "We need more information about your return {case_id}",
            ["Hello,", "to go on with your return {case_id} we need more information:", "{message}", ("Answer here", "info", {})],
        ),
        "refund_sent": (
            "Your refund of {amount} is on its way",
            [
                "Hello,",
                (
                    "we sent a refund of {amount} for your return {case_id} to your original payment method. "
                    "It may take a few days to show on your statement."
                ),
                ("See your return", "status", {}),
            ],
        ),
        "store_credit": (
            "You received {amount} in store credit",
            [
                "Hello,",
                ("we granted {amount} of store credit for your return {case_id}. You can use it on your next order."),
                ("See your return", "status", {}),
            ],
        ),
        "label_ready": (
            "Your return label for {case_id} is ready",
            [
                "Hello,",
                (
                    "your {carrier} return label for {case_id} is ready. Print it (or show its QR code at the "
                    "drop-off point), stick it on the parcel and hand it to {carrier}. Tracking number: {tracking_code}."
                ),
                ("Get your label", "status", {}),
            ],
        ),
        "in_transit": (
            "Your return {case_id} is on its way",
            [
                "Hello,",
                "your parcel for return {case_id} is on its way to us. We will tell you when it arrives.",
                ("See your return", "status", {}),
            ],
        ),
        "delivered": (
            "Your return {case_id} has arrived",
            [
                "Hello,",
                "your parcel for return {case_id} was delivered to our warehouse. We will check it soon.",
                ("See your return", "status", {}),
            ],
        ),
        "survey": (
            "How did we do with your return {case_id}?",
            [
                "Hello,",
                (
                    "your return {case_id} is complete. How satisfied are you? One click is enough "
                    "(1 = very unhappy, 5 = very happy):"
                ),
                *[(f"{n} of 5", "survey", {"rating": str(n)}) for n in RATINGS],
            ],
        ),
        "portal_link": (
            "Your link to the returns of order {order_id}",
            [
                "Hello,",
                (
                    "you asked for a link to return or exchange items of order {order_id}. "
                    "It works for one hour; if you did not ask for it, you can ignore this e-mail."
                ),
                ("Open your order", "", {}),
            ],
        ),
    },
    "zh-CN": {
        "received": (
            "我们已收到您的退货申请 {case_id}",
            [
                "您好，",
                "我们已收到您针对订单 {order_id} 的申请 {case_id}。审核完成后我们会通过电子邮件通知您。",
                ("查看退货进度", "status", {}),
            ],
        ),
        "approved": (
            "您的退货申请 {case_id} 已批准",
            [
                "您好，",
                "您针对订单 {order_id} 的退货申请 {case_id} 已批准。",
                "请将商品寄回：{return_address}",
                "请妥善包装并保留寄件凭证。目前无需我们提供的运单。",
                ("查看退货进度", "status", {}),
            ],
        ),
        "approved_label": (
            "您的退货申请 {case_id} 已批准",
            [
                "您好，",
                "您针对订单 {order_id} 的退货申请 {case_id} 已批准。",
                "我们正在为您购买退货运单，几分钟后会另发邮件给您，您也可以在退货页面下载。请妥善包装商品，并将运单贴在包裹上。",
                ("查看退货进度", "status", {}),
            ],
        ),
        "approved_keep": (
            "您的退货申请 {case_id} 已批准：商品无需寄回",
            [
                "您好，",
                "您针对订单 {order_id} 的退货申请 {case_id} 已批准。商品无需寄回，请自行保留。款项发出时我们会通知您。",
                ("查看退货进度", "status", {}),
            ],
        ),
        "rejected": (
            "您的退货申请 {case_id} 未获批准",
            [
                "您好，",
                "很抱歉，您针对订单 {order_id} 的退货申请 {case_id} 未获批准。",
                "原因：{reason}",
                "{note}",
                ("查看退货进度", "status", {}),
            ],
        ),
        "info_requested": (
            "关于您的退货申请 {case_id}，我们需要更多信息",
            ["您好，", "为继续处理您的退货申请 {case_id}，我们需要更多信息：", "{message}", ("在此回复", "info", {})],
        ),
        "refund_sent": (
            "您的退款 {amount} 已发出",
            [
                "您好，",
                "我们已将退货 {case_id} 的退款 {amount} 退回您的原支付方式，到账可能需要几天。",
                ("查看退货进度", "status", {}),
            ],
        ),
        "store_credit": (
            "您已获得 {amount} 的商店积分",
            ["您好，", "您的退货 {case_id} 已为您发放 {amount} 的商店积分，可用于下次购物。", ("查看退货进度", "status", {})],
        ),
        "label_ready": (
            "您的退货 {case_id} 的运单已生成",
            [
                "您好，",
                "您的退货 {case_id} 的 {carrier} 运单已生成。请打印运单（或在投递点出示二维码），贴在包裹上并交给 {carrier}。运单号：{tracking_code}。",
                ("获取运单", "status", {}),
            ],
        ),
        "in_transit": (
            "您的退货 {case_id} 正在寄回途中",
            ["您好，", "您的退货 {case_id} 的包裹正在寄往我们的途中。包裹送达后我们会通知您。", ("查看退货进度", "status", {})],
        ),
        "delivered": (
            "您的退货 {case_id} 已送达",
            ["您好，", "您的退货 {case_id} 的包裹已送达我们的仓库，我们会尽快查验。", ("查看退货进度", "status", {})],
        ),
        "survey": (
            "您对退货 {case_id} 的处理满意吗？",
            [
                "您好，",
                "您的退货 {case_id} 已处理完毕。请为我们的服务打分，点击一次即可（1 = 非常不满意，5 = 非常满意）：",
                *[(f"{n} 分", "survey", {"rating": str(n)}) for n in RATINGS],
            ],
        ),
        "portal_link": (
            "订单 {order_id} 的退货链接",
            [
                "您好，",
                "您申请了订单 {order_id} 的退换货链接，一小时内有效。如果不是您本人申请，请忽略此邮件。",
                ("打开您的订单", "", {}),
            ],
        ),
    },
}

NO_ADDRESS = {"en": "the address the merchant gave you", "zh-CN": "商家提供给您的地址"}


def render(language: str, kind: str, values: dict[str, str], link: Callable[[str, dict[str, str]], str]) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of one mail; empty paragraphs (an absent note) are left out."""
    subject_template, blocks = TEMPLATES[language][kind]
    text_parts, html_parts = [], []
    for block in blocks:
        if isinstance(block, str):
            paragraph = block.format(**values).strip()
            if paragraph:
                text_parts.append(paragraph)
                html_parts.append(f"<p>{html.escape(paragraph).replace(chr(10), '<br>')}</p>")
        else:
            label, purpose, params = block
            url = link(purpose, params)
            text_parts.append(f"{label}: {url}")
            html_parts.append(f'<p><a href="{html.escape(url)}">{html.escape(label)}</a></p>')
    body = '<!doctype html><html lang="{0}"><head><meta charset="utf-8"></head><body>{1}</body></html>'
    return subject_template.format(**values), "\n\n".join(text_parts) + "\n", body.format(language, "".join(html_parts))


# --------------------------------------------------------------------------- what the customer hears of


def mail_kind(message: OutboxMessage) -> str | None:
    """The kind of mail an outbox message means for the customer, or None. Store credit is told
    on the case reaching ``refunded`` (``Mailer`` checks a grant exists); a gateway refund by its
    own ``refund.succeeded``."""
    payload = message.payload
    if message.topic == "case.created":
        return "received"
    if message.topic == "case.survey_requested":
        return "survey"
    if message.topic == LINK_TOPIC:
        return "portal_link"
    if message.topic in ("case.label_ready", "case.in_transit", "case.delivered"):
        return message.topic.removeprefix("case.")
    if message.topic == "refund.succeeded":
        return "refund_sent" if payload.get("amount") else None
    if message.topic == "case.updated":
        return {
            "approved": "approved",
            "rejected": "rejected",
            "info_requested": "info_requested",
            "refunded": "store_credit",
        }.get(payload.get("to_state") or "")
    return None


def mail_id(merchant_id: str, event_id: int, recipient: str, kind: str) -> str:
    """The row's id and the Message-ID's left part: the same for every attempt and every worker."""
    digest = hashlib.sha256(f"{merchant_id}\0{event_id}\0{recipient.lower()}\0{kind}".encode()).hexdigest()
    return f"mail_{digest[:32]}"


class Mailer:
    def __init__(
        self,
        db: Database,
        transport: MailTransport,
        clock: Callable[[], datetime],
        portal: PortalService,
        *,
        public_url: str = LOCAL_URL,
        mail_from: str = "returns@localhost",
        lease: timedelta = timedelta(minutes=5),  # covers a case's few mails to a server that times out
        first_backoff: timedelta = timedelta(seconds=30),
        max_backoff: timedelta = timedelta(hours=1),
        permanent_tries: int = 3,
        max_attempts: int = 12,
    ) -> None:
        self.db = db
        self.transport = transport
        self.clock = clock
        self.portal = portal
        self.public_url = public_url
        self.mail_from = mail_from
        self.lease = lease
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.permanent_tries = permanent_tries
        self.max_attempts = max_attempts

    # ----------------------------------------------------------------- the admin's side

    async def settings(self, merchant_id: str) -> MailSettingsView:
        async with self.db.reading() as repos:
            current = await repos.mail_settings(merchant_id) or MailSettings()
        return MailSettingsView(**asdict(current))

    async def put_settings(self, merchant_id: str, body: MailSettingsIn) -> MailSettingsView:
        if body.reply_to is not None:
            try:
                mail_address(body.reply_to)
            except ValueError as exc:
                raise InvalidRequest(str(exc), [{"field": "reply_to", "message": "not one e-mail address"}]) from None
        settings = MailSettings(**asdict(body))
        async with self.db.transaction() as repos:
            await repos.put_mail_settings(merchant_id, settings, self.clock())
        return MailSettingsView(**asdict(settings))

    async def case_mails(self, merchant_id: str, case_id: str) -> CustomerMailList:
        """What the customer was sent about a case, oldest event first (404: no such case here)."""
        async with self.db.reading() as repos:
            await repos.get_case(merchant_id, case_id)
            mails = await repos.customer_mails(merchant_id, case_id)
        return CustomerMailList(
            items=[
                CustomerMailView(**{k: v for k, v in asdict(mail).items() if k in CustomerMailView.__struct_fields__})
                for mail in mails
            ]
        )

    # ----------------------------------------------------------------- the worker's side

    async def run_once(self) -> int:
        """Plan and send what is due; answers the work done."""
        return await self.plan_due() + await self.send_due()

    async def plan_due(self, limit: int = 50) -> int:
        """One mail row per outbox message the customer hears of; answers the messages looked at."""
        now = self.clock()
        await self.portal.secrets()  # known before the transaction: signing then needs no other
        async with self.db.transaction() as repos:
            messages = await repos.claim_unplanned_outbox(limit)
            for message in messages:
                kind = mail_kind(message)
                try:
                    mail = await self._compose(repos, message, kind) if kind else None
                except Exception:  # a bug or odd data in one message: logged, the others go on
                    log.exception("customer_mail_not_composed", outbox_id=message.id, kind=kind)
                    mail = None
                if mail is not None:
                    await repos.add_customer_mail(mail, now)
                await repos.mark_mail_planned(message.merchant_id, message.id, now)
        return len(messages)

    async def _compose(self, repos: Repositories, message: OutboxMessage, kind: str) -> CustomerMail | None:
        """The mail, or None when the customer gave no address or there is nothing to tell."""
        merchant_id = message.merchant_id
        settings = await repos.mail_settings(merchant_id) or MailSettings()
        if kind == "portal_link":  # the order lookup's link: no case yet
            payload = message.payload
            expires_at = int(datetime.fromisoformat(payload["expires_at"]).timestamp())
            link = MailLink(payload["order_id"], payload["customer_id"], payload["language"], expires_at, link_slot())
            lookup_url = portal_url(self.public_url, link.slot)
            contents = render(payload["language"], kind, {"order_id": payload["order_id"]}, lambda *_: lookup_url)
            return self._envelope(message, kind, payload["email"], "", payload["language"], contents, settings, link)
        case = await repos.get_case(merchant_id, message.payload["case_id"])
        order = await repos.get_order(merchant_id, case.order_id)
        if order is None or not order.customer.email:
            return None
        language = language_for(order, settings)
        if order.customer.id != case.customer_id:  # the order changed hands: its address is another's
            return self._given_up(message, kind, case.id, language, "the order belongs to another customer now")
        values = {"case_id": case.id, "order_id": case.order_id}
        if kind == "approved":
            values["return_address"] = settings.return_address or NO_ADDRESS[language]
        elif kind == "rejected":
            values |= {
                "reason": case.rejection.reason if case.rejection else "",
                "note": (case.rejection and case.rejection.note) or "",
            }
        elif kind == "info_requested":
            values["message"] = case.info_request.message if case.info_request else ""
        elif kind == "refund_sent":
            values["amount"] = _money(message.payload["amount"], message.payload["currency"])
        elif kind == "store_credit":
            grants = [g for g in await repos.store_credit_grants(merchant_id, case.customer_id) if g.case_id == case.id]
            if not grants:
                return None  # refunded through the gateway: ``refund.succeeded`` tells it
            values["amount"] = _money(sum(g.amount for g in grants), grants[0].currency)
        elif kind in ("label_ready", "in_transit"):
            label = await repos.get_case_label(merchant_id, case.id)
            if label is None or label.status != "bought":
                return None  # voided meanwhile, or no label of ours: the customer reported the parcel
            values |= {"carrier": label.carrier or "", "tracking_code": label.tracking_code or ""}
        template = kind
        if kind == "approved" and case.decision.keep_item:
            template = "approved_keep"
        elif kind == "approved" and await repos.get_case_label(merchant_id, case.id) is not None:
            template = "approved_label"  # planned with the approval: the label's own mail follows
        expires_at = int(self.portal.expiry(MAIL_LINK_MINUTES).timestamp())
        link = MailLink(case.order_id, case.customer_id, language, expires_at, link_slot())

        def url(purpose: str, params: dict[str, str]) -> str:
            return portal_url(self.public_url, link.slot, case=case.id, do=purpose, **params)

        contents = render(language, template, values, url)
        return self._envelope(message, kind, order.customer.email, case.id, language, contents, settings, link)

    def _envelope(
        self,
        message: OutboxMessage,
        kind: str,
        recipient: str,
        case_id: str,
        language: str,
        contents: tuple[str, str, str],
        settings: MailSettings,
        link: MailLink,
    ) -> CustomerMail:
        """The stored row with its RFC 5322 message (or given up when the address is no address)."""
        merchant_id = message.merchant_id
        subject, text, page = contents
        identifier = mail_id(merchant_id, message.id, recipient, kind)
        row = CustomerMail(
            merchant_id=merchant_id,
            id=identifier,
            event_id=message.id,
            recipient=recipient,
            kind=kind,
            case_id=case_id,
            language=language,
            message="",
            link=link,
        )
        try:
            to = mail_address(recipient)
        except ValueError as exc:  # the storefront's data: recorded as given up, for the agent to see
            log.warning("customer_mail_bad_address", case_id=case_id, kind=kind)
            return replace(row, status="gave_up", last_error=f"not one e-mail address: {exc}"[:500])
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = Address(settings.sender_name or "", addr_spec=self.mail_from)
        mail["To"] = to
        if settings.reply_to:  # checked when saved; one saved before that check is left out
            with contextlib.suppress(ValueError):
                mail["Reply-To"] = mail_address(settings.reply_to)
        mail["Date"] = format_datetime(message.created_at)
        mail["Message-ID"] = f"<{identifier}@{_domain(self.mail_from)}>"
        if case_id:
            mail["X-Returns-Case"] = case_id
        mail["X-Returns-Kind"] = kind
        # RFC 3834: a machine's mail, so out-of-office and other auto-responders leave it be
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"  # the same said to Exchange and Outlook
        mail.set_content(text)
        mail.add_alternative(page, subtype="html")
        mail["Content-Language"] = language  # after the parts: set_content drops Content-* headers
        return replace(row, recipient=to.addr_spec, message=mail.as_string())

    def _given_up(self, message: OutboxMessage, kind: str, case_id: str, language: str, why: str) -> CustomerMail:
        """A mail not to send, recorded with why for the agents (no recipient, no message)."""
        log.warning("customer_mail_not_sent", case_id=case_id, kind=kind, why=why)
        return CustomerMail(
            merchant_id=message.merchant_id,
            id=mail_id(message.merchant_id, message.id, "", kind),
            event_id=message.id,
            recipient="",
            kind=kind,
            case_id=case_id,
            language=language,
            message="",
            status="gave_up",
            last_error=why,
        )

    async def send_due(self, limit: int = 20) -> int:
        """Due mails sent side by side, one case's in the order things happened: a mail server
        that does not answer holds the worker (and its webhooks) up for a few timeouts per round,
        not one per mail."""
        async with self.db.transaction() as repos:
            mails = await repos.claim_due_mail(self.clock(), self.lease, limit)
        by_case: dict[str, list[CustomerMail]] = {}
        for mail in mails:  # oldest event first; a lookup's link (no case) on its own
            by_case.setdefault(mail.case_id or mail.id, []).append(mail)
        await asyncio.gather(*(self._send_in_turn(case_mails) for case_mails in by_case.values()))
        return len(mails)

    async def _send_in_turn(self, mails: list[CustomerMail]) -> None:
        for mail in mails:
            await self._send(mail)

    async def _send(self, mail: CustomerMail) -> None:
        try:
            message = await self._signed(mail)
            await self.transport.send(mail.id, self.mail_from, [mail.recipient], message)
        except MailSendError as exc:
            await self._failed(mail, str(exc)[:500], exc.permanent)
            return
        except Exception as exc:  # no answer we know: recorded and retried, never left leased
            log.exception("customer_mail_send_failed", mail_id=mail.id)
            await self._failed(mail, f"{type(exc).__name__}: {exc}"[:500], permanent=True)
            return
        async with self.db.transaction() as repos:
            await repos.finish_mail(mail.merchant_id, mail.id, "sent", None, self.clock())

    async def _signed(self, mail: CustomerMail) -> bytes:
        """The stored message with the token of its own link put in its slot, each text part
        re-encoded: the same stored mail gives the same bytes every time. Only the link the mailer
        composed is signed; nothing else in the text becomes a credential."""
        parsed = email.message_from_string(mail.message, policy=email.policy.default)
        if mail.link is not None:
            token = await self.portal.sign_link(mail.merchant_id, mail.link)
            for part in parsed.walk():
                if part.get_content_maintype() == "text":
                    content = part.get_content()
                    if mail.link.slot in content:
                        part.set_content(content.replace(mail.link.slot, token), subtype=part.get_content_subtype())
        return parsed.as_bytes()

    async def _failed(self, mail: CustomerMail, error: str, permanent: bool) -> None:
        now = self.clock()
        permanent_failures = mail.permanent_failures + int(permanent)
        async with self.db.transaction() as repos:
            if permanent_failures >= self.permanent_tries or mail.attempts >= self.max_attempts:
                MAIL_FAILURES.labels("gave_up").inc()
                log.warning("customer_mail_gave_up", mail_id=mail.id, kind=mail.kind, case_id=mail.case_id, error=error)
                await repos.finish_mail(mail.merchant_id, mail.id, "gave_up", error, now)
            else:
                MAIL_FAILURES.labels("retry").inc()
                log.info("customer_mail_retry", mail_id=mail.id, attempt=mail.attempts, error=error)
                delay = min(self.max_backoff, self.first_backoff * 2 ** (mail.attempts - 1))
                await repos.postpone_mail(mail.merchant_id, mail.id, now + delay, error, permanent=permanent)


def mail_address(text: str) -> Address:
    """One e-mail address as the mail library writes it in a header; ValueError otherwise (the
    library raises several kinds for text it cannot read, some only when the header is set)."""
    try:
        address = Address(addr_spec=text)
        EmailMessage()["To"] = address
    except Exception as exc:
        raise ValueError(f"{text!r} is not one e-mail address") from exc
    if not address.username or not address.domain or address.domain.endswith("."):
        raise ValueError(f"{text!r} is not one e-mail address")
    return address


def _money(amount: int, currency: str) -> str:
    return f"{to_major(amount, currency)} {currency}"


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"
