"""The simulated payment gateway: the default when no ``STRIPE_API_KEY`` is set, so a laptop, a
demo or a test sees real refund life cycles without a network.

It keeps its refunds in PostgreSQL, in tables of its own (migration 006), so that every process of
the service (``serve --workers``, ``returns worker``) sees one gateway and its ids are unique
forever, across restarts. It stands for an outside system: it reads none of the service's tables.
It is deterministic on a fresh database: the same calls give the same answers, and time is read
from an injectable ``clock``. It follows Stripe where it matters:

- idempotency, per account: the same key answers the first refund again (in its current state);
  the same key with other parameters is refused, ``idempotency_error``, not retryable. Atomic
  across processes (a unique key on account and idempotency key);
- payments are unlimited unless registered with ``add_payment(reference, amount)``; then refunds
  past what is left are refused, ``amount_too_large`` (failed and canceled refunds give theirs
  back), also when processes race (the payment's row is locked while a refund is made); an
  amount under 1 is ``parameter_invalid_integer``;
- outcomes by amount, like Stripe's test cards: an amount ending in ``13`` fails (``declined``),
  one ending in ``17`` requires action, any other succeeds;
- ``settle_after`` seconds: refunds stay ``pending`` that long, then reach their outcome (stored
  on the next call for the account, as when polling); ``requires_action`` is immediate. Off (0)
  by default;
- ``latency`` seconds are awaited on every call, half on the way there and half on the way back
  (after a refund is made), so a process killed mid-call may leave a refund made but unrecorded;
- ``fail_next(n, retryable=...)`` makes this instance's next ``n`` calls fail without doing
  anything, as a gateway that is down (retryable) or refusing (not retryable) would;
- ``set_status`` changes a refund later, as the gateway's dashboard or a bank would.

The port's calls share a small connection pool, opened on first use in the event loop that makes
them (``close()`` it there). The scripting helpers (``add_payment``, ``set_status``,
``refunds``) open a connection of their own per call, so tests may call them from any loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg

from adapters.simulated_system import SimulatedSystem
from service.ports import GatewayError, GatewayRefund

FAILING_SUFFIX = 13  # amount % 100
REQUIRES_ACTION_SUFFIX = 17

_COLUMNS = "id AS gateway_refund_id, payment_reference, amount, currency, status, failure_reason, refund_id, created_at"
_BY_KEY = f"SELECT {_COLUMNS} FROM simulated_gateway_refunds WHERE account = $1 AND idempotency_key = $2"


class SimulatedGateway(SimulatedSystem):
    name = "simulated"

    def __init__(
        self,
        dsn: str,
        *,
        latency: float = 0.0,
        settle_after: float = 0.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(dsn, latency, _unreachable)
        self.settle_after = timedelta(seconds=settle_after)
        self.clock = clock

    # ----------------------------------------------------------------- scripting

    async def add_payment(self, reference: str, amount: int, *, account: str | None = None) -> None:
        """A captured payment of ``amount``: refunds on it may not exceed it."""
        async with self._own_connection() as conn:
            await conn.execute(
                "INSERT INTO simulated_gateway_payments (account, reference, amount) VALUES ($1, $2, $3)"
                " ON CONFLICT (account, reference) DO UPDATE SET amount = EXCLUDED.amount",
                account or "",
                reference,
                amount,
            )

    def fail_next(self, count: int = 1, *, retryable: bool = True, code: str | None = None) -> None:
        """The next ``count`` calls to this instance fail, doing nothing: the gateway is down, or
        refusing. Kept in memory: other processes' instances are not affected."""
        code = code or ("api_error" if retryable else "card_declined")
        self._failures += [GatewayError("simulated gateway failure", code=code, retryable=retryable)] * count

    async def set_status(self, gateway_refund_id: str, status: str, failure_reason: str | None = None) -> None:
        """Change a refund later, as the gateway's dashboard or a bank would; ends any settling."""
        async with self._own_connection() as conn:
            changed = await conn.execute(
                "UPDATE simulated_gateway_refunds SET status = $2, failure_reason = $3, settles_at = NULL WHERE id = $1",
                gateway_refund_id,
                status,
                failure_reason,
            )
        if changed == "UPDATE 0":
            raise KeyError(gateway_refund_id)

    async def refunds(self, account: str | None = None, payment_reference: str | None = None) -> list[GatewayRefund]:
        """The account's refunds as stored (nothing settles), oldest first: for tests to inspect."""
        async with self._own_connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM simulated_gateway_refunds"
                " WHERE account = $1 AND ($2::text IS NULL OR payment_reference = $2) ORDER BY created_at, id",
                account or "",
                payment_reference,
            )
        return [_refund(row) for row in rows]

    # ----------------------------------------------------------------- the port

    async def create_refund(
        self,
        *,
        payment_reference: str,
        amount: int,
        currency: str,
        refund_id: str,
        idempotency_key: str,
        account: str | None = None,
    ) -> GatewayRefund:
        await self._answer()
        currency, account_key, now = currency.upper(), account or "", self.clock()
        async with self._pooled() as conn:
            await self._settle(conn, account_key, now)
            async with conn.transaction():
                # refunds on one registered payment are made one at a time, so what is left holds
                captured = await conn.fetchval(
                    "SELECT amount FROM simulated_gateway_payments WHERE account = $1 AND reference = $2 FOR UPDATE",
                    account_key,
                    payment_reference,
                )
                row = await conn.fetchrow(_BY_KEY, account_key, idempotency_key)
                if row is None:
                    if amount < 1:
                        raise GatewayError(f"invalid refund amount {amount}", code="parameter_invalid_integer")
                    if captured is not None:
                        await _check_left(conn, account_key, payment_reference, captured, amount)
                    row = await self._insert(
                        conn, account_key, idempotency_key, payment_reference, amount, currency, refund_id, now
                    ) or await conn.fetchrow(_BY_KEY, account_key, idempotency_key)  # or made meanwhile elsewhere
        await self._answer_back()  # committed: a process killed now leaves the refund made
        if (row["payment_reference"], row["amount"], row["currency"]) != (payment_reference, amount, currency):
            raise GatewayError(
                f"idempotency key {idempotency_key!r} was first used with other parameters", code="idempotency_error"
            )
        return _refund(row)

    async def get_refund(self, gateway_refund_id: str, *, account: str | None = None) -> GatewayRefund:
        await self._answer()
        async with self._pooled() as conn:
            await self._settle(conn, account or "", self.clock())
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM simulated_gateway_refunds WHERE id = $1 AND account = $2",
                gateway_refund_id,
                account or "",
            )
        await self._answer_back()
        if row is None:
            raise GatewayError(f"no refund {gateway_refund_id}", code="resource_missing")
        return _refund(row)

    async def find_refund(self, *, payment_reference: str, refund_id: str, account: str | None = None) -> GatewayRefund | None:
        await self._answer()
        async with self._pooled() as conn:
            await self._settle(conn, account or "", self.clock())
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM simulated_gateway_refunds"
                " WHERE account = $1 AND payment_reference = $2 AND refund_id = $3 ORDER BY created_at LIMIT 1",
                account or "",
                payment_reference,
                refund_id,
            )
        await self._answer_back()
        return _refund(row) if row else None

    def list_refunds(
        self, *, created_from: datetime, created_to: datetime, account: str | None = None
    ) -> AsyncIterator[GatewayRefund]:
        """Refunds created in ``[created_from, created_to)``, newest first, as Stripe lists them."""
        return self._listed("created_at >= $2 AND created_at < $3", account, created_from, created_to)

    def charge_refunds(self, charge: str, *, account: str | None = None) -> AsyncIterator[GatewayRefund]:
        """The simulated gateway takes each payment as one charge, named by its reference: a
        charge's refunds are its payment's (none for a payment it has none of)."""
        return self._listed("payment_reference = $2", account, charge)

    # ----------------------------------------------------------------- internals

    async def _listed(self, where: str, account: str | None, *args: object) -> AsyncIterator[GatewayRefund]:
        """The account's refunds that match ``where`` (on ``$2``…), newest first."""
        await self._answer()
        async with self._pooled() as conn:
            await self._settle(conn, account or "", self.clock())
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM simulated_gateway_refunds"
                f" WHERE account = $1 AND {where} ORDER BY created_at DESC, id DESC",
                account or "",
                *args,
            )
        await self._answer_back()
        for row in rows:
            yield _refund(row)

    async def _insert(
        self,
        conn: asyncpg.Connection,
        account: str,
        idempotency_key: str,
        payment_reference: str,
        amount: int,
        currency: str,
        refund_id: str,
        now: datetime,
    ) -> asyncpg.Record | None:
        """The new refund, or None when another call made one with this key first."""
        outcome_status, outcome_reason = _outcome(amount)
        pending = self.settle_after > timedelta(0) and outcome_status != "requires_action"
        status, failure_reason = ("pending", None) if pending else (outcome_status, outcome_reason)
        number = await conn.fetchval("SELECT nextval('simulated_gateway_refund_ids')")
        return await conn.fetchrow(
            "INSERT INTO simulated_gateway_refunds (id, account, idempotency_key, payment_reference, amount, currency,"
            " status, failure_reason, refund_id, outcome_status, outcome_failure_reason, created_at, settles_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            f" ON CONFLICT (account, idempotency_key) DO NOTHING RETURNING {_COLUMNS}",
            f"sim_re_{number:06d}",
            account,
            idempotency_key,
            payment_reference,
            amount,
            currency,
            status,
            failure_reason,
            refund_id,
            outcome_status,
            outcome_reason,
            now,
            now + self.settle_after if pending else None,
        )

    @staticmethod
    async def _settle(conn: asyncpg.Connection, account: str, now: datetime) -> None:
        """Pending refunds whose time has come reach their outcome (locked in id order: no deadlock)."""
        await conn.execute(
            "UPDATE simulated_gateway_refunds"
            " SET status = outcome_status, failure_reason = outcome_failure_reason, settles_at = NULL"
            " WHERE id IN (SELECT id FROM simulated_gateway_refunds WHERE account = $1 AND settles_at <= $2"
            " ORDER BY id FOR UPDATE)",
            account,
            now,
        )

    @asynccontextmanager
    async def _own_connection(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.dsn)
        try:
            yield conn
        finally:
            await conn.close()


def _unreachable(error: Exception) -> GatewayError:
    return GatewayError(f"simulated gateway unreachable: {error}", code="api_connection_error", retryable=True)


async def _check_left(conn: asyncpg.Connection, account: str, payment_reference: str, captured: int, amount: int) -> None:
    refunded = await conn.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM simulated_gateway_refunds"
        " WHERE account = $1 AND payment_reference = $2 AND status NOT IN ('failed', 'canceled')",
        account,
        payment_reference,
    )
    left = captured - refunded
    if amount > left:
        raise GatewayError(f"refund of {amount} exceeds the {left} left on {payment_reference}", code="amount_too_large")


def _outcome(amount: int) -> tuple[str, str | None]:
    if amount % 100 == FAILING_SUFFIX:
        return "failed", "declined"
    if amount % 100 == REQUIRES_ACTION_SUFFIX:
        return "requires_action", None
    return "succeeded", None


def _refund(row: asyncpg.Record) -> GatewayRefund:
    return GatewayRefund(**row)  # the columns are named as its fields
