"""Ports: the only way the application reaches the outside world.

Adapters (PostgreSQL, Stripe, blob storage, image decoding) implement these Protocols; the
composition root wires them in. Nothing in ``service`` imports ``adapters``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from domain.cases import Case, CaseEvent
from domain.orders import Address, Order
from domain.refunds import Refund

# --------------------------------------------------------------------------- persistence


class DatabaseUnavailable(Exception):
    """The database is down, restarting, or has no free connection: try again (503)."""


class NotFound(Exception):
    """No such object for this merchant (another merchant's object is not found either)."""


class VersionConflict(Exception):
    """Someone else changed the object since it was read (optimistic concurrency)."""


class Principal(msgspec.Struct, frozen=True):
    key_id: str
    merchant_id: str
    role: str
    # a customer's portal credential (role ``customer``) is bound to one order of one customer
    order_id: str | None = None
    customer_id: str | None = None

    def may_see(self, order_id: str, customer_id: str) -> bool:
        """The one scope check: a key sees all of its merchant's orders and cases, a customer's
        credential only its own order's (anything else is answered as if it did not exist)."""
        return self.order_id is None or (self.order_id == order_id and self.customer_id == customer_id)


class CaseFilter(msgspec.Struct, frozen=True):
    order_id: str | None = None
    customer_id: str | None = None
    state: str | None = None
    type: str | None = None
    assignee: str | None = None
    reason: str | None = None
    flagged: bool | None = None
    q: str | None = None  # the agent's search box: a case id, order id, customer id or e-mail
    attention: bool | None = None  # a refund failed or waits for the customer, not yet retried
    delivered: bool | None = None  # the carrier delivered the parcel and nobody received it yet


class Page(msgspec.Struct, frozen=True):
    items: list[Any]
    next_cursor: str | None


class OrderCommitments(msgspec.Struct, frozen=True):
    """What other cases of an order already hold: quantities per line, and the money promised
    back of what was captured (refund plus store credit without its bonus, which is the
    merchant's gift, not the customer's money; cancelled and rejected cases release theirs)."""

    claimed_quantities: dict[str, int]
    promised_amount: int
    shipping_refunded: bool


class CustomerActivity(msgspec.Struct, frozen=True):
    items_purchased: int
    items_returned: int
    flagged: bool = False  # one of the customer's cases was flagged (e.g. a reused photo)


class CommittedRefunds(msgspec.Struct, frozen=True):
    """What refunds have paid or may still pay (all but failed and canceled)."""

    on_order: int
    on_case: int


class ClaimedRefund(msgspec.Struct, frozen=True):
    refund: Refund
    tries: int  # how many times a worker has claimed it, this time included


class OutboxMessage(msgspec.Struct, frozen=True):
    merchant_id: str
    id: int
    topic: str  # case.created, case.updated, refund.succeeded, refund.failed, case.survey_requested
    payload: dict[str, Any]
    attempts: int  # delivery attempts, this one included
    created_at: datetime


class WebhookEndpoint(msgspec.Struct, frozen=True):
    id: str
    url: str
    secret: str
    enabled: bool
    created_at: datetime
    previous_secret: str | None = None  # after a rotation, it still signs until it expires
    previous_secret_expires_at: datetime | None = None


class WebhookDelivery(msgspec.Struct, frozen=True):
    """One attempt to deliver one outbox message."""

    event_id: int
    endpoint_id: str
    topic: str
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime
    id: int = 0  # given by the log


class MailSettings(msgspec.Struct, frozen=True):
    """How a merchant's customer e-mail reads: the sender's name, where replies go, the language
    for customers who did not give one, and where returned items go (the approval's instructions)."""

    sender_name: str | None = None
    reply_to: str | None = None
    default_language: str = "en"
    return_address: str | None = None


class MailLink(msgspec.Struct, frozen=True):
    """The portal link of one mail, as the mailer decided it from the mail's own case or lookup:
    the token's claims (the merchant is the mail's) and the random ``slot`` the message was composed
    with where the token goes. The mailer signs this and nothing else, only where ``slot`` stands:
    no text written before the mail was composed (a note, an address, an id) can hold the slot."""

    order_id: str
    customer_id: str
    language: str
    expires_at: int  # seconds since the epoch
    slot: str


class CustomerMail(msgspec.Struct, frozen=True):
    """One e-mail to a customer, planned once per (outbox event, recipient, kind)."""

    merchant_id: str
    id: str
    event_id: int
    recipient: str
    kind: str
    case_id: str
    language: str
    message: str  # the RFC 5322 text, composed when planned: a retry sends the same bytes
    status: str = "pending"  # pending | sent | gave_up
    attempts: int = 0
    permanent_failures: int = 0
    last_error: str | None = None
    created_at: datetime | None = None  # set by the database
    sent_at: datetime | None = None
    link: MailLink | None = None  # signed into the message as it is handed over


class StoreCreditGrant(msgspec.Struct, frozen=True):
    id: str
    customer_id: str
    case_id: str
    amount: int  # bonus included
    bonus: int
    currency: str
    created_at: datetime


class Photo(msgspec.Struct, frozen=True):
    id: str
    case_id: str
    customer_id: str
    original_sha256: str
    detected_format: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    phash: str  # 16 hex digits
    image_key: str
    thumbnail_key: str
    created_at: datetime
    matches_case_id: str | None = None  # another customer's case with the same picture
    matches_photo_id: str | None = None


class PhotoMatch(msgspec.Struct, frozen=True):
    case_id: str
    photo_id: str
    distance: int


class LedgerFilter(msgspec.Struct, frozen=True):
    status: str | None = None
    currency: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


class OperationalCounts(msgspec.Struct, frozen=True):
    """Across all merchants, for the operator's metrics."""

    cases: dict[tuple[str, str], int]  # (type, state) → count
    refunds: dict[str, int]  # status → count
    outbox_depth: int
    worker_lag_seconds: float  # age of the oldest refund due for sending; 0 when none waits


class Pace(msgspec.Struct, frozen=True):
    """How one gateway account is called: ``rate`` calls a second in bursts of up to ``burst``;
    a 429 halves the rate, never below ``min_rate``, and it climbs back over ``recovery`` seconds."""

    rate: float
    burst: float
    recovery: float
    min_rate: float


class GatewaySlot(msgspec.Struct, frozen=True):
    wait: float  # seconds from the caller's ``now`` until the call may go (0: at once)
    generation: int  # how many times the account's rate was halved when the slot was given


class Repositories(Protocol):
    """Everything a use case reads and writes, inside one transaction."""

    async def ensure_merchant(self, merchant_id: str) -> None: ...

    async def deployment_secret(self, name: str, candidate: str) -> str:
        """The secret stored under ``name``; ``candidate`` is stored first when there is none
        (the first process to ask wins, every other one reads the same)."""
        ...

    async def create_api_key(self, merchant_id: str, key_id: str, role: str, key_hash: bytes) -> None: ...

    async def find_api_key(self, key_hash: bytes) -> Principal | None: ...

    async def revoke_api_key(self, merchant_id: str, key_id: str, at: datetime) -> bool: ...

    async def get_order(self, merchant_id: str, order_id: str, *, for_update: bool = False) -> Order | None:
        """``for_update`` holds the order until commit, so cases opened at the same moment on one
        order are decided one after the other and never promise the same money twice."""

    async def upsert_order(self, order: Order, at: datetime) -> bool: ...

    async def order_commitments(
        self, merchant_id: str, order_id: str, exclude_case_id: str | None = None
    ) -> OrderCommitments: ...

    async def customer_activity(self, merchant_id: str, customer_id: str, since: datetime) -> CustomerActivity: ...

    async def get_case(self, merchant_id: str, case_id: str, *, for_update: bool = False) -> Case: ...

    async def add_case(self, case: Case) -> None: ...

    async def save_case(self, case: Case, expected_version: int) -> None: ...

    async def claim_idle_cases(self, states: list[str], entered_before: datetime, limit: int) -> list[Case]:
        """Cases of any merchant that entered one of ``states`` before ``entered_before``,
        locked for this transaction; rows another transaction holds are skipped."""
        ...

    async def list_cases(self, merchant_id: str, filters: CaseFilter, *, sort: str, limit: int, cursor: str | None) -> Page: ...

    async def case_events(self, merchant_id: str, case_id: str) -> list[CaseEvent]: ...

    async def case_counts(self, merchant_id: str) -> dict[str, int]: ...

    async def claim_idempotency_key(
        self, merchant_id: str, key: str, request_hash: bytes, case_id: str, at: datetime
    ) -> tuple[bytes, str] | None: ...

    async def current_policy(self, merchant_id: str) -> tuple[int, dict[str, Any]] | None: ...

    async def get_policy(self, merchant_id: str, version: int) -> dict[str, Any] | None: ...

    async def add_policy(self, merchant_id: str, document: dict[str, Any], at: datetime, by: str) -> int: ...

    # refunds
    async def add_refund(self, refund: Refund) -> None: ...

    async def save_refund(self, refund: Refund, expected_version: int) -> None: ...

    async def get_refund(self, merchant_id: str, refund_id: str, *, for_update: bool = False) -> Refund | None: ...

    async def find_reported_refund(
        self, gateway: str, account: str | None, gateway_refund_id: str, our_refund_id: str | None
    ) -> Refund | None: ...

    async def case_refunds(self, merchant_id: str, case_ids: list[str]) -> list[Refund]: ...

    async def committed_refunds(self, merchant_id: str, order_id: str, case_id: str | None = None) -> CommittedRefunds: ...

    async def gateway_account(self, merchant_id: str) -> str | None: ...

    async def set_gateway_account(self, merchant_id: str, account: str | None) -> bool:
        """False, changing nothing, when the account is bound to another merchant."""
        ...

    async def claim_payment(self, gateway: str, account: str, reference: str, merchant_id: str, at: datetime) -> str:
        """The merchant owning the payment ``reference`` on the gateway and account ('' for the
        platform's): ``merchant_id`` when nobody did, claimed now. Claims of one payment at the
        same moment: one wins, the others see it."""
        ...

    async def owned_payments(self, merchant_id: str, gateway: str, account: str, references: list[str]) -> set[str]:
        """Those of ``references`` the merchant owns on the gateway and account."""
        ...

    async def claim_due_refunds(
        self, gateway: str, worker: str, now: datetime, lease: timedelta, limit: int, skip_accounts: list[str]
    ) -> list[ClaimedRefund]: ...

    async def renew_claims(self, worker: str, refund_ids: list[str], until: datetime) -> int: ...

    async def postpone_refund(
        self, worker: str, merchant_id: str, refund_id: str, until: datetime, error: str, *, count_try: bool = True
    ) -> None: ...

    async def unsettled_refunds(self, gateway: str, older_than: datetime, limit: int) -> list[Refund]: ...

    async def mark_refund_checked(self, merchant_id: str, refund_id: str, at: datetime) -> None: ...

    async def record_gateway_event(self, gateway: str, event_id: str, event_type: str, at: datetime) -> bool: ...

    # limits every process keeps together: one row per bucket, taken in one statement
    async def take_lookup_token(self, kind: str, key_hash: bytes, capacity: float, per_second: float, now: datetime) -> float:
        """Take a token from the bucket ``(kind, key_hash)`` (full, ``capacity`` ≥ 1, the first
        time; refilled at ``per_second``): 0 when taken, else the seconds until one is there."""
        ...

    async def sweep_lookup_buckets(self, untouched_since: datetime) -> int:
        """Drop the buckets untouched since then (full again: the same as none); answers how many."""
        ...

    async def take_gateway_slot(self, gateway: str, account: str, pace: Pace, now: datetime) -> GatewaySlot:
        """The account's next call slot, promised to the caller: later callers get later ones."""
        ...

    async def slow_gateway_account(
        self, gateway: str, account: str, pace: Pace, generation: int, now: datetime, pause_until: datetime
    ) -> float:
        """The gateway answered 429 to a call given its slot under ``generation``: no slot before
        ``pause_until``, and the rate halved unless it was halved since that slot. Answers the rate."""
        ...

    # outbox, webhooks, store credit
    async def add_outbox(self, merchant_id: str, topic: str, payload: dict[str, Any], at: datetime) -> None: ...

    async def claim_due_outbox(self, now: datetime, lease: timedelta, limit: int) -> list[OutboxMessage]: ...

    async def finish_outbox(self, merchant_id: str, outbox_id: int, outcome: str, at: datetime) -> None: ...

    async def postpone_outbox(self, merchant_id: str, outbox_id: int, until: datetime) -> None: ...

    async def webhook_endpoint(self, merchant_id: str) -> WebhookEndpoint | None: ...

    async def put_webhook_endpoint(self, merchant_id: str, endpoint: WebhookEndpoint, at: datetime) -> WebhookEndpoint:
        """Create the endpoint, or change its url and enabled: an existing endpoint keeps its secrets."""
        ...

    async def rotate_webhook_secret(
        self, merchant_id: str, secret: str, previous_expires_at: datetime, at: datetime
    ) -> WebhookEndpoint | None:
        """``secret`` becomes the endpoint's secret and the current one its previous, until
        ``previous_expires_at``; None when the merchant has no endpoint."""
        ...

    async def log_delivery(self, merchant_id: str, delivery: WebhookDelivery) -> None: ...

    async def list_deliveries(self, merchant_id: str, limit: int, cursor: str | None) -> Page: ...

    # customer e-mail
    async def claim_unplanned_outbox(self, limit: int) -> list[OutboxMessage]:
        """Outbox messages no mail was planned for yet, locked (skipping locked ones) until the
        transaction ends; ``mark_mail_planned`` in the same transaction."""
        ...

    async def mark_mail_planned(self, merchant_id: str, outbox_id: int, at: datetime) -> None: ...

    async def add_customer_mail(self, mail: CustomerMail, at: datetime) -> bool:
        """False when the mail for that (event, recipient, kind) is already there."""
        ...

    async def claim_due_mail(self, now: datetime, lease: timedelta, limit: int) -> list[CustomerMail]: ...

    async def finish_mail(self, merchant_id: str, mail_id: str, status: str, error: str | None, at: datetime) -> None: ...

    async def postpone_mail(self, merchant_id: str, mail_id: str, until: datetime, error: str, *, permanent: bool) -> None: ...

    async def customer_mails(self, merchant_id: str, case_id: str) -> list[CustomerMail]: ...

    async def mail_settings(self, merchant_id: str) -> MailSettings | None: ...

    async def put_mail_settings(self, merchant_id: str, settings: MailSettings, at: datetime) -> None: ...

    async def add_store_credit_grant(self, merchant_id: str, grant: StoreCreditGrant) -> None: ...

    async def store_credit_grants(self, merchant_id: str, customer_id: str) -> list[StoreCreditGrant]: ...

    async def operational_counts(self) -> OperationalCounts: ...

    # finance
    async def ledger(self, merchant_id: str, filters: LedgerFilter, limit: int, cursor: str | None) -> Page: ...

    def stream_ledger(self, merchant_id: str, filters: LedgerFilter, batch: int = 1000) -> AsyncIterator[list[Refund]]: ...

    async def refunds_between(self, merchant_id: str, since: datetime, until: datetime) -> list[Refund]: ...

    async def refunds_by_gateway_ids(
        self, merchant_id: str, gateway: str, account: str | None, ids: list[str]
    ) -> list[Refund]: ...

    async def add_reconciliation(
        self,
        merchant_id: str,
        reconciliation_id: str,
        since: datetime,
        until: datetime,
        at: datetime,
        report: dict[str, Any],
    ) -> None: ...

    async def get_reconciliation(self, merchant_id: str, reconciliation_id: str) -> dict[str, Any] | None: ...

    async def summary(self, merchant_id: str, since: datetime, until: datetime, group_by: str) -> list[dict[str, Any]]: ...

    async def reason_trends(self, merchant_id: str, since: datetime, until: datetime, by_day: bool = False) -> dict[str, Any]: ...

    # photos
    async def add_photo(self, merchant_id: str, photo: Photo) -> Photo | None: ...

    async def find_photo_by_sha(self, merchant_id: str, case_id: str, sha256: str) -> Photo | None: ...

    async def get_photo(self, merchant_id: str, case_id: str, photo_id: str) -> Photo | None: ...

    async def case_photos(self, merchant_id: str, case_ids: list[str]) -> list[Photo]: ...

    async def count_case_photos(self, merchant_id: str, case_id: str) -> int: ...

    async def similar_photo_elsewhere(
        self, merchant_id: str, customer_id: str, phash: str, max_distance: int
    ) -> PhotoMatch | None: ...

    # return labels and tracking
    async def shipping_settings(self, merchant_id: str) -> ShippingSettings | None: ...

    async def put_shipping_settings(self, merchant_id: str, settings: ShippingSettings, at: datetime) -> None: ...

    async def add_label(self, label: ReturnLabel) -> bool:
        """False when the case has a label already (one per case)."""
        ...

    async def case_labels(self, merchant_id: str, case_ids: list[str]) -> list[ReturnLabel]: ...

    async def get_case_label(self, merchant_id: str, case_id: str, *, for_update: bool = False) -> ReturnLabel | None: ...

    async def claim_due_labels(self, now: datetime, lease: timedelta, limit: int) -> list[ReturnLabel]:
        """Labels to buy (``pending``) or void (``void_requested``) whose time has come and that no
        live lease holds, leased to the caller; rows other workers are claiming are skipped."""
        ...

    async def set_label_shipment(self, merchant_id: str, label_id: str, shipment_id: str) -> str:
        """The label's shipment: ``shipment_id``, unless another worker stored one first (then
        that one, the only one ever bought)."""
        ...

    async def update_label(self, label: ReturnLabel) -> None:
        """Store the label's status, purchase and scan columns as given; the lease ends."""
        ...

    async def postpone_label(self, merchant_id: str, label_id: str, until: datetime, error: str) -> None: ...

    async def label_by_tracking(self, carrier_name: str, tracking_code: str) -> ReturnLabel | None:
        """Across merchants (the carrier's scan names only its tracking code), locked until the
        transaction ends, as every change of a label is."""
        ...

    async def record_carrier_event(self, carrier_name: str, event: TrackingEvent, at: datetime) -> bool:
        """False when that scan was taken in before."""
        ...

    async def claim_quiet_labels(self, carrier_name: str, quiet_since: datetime, now: datetime, limit: int) -> list[ReturnLabel]:
        """Bought labels not delivered yet whose carrier was last asked before ``quiet_since``,
        marked asked ``now`` (rows another worker holds are skipped)."""
        ...


class WebhookSendError(Exception):
    """The receiver could not be reached (connection refused, timeout)."""


class WebhookSender(Protocol):
    async def send(self, url: str, addresses: list[str], body: bytes, headers: dict[str, str]) -> int:
        """POST ``body`` to ``url``, connecting only to ``addresses`` (the host's addresses, as
        checked: never a lookup of its own), keeping the URL's name for ``Host`` and TLS; answer
        the status code; raise ``WebhookSendError`` when unreachable."""
        ...


class MailSendError(Exception):
    """The mail server refused the mail or could not be reached. ``permanent``: a 5xx answer."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailTransport(Protocol):
    async def send(self, mail_id: str, sender: str, recipients: list[str], message: bytes) -> None:
        """Hand the message over (SMTP, or a file on a laptop); raises ``MailSendError``."""
        ...


class ResolveError(Exception):
    """The name does not resolve (no such name, no answer)."""


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The IP addresses ``host`` resolves to, in the order to try them; ``ResolveError`` when none."""
        ...


class Database(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Repositories]: ...

    def reading(self) -> AbstractAsyncContextManager[Repositories]:
        """For reads only, all in one snapshot (read-only): an answer never mixes two commits."""
        ...

    def statement(self) -> AbstractAsyncContextManager[Repositories]:
        """One statement alone, no transaction around it (two round trips saved): a read that
        is one statement, or a write of one statement that is atomic on its own (the limits'
        buckets). A second statement would see, or leave, another moment."""
        ...

    async def ping(self) -> bool: ...

    async def pending_migrations(self) -> list[str]: ...


# --------------------------------------------------------------------------- payment gateway


class GatewayRefund(msgspec.Struct, frozen=True):
    """A refund as the payment gateway knows it."""

    gateway_refund_id: str
    status: str  # pending | succeeded | failed | requires_action | canceled
    amount: int  # minor units
    currency: str  # ISO 4217, upper case
    payment_reference: str  # e.g. the Stripe PaymentIntent id
    created_at: datetime
    refund_id: str | None = None  # our rf_… id, from the gateway's metadata
    failure_reason: str | None = None


class GatewayError(Exception):
    """The gateway refused or could not be reached.

    ``retryable`` is True for connection errors, 409 (idempotency in flight), 429 and 5xx:
    the worker tries again later with the same idempotency key. ``rate_limited`` (429) asks the
    worker to slow down on that account, for ``retry_after`` seconds when the gateway says.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable or rate_limited
        self.rate_limited = rate_limited
        self.retry_after = retry_after


class GatewayUnreadable(Exception):
    """The gateway could not list the refunds a reconciliation or a webhook event needs, so
    nothing is made or recorded (half a report would call refunds missing that the gateway has;
    an event not recorded is applied when the gateway sends it again): 503
    ``gateway_unavailable`` with ``Retry-After`` when it is unreachable or failing on its side
    (no connection, 5xx, 429), 502 ``gateway_error`` when it answered, but with a refusal (4xx:
    a revoked key, a lost account) or with something that is no refund list; trying again will
    not help until the merchant's gateway set-up is fixed."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(f"the payment gateway could not list refunds: {error}")
        self.detail = str(self)
        down = error.retryable and error.code != "malformed_answer"
        self.status = 503 if down else 502
        self.code = "gateway_unavailable" if down else "gateway_error"
        self.retry_after = max(1, round(error.retry_after or 30)) if down else None


class PaymentGateway(Protocol):
    name: str

    async def create_refund(
        self,
        *,
        payment_reference: str,
        amount: int,
        currency: str,
        refund_id: str,
        idempotency_key: str,
        account: str | None = None,
    ) -> GatewayRefund: ...

    async def get_refund(self, gateway_refund_id: str, *, account: str | None = None) -> GatewayRefund: ...

    async def find_refund(self, *, payment_reference: str, refund_id: str, account: str | None = None) -> GatewayRefund | None:
        """The refund the gateway made for our ``refund_id`` (named in its metadata) on that
        payment, or None: asked before sending a refund again whose earlier try may have reached
        the gateway, so an answer lost (or an idempotency key expired, after 24 h at Stripe)
        never makes a second refund."""
        ...

    def list_refunds(
        self, *, created_from: datetime, created_to: datetime, account: str | None = None
    ) -> AsyncIterator[GatewayRefund]:
        """Refunds created in ``[created_from, created_to)``, as the ledger's periods are."""
        ...

    def charge_refunds(self, charge: str, *, account: str | None = None) -> AsyncIterator[GatewayRefund]:
        """Every refund of the gateway's ``charge`` on ``account``: what an event says was
        refunded without listing the refunds. A charge the account does not have has none, or
        raises ``GatewayError`` ``resource_missing`` (as Stripe answers)."""
        ...


class GatewayEvent(msgspec.Struct, frozen=True):
    """A verified webhook event from the gateway, reduced to the refunds it reports, and the
    account they are on (a connected account's, or None for the platform's own)."""

    id: str
    type: str
    refunds: list[GatewayRefund]
    account: str | None = None
    # charges it reports refunded without listing (all) their refunds: those are asked of the gateway
    unlisted_charges: list[str] = []


class InvalidWebhook(Exception):
    """The webhook's signature or timestamp does not check out (``invalid_signature``), or the
    signed body is not an event we can read (``invalid_event``)."""

    def __init__(self, message: str, *, code: str = "invalid_signature") -> None:
        super().__init__(message)
        self.code = code


class WebhookVerifier(Protocol):
    def verify(self, payload: bytes, signature_header: str | None, now: datetime) -> GatewayEvent: ...


# --------------------------------------------------------------------------- carriers (return labels)


# A postal address as carriers want it (``country``: ISO 3166-1 alpha-2): the domain's, which an
# order carries for its customer.
ShippingAddress = Address


class Parcel(msgspec.Struct, frozen=True):
    """What goes in the box: grams and millimetres (adapters convert to the carrier's units)."""

    weight_g: int
    length_mm: int | None = None
    width_mm: int | None = None
    height_mm: int | None = None


class CarrierRate(msgspec.Struct, frozen=True):
    rate_id: str
    carrier: str  # the carrier's name as it prints it: "USPS", "UPS", "Simulated Post"
    service: str  # "Priority", "Ground"
    amount: int  # minor units of ``currency``
    currency: str  # ISO 4217, upper case
    delivery_days: int | None = None


class BoughtLabel(msgspec.Struct, frozen=True):
    """A label paid for: what the customer prints (or shows, the QR code) and what tracks it."""

    shipment_id: str
    tracking_code: str
    carrier: str
    service: str
    amount: int  # what the label cost, minor units
    currency: str
    pdf: bytes
    png: bytes
    qr_png: bytes | None = None  # where the carrier offers a QR code for label-less drop-off
    tracker_id: str | None = None


class CarrierShipment(msgspec.Struct, frozen=True):
    """A shipment as the carrier knows it: the rates it offers and, once bought, its label."""

    shipment_id: str
    rates: list[CarrierRate]
    label: BoughtLabel | None = None


class TrackingEvent(msgspec.Struct, frozen=True):
    """One scan of a parcel. ``status`` is the carrier's, reduced to: pre_transit | in_transit |
    out_for_delivery | delivered | return_to_sender | failure | unknown."""

    event_id: str  # unique per scan at that carrier: the dedupe key
    tracking_code: str
    status: str
    at: datetime
    detail: str | None = None


class CarrierPreferences(msgspec.Struct, frozen=True):
    """Which rates a merchant's labels may be bought at: carriers and services (empty: any), the
    cheapest of them or the fastest (then the cheapest of the fastest)."""

    carriers: list[str] = []
    services: list[str] = []
    prefer: str = "cheapest"  # cheapest | fastest


class LabelCeiling(msgspec.Struct, frozen=True):
    """The most a label may cost to be bought without an agent (``service.labels.ceiling_for``):
    ``percent_of_items`` of the value of what comes back (None: no such limit) and, per currency,
    ``max_amount`` (minor units). A rate in another currency than the case's waits for an agent
    unless ``other_currency`` is ``max_amount`` and ``max_amount`` prices that currency."""

    percent_of_items: int | None = 50
    max_amount: dict[str, int] = {}
    other_currency: str = "hold"  # hold | max_amount


class ShippingSettings(msgspec.Struct, frozen=True):
    """A merchant's return shipping: ``label_buyer`` ``merchant`` buys a label for every approved
    case whose item comes back (to ``return_address``), ``customer_ships`` buys none."""

    label_buyer: str = "merchant"  # merchant | customer_ships
    return_address: ShippingAddress | None = None
    default_parcel: Parcel = Parcel(weight_g=1000)
    parcels: dict[str, Parcel] = {}  # per product category
    carrier_preferences: CarrierPreferences = CarrierPreferences()
    label_ceiling: LabelCeiling = LabelCeiling()


class LabelRequest(msgspec.Struct, frozen=True):
    """What a label is bought for, fixed on approval (a label planned before ceilings existed
    gets the default ceiling)."""

    from_address: ShippingAddress
    to_address: ShippingAddress
    parcel: Parcel
    preferences: CarrierPreferences
    ceiling: LabelCeiling = LabelCeiling()


class LabelHold(msgspec.Struct, frozen=True):
    """Why the worker bought nothing: ``rate``, the cheapest the preferences allow, costs more than
    ``ceiling`` (minor units of the rate's currency) for a case whose items are worth
    ``items_total`` (minor units of ``case_currency``). ``approved_by``: the agent who had it
    bought anyway."""

    rate: CarrierRate
    ceiling: int
    items_total: int
    case_currency: str
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def reason(self) -> str:
        """``over_ceiling``, or ``other_currency``: the rate is not in the case's currency."""
        return "over_ceiling" if self.rate.currency == self.case_currency else "other_currency"


class ReturnLabel(msgspec.Struct, frozen=True):
    """A case's return label: ``pending`` (the worker buys it), ``held`` (its rate is over the
    ceiling: it waits for an agent, ``hold`` says why), ``bought``, ``failed`` (the carrier
    refused; the case goes on without one), ``cancelled`` (not needed any more before it was
    bought), ``void_requested`` (bought, not needed: the worker voids it), ``voided``."""

    merchant_id: str
    id: str
    case_id: str
    carrier_name: str  # the adapter's name: simulated | easypost
    status: str
    request: LabelRequest
    created_at: datetime
    shipment_id: str | None = None
    carrier: str | None = None
    service: str | None = None
    tracking_code: str | None = None
    tracker_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    pdf_key: str | None = None
    png_key: str | None = None
    qr_key: str | None = None
    attempts: int = 0
    last_error: str | None = None
    scan_status: str | None = None  # the furthest scan so far
    last_scan_at: datetime | None = None
    bought_at: datetime | None = None
    voided_at: datetime | None = None
    hold: LabelHold | None = None  # kept once decided: the audit of a label bought over its ceiling


class CarrierError(Exception):
    """The carrier refused or could not be reached; ``retryable`` for connection errors, 429, 5xx."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class Carrier(Protocol):
    """Buys return labels and tracks them (EasyPost, or the simulated carrier)."""

    name: str

    async def create_shipment(
        self, *, from_address: ShippingAddress, to_address: ShippingAddress, parcel: Parcel, reference: str
    ) -> CarrierShipment:
        """A shipment with its rates; ``reference`` is ours (the label's id), kept by the carrier."""
        ...

    async def get_shipment(self, shipment_id: str) -> CarrierShipment:
        """The shipment now: after a crash, tells whether a label was already bought."""
        ...

    async def buy(self, shipment_id: str, rate_id: str) -> BoughtLabel:
        """Buy that rate's label. A shipment already bought answers its label: never a second one."""
        ...

    async def void(self, shipment_id: str) -> bool:
        """Ask the carrier to refund an unused label; True when it accepted."""
        ...

    async def track(self, tracking_code: str, carrier: str) -> list[TrackingEvent]:
        """Every scan so far, for trackers whose webhooks have gone quiet."""
        ...


class CarrierWebhook(Protocol):
    def verify(self, payload: bytes, headers: dict[str, str], now: datetime) -> list[TrackingEvent]:
        """The scans a carrier's webhook reports, once its signature over the raw body checks
        out; raises ``InvalidWebhook`` (400) otherwise."""
        ...

    def delivery_id(self, payload: bytes) -> str | None:
        """The carrier's id of the event a verified body carries (EasyPost's ``evt_…``), by which
        a request sent again is told from a new event; None when it names none."""
        ...


# --------------------------------------------------------------------------- blobs and images


class BlobNotFound(Exception):
    pass


class BlobStore(Protocol):
    """Opaque bytes by key. ``put`` is atomic: a reader sees the whole blob or nothing."""

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...


class ImageRejected(Exception):
    """The upload is not an image we accept. ``code`` is ``unsupported_media_type`` (415) or
    ``validation_error`` (422: truncated, corrupt, decompression bomb)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class ProcessedImage(msgspec.Struct, frozen=True):
    original_sha256: str  # hex digest of the bytes as uploaded
    detected_format: str  # jpeg | png | webp | heif (from decoding, never the file name)
    content_type: str  # of ``image``
    image: bytes  # re-encoded, metadata stripped, orientation applied
    thumbnail: bytes
    thumbnail_content_type: str
    width: int
    height: int
    perceptual_hash: str  # 16 hex digits (64-bit dHash/pHash)


class ImageProcessor(Protocol):
    def process(self, data: bytes) -> ProcessedImage: ...
