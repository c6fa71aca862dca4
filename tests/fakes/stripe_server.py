"""A Stripe-compatible fake API server for the tests, driven through the real ``stripe`` SDK
(pointed at it with ``base_addresses``). It keeps payment intents and refunds per connected
account and follows the Stripe behaviours the service relies on:

- idempotency: the same ``Idempotency-Key`` with the same parameters replays the first answer;
  with other parameters it answers 400 ``idempotency_error``;
- a refund over what is left of the payment intent is refused (``amount_too_large``); an unknown
  payment intent is 404 ``resource_missing``; cancel only from ``requires_action``;
- lists are newest first with ``created[gte|lte]``, ``limit`` and ``starting_after`` cursors;
- faults on demand: error statuses with or without ``Stripe-Should-Retry``, dropped connections
  (before or after the refund is made), slow answers.

``signed_event`` builds a webhook body and its ``Stripe-Signature`` for a refund.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Fault:
    kind: str  # "status" | "drop_before" | "drop_after" | "delay"
    status: int = 500
    should_retry: bool | None = None
    seconds: float = 0.0


@dataclass
class Account:
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)


class FakeStripe:
    def __init__(self) -> None:
        self.accounts: dict[str | None, Account] = {}
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.next_statuses: list[str] = []
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, idempotency key)
        self._ids = itertools.count(1)
        self.url = ""

    # ----------------------------------------------------------------- set-up and inspection

    def account(self, account: str | None = None) -> Account:
        with self.lock:
            return self.accounts.setdefault(account, Account())

    def add_payment_intent(self, pi_id: str, *, amount: int, currency: str = "eur", account: str | None = None) -> None:
        self.account(account).payment_intents[pi_id] = {"id": pi_id, "amount": amount, "currency": currency.lower()}

    def refunds(self, account: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.account(account).refunds.values())

    def fail_next(self, count: int = 1, *, status: int = 500, should_retry: bool | None = None) -> None:
        self.faults += [Fault("status", status=status, should_retry=should_retry)] * count

    def drop_next(self, count: int = 1, *, after_commit: bool = True) -> None:
        """Close the connection without answering; ``after_commit``: the refund is made first."""
        self.faults += [Fault("drop_after" if after_commit else "drop_before")] * count

    def delay_next(self, seconds: float, count: int = 1) -> None:
        self.faults += [Fault("delay", seconds=seconds)] * count

    def set_next_status(self, *statuses: str) -> None:
        """Statuses for the next refunds made (else ``succeeded``)."""
        self.next_statuses += statuses

    def set_status(self, refund_id: str, status: str, failure_reason: str | None = None, account: str | None = None) -> dict[str, Any]:
        with self.lock:
            refund = self.account(account).refunds[refund_id]
            refund["status"] = status
            refund["failure_reason"] = failure_reason
            return dict(refund)

    def add_external_refund(
        self, pi_id: str, amount: int, *, created: int | None = None, account: str | None = None, metadata: dict | None = None
    ) -> dict[str, Any]:
        """A refund made outside the service (say, in Stripe's dashboard)."""
        with self.lock:
            return self._make_refund(self.account(account), pi_id, amount, metadata or {}, created=created)

    # ----------------------------------------------------------------- the API

    def handle(self, method: str, path: str, query: dict[str, str], form: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        account = self.account(headers.get("stripe-account"))
        parts = [p for p in path.split("/") if p]
        if method == "POST" and parts == ["v1", "refunds"]:
            return self._create(account, form, headers.get("idempotency-key"))
        if method == "GET" and parts == ["v1", "refunds"]:
            return 200, self._list(account, query, path)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "refunds"]:
            refund = account.refunds.get(parts[2])
            return (200, dict(refund)) if refund else _error(404, "invalid_request_error", "resource_missing", f"No such refund: '{parts[2]}'")
        if method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "refunds"] and parts[3] == "cancel":
            refund = account.refunds.get(parts[2])
            if refund is None:
                return _error(404, "invalid_request_error", "resource_missing", f"No such refund: '{parts[2]}'")
            if refund["status"] != "requires_action":
                return _error(400, "invalid_request_error", "refund_cancel_invalid", "only refunds requiring action can be canceled")
            refund["status"] = "canceled"
            return 200, dict(refund)
        return _error(404, "invalid_request_error", "resource_missing", f"Unrecognized request URL ({method}: {path})")

    def _create(self, account: Account, form: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any]]:
        fingerprint = json.dumps(form, sort_keys=True)
        if key and key in account.idempotency:
            first_fingerprint, status, body = account.idempotency[key]
            if first_fingerprint != fingerprint:
                return _error(
                    400, "idempotency_error", None,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
            return status, body
        status, body = self._refund_for(account, form)
        if key:
            account.idempotency[key] = (fingerprint, status, body)
        return status, body

    def _refund_for(self, account: Account, form: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pi_id = form.get("payment_intent")
        intent = account.payment_intents.get(pi_id or "")
        if intent is None:
            return _error(404, "invalid_request_error", "resource_missing", f"No such payment_intent: '{pi_id}'")
        refunded = sum(
            r["amount"] for r in account.refunds.values()
            if r["payment_intent"] == pi_id and r["status"] not in ("failed", "canceled")
        )
        amount = int(form.get("amount", intent["amount"] - refunded))
        if amount <= 0 or refunded + amount > intent["amount"]:
            return _error(
                400, "invalid_request_error", "amount_too_large",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({intent['amount'] - refunded})",
            )
        return 200, self._make_refund(account, pi_id, amount, form.get("metadata", {}))

    def _make_refund(self, account: Account, pi_id: str, amount: int, metadata: dict, created: int | None = None) -> dict[str, Any]:
        intent = account.payment_intents.setdefault(pi_id, {"id": pi_id, "amount": amount, "currency": "eur"})
        status = self.next_statuses.pop(0) if self.next_statuses else "succeeded"
        refund = {
            "id": f"re_fake{next(self._ids):08d}",
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": pi_id,
            "charge": f"ch_{pi_id}",
            "created": created if created is not None else int(time.time()),
            "metadata": metadata,
            "status": status,
            "failure_reason": "lost_or_stolen_card" if status == "failed" else None,
            "reason": None,
        }
        account.refunds[refund["id"]] = refund
        return dict(refund)

    def _list(self, account: Account, query: dict[str, str], path: str) -> dict[str, Any]:
        rows = sorted(account.refunds.values(), key=lambda r: (r["created"], r["id"]), reverse=True)
        if "created[gte]" in query:
            rows = [r for r in rows if r["created"] >= int(query["created[gte]"])]
        if "created[lte]" in query:
            rows = [r for r in rows if r["created"] <= int(query["created[lte]"])]
        if "starting_after" in query:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(query["starting_after"]) + 1:] if query["starting_after"] in ids else []
        limit = min(int(query.get("limit", 10)), 100)
        return {"object": "list", "url": path, "has_more": len(rows) > limit, "data": [dict(r) for r in rows[:limit]]}

    def next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.pop(0) if self.faults else None


def _error(status: int, kind: str, code: str | None, message: str) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return status, {"error": error}


def _form(body: str) -> dict[str, Any]:
    """Stripe's form encoding, with ``metadata[key]=value`` folded into a dict."""
    form: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        if key.startswith("metadata[") and key.endswith("]"):
            form.setdefault("metadata", {})[key[len("metadata["):-1]] = value
        else:
            form[key] = value
    return form


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.requests.append((method, split.path, headers.get("idempotency-key")))
            fault = fake.next_fault()
            if fault and fault.kind == "delay":
                time.sleep(fault.seconds)
                fault = None
            if fault and fault.kind == "drop_before":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault and fault.kind == "status":
                status, payload = _error(fault.status, "api_error", None, "simulated failure")
                extra = {} if fault.should_retry is None else {"Stripe-Should-Retry": str(fault.should_retry).lower()}
                self._answer(status, payload, extra)
                return
            with fake.lock:
                status, payload = fake.handle(method, split.path, dict(parse_qsl(split.query)), _form(body), headers)
            if fault and fault.kind == "drop_after":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self._answer(status, payload, {})

        def _answer(self, status: int, payload: dict[str, Any], extra: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{time.monotonic_ns()}")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self._serve("POST")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


def signed_event(
    event_type: str, refund: dict[str, Any], secret: str, *, event_id: str | None = None, timestamp: int | None = None
) -> tuple[bytes, str]:
    """A webhook body for ``refund`` and its ``Stripe-Signature`` header value."""
    event = {
        "id": event_id or f"evt_{refund['id']}_{refund['status']}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": refund},
    }
    payload = json.dumps(event).encode()
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={t},v1={signature}"
