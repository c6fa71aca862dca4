"""A Stripe-compatible fake API server for the tests, driven through the real ``stripe`` SDK
(pointed at it with ``base_addresses``), so the adapter's requests, retries and error handling
are the ones production runs. It keeps payment intents and refunds per account (the platform's,
or a connected account's named by the ``Stripe-Account`` header) and follows the Stripe
behaviours the service relies on:

- idempotency per account: the same ``Idempotency-Key`` with the same parameters replays the
  stored answer (with ``Idempotent-Replayed: true``), with other parameters it answers 400
  ``idempotency_error``, and while the first request is still running it answers 409;
- a refund over what is left of the payment intent is 400 ``amount_too_large``, an unknown
  payment intent or refund is 404 ``resource_missing``, an unknown parameter 400
  ``parameter_unknown``;
- lists are newest first with ``created[gte|gt|lte|lt]``, ``payment_intent``, ``charge``, ``limit``
  and ``starting_after``; a ``charge`` the account does not have is 404 ``resource_missing``;
- a refund can be canceled only while it requires action;
- faults on demand: error statuses (with or without ``Stripe-Should-Retry``), connections closed
  without an answer (before or after the refund is made), slow answers.

Each payment intent has one charge (``ch_…`` after its ``pi_…``), which ``charge`` renders as the
API does since 2022-11-15: without its ``refunds``. ``sign_webhook`` signs a webhook body the way
Stripe does; ``signed_event`` builds an event about a refund or a charge.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import stripe

from tests.fakes.http import FakeHandler, FakeService

if TYPE_CHECKING:
    from adapters.gateways.stripe_gateway import StripeGateway

Answer = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, extra headers

REFUND_PARAMETERS = {
    "amount",
    "charge",
    "currency",
    "customer",
    "expand",
    "instructions_email",
    "metadata",
    "origin",
    "payment_intent",
    "reason",
    "refund_application_fee",
    "reverse_transfer",
}
FAILURE_REASON = "lost_or_stolen_card"  # what a refund made ``failed`` by ``set_next_status`` reports


@dataclass(frozen=True)
class Fault:
    kind: str  # "status" | "drop" | "delay"
    status: int = 500
    should_retry: bool | None = None
    retry_after: float | None = None
    after_commit: bool = False
    seconds: float = 0.0


@dataclass
class Account:
    """One account's objects: the platform's (``None``) or a connected account's."""

    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)  # key → (request, status, body)
    in_flight: set[str] = field(default_factory=set)


class FakeStripe(FakeService):
    """The fake's state and its HTTP server; a context manager that starts and stops it."""

    def __init__(self) -> None:
        super().__init__(_Handler, "fake Stripe")
        self.accounts: dict[str | None, Account] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self._next_statuses: list[str] = []
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- set-up and inspection

    def account(self, account: str | None = None) -> Account:
        with self.lock:
            return self.accounts.setdefault(account, Account())

    def add_payment_intent(self, pi_id: str, *, amount: int, currency: str = "eur", account: str | None = None) -> None:
        """A payment intent with ``amount`` captured, which refunds may return."""
        with self.lock:
            self.account(account).payment_intents[pi_id] = {"id": pi_id, "amount": amount, "currency": currency.lower()}

    def refunds(self, account: str | None = None) -> list[dict[str, Any]]:
        """Copies of the account's refunds, oldest first."""
        with self.lock:
            return [dict(refund) for refund in self.account(account).refunds.values()]

    def fail_next(
        self, count: int = 1, *, status: int = 500, should_retry: bool | None = None, retry_after: float | None = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and Stripe's error body for it, doing
        nothing; ``should_retry`` sends ``Stripe-Should-Retry``, which the SDK obeys, and
        ``retry_after`` a ``Retry-After`` header."""
        self._add_faults(count, Fault("status", status=status, should_retry=should_retry, retry_after=retry_after))

    def drop_connection_next(self, count: int = 1, *, after_commit: bool = False) -> None:
        """Close the next ``count`` connections without answering; with ``after_commit`` the request
        is carried out first (and its answer stored for the idempotency key), as when a timeout
        hides a refund the gateway did make."""
        self._add_faults(count, Fault("drop", after_commit=after_commit))

    def delay_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` requests for ``seconds`` before carrying them out."""
        self._add_faults(count, Fault("delay", seconds=seconds))

    def set_next_status(self, *statuses: str) -> None:
        """Statuses for the next refunds made (else ``succeeded``), one each."""
        with self.lock:
            self._next_statuses += statuses

    def set_status(
        self, refund_id: str, status: str, failure_reason: str | None = None, account: str | None = None
    ) -> dict[str, Any]:
        """Change a refund later, as Stripe does when a refund settles or fails; answers a copy."""
        with self.lock:
            refund = self.account(account).refunds[refund_id]
            refund["status"] = status
            refund["failure_reason"] = failure_reason
            return dict(refund)

    def add_external_refund(
        self,
        pi_id: str,
        amount: int,
        *,
        created: int | None = None,
        account: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A refund made outside the service (say, in Stripe's dashboard). The payment intent is
        made up when unknown, and no limit applies: tests set up whatever history they need."""
        with self.lock:
            return self._make_refund(self.account(account), pi_id, amount, metadata or {}, None, created)

    def charge(self, pi_id: str, account: str | None = None) -> dict[str, Any]:
        """The payment intent's charge as Stripe's API renders it (no ``refunds`` list)."""
        with self.lock:
            state = self.account(account)
            intent = state.payment_intents[pi_id]
            refunded = sum(
                r["amount"]
                for r in state.refunds.values()
                if r["payment_intent"] == pi_id and r["status"] not in ("failed", "canceled")
            )
            return {
                "id": _charge_id(pi_id),
                "object": "charge",
                "amount": intent["amount"],
                "amount_captured": intent["amount"],
                "amount_refunded": refunded,
                "application": None,
                "application_fee": None,
                "application_fee_amount": None,
                "balance_transaction": None,
                "billing_details": {"address": None, "email": None, "name": None, "phone": None},
                "calculated_statement_descriptor": None,
                "captured": True,
                "created": int(time.time()),
                "currency": intent["currency"],
                "customer": None,
                "description": None,
                "disputed": False,
                "failure_balance_transaction": None,
                "failure_code": None,
                "failure_message": None,
                "fraud_details": {},
                "livemode": False,
                "metadata": {},
                "on_behalf_of": None,
                "outcome": None,
                "paid": True,
                "payment_intent": pi_id,
                "payment_method": None,
                "payment_method_details": None,
                "receipt_email": None,
                "receipt_number": None,
                "receipt_url": None,
                "refunded": refunded >= intent["amount"],
                "review": None,
                "shipping": None,
                "source_transfer": None,
                "statement_descriptor": None,
                "statement_descriptor_suffix": None,
                "status": "succeeded",
                "transfer_data": None,
                "transfer_group": None,
            }

    # ----------------------------------------------------------------- the API

    def _route(self, method: str, path: str, query: dict[str, str], form: dict[str, Any], headers: dict[str, str]) -> Answer:
        """One request, faults aside, carried out under the lock: requests are atomic."""
        parts = [part for part in path.split("/") if part]
        with self.lock:
            account = self.account(headers.get("stripe-account"))
            if parts == ["v1", "refunds"] and method == "POST":
                return self._create(account, form, headers.get("idempotency-key"))
            if parts == ["v1", "refunds"] and method == "GET":
                return self._list(account, query, path)
            if len(parts) == 3 and parts[:2] == ["v1", "refunds"] and method == "GET":
                refund = account.refunds.get(parts[2])
                if refund is None:
                    return _error(404, "invalid_request_error", "resource_missing", f"No such refund: '{parts[2]}'", "id")
                return 200, dict(refund), {}
            if len(parts) == 4 and parts[:2] == ["v1", "refunds"] and parts[3] == "cancel" and method == "POST":
                return self._cancel(account, parts[2])
        return _error(404, "invalid_request_error", None, f"Unrecognized request URL ({method}: {path}).")

    def _cancel(self, account: Account, refund_id: str) -> Answer:
        """As Stripe: only a refund that requires action can be canceled."""
        refund = account.refunds.get(refund_id)
        if refund is None:
            return _error(404, "invalid_request_error", "resource_missing", f"No such refund: '{refund_id}'", "id")
        if refund["status"] != "requires_action":
            return _error(
                400,
                "invalid_request_error",
                "charge_refund_cancel_invalid",
                f"Only a refund with status requires_action can be canceled; this one is {refund['status']}.",
            )
        refund["status"] = "canceled"
        return 200, dict(refund), {}

    def _create(self, account: Account, form: dict[str, Any], key: str | None) -> Answer:
        request = json.dumps(form, sort_keys=True)
        if key is not None and key in account.idempotency:
            first_request, status, body = account.idempotency[key]
            if first_request != request:
                return _error(
                    400,
                    "idempotency_error",
                    None,
                    f"Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                )
            return status, body, {"Idempotent-Replayed": "true"}
        status, body, headers = self._refund_for(account, form)
        if key is not None:
            account.idempotency[key] = (request, status, body)
        return status, body, headers

    def _refund_for(self, account: Account, form: dict[str, Any]) -> Answer:
        unknown = sorted({name.partition("[")[0] for name in form} - REFUND_PARAMETERS)
        if unknown:
            return _error(
                400, "invalid_request_error", "parameter_unknown", f"Received unknown parameter: {unknown[0]}", unknown[0]
            )
        pi_id = form.get("payment_intent")
        if not pi_id:
            return _error(400, "invalid_request_error", "parameter_missing", "Must provide either `charge` or `payment_intent`.")
        intent = account.payment_intents.get(pi_id)
        if intent is None:
            return _error(
                404, "invalid_request_error", "resource_missing", f"No such payment_intent: '{pi_id}'", "payment_intent"
            )
        left = intent["amount"] - sum(
            r["amount"]
            for r in account.refunds.values()
            if r["payment_intent"] == pi_id and r["status"] not in ("failed", "canceled")
        )
        raw_amount = form.get("amount", str(left))
        if not raw_amount.isdigit() or int(raw_amount) < 1:
            return _error(400, "invalid_request_error", "parameter_invalid_integer", "Invalid positive integer", "amount")
        amount = int(raw_amount)
        if amount > left:
            return _error(
                400,
                "invalid_request_error",
                "amount_too_large",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                "amount",
            )
        return 200, self._make_refund(account, pi_id, amount, form.get("metadata", {}), form.get("reason")), {}

    def _make_refund(
        self,
        account: Account,
        pi_id: str,
        amount: int,
        metadata: dict[str, str],
        reason: str | None,
        created: int | None = None,
    ) -> dict[str, Any]:
        intent = account.payment_intents.setdefault(pi_id, {"id": pi_id, "amount": amount, "currency": "eur"})
        status = self._next_statuses.pop(0) if self._next_statuses else "succeeded"
        refund = {
            "id": f"re_fake{next(self._ids):08d}",
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": _charge_id(pi_id),
            "created": int(time.time()) if created is None else created,
            "currency": intent["currency"],
            "destination_details": {
                "card": {
                    "reference": None,
                    "reference_status": "pending",
                    "reference_type": "acquirer_reference_number",
                    "type": "refund",
                },
                "type": "card",
            },
            "failure_reason": FAILURE_REASON if status == "failed" else None,
            "livemode": False,
            "metadata": metadata,
            "payment_intent": pi_id,
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": status,
            "transfer_reversal": None,
        }
        account.refunds[refund["id"]] = refund
        return dict(refund)

    def _list(self, account: Account, query: dict[str, str], path: str) -> Answer:
        limit = query.get("limit", "10")
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            return _error(400, "invalid_request_error", "parameter_invalid_integer", "limit must be between 1 and 100", "limit")
        rows = sorted(account.refunds.values(), key=_position, reverse=True)
        bounds = {"gte": int.__ge__, "gt": int.__gt__, "lte": int.__le__, "lt": int.__lt__}
        for name, holds in bounds.items():
            if f"created[{name}]" in query:
                rows = [r for r in rows if holds(r["created"], int(query[f"created[{name}]"]))]
        if "payment_intent" in query:
            rows = [r for r in rows if r["payment_intent"] == query["payment_intent"]]
        if "charge" in query:
            if query["charge"] not in {_charge_id(pi) for pi in account.payment_intents}:
                return _error(404, "invalid_request_error", "resource_missing", f"No such charge: '{query['charge']}'", "charge")
            rows = [r for r in rows if r["charge"] == query["charge"]]
        if "starting_after" in query:
            cursor = account.refunds.get(query["starting_after"])
            if cursor is None:
                message = f"No such refund: '{query['starting_after']}'"
                return _error(404, "invalid_request_error", "resource_missing", message, "starting_after")
            rows = [r for r in rows if _position(r) < _position(cursor)]
        page = rows[: int(limit)]
        return 200, {"object": "list", "url": path, "has_more": len(rows) > len(page), "data": [dict(r) for r in page]}, {}

    # ----------------------------------------------------------------- faults

    @contextmanager
    def _running(self, headers: dict[str, str]) -> Iterator[bool]:
        """Marks a keyed request as running while it is served; yields False when a request with
        the same key is already running (Stripe answers that one 409)."""
        key = headers.get("idempotency-key")
        if key is None:
            yield True
            return
        with self.lock:
            running = self.account(headers.get("stripe-account")).in_flight
            alone = key not in running
            running.add(key)
        try:
            yield alone
        finally:
            if alone:
                with self.lock:
                    running.discard(key)


class _Handler(FakeHandler):
    def _serve(self, method: str) -> None:
        """Carry the request out, then answer it or drop the connection. Its idempotency key is
        released before the client hears anything (an answer or a dropped connection), as at
        Stripe, whose request is over by then: a client that tries again at once is never told
        that its own finished request is still in flight."""
        fake = self.server.fake
        split = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake.requests.append((method, split.path, headers.get("idempotency-key")))
        with fake._running(headers) as alone:
            fault = fake._take_fault() if alone else Fault("status", status=409)
            answer = self._outcome(
                fault, lambda: fake._route(method, split.path, dict(parse_qsl(split.query)), _form(body), headers)
            )
        if answer is None:
            self._drop()
        else:
            self._answer(*answer)

    @staticmethod
    def _outcome(fault: Fault | None, route: Callable[[], Answer]) -> Answer | None:
        """The answer to give, or None to drop the connection without one."""
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        elif fault is not None and fault.kind == "status":
            status, error, extra = _fault_error(fault.status)
            if fault.should_retry is not None:
                extra["Stripe-Should-Retry"] = str(fault.should_retry).lower()
            if fault.retry_after is not None:
                extra["Retry-After"] = str(fault.retry_after)
            return status, error, extra
        elif fault is not None and fault.kind == "drop" and not fault.after_commit:
            return None
        answer = route()
        return None if fault is not None and fault.kind == "drop" else answer

    def _answer(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_fake{time.monotonic_ns()}")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _error(status: int, kind: str, code: str | None, message: str, param: str | None = None) -> Answer:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return status, {"error": error}, {}


def _charge_id(pi_id: str) -> str:
    """The one charge of a payment intent at the fake."""
    return f"ch_{pi_id.removeprefix('pi_')}"


def _position(refund: dict[str, Any]) -> tuple[int, str]:
    """The order of lists, which Stripe gives newest first: by creation, then id."""
    return refund["created"], refund["id"]


def _fault_error(status: int) -> Answer:
    """What Stripe answers with ``status``: 409 is the same idempotency key still in flight."""
    if status == 429:
        return _error(429, "invalid_request_error", "rate_limit", "Too many requests hit the API too quickly.")
    if status == 409:
        message = (
            "There is currently another in-progress request using this Idempotent Key (that probably means you "
            "submitted twice, and the other request is still going through). Please try again later."
        )
        return _error(409, "idempotency_error", None, message)
    return _error(status, "api_error", None, "An unknown error occurred (simulated).")


def _form(body: str) -> dict[str, Any]:
    """Stripe's form encoding, with ``metadata[key]=value`` folded into a dict."""
    form: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        if key.startswith("metadata[") and key.endswith("]"):
            form.setdefault("metadata", {})[key[len("metadata[") : -1]] = value
        else:
            form[key] = value
    return form


def stripe_gateway(fake: FakeStripe, retries: int = 0) -> StripeGateway:
    """The service's Stripe adapter pointed at ``fake`` (``retries``: the SDK's own network retries)."""
    from adapters.gateways.stripe_gateway import StripeGateway

    return StripeGateway("sk_test_fake", api_base=fake.url, max_network_retries=retries)


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    """A started fake, stopped on exit."""
    with FakeStripe() as fake:
        yield fake


def sign_webhook(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``payload``: HMAC-SHA256 of ``"{t}.{payload}"``."""
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={signature}"


def signed_event(
    event_type: str,
    obj: dict[str, Any],
    secret: str,
    *,
    event_id: str | None = None,
    timestamp: int | None = None,
    account: str | None = None,
) -> tuple[bytes, str]:
    """A webhook body, an Event as Stripe's API reference shows it, about ``obj`` (a refund or a
    charge), and its ``Stripe-Signature`` header value; with ``account``, a Connect event from
    that connected account."""
    event: dict[str, Any] = {
        "id": event_id or f"evt_{obj.get('id')}_{obj.get('status')}",
        "object": "event",
        "api_version": stripe.api_version,
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    if account is not None:
        event["account"] = account
    payload = json.dumps(event).encode()
    return payload, sign_webhook(payload, secret, timestamp)
