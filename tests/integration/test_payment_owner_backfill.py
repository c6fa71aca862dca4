"""Migration 016 gives the payments of the orders stored before it to their merchants: each to the
merchant whose order named it first, on the gateway account that merchant has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from adapters.postgres.migrations import migrate, migration_files
from adapters.postgres.repositories import PgRepositories
from domain.orders import Customer, Order, OrderLine, Payment

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)


def _order(merchant_id: str, order_id: str, reference: str) -> Order:
    return Order(
        merchant_id=merchant_id,
        order_id=order_id,
        currency="EUR",
        placed_at=T0,
        delivered_at=T0,
        customer=Customer(id="cus_1"),
        lines=[OrderLine("l1", "SKU", "Thing", 1, 1000)],
        shipping_total=0,
        payment=Payment("stripe", reference, 1000),
    )


async def test_each_payment_goes_to_the_merchant_whose_order_named_it_first(own_database_url: str) -> None:
    conn = await asyncpg.connect(own_database_url)
    try:
        await migrate(conn)  # then back to before 016, as a database with orders from before payments had owners
        await conn.execute("DROP TABLE payment_owners; DELETE FROM schema_migrations WHERE version = 16")
        repos = PgRepositories(conn)
        for merchant in ("m_early", "m_late", "m_bound"):
            await repos.ensure_merchant(merchant)
        await repos.set_gateway_account("m_bound", "acct_bound")
        stored = [  # (order, when it was stored), not in that order
            (_order("m_late", "o_late", "pi_shared"), T0 + timedelta(hours=1)),
            (_order("m_early", "o_first", "pi_shared"), T0),
            (_order("m_early", "o_split", "pi_shared"), T0 + timedelta(hours=2)),
            (_order("m_bound", "o_own", "pi_shared"), T0 + timedelta(hours=3)),
            (_order("m_late", "o_alone", "pi_late"), T0 + timedelta(hours=4)),
        ]
        for order, at in stored:
            await repos.upsert_order(order, at)
        assert await migrate(conn) == [name for number, name, _ in migration_files() if number == 16]
        rows = await conn.fetch("SELECT gateway, account, reference, merchant_id, created_at FROM payment_owners")
    finally:
        await conn.close()
    owners = {(r["gateway"], r["account"], r["reference"]): (r["merchant_id"], r["created_at"]) for r in rows}
    assert owners == {
        (gateway, account, reference): owner
        for gateway in ("stripe", "simulated")
        for account, reference, owner in (
            ("", "pi_shared", ("m_early", T0)),
            ("", "pi_late", ("m_late", T0 + timedelta(hours=4))),
            ("acct_bound", "pi_shared", ("m_bound", T0 + timedelta(hours=3))),
        )
    }
