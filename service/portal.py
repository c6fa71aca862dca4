"""The customer portal's credential: signed, expiring links bound to one order of one customer.

A token is ``pt1.<key id>.<claims>.<signature>``: the claims (merchant, order, customer,
language, expiry) in base64url JSON, signed with HMAC-SHA256 under the deployment's portal
secret. The key id names which secret signed it, so secrets rotate: ``RETURNS_PORTAL_SECRET``
takes several, comma-separated; the first signs, every one verifies. Without it, a secret is
generated once and kept in the database, so every process agrees. The token itself is the
customer's Bearer credential (no session table): it is revoked by expiry or by rotating the
secret. Links put it in the URL's fragment (``/portal#t=…``), which browsers never send to a
server, so it stays out of access logs and ``Referer`` headers.

A link may say where to land after the token: ``&case=<case id>&do=status|info|survey`` and, for
the survey e-mail's one-click ratings, ``&rating=1..5``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import urlencode

import msgspec
import structlog
from msgspec import Meta

from domain.orders import Order
from service.dto import Id
from service.ports import Database, MailLink, MailSettings, NotFound, Principal

PREFIX = "pt1"
CUSTOMER = "customer"
LINK_TOPIC = "customer.portal_link"  # a looked-up order's link, for the e-mail to carry
LOOKUP_LINK_MINUTES = 60  # a link asked for by order number and e-mail: the customer is there now
# A link in a case's e-mail: as long as a storefront's longest, so the survey e-mail's ratings
# still work weeks later; the token reaches only that order, as the e-mail's reader already does.
MAIL_LINK_MINUTES = 43_200
# The longest a token may live, checked when it is presented (not only when it is made): a token
# signed with a far expiry (a bug, an old secret's leak) is refused all the same. A minute of
# leeway covers a clock that signs a little ahead of the one that checks.
MAX_LIFETIME_SECONDS = MAIL_LINK_MINUTES * 60 + 60
SWEEP_EVERY_SECONDS = 60  # how often a process drops the lookup limits' full buckets
log = structlog.get_logger()

Language = Literal["en", "zh-CN"]


def supported_language(tag: str | None) -> str | None:
    """``zh``, ``zh-CN``, ``zh-Hans``… → ``zh-CN``; ``en-GB`` → ``en``; others → None."""
    primary = (tag or "").split("-")[0].lower()
    return {"en": "en", "zh": "zh-CN"}.get(primary)


def language_for(order: Order, settings: MailSettings) -> str:
    """The customer's language when the portal and the e-mails speak it, else the merchant's
    default, else en."""
    for wanted in (order.customer.language, settings.default_language):
        chosen = supported_language(wanted)
        if chosen:
            return chosen
    return "en"


def portal_url(base: str, token: str, **landing: str) -> str:
    """The portal with the customer's token and, optionally, where to land (``case``, ``do``, ``rating``)."""
    return f"{base.rstrip('/')}/portal#{urlencode({'t': token, **landing})}"


class PortalLinkIn(msgspec.Struct, forbid_unknown_fields=True):
    order_id: Id
    customer_id: Id
    language: Language = "en"
    # a link e-mailed to the customer stays usable a week by default, at most 30 days
    expires_in_minutes: Annotated[int, Meta(ge=5, le=43_200)] = 10_080


class PortalLinkView(msgspec.Struct):
    url: str
    token: str
    expires_at: datetime


class PortalSessionIn(msgspec.Struct, forbid_unknown_fields=True):
    merchant: Id
    order_id: Id
    email: Annotated[str, Meta(min_length=3, max_length=320)]


class PortalSessionView(msgspec.Struct):
    status: str
    detail: str


class Claims(msgspec.Struct, frozen=True):
    m: str  # merchant
    o: str  # order
    c: str  # customer
    lang: str
    exp: int  # seconds since the epoch


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: only the text ``_b64`` writes for those bytes decodes (no padding, no ``+/``, no
    junk), so a token altered in any character is refused."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:  # stray bits in the last character
        raise ValueError("not the canonical encoding")
    return raw


def key_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def sign(secret: str, claims: Claims) -> str:
    signed = f"{PREFIX}.{key_id(secret)}.{_b64(msgspec.json.encode(claims))}"
    return f"{signed}.{_b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())}"


def verify(secrets_: tuple[str, ...], token: str, now: float) -> Claims | None:
    """The token's claims when one of ``secrets_`` signed it, it has not expired and its expiry is
    within ``MAX_LIFETIME_SECONDS`` of ``now``; else None."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    secret = next((s for s in secrets_ if key_id(s) == parts[1]), None)
    if secret is None:
        return None
    expected = hmac.new(secret.encode(), ".".join(parts[:3]).encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(parts[3])):
            return None
        claims = msgspec.json.decode(_unb64(parts[2]), type=Claims)
    except (ValueError, msgspec.DecodeError):
        return None
    return claims if now < claims.exp <= now + MAX_LIFETIME_SECONDS else None


def link_slot() -> str:
    """A fresh random marker for a mail's link, where its token goes when the mail is sent: made
    after every text the mail carries was written, so none of that text can contain it."""
    return f"portal-link-{secrets.token_urlsafe(24)}"


def is_portal_token(credential: str) -> bool:
    return credential.startswith(PREFIX + ".")


class RateLimiter:
    """A token bucket per key: ``per_hour`` calls in a burst, refilled evenly over the hour
    (``0`` refuses every call, asking nothing). The buckets are rows in PostgreSQL
    (``Repositories.take_lookup_token``), one statement a take, so every process on every host
    counts against one limit. A bucket is found by an HMAC of its key under a key of the
    deployment's (``PortalService.limits_key``): the table never holds an address or an e-mail."""

    REFILL_SECONDS = 3600.0

    def __init__(self, db: Database, kind: str, per_hour: int, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.kind = kind
        self.capacity = float(per_hour)
        self.rate = per_hour / self.REFILL_SECONDS
        self.clock = clock

    async def take(self, key: str, hmac_key: bytes) -> int | None:
        """None when the call may go ahead, else the seconds until it may (for ``Retry-After``)."""
        if self.rate <= 0:
            return int(self.REFILL_SECONDS)
        key_hash = hmac.new(hmac_key, key.encode(), hashlib.sha256).digest()
        async with self.db.statement() as repos:
            wait = await repos.take_lookup_token(self.kind, key_hash, self.capacity, self.rate, self.clock())
        return None if wait <= 0 else max(1, int(wait + 0.999))


class PortalService:
    def __init__(
        self, db: Database, clock: Callable[[], datetime], configured: tuple[str, ...], per_ip: int, per_email: int
    ) -> None:
        self.db = db
        self.clock = clock
        self._secrets = configured
        self.by_ip = RateLimiter(db, "ip", per_ip, clock)
        self.by_email = RateLimiter(db, "email", per_email, clock)
        self._swept: datetime | None = None

    async def secrets(self) -> tuple[str, ...]:
        """The configured secrets, else the database's (generated by the first process to ask)."""
        if not self._secrets:
            async with self.db.transaction() as repos:
                self._secrets = (await repos.deployment_secret("portal", secrets.token_urlsafe(32)),)
        return self._secrets

    async def limits_key(self) -> bytes:
        """What the lookup limits' buckets are keyed by, derived from the signing secret: a copy of
        the table tells nobody whose lookups it counted. A new signing secret starts new buckets."""
        return hmac.new((await self.secrets())[0].encode(), b"portal lookup limits", hashlib.sha256).digest()

    async def lookup_wait(self, client: str, body: PortalSessionIn) -> int | None:
        """None when a lookup from ``client`` (its address) may go ahead, else the seconds for
        ``Retry-After``. The address's bucket is taken first, then the one of the merchant, order
        and e-mail: an address out of lookups takes nothing from the e-mail's, and lookups naming
        a customer's e-mail with other orders (made up, to lock the customer out) leave that
        customer's own order its budget."""
        key = await self.limits_key()
        email = f"{body.merchant}\n{body.order_id}\n{body.email.lower()}"
        return await self.by_ip.take(client, key) or await self.by_email.take(email, key)

    async def sweep_limits(self) -> None:
        """Drop the lookup buckets untouched for an hour (full again: the same as none), at most
        once a minute per process, so the table holds the last hour's callers only."""
        now = self.clock()
        if self._swept is not None and now - self._swept < timedelta(seconds=SWEEP_EVERY_SECONDS):
            return
        self._swept = now
        async with self.db.statement() as repos:
            swept = await repos.sweep_lookup_buckets(now - timedelta(seconds=RateLimiter.REFILL_SECONDS))
        if swept:
            log.info("lookup_limits_swept", buckets=swept)

    async def authenticate(self, token: str) -> Principal | None:
        claims = verify(await self.secrets(), token, self.clock().timestamp())
        if claims is None:
            return None
        return Principal(
            key_id=f"customer:{claims.c}", merchant_id=claims.m, role=CUSTOMER, order_id=claims.o, customer_id=claims.c
        )

    def expiry(self, minutes: int) -> datetime:
        return self.clock().replace(microsecond=0) + timedelta(minutes=minutes)

    async def _link(
        self, merchant_id: str, order_id: str, customer_id: str, language: str, minutes: int, base: str
    ) -> PortalLinkView:
        expires_at = self.expiry(minutes)
        claims = Claims(m=merchant_id, o=order_id, c=customer_id, lang=language, exp=int(expires_at.timestamp()))
        token = sign((await self.secrets())[0], claims)
        return PortalLinkView(url=portal_url(base, token), token=token, expires_at=expires_at)

    async def sign_link(self, merchant_id: str, link: MailLink) -> str:
        """The token of a mail's link: the claims the mailer decided, for the mail's own merchant.
        Signing is deterministic, so a retried mail sends the same bytes (while the secret stays)."""
        claims = Claims(m=merchant_id, o=link.order_id, c=link.customer_id, lang=link.language, exp=link.expires_at)
        return sign((await self.secrets())[0], claims)

    async def make_link(self, principal: Principal, body: PortalLinkIn, base: str) -> PortalLinkView:
        """A link for the order's own customer; another customer's order is not found, as a
        missing one is."""
        async with self.db.reading() as repos:
            order = await repos.get_order(principal.merchant_id, body.order_id)
        if order is None or order.customer.id != body.customer_id:
            raise NotFound(f"no order {body.order_id} of customer {body.customer_id}")
        return await self._link(
            principal.merchant_id, body.order_id, body.customer_id, body.language, body.expires_in_minutes, base
        )

    async def lookup(self, body: PortalSessionIn) -> None:
        """When the order exists and its customer's e-mail is ``body.email`` (in any case), record
        that its customer is to be mailed a link (outbox topic ``customer.portal_link``; the
        mailer makes the link on the configured public URL, never on the caller's ``Host``). Runs
        after the answer was sent, so the answer says nothing either way, not even by its timing;
        the limits are swept here too, where no caller waits for it."""
        await self.sweep_limits()
        async with self.db.transaction() as repos:
            order = await repos.get_order(body.merchant, body.order_id)
            email = (order.customer.email or "") if order is not None else ""
            if order is None or not hmac.compare_digest(email.lower().encode(), body.email.lower().encode()):
                return
            payload = {
                "order_id": order.order_id,
                "customer_id": order.customer.id,
                "email": email,
                "language": language_for(order, await repos.mail_settings(body.merchant) or MailSettings()),
                "expires_at": self.expiry(LOOKUP_LINK_MINUTES).isoformat(),
            }
            await repos.add_outbox(body.merchant, LINK_TOPIC, payload, self.clock())
